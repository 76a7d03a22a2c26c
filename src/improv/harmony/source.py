"""Which chord is in force at each frame the band plans: :class:`Harmony` answers
``at(t, now, map)`` with a :class:`HarmonyNow`.

* ``changes`` (``--changes TEXT|FILE``): the lead sheet's form, looped, on the band's fixed
  clock (beat 0 at the session's start, the form after ``count_in`` bars).
* ``follow`` (default): the online :class:`~.follower.ChordFollower` on the player's notes.
* ``auto`` (``--changes auto``, command ``lead harmonic``): the band's own progression, a
  chord per bar chosen a beat before the bar from the POP909 transition table in the key
  heard (so the display can show the next chord).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .chords import Chord, parse_chord
from .follower import FREE_STEP, ChordFollower, SecondsGrid, profile, triad, triad_index
from .leadsheet import Form, read_changes
from .table import load_table


@dataclass(frozen=True)
class HarmonyNow:
    """The harmony at one frame."""

    chord: Chord | None
    tones: np.ndarray = field(repr=False)   # [12] chance that each pitch class is a chord tone
    roots: np.ndarray = field(repr=False)   # [12] chance that each pitch class is the root
    began: float = -math.inf                # seconds: when this chord began
    key: tuple[int, bool] | None = None
    next: Chord | None = None               # the next chord, when known (changes, auto)
    next_at: float | None = None
    bar: int | None = None                  # bar of the form (from 0), changes only
    chorus: int | None = None
    counting_in: bool = False
    strict: bool = False                    # the chord is given (changes, auto), not guessed
    source: str = "follow"


def _certain(c: Chord | None) -> tuple[np.ndarray, np.ndarray]:
    tones, roots = np.zeros(12), np.zeros(12)
    if c is not None:
        tones[list(c.tones)] = 1.0
        roots[c.root] = 1.0
    return tones, roots


def default_follower() -> ChordFollower:
    """The follower the band uses: the learned recogniser (``models/chords.pt``) in a product
    with the templates and the POP909 transition table, when the model is there; else the
    templates alone. Chosen on validation songs (``benchmarks/tune_follower.py --learned``):
    majmin 0.360 against 0.325 for the templates; the recogniser alone scored 0.397 but
    named C for Am and Dm for F on textbook arpeggios and scales that the product names."""
    from . import learned

    net = learned.load()
    if net is None:
        return ChordFollower()
    f = ChordFollower(recogniser=learned.Recogniser(net))
    f.margin = LEARNED_MARGIN
    f.learned_weight = LEARNED_WEIGHT
    return f


LEARNED_MARGIN = 0.0   # nats a new chord must win by within a step (0.4: -1 point on validation)
LEARNED_WEIGHT = 0.5   # the recogniser's share of the log-posterior against the templates'


class _HalfBars:
    """Metered harmonic steps: half bars of a time map (its units are beats from a bar line)."""

    def __init__(self, m, half: float):
        self.m, self.half = m, half

    def index(self, t: float) -> float:
        return self.m.units(t) / self.half

    def time(self, k: float) -> float:
        return self.m.seconds(k * self.half)


class Harmony:
    name = "follow"

    def hear_on(self, pitch: int, t: float) -> None: ...

    def hear_off(self, t: float) -> None: ...

    def forget(self, before: float) -> None: ...

    def at(self, t: float, now: float, m) -> HarmonyNow | None: ...


class FollowHarmony(Harmony):
    name = "follow"

    def __init__(self, follower: ChordFollower | None = None):
        self.follower = follower if follower is not None else default_follower()
        self._map = None
        self._grid = SecondsGrid(FREE_STEP)

    def hear_on(self, pitch: int, t: float) -> None:
        self.follower.hear_on(pitch, t)

    def hear_off(self, t: float) -> None:
        self.follower.hear_off(t)

    def forget(self, before: float) -> None:
        self.follower.forget(before)

    def grid(self, m):
        if m is None or not m.metered:
            return self._grid
        if m is not self._map:
            self._map = m
            self._metered_grid = _HalfBars(m, m.meter.beats_per_bar / 2.0)
        return self._metered_grid

    def at(self, t: float, now: float, m) -> HarmonyNow | None:
        if not self.follower.notes:
            return None
        g = self.grid(m)
        st = self.follower.state(t, now, g)
        return HarmonyNow(st.chord, st.tones, st.roots, g.time(st.step), st.key, source="follow")


class FormHarmony(Harmony):
    """A lead sheet on the band's fixed clock (beat 0 at session time 0)."""

    name = "changes"

    def __init__(self, form: Form, count_in: int = 0, key: tuple[int, bool] | None = None):
        self.form = form
        self.count_in = int(count_in)
        self.key = key

    def at(self, t: float, now: float, m) -> HarmonyNow | None:
        if m is None or not m.metered:
            return None
        clock = m.clock
        beat = clock.beat_at(t) - self.count_in * self.form.beats_per_bar
        lead = self.count_in * self.form.beats_per_bar
        if beat < -1e-6:
            c = self.form.at(0.0)[0]
            tones, roots = _certain(c)
            return HarmonyNow(c, tones, roots, -math.inf, self.key, c, clock.time_of(lead), None, None, True, True,
                              "changes")
        beat = max(0.0, round(beat, 6))
        c, bar, chorus, began = self.form.at(beat)
        nxt, nxt_at = self.form.next_change(beat)
        tones, roots = _certain(c)
        return HarmonyNow(c, tones, roots, clock.time_of(began + lead), self.key, nxt, clock.time_of(nxt_at + lead),
                          bar, chorus, False, True, "changes")


