"""Running the band in real time, and the scripted command files.

Threads (see ARCHITECTURE.md): the analysis thread hands each player event to
:meth:`LiveBand.hear` (a queue put); the band thread wakes every ``tick`` seconds,
calls ``band.step(now)`` and hands the events due within ``handoff`` seconds to the
:class:`~improv.timing.Scheduler`, whose thread sends each at its time through a
:class:`BandOutput` (the MIDI port, the built-in synth, and the recorder/display as
events stamped with the time they went out). Commands from any thread go through
:meth:`LiveBand.command`; stop and panic clear the scheduler at once.

:class:`SessionClock` turns the wall clock into session seconds (audio time: sample 0
of the input is 0.0), anchored on the arrival of the audio blocks.

``--fast`` needs none of this: the session loop steps the band on audio time and
emits its events in time order (:class:`improv.session.AudioTimeDriver`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import mido

from ..errors import ConfigError
from ..events import Event, NoteOff, NoteOn
from ..events import Command
from ..output import DEFAULT_LAYOUT, BandLayout, encode
from ..runtime import realtime_thread
from ..timing import Scheduler
from .band import Band
from .commands import parse_command


class SessionClock:
    """Session seconds from ``time.perf_counter``, following the audio.

    Each input block gives an offset (arrival time - end of the block in audio time);
    the clock's origin is the smallest offset of the last ``window`` seconds, the block
    that arrived with the least delay. Late blocks (scheduling jitter) do not move it; a
    lasting shift — the audio clock falling behind the wall clock after a stall, lost
    blocks, drift — is followed within ``window`` seconds.
    """

    def __init__(self, window: float = 0.5):
        self.window = window
        self._origin = time.perf_counter()
        self._recent: deque[tuple[float, float]] = deque()  # (arrival, offset), offsets increasing

    def block(self, end_seconds: float) -> None:
        wall = time.perf_counter()
        offset = wall - end_seconds
        recent = self._recent
        while recent and recent[-1][1] >= offset:
            recent.pop()
        recent.append((wall, offset))
        while recent[0][0] < wall - self.window:
            recent.popleft()
        self._origin = recent[0][1]

    def now(self) -> float:
        return time.perf_counter() - self._origin

    @property
    def origin(self) -> float:
        return self._origin


class BandOutput:
    """The scheduler's sink: each band message to the MIDI port (on the band's channel in
    ``layout``), the built-in synth (on its own fixed channels), and the event sinks (as
    NoteOn/NoteOff stamped when sent)."""

    def __init__(self, port=None, synth=None, sinks: list[Callable[[Event], None]] | None = None,
                 layout: BandLayout = DEFAULT_LAYOUT, now: Callable[[], float] = time.perf_counter,
                 setup: dict[str, list[mido.Message]] | None = None):
        self.port = port
        self.synth = synth
        self.sinks = list(sinks or [])
        self.layout = layout
        self.now = now
        # program and volume, sent again just before each band's first note (a virtual
        # port is usually connected after the session started)
        self._setup = dict(setup or {})

    def messages(self, ev: Event) -> list[mido.Message]:
        return encode(ev, self.layout, bends=False)

    def send(self, msg: mido.Message) -> None:
        source = self.layout.source_of(getattr(msg, "channel", -1))
        if self.port is not None:
            if source in self._setup and msg.type == "note_on":
                for m in self._setup.pop(source):
                    self.port.send(m)
            self.port.send(msg)
        if source is None:
            return
        if self.synth is not None:
            self.synth.send(msg.copy(channel=DEFAULT_LAYOUT.channel(source)))
        if msg.type in ("note_on", "note_off"):
            t = self.now()
            ev: Event = NoteOn(t, msg.note, msg.velocity, source) if msg.type == "note_on" and msg.velocity \
                else NoteOff(t, msg.note, source)
            for sink in self.sinks:
                sink(ev)

    def panic(self) -> None:
        if self.port is not None:
            self.port.panic()
        if self.synth is not None:
            self.synth.all_notes_off()


class LiveBand:
    """A :class:`Band` in real time: its own thread, a scheduler, the output fan-out."""

    def __init__(self, band: Band, output: BandOutput, clock: SessionClock, output_latency_ms: float = 0.0,
                 tick: float = 0.01, handoff: float = 0.06, port=None,
                 on_warning: Callable[[str], None] | None = None, view=None):
        self.band = band
        self.output = output
        self.clock = clock
        self.tick = tick
        self.scheduler = Scheduler(output, output_latency_ms=output_latency_ms, now=clock.now)
        # a synth that takes the notes ahead of their time (the sampler) gets them from a
        # scheduler of its own, ``lead`` seconds early; the band hands them on that much earlier
        synth = output.synth
        self.synth_scheduler = Scheduler(synth, output_latency_ms=output_latency_ms, now=clock.now,
                                         lead=synth.lead) if getattr(synth, "timed", False) else None
        extra = max(0.0, synth.lead - 0.03) if self.synth_scheduler is not None else 0.0
        self.handoff = handoff + self.scheduler.latency + extra
        band.set_handoff(self.handoff)
        band.on_silence = self._silence
        self.port = port
        self.on_warning = on_warning
        self.view = view
        self._lock = threading.Lock()
        self._muted: set[str] = set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._port_missing = False
        self.step_seconds: deque[float] = deque(maxlen=10_000)  # the latest steps' durations
        # the least the plan was ahead of now when a step began (seconds; it must stay above
        # ``handoff`` or frames are skipped: band.skipped), from the band's first bar on
        self.lowest_lead = math.inf
        self.realtime = False   # its thread got real-time priority (runtime.realtime_thread)
        self.on_step: list[Callable[[float], None]] = []   # called after each step, in this thread (clock out)
        self.error: BaseException | None = None

    # ------------------------------------------------------------ inputs (any thread)

    def hear(self, ev: Event) -> None:
        self.band.hear(ev)
        self._wake.set()

    def command(self, cmd: Command) -> Command:
        """Validate and queue a command (see :meth:`Band.command`), stamped with the session time now."""
        out = self.band.command(cmd, now=self.clock.now())
        self._wake.set()
        return out

    def now(self) -> float:
        return self.clock.now()

    # ------------------------------------------------------------ thread

    def start(self) -> "LiveBand":
        self.scheduler.start()
        if self.synth_scheduler is not None:
            self.synth_scheduler.start()
        self._thread = threading.Thread(target=self._run, name="improv-band", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        next_check = 0.0
        next_view = 0.0
        self.realtime = realtime_thread()  # (where allowed) a loaded machine does not hold it back
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                now = self.clock.now()
                ahead = self.band.planned_until()
                if ahead is not None and ahead - now < self.lowest_lead:
                    self.lowest_lead = ahead - now
                self.band.step(now)
                with self._lock:
                    events = self.band.due(now + self.handoff)
                    for ev in events:
                        if ev.source in self._muted and isinstance(ev, NoteOn):
                            continue  # stopped meanwhile (note-offs always go)
                        for msg in self.output.messages(ev):
                            self.scheduler.schedule(ev.time, msg, tag=ev.source)
                        if self.synth_scheduler is not None:
                            for msg in encode(ev, DEFAULT_LAYOUT, bends=False):
                                self.synth_scheduler.schedule(ev.time, msg, tag=ev.source)
                    self._muted.clear()
                for hook in self.on_step:
                    hook(now)
                self.step_seconds.append(time.perf_counter() - t0)
                if now >= next_view:
                    self._update_view(now)
                    next_view = now + 0.1
                if now >= next_check:
                    self._check_port()
                    next_check = now + 1.0
                self._wake.wait(self.tick)
                self._wake.clear()
        except BaseException as e:  # noqa: BLE001 - kept and re-raised by close() in the session thread
            self.error = e

    def _silence(self, bands: tuple[str, ...], panic: bool) -> None:
        with self._lock:
            self._muted.update(bands)
            for scheduler in (self.scheduler, self.synth_scheduler):
                if scheduler is None:
                    continue
                if panic:
                    scheduler.panic()
                else:
                    for b in bands:
                        scheduler.clear(b)

    def _update_view(self, now: float) -> None:
        if self.view is not None:
            from ..display import show_band

            show_band(self.view, self.band, now)

    def _check_port(self) -> None:
        """An output port that went away: say so (the band goes on to the synth and the
        recording); when it is back, connect again and say so."""
        port = self.port
        if port is None or getattr(port.info, "virtual", True) or not hasattr(port, "present"):
            return
        present = port.present()
        if not present and not self._port_missing:
            self._port_missing = True
            self._warn(f"MIDI out {port.info.name!r} is gone; the band goes on (recording, synth); "
                       "reconnect it and it is picked up again")
        elif present and self._port_missing:
            if port.reopen():
                self._port_missing = False
                self._warn(f"MIDI out {port.info.name!r} is back")

    def _warn(self, text: str) -> None:
        if self.on_warning is not None:
            self.on_warning(text)

    def close(self) -> None:
        """Stop the thread; every band note ends now (sent, recorded); the scheduler panics."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        # The scheduler knows what sounds: stopping it drops what is pending and sends
        # note-offs for the rest (through the output, so the recording gets them too).
        if self.synth_scheduler is not None:
            self.synth_scheduler.stop(panic=True)
        self.scheduler.stop(panic=True)
        self.band.finish(self.clock.now())
        self.check()

    def check(self) -> None:
        """Raise the band thread's error, if it had one (called from the session loop)."""
        if self.error is not None:
            err, self.error = self.error, None
            raise err


# ---------------------------------------------------------------- scripts


def read_command_script(path: str | Path) -> list[Command]:
    """``--commands FILE``: one command a line, "SECONDS COMMAND" (``2.0 bass: make room``),
    session seconds; blank lines and ``#`` comments are skipped. Errors name the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"--commands {path}: cannot read it ({e.strerror}); give a text file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"--commands {path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    out: list[Command] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        when, _, rest = line.partition(" ")
        try:
            t = float(when)
        except ValueError:
            raise ConfigError(f"{path}:{n}: {when!r} is not a time; write 'SECONDS COMMAND', "
                              "e.g. '2.0 bass: make room'") from None
        if not math.isfinite(t) or t < 0:
            raise ConfigError(f"{path}:{n}: time {t:g} is not a time in the session; give seconds from 0")
        try:
            out.append(parse_command(rest, t))
        except ConfigError as e:
            raise ConfigError(f"{path}:{n}: {e}") from None
    out.sort(key=lambda c: c.time)
    return out
