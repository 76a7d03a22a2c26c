"""From pitch frames to notes: the segmenter a musician has to trust.

Input: one :class:`Frame` per hop (time in analysis samples, f0, confidence, level).
Output: NoteOn / NoteOff / PitchBend decisions, each with the analysis sample it
refers to. Pure state machine, frame by frame, no look-ahead: the whole file and the
live stream give the same notes.

Rules, in musical units (see :class:`SegmenterSettings`):

* A note starts when the signal is voiced (pitch confidence and level above a gate
  that follows the room's noise floor) and its pitch has held within a few cents
  for ``settle_ms`` — or after ``max_wait_ms`` at the latest, with the pitch of the
  most recent frames (singers scoop into notes; the end of the scoop is the note).
* Vibrato (up to +-100 cents at 4-8 Hz) stays one note: a step of less than
  ``big_step`` semitones changes the note only when the pitch's mean over
  ``vibrato_ms`` has moved too.
* Slides and bends stay one note and move the pitch bend: a change of key needs a
  fast transition (``step_transition_ms``) or a pitch beyond the bend range.
* A repeated note is a new note when it is re-articulated: a dip in level, or a
  short unvoiced gap, followed by a rise.
* The player's tuning is followed (:class:`TuningTracker`) so a consistently sharp
  or flat player gets the keys they mean; bends carry the rest.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One analysis frame. ``time`` is the analysis sample at which it became available."""

    time: int
    f0: float
    confidence: float
    level_db: float


@dataclass(frozen=True, slots=True)
class Decision:
    """What the segmenter decided at a frame; times in analysis samples.

    kind: "on", "off" or "bend". For "on": ``pitch`` (key), ``cents`` (heard pitch
    minus key), ``velocity``, ``start`` (estimated onset), ``tuning``. For "off": ``pitch``
    and ``start`` (estimated end). For "bend": ``cents``.
    """

    kind: str
    time: int
    pitch: int = 0
    cents: float = 0.0
    velocity: int = 0
    start: int = 0
    tuning: float = 0.0


@dataclass(frozen=True)
class SegmenterSettings:
    confidence: float = 0.55        # voicing: tracker confidence at least this
    gate_db: float = -55.0          # and level at least this (dBFS) ...
    gate_above_floor_db: float = 14.0  # ... and this far above the noise floor
    min_voiced_ms: float = 12.0     # voiced this long before a note can start
    settle_ms: float = 12.0         # pitch held this long decides the note early
    settle_cents: float = 35.0      # "held": within this of the frames' median
    max_wait_ms: float = 45.0       # decide by then at the latest
    release_ms: float = 35.0        # unvoiced this long ends the note
    gap_ms: float = 10.0            # an unvoiced gap this long, then voice: re-articulation
    dip_db: float = 7.0             # level this far under the note's peak ...
    rise_db: float = 5.0            # ... then up by this much: re-articulation
    step_hold_ms: float = 30.0      # a new key must hold this long ...
    step_cents: float = 30.0        # ... within this of itself
    step_transition_ms: float = 90.0  # a transition slower than this is a slide/bend
    big_step: float = 1.6           # semitones: beyond any vibrato
    vibrato_ms: float = 160.0       # window for the vibrato-proof mean
    bend_range: float = 2.0         # semitones of pitch bend available
    bends: bool = True
    bend_step_cents: float = 4.0    # send a new bend when the pitch moved this much
    fixed_tuning: float | None = None  # cents; None follows the player


