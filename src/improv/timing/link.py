"""Ableton Link through LinkPython-extern (``pip install LinkPython-extern``, module ``link``).

Chosen over aalink because its API is synchronous (aalink is built around asyncio,
and improv's band and scheduler are threads); both ship manylinux wheels for
CPython 3.11 on x86-64. Link's clock is CLOCK_MONOTONIC_RAW in microseconds; the
session clock is ``time.perf_counter`` (CLOCK_MONOTONIC) minus ``origin``: the offset
between them is measured at each query (they drift apart by parts per million).

Link's beat is a quarter note; ``quantum`` is the bar length in beats, so beat 0 of
improv falls on a bar line of the Link session. With ``enabled=False`` nothing goes
on the network and the session is local (a steady clock with Link's timeline).
"""

from __future__ import annotations

import time

from ..errors import ConfigError
from .clock import BeatClock, ClockState, check_tempo
from .meter import Meter, parse_meter


def _link_module():
    try:
        import link
    except ImportError:
        raise ConfigError("--link needs the LinkPython-extern package: pip install LinkPython-extern") from None
    return link


class LinkClock(BeatClock):
    """A :class:`BeatClock` on an Ableton Link session (joins peers on the local network)."""

    source = "link"

    def __init__(self, bpm: float = 120.0, meter: Meter | str | None = None, enabled: bool = True,
                 origin: float = 0.0, start_stop_sync: bool = True):
        link = _link_module()
        self.meter = parse_meter(meter)
        self.origin = origin
        self.quantum = float(self.meter.beats_per_bar * self.meter.quarters_per_beat)
        self.link = link.Link(check_tempo(bpm))
        self.link.startStopSyncEnabled = start_stop_sync
        self.link.enabled = enabled
        self._clock = self.link.clock()

    def _micros(self, t: float) -> int:
        raw = time.clock_gettime(time.CLOCK_MONOTONIC_RAW)
        mono = time.perf_counter()
        return int(round((t + self.origin - mono + raw) * 1e6))

    def _seconds(self, micros: int) -> float:
        raw = time.clock_gettime(time.CLOCK_MONOTONIC_RAW)
        mono = time.perf_counter()
        return micros * 1e-6 - raw + mono - self.origin

    def beat_at(self, t: float) -> float:
        s = self.link.captureAppSessionState()
        return s.beatAtTime(self._micros(t), self.quantum) / self.meter.quarters_per_beat

    def time_of(self, beat: float) -> float:
        s = self.link.captureAppSessionState()
        return self._seconds(s.timeAtBeat(beat * self.meter.quarters_per_beat, self.quantum))

    @property
    def bpm(self) -> float:
        return self.link.captureAppSessionState().tempo() / self.meter.quarters_per_beat

    @property
    def peers(self) -> int:
        return self.link.numPeers()

    def set_tempo(self, bpm: float, now: float) -> None:
        s = self.link.captureAppSessionState()
        s.setTempo(check_tempo(bpm) * self.meter.quarters_per_beat, self._micros(now))
        self.link.commitAppSessionState(s)

    def state(self, now: float) -> ClockState:
        msg = f"Link: {self.peers} peer(s)" if self.link.enabled else "Link disabled: local timeline"
        return ClockState(True, self.bpm, self.beat_at(now), 1.0, self.source, msg)

    def close(self) -> None:
        self.link.enabled = False