ALONE_KEY = (0, False)  # C major: the band's key when it starts alone and no --key is given


class AutoHarmony(Harmony):
    """The band's own changes: a chord per bar (free: per :data:`FREE_STEP` x 2 seconds),
    chosen a beat before the bar begins: drawn (``temperature``) from what the POP909
    transition table expects after the band's chord in the key heard, weighed with the
    player's last half bar (the follower's prior and template match)."""

    name = "auto"

    def __init__(self, seed: int | None = 0, follower: ChordFollower | None = None,
                 key: tuple[int, bool] | None = None, alone: bool = False):
        self.follow = FollowHarmony(follower)
        self.fixed_key = key
        self.alone = alone          # no player to wait for (jam): start on the key's tonic at once
        self.table = load_table()
        self.rng = np.random.default_rng(seed)
        self.chosen: dict[int, int] = {}
        self._map = None
        self.temperature = 0.25     # sampling among the likely next chords (lower: the likeliest)
        self.repeat = 1.0           # below 1: the same chord again is less likely (1 measured best on validation)
        if alone:
            self.repeat = 0.3       # with no player to lead the harmony, the band moves it on itself

    def hear_on(self, pitch: int, t: float) -> None:
        self.follow.hear_on(pitch, t)

    def hear_off(self, t: float) -> None:
        self.follow.hear_off(t)

    def forget(self, before: float) -> None:
        self.follow.forget(before)

    def _bars(self, m):
        if m is None or not m.metered:
            return SecondsGrid(2 * FREE_STEP)
        if m is not self._map:
            self._map = m
            self._bar_grid = _HalfBars(m, float(m.meter.beats_per_bar))
            self.chosen = {}
        return self._bar_grid

    def _choose(self, k: int, key, now: float, g) -> int:
        if k in self.chosen:
            return self.chosen[k]
        f = self.follow.follower
        prev = self.chosen.get(k - 1)
        if prev is None and not f.notes:  # nothing heard (the band alone): from the key's tonic
            key = key or ALONE_KEY
            prev = key[0] + (12 if key[1] else 0)
        elif prev is None:
            heard = f.state(g.time(k), now, SecondsGrid(FREE_STEP))
            prev = triad_index(heard.chord)
            key = key or heard.key
        # what usually comes next in this key (POP909), and what the player plays now
        length = g.time(k) - g.time(k - 1)
        # (the learned recogniser's forecast for the bar instead, or blended with the table at
        # 0.4-1.0, changed the melody's share on the band's chords by -1.5 to +0.2 points on
        # validation songs: not used here)
        logp = f.prior(key, prev) + f.match(profile(f.notes, now - length / 2, now + 1e-9, now), length / 2)
        logp[prev] += np.log(self.repeat)
        p = np.exp((logp - logp.max()) / self.temperature)
        p /= p.sum()
        c = int(self.rng.choice(24, p=p))
        self.chosen[k] = c
        for old in [j for j in self.chosen if j < k - 8]:
            del self.chosen[old]
        return c

    def at(self, t: float, now: float, m) -> HarmonyNow | None:
        heard = bool(self.follow.follower.notes)
        if not heard and not self.alone:
            return None
        g = self._bars(m)
        k = int(math.floor(g.index(t) + 1e-9))
        key = self.fixed_key or (self.follow.follower.key_now(now) if heard else ALONE_KEY)
        cur = self._choose(k, key, now, g)
        nxt = self.chosen.get(k + 1)
        start, end = g.time(k), g.time(k + 1)
        if nxt is None and now >= end - (end - start) / 4:  # a beat (a quarter of the bar) ahead
            nxt = self._choose(k + 1, key, now, g)
        c = triad(cur)
        tones, roots = _certain(c)
        return HarmonyNow(c, tones, roots, start, key, triad(nxt) if nxt is not None else None,
                          end if nxt is not None else None, None, None, False, True, "auto")