class TuningTracker:
    """The player's tuning offset in cents, from how their steady notes sit on the grid.

    A circular mean (period 100 cents) of steady-note deviations, weighted by duration
    and forgetting old notes, limited to A4 = 430-450 Hz (-39.8..+38.9 cents).
    """

    LOW = 1200.0 * math.log2(430.0 / 440.0)
    HIGH = 1200.0 * math.log2(450.0 / 440.0)

    def __init__(self, memory_notes: float = 8.0, initial: float = 0.0):
        self.decay = 1.0 - 1.0 / memory_notes
        self.initial = initial
        self.reset()

    def reset(self) -> None:
        self._re = 0.0
        self._im = 0.0
        self.cents = self.initial

    def add(self, deviations_cents: np.ndarray) -> None:
        """Fold in one steady stretch: deviations of its frames from 12-TET at A440."""
        if len(deviations_cents) == 0:
            return
        phase = 2.0 * np.pi * np.asarray(deviations_cents) / 100.0
        weight = min(len(deviations_cents), 40) / 40.0
        self._re = self.decay * self._re + weight * float(np.mean(np.cos(phase)))
        self._im = self.decay * self._im + weight * float(np.mean(np.sin(phase)))
        if math.hypot(self._re, self._im) < 0.2:
            return  # no consistent offset yet
        c = 100.0 * math.atan2(self._im, self._re) / (2.0 * math.pi)
        self.cents = min(max(c, self.LOW), self.HIGH)


