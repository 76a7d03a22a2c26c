"""A live generation session: observe notes as they arrive, propose the bands' next notes.

The session keeps what was heard and played (the player's notes and the band's own) as
monophonic notes per voice, and the model's key/value cache over the frames before
"now". ``propose(now, ...)`` first brings the cache up to the frame at ``now`` with what
really happened (recomputing frames that a late note changed), then samples the
requested voices frame by frame for the horizon. Frames after "now" are speculative:
the player's line there is the model's own guess (or its current note held), and they
are dropped again once the proposal is made. Nothing proposed counts as played until
it is ``accept``-ed or ``observe``-d.

Times are in the session's units: beats when metered, seconds when not. The caller
passes "now"; the session never reads a clock.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ConfigError
from ..output import RANGES
from .encoding import (CHORD_UNKNOWN, CONTROL_BLOCK, FRAMES_PER_BEAT, HOLD, LEAD, N_CHORDS, N_VOICES, PITCH_HI,
                       PITCH_LO, REST, ROLES, UNKNOWN, VOICES, Grid, chord_class_of, density_bucket, pitch_token,
                       register_bucket, token_pitch)
from .net import _TOKEN_PC, Cache, FrameNet, NumpyHeads, input_rows_np
from .sampling import Hook, StepContext, allowed_mask, softmax_sample

_TOKEN_PCS = _TOKEN_PC[2:]  # pitch class of each pitch token
# The band voices play in the band's ranges (one home: improv.output.RANGES); "lead" (the
# player's part, take over) spans the instruments a player brings.
DEFAULT_RANGES = {**RANGES, "lead": (36, 96)}
LEAD_IN = CONTROL_BLOCK  # silent frames before time 0, as in training
KEY_WINDOW = 16 * FRAMES_PER_BEAT  # frames of past notes summarised for hooks (heard_pitch_classes)
# Role accompany / lead means "this voice plays" (in training: it sounds in every 4-beat
# block). A voice given that role which has rested for ENTRY_BEATS beats (or twice the gap
# its density asks for) has its chance of resting on the next beat capped at ENTRY_REST_CAP,
# so it comes in on a beat instead of staying silent (the model alone can settle into the
# silent band of the folk tunes it learnt from).
ENTRY_BEATS = 2
ENTRY_REST_CAP = 0.5


def voice_index(name: str) -> int:
    name = "lead" if name == "player" else name
    if name not in VOICES:
        raise ConfigError(f"unknown voice {name!r}; use one of {', '.join(VOICES)} (or player)")
    return VOICES.index(name)


@dataclass(frozen=True)
class VoiceControl:
    """How one voice should play (the band's meta-commands).

    ``role``: accompany, lead or silent (silent forces rests). ``density``: notes per beat
    (per half second when unmetered), None lets the model choose. ``register``: the
    centre pitch to aim for, None lets the model choose. ``low``/``high``: the hard pitch
    range (default: the voice's DEFAULT_RANGES). ``temperature``/``top_p`` override the
    session's sampling for this voice.
    """

    role: str = "accompany"
    density: float | None = None
    register: float | None = None
    low: int | None = None
    high: int | None = None
    temperature: float | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(f"role {self.role!r}: use one of {', '.join(ROLES)}")
        if self.density is not None and not 0 <= self.density <= 16:
            raise ConfigError(f"density {self.density}: notes per beat between 0 and 16")
        if self.register is not None and not PITCH_LO <= self.register <= PITCH_HI:
            raise ConfigError(f"register {self.register}: a MIDI pitch between {PITCH_LO} and {PITCH_HI}")
        lo = PITCH_LO if self.low is None else self.low
        hi = PITCH_HI if self.high is None else self.high
        if not PITCH_LO <= lo <= hi <= PITCH_HI:
            raise ConfigError(f"range {self.low}-{self.high}: need {PITCH_LO} <= low <= high <= {PITCH_HI}")
        if self.temperature is not None and self.temperature < 0:
            raise ConfigError(f"temperature {self.temperature}: must be >= 0")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p {self.top_p}: must be in (0, 1]")

    def range_for(self, voice: str) -> tuple[int, int]:
        lo, hi = DEFAULT_RANGES[voice]
        return (lo if self.low is None else self.low, hi if self.high is None else self.high)

    def codes(self) -> tuple[int, int, int]:
        """(density, register, role) as the model's control codes."""
        dens = UNKNOWN if self.density is None else int(density_bucket(round(self.density * 4)))
        reg = UNKNOWN if self.register is None else int(register_bucket(self.register))
        return dens, reg, ROLES.index(self.role)


@dataclass(frozen=True)
class ProposedNote:
    voice: str
    pitch: int
    start: float
    end: float | None  # None: still sounding at the end of the proposal


@dataclass(frozen=True)
class Proposal:
    """The next notes of some voices between ``start`` and ``end`` (session units).

    ``releases[voice]`` is when the note that voice was sounding at ``start`` stops
    (absent: it goes on, or there was none). ``tokens`` are the frames as the model
    saw them (``[frames, 4]``, with its guess of the player's line).
    """

    start: float
    end: float
    voices: tuple[str, ...]
    notes: tuple[ProposedNote, ...]
    releases: dict[str, float]
    tokens: np.ndarray = field(repr=False)

    def for_voice(self, voice: str) -> list[ProposedNote]:
        return [n for n in self.notes if n.voice == voice]


class _Line:
    """One voice's notes as frame intervals [start, end) (end None: still sounding)."""

    __slots__ = ("starts", "ends", "pitches")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int | None] = []
        self.pitches: list[int] = []

    def on(self, pitch: int, f: int) -> int:
        """Add a note; returns the earliest frame whose tokens changed."""
        i = bisect.bisect_right(self.starts, f)
        changed = f
        if i > 0 and self.starts[i - 1] == f:
            self.pitches[i - 1] = pitch
            return f
        if i > 0:
            e = self.ends[i - 1]
            if e is None or e > f:
                self.ends[i - 1] = f
        end = self.starts[i] if i < len(self.starts) else None
        self.starts.insert(i, f)
        self.ends.insert(i, end)
        self.pitches.insert(i, pitch)
        return changed

    def off(self, f: int) -> int | None:
        """End the sounding note at frame f (at least one frame long)."""
        for i in range(len(self.starts) - 1, -1, -1):
            if self.ends[i] is None:
                self.ends[i] = max(f, self.starts[i] + 1)
                return self.ends[i]
            if self.starts[i] < f:
                break
        return None

    def render(self, a: int, b: int, open_holds: bool = True) -> np.ndarray:
        """Tokens of frames [a, b). An open note holds to b (if ``open_holds``)."""
        out = np.zeros(b - a, dtype=np.int64)
        i = bisect.bisect_left(self.starts, b) - 1
        while i >= 0:
            s, e, p = self.starts[i], self.ends[i], self.pitches[i]
            if e is None:
                e = b if open_holds else s + 1
            if e <= a:
                break
            if s >= a:
                out[s - a] = pitch_token(p)
            lo = max(s + 1, a)
            if e > lo:
                out[lo - a:e - a] = HOLD
            i -= 1
        return out

    def add_pitch_classes(self, a: int, b: int, out: np.ndarray) -> None:
        """Add each note's frames within [a, b) to ``out[pitch % 12]``."""
        i = bisect.bisect_left(self.starts, b) - 1
        while i >= 0:
            s, e = self.starts[i], self.ends[i]
            e = b if e is None else min(e, b)
            if e <= a and self.ends[i] is not None:
                break
            if e > max(s, a):
                out[self.pitches[i] % 12] += e - max(s, a)
            i -= 1

    def known_at(self, f: int) -> bool:
        """Whether frame f of this line is fixed by an observation (onset or closed note)."""
        i = bisect.bisect_right(self.starts, f) - 1
        if i < 0:
            return False
        if self.starts[i] == f:
            return True
        e = self.ends[i]
        return e is not None and f < e

    def sounding_before(self, f: int) -> int | None:
        """Pitch sounding in frame f-1 (open notes count), else None."""
        i = bisect.bisect_right(self.starts, f - 1) - 1
        if i < 0:
            return None
        e = self.ends[i]
        return self.pitches[i] if e is None or e > f - 1 else None

    def silent_before(self, f: int) -> int:
        """How many frames before f the voice has been silent (0 if it sounds in f-1)."""
        i = bisect.bisect_right(self.starts, f - 1) - 1
        if i < 0:
            return 1 << 30
        e = self.ends[i]
        return 0 if e is None or e > f - 1 else f - e

    def last_pitch_before(self, f: int) -> int | None:
        i = bisect.bisect_right(self.starts, f - 1) - 1
        return self.pitches[i] if i >= 0 else None


class Session:
    """Generation state of one performance. Create with ``BandModel.session(...)``."""

    def __init__(self, net: FrameNet, grid: Grid, seed: int | None = None, temperature: float = 1.0,
                 top_p: float = 0.95, lead_guess: str = "hold", lead_temperature: float = 0.8):
        if lead_guess not in ("sample", "hold"):
            raise ConfigError(f"lead_guess {lead_guess!r}: use sample or hold")
        self.net = net
        self.grid = grid
        self.temperature = temperature
        self.top_p = top_p
        self.lead_guess = lead_guess
        self.lead_temperature = lead_temperature
        self._seed = seed
        self.entry_rest_cap: float | None = ENTRY_REST_CAP  # None: never push a resting voice in
        self.reset()
        self._heads = NumpyHeads(net)

    def reset(self) -> None:
        self.rng = np.random.default_rng(self._seed)
        self.lines = [_Line() for _ in VOICES]
        self.cache = Cache(self.net)
        self.cache.first = -LEAD_IN
        self._dirty: int | None = None
        self.controls = np.full((N_VOICES, 3), UNKNOWN, dtype=np.int64)
        # The chord control: chord class _chord_classes[i] from frame _chord_frames[i] on.
        self._chord_frames: list[int] = []
        self._chord_classes: list[int] = []
        self._ranges = {v: DEFAULT_RANGES[v] for v in VOICES}
        self._voice_ctl: dict[str, VoiceControl] = {}

    # ----------------------------------------------------------- observing

    def _touch(self, f: int | None) -> None:
        if f is not None and f < self.cache.end:
            self._dirty = f if self._dirty is None else min(self._dirty, f)

    def note_on(self, voice: str, pitch: int, time: float) -> None:
        """A note starts (a voice's previous note ends there: voices are monophonic)."""
        v = voice_index(voice)
        if not PITCH_LO <= pitch <= PITCH_HI:
            pitch = int(np.clip(pitch, PITCH_LO, PITCH_HI))
        self._touch(self.lines[v].on(int(pitch), self.grid.frame(time)))

    def note_off(self, voice: str, time: float) -> None:
        """The voice's sounding note ends."""
        v = voice_index(voice)
        self._touch(self.lines[v].off(self.grid.frame(time)))

    def observe(self, voice: str, pitch: int, start: float, end: float | None = None) -> None:
        """A note heard or played; ``end`` None while it still sounds."""
        self.note_on(voice, pitch, start)
        if end is not None:
            self.note_off(voice, end)

    def accept(self, proposal: Proposal) -> None:
        """Take a proposal as played, as is."""
        for voice, t in proposal.releases.items():
            self.note_off(voice, t)
        for n in proposal.notes:
            self.observe(n.voice, n.pitch, n.start, n.end)

    @property
    def uses_chords(self) -> bool:
        """The model has the chord control (``set_chord`` steers it; otherwise it is ignored)."""
        return self.net.cfg.chords

    def set_chord(self, time: float, chord) -> None:
        """The chord in force from ``time`` on (until the next one set): an
        ``improv.harmony.Chord``, a chord class (0-23: root + 12 if minor) or None (unknown).
        A chord set for a time already passed replaces what was set after it."""
        k = chord if isinstance(chord, (int, np.integer)) else chord_class_of(chord)
        if not 0 <= k <= CHORD_UNKNOWN:
            raise ConfigError(f"chord class {k}: use 0-{N_CHORDS - 1} (root + 12 if minor) or None")
        f = self.grid.frame(time)
        i = bisect.bisect_left(self._chord_frames, f)
        if i == len(self._chord_frames) and self.chord_at(f) == k:
            return
        del self._chord_frames[i:], self._chord_classes[i:]
        self._chord_frames.append(f)
        self._chord_classes.append(int(k))
        if self.uses_chords:
            self._touch(f - 1)  # frame f-1's input carries the chord of frame f

    def chord_at(self, f: int) -> int:
        """The chord class in force at frame ``f`` (CHORD_UNKNOWN if none was set)."""
        i = bisect.bisect_right(self._chord_frames, f) - 1
        return self._chord_classes[i] if i >= 0 else CHORD_UNKNOWN

    # ----------------------------------------------------------- frames

    def _rows(self, tokens: np.ndarray, first: int) -> torch.Tensor:
        chords = None
        if self.uses_chords:  # each frame carries the chord of the frame after it (the one predicted)
            frames = np.arange(first + 1, first + 1 + len(tokens))
            if self._chord_frames:
                i = np.searchsorted(np.asarray(self._chord_frames), frames, side="right") - 1
                chords = np.where(i >= 0, np.asarray(self._chord_classes)[np.maximum(i, 0)], CHORD_UNKNOWN)
            else:
                chords = np.full(len(tokens), CHORD_UNKNOWN, dtype=np.int64)
        return torch.from_numpy(input_rows_np(tokens, self.grid.bar_positions(first, len(tokens)), self.controls,
                                              chords))

    def _commit(self, f0: int) -> torch.Tensor:
        """Bring the cache to frames < f0 with what was observed; the state of frame f0-1."""
        cache = self.cache
        if cache.length == 0 and f0 <= cache.first:
            cache.first = f0 - LEAD_IN
        start = cache.end if self._dirty is None else min(cache.end, self._dirty)
        self._dirty = None
        start = max(start, cache.first)
        cache.truncate(start)
        if f0 - start > cache.capacity:
            cache.length, cache.first, cache.last_state = 0, f0 - cache.capacity // 2, None
            start = cache.first
        chunk = max(1, cache.capacity // 2)
        for a in range(start, f0, chunk):
            b = min(f0, a + chunk)
            toks = np.stack([line.render(a, b) for line in self.lines], axis=1)
            cache.feed(self._rows(toks, a))
        if cache.last_state is None:  # nothing new to feed: recompute the last frame
            cache.truncate(f0 - 1)
            toks = np.stack([line.render(f0 - 1, f0) for line in self.lines], axis=1)
            cache.feed(self._rows(toks, f0 - 1))
        return cache.last_state

    # ----------------------------------------------------------- proposing

    def set_controls(self, controls: dict[str, VoiceControl]) -> None:
        """Set (and keep) voices' controls; voices not named keep theirs."""
        for name, ctl in controls.items():
            v = voice_index(name)
            self._voice_ctl[VOICES[v]] = ctl
            self.controls[v] = ctl.codes()
            self._ranges[VOICES[v]] = ctl.range_for(VOICES[v])

    def propose(self, now: float, voices: tuple[str, ...] | list[str] = ("bass", "mid", "high"),
                controls: dict[str, VoiceControl] | None = None, horizon: float | None = None,
                hooks: Hook | dict[str, Hook] | None = None) -> Proposal:
        """The next notes of ``voices`` from ``now`` for ``horizon`` units (default one beat,
        half a second unmetered; at least one frame). Include "lead" to let the model play
        the player's part (take over).

        Runs on the process's torch threads, set once at start-up to one
        (:func:`improv.runtime.configure_process`): one frame's matrices are tiny, and a
        second thread only adds waiting, a lot of it when the other core is busy
        (measured in benchmarks/bench_model.py)."""
        return self._propose(now, voices, controls, horizon, hooks)

    @torch.inference_mode()
    def _propose(self, now, voices, controls, horizon, hooks) -> Proposal:
        gen = sorted({voice_index(v) for v in voices})
        if controls:
            self.set_controls(controls)
        unit = self.grid.unit
        f0 = int(np.ceil(now / unit - 1e-6))
        if horizon is None:
            horizon = FRAMES_PER_BEAT * unit
        n = max(1, int(round(horizon / unit)))
        h = h_now = self._commit(f0)
        toks = np.zeros((n, N_VOICES), dtype=np.int64)
        cur = [line.sounding_before(f0) for line in self.lines]
        start_sounding = list(cur)
        lead_line = self.lines[LEAD]
        heard_pcs = None
        if hooks is not None:
            heard_pcs = np.zeros(12)
            lead_line.add_pitch_classes(f0 - KEY_WINDOW, f0, heard_pcs)
        fixed = {v: self.lines[v].render(f0, f0 + n) for v in range(N_VOICES) if v not in gen}
        silent = [line.silent_before(f0) for line in self.lines]
        for k in range(n):
            f = f0 + k
            h_np = h.numpy()
            cond = np.zeros_like(h_np)
            chosen: dict[str, int] = {}
            forecast = self._lead_forecast(h_np, cur) if hooks is not None else None
            for v in range(N_VOICES):
                name = VOICES[v]
                speculate = v == LEAD and v not in gen and self.lead_guess == "sample" and not lead_line.known_at(f)
                if v in gen or speculate:
                    tok = self._sample(v, h_np, cond, cur[v], f, chosen, cur, lead_line.last_pitch_before(f + 1),
                                       hooks, speculate, heard_pcs, silent[v], forecast)
                else:
                    tok = int(fixed[v][k])
                    if tok == HOLD and cur[v] is None:
                        tok = REST
                toks[k, v] = tok
                chosen[name] = tok
                if tok >= 2:
                    cur[v] = token_pitch(tok)
                elif tok == REST:
                    cur[v] = None
                silent[v] = 0 if cur[v] is not None else silent[v] + 1
                if v < N_VOICES - 1:
                    cond = cond + self._heads.cond_vector(v, tok)
            if k < n - 1:
                h = self.cache.feed(self._rows(toks[k:k + 1], f))[-1]
        self.cache.truncate(f0)
        self.cache.last_state = h_now
        return self._proposal(f0, toks, gen, start_sounding)

    def _lead_forecast(self, h: np.ndarray, cur: list) -> np.ndarray:
        """The model's expectation of the player's pitch class in the next frame (``[12]``,
        summing to the chance that the player sounds), the bands assumed to go on as they are."""
        cond = np.zeros_like(h)
        for u in range(LEAD):
            cond = cond + self._heads.cond_vector(u, HOLD if cur[u] is not None else REST)
        logits = self._heads(LEAD, h, cond)
        if cur[LEAD] is None:
            logits[HOLD] = -np.inf
        p = np.exp(logits - logits.max())
        p /= p.sum()
        out = np.bincount(_TOKEN_PCS, weights=p[2:], minlength=12)
        if cur[LEAD] is not None:
            out[cur[LEAD] % 12] += p[HOLD]
        return out

    def _entry_threshold(self, ctl: VoiceControl | None) -> int | None:
        """Frames of silence after which a voice with role accompany/lead is pushed to enter."""
        if ctl is None or ctl.role == "silent" or self.entry_rest_cap is None:
            return None
        frames = ENTRY_BEATS * FRAMES_PER_BEAT
        if ctl.density is not None:
            if ctl.density <= 0:
                return None
            frames = max(frames, int(round(2 * FRAMES_PER_BEAT / ctl.density)))
        return frames

    def _sample(self, v: int, h, cond, sounding: int | None, f: int, chosen: dict[str, int], cur: list,
                lead_heard: int | None, hooks, speculate: bool, heard_pcs: np.ndarray | None = None,
                silent_for: int = 0, forecast: np.ndarray | None = None) -> int:
        name = VOICES[v]
        ctl = self._voice_ctl.get(name)
        logits = self._heads(v, h, cond)
        if speculate:
            low, high, silent = PITCH_LO, PITCH_HI, False
            temperature, top_p = self.lead_temperature, self.top_p
        else:
            low, high = self._ranges[name]
            silent = ctl is not None and ctl.role == "silent"
            temperature = ctl.temperature if ctl is not None and ctl.temperature is not None else self.temperature
            top_p = ctl.top_p if ctl is not None and ctl.top_p is not None else self.top_p
            hook = hooks.get(name) if isinstance(hooks, dict) else hooks
            if hook is not None:
                ctx = StepContext(voice=name, frame=f, time=self.grid.time(f),
                                  bar_position=int(self.grid.bar_positions(f, 1)[0]) if self.grid.metered else None,
                                  sounding={VOICES[u]: cur[u] for u in range(N_VOICES)},
                                  chosen_tokens=dict(chosen), lead_pitch=lead_heard, low=low, high=high,
                                  heard_pitch_classes=heard_pcs, lead_forecast=forecast)
                hook(ctx, logits)
        mask = allowed_mask(low, high, sounding is not None, silent)
        logits[~mask] = -np.inf
        if not np.isfinite(logits).any():  # a hook forbade everything allowed: rest
            return REST
        if not speculate and sounding is None:
            wait = self._entry_threshold(ctl)
            on_beat = (self.grid.bar_positions(f, 1)[0] if self.grid.metered else f) % FRAMES_PER_BEAT == 0
            if wait is not None and silent_for >= wait and on_beat:
                self._cap_rest(logits, temperature)
        return softmax_sample(logits, temperature, top_p, self.rng)

    def _cap_rest(self, logits: np.ndarray, temperature: float) -> None:
        """Lower REST so that, after temperature, it has at most ``entry_rest_cap`` of the mass."""
        others = np.delete(logits, REST)
        others = others[np.isfinite(others)]
        if not len(others):
            return
        t = max(temperature, 1e-3)
        cap = self.entry_rest_cap
        z = others / t
        limit = t * (np.log(cap / (1 - cap)) + z.max() + np.log(np.exp(z - z.max()).sum()))
        logits[REST] = min(logits[REST], limit)

    def _proposal(self, f0: int, toks: np.ndarray, gen: list[int], start_sounding: list) -> Proposal:
        t = self.grid.time
        n = len(toks)
        notes: list[ProposedNote] = []
        releases: dict[str, float] = {}
        for v in gen:
            name = VOICES[v]
            col = toks[:, v]
            open_start, open_pitch = None, None
            holding = start_sounding[v] is not None
            for k in range(n):
                tok = int(col[k])
                if tok == HOLD and (holding or open_start is not None):
                    continue
                if holding:
                    releases[name] = t(f0 + k)
                    holding = False
                if open_start is not None:
                    notes.append(ProposedNote(name, open_pitch, t(open_start), t(f0 + k)))
                    open_start = None
                if tok >= 2:
                    open_start, open_pitch = f0 + k, token_pitch(tok)
            if open_start is not None:
                notes.append(ProposedNote(name, open_pitch, t(open_start), None))
        notes.sort(key=lambda x: (x.start, VOICES.index(x.voice)))
        return Proposal(start=t(f0), end=t(f0 + n), voices=tuple(VOICES[v] for v in gen), notes=tuple(notes),
                        releases=releases, tokens=toks)

    # ----------------------------------------------------------- reading back

    def notes(self, voice: str, until: float | None = None) -> list[tuple[int, float, float | None]]:
        """The voice's notes so far as (pitch, start, end) in units (end None: sounding)."""
        line = self.lines[voice_index(voice)]
        t = self.grid.time
        out = []
        for s, e, p in zip(line.starts, line.ends, line.pitches):
            if until is not None and t(s) >= until:
                break
            out.append((p, t(s), None if e is None else t(e)))
        return out
