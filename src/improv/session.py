"""One session: a source, the listener, an event bus and a band driver, stepped block by block.

Every front end runs the same loop — ``improv listen`` (microphone or a file in real
time), ``listen --fast``, the benchmarks and the tests — through :class:`Session`::

    source ──> listener ──> events ──> bus (MIDI port, synth, recorder, display, caller)
                                 └──> band driver (hears them; its events go to the bus too)

The band driver is chosen by strategy (:func:`make_driver`):

* :class:`AudioTimeDriver` — the band stepped on audio time at the end of every block,
  its events merged with the player's in time order (``--fast``, offline replays,
  benchmarks, tests on a fake clock);
* :class:`RealTimeDriver` — the band on its own thread with the scheduler
  (:class:`~improv.band.live.LiveBand`), its notes leaving at their time;
* :class:`NoBand` — listening only.

A source may be the microphone, a file, or nothing (:class:`~improv.audio.SilentSource`,
the band alone); player notes arriving from elsewhere (OSC) go in through
:meth:`Session.play`. Whatever way the loop ends — end of input, Ctrl-C, an error — every
output is closed in the reverse order it was opened: the band's notes end (sent and
recorded), the player's sounding note ends in the recording, the ports get
all-notes-off and the recording is saved.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import queue
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .audio import FileSource, MicSource, SilentSource
from .errors import ConfigError
from .events import PLAYER, Command, Event, NoteOn
from .listen.pipeline import Listener
from .listen.segmenter import DEFAULT_DECIDE, decide_settings
from .listen.trackers import DEFAULT_TRACKER, make_tracker
from .output import BandLayout, encode
from .record import CommandLog, SessionRecorder, session_dir, voice_messages
from .runtime import configure_process, freeze_heap, thaw_heap

if TYPE_CHECKING:
    from .band import Band, BandSettings
    from .band.live import LiveBand
    from .band.macros import CCMap, MacroSender
    from .control import ControlOptions
    from .midi import MidiOut
    from .synth import BandSynth, Voice


@dataclass
class ListenOptions:
    input: str | None = None
    device: str | None = None
    samplerate: int | None = None
    blocksize: int = 256
    fast: bool = False
    tracker: str = DEFAULT_TRACKER
    bends: bool = True
    bend_range: float = 2.0
    decide: str = DEFAULT_DECIDE
    midi_out: str | None = None
    midi_api: str | None = None
    midi: bool = True
    record: str | None = None
    bands: tuple[str, ...] = ()
    echo: bool = True
    fmin: float | None = None
    tuning: float | None = None
    # built-in sound: "auto" (FluidSynth unless --midi-out; quietly none if it cannot),
    # "fluidsynth" (errors are raised) or "none"; band voices: {band: Voice or (program, volume)}.
    synth: str = "none"
    soundfont: str | None = None
    voices: dict[str, Voice | tuple[int, int]] | None = None
    band: BandSettings | None = None     # None: defaults for ``bands``
    commands: list[Command] = field(default_factory=list)  # scripted, given when audio time passes them
    controls: ControlOptions | None = None  # foot controller, keyboard and OSC (None: none)
    channels: dict[str, int] | None = None  # MIDI channel per source on the port
    output_latency_ms: float = 0.0
    # keep every event in SessionResult.events (tests, benchmarks); a long live session keeps
    # only the counts (SessionResult.notes), so its memory does not grow with its length
    keep_events: bool = True
    clock_out: bool = False             # send MIDI clock from the band's tempo on the MIDI port
    clock_in: str | None = None         # follow the MIDI clock arriving on this input port
    link: bool = False                  # play to an Ableton Link session (tempo and phase)
    # live sampling (improv.sampler): the bands played with the player's own notes, the
    # folder their bank is loaded from and saved to, and its bound in seconds of audio
    sampler: tuple[str, ...] = ()
    sampler_bank: str | None = None
    sampler_seconds: float = 60.0
    cc_map: CCMap | None = None         # --cc-map: the band's state as MIDI CC macros


@dataclass
class SessionResult:
    events: list[Event] = field(default_factory=list)   # empty unless ListenOptions.keep_events
    notes: Counter = field(default_factory=Counter)      # note-ons by source
    recording: Path | None = None
    overflows: int = 0
    midi_port: str | None = None
    midi_errors: int = 0
    synth: str | None = None            # what plays the band, or why nothing does
    recording_error: str | None = None  # first write error of the recorder
    band: Band | None = None            # the Band that played (its log, for benchmarks)
    seconds: float = 0.0                # how much input the session heard
    interrupted: bool = False           # ended by Ctrl-C (everything above is filled in all the same)
    input_warnings: list[str] = field(default_factory=list)  # what was wrong with the input as a whole
    sampler: str | None = None          # what the sampler kept and played (with opts.sampler)
    band_lead: float | None = None      # real time: the least the band's plan was ahead of now (s)
    band_late_frames: int = 0           # frames the band skipped because it fell behind (an underrun)
    controls: int = 0                   # CC macro messages sent (--cc-map)


class EventBus:
    """Every event of the session, player's and band's, handed to each subscriber in turn."""

    def __init__(self) -> None:
        self._sinks: list[Callable[[Event], None]] = []

    def subscribe(self, sink: Callable[[Event], None]) -> None:
        self._sinks.append(sink)

    def publish(self, events) -> None:
        for ev in events:
            for sink in self._sinks:
                sink(ev)


class MidiSink:
    """Sends events to a MIDI port on their sources' channels (the player's only with ``echo``;
    bends only for the player, with ``bends``)."""

    def __init__(self, port: MidiOut, layout: BandLayout, bends: bool, echo: bool = True):
        self.port = port
        self.layout = layout
        self.bends = bends
        self.echo = echo

    def __call__(self, ev: Event) -> None:
        if ev.source == PLAYER and not self.echo:
            return
        for msg in encode(ev, self.layout, bends=self.bends and ev.source == PLAYER):
            self.port.send(msg)


# ------------------------------------------------------------------ band drivers


class BandDriver(Protocol):
    """How the band is stepped: it hears the player's events, takes commands, and gives
    the events to publish at the end of each block."""

    def hear(self, events: list[Event]) -> None: ...
    def command(self, cmd: Command) -> None: ...
    def advance(self, end: float) -> list[Event]: ...
    def finish(self, end: float) -> list[Event]: ...
    def close(self, end: float) -> list[Event]: ...


class NoBand:
    """Listening only: commands are logged, nothing plays."""

    def __init__(self, log: CommandLog):
        self.log = log

    def hear(self, events: list[Event]) -> None:
        pass

    def command(self, cmd: Command) -> None:
        self.log.add(cmd.time, cmd.target, cmd.command, cmd.value)

    def advance(self, end: float) -> list[Event]:
        return []

    def finish(self, end: float) -> list[Event]:
        return []

    def close(self, end: float) -> list[Event]:
        return []


class AudioTimeDriver:
    """The band on audio time: stepped at the end of every block, each command at its own
    time; what is due by the block's end is returned to be published in time order."""

    def __init__(self, band: Band):
        self.band = band
        self._finished = False
        self.on_step: list[Callable[[float], None]] = []  # called after each step (the CC macros)

    def hear(self, events: list[Event]) -> None:
        for ev in events:
            self.band.hear(ev)

    def command(self, cmd: Command) -> None:
        self.band.command(cmd)

    def advance(self, end: float) -> list[Event]:
        self.band.step(end)
        for hook in self.on_step:
            hook(end)
        return self.band.due(end)

    def finish(self, end: float) -> list[Event]:
        self._finished = True
        return self.band.finish(end)

    def close(self, end: float) -> list[Event]:
        """After an error: the band's sounding notes end (for the recording)."""
        return [] if self._finished else self.finish(end)


