"""From pitch frames to notes: the segmenter a musician has to trust.

Input: one :class:`Frame` per hop (time in analysis samples, f0, confidence, level).
Output: note decisions (on / off / bend), each with the analysis sample it refers to.
A pure state machine, frame by frame, with no look-ahead: the whole file and the live
stream give the same notes.

The rules, in musical units (see :class:`SegmenterSettings`):

* Voiced means: the tracker is confident and the level clears a gate that follows the
  room. The gate sits ``gate_above_floor_db`` over the noise floor (the quietest level
  of the last few seconds outside notes), so hum, breath and room noise make no notes.
* A note starts once the signal has been voiced for ``min_voiced_ms`` and its pitch has
  held within ``settle_cents`` for ``settle_ms`` — or after ``max_wait_ms`` at the
  latest, with the pitch of the most recent frames (singers scoop into notes).
* A note ends after ``release_ms`` unvoiced. A short unvoiced gap, or a dip in level
  followed by a rise, inside a note re-articulates it: a repeated note is a new note.
  So does a fast fall and rise of the level back to where it was (``reattack_db``),
  even on the same pitch: tonguing, a bow change, a re-plucked string.
* A new key reached through frames outside the span between the old and the new key
  (the tracker lost the old pitch in the overlap of a ringing release and a slow attack)
  starts where the old pitch was lost, at most ``lost_ms`` before the new key arrived.
* Early in a note (``octave_retake_ms``), a move of an octave, twelfth or two octaves
  that holds ``octave_hold_ms`` corrects the key, keeping the onset: the tracker's
  octave error during the attack, not a new note.
* A change of pitch inside a note becomes a new note only when the pitch *jumped*
  (moved ``jump_semitones`` within ``jump_ms``) and then held on the new key for
  ``hold_ms``. A slow glide is a slide or bend and stays one note, carried by pitch
  bend, until it goes beyond the bend range. With bends off, a glide that holds on a
  new key is quantised to a new note.
* Vibrato (up to +-100 cents at 4-8 Hz) stays one note: while the pitch oscillates,
  a step smaller than ``big_step`` needs the pitch's mean over ``vibrato_ms`` to move
  too. Octave slips of the tracker must hold ``octave_hold_ms`` to count.
* The player's tuning is followed (:class:`TuningTracker`) so a consistently sharp or
  flat player gets the keys they mean; pitch bend carries the rest.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
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

    kind "on": ``pitch`` (key), ``cents`` (heard pitch minus key, A440 grid),
    ``velocity``, ``start`` (estimated onset), ``tuning`` (cents).
    kind "off": ``pitch`` and ``start`` (estimated end). kind "bend": ``cents``.
    """

    kind: str
    time: int
    pitch: int = 0
    cents: float = 0.0
    velocity: int = 0
    start: int = 0
    tuning: float = 0.0
    why: str = ""  # what started or ended the note: voice, gap, dip, jump, glide, retake, release, end


