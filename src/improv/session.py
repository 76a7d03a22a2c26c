"""``improv listen``: one session from an audio source to MIDI out and a recording.

The analysis loop runs in the calling thread: it pulls blocks from the source (the
microphone's ring buffer or a file), runs the listener and hands each event to the
sinks. Whatever way the loop ends — end of file, Ctrl-C, an error — the MIDI ports
get all-notes-off and the recording is saved.

With band players (``bands``): in real time the band runs in its own thread
(:class:`improv.band.live.LiveBand`) and its notes leave through the scheduler at
their time; with ``fast`` file input the loop steps the band itself on audio time
(the end of each block) and emits the player's and the band's events in time order.
Scripted commands (``commands``) are given to the band when audio time passes them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .audio import FileSource, MicSource
from .errors import ConfigError
from .events import PLAYER, Event, NoteOn, note_name
from .listen.pipeline import Listener
from .listen.segmenter import SegmenterSettings
from .listen.trackers import DEFAULT_TRACKER, make_tracker
from .midi import MidiOut
from .record import CHANNELS, Command, CommandLog, SessionRecorder, event_messages, session_dir, voice_messages
from .synth import as_voices, open_synth  # [output] built-in synth

BAND_CHANNELS = {b: CHANNELS[b] for b in ("bass", "mid", "high")}


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
    midi_out: str | None = None
    midi_api: str | None = None
    midi: bool = True
    record: str | None = None
    bands: tuple[str, ...] = ()
    echo: bool = True
    fmin: float | None = None
    tuning: float | None = None
    # [output] built-in sound: "auto" (FluidSynth unless --midi-out; quietly none if it cannot),
    # "fluidsynth" (errors are raised) or "none"; band voices: {band: Voice or (program, volume)}.
    synth: str = "none"
    soundfont: str | None = None
    voices: dict | None = None
    # [band] the band players: settings (None: defaults for ``bands``), scripted commands
    # (applied when audio time passes them), MIDI channels on the port, output latency.
    band: object | None = None          # improv.band.BandSettings
    commands: list[Command] = field(default_factory=list)
    # [control] foot controller, keyboard and OSC (an improv.control.ControlOptions; None: none)
    controls: object | None = None
    channels: dict[str, int] | None = None
    output_latency_ms: float = 0.0


@dataclass
class SessionResult:
    events: list[Event] = field(default_factory=list)
    recording: Path | None = None
    overflows: int = 0
    midi_port: str | None = None
    midi_errors: int = 0
    synth: str | None = None            # [output] what plays the band, or why nothing does
    recording_error: str | None = None  # [output] first write error of the recorder
    band: object | None = None          # [band] the Band that played (its log, for benchmarks)


class MidiSink:
    """Sends events to a MIDI port, each source on its own channel (the player's only with ``echo``)."""

    def __init__(self, port: MidiOut, bend_range: float, bends: bool, channels: dict[str, int] | None = None,
                 echo: bool = True):
        self.port = port
        self.bend_range = bend_range
        self.bends = bends
        self.channels = {**CHANNELS, **(channels or {})}
        self.echo = echo

    def __call__(self, ev: Event) -> None:
        if ev.source == PLAYER and not self.echo:
            return
        bends = self.bends and ev.source == PLAYER
        for msg in event_messages(ev, self.channels.get(ev.source, 0), self.bend_range, bends):
            self.port.send(msg)


def run_listen(opts: ListenOptions, on_event: Callable[[Event], None] | None = None,
               stop: threading.Event | None = None,
               on_start: Callable[[Listener, FileSource | MicSource], None] | None = None,
               on_command: Callable[[Command], None] | None = None,
               on_band: Callable[[object], None] | None = None,
               on_warning: Callable[[str], None] | None = None,
               view: object | None = None) -> SessionResult:
    """Run one listening session until the input ends or ``stop`` is set.

    ``on_start(listener, source)`` is called once both exist (the display shows their
    figures); ``on_command`` receives every command logged in the session.
    [band] ``on_band(b)`` receives the object commands go to (``b.command(Command)``):
    a :class:`~improv.band.live.LiveBand` in real time, the :class:`~improv.band.Band`
    with ``fast``. ``on_warning`` gets one-line warnings (an output port that went away);
    ``view`` (a display: ``bands`` of BandState, ``set_clock``) shows the band's state.
    """
    if opts.bend_range <= 0 or opts.bend_range > 24:
        raise ConfigError(f"--bend-range {opts.bend_range:g}: give 0 < semitones <= 24")
    band = _make_band(opts)  # [band] before any port opens: a missing model is said first
    tracker_opts = {"fmin": opts.fmin} if opts.fmin and opts.tracker == "yin" else {}
    tracker = make_tracker(opts.tracker, **tracker_opts)
    if opts.input:
        source = FileSource(opts.input, blocksize=opts.blocksize, fast=opts.fast)
    else:
        source = MicSource(opts.device, opts.samplerate, opts.blocksize)
    settings = SegmenterSettings(bends=opts.bends, bend_range=opts.bend_range, fixed_tuning=opts.tuning)
    listener = Listener(tracker, source.sample_rate, settings)
    if on_start is not None:  # [output]
        on_start(listener, source)

    result = SessionResult(band=band)
    sinks: list[Callable[[Event], None]] = []
    port = None
    recorder = None
    synth = None
    live = None
    controls = None
    voices = as_voices(opts.voices)  # [output]
    channels = {**BAND_CHANNELS, **(opts.channels or {})}
    end = 0.0
    try:
        if opts.midi:
            port = MidiOut(opts.midi_out, opts.midi_api)
            result.midi_port = f"{port.info.name} ({port.info.api})"
            if opts.echo or (band is not None and opts.fast):
                sinks.append(MidiSink(port, opts.bend_range, opts.bends, channels, echo=opts.echo))
        # [output] built-in synth: plays the band's events
        synth, result.synth = open_synth(opts.synth, opts.soundfont, midi_out=opts.midi_out, voices=voices,
                                         bend_range=opts.bend_range)
        if synth is not None:
            sinks.append(synth)
        if opts.record:
            recorder = SessionRecorder(session_dir(opts.record), opts.bend_range, voices=voices)
            result.recording = recorder.folder
            sinks.append(recorder.add)
        # [output] the command log: the band logs every command it is given
        commands = CommandLog(*[s for s in (recorder and recorder.add_command, on_command) if s])
        sinks.append(result.events.append)
        if on_event is not None:
            sinks.append(on_event)
        clock = None
        if band is not None:
            band.on_command = lambda c: commands.add(c.time, c.target, c.command, c.value)
            setup = {name: voice_messages(channels[name], voices[name]) for name in band.players}
            if port is not None:
                for msgs in setup.values():
                    for msg in msgs:
                        port.send(msg)
            if not opts.fast:
                from .band.live import BandOutput, LiveBand, SessionClock

                clock = SessionClock()
                band_sinks = [s for s in (recorder and recorder.add, result.events.append, on_event) if s]
                output = BandOutput(port, synth, band_sinks, channels, now=clock.now, setup=setup)
                live = LiveBand(band, output, clock, opts.output_latency_ms, port=port, on_warning=on_warning,
                                view=view).start()
        if on_band is not None and band is not None:
            on_band(live if live is not None else band)
        # [control] commands from the foot controller, keyboard and OSC: straight into the live
        # band's queue; otherwise handed to this loop, which gives them at the next block
        inbox: queue.SimpleQueue[Command] = queue.SimpleQueue()
        if opts.controls is not None:
            from .control import open_controls

            controls = open_controls(opts.controls, on_command=live.command if live is not None else inbox.put,
                                     now=clock.now if clock is not None else (lambda: end),
                                     log=on_warning)
        script = sorted(opts.commands, key=lambda c: c.time)
        next_view = 0.0

        def emit(events) -> None:
            for ev in events:
                for sink in sinks:
                    sink(ev)

        for block in source.blocks(stop):
            end = block.end / block.sample_rate
            if clock is not None:
                clock.block(end)
            if recorder is not None:  # [output] input audio, written by the recorder's thread
                recorder.add_audio(block)
            events = listener.process(block)
            while not inbox.empty():
                c = inbox.get()
                if band is None:
                    commands.add(c.time, c.target, c.command, c.value)
                else:
                    band.command(c)  # at its own time (the band knows what it already sent)
            if band is None:
                while script and script[0].time <= end:
                    c = script.pop(0)
                    commands.add(c.time, c.target, c.command, c.value)
                emit(events)
                continue
            for ev in events:
                band.hear(ev)
            while script and script[0].time <= end:
                if live is not None:
                    live.command(script.pop(0))
                else:  # --fast: at the command's own time inside this block
                    band.command(script.pop(0))
            if live is not None:
                emit(events)
                live.check()
                continue
            band.step(end)  # --fast: the band on audio time, events in time order
            emit(sorted([*events, *band.due(end)], key=lambda e: e.time))
            if view is not None and end >= next_view:
                _show(view, band, end)
                next_view = end + 0.1
        tail = listener.finish(end)
        if band is not None:
            for ev in tail:
                band.hear(ev)
        emit(tail)
        if band is not None and live is None:
            emit(band.finish(end))
    finally:
        if controls is not None:
            controls.close()
        if band is not None and live is None:
            # --fast ended by an error: the band's notes end in the recording too (the port panics
            # below); after a normal end there is nothing left and this adds nothing.
            for ev in band.finish(end):
                if recorder is not None:
                    recorder.add(ev)
        if isinstance(source, MicSource):
            source.close()
        result.overflows = source.overflows
        if live is not None:
            live.close()  # every band note off, through the port, synth and recorder
        if port is not None:
            result.midi_errors = port.errors
            port.close()
        if synth is not None:  # [output]
            synth.close()
        if recorder is not None:
            recorder.close()
            result.recording_error = recorder.error  # [output]
            if band is not None:  # [harmony] chords.jsonl and chord markers in session.mid
                from .harmony.record import write_chords

                write_chords(recorder.folder, band.chords)
    return result


def _make_band(opts: ListenOptions):
    """[band] The Band for ``opts.bands`` (None without bands); loads the model."""
    if not opts.bands:
        return None
    from .band import Band, BandSettings

    settings = opts.band if opts.band is not None else BandSettings()
    settings.bands = tuple(opts.bands)
    import torch

    # Small per-frame steps: one thread is fastest (several threads spin against each other
    # and against listening: 10x slower on a loaded 2-core machine). Process-wide.
    torch.set_num_threads(1)
    return Band(settings)


def _show(view, band, now: float) -> None:
    for name, d in band.describe(now).items():
        state = view.bands.get(name)
        if state is not None:
            state.command, state.density, state.active = d["command"], d["density"], True
    view.set_clock(*band.clock_text(now))
    if hasattr(view, "set_harmony"):
        from .harmony.source import harmony_line

        view.set_harmony(harmony_line(band.harmony_text()))


def describe(ev: Event) -> str:
    """One log line for an event."""
    if isinstance(ev, NoteOn):
        lat = f" decided {1000 * (ev.time - ev.onset):+.0f} ms after onset" if ev.onset is not None else ""
        return f"{ev.time:8.3f}  {ev.source:6s} on  {note_name(ev.pitch):4s} vel {ev.velocity:3d} {ev.cents:+4.0f}c{lat}"
    kind = type(ev).__name__
    if kind == "NoteOff":
        return f"{ev.time:8.3f}  {ev.source:6s} off {note_name(ev.pitch):4s}"
    return f"{ev.time:8.3f}  {ev.source:6s} bend {ev.cents:+.0f}c"


__all__ = ["ListenOptions", "SessionResult", "run_listen", "describe", "PLAYER"]