class RealTimeDriver:
    """The band on its own thread (:class:`~improv.band.live.LiveBand`): its notes leave
    through the scheduler, the port, the synth and the recorder at their time, so
    ``advance`` publishes nothing; it only raises the band thread's error."""

    def __init__(self, live: LiveBand):
        self.live = live

    def hear(self, events: list[Event]) -> None:
        for ev in events:
            self.live.hear(ev)

    def command(self, cmd: Command) -> None:
        self.live.command(cmd)

    def advance(self, end: float) -> list[Event]:
        self.live.check()
        return []

    def finish(self, end: float) -> list[Event]:
        return []

    def close(self, end: float) -> list[Event]:
        self.live.close()  # every band note off, through the port, synth and recorder
        return []


def play_offline(band: Band, ends, events, tail=(), commands: list[Command] = ()) -> list[Event]:
    """The band's events over the player's ``events`` heard by block (``ends[i]``: the end
    of block i), with scripted ``commands`` given when audio time passes them — the loop
    :class:`Session` runs with ``--fast``, for replays of one hearing."""
    driver = AudioTimeDriver(band)
    script = sorted(commands, key=lambda c: c.time)
    out: list[Event] = []
    end = 0.0
    for end, heard in zip(ends, events):
        driver.hear(heard)
        while script and script[0].time <= end:
            driver.command(script.pop(0))
        out.extend(driver.advance(end))
    driver.hear(list(tail))
    out.extend(driver.finish(end))
    return out