@dataclass(frozen=True)
class SegmenterSettings:
    confidence: float | None = None  # voicing threshold to go on; None: the tracker's own
    start_confidence: float | None = None  # threshold to start a note; None: the tracker's own
    far_semitones: float = 3.0       # inside a note, a frame this far off the key ...
    far_confidence: float = 0.85     # ... needs this confidence to count as voiced
    gate_db: float = -60.0           # level never below this (dBFS) ...
    gate_above_floor_db: float = 14.0  # ... and this far over the noise floor
    floor_seconds: float = 3.0       # the floor is the quietest non-note level this far back
    min_voiced_ms: float = 12.0      # voiced this long before a note can start
    settle_ms: float = 12.0          # pitch held this long decides the note early ...
    settle_cents: float = 35.0       # ... "held" meaning within this of the frames' median
    settle_slope_cents: float = 20.0  # ... and moving less than this across them
    max_wait_ms: float = 45.0        # decide by then at the latest
    arrival_cents: float = 60.0      # the note starts where its pitch first comes this close
    reach_fraction: float = 0.75     # onset: this much of the tracker's reach before the first pitched frame
    lost_ms: float = 100.0           # a new key's onset goes back at most this far to where the
                                     # tracker lost the old pitch (a crossfade's mixed period)
    release_ms: float = 30.0         # unvoiced this long ends the note
    reattack_db: float | None = 8.0  # the level fell this far within reattack_fall_ms and came back
    reattack_fall_ms: float = 60.0   # ... as high within reattack_rise_ms: a re-attack (tonguing,
    reattack_rise_ms: float = 40.0   # ... a bow change, a re-plucked string), even on the same pitch
    reattack_guard_ms: float = 50.0  # ... once the note's own attack is this far behind
    reattack_back_db: float = 0.0    # ... "as high": to within this of the level before the fall
    gap_ms: float = 10.0             # an unvoiced gap this long, then voice, may re-articulate
    gap_dip_db: float = 6.0          # ... if the level fell this far under the note's peak in it
    dip_db: float = 10.0             # a voiced dip this far under the note's peak ...
    rise_db: float = 6.0             # ... then back up by this much may re-articulate
    strong_db: float = 16.0          # a dip or gap this deep re-articulates the same pitch; a
                                     # shallower one only a new pitch (a swell is no new note)
    jump_semitones: float = 0.6      # a note change needs the pitch to move this much ...
    jump_ms: float = 50.0            # ... within this long,
    scoop_ms: float = 120.0          # or, this early in a note (singers scoop and fall into it),
    scoop_jump_ms: float = 20.0      # ... within this long
    fall_db: float = 10.0            # a pitch change while the level fades this much is the note's end
    hold_ms: float = 30.0            # and then hold on the new key this long ...
    hold_cents: float = 30.0         # ... within this of its median,
    plateau_ms: float = 60.0         # after the old key itself held this long
    quantise_hold_ms: float = 60.0   # bends off: a glide held this long on a new key is a new note
    octave_hold_ms: float = 150.0    # an octave (or twelfth) away must hold this long
    octave_retake_ms: float | None = 150.0  # an octave (twelfth, two octaves) that holds, reached
                                     # without a re-attack this early in a note: the first guess
                                     # was the tracker's octave error; the key is corrected
    retake_ms: float = 80.0          # this early in a note, a pitch that never held on its key ...
    retake_hold_ms: float = 15.0     # ... and then holds this long on another one, beyond the bend
                                     # range (any other key with bends off), corrects the key
    big_step: float = 1.6            # semitones: a step no vibrato reaches
    vibrato_ms: float = 160.0        # window of the vibrato-proof mean
    vibrato_min_cents: float = 25.0  # oscillation this wide counts as vibrato
    bend_range: float = 2.0          # semitones of pitch bend available
    bends: bool = True
    bend_step_cents: float = 4.0     # a new bend message when the pitch moved this much
    fixed_tuning: float | None = None  # cents; None: follow the player


class TuningTracker:
    """The player's tuning offset in cents, from where their notes sit on the grid.

    Each finished note gives one deviation from 12-TET at A440: the median of its pitch
    after the attack (the centre of a vibrato, the plateau of a scooped note). The
    estimate is a circular mean (period 100 cents) of these, weighted by duration and
    forgetting old notes, adopted once about two notes' worth agree, and limited to
    A4 = 430-450 Hz (-39.8..+38.9 cents).
    """

    LOW = 1200.0 * math.log2(430.0 / 440.0)
    HIGH = 1200.0 * math.log2(450.0 / 440.0)

    def __init__(self, memory_notes: float = 8.0, initial: float = 0.0, min_weight: float = 1.5,
                 min_agreement: float = 0.5):
        self.decay = 1.0 - 1.0 / memory_notes
        self.initial = initial
        self.min_weight = min_weight
        self.min_agreement = min_agreement
        self.reset()

    def reset(self) -> None:
        self._re = 0.0
        self._im = 0.0
        self._weight = 0.0
        self.cents = self.initial

    def add(self, deviation_cents: float, weight: float = 1.0) -> None:
        """Fold in one note: its deviation from 12-TET at A440 and its weight (0..1)."""
        phase = 2.0 * np.pi * deviation_cents / 100.0
        self._re = self.decay * self._re + weight * math.cos(phase)
        self._im = self.decay * self._im + weight * math.sin(phase)
        self._weight = self.decay * self._weight + weight
        if self._weight < self.min_weight or math.hypot(self._re, self._im) < self.min_agreement * self._weight:
            return  # not enough notes yet, or they disagree
        c = 100.0 * math.atan2(self._im, self._re) / (2.0 * math.pi)
        self.cents = min(max(c, self.LOW), self.HIGH)


