"""Which clock the band plays to, and how session seconds map onto the model's units.

:class:`TimeBase` picks the band's clock at each moment, in this order: the tapped
tempo (``tap`` command), ``--tempo`` (its beat 0 on the player's first onset), the
:class:`~improv.timing.BeatTracker` while it is locked on the player's pulse. With
none of them (or ``--free``), the band is in free mode.

:class:`TimeMap` is one fixed mapping for one model session: metered, the model's
time is beats of a snapshot of the clock (swing removed), counted from a bar line
before the context; free, it is seconds. The band builds a new map (and rebuilds the
model session from its context) when the mode changes or the clock has moved away
from the snapshot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..timing import BeatTracker, ClockState, FixedClock, Meter, Swing, TapTempo, parse_meter, parse_swing
from ..timing.clock import BeatClock

FREE_UNIT = 0.125          # the model's unmetered frame (seconds)
METERED_UNIT = 0.25        # the model's metered frame (beats)
FREE_BEAT = 0.5            # what counts as a "beat" in free mode (density, gaps): half a second


@dataclass(frozen=True)
class TimeMap:
    """Session seconds <-> model units for one model session."""

    metered: bool
    origin: float                       # units: beats (metered, a bar line) or seconds
    clock: FixedClock | None = None     # metered: the snapshot of the band's clock
    swing: Swing = Swing()
    meter: Meter = parse_meter(None)

    @property
    def unit(self) -> float:
        """One model frame in units."""
        return METERED_UNIT if self.metered else FREE_UNIT

    @property
    def beat_seconds(self) -> float:
        """Seconds per beat (metered) or per free-mode "beat" (half a second)."""
        return self.clock.period if self.metered else FREE_BEAT

    @property
    def beats_per_unit(self) -> float:
        return 1.0 if self.metered else 1.0 / FREE_BEAT

    def units(self, t: float) -> float:
        if self.metered:
            return self.swing.remove(self.clock.beat_at(t), self.meter) - self.origin
        return t - self.origin

    def seconds(self, u: float) -> float:
        if self.metered:
            return self.clock.time_of(self.swing.apply(u + self.origin, self.meter))
        return u + self.origin

    def frame_at_or_after(self, t: float) -> int:
        return int(math.ceil(self.units(t) / self.unit - 1e-6))

    def on_beat(self, k: int) -> bool:
        """Whether frame ``k`` starts a beat (free mode: a half second; both are 4 frames)."""
        return k % 4 == 0

    def drift(self, live: BeatClock, now: float) -> tuple[float, float]:
        """(beat offset, log tempo ratio) of the live clock against this snapshot at ``now``."""
        b = live.beat_at(now)
        if b is None or not self.metered:
            return math.inf, math.inf
        bpm = getattr(live, "bpm", None) or self.clock.bpm
        return abs(b - self.clock.beat_at(now)), abs(math.log(bpm / self.clock.bpm))


class TimeBase:
    """The band's clock: tap tempo, then ``--tempo``, then the beat tracker; else free."""

    def __init__(self, tempo: float | None = None, meter: str | Meter | None = None, swing: float | str | None = None,
                 free: bool = False, follow: bool = True):
        self.meter = parse_meter(meter)
        self.swing = parse_swing(swing)
        self.free = free
        self.follow = follow
        self.tempo = tempo
        self.fixed: FixedClock | None = None
        self.tap_tempo = TapTempo(meter=self.meter)
        self.tracker = BeatTracker(meter=self.meter if meter is not None else None)
        self.external: BeatClock | None = None   # --clock-in: a MIDI clock followed (after tap tempo)
        if tempo is not None:
            FixedClock(tempo, meter=self.meter)  # validates the tempo now (ConfigError)

    def player_onset(self, onset: float, now: float, velocity: int | None = None) -> None:
        if self.tempo is not None and self.fixed is None:
            self.fixed = FixedClock(self.tempo, t0=onset, meter=self.meter)
        if self.follow and self.tempo is None:
            self.tracker.add_onset(onset, now, velocity)

    def tap(self, now: float) -> float | None:
        return self.tap_tempo.tap(now)

    def clock(self, now: float) -> BeatClock | None:
        """The clock to play to now, or None for free mode."""
        if self.free:
            return None
        if self.tap_tempo.clock is not None:
            return self.tap_tempo.clock
        if self.external is not None and self.external.state(now).locked:
            return self.external
        if self.fixed is not None:
            return self.fixed
        if self.follow and self.tracker.state(now).locked:
            return self.tracker
        return None

    def state(self, now: float) -> ClockState:
        clock = self.clock(now)
        if clock is not None:
            return clock.state(now)
        if self.free:
            return ClockState(False, None, None, 0.0, "free", "free mode (--free)")
        st = self.tracker.state(now) if self.follow else None
        msg = st.message if st is not None else "no tempo"
        return ClockState(False, None, None, st.confidence if st else 0.0, "free", msg)

    def snapshot(self, now: float) -> FixedClock | None:
        """A fixed copy of the current clock (same tempo and beat position at ``now``)."""
        clock = self.clock(now)
        if clock is None:
            return None
        bpm = getattr(clock, "bpm", None)
        beat = clock.beat_at(now)
        if bpm is None or beat is None:
            return None
        return FixedClock(bpm, t0=now, beat0=beat, meter=self.meter, source=clock.source)

    def make_map(self, now: float, context_start: float) -> TimeMap:
        snap = self.snapshot(now)
        if snap is None:
            origin = math.floor(max(context_start, 0.0) / FREE_BEAT) * FREE_BEAT
            return TimeMap(False, origin, None, self.swing, self.meter)
        bpb = self.meter.beats_per_bar
        first = snap.beat_at(min(context_start, now))
        origin = math.floor(first / bpb) * bpb
        return TimeMap(True, float(origin), snap, self.swing, self.meter)