# ------------------------------------------------------------------ the session


class Session:
    """One listening session from a source to the outputs (see the module doc).

    ``on_event`` gets every event published, ``on_command`` every command logged,
    ``on_start(listener, source)`` is called once both exist, ``on_band`` receives what
    commands go to (``.command(Command)``), ``on_warning`` one-line warnings, and
    ``view`` (a display: ``bands`` of BandState, ``set_clock``) the band's state. ``band``
    plays instead of one made from ``opts`` (a long-running server keeps its model loaded).
    """

    def __init__(self, opts: ListenOptions, *, source=None, band: Band | None = None,
                 on_event: Callable[[Event], None] | None = None,
                 on_command: Callable[[Command], None] | None = None,
                 on_start: Callable[[Listener, object], None] | None = None,
                 on_band: Callable[[object], None] | None = None,
                 on_warning: Callable[[str], None] | None = None,
                 view=None):
        if not 0 < opts.bend_range <= 24:
            raise ConfigError(f"--bend-range {opts.bend_range:g}: give 0 < semitones <= 24")
        self.opts = opts
        self.layout = BandLayout.make(opts.channels, bend_range=opts.bend_range)
        self.band = band if band is not None else _make_band(opts)  # before any port opens: a missing
        # model is said first
        tracker_opts = {"fmin": opts.fmin} if opts.fmin and opts.tracker == "yin" else {}
        self.tracker = make_tracker(opts.tracker, **tracker_opts)
        configure_process()  # once its parts are loaded: torch (if any of them use it) on one thread
        self.source = source if source is not None else _open_source(opts)
        settings = decide_settings(opts.decide, bends=opts.bends, bend_range=opts.bend_range,
                                   fixed_tuning=opts.tuning)
        self.listener = Listener(self.tracker, self.source.sample_rate, settings)
        self.bus = EventBus()
        self.result = SessionResult(band=self.band)
        self.on_event, self.on_command, self.on_band = on_event, on_command, on_band
        self.on_warning, self.view = on_warning, view
        self.driver: BandDriver | None = None
        self.recorder: SessionRecorder | None = None
        self.sampler = None  # the live sampler (improv.sampler.jackout.SamplerSynth), with opts.sampler
        self._inbox: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._notes: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._direct: Callable[[Command], None] | None = None
        self.end = 0.0
        if on_start is not None:
            on_start(self.listener, self.source)

    # ------------------------------------------------------------ from other threads

    def command(self, cmd: Command) -> None:
        """A command from any thread: straight to a real-time band, else at the next block."""
        if self._direct is not None:
            self._direct(cmd)
        else:
            self._inbox.put(cmd)

    def play(self, ev: Event) -> None:
        """A player event from elsewhere (notes over OSC, a DAW), from any thread: heard
        at the end of the block in which its time falls (at once if that has passed)."""
        self._notes.put(ev)

    def now(self) -> float:
        clock = getattr(self.driver, "live", None)
        return clock.now() if clock is not None else self.end

    # ------------------------------------------------------------ running

    def run(self, stop: threading.Event | None = None) -> SessionResult:
        """Run until the input ends or ``stop`` is set; every output is closed on the way out."""
        with contextlib.ExitStack() as outputs:
            try:
                self._open_outputs(outputs)
                freeze_heap()  # start-up's objects out of the collector's full scans (runtime)
                outputs.callback(thaw_heap)
                self._loop(stop)
            except KeyboardInterrupt:
                self.result.interrupted = True  # everything closes all the same, in order
        return self.result

    def _open_outputs(self, stack: contextlib.ExitStack) -> None:
        from .synth import as_voices, open_synth

        opts, result, band = self.opts, self.result, self.band
        stack.callback(self._close_source)
        voices = as_voices(opts.voices)
        port = None
        if opts.midi:
            from .midi import MidiOut

            port = MidiOut(opts.midi_out, opts.midi_api)
            port.on_gone = self.on_warning  # the MIDI server stopped: one line, the session goes on
            stack.callback(self._close_port, port)
            result.midi_port = f"{port.info.name} ({port.info.api})"
            if opts.echo or (band is not None and opts.fast):
                self.bus.subscribe(MidiSink(port, self.layout, opts.bends, echo=opts.echo))
        mode = "auto" if opts.synth == "sampler" else opts.synth
        synth, result.synth = open_synth(mode, opts.soundfont, midi_out=opts.midi_out if not opts.sampler else None,
                                         voices=voices, bend_range=opts.bend_range)
        if opts.sampler:
            synth = self._open_sampler(synth, stack)
        elif synth is not None:
            stack.callback(synth.close)
        if synth is not None:
            self.bus.subscribe(synth)
        recorder = None
        if opts.record:
            recorder = SessionRecorder(session_dir(opts.record), opts.bend_range, voices=voices,
                                       on_error=self.on_warning,
                                       timing=band.bar_timing if band is not None else None)  # the bars
            stack.callback(self._close_recorder, recorder)
            result.recording = recorder.folder
            self.bus.subscribe(recorder.add)
        self.recorder = recorder
        if self.sampler is not None:  # the bank used, saved before the sampler closes
            stack.callback(self._save_bank)
        log = CommandLog(*[s for s in (recorder and recorder.add_command, self.on_command) if s])
        self.keep = _keeper(result, opts.keep_events)
        self.bus.subscribe(self.keep)
        if self.on_event is not None:
            self.bus.subscribe(self.on_event)
        stack.callback(self._end_player_note)
        self.driver = make_driver(self, band, log, port, synth, voices, stack)
        stack.callback(self._close_driver)
        if self.on_band is not None and band is not None:
            live = getattr(self.driver, "live", None)
            self.on_band(live if live is not None else band)
        if opts.controls is not None:
            from .control import open_controls

            controls = open_controls(opts.controls, on_command=self.command, now=self.now, log=self.on_warning)
            stack.callback(controls.close)

    def _open_sampler(self, fallback, stack: contextlib.ExitStack):
        """The live sampler for ``opts.sampler``, FluidSynth (if open) playing the rest."""
        from .sampler import open_sampler

        opts = self.opts
        try:
            sampler = open_sampler(opts.sampler, self.source.sample_rate, fallback, opts.sampler_bank,
                                   opts.sampler_seconds, origin=lambda: self._origin())
        except BaseException:
            if fallback is not None:
                fallback.close()
            raise
        stack.callback(sampler.close)
        gm = self.result.synth if fallback is not None else f"none ({self.result.synth})"
        self.result.synth = (f"sampler ({','.join(opts.sampler)}) via JACK {sampler.out.name}, "
                             f"{len(sampler.bank)} notes in its bank; General MIDI: {gm}")
        self.sampler = sampler
        return sampler

    def _origin(self) -> float:
        live = getattr(self.driver, "live", None)
        return live.clock.origin if live is not None else 0.0

    def _save_bank(self) -> None:
        sampler = self.sampler
        bank = sampler.bank
        left = sampler.catcher.rejected if sampler.catcher is not None else {}
        words = {"frozen": "while frozen", "short": "too short", "bent": "sliding", "quiet": "too quiet",
                 "gone": "too long ago"}
        why = ", ".join(f"{n} {words.get(k, k)}" for k, n in sorted(left.items()))
        self.result.sampler = (f"{bank.added} of your notes kept" + (f", {sum(left.values())} not ({why})" if why
                                                                       else "")
                               + f", {len(bank)} in the bank ({bank.seconds:.1f} s); the band played "
                               f"{sampler.sampled} notes with them, {sampler.general} General MIDI")
        for folder in (self.opts.sampler_bank, self.recorder and self.recorder.folder / "sampler-bank"):
            if folder is None:
                continue
            try:
                bank.save(folder)
            except ConfigError as e:
                if self.on_warning is not None:
                    self.on_warning(str(e))

    def _loop(self, stop: threading.Event | None) -> None:
        opts, driver, listener = self.opts, self.driver, self.listener
        script = sorted(opts.commands, key=lambda c: c.time)
        live = getattr(driver, "live", None)
        clock = live.clock if live is not None else None
        next_view = 0.0
        notes: list = []  # player notes from elsewhere, heard when audio time reaches them
        heard_audio = not isinstance(self.source, SilentSource)  # (no input: no input.wav of silence)
        order = itertools.count()
        for block in self.source.blocks(stop):
            self.end = end = block.end / block.sample_rate
            if clock is not None:
                clock.block(end)
            if self.recorder is not None and heard_audio:  # input audio, written by the recorder's thread
                self.recorder.add_audio(block)
            if self.sampler is not None:
                self.sampler.add_audio(block)
            events = listener.process(block)
            while not self._notes.empty():
                ev = self._notes.get()
                heapq.heappush(notes, (ev.time, next(order), ev))
            if notes and notes[0][0] <= end:
                while notes and notes[0][0] <= end:
                    events.append(heapq.heappop(notes)[2])
                events.sort(key=lambda e: e.time)
            driver.hear(events)
            while not self._inbox.empty():
                driver.command(self._inbox.get())  # at its own time (the band knows what it sent)
            while script and script[0].time <= end:
                driver.command(script.pop(0))
            band_events = driver.advance(end)
            self.bus.publish(sorted([*events, *band_events], key=lambda e: e.time) if band_events else events)
            if self.view is not None and live is None and self.band is not None and end >= next_view:
                from .display import show_band

                show_band(self.view, self.band, end)
                next_view = end + 0.1
        tail = listener.finish(self.end)
        self._player_done = True
        self.result.input_warnings = listener.input_warnings() if heard_audio else []
        for line in self.result.input_warnings if self.on_warning is not None else ():
            self.on_warning(line)
        driver.hear(tail)
        self.bus.publish(tail)
        self.bus.publish(driver.finish(self.end))

    # ------------------------------------------------------------ closing (reverse order of opening)

    _player_done = False

    def _end_player_note(self) -> None:
        """Ended by an error (the input stopped): the player's sounding note ends in the
        recording too (the ports get all-notes-off when they close)."""
        if self._player_done:
            return
        for ev in self.listener.finish(self.end):
            self.keep(ev)
            if self.recorder is not None:
                self.recorder.add(ev)

    def _close_driver(self) -> None:
        # after an error with --fast: the band's notes end in the recording too
        for ev in self.driver.close(self.end):
            if self.recorder is not None:
                self.recorder.add(ev)
        live = getattr(self.driver, "live", None)
        if live is not None and live.lowest_lead != float("inf"):
            self.result.band_lead = live.lowest_lead
        if self.band is not None:
            self.result.band_late_frames = self.band.skipped

    def _close_source(self) -> None:
        if isinstance(self.source, MicSource):
            self.source.close()
        self.result.overflows = getattr(self.source, "overflows", 0)
        self.result.seconds = self.end

    def _close_port(self, port: MidiOut) -> None:
        self.result.midi_errors = port.errors
        port.close()

    def _close_recorder(self, recorder: SessionRecorder) -> None:
        recorder.close()
        self.result.recording_error = recorder.error
        if self.band is not None and recorder.error is None:  # chords.jsonl and chord markers in session.mid
            from .harmony.record import write_chords

            write_chords(recorder.folder, self.band.chords)