class NoiseFloor:
    """The quietest level (dBFS) among the last ``size`` frames heard outside notes.

    Digital silence (below -90 dBFS) is ignored so a file that starts with zeros does
    not pin the floor down. A sliding minimum over a monotonic deque.
    """

    def __init__(self, size: int):
        self.size = size
        self.reset()

    def reset(self) -> None:
        self._count = 0
        self._mins: deque[tuple[int, float]] = deque()

    def add(self, level_db: float) -> None:
        if level_db < -90.0:
            return
        while self._mins and self._mins[-1][1] >= level_db:
            self._mins.pop()
        self._mins.append((self._count, level_db))
        self._count += 1
        while self._mins[0][0] <= self._count - self.size:
            self._mins.popleft()

    @property
    def db(self) -> float:
        return self._mins[0][1] if self._mins else -120.0

    @property
    def known(self) -> bool:
        """Whether any level (above digital silence) was heard."""
        return bool(self._mins)


class Segmenter:
    """Frames in, note decisions out. ``hop`` is the frame spacing in samples."""

    def __init__(self, sample_rate: int, hop: int, settings: SegmenterSettings | None = None,
                 confidence: float = 0.6, start_confidence: float = 0.8, onset_offset: int = 0,
                 reach: Callable[[float], int] | None = None):
        self.s = settings or SegmenterSettings()
        self.sample_rate = sample_rate
        self.hop = hop
        self.confidence = self.s.confidence if self.s.confidence is not None else confidence
        self.start_confidence = max(self.confidence, self.s.start_confidence if self.s.start_confidence
                                    is not None else start_confidence)
        self.onset_offset = onset_offset  # samples from a level rise to the true onset
        self.reach = reach or (lambda f0: 0)  # samples a pitched frame at f0 Hz looked back
        frames = lambda ms: max(1, int(round(ms * 1e-3 * sample_rate / hop)))  # noqa: E731
        self.n_min_voiced = frames(self.s.min_voiced_ms)
        self.n_settle = frames(self.s.settle_ms)
        self.n_attack = frames(40.0)          # tuning: a note's pitch after its first 40 ms ...
        self.n_tuning_min = frames(40.0)      # ... counts when it lasts 40 ms on its key
        self.n_tuning_full = frames(200.0)    # ... and fully from 200 ms
        self.n_max_wait = frames(self.s.max_wait_ms)
        self.n_release = frames(self.s.release_ms)
        self.n_gap = frames(self.s.gap_ms)
        self.n_jump = frames(self.s.jump_ms)
        self.n_scoop = frames(self.s.scoop_ms)
        self.n_scoop_jump = frames(self.s.scoop_jump_ms)
        self.n_hold = frames(self.s.hold_ms)
        self.n_plateau = frames(self.s.plateau_ms)
        self.n_quantise = frames(self.s.quantise_hold_ms)
        self.n_octave = frames(self.s.octave_hold_ms)
        self.n_retake = frames(self.s.retake_ms)
        self.n_retake_hold = frames(self.s.retake_hold_ms)
        self.n_vibrato = frames(self.s.vibrato_ms)
        self.n_fall = frames(self.s.reattack_fall_ms)
        self.n_rise = frames(self.s.reattack_rise_ms)
        self.n_reattack_guard = frames(self.s.reattack_guard_ms)
        self.floor = NoiseFloor(frames(1000.0 * self.s.floor_seconds))
        self.tuning = TuningTracker(initial=self.s.fixed_tuning or 0.0)
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        self.tuning.reset()
        self.floor.reset()
        self.gate_db = self.s.gate_db
        self.note: int | None = None          # key sounding
        self.note_start = 0
        self.note_peak_db = -120.0
        self.pitches: deque[tuple[int, float]] = deque(maxlen=self.n_vibrato)  # (time, midi) voiced, in note
        self.steady: list[float] = []         # pitches (MIDI) of the note's on-key frames after its attack
        self.bend_sent = 0.0
        self.away: list[tuple[int, float]] = []  # frames since the pitch left the key
        self.plateau = False                  # the pitch has held on the key at some point
        self.retaken = False                  # the key of this note was corrected once
        self.candidate: list[tuple[int, float, float]] = []  # (time, midi, level) since an onset
        self.candidate_start = 0
        self.candidate_why = "voice"
        self.unvoiced_run = 0
        self.dip_db: float | None = None
        self.dip_time = 0
        self.pending: list[tuple[int, float, float]] | None = None  # frames since a possible re-attack
        self.pending_why = ""
        self.pending_strong = False
        self.pending_start = 0
        self.pending_end = 0
        self.levels: deque[tuple[int, float]] = deque(maxlen=16)
        self.recent_levels: deque[tuple[int, float]] = deque(maxlen=self.n_fall + self.n_rise + 1)

    # -------------------------------------------------------------- helpers

    def _tuning(self) -> float:
        return self.s.fixed_tuning if self.s.fixed_tuning is not None else self.tuning.cents

    @property
    def tuning_cents(self) -> float:
        """The player's tuning offset in force, in cents from A4 = 440 Hz."""
        return self._tuning()

    def voiced(self, fr: Frame) -> bool:
        """Whether ``fr`` clears the voicing confidence and the level gate now in force."""
        return fr.confidence >= self.confidence and fr.level_db >= self.gate_db and fr.f0 > 0

    def _key(self, midi: float) -> int:
        return int(round(midi - self._tuning() / 100.0))

    @staticmethod
    def _velocity(level_db: float) -> int:
        # 127 at -6 dBFS, 2.2 per dB below: soft singing near -35 dBFS gives about 63.
        return int(min(127, max(1, round(127 + 2.2 * (level_db + 6.0)))))

    def _onset_time(self, first_voiced: int, f0: float = 0.0) -> int:
        """When a note first heard at frame ``first_voiced`` began.

        A frame is pitched once most of the audio it analysed belongs to the note, so the
        onset lies about ``reach_fraction`` of the tracker's reach at that pitch before it
        (two periods for YIN: far more for a low E than for a voice), but not before the
        level last rose through the gate.
        """
        back = max(self.onset_offset, int(self.s.reach_fraction * self.reach(f0))) if f0 > 0 else self.onset_offset
        onset = first_voiced - back
        rise = first_voiced - self.onset_offset
        for t, level in reversed(self.levels):
            if t >= first_voiced:
                continue
            if level < self.gate_db:
                break
            rise = t - self.onset_offset
        return max(0, onset, rise)

    # ----------------------------------------------------------------- main

    def process(self, fr: Frame) -> list[Decision]:
        out: list[Decision] = []
        self.gate_db = max(self.s.gate_db, self.floor.db + self.s.gate_above_floor_db)
        midi = 69.0 + 12.0 * math.log2(fr.f0 / 440.0) if fr.f0 > 0 else 0.0
        if self.note is None and not self.candidate:
            needed = self.start_confidence
        elif self.note is not None and abs(midi - self.note) > self.s.far_semitones:
            needed = max(self.s.far_confidence, self.confidence)
        else:
            needed = self.confidence
        voiced = fr.confidence >= needed and fr.level_db >= self.gate_db and fr.f0 > 0
        self.levels.append((fr.time, fr.level_db))
        self.recent_levels.append((fr.time, fr.level_db))
        if self.note is None:
            self._idle(fr, voiced, midi, out)
        else:
            self._sounding(fr, voiced, midi, out)
        if self.note is None and not self.candidate and (self.floor.known or fr.level_db < self.gate_db):
            # while no room noise has been heard (a take that starts from digital silence), a
            # level over the gate is a note starting, not the room: it would lift the gate over it
            self.floor.add(fr.level_db)
        self.unvoiced_run = 0 if voiced else self.unvoiced_run + 1
        return out

    def flush(self, time: int) -> list[Decision]:
        """End of input: end a sounding note at ``time``."""
        out: list[Decision] = []
        if self.note is not None:
            out.append(self._note_off(time, time, "end"))
        self.candidate = []
        return out

    # -------------------------------------------------- no note: onsets

    def _idle(self, fr: Frame, voiced: bool, midi: float, out: list[Decision]) -> None:
        if not voiced:
            if self.candidate and self.unvoiced_run + 1 >= self.n_gap:
                self.candidate = []  # a blip, not a note
            return
        if not self.candidate:
            self.candidate_start = self._onset_time(fr.time, fr.f0)
            self.candidate_why = "voice"
        self.candidate.append((fr.time, midi, fr.level_db))
        self._try_start(fr, out)

    def _try_start(self, fr: Frame, out: list[Decision]) -> None:
        n = len(self.candidate)
        if n < self.n_min_voiced:
            return
        recent = np.array([m for _, m, _ in self.candidate[-self.n_settle:]])
        med = float(np.median(recent))
        settled = (n >= self.n_settle and float(np.max(np.abs(recent - med))) * 100.0 <= self.s.settle_cents
                   and abs(recent[-1] - recent[0]) * 100.0 <= self.s.settle_slope_cents)
        if not settled and n < self.n_max_wait:
            return
        level = max(lv for _, _, lv in self.candidate)
        start = self._arrival(self.candidate, med, self.candidate_start, first_is_onset=True)
        self._note_on(fr.time, med, start, level, out, self.candidate_why)
        self.candidate = []

    def _arrival(self, frames: list[tuple[int, float, float]], midi: float, start: int,
                 first_is_onset: bool = False) -> int:
        """When the pitch first came near ``midi``: a note sung with a scoop or a fall into
        it is heard from when it arrives, not from the first voiced sound."""
        for i, (t, m, _) in enumerate(frames):
            if abs(m - midi) * 100.0 <= self.s.arrival_cents:
                return start if i == 0 and first_is_onset else max(start, t - self.onset_offset)
        return start

    def _note_on(self, time: int, midi: float, start: int, level: float, out: list[Decision],
                 why: str = "voice") -> None:
        key = self._key(midi)
        cents = (midi - key) * 100.0 if self.s.bends else 0.0
        self.note = key
        self.note_start = start
        self.note_peak_db = level
        self.pitches.clear()
        self.pitches.append((time, midi))
        self.steady = []
        self.bend_sent = cents
        self.dip_db = None
        self.away = []
        self.plateau = False
        self.retaken = why == "retake"
        out.append(Decision("on", time, pitch=key, cents=cents, velocity=self._velocity(level),
                            start=start, tuning=self._tuning(), why=why))

    def _note_off(self, time: int, end: int, why: str) -> Decision:
        key = self.note
        assert key is not None
        if self.s.fixed_tuning is None and len(self.steady) >= self.n_tuning_min:
            centre = float(np.median(self.steady))
            self.tuning.add(100.0 * (centre - round(centre)), min(len(self.steady) / self.n_tuning_full, 1.0))
        self.note = None
        return Decision("off", time, pitch=key, start=max(end, self.note_start + self.hop), why=why)

    # ------------------------------------------------ a note is sounding

    def _sounding(self, fr: Frame, voiced: bool, midi: float, out: list[Decision]) -> None:
        if not voiced:
            if self.unvoiced_run + 1 >= self.n_release:
                end = fr.time - self.unvoiced_run * self.hop - self.onset_offset
                out.append(self._note_off(fr.time, end, "release"))
                self.candidate = []
                self.pending = None
            elif self.dip_db is None or fr.level_db < self.dip_db:
                self.dip_db, self.dip_time = fr.level_db, fr.time
            return
        if self.pending is None:
            why, depth = self._rearticulated(fr)
            if why:
                # A dip re-attacks from its quietest point; after a gap the voice returns now.
                start = self.dip_time if why == "dip" else fr.time
                self.pending_start = max(start - self.onset_offset, self.note_start + self.hop)
                self.pending_end = (fr.time - self.unvoiced_run * self.hop - self.onset_offset
                                    if why == "gap" else self.pending_start)
                self.pending, self.pending_why = [], why
                self.pending_strong = depth >= self.s.strong_db
                self.dip_db = None
        if self.pending is not None:
            self.pending.append((fr.time, midi, fr.level_db))
            self._resolve_pending(fr, out)
            return
        self.note_peak_db = max(self.note_peak_db, fr.level_db)
        self.pitches.append((fr.time, midi))
        key = self.note
        assert key is not None
        dev = midi - self._tuning() / 100.0 - key
        if abs(dev) > 0.65:
            self.away.append((fr.time, midi))
            if self._changed_key(fr, out):
                return
        else:
            self.away = []
            if fr.time - self.note_start >= self.n_attack * self.hop:
                self.steady.append(midi)
            held = [m for _, m in list(self.pitches)[-self.n_plateau:]]
            if len(held) >= self.n_plateau and (max(held) - min(held)) * 100.0 <= 2 * self.s.hold_cents \
                    and all(self._key(m) == key for m in held):
                self.plateau = True
        if self.s.bends:
            cents = max(-100.0 * self.s.bend_range, min(100.0 * self.s.bend_range, (midi - key) * 100.0))
            if abs(cents - self.bend_sent) >= self.s.bend_step_cents:
                self.bend_sent = cents
                out.append(Decision("bend", fr.time, cents=cents))

    def _rearticulated(self, fr: Frame) -> tuple[str, float]:
        """("gap" | "dip", depth in dB) when a possible re-attack just happened, else ("", 0)."""
        if self.unvoiced_run == 0 and self._reattacked():
            return "dip", math.inf
        if self.unvoiced_run >= self.n_gap and self.dip_db is not None:
            depth = self.note_peak_db - self.dip_db
            if depth >= self.s.gap_dip_db:
                return "gap", depth
            self.dip_db = None  # a dropout of the tracker, not of the sound
            return "", 0.0
        if fr.level_db < self.note_peak_db - self.s.dip_db:
            if self.dip_db is None or fr.level_db < self.dip_db:
                self.dip_db, self.dip_time = fr.level_db, fr.time
            return "", 0.0
        if self.dip_db is not None:
            depth = self.note_peak_db - self.dip_db
            if depth >= self.s.dip_db and fr.level_db >= self.dip_db + self.s.rise_db:
                return "dip", depth
            if fr.level_db >= self.note_peak_db - 2.0:
                self.dip_db = None  # recovered without re-articulating
        return "", 0.0

    def _reattacked(self) -> bool:
        """The level fell fast and came back as fast, as high as before: the player attacked
        again (tonguing, a bow change, a re-plucked string), even on the same pitch.

        Levels are averaged over at least one period of the note first, so the ripple of a
        low note in the 10 ms level meter is no dip. The time of the dip's bottom is kept
        as the new note's onset.
        """
        if self.s.reattack_db is None:
            return False
        hist = [(t, lv) for t, lv in self.recent_levels if t > self.note_start]
        if len(hist) < self.n_reattack_guard:
            return False  # the note's own attack
        assert self.note is not None
        period = self.sample_rate / (440.0 * 2.0 ** ((self.note + self._tuning() / 100.0 - 69.0) / 12.0))
        k = max(1, int(math.ceil((period - 2 * self.onset_offset) / self.hop)) + 1)
        lv = np.array([v for _, v in hist])
        if k > 1:  # mean power over the last k frames
            c = np.concatenate([[0.0], np.cumsum(10.0 ** (lv / 10.0))])
            idx = np.arange(len(lv))
            lo = np.maximum(0, idx - k + 1)
            lv = 10.0 * np.log10(np.maximum((c[idx + 1] - c[lo]) / (idx + 1 - lo), 1e-12))
        first = len(lv) - self.n_rise - 1
        i = max(first, 0) + int(np.argmin(lv[max(first, 0):]))
        if i == len(lv) - 1:
            return False  # still falling
        before = lv[max(0, i - self.n_fall):i]
        if len(before) == 0:
            return False
        d = self.s.reattack_db
        if float(np.max(before)) - lv[i] >= d and lv[-1] >= float(np.max(before)) - self.s.reattack_back_db:
            self.dip_time = hist[i][0]
            return True
        return False

    def _resolve_pending(self, fr: Frame, out: list[Decision]) -> None:
        """After a possible re-attack: a new note once its pitch is clear, or the same one going on."""
        assert self.pending is not None and self.note is not None
        frames = self.pending
        recent = np.array([m for _, m, _ in frames[-self.n_settle:]])
        med = float(np.median(recent))
        settled = (len(frames) >= max(self.n_settle, self.n_min_voiced)
                   and float(np.max(np.abs(recent - med))) * 100.0 <= self.s.settle_cents
                   and abs(recent[-1] - recent[0]) * 100.0 <= self.s.settle_slope_cents)
        if not settled and len(frames) < self.n_max_wait:
            return
        self.pending = None
        if self.pending_strong or self._key(med) != self.note:
            same = self._key(med) == self.note
            out.append(self._note_off(fr.time, self.pending_end, self.pending_why))
            level = max(lv for _, _, lv in frames)
            # the same key again: the pitch never left, the re-attack (the dip) is the onset
            start = self._arrival(frames, med, self.pending_start, first_is_onset=same)
            self._note_on(fr.time, med, start, level, out, self.pending_why)
            for t, m, _ in frames:
                self.pitches.append((t, m))
            return
        for t, m, lv in frames:  # a swell or a dropout: the note goes on
            self.pitches.append((t, m))
            self.note_peak_db = max(self.note_peak_db, lv)

    def _vibrato(self) -> bool:
        """The pitch has oscillated around its mean lately (two crossings, wide enough)."""
        if len(self.pitches) < self.n_vibrato // 2:
            return True  # too little history to rule it out
        m = np.array([p for _, p in self.pitches])
        d = m - m.mean()
        crossings = int(np.count_nonzero(np.diff(np.sign(d)) != 0))
        return crossings >= 2 and float(np.ptp(m)) * 100.0 >= 2 * self.s.vibrato_min_cents

    def _retake(self, fr: Frame, out: list[Decision]) -> bool:
        """Early in a note whose pitch never held on its key: correct a wrong first guess."""
        key = self.note
        assert key is not None
        if self.retaken or self.plateau or fr.time - self.note_start > self.n_retake * self.hop:
            return False
        if len(self.away) < self.n_retake_hold:
            return False
        tail = np.array([m for _, m in self.away[-self.n_retake_hold:]])
        med = float(np.median(tail))
        new_key = self._key(med)
        if new_key == key or float(np.max(np.abs(tail - med))) * 100.0 > self.s.hold_cents:
            return False
        if self.s.bends and abs(med - key) <= self.s.bend_range:
            return False  # the bend carries it
        out.append(self._note_off(fr.time, fr.time, "retake"))
        level = max(lv for _, lv in list(self.levels)[-4:])
        self._note_on(fr.time, med, self.note_start, max(level, self.note_peak_db), out, "retake")
        return True

    def _lost(self, arrival: int, new: float) -> int:
        """When a new key arriving at ``arrival`` began: where the tracker lost the old pitch.

        A slow attack or a ringing release overlaps the old note and the new one; the mixture
        is periodic at their common period (a third gives two octaves under), or at a
        harmonic, so the pitch leaves the span between the two keys before the new key
        wins. Such a frame, no more than ``lost_ms`` before the arrival, is the new note's
        onset. A glide or scoop, which stays between the keys, starts the note on arrival.
        """
        assert self.note is not None
        lo, hi = min(self.note, new) - 0.5, max(self.note, new) + 0.5
        limit = arrival - int(self.s.lost_ms * 1e-3 * self.sample_rate)
        shift = self._tuning() / 100.0
        for t, m in self.away:
            if t >= arrival:
                break
            if t >= limit and not lo <= m - shift <= hi:
                return t
        return arrival

    def _changed_key(self, fr: Frame, out: list[Decision]) -> bool:
        """The pitch is off the key: decide whether it is a new note (and start it)."""
        key = self.note
        assert key is not None
        if self._retake(fr, out):
            return True
        if len(self.away) < self.n_hold:
            return False
        tail = np.array([m for _, m in self.away[-self.n_hold:]])
        med = float(np.median(tail))
        new_key = self._key(med)
        if new_key == key or float(np.max(np.abs(tail - med))) * 100.0 > self.s.hold_cents:
            return False
        if abs(tail[-1] - tail[0]) * 100.0 > self.s.hold_cents:
            return False  # still gliding
        levels = [lv for _, lv in list(self.levels)[-self.n_hold:]]
        if float(np.mean(levels)) < self.note_peak_db - self.s.fall_db:
            return False  # the pitch sags as the note fades: not a new note
        run = 0
        for _, m in reversed(self.away):
            if self._key(m) != new_key:
                break
            run += 1
        if abs(new_key - key) in (12, 19, 24, 28) and run < self.n_octave:
            return False  # the tracker may have slipped to a harmonic
        hist = list(self.pitches)
        first_away = self.away[0][0]
        if (self.s.octave_retake_ms is not None and abs(new_key - key) in (12, 19, 24)
                and first_away - self.note_start <= self.s.octave_retake_ms * 1e-3 * self.sample_rate):
            # (a re-attack on the way would have ended this note before: see _rearticulated)
            out.append(self._note_off(fr.time, fr.time, "retake"))
            level = max(lv for _, lv in list(self.levels)[-4:])
            self._note_on(fr.time, med, self.note_start, max(level, self.note_peak_db), out, "retake")
            return True
        early = first_away - self.note_start < self.n_scoop * self.hop
        span = (self.n_scoop_jump if early else self.n_jump) * self.hop
        jumped = _moved_within(hist, first_away - span, span, self.s.jump_semitones)
        beyond_bend = abs(med - key) > self.s.bend_range + 0.5
        quantise = not self.s.bends and run >= self.n_quantise
        # A jump away from a key the pitch never held on is the end of a scoop or fall into
        # this note, not a new one; bends carry it (with bends off it is quantised).
        jumped = jumped and self.plateau
        if not (jumped or beyond_bend or quantise):
            return False  # a slide or bend: the pitch-bend messages carry it
        if abs(med - self._tuning() / 100.0 - key) < self.s.big_step and self._vibrato():
            centre = float(np.mean([m for _, m in hist]))
            if abs(centre - self._tuning() / 100.0 - key) < 0.5:
                return False  # could still be vibrato around the old key
        why = "jump" if jumped else "glide"
        # The new note is heard from when the pitch arrived on its key (or the old one was lost).
        start = self._lost(self.away[-run][0], med - self._tuning() / 100.0) - self.onset_offset
        out.append(self._note_off(fr.time, first_away - self.onset_offset, why))
        level = max(lv for _, lv in list(self.levels)[-4:])
        self._note_on(fr.time, med, max(start, 0), level, out, why)
        return True


def _moved_within(history: list[tuple[int, float]], since: int, span: int, semitones: float) -> bool:
    """Whether the pitch moved ``semitones`` within ``span`` samples anywhere after ``since``."""
    pts = [(t, m) for t, m in history if t >= since]
    j = 0
    for i, (t, m) in enumerate(pts):
        j = max(j, i)
        while j + 1 < len(pts) and pts[j + 1][0] - t <= span:
            j += 1
        window = [p for _, p in pts[i:j + 1]]
        if max(window) - min(window) >= semitones:
            return True
    return False