class TimedHarmony(Harmony):
    """Chords given in session seconds, ``[(start, end, chord or None)]`` (a transcribed
    chart, or a song's annotations in the benchmark): like a lead sheet, strict."""

    name = "changes"

    def __init__(self, chords: list[tuple[float, float, Chord | None]]):
        self.chords = sorted(chords, key=lambda c: c[0])
        self.starts = np.array([c[0] for c in self.chords])

    def at(self, t: float, now: float, m) -> HarmonyNow | None:
        i = int(np.searchsorted(self.starts, t + 1e-6, side="right")) - 1
        if i < 0 or t >= self.chords[i][1] or self.chords[i][2] is None:
            return None
        s, e, c = self.chords[i]
        tones, roots = _certain(c)
        nxt = self.chords[i + 1] if i + 1 < len(self.chords) else None
        return HarmonyNow(c, tones, roots, s, None, nxt[2] if nxt else None, nxt[0] if nxt else None,
                          None, None, False, True, "changes")


def harmony_line(d: dict | None) -> str | None:
    """The display's line from ``Band.harmony_text()``: ``Dm7 -> G7   key C major   bar 3 chorus 2``."""
    if not d or d.get("chord") is None:
        return None
    text = ("count-in: " if d.get("count_in") else "") + d["chord"]
    if d.get("next"):
        text += f" -> {d['next']}"
    if d.get("key"):
        text += f"   key {d['key']}"
    if d.get("bar") is not None:
        text += f"   bar {d['bar']} chorus {d['chorus']}"
    return text + f"   ({d['source']})"


def parse_key(text: str | None) -> tuple[int, bool] | None:
    """``--key``: ``C``, ``Am``, ``F# minor``, ``Bb major`` -> (tonic, minor)."""
    if text is None or not text.strip():
        return None
    t = text.strip().replace(" ", "")
    low = t.lower()
    minor = low.endswith("minor") or low.endswith("min") or (low.endswith("m") and not low.endswith("maj"))
    for suffix in ("major", "minor", "maj", "min", "m"):
        if low.endswith(suffix) and len(t) > len(suffix):
            t = t[: -len(suffix)]
            break
    try:
        c = parse_chord(t)
    except ConfigError:
        c = None
    if c is None or len(t) > 2:
        raise ConfigError(f"--key {text!r}: write a key like C, Am, 'F# minor' or 'Bb major'")
    return c.root, minor


def make_harmony(changes: str | None, beats_per_bar: int, count_in: int = 0, seed: int | None = 0,
                 key: tuple[int, bool] | None = None, alone: bool = False) -> Harmony:
    """``--changes``: None (follow), ``auto``, or lead-sheet text or a file."""
    if changes is None or changes.strip().lower() in ("", "follow"):
        if count_in:
            raise ConfigError("--count-in: give --changes too (the count-in leads into the form)")
        return FollowHarmony()
    if changes.strip().lower() == "auto":
        if count_in:
            raise ConfigError("--count-in: give a lead sheet with --changes (auto changes start with the player)")
        return AutoHarmony(seed, key=key, alone=alone)
    if count_in < 0 or count_in > 8:
        raise ConfigError(f"--count-in {count_in}: give 0 to 8 bars")
    return FormHarmony(read_changes(changes, beats_per_bar), count_in, key)


__all__ = ["AutoHarmony", "FollowHarmony", "FormHarmony", "Harmony", "HarmonyNow", "TimedHarmony", "harmony_line", "make_harmony"]
