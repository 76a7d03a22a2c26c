"""A clock driven bar by bar: a metered client (a DAW, a sequencer) says when each bar ends.

:class:`BarClock` is a :class:`~improv.timing.clock.BeatClock` fed with
``bar_end(bar_index, t)``: bar ``bar_index`` (0, 1, 2, ...) ended at session time
``t``, so beat ``(bar_index + 1) * beats_per_bar`` falls at ``t``. Tempo and phase are
a line fitted through the last ``window`` bar ends (one bar end and a ``tempo`` hint
are enough to start). It unlocks when the bar ends stop (more than ``timeout_bars``
bars late) or say an absurd tempo; a bar index that jumps back (the client's
transport moved) starts the fit again.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from .clock import TEMPO_MAX, TEMPO_MIN, BeatClock, ClockState
from .meter import Meter, parse_meter


class BarClock(BeatClock):
    source = "bar-ends"

    def __init__(self, meter: Meter | str | None = None, tempo: float | None = None, window: int = 4,
                 timeout_bars: float = 1.75):
        self.meter = parse_meter(meter)
        self.tempo = tempo                  # a hint until two bar ends give the tempo
        self.window = window
        self.timeout_bars = timeout_bars
        self._ends: deque[tuple[int, float]] = deque(maxlen=window)
        self._lock = threading.Lock()
        self.jumps = 0
        self.received = 0

    def bar_end(self, bar_index: int, t: float) -> None:
        """Bar ``bar_index`` ended at session time ``t``."""
        with self._lock:
            self.received += 1
            if self._ends and bar_index <= self._ends[-1][0]:
                self.jumps += 1      # the transport went back (or repeated a bar): fit again
                self._ends.clear()
            self._ends.append((int(bar_index), float(t)))

    def _fit(self) -> tuple[float, float] | None:
        """(seconds per beat, time of beat 0)."""
        ends = list(self._ends)
        bpb = self.meter.beats_per_bar
        if len(ends) >= 2:
            beats = np.array([(i + 1) * bpb for i, _ in ends], dtype=float)
            times = np.array([t for _, t in ends])
            period, t0 = np.polyfit(beats, times, 1)
            return float(period), float(t0)
        if len(ends) == 1 and self.tempo:
            i, t = ends[0]
            period = 60.0 / self.tempo
            return period, t - (i + 1) * bpb * period
        return None

    @property
    def bpm(self) -> float | None:
        with self._lock:
            fit = self._fit()
        return None if fit is None or fit[0] <= 0 else 60.0 / fit[0]

    def beat_at(self, t: float) -> float | None:
        with self._lock:
            fit = self._fit()
        return None if fit is None else (t - fit[1]) / fit[0]

    def time_of(self, beat: float) -> float | None:
        with self._lock:
            fit = self._fit()
        return None if fit is None else fit[1] + beat * fit[0]

    def state(self, now: float) -> ClockState:
        with self._lock:
            fit = self._fit()
            last = self._ends[-1][1] if self._ends else None
        if fit is None:
            return ClockState(False, None, None, 0.0, self.source,
                              "waiting for bar ends" if last is None else "one bar end: waiting for the next")
        period = fit[0]
        bpm = 60.0 / period if period > 0 else None
        if bpm is None or not TEMPO_MIN <= bpm <= TEMPO_MAX:
            return ClockState(False, bpm, None, 0.0, self.source,
                              f"bar ends say {bpm or 0:.0f} BPM, outside {TEMPO_MIN:g}-{TEMPO_MAX:g}: ignored")
        bar = period * self.meter.beats_per_bar
        if now - last > self.timeout_bars * bar:
            return ClockState(False, bpm, None, 0.0, self.source,
                              f"no bar end for {now - last:.1f} s: free mode")
        return ClockState(True, bpm, (now - fit[1]) / period, 1.0, self.source, "")


__all__ = ["BarClock"]