class Segmenter:
    """Frames in, note decisions out. ``hop`` is the frame spacing in samples."""

    def __init__(self, sample_rate: int, hop: int, settings: SegmenterSettings | None = None,
                 lag: int = 0):
        self.s = settings or SegmenterSettings()
        self.sample_rate = sample_rate
        self.hop = hop
        self.lag = lag  # samples from a change in the audio to its first frame
        ms = lambda v: max(1, int(round(v * 1e-3 * sample_rate / hop)))  # noqa: E731
        self.n_min_voiced = ms(self.s.min_voiced_ms)
        self.n_settle = ms(self.s.settle_ms)
        self.n_max_wait = ms(self.s.max_wait_ms)
        self.n_release = ms(self.s.release_ms)
        self.n_gap = ms(self.s.gap_ms)
        self.n_step_hold = ms(self.s.step_hold_ms)
        self.n_transition = ms(self.s.step_transition_ms)
        self.n_vibrato = ms(self.s.vibrato_ms)
        self.tuning = TuningTracker(initial=self.s.fixed_tuning or 0.0)
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        self.tuning.reset()
        self.floor_db = -70.0
        self.note: int | None = None         # key sounding
        self.note_peak_db = -120.0
        self.note_frames: deque[float] = deque(maxlen=self.n_vibrato)  # midi of recent voiced frames
        self.note_start = 0
        self.note_steady: list[float] = []   # deviations (cents, A440 grid) of steady frames
        self.bend_sent = 0.0
        self.candidate: list[tuple[int, float, float]] = []  # (time, midi, level) since onset
        self.candidate_start = 0
        self.unvoiced_run = 0
        self.voiced_run = 0
        self.dip_min_db: float | None = None
        self.dip_time = 0
        self.away_since: int | None = None   # first frame of a departure from the key
        self.away_frames: list[tuple[int, float]] = []
        self.levels: deque[tuple[int, float]] = deque(maxlen=16)

    # ------------------------------------------------------------- helpers

    def _seconds_to_frames(self, n: int) -> int:
        return n * self.hop

    def _voiced(self, fr: Frame) -> bool:
        gate = max(self.s.gate_db, self.floor_db + self.s.gate_above_floor_db)
        return fr.confidence >= self.s.confidence and fr.level_db >= gate and fr.f0 > 0

    def _update_floor(self, fr: Frame) -> None:
        # Drops at once to a quieter level, rises slowly (1 dB/s) so notes never lift it much.
        rise = 1.0 * self.hop / self.sample_rate
        self.floor_db = min(fr.level_db, self.floor_db + rise) if fr.level_db > -120 else self.floor_db
        self.floor_db = max(self.floor_db, -100.0)

    def _tuning_cents(self) -> float:
        return self.s.fixed_tuning if self.s.fixed_tuning is not None else self.tuning.cents

    def _key(self, midi: float) -> int:
        return int(round(midi - self._tuning_cents() / 100.0))

    def _velocity(self, level_db: float) -> int:
        # 127 at -6 dBFS, falling 2.2 per dB; soft singing around -35 dBFS gives ~60.
        return int(min(127, max(1, round(127 + 2.2 * (level_db + 6.0)))))

    def _onset_time(self, first_voiced: int) -> int:
        """Back from the first voiced frame to where the level rose over the gate."""
        gate = max(self.s.gate_db, self.floor_db + self.s.gate_above_floor_db)
        t = first_voiced
        for time, level in reversed(self.levels):
            if time >= first_voiced:
                continue
            if level < gate - 6.0 or first_voiced - time > 4 * self.n_settle * self.hop:
                break
            t = time
        return max(0, t - self.lag)

    # --------------------------------------------------------------- main

    def process(self, fr: Frame) -> list[Decision]:
        out: list[Decision] = []
        voiced = self._voiced(fr)
        self._update_floor(fr)
        self.levels.append((fr.time, fr.level_db))
        midi = 69.0 + 12.0 * math.log2(fr.f0 / 440.0) if fr.f0 > 0 else 0.0
        if voiced:
            self.voiced_run += 1
        else:
            self.voiced_run = 0

        if self.note is None:
            self._idle(fr, voiced, midi, out)
        else:
            self._sounding(fr, voiced, midi, out)
        if voiced:
            self.unvoiced_run = 0
        else:
            self.unvoiced_run += 1
        return out

    def flush(self, time: int) -> list[Decision]:
        """End a sounding note at ``time`` (end of input)."""
        out: list[Decision] = []
        if self.note is not None:
            out.append(self._note_off(time, time))
        self.candidate = []
        return out

    # An onset is being confirmed: collect voiced frames until the pitch is clear.
    def _idle(self, fr: Frame, voiced: bool, midi: float, out: list[Decision]) -> None:
        if not voiced:
            if self.candidate and self.unvoiced_run + 1 >= self.n_gap:
                self.candidate = []  # a blip, not a note
            return
        if not self.candidate:
            self.candidate_start = self._onset_time(fr.time)
        self.candidate.append((fr.time, midi, fr.level_db))
        self._try_start(fr, out)

    def _try_start(self, fr: Frame, out: list[Decision]) -> None:
        n = len(self.candidate)
        if n < self.n_min_voiced:
            return
        recent = np.array([m for _, m, _ in self.candidate[-self.n_settle:]])
        med = float(np.median(recent))
        settled = n >= self.n_settle and np.all(np.abs(recent - med) * 100.0 <= self.s.settle_cents)
        if not settled and n < self.n_max_wait:
            return
        self._note_on(fr.time, med, self.candidate_start, max(l for _, _, l in self.candidate), out)
        self.candidate = []

    def _note_on(self, time: int, midi: float, start: int, level: float, out: list[Decision]) -> None:
        key = self._key(midi)
        cents = (midi - key) * 100.0
        self.note = key
        self.note_start = start
        self.note_peak_db = level
        self.note_frames.clear()
        self.note_frames.append(midi)
        self.note_steady = []
        self.bend_sent = cents if self.s.bends else 0.0
        self.dip_min_db = None
        self.away_since = None
        self.away_frames = []
        out.append(Decision("on", time, pitch=key, cents=cents if self.s.bends else 0.0,
                            velocity=self._velocity(level), start=start, tuning=self._tuning_cents()))

    def _note_off(self, time: int, end: int) -> Decision:
        key = self.note
        assert key is not None
        if self.s.fixed_tuning is None and self.note_steady:
            self.tuning.add(np.array(self.note_steady))
        self.note = None
        return Decision("off", time, pitch=key, start=end)

    def _sounding(self, fr: Frame, voiced: bool, midi: float, out: list[Decision]) -> None:
        if not voiced:
            if self.unvoiced_run + 1 >= self.n_release:
                end = fr.time - (self.unvoiced_run) * self.hop - self.lag
                out.append(self._note_off(fr.time, max(end, self.note_start + self.hop)))
                self.candidate = []
            elif self.dip_min_db is None:
                self.dip_min_db = fr.level_db
                self.dip_time = fr.time
            return

        # Re-articulation: a short unvoiced gap, or a level dip then a rise.
        gap = self.unvoiced_run >= self.n_gap
        if self.dip_min_db is None and fr.level_db < self.note_peak_db - self.s.dip_db:
            self.dip_min_db, self.dip_time = fr.level_db, fr.time
        elif self.dip_min_db is not None:
            if fr.level_db < self.dip_min_db:
                self.dip_min_db, self.dip_time = fr.level_db, fr.time
        rose = self.dip_min_db is not None and fr.level_db >= self.dip_min_db + self.s.rise_db \
            and self.dip_min_db < self.note_peak_db - self.s.dip_db
        if gap or rose:
            start = max(self.dip_time - self.lag, self.note_start + self.hop) if rose else fr.time - self.lag
            out.append(self._note_off(fr.time, start))
            self.candidate = [(fr.time, midi, fr.level_db)]
            self.candidate_start = start
            self._try_start(fr, out)
            return
        if self.dip_min_db is not None and fr.level_db >= self.note_peak_db - 2.0:
            self.dip_min_db = None  # recovered without a re-articulation
        self.note_peak_db = max(self.note_peak_db, fr.level_db)

        self.note_frames.append(midi)
        key = self.note
        assert key is not None
        dev = midi - self._tuning_cents() / 100.0 - key  # semitones from the key in the player's tuning
        if abs(dev) > 0.5 + 0.15:
            self._departure(fr, midi, dev, out)
            if self.note != key:
                return
        else:
            self.away_since = None
            self.away_frames = []
            if len(self.note_frames) >= self.n_settle:
                recent = np.array(list(self.note_frames)[-self.n_settle:])
                if np.ptp(recent) * 100.0 <= self.s.settle_cents:
                    self.note_steady.append((midi - round(midi)) * 100.0)

        if self.s.bends:
            cents = max(-100 * self.s.bend_range, min(100 * self.s.bend_range, (midi - key) * 100.0))
            if abs(cents - self.bend_sent) >= self.s.bend_step_cents:
                self.bend_sent = cents
                out.append(Decision("bend", fr.time, cents=cents))

    def _departure(self, fr: Frame, midi: float, dev: float, out: list[Decision]) -> None:
        """The pitch is more than half a semitone from the key: a new note, or a bend?"""
        if self.away_since is None:
            self.away_since = fr.time
        self.away_frames.append((fr.time, midi))
        new_key = self._key(midi)
        held = [m for _, m in self.away_frames if self._key(m) == new_key]
        tail = np.array([m for _, m in self.away_frames[-self.n_step_hold:]])
        if len(tail) < self.n_step_hold or np.ptp(tail) * 100.0 > 2 * self.s.step_cents:
            return
        if any(self._key(m) != new_key for m in tail):
            return
        # The pitch has held on a new key. How fast did it get there?
        first_on_new = next(t for t, m in self.away_frames if self._key(m) == new_key)
        transition = (first_on_new - self.away_since) // self.hop
        beyond_bend = abs(midi - self.note) > self.s.bend_range
        fast = transition <= self.n_transition
        if not (fast or beyond_bend):
            return  # a slide or bend: the bend messages carry it
        if abs(dev) < self.s.big_step:
            mean = float(np.mean(self.note_frames))
            if abs(mean - self._tuning_cents() / 100.0 - self.note) < 0.5:
                return  # could still be vibrato around the old key
        del held
        start = self.away_since - self.lag
        out.append(self._note_off(fr.time, max(start, self.note_start + self.hop)))
        level = max(l for _, l in list(self.levels)[-4:])
        self._note_on(fr.time, float(np.median(tail)), start, level, out)
        self.note_peak_db = level
