"""Send band notes at their planned time.

:class:`Scheduler` keeps planned MIDI messages (times in seconds on the session
clock) in a heap and sends each one ``output_latency_ms`` before its time, so a
synth that takes that long to sound still lands on the beat. Two kinds of sink:

* a *plain* sink (:class:`improv.midi.MidiOut`, anything with ``send(mido.Message)``
  and ``panic()``): the scheduler's thread waits until the send time — a condition
  wait until ~2 ms before, then one precise ``sleep`` — and sends. On JACK, rtmidi
  writes the message at the start of the next JACK cycle, so it lands 0 to 1 period
  after it was sent: see :class:`improv.timing.jackmidi.JackMidiOut` for
  frame-accurate output.
* a *timed* sink (``timed = True``, ``send_at(t, data)``): the scheduler hands the
  message over ``lead`` seconds early with its send time, and the sink places it
  (for JACK: at the exact frame inside the cycle).

``panic()`` drops everything pending and turns off every sounding note; ``clear(tag)``
drops the pending messages of one band player (and sends note-offs for its notes that
are sounding, so nothing hangs).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import mido

from ..errors import ConfigError
from ..runtime import SWITCH_INTERVAL, configure_process, realtime_thread

MAX_OUTPUT_LATENCY_MS = 500.0


def check_output_latency(ms: float) -> float:
    if not (0.0 <= float(ms) <= MAX_OUTPUT_LATENCY_MS):
        raise ConfigError(f"--output-latency-ms {ms:g}: give 0 to {MAX_OUTPUT_LATENCY_MS:g} milliseconds "
                          "(the delay of your synth from MIDI to sound)")
    return float(ms)


@dataclass(order=True)
class _Item:
    due: float  # send time (planned time minus output latency), session seconds
    seq: int
    data: bytes = field(compare=False)
    planned: float = field(compare=False)
    tag: str | None = field(compare=False, default=None)


@dataclass
class SendRecord:
    planned: float  # the time the message is meant to sound
    due: float  # when it was to be sent
    sent: float  # when it was sent (plain sinks) or handed over (timed sinks)
    data: bytes


class Scheduler:
    """A thread that sends planned MIDI messages at their time (see the module doc).

    ``now`` returns the session time (default ``time.perf_counter``: pass
    ``lambda: time.perf_counter() - origin`` for a session that starts at ``origin``).
    """

    def __init__(self, sink, output_latency_ms: float = 0.0, now: Callable[[], float] = time.perf_counter,
                 lead: float = 0.03, precise: float = 0.002, keep_records: int = 10_000,
                 switch_interval: float | None = SWITCH_INTERVAL):
        self.sink = sink
        self.latency = check_output_latency(output_latency_ms) / 1000.0
        self.now = now
        self.timed = bool(getattr(sink, "timed", False))
        self.lead = lead if self.timed else 0.0
        self.precise = precise
        self.keep_records = keep_records
        self.records: deque[SendRecord] = deque(maxlen=keep_records)  # the latest (bounded memory)
        self.dropped_late = 0
        self._heap: list[_Item] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._delivering = threading.Lock()  # held while a message is taken and sent
        self._stop = False
        self._thread: threading.Thread | None = None
        self._switch = switch_interval
        # (channel, note) of the notes sent and not yet ended -> (tag, time they were sent for)
        self._sounding: dict[tuple[int, int], tuple[str | None, float]] = {}
        self.realtime = False   # its thread got real-time priority (runtime.realtime_thread)

    # ------------------------------------------------------------- control

    def start(self) -> "Scheduler":
        if self._thread is None:
            # the GIL switch interval, once for the process: the default 5 ms would let another
            # busy thread delay a send by 5 ms
            configure_process(switch_interval=self._switch if self._switch is not None else SWITCH_INTERVAL)
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="improv-scheduler", daemon=True)
            self._thread.start()
        return self

    def stop(self, panic: bool = True) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        if panic:
            self.panic()

    def __enter__(self) -> "Scheduler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------- planning

    def schedule(self, t: float, msg: mido.Message | bytes | list[int], tag: str | None = None) -> None:
        """Plan ``msg`` to sound at session time ``t``; ``tag`` names its band player."""
        data = bytes(msg.bytes()) if isinstance(msg, mido.Message) else bytes(msg)
        item = _Item(t - self.latency - self.lead, next(self._seq), data, t, tag)
        with self._cond:
            heapq.heappush(self._heap, item)
            if self._heap[0] is item:
                self._cond.notify()

    def pending(self, tag: str | None = None) -> int:
        with self._cond:
            return sum(1 for it in self._heap if tag is None or it.tag == tag)

    def clear(self, tag: str | None = None) -> None:
        """Drop pending messages (of ``tag``, or all) and end their sounding notes.

        With a timed sink, messages already handed over (``lead`` seconds ahead) still
        play; their notes are ended just after them, so none is left hanging.
        """
        with self._delivering:
            self._clear(tag)

    def _clear(self, tag: str | None) -> None:
        with self._cond:
            if tag is None:
                self._heap = []
            else:
                self._heap = [it for it in self._heap if it.tag != tag]
                heapq.heapify(self._heap)
            ending = [(k, at) for k, (tg, at) in self._sounding.items() if tag is None or tg == tag]
            for k, _ in ending:
                del self._sounding[k]
        now = self.now()
        for (ch, note), at in ending:
            self._send_now(bytes([0x80 | ch, note, 0]), max(now, at + 0.001))

    def panic(self) -> None:
        """Drop everything pending; note-offs for sounding notes, then the sink's all-notes-off."""
        self.clear(None)
        panic = getattr(self.sink, "panic", None)
        if panic is not None:
            panic()

    # ------------------------------------------------------------- sending

    def _run(self) -> None:
        self.realtime = realtime_thread()
        while True:
            with self._cond:
                while not self._stop:
                    if self._heap:
                        wait = self._heap[0].due - self.now() - self.precise
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait(0.5)
                if self._stop:
                    return
                item = self._heap[0]
            delay = item.due - self.now()
            if delay > 0:
                time.sleep(delay)
            # Taking the message and sending it is one step for clear(): a clear either drops
            # the message or finds its note sounding (and ends it), never one in between.
            with self._delivering:
                with self._cond:
                    if not self._heap or self._heap[0] is not item:
                        continue  # cleared or pre-empted by an earlier message while sleeping
                    heapq.heappop(self._heap)
                self._deliver(item)

    def _deliver(self, item: _Item) -> None:
        data = item.data
        status = data[0] & 0xF0 if data else 0
        if status == 0x90 and len(data) == 3 and data[2] > 0:
            with self._cond:
                self._sounding[(data[0] & 0x0F, data[1])] = (item.tag, item.planned - self.latency)
        elif status in (0x80, 0x90) and len(data) == 3:
            with self._cond:
                self._sounding.pop((data[0] & 0x0F, data[1]), None)
        if self.timed:
            self.sink.send_at(item.planned - self.latency, data)
        else:
            self._send_now(data)
        self.records.append(SendRecord(item.planned, item.due, self.now(), data))

    def _send_now(self, data: bytes, at: float | None = None) -> None:
        if self.timed:
            self.sink.send_at(self.now() if at is None else at, data)
        else:
            self.sink.send(mido.Message.from_bytes(data))

    def lateness_ms(self) -> list[float]:
        """Send time minus due time of every sent message (ms): the thread's own accuracy."""
        return [1000.0 * (r.sent - r.due) for r in self.records]
