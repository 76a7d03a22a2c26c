"""The online chord follower: the key and one chord per harmonic step, from what the
player plays, causally (no look-ahead), committing like a rhythm section.

Steps are half bars when metered and :data:`FREE_STEP` seconds free (a :class:`Grid`).
At a step's start the follower has heard none of the step's notes, so it *predicts*:
the chord that the POP909 transition table (:mod:`.table`) expects after the one of the
step before (decided again with all of that step's notes), in the key heard so far,
with the notes that still sound. As the step goes by, every note heard is evidence;
the chord is revised when another fits the step's notes clearly better (by ``margin``
nats: a rhythm section that hears the singer go somewhere else follows at once) up to
``revise_until`` of the step (all of it by default: on validation songs, holding the
second half fixed named 1 point fewer chords, `benchmarks/tune_follower.py`).

Besides the chord, :meth:`ChordFollower.state` gives the chance that each pitch class
is a tone of the chord in force (the posterior over the 24 major and minor triads):
the band plays from it, so that where two chords compete it prefers the tones they
share.

:func:`template_chords` is the baseline: per step, the triad whose template best
matches (cosine) the pitch classes of the previous step (causal) or of the step
itself (offline, ``causal=False``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .chords import Chord
from .table import Table, class_chord, load_table

FREE_STEP = 1.5          # seconds: a harmonic step in free mode
# the 24 triads: index r (major on root r) and 12 + r (minor)
TRIADS = np.zeros((24, 12))
for _r in range(12):
    TRIADS[_r, [(_r + i) % 12 for i in (0, 4, 7)]] = 1.0
    TRIADS[12 + _r, [(_r + i) % 12 for i in (0, 3, 7)]] = 1.0


def triad(k: int) -> Chord:
    return class_chord(k, 0)


def triad_index(c: Chord) -> int:
    return c.root + (12 if c.minor else 0)


@dataclass(frozen=True)
class Note:
    pitch: int
    start: float            # the follower's time unit (beats metered, seconds free)
    end: float | None = None


@dataclass
class FollowerState:
    """What the follower says at one moment."""

    chord: Chord | None
    key: tuple[int, bool] | None            # (tonic, minor)
    tones: np.ndarray = field(repr=False)   # [12]: chance each pitch class is a chord tone
    roots: np.ndarray = field(repr=False)   # [12]: chance each pitch class is the root
    step: int = 0


def profile(notes: list[Note], lo: float, hi: float, now: float) -> np.ndarray:
    """Pitch classes of the notes sounding in [lo, hi), weighted by their time there (a
    note still sounding counts to ``now``), each onset inside counting a little extra."""
    p = np.zeros(12)
    for n in notes:
        end = n.end if n.end is not None else now
        a, b = max(n.start, lo), min(end, hi)
        if b > a:
            p[n.pitch % 12] += b - a
        if lo <= n.start < hi:
            p[n.pitch % 12] += 0.1 * (hi - lo)
    return p


class Grid:
    """Harmonic steps on the session's clock: ``index(t)`` the step (fractional) at ``t``
    seconds, ``time(k)`` when step ``k`` starts. :class:`SecondsGrid` is free mode's."""

    def index(self, t: float) -> float: ...

    def time(self, k: float) -> float: ...


@dataclass(frozen=True)
class SecondsGrid(Grid):
    step: float = FREE_STEP

    def index(self, t: float) -> float:
        return t / self.step

    def time(self, k: float) -> float:
        return k * self.step


