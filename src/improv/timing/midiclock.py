"""MIDI clock: follow a DAW or drum machine (24 PPQN, Start/Stop/Continue, Song
Position Pointer), and drive other gear from improv's own clock.

:class:`MidiClockIn` is a :class:`~improv.timing.clock.BeatClock` fed with the
clock's messages and the session time at which each arrived (``feed``); the beat
grid is a least-squares line through the latest ticks, so arrival jitter averages
out. A clock that stops sending, jumps (a Song Position Pointer while running, a
gap) or runs at an absurd tempo puts it out of lock with a message; it never raises.

:class:`MidiClockOut` turns any BeatClock into tick times: ``pump(now)`` hands the
ticks due within ``horizon`` seconds to a scheduling function (the
:class:`~improv.timing.scheduler.Scheduler`), with Start on the first beat and
Stop when the clock loses lock.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable

import numpy as np

from .clock import TEMPO_MAX, TEMPO_MIN, BeatClock, ClockState
from .meter import Meter, parse_meter

PPQN = 24
TICK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
_NAMES = {"clock": TICK, "start": START, "continue": CONTINUE, "stop": STOP, "songpos": SONG_POSITION}


def _zero() -> float:
    return 0.0


class MidiClockIn(BeatClock):
    """Follows incoming MIDI clock. Beat 0 is the song start (Start, or SPP 0)."""

    source = "midi-clock"

    def __init__(self, meter: Meter | str | None = None, window: int = 48, timeout_ticks: float = 6.0,
                 min_timeout: float = 0.15, arrival_offset: float = 0.0):
        self.meter = parse_meter(meter)
        # Added to every arrival time. rtmidi on JACK stamps a message when JACK's cycle starts,
        # before the message's own frame: half a period (2.7 ms at 256/48k) on average.
        self.arrival_offset = arrival_offset
        self._stamp_offset: Callable[[], float] = _zero
        self.window = window
        self.timeout_ticks = timeout_ticks
        self.min_timeout = min_timeout
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.running = False
            self._next_pos = 0  # song position (ticks) the next tick will have
            self._ticks: deque[tuple[int, float]] = deque(maxlen=self.window)  # (position, time)
            self._free: deque[float] = deque(maxlen=self.window)  # tick times while stopped (tempo only)
            self._fit: tuple[float, float, int] | None = None  # (time of pos0, seconds per tick, pos0)
            self.last_tick: float | None = None
            self.jumps = 0
            self.message = "waiting for MIDI clock"

    # ----------------------------------------------------------------- input

    def feed(self, status: int | str, t: float, value: int = 0) -> None:
        """One clock message: a status byte (0xF8, 0xFA, 0xFB, 0xFC, 0xF2) or its mido
        type name, arriving at session time ``t``; ``value`` is the SPP in sixteenths."""
        status = _NAMES.get(status, status) if isinstance(status, str) else status
        t += self.arrival_offset
        with self._lock:
            if status == TICK:
                self._tick(t)
            elif status == START:
                self.running, self._next_pos = True, 0
                self._restart_fit()
            elif status == CONTINUE:
                self.running = True
                self._restart_fit()
            elif status == STOP:
                self.running = False
                self.message = "MIDI clock stopped (Stop received): free mode"
            elif status == SONG_POSITION:
                if self.running:
                    self.jumps += 1  # a jump while playing: re-fit from the new place
                self._next_pos = int(value) * 6
                self._restart_fit()

    def feed_bytes(self, data: bytes, t: float) -> None:
        """Feed raw MIDI bytes (a JACK port's event); Song Position Pointer included."""
        if not data:
            return
        value = (data[1] | (data[2] << 7)) if data[0] == SONG_POSITION and len(data) >= 3 else 0
        self.feed(data[0], t, value)

    def follow_frames(self, offset: Callable[[], float]) -> None:
        """Stamps are in a frame clock's seconds (a JACK client's frames / rate) and
        ``offset()`` says what to add to make them session time *now*. Converting every
        tick with the current offset keeps the beat grid on the clock's frames when the
        server stalls and the frame clock slips against the wall clock (see
        :meth:`improv.timing.jackmidi.JackMidi.frame_offset`)."""
        self._stamp_offset = offset

    def on_message(self, msg, t: float) -> None:
        """Feed a mido message (from :class:`improv.midi.MidiIn`); other types are ignored."""
        if msg.type in _NAMES:
            self.feed(msg.type, t, getattr(msg, "pos", 0))

    def _restart_fit(self) -> None:
        self._ticks.clear()
        self._fit = None

    def _tick(self, t: float) -> None:
        if self.last_tick is not None:
            gap = t - self.last_tick
            period = self._tick_period()
            if period is not None and (gap > 4.0 * period or gap < 0.25 * period):
                self.jumps += 1  # clock resumed after a gap, or changed tempo abruptly: re-fit
                self._ticks.clear()
                self._free.clear()
        self.last_tick = t
        if not self.running:
            self._free.append(t)
            return
        self._ticks.append((self._next_pos, t))
        self._next_pos += 1
        self._fit = None

    def _tick_period(self) -> float | None:
        times = [t for _, t in self._ticks] if len(self._ticks) >= 2 else list(self._free)
        if len(times) < 2:
            return None
        return (times[-1] - times[0]) / (len(times) - 1)

    def _fitted(self) -> tuple[float, float, int] | None:
        if self._fit is None and len(self._ticks) >= 2:
            pos = np.array([p for p, _ in self._ticks], dtype=float)
            tt = np.array([t for _, t in self._ticks])
            p0 = int(pos[-1])
            slope, icpt = np.polyfit(pos - p0, tt, 1)
            self._fit = (float(icpt), float(slope), p0)
        if self._fit is None:
            return None
        t0, spt, p0 = self._fit
        return t0 + self._stamp_offset(), spt, p0

    # ----------------------------------------------------------------- clock

    @property
    def bpm(self) -> float | None:
        with self._lock:
            period = self._tick_period()
        return None if not period else 60.0 / (period * PPQN)

    @property
    def ticks_per_beat(self) -> float:
        return PPQN * self.meter.quarters_per_beat

    def beat_at(self, t: float) -> float | None:
        with self._lock:
            fit = self._fitted()
        if fit is None:
            return None
        t0, spt, p0 = fit
        return (p0 + (t - t0) / spt) / self.ticks_per_beat

    def time_of(self, beat: float) -> float | None:
        with self._lock:
            fit = self._fitted()
        if fit is None:
            return None
        t0, spt, p0 = fit
        return t0 + (beat * self.ticks_per_beat - p0) * spt

    def state(self, now: float) -> ClockState:
        with self._lock:
            period = self._tick_period()
            running, last, have_fit = self.running, self.last_tick, self._fitted() is not None
            if last is not None:
                last += self._stamp_offset()
            message = self.message
        bpm = None if not period else 60.0 / (period * PPQN)
        if not running:
            return ClockState(False, bpm, None, 0.0, self.source, message)
        if last is None or not have_fit:
            return ClockState(False, bpm, None, 0.0, self.source, "MIDI clock started: waiting for ticks")
        timeout = max(self.min_timeout, self.timeout_ticks * (period or 0.0))
        if now - last > timeout:
            return ClockState(False, bpm, None, 0.0, self.source,
                              f"MIDI clock silent for {1000 * (now - last):.0f} ms: free mode")
        if bpm is None or not (TEMPO_MIN <= bpm <= TEMPO_MAX):
            return ClockState(False, bpm, None, 0.0, self.source,
                              f"MIDI clock at {bpm:.0f} BPM is outside {TEMPO_MIN:g}-{TEMPO_MAX:g} BPM: ignored")
        return ClockState(True, bpm, self.beat_at(now), 1.0, self.source, "")


class MidiClockOut:
    """MIDI clock from a :class:`BeatClock`: 24 ticks per quarter note, Start and Stop.

    ``schedule(t, data)`` is called with each message and its session time, ahead of
    time by up to ``horizon`` seconds (a :meth:`Scheduler.schedule`). Call ``pump(now)``
    every few milliseconds (or run :meth:`run` in a thread). Clock starts on the next
    beat once ``clock`` is locked; a lost lock sends Stop; ``stop()`` sends Stop.
    """

    def __init__(self, clock: BeatClock, schedule: Callable[[float, bytes], None], horizon: float = 0.05,
                 meter: Meter | str | None = None, send_start: bool = True):
        self.clock = clock
        self.schedule = schedule
        self.horizon = horizon
        self.meter = parse_meter(meter) if meter is not None else clock.meter
        self.send_start = send_start
        self.running = False
        self._tick = 0  # next tick index, counted from the start beat
        self._start_beat = 0.0
        self.sent_ticks = 0
        self._last_sent = float("-inf")

    @property
    def ticks_per_beat(self) -> float:
        return PPQN * self.meter.quarters_per_beat

    def pump(self, now: float) -> None:
        st = self.clock.state(now)
        if not st.locked:
            self.stop(now)
            return
        if not self.running:
            b = self.clock.beat_at(now)
            self._start_beat = math.floor(b + 1e-9) + 1.0
            self._tick = 0
            self.running = True
            if self.send_start:
                t_start = self.clock.time_of(self._start_beat)
                self.schedule(max(now, t_start - 0.001), bytes([START]))
        limit = now + self.horizon
        while True:
            t = self.clock.time_of(self._start_beat + self._tick / self.ticks_per_beat)
            if t is None or t > limit:
                break
            if t >= now - 0.002:  # a tick the clock moved into the past is skipped, not sent late
                self.schedule(t, bytes([TICK]))
                self.sent_ticks += 1
                self._last_sent = t
            self._tick += 1

    def stop(self, now: float) -> None:
        """Send Stop, after the ticks already planned (they cannot be called back)."""
        if self.running:
            self.schedule(max(now, self._last_sent + 0.001), bytes([STOP]))
            self.running = False

    def run(self, now: Callable[[], float], stop: threading.Event, interval: float = 0.01) -> None:
        """Pump every ``interval`` seconds until ``stop`` is set (a thread's target)."""
        while not stop.wait(interval):
            self.pump(now())
        self.stop(now())