def _keeper(result: SessionResult, keep_events: bool) -> Callable[[Event], None]:
    """The sink that counts note-ons by source into ``result.notes`` (and keeps every event)."""
    counts, events = result.notes, result.events

    def keep(ev: Event) -> None:
        if isinstance(ev, NoteOn):
            counts[ev.source] += 1
        if keep_events:
            events.append(ev)
    return keep


def make_driver(session: Session, band: Band | None, log: CommandLog, port, synth: BandSynth | None,
                voices, stack: contextlib.ExitStack) -> BandDriver:
    """The band driver for the session's options: none, audio time (``fast``) or real time
    (with the studio's clock: MIDI clock in or out, Link; their closing goes on ``stack``)."""
    opts = session.opts
    if band is None:
        return NoBand(log)
    sampler = session.sampler

    def on_command(c: Command) -> None:
        log.add(c.time, c.target, c.command, c.value)
        if sampler is not None:
            sampler.command(c)
    band.on_command = on_command
    layout = session.layout
    setup = {name: voice_messages(layout.channel(name), voices[name]) for name in band.players}
    if port is not None:
        for msgs in setup.values():
            for msg in msgs:
                port.send(msg)
    if opts.fast:
        driver = AudioTimeDriver(band)
        if opts.cc_map is not None:
            driver.on_step.append(_macros(session, band, opts.cc_map, _send_now(session, port, synth)).pump)
        return driver
    from .band.live import BandOutput, LiveBand, SessionClock

    clock = SessionClock()
    sinks = [s for s in (session.recorder and session.recorder.add, session.keep, session.on_event) if s]
    output = BandOutput(port, synth, sinks, layout, now=clock.now, setup=setup)
    live = LiveBand(band, output, clock, opts.output_latency_ms, port=port, on_warning=session.on_warning,
                    view=session.view)
    if opts.clock_in:  # follow an external MIDI clock (start/stop, tempo)
        from .midi import MidiIn
        from .timing import MidiClockIn

        follower = MidiClockIn(band.time.meter)
        band.time.external = follower
        clock_in = MidiIn(lambda msg, _d: follower.on_message(msg, clock.now()), opts.clock_in,
                          opts.midi_api, client="improv-clock-in")
        stack.callback(clock_in.close)
    if opts.link:  # Ableton Link: tempo and phase from the session's peers
        from .timing import LinkClock

        link = LinkClock(band.settings.tempo or 120.0, band.time.meter, origin=clock.origin)
        band.time.external = link
        live.on_step.append(lambda now: setattr(link, "origin", clock.origin))  # audio-anchored
        stack.callback(link.close)
    if opts.clock_out:  # MIDI clock out from the band's tempo
        from .band.sync import band_clock_out

        live.on_step.append(band_clock_out(band, live.scheduler).pump)
    if opts.cc_map is not None:  # CC macros at their beat's time, through the scheduler as the notes
        def scheduled(cc) -> None:
            live.scheduler.schedule(cc.time, cc.message(), tag="cc")

        live.on_step.append(_macros(session, band, opts.cc_map, scheduled).pump)
    live.start()
    session._direct = live.command
    return RealTimeDriver(live)