class ChordFollower:
    """Online: call :meth:`hear_on` / :meth:`hear_off` as notes arrive (session seconds),
    and :meth:`state` with the time of the frame being decided, "now" (what has been
    heard) and the step grid in force."""

    def __init__(self, table: Table | None = None, sharpness: float = 6.0, revise_until: float = 1.0,
                 margin: float = 0.8, key_memory: float = 24.0, recogniser=None):
        self.table = table if table is not None else load_table()
        # the learned recogniser (:mod:`.learned`), when given, replaces the key prior and the
        # templates as the evidence for each step's chord; the commitment rules stay
        self.recogniser = recogniser
        self.sharpness = sharpness              # nats per unit of template match
        self.revise_until = revise_until        # share of a step in which the chord may change
        self.margin = margin                    # nats a new chord must win by to replace it
        self.key_memory = key_memory            # seconds of the player's line the key is heard from
        self.emission = 0.0                     # nats per second of melody (0, the default: templates only; the table measured worse on validation songs, benchmarks/tune_follower.py)
        self.hold_evidence = False              # a held chord is judged on both steps' notes
        self.commit = 0.0                       # how much the committed chord counts over the posterior
        self.carry = 0.0                        # weight of the step before in the evidence
        self.notes: list[Note] = []
        self._open: Note | None = None
        self._grid: Grid | None = None
        self._committed: dict[int, int] = {}    # step -> triad index
        self._last: int | None = None           # the last chord committed (carried over a new grid)
        self._key: tuple[int, bool] | None = None
        self._key_logs: np.ndarray | None = None
        self.key_margin = 2.0                   # nats the key heard must win by to change
        self.hold = 0.35                        # P(the chord of the step before goes on), beside the table
        self.learned_weight = 1.0               # the recogniser's share against the templates, when given

    def reset(self) -> None:
        if self.recogniser is not None:
            self.recogniser.reset()
        self.__init__(self.table, self.sharpness, self.revise_until, self.margin, self.key_memory, self.recogniser)

    # ------------------------------------------------------------ input

    def hear_on(self, pitch: int, t: float) -> None:
        if self._open is not None:
            self.hear_off(t)
        self._open = Note(int(pitch), float(t))
        self.notes.append(self._open)

    def hear_off(self, t: float) -> None:
        if self._open is not None:
            i = len(self.notes) - 1 - self.notes[::-1].index(self._open)
            self.notes[i] = Note(self._open.pitch, self._open.start, max(float(t), self._open.start))
            self._open = None

    def forget(self, before: float) -> None:
        keep = [n for n in self.notes if n.end is None or n.end >= before]
        if self._open is not None and self._open not in keep:
            keep.append(self._open)
        self.notes = keep

    # ------------------------------------------------------------ deciding

    def key_now(self, now: float) -> tuple[int, bool] | None:
        """The key of the player's last ``key_memory`` seconds: the likeliest under POP909's
        melody key profiles (70% right on 40 validation songs, against 42% for
        Krumhansl-Schmuckler's), changed only when another is clearly likelier."""
        p = profile(self.notes, now - self.key_memory, now, now)
        if p.sum() < 1.0:
            return self._key
        if self._key_logs is None:
            logs = np.log(self.table.keys)
            self._key_logs = np.array([np.roll(logs[m], k) for m in (0, 1) for k in range(12)])  # [24, 12]
        score = self._key_logs @ p
        new = int(np.argmax(score))
        if self._key is None:
            self._key = (new % 12, new >= 12)
        else:
            old = self._key[0] + 12 * self._key[1]
            if new != old and score[new] - score[old] > self.key_margin:
                self._key = (new % 12, new >= 12)
        return self._key

    def prior(self, key: tuple[int, bool] | None, prev: int | None) -> np.ndarray:
        """log P(triad) from the key and the chord of the step before (held or changed)."""
        if key is None:
            p = np.full(24, 1 / 24)
            if prev is not None:
                p[prev] += 0.5
        else:
            tonic, minor = key
            rel = np.array([(r - tonic) % 12 + 12 * q for q in (0, 1) for r in range(12)])  # abs -> key class
            base = self.table.prior(minor)[rel]
            if prev is None:
                p = base
            else:
                trans = self.table.after(rel[prev], minor)[rel]
                hold = self.hold
                p = (1 - hold) * (0.7 * trans + 0.3 * base)
                p[prev] += hold
        return np.log(p / p.sum() + 1e-6)

    def match(self, e: np.ndarray, length: float, key: tuple[int, bool] | None = None) -> np.ndarray:
        """How well each triad explains an evidence profile (seconds per pitch class). With
        a key: the log-likelihood of the melody's pitch classes under each chord (POP909's
        melody-under-chord table), ``emission`` nats per second heard. Without: a template
        match (share on chord tones, minus a half of the rest), scaled by how much was heard."""
        total = e.sum()
        if total <= 0:
            return np.zeros(24)
        if key is not None and self.emission > 0:
            tonic, minor = key
            rel = np.array([(r - tonic) % 12 + 12 * q for q in (0, 1) for r in range(12)])
            logp = np.log(self.table.emit[int(minor)])[rel][:, (np.arange(12) - tonic) % 12]  # [24 abs, 12 abs]
            ll = logp @ e * self.emission
            return ll - ll.max()
        share = TRIADS @ (e / total)
        amount = min(1.0, total / (0.4 * length))
        return self.sharpness * amount * (share - 0.5 * (1 - share))

    def state(self, t: float, now: float, grid: Grid) -> FollowerState:
        """The chord for time ``t`` (seconds, >= ``now`` - a frame), from the notes heard up to
        ``now``, steps on ``grid``."""
        if grid is not self._grid:
            self._grid = grid
            self._committed = {}
        step = int(math.floor(grid.index(t) + 1e-9))
        start, end = grid.time(step), grid.time(step + 1)
        length = max(end - start, 1e-3)
        key = self.key_now(now)
        prev = self._committed.get(step - 1, self._last)
        logp = self._template_logp(step, start, length, now, key, prev, grid)
        if self.recogniser is not None:
            # the learned recogniser's posterior, in a product with the templates' (which hear
            # the step's chord tones directly where the recogniser leans on what songs do)
            self.recogniser.advance([(n.start, n.end, n.pitch) for n in self.notes], now)
            q = self.recogniser.posterior(t)[:24]
            w = self.learned_weight
            logp = w * np.log(q / q.sum() + 1e-6) + (1 - w) * (logp - np.logaddexp.reduce(logp))
        return self._decide(logp, step, start, length, now, key)

    def _template_logp(self, step: int, start: float, length: float, now: float,
                       key: tuple[int, bool] | None, prev: int | None, grid: Grid) -> np.ndarray:
        """Log-posterior over the 24 triads from the key's transition table and the heard
        notes' match with each triad's template."""
        if now >= start:
            # the step before is over: decide it again with all its notes (still causal)
            before = self._committed.get(step - 2, self._last)
            pe = profile(self.notes, grid.time(step - 1), start, now)
            if pe.sum() > 0:
                lp = self.prior(key, before) + self.match(pe, length, key)
                prev = int(np.argmax(lp))
        prior = self.prior(key, prev)
        if now < start:  # deciding ahead of the step: what sounds now is all there is
            e = 0.5 * profile(self.notes, now - length / 2, now + 1e-9, now)
        else:            # the step's notes heard so far, and a little of the step before
            e = profile(self.notes, start, now + 1e-9, now) + self.carry * profile(self.notes, start - length, start, now)
        logp = prior + self.match(e, length, key)
        if prev is not None and now >= start and self.hold_evidence:
            # if the chord holds, the step before speaks for it too
            both = self.match(e + profile(self.notes, start - length, start, now), 2 * length, key)
            logp[prev] = max(logp[prev], prior[prev] + both[prev])
        return logp

    def _decide(self, logp: np.ndarray, step: int, start: float, length: float, now: float,
                key: tuple[int, bool] | None) -> FollowerState:
        """Commit to a chord for ``step`` from the log-posterior over the 24 triads: the
        first one decided, replaced only when another wins by ``margin`` within the step."""
        best = int(np.argmax(logp))
        cur = self._committed.get(step)
        if cur is None or best != cur and start <= now < start + self.revise_until * length and logp[best] - logp[cur] > self.margin:
            cur = best
        self._committed[step] = cur
        if step >= max(self._committed):
            self._last = cur
        for k in [k for k in self._committed if k < step - 8]:
            del self._committed[k]
        post = np.exp(logp - logp.max())
        post /= post.sum()
        # the committed chord counts more than its share (the band plays one chord)
        tones = self.commit * TRIADS[cur] + (1 - self.commit) * (TRIADS.T @ post)
        r = np.zeros(12)
        r[cur % 12] = 1.0
        roots = 0.5 * (post[:12] + post[12:]) + 0.5 * r
        return FollowerState(triad(cur), key, tones, roots, step)


def template_chords(notes: list[Note], grid: Grid, n_steps: int, causal: bool = True) -> list[int | None]:
    """The baseline: per step, the triad (index into :data:`TRIADS`) with the best cosine
    match to the previous step's pitch classes (``causal``) or the step's own."""
    out: list[int | None] = []
    norms = np.linalg.norm(TRIADS, axis=1)
    last = None
    for k in range(n_steps):
        j = k - 1 if causal else k
        p = profile(notes, grid.time(j), grid.time(j + 1), math.inf)
        if p.sum() <= 0:
            out.append(last)
            continue
        cos = TRIADS @ p / (norms * np.linalg.norm(p))
        last = int(np.argmax(cos))
        out.append(last)
    return out


__all__ = [
    "FREE_STEP",
    "TRIADS",
    "ChordFollower",
    "FollowerState",
    "Grid",
    "Note",
    "SecondsGrid",
    "template_chords",
    "triad",
    "triad_index",
]
