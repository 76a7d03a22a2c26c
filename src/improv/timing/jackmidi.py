"""Frame-accurate MIDI on JACK: a client of improv's own with a MIDI out port that
writes each message at the exact frame of its time, and MIDI in ports that stamp
each message with the time of its frame.

rtmidi's JACK backend writes what it is sent at frame 0 of the next cycle and stamps
what it receives with the time its process callback ran, so both are off by up to
one period (5.3 ms at 256 frames and 48 kHz). Here the process callback maps frames to
the session clock (``time.perf_counter`` minus ``origin``): the frame count in seconds
plus an offset that follows the lower envelope of the callback's wake-up times. JACK's
own ``jack_get_cycle_times`` was tried first: its DLL-smoothed times drift from the wall
clock by up to seconds after the server stalls (any client joining the graph stalls the
dummy driver for a few hundred ms), which put messages that far off.

The process callback is Python (JACK-Client): it takes a lock, pops due messages and
appends received ones; nothing else. It needs the ``JACK-Client`` package.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from ..errors import MidiError


class FrameClock:
    """Session time minus frame-clock seconds, followed from the process callbacks' wake-ups.

    A cycle's first frame is at the session time of its frame count in seconds plus an
    offset that follows the lower envelope of the callback's wake-up times (the
    callback never runs before its cycle starts): down at once, up by a tenth of the
    gap (at most 0.5 ms) each cycle, since under load the dummy driver's frame count
    slips behind the wall clock a little at every late cycle. Wake-ups more than 5 ms
    late three cycles running are a stall of the server (a client joining the graph
    stalls the dummy driver): the offset jumps to the smallest of them. A single very
    late wake-up is only a late wake-up.
    """

    def __init__(self) -> None:
        self.offset: float | None = None
        self._high: list[float] = []

    def follow(self, d: float) -> float:
        """One cycle's wake-up (session time minus the cycle's first frame in seconds); the offset."""
        if self.offset is None or d < self.offset:
            self.offset, self._high = d, []
        elif d - self.offset > 0.005:
            self._high.append(d)
            if len(self._high) >= 3:
                self.offset, self._high = min(self._high), []
        else:
            self._high = []
            self.offset += min(0.1 * (d - self.offset), 0.0005)
        return self.offset


class JackMidi:
    """One JACK client: MIDI out ``out`` (timed sink for the Scheduler) and MIDI ins.

    ``inputs`` maps an input port name to ``callback(data: bytes, t: float)`` called in
    JACK's thread with the session time of the message's frame (with ``frame_stamps``:
    the frame in seconds, to which :meth:`frame_offset` adds the session time): keep it
    short (:meth:`MidiClockIn.feed_bytes` is). For a MIDI clock::

        follower = MidiClockIn()
        jm = JackMidi(inputs={"clock": follower.feed_bytes}, frame_stamps=True)
        follower.follow_frames(jm.frame_offset)
 ``connect_out``/``connect_in`` wire ports
    by full name (``jack_lsp`` lists them).
    """

    timed = True

    def __init__(self, name: str = "improv-timing", out: str | None = "out",
                 inputs: dict[str, Callable[[bytes, float], None]] | None = None, origin: float = 0.0,
                 frame_stamps: bool = False):
        try:
            import jack
        except ImportError:
            raise MidiError("frame-accurate JACK MIDI needs the JACK-Client package (pip install JACK-Client)") from None
        self._jack = jack
        try:
            self.client = jack.Client(name, no_start_server=True)
        except jack.JackError as e:
            raise MidiError(f"no JACK server is running ({e}); start one (jackd -d dummy, or your JACK setup)") from None
        self.out = self.client.midi_outports.register(out) if out else None
        self.inports = [(self.client.midi_inports.register(n), cb) for n, cb in (inputs or {}).items()]
        self._queue: deque[tuple[float, bytes]] = deque()  # (session time, data), in time order
        self._lock = threading.Lock()
        self._sounding: set[tuple[int, int]] = set()
        self.late = 0  # messages written in a cycle after their frame had passed
        self.xruns = 0
        self.written: list[tuple[int, float, bytes]] = []  # (frame, planned time, data), for measurements
        self.keep_written = 0
        self._rate = float(self.client.samplerate)
        self._origin = origin
        self.frames = FrameClock()
        self.frame_stamps = frame_stamps
        self._last_f0 = 0
        self._wraps = 0
        self.cycle = (0, 0.0, 1.0, 1)  # (first frame, its session time, seconds, frames) of the last cycle
        self.client.set_xrun_callback(self._on_xrun)
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _on_xrun(self, delay) -> None:
        self.xruns += 1

    # ---------------------------------------------------------------- timed sink

    def send_at(self, t: float, data: bytes) -> None:
        """Write ``data`` at the frame of session time ``t`` (now if ``t`` has passed)."""
        if self.out is None:
            return
        with self._lock:
            if self._queue and t < self._queue[-1][0]:
                items = sorted([*self._queue, (t, bytes(data))], key=lambda x: x[0])
                self._queue = deque(items)
            else:
                self._queue.append((t, bytes(data)))

    def send(self, msg) -> None:
        self.send_at(-1e9, bytes(msg.bytes()))

    def panic(self) -> None:
        with self._lock:
            self._queue.clear()
            sounding, self._sounding = sorted(self._sounding), set()
        now = -1e9
        for ch, note in sounding:
            self.send_at(now, bytes([0x80 | ch, note, 0]))
        for ch in range(16):
            self.send_at(now, bytes([0xB0 | ch, 123, 0]))
            self.send_at(now, bytes([0xB0 | ch, 120, 0]))

    # ---------------------------------------------------------------- JACK thread

    def _process(self, frames: int) -> None:
        woke = time.perf_counter()
        f0 = self.client.last_frame_time
        if f0 < self._last_f0:
            self._wraps += 1  # the 32-bit frame counter wrapped (every ~25 h at 48 kHz)
        self._last_f0 = f0
        span = frames / self._rate
        base = (f0 + self._wraps * 2**32) / self._rate
        # the session time of this cycle's first frame (see FrameClock)
        t0 = base + self.frames.follow(woke - self._origin - base)
        self.cycle = (f0, t0, span, frames)
        stamp0 = base if self.frame_stamps else t0
        for port, cb in self.inports:
            for offset, data in port.incoming_midi_events():
                cb(bytes(data), stamp0 + offset * span / frames)
        if self.out is None:
            return
        self.out.clear_buffer()
        t_end = t0 + span
        last = -1
        with self._lock:
            while self._queue and self._queue[0][0] < t_end:
                t, data = self._queue.popleft()
                off = int(round((t - t0) * frames / span))
                if off < 0:
                    if t > -1e8:
                        self.late += 1
                    off = 0
                off = min(max(off, last), frames - 1)  # JACK wants events in frame order
                try:
                    self.out.write_midi_event(off, data)
                except self._jack.JackError:
                    self.late += 1  # the port's buffer is full: dropped, counted
                    continue
                last = off
                st = data[0] & 0xF0
                if st == 0x90 and len(data) == 3 and data[2] > 0:
                    self._sounding.add((data[0] & 0x0F, data[1]))
                elif st in (0x80, 0x90) and len(data) == 3:
                    self._sounding.discard((data[0] & 0x0F, data[1]))
                if len(self.written) < self.keep_written:
                    self.written.append((f0 + off, t, data))

    def frame_offset(self) -> float:
        """Session time minus frame-clock seconds, now (for ``frame_stamps`` inputs)."""
        return self.frames.offset or 0.0

    # ---------------------------------------------------------------- wiring

    @property
    def out_name(self) -> str:
        return self.out.name

    def in_name(self, port: str) -> str:
        return f"{self.client.name}:{port}"

    def connect_out(self, destination: str) -> None:
        self.client.connect(self.out, destination)

    def connect_in(self, source: str, port: str) -> None:
        self.client.connect(source, self.in_name(port))

    def frame_of(self, t: float) -> float:
        """The JACK frame (fractional) of session time ``t``, from the current cycle's times."""
        f0, t0, span, frames = self.cycle
        return f0 + (t - t0) * frames / span

    def close(self) -> None:
        try:
            self.panic()
            time.sleep(2 * self.client.blocksize / self.client.samplerate + 0.005)
        finally:
            self.client.deactivate()
            self.client.close()

    def __enter__(self) -> "JackMidi":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
