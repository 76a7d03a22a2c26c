"""The band's sense of time: "what beat is it at time t" and "when is beat b".

Every clock answers in seconds on the session clock (the same clock as the events'
``time``) and in beats of its :class:`~improv.timing.meter.Meter`. A clock that does
not know the time right now (a stopped MIDI clock, a tracker that is not locked)
answers ``None`` and the band plays in free mode. Clocks take the current time as an
argument; none of them reads the wall clock.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

from ..errors import ConfigError
from .meter import DEFAULT_METER, Meter, parse_meter

TEMPO_MIN, TEMPO_MAX = 20.0, 400.0  # what --tempo and external clocks may say


def check_tempo(bpm: float, what: str = "--tempo") -> float:
    """A user-given tempo, or :class:`ConfigError` for an absurd one."""
    try:
        bpm = float(bpm)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} {bpm!r}: give beats per minute, e.g. 120") from None
    if not (TEMPO_MIN <= bpm <= TEMPO_MAX) or math.isnan(bpm):
        raise ConfigError(f"{what} {bpm:g}: give a tempo from {TEMPO_MIN:g} to {TEMPO_MAX:g} BPM")
    return bpm


@dataclass(frozen=True, slots=True)
class ClockState:
    """What a clock says at one moment, for the band and the display."""

    locked: bool  # the band may play on the beat
    bpm: float | None
    beat: float | None  # beat position now (None when not locked)
    confidence: float  # 0..1
    source: str  # "fixed", "tap", "tracker", "midi-clock", "link"
    message: str = ""  # why not locked, or a warning ("MIDI clock stopped")


class BeatClock(ABC):
    """A mapping between session time (s) and beats, valid while ``state(now).locked``."""

    meter: Meter = DEFAULT_METER
    source: str = "clock"

    @abstractmethod
    def beat_at(self, t: float) -> float | None:
        """The beat position at session time ``t`` (fractional; None when unknown)."""

    @abstractmethod
    def time_of(self, beat: float) -> float | None:
        """The session time of beat position ``beat`` (None when unknown)."""

    @abstractmethod
    def state(self, now: float) -> ClockState:
        """Locked or free, tempo, beat and confidence at ``now``."""

    def next_beat(self, now: float, subdivision: int = 1) -> tuple[float, float] | None:
        """(beat, time) of the next grid point strictly after ``now``: beats, or 1/n beats."""
        b = self.beat_at(now)
        if b is None:
            return None
        nb = (math.floor(b * subdivision + 1e-9) + 1) / subdivision
        t = self.time_of(nb)
        return None if t is None else (nb, t)

    def next_downbeat(self, now: float) -> tuple[float, float] | None:
        """(beat, time) of the next bar start after ``now``."""
        b = self.beat_at(now)
        if b is None:
            return None
        n = self.meter.beats_per_bar
        nb = (math.floor(b / n + 1e-9) + 1) * n
        t = self.time_of(nb)
        return None if t is None else (nb, t)


class FixedClock(BeatClock):
    """A steady tempo from ``--tempo`` (or tap tempo): beat ``beat0`` falls at ``t0``."""

    source = "fixed"

    def __init__(self, bpm: float, t0: float = 0.0, beat0: float = 0.0, meter: Meter | str | None = None,
                 source: str = "fixed"):
        self.bpm = check_tempo(bpm)
        self.t0 = float(t0)
        self.beat0 = float(beat0)
        self.meter = parse_meter(meter)
        self.source = source

    @property
    def period(self) -> float:
        return 60.0 / self.bpm

    def beat_at(self, t: float) -> float:
        return self.beat0 + (t - self.t0) / self.period

    def time_of(self, beat: float) -> float:
        return self.t0 + (beat - self.beat0) * self.period

    def set_tempo(self, bpm: float, now: float) -> None:
        """Change tempo at ``now`` keeping the beat position continuous."""
        b = self.beat_at(now)
        self.bpm = check_tempo(bpm)
        self.t0, self.beat0 = now, b

    def state(self, now: float) -> ClockState:
        return ClockState(True, self.bpm, self.beat_at(now), 1.0, self.source)


class TapTempo:
    """Tempo from taps (a foot switch, a key): the median interval of the recent taps.

    A pause longer than ``reset_after`` seconds starts a new tap sequence. Taps
    closer than the fastest tempo allows (a switch bouncing) are ignored. After
    ``min_taps`` taps, ``clock`` is a :class:`FixedClock` whose beat falls on the last tap.
    """

    def __init__(self, min_taps: int = 3, keep: int = 8, reset_after: float = 2.5,
                 meter: Meter | str | None = None):
        self.min_taps = min_taps
        self.keep = keep
        self.reset_after = reset_after
        self.meter = parse_meter(meter)
        self.taps: list[float] = []
        self.clock: FixedClock | None = None
        self.ignored = 0

    def reset(self) -> None:
        self.taps = []
        self.clock = None

    def tap(self, now: float) -> float | None:
        """Register a tap at ``now``; return the tempo (BPM) once known."""
        if self.taps and now - self.taps[-1] > self.reset_after:
            self.taps = []
        if self.taps and now - self.taps[-1] < 60.0 / TEMPO_MAX:
            self.ignored += 1
            return self.bpm
        self.taps.append(now)
        self.taps = self.taps[-self.keep:]
        if len(self.taps) < self.min_taps:
            return self.bpm
        gaps = sorted(b - a for a, b in zip(self.taps, self.taps[1:]))
        period = gaps[len(gaps) // 2]
        bpm = min(max(60.0 / period, TEMPO_MIN), TEMPO_MAX)
        beat = 0.0 if self.clock is None else round(self.clock.beat_at(now))
        self.clock = FixedClock(bpm, t0=now, beat0=beat, meter=self.meter, source="tap")
        return bpm

    @property
    def bpm(self) -> float | None:
        return None if self.clock is None else self.clock.bpm
