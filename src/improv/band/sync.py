"""The band's time for the studio: MIDI clock out from the tempo the band plays to.

``improv listen --clock-out`` sends 24 PPQN MIDI clock (Start on the next beat once the
band is metered, Stop when it goes free or the session ends) on the MIDI port, through
the band's :class:`~improv.timing.Scheduler` (so the ticks leave at their time, as the
band's notes do). :class:`BandClock` is the clock the band plays to right now (its
time map's snapshot of tap, --tempo, the beat tracker or --count-in) as a
:class:`~improv.timing.clock.BeatClock`; :class:`MidiClockOut` (``improv clock``'s)
does the rest.
"""

from __future__ import annotations

import mido

from ..timing import ClockState, MidiClockOut
from ..timing.clock import BeatClock


class BandClock(BeatClock):
    """The band's current clock (free mode: not locked). Read from the band's own thread."""

    source = "band"

    def __init__(self, band):
        self.band = band
        self.meter = band.time.meter

    def _clock(self):
        m = self.band.map
        return m.clock if m is not None and m.metered else None

    def beat_at(self, t: float) -> float | None:
        c = self._clock()
        return None if c is None else c.beat_at(t)

    def time_of(self, beat: float) -> float | None:
        c = self._clock()
        return None if c is None else c.time_of(beat)

    def state(self, now: float) -> ClockState:
        c = self._clock()
        if c is None:
            return ClockState(False, None, None, 0.0, self.source, "the band is in free mode")
        return c.state(now)


def band_clock_out(band, scheduler, horizon: float = 0.08) -> MidiClockOut:
    """MIDI clock from ``band``'s tempo into ``scheduler`` (tag ``clock``); pump it after each band step."""

    def schedule(t: float, data: bytes) -> None:
        scheduler.schedule(t, mido.Message.from_bytes(list(data)), tag="clock")

    return MidiClockOut(BandClock(band), schedule, horizon=horizon)


__all__ = ["BandClock", "band_clock_out"]
