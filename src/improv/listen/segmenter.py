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

How it is built: the segmenter is in one of four phases (:class:`Phase`) — idle, an
onset (a sound that may become a note), a sounding note, and a re-attack (inside a note,
a possible re-articulation whose pitch is still settling) — each with its own small
state record. Two detectors watch a sounding note and only decide; the segmenter acts:
:class:`ReattackDetector` (a gap, a dip and rise, a fast fall and rise of the level) and
:class:`KeyChangeDetector` (the pitch leaving the key: a new note, a corrected first
guess, or a bend). Each has ``process`` and ``reset``; every constant is in
:class:`SegmenterSettings`.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One analysis frame. ``time`` is the analysis sample at which it became available."""

    time: int
    f0: float
    confidence: float
    level_db: float


@dataclass(frozen=True, slots=True)
class NoteStart:
    """A note starts: ``pitch`` (key), ``cents`` (heard pitch minus key, A440 grid),
    ``onset`` (estimated start), ``tuning`` (the player's offset in cents), and what
    started it (``why``: voice, gap, dip, jump, glide, retake). Times in analysis samples."""

    time: int
    pitch: int
    cents: float
    velocity: int
    onset: int
    tuning: float
    why: str

    @property
    def retake(self) -> bool:
        """This note corrects the one that just ended (a wrong first guess)."""
        return self.why == "retake"


@dataclass(frozen=True, slots=True)
class NoteEnd:
    """A note ends: ``pitch`` (its key) at ``end`` (estimated), for ``why`` (gap, dip,
    jump, glide, retake, release, end)."""

    time: int
    pitch: int
    end: int
    why: str


@dataclass(frozen=True, slots=True)
class Bend:
    """The sounding note's pitch moved: ``cents`` from its key."""

    time: int
    cents: float


Decision = NoteStart | NoteEnd | Bend


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
    retake_bends: bool = False       # ... or on any other key even within the bend range (a scoop
                                     # decided early is corrected by a retake, not only bent)
    big_step: float = 1.6            # semitones: a step no vibrato reaches
    vibrato_ms: float = 160.0        # window of the vibrato-proof mean
    vibrato_min_cents: float = 25.0  # oscillation this wide counts as vibrato
    bend_range: float = 2.0          # semitones of pitch bend available
    bends: bool = True
    bend_step_cents: float = 4.0     # a new bend message when the pitch moved this much
    fixed_tuning: float | None = None  # cents; None: follow the player
    attack_ms: float = 40.0          # tuning: a note's pitch counts after its first attack_ms ...
    tuning_min_ms: float = 40.0      # ... once the note lasted this long on its key ...
    tuning_full_ms: float = 200.0    # ... and fully from this long
    off_key_semitones: float = 0.65  # a frame this far from the key (after tuning) is away from it
    recover_db: float = 2.0          # a dip is over, without re-articulating, back within this of the peak
    level_frames: int = 16           # frames of level history (an onset goes back to the level's rise)
    retake_level_frames: int = 4     # a corrected or changed note's velocity: loudest of these last frames
    slip_intervals: tuple[int, ...] = (12, 19, 24, 28)  # a harmonic the tracker may slip to (must hold)
    octave_retake_intervals: tuple[int, ...] = (12, 19, 24)  # early, these correct the key (retake)
    velocity_top_db: float = -6.0    # velocity 127 at this level ...
    velocity_per_db: float = 2.2     # ... and this much less per dB below it
    silence_db: float = -90.0        # digital silence: left out of the noise floor


# When a note is sent (``--decide``): the trade between latency and a right first key.
# "early": at the first confident frame, a legato key change after 15 ms on the new key,
# corrected afterwards by bends and retakes (a scoop's key is retaken once the pitch holds
# on another key); "settled": once the pitch has held still (15 ms within 25 cents, moving
# less than 10), up to 60 ms; "balanced": in between (the SegmenterSettings defaults).
# Measured side by side in benchmarks/README.md ("Decide early or settled").
DECIDE_PRESETS: dict[str, dict[str, object]] = {
    "early": {"min_voiced_ms": 5.0, "settle_ms": 5.0, "max_wait_ms": 20.0, "retake_bends": True,
              "hold_ms": 15.0, "retake_hold_ms": 10.0},
    "balanced": {},
    "settled": {"settle_ms": 15.0, "settle_cents": 25.0, "settle_slope_cents": 10.0, "max_wait_ms": 60.0},
}
DEFAULT_DECIDE = "balanced"


def decide_settings(decide: str = DEFAULT_DECIDE, **overrides) -> SegmenterSettings:
    """The segmenter settings of a ``--decide`` preset, with ``overrides`` on top."""
    if decide not in DECIDE_PRESETS:
        raise ValueError(f"unknown decide preset {decide!r}; choose from {', '.join(DECIDE_PRESETS)}")
    return SegmenterSettings(**{**DECIDE_PRESETS[decide], **overrides})


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

    Digital silence (below ``silence_db``) is ignored so a file that starts with zeros
    does not pin the floor down. A sliding minimum over a monotonic deque.
    """

    def __init__(self, size: int, silence_db: float = -90.0):
        self.size = size
        self.silence_db = silence_db
        self.reset()

    def reset(self) -> None:
        self._count = 0
        self._mins: deque[tuple[int, float]] = deque()

    def process(self, level_db: float) -> None:
        if level_db < self.silence_db:
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


class Phase(enum.Enum):
    """Where the segmenter is."""

    IDLE = "idle"            # no note, nothing heard that may become one
    ONSET = "onset"          # a sound that may become a note (its frames so far)
    SOUNDING = "sounding"    # a note sounds
    REATTACK = "re-attack"   # a note sounds and may have been re-articulated (the new pitch settles)


@dataclass
class _Onset:
    """A sound that may become a note: where it began, why, and its voiced frames."""

    start: int
    why: str
    frames: list[tuple[int, float, float]] = field(default_factory=list)  # (time, midi, level)


@dataclass
class _Note:
    """The sounding note."""

    key: int
    start: int
    peak_db: float
    pitches: deque[tuple[int, float]]     # (time, midi) of its voiced frames lately (the vibrato window)
    bend_sent: float
    retaken: bool                         # its key was corrected once
    steady: list[float] = field(default_factory=list)  # pitches (MIDI) on its key after its attack
    away: list[tuple[int, float]] = field(default_factory=list)  # frames since the pitch left the key
    plateau: bool = False                 # the pitch has held on the key at some point


@dataclass
class _Reattack:
    """A possible re-articulation inside the note: the frames since, to be resolved."""

    why: str                              # gap | dip
    strong: bool                          # deep enough to re-articulate the same key
    start: int                            # the new note's onset if it is one
    end: int                              # the old note's end if so
    frames: list[tuple[int, float, float]] = field(default_factory=list)  # (time, midi, level)


@dataclass(frozen=True, slots=True)
class Rearticulation:
    """What :class:`ReattackDetector` heard: a gap or a dip, how deep, and when it happened
    (the dip's bottom; for a gap, the frame the voice came back)."""

    why: str
    depth: float
    at: int


@dataclass(frozen=True, slots=True)
class KeyChange:
    """What :class:`KeyChangeDetector` decided: the note ends at ``end`` and a new one at
    ``midi`` starts at ``onset``, as loud as ``level``."""

    why: str                              # retake | jump | glide
    midi: float
    onset: int
    end: int
    level: float


def _frames(ms: float, sample_rate: int, hop: int) -> int:
    return max(1, int(round(ms * 1e-3 * sample_rate / hop)))


class ReattackDetector:
    """Inside a note, a new attack: an unvoiced gap with the level down, a voiced dip and
    rise, or a fast fall and rise of the level back to where it was (tonguing, a bow
    change, a re-plucked string), even on the same pitch.

    ``level`` takes every frame's level; ``unvoiced`` the unvoiced frames inside a note;
    ``process`` a voiced frame, returning a :class:`Rearticulation` or None; ``clear``
    forgets a dip in progress (a new note).
    """

    def __init__(self, settings: SegmenterSettings, sample_rate: int, hop: int, onset_offset: int):
        s = self.s = settings
        self.sample_rate, self.hop, self.onset_offset = sample_rate, hop, onset_offset
        self.n_gap = _frames(s.gap_ms, sample_rate, hop)
        self.n_fall = _frames(s.reattack_fall_ms, sample_rate, hop)
        self.n_rise = _frames(s.reattack_rise_ms, sample_rate, hop)
        self.n_guard = _frames(s.reattack_guard_ms, sample_rate, hop)
        self.reset()

    def reset(self) -> None:
        self.dip_db: float | None = None
        self.dip_time = 0
        self.recent: deque[tuple[int, float]] = deque(maxlen=self.n_fall + self.n_rise + 1)

    def clear(self) -> None:
        self.dip_db = None

    def level(self, time: int, level_db: float) -> None:
        self.recent.append((time, level_db))

    def unvoiced(self, time: int, level_db: float) -> None:
        if self.dip_db is None or level_db < self.dip_db:
            self.dip_db, self.dip_time = level_db, time

    def process(self, time: int, level_db: float, note: _Note, unvoiced_run: int,
                period: float) -> Rearticulation | None:
        """A voiced frame inside ``note`` after ``unvoiced_run`` unvoiced ones; ``period``
        is the note's period in samples."""
        s = self.s
        if unvoiced_run == 0:
            at = self._fast(note, period)
            if at is not None:
                return Rearticulation("dip", math.inf, at)
        if unvoiced_run >= self.n_gap and self.dip_db is not None:
            depth = note.peak_db - self.dip_db
            if depth >= s.gap_dip_db:
                return Rearticulation("gap", depth, time)
            self.dip_db = None  # a dropout of the tracker, not of the sound
            return None
        if level_db < note.peak_db - s.dip_db:
            if self.dip_db is None or level_db < self.dip_db:
                self.dip_db, self.dip_time = level_db, time
            return None
        if self.dip_db is not None:
            depth = note.peak_db - self.dip_db
            if depth >= s.dip_db and level_db >= self.dip_db + s.rise_db:
                return Rearticulation("dip", depth, self.dip_time)
            if level_db >= note.peak_db - s.recover_db:
                self.dip_db = None  # recovered without re-articulating
        return None

    def _fast(self, note: _Note, period: float) -> int | None:
        """The level fell fast and came back as fast, as high as before: the time of the
        dip's bottom, or None.

        Levels are averaged over at least one period of the note first, so the ripple of a
        low note in the 10 ms level meter is no dip.
        """
        s = self.s
        if s.reattack_db is None:
            return None
        hist = [(t, lv) for t, lv in self.recent if t > note.start]
        if len(hist) < self.n_guard:
            return None  # the note's own attack
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
            return None  # still falling
        before = lv[max(0, i - self.n_fall):i]
        if len(before) == 0:
            return None
        if float(np.max(before)) - lv[i] >= s.reattack_db and lv[-1] >= float(np.max(before)) - s.reattack_back_db:
            self.dip_time = hist[i][0]
            return hist[i][0]
        return None


class KeyChangeDetector:
    """The pitch of a sounding note has left its key: a corrected first guess (early, an
    octave error or a pitch that never held), a new note (a jump that holds, a glide
    beyond the bend range or, bends off, one that holds), or nothing (a bend, a scoop,
    vibrato, a tracker's slip to a harmonic, a pitch sagging as the note fades).

    ``process`` looks at the note's state (its frames away from the key, its recent
    pitches, its plateau) and decides; it keeps no state of its own.
    """

    def __init__(self, settings: SegmenterSettings, sample_rate: int, hop: int, onset_offset: int):
        s = self.s = settings
        self.sample_rate, self.hop, self.onset_offset = sample_rate, hop, onset_offset
        f = lambda ms: _frames(ms, sample_rate, hop)  # noqa: E731
        self.n_hold, self.n_jump = f(s.hold_ms), f(s.jump_ms)
        self.n_scoop, self.n_scoop_jump = f(s.scoop_ms), f(s.scoop_jump_ms)
        self.n_quantise, self.n_octave = f(s.quantise_hold_ms), f(s.octave_hold_ms)
        self.n_retake, self.n_retake_hold = f(s.retake_ms), f(s.retake_hold_ms)
        self.n_vibrato = f(s.vibrato_ms)

    def reset(self) -> None:
        pass

    def process(self, time: int, note: _Note, levels: deque[tuple[int, float]], tuning: float) -> KeyChange | None:
        s = self.s
        shift = tuning / 100.0
        key_of = lambda m: int(round(m - shift))  # noqa: E731
        recent_level = max(lv for _, lv in list(levels)[-s.retake_level_frames:])
        retake = self._retake(time, note, key_of, recent_level)
        if retake is not None:
            return retake
        if len(note.away) < self.n_hold:
            return None
        tail = np.array([m for _, m in note.away[-self.n_hold:]])
        med = float(np.median(tail))
        new_key = key_of(med)
        key = note.key
        if new_key == key or float(np.max(np.abs(tail - med))) * 100.0 > s.hold_cents:
            return None
        if abs(tail[-1] - tail[0]) * 100.0 > s.hold_cents:
            return None  # still gliding
        held_levels = [lv for _, lv in list(levels)[-self.n_hold:]]
        if float(np.mean(held_levels)) < note.peak_db - s.fall_db:
            return None  # the pitch sags as the note fades: not a new note
        run = 0
        for _, m in reversed(note.away):
            if key_of(m) != new_key:
                break
            run += 1
        if abs(new_key - key) in s.slip_intervals and run < self.n_octave:
            return None  # the tracker may have slipped to a harmonic
        hist = list(note.pitches)
        first_away = note.away[0][0]
        if (s.octave_retake_ms is not None and abs(new_key - key) in s.octave_retake_intervals
                and first_away - note.start <= s.octave_retake_ms * 1e-3 * self.sample_rate):
            # (a re-attack on the way would have ended this note before: ReattackDetector)
            return KeyChange("retake", med, note.start, time, max(recent_level, note.peak_db))
        early = first_away - note.start < self.n_scoop * self.hop
        span = (self.n_scoop_jump if early else self.n_jump) * self.hop
        jumped = _moved_within(hist, first_away - span, span, s.jump_semitones)
        beyond_bend = abs(med - key) > s.bend_range + 0.5
        quantise = not s.bends and run >= self.n_quantise
        # A jump away from a key the pitch never held on is the end of a scoop or fall into
        # this note, not a new one; bends carry it (with bends off it is quantised).
        jumped = jumped and note.plateau
        if not (jumped or beyond_bend or quantise):
            return None  # a slide or bend: the pitch-bend messages carry it
        if abs(med - shift - key) < s.big_step and self._vibrato(note):
            centre = float(np.mean([m for _, m in hist]))
            if abs(centre - shift - key) < 0.5:
                return None  # could still be vibrato around the old key
        # The new note is heard from when the pitch arrived on its key (or the old one was lost).
        start = self._lost(note, note.away[-run][0], med - shift, shift) - self.onset_offset
        return KeyChange("jump" if jumped else "glide", med, max(start, 0), first_away - self.onset_offset,
                         recent_level)

    def _retake(self, time: int, note: _Note, key_of, recent_level: float) -> KeyChange | None:
        """Early in a note whose pitch never held on its key: correct a wrong first guess."""
        s = self.s
        if note.retaken or note.plateau or time - note.start > self.n_retake * self.hop:
            return None
        if len(note.away) < self.n_retake_hold:
            return None
        tail = np.array([m for _, m in note.away[-self.n_retake_hold:]])
        med = float(np.median(tail))
        if key_of(med) == note.key or float(np.max(np.abs(tail - med))) * 100.0 > s.hold_cents:
            return None
        if s.bends and not s.retake_bends and abs(med - note.key) <= s.bend_range:
            return None  # the bend carries it
        return KeyChange("retake", med, note.start, time, max(recent_level, note.peak_db))

    def _vibrato(self, note: _Note) -> bool:
        """The pitch has oscillated around its mean lately (two crossings, wide enough)."""
        if len(note.pitches) < self.n_vibrato // 2:
            return True  # too little history to rule it out
        m = np.array([p for _, p in note.pitches])
        d = m - m.mean()
        crossings = int(np.count_nonzero(np.diff(np.sign(d)) != 0))
        return crossings >= 2 and float(np.ptp(m)) * 100.0 >= 2 * self.s.vibrato_min_cents

    def _lost(self, note: _Note, arrival: int, new: float, shift: float) -> int:
        """When a new key arriving at ``arrival`` began: where the tracker lost the old pitch.

        A slow attack or a ringing release overlaps the old note and the new one; the mixture
        is periodic at their common period (a third gives two octaves under), or at a
        harmonic, so the pitch leaves the span between the two keys before the new key
        wins. Such a frame, no more than ``lost_ms`` before the arrival, is the new note's
        onset. A glide or scoop, which stays between the keys, starts the note on arrival.
        """
        lo, hi = min(note.key, new) - 0.5, max(note.key, new) + 0.5
        limit = arrival - int(self.s.lost_ms * 1e-3 * self.sample_rate)
        for t, m in note.away:
            if t >= arrival:
                break
            if t >= limit and not lo <= m - shift <= hi:
                return t
        return arrival


class Segmenter:
    """Frames in, note decisions out. ``hop`` is the frame spacing in samples."""

    def __init__(self, sample_rate: int, hop: int, settings: SegmenterSettings | None = None,
                 confidence: float = 0.6, start_confidence: float = 0.8, onset_offset: int = 0,
                 reach: Callable[[float], int] | None = None):
        s = self.s = settings or SegmenterSettings()
        self.sample_rate = sample_rate
        self.hop = hop
        self.confidence = s.confidence if s.confidence is not None else confidence
        self.start_confidence = max(self.confidence, s.start_confidence if s.start_confidence
                                    is not None else start_confidence)
        self.onset_offset = onset_offset  # samples from a level rise to the true onset
        self.reach = reach or (lambda f0: 0)  # samples a pitched frame at f0 Hz looked back
        f = lambda ms: _frames(ms, sample_rate, hop)  # noqa: E731
        self.n_min_voiced = f(s.min_voiced_ms)
        self.n_settle = f(s.settle_ms)
        self.n_attack = f(s.attack_ms)
        self.n_tuning_min = f(s.tuning_min_ms)
        self.n_tuning_full = f(s.tuning_full_ms)
        self.n_max_wait = f(s.max_wait_ms)
        self.n_release = f(s.release_ms)
        self.n_plateau = f(s.plateau_ms)
        self.n_vibrato = f(s.vibrato_ms)
        self.floor = NoiseFloor(f(1000.0 * s.floor_seconds), s.silence_db)
        self.tuning = TuningTracker(initial=s.fixed_tuning or 0.0)
        self.reattacks = ReattackDetector(s, sample_rate, hop, onset_offset)
        self.keys = KeyChangeDetector(s, sample_rate, hop, onset_offset)
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        self.tuning.reset()
        self.floor.reset()
        self.reattacks.reset()
        self.keys.reset()
        self.gate_db = self.s.gate_db
        self.onset: _Onset | None = None
        self.note: _Note | None = None
        self.pending: _Reattack | None = None
        self.unvoiced_run = 0
        self.levels: deque[tuple[int, float]] = deque(maxlen=self.s.level_frames)

    @property
    def phase(self) -> Phase:
        if self.note is None:
            return Phase.IDLE if self.onset is None else Phase.ONSET
        return Phase.SOUNDING if self.pending is None else Phase.REATTACK

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

    def _velocity(self, level_db: float) -> int:
        # 127 at -6 dBFS, 2.2 per dB below: soft singing near -35 dBFS gives about 63.
        s = self.s
        return int(min(127, max(1, round(127 + s.velocity_per_db * (level_db - s.velocity_top_db)))))

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

    def _settled(self, frames: list[tuple[int, float, float]], min_frames: int) -> tuple[bool, float]:
        """Whether the pitch of the last frames held (and their median)."""
        s = self.s
        recent = np.array([m for _, m, _ in frames[-self.n_settle:]])
        med = float(np.median(recent))
        settled = (len(frames) >= min_frames and float(np.max(np.abs(recent - med))) * 100.0 <= s.settle_cents
                   and abs(recent[-1] - recent[0]) * 100.0 <= s.settle_slope_cents)
        return settled, med

    # ----------------------------------------------------------------- main

    def process(self, fr: Frame) -> list[Decision]:
        out: list[Decision] = []
        s = self.s
        self.gate_db = max(s.gate_db, self.floor.db + s.gate_above_floor_db)
        midi = 69.0 + 12.0 * math.log2(fr.f0 / 440.0) if fr.f0 > 0 else 0.0
        phase = self.phase
        if phase is Phase.IDLE:
            needed = self.start_confidence
        elif self.note is not None and abs(midi - self.note.key) > s.far_semitones:
            needed = max(s.far_confidence, self.confidence)
        else:
            needed = self.confidence
        voiced = fr.confidence >= needed and fr.level_db >= self.gate_db and fr.f0 > 0
        self.levels.append((fr.time, fr.level_db))
        self.reattacks.level(fr.time, fr.level_db)
        if self.note is None:
            self._idle(fr, voiced, midi, out)
        else:
            self._sounding(fr, voiced, midi, out)
        if self.phase is Phase.IDLE and (self.floor.known or fr.level_db < self.gate_db):
            # while no room noise has been heard (a take that starts from digital silence), a
            # level over the gate is a note starting, not the room: it would lift the gate over it
            self.floor.process(fr.level_db)
        self.unvoiced_run = 0 if voiced else self.unvoiced_run + 1
        return out

    def flush(self, time: int) -> list[Decision]:
        """End of input: end a sounding note at ``time``."""
        out: list[Decision] = []
        if self.note is not None:
            out.append(self._note_off(time, time, "end"))
        self.onset = None
        return out

    # -------------------------------------------------- no note: onsets

    def _idle(self, fr: Frame, voiced: bool, midi: float, out: list[Decision]) -> None:
        if not voiced:
            if self.onset is not None and self.unvoiced_run + 1 >= self.reattacks.n_gap:
                self.onset = None  # a blip, not a note
            return
        if self.onset is None:
            self.onset = _Onset(self._onset_time(fr.time, fr.f0), "voice")
        self.onset.frames.append((fr.time, midi, fr.level_db))
        self._try_start(fr, out)

    def _try_start(self, fr: Frame, out: list[Decision]) -> None:
        onset = self.onset
        n = len(onset.frames)
        if n < self.n_min_voiced:
            return
        settled, med = self._settled(onset.frames, self.n_settle)
        if not settled and n < self.n_max_wait:
            return
        level = max(lv for _, _, lv in onset.frames)
        start = self._arrival(onset.frames, med, onset.start, first_is_onset=True)
        self._note_on(fr.time, med, start, level, out, onset.why)
        self.onset = None

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
        pitches: deque[tuple[int, float]] = deque(maxlen=self.n_vibrato)
        pitches.append((time, midi))
        self.note = _Note(key, start, level, pitches, cents, retaken=why == "retake")
        self.reattacks.clear()
        out.append(NoteStart(time, key, cents, self._velocity(level), start, self._tuning(), why))

    def _note_off(self, time: int, end: int, why: str) -> NoteEnd:
        note = self.note
        assert note is not None
        if self.s.fixed_tuning is None and len(note.steady) >= self.n_tuning_min:
            centre = float(np.median(note.steady))
            self.tuning.add(100.0 * (centre - round(centre)), min(len(note.steady) / self.n_tuning_full, 1.0))
        self.note = None
        return NoteEnd(time, note.key, max(end, note.start + self.hop), why)

    # ------------------------------------------------ a note is sounding

    def _sounding(self, fr: Frame, voiced: bool, midi: float, out: list[Decision]) -> None:
        note = self.note
        if not voiced:
            if self.unvoiced_run + 1 >= self.n_release:
                end = fr.time - self.unvoiced_run * self.hop - self.onset_offset
                out.append(self._note_off(fr.time, end, "release"))
                self.onset = None
                self.pending = None
            else:
                self.reattacks.unvoiced(fr.time, fr.level_db)
            return
        if self.pending is None:
            period = self.sample_rate / (440.0 * 2.0 ** ((note.key + self._tuning() / 100.0 - 69.0) / 12.0))
            r = self.reattacks.process(fr.time, fr.level_db, note, self.unvoiced_run, period)
            if r is not None:
                # A dip re-attacks from its quietest point; after a gap the voice returns now.
                start = max(r.at - self.onset_offset, note.start + self.hop)
                end = fr.time - self.unvoiced_run * self.hop - self.onset_offset if r.why == "gap" else start
                self.pending = _Reattack(r.why, r.depth >= self.s.strong_db, start, end)
                self.reattacks.clear()
        if self.pending is not None:
            self.pending.frames.append((fr.time, midi, fr.level_db))
            self._resolve_pending(fr, out)
            return
        note.peak_db = max(note.peak_db, fr.level_db)
        note.pitches.append((fr.time, midi))
        key = note.key
        dev = midi - self._tuning() / 100.0 - key
        if abs(dev) > self.s.off_key_semitones:
            note.away.append((fr.time, midi))
            change = self.keys.process(fr.time, note, self.levels, self._tuning())
            if change is not None:
                out.append(self._note_off(fr.time, change.end, change.why))
                self._note_on(fr.time, change.midi, change.onset, change.level, out, change.why)
                return
        else:
            note.away = []
            if fr.time - note.start >= self.n_attack * self.hop:
                note.steady.append(midi)
            held = [m for _, m in list(note.pitches)[-self.n_plateau:]]
            if len(held) >= self.n_plateau and (max(held) - min(held)) * 100.0 <= 2 * self.s.hold_cents \
                    and all(self._key(m) == key for m in held):
                note.plateau = True
        if self.s.bends:
            cents = max(-100.0 * self.s.bend_range, min(100.0 * self.s.bend_range, (midi - key) * 100.0))
            if abs(cents - note.bend_sent) >= self.s.bend_step_cents:
                note.bend_sent = cents
                out.append(Bend(fr.time, cents))

    def _resolve_pending(self, fr: Frame, out: list[Decision]) -> None:
        """After a possible re-attack: a new note once its pitch is clear, or the same one going on."""
        pending, note = self.pending, self.note
        frames = pending.frames
        settled, med = self._settled(frames, max(self.n_settle, self.n_min_voiced))
        if not settled and len(frames) < self.n_max_wait:
            return
        self.pending = None
        if pending.strong or self._key(med) != note.key:
            same = self._key(med) == note.key
            out.append(self._note_off(fr.time, pending.end, pending.why))
            level = max(lv for _, _, lv in frames)
            # the same key again: the pitch never left, the re-attack (the dip) is the onset
            start = self._arrival(frames, med, pending.start, first_is_onset=same)
            self._note_on(fr.time, med, start, level, out, pending.why)
            for t, m, _ in frames:
                self.note.pitches.append((t, m))
            return
        for t, m, lv in frames:  # a swell or a dropout: the note goes on
            note.pitches.append((t, m))
            note.peak_db = max(note.peak_db, lv)


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