def _macros(session: Session, band: Band, ccmap: CCMap, send: Callable) -> MacroSender:
    """The CC macros of ``ccmap`` read from ``band``: each one sent (``send``), recorded and counted."""
    from .band.macros import MacroSender

    def emit(cc) -> None:
        send(cc)
        session.result.controls += 1
        if session.recorder is not None:
            session.recorder.add_control(cc)

    return MacroSender(ccmap, band, emit)


def _send_now(session: Session, port, synth) -> Callable:
    """--fast: a CC macro goes out at once (as the band's notes do), to the port and to the
    built-in synth when its channel is a band's."""
    from .output import DEFAULT_LAYOUT

    def send(cc) -> None:
        msg = cc.message()
        if port is not None:
            port.send(msg)
        source = session.layout.source_of(cc.channel)
        if synth is not None and source is not None:
            synth.send(msg.copy(channel=DEFAULT_LAYOUT.channel(source)))

    return send


def _open_source(opts: ListenOptions):
    if opts.input:
        return FileSource(opts.input, blocksize=opts.blocksize, fast=opts.fast)
    return MicSource(opts.device, opts.samplerate, opts.blocksize)


def _make_band(opts: ListenOptions) -> Band | None:
    """The Band for ``opts.bands`` (None without bands); loads the model."""
    if not opts.bands:
        return None
    from dataclasses import replace

    from .band import Band, BandSettings

    settings = replace(opts.band, bands=tuple(opts.bands)) if opts.band is not None \
        else BandSettings(bands=tuple(opts.bands))
    return Band(settings)


def run_listen(opts: ListenOptions, stop: threading.Event | None = None, **callbacks) -> SessionResult:
    """Run one session (see :class:`Session` for the callbacks) until the input ends or
    ``stop`` is set."""
    return Session(opts, **callbacks).run(stop)


__all__ = ["AudioTimeDriver", "EventBus", "ListenOptions", "NoBand", "RealTimeDriver", "Session",
           "SessionResult", "make_driver", "play_offline", "run_listen", "PLAYER"]
