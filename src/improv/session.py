"""``improv listen``: one session from an audio source to MIDI out and a recording.

The analysis loop runs in the calling thread: it pulls blocks from the source (the
microphone's ring buffer or a file), runs the listener and hands each event to the
sinks. Whatever way the loop ends — end of file, Ctrl-C, an error — the MIDI ports
get all-notes-off and the recording is saved.
"""

from __future__ import annotations

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
from .record import CHANNELS, Command, CommandLog, SessionRecorder, event_messages, session_dir
from .synth import as_voices, open_synth  # [output] built-in synth


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


@dataclass
class SessionResult:
    events: list[Event] = field(default_factory=list)
    recording: Path | None = None
    overflows: int = 0
    midi_port: str | None = None
    midi_errors: int = 0
    synth: str | None = None            # [output] what plays the band, or why nothing does
    recording_error: str | None = None  # [output] first write error of the recorder


class MidiSink:
    """Sends events to a MIDI port, each source on its own channel."""

    def __init__(self, port: MidiOut, bend_range: float, bends: bool):
        self.port = port
        self.bend_range = bend_range
        self.bends = bends

    def __call__(self, ev: Event) -> None:
        for msg in event_messages(ev, CHANNELS.get(ev.source, 0), self.bend_range, self.bends):
            self.port.send(msg)


def run_listen(opts: ListenOptions, on_event: Callable[[Event], None] | None = None,
               stop: threading.Event | None = None,
               on_start: Callable[[Listener, FileSource | MicSource], None] | None = None,
               on_command: Callable[[Command], None] | None = None) -> SessionResult:
    """Run one listening session until the input ends or ``stop`` is set.

    ``on_start(listener, source)`` is called once both exist (the display shows their
    figures); ``on_command`` receives every command logged in the session.
    """
    if opts.bend_range <= 0 or opts.bend_range > 24:
        raise ConfigError(f"--bend-range {opts.bend_range:g}: give 0 < semitones <= 24")
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

    result = SessionResult()
    sinks: list[Callable[[Event], None]] = []
    port = None
    recorder = None
    synth = None
    voices = as_voices(opts.voices)  # [output]
    try:
        if opts.midi:
            port = MidiOut(opts.midi_out, opts.midi_api)
            result.midi_port = f"{port.info.name} ({port.info.api})"
            if opts.echo:
                sinks.append(MidiSink(port, opts.bend_range, opts.bends))
        # [output] built-in synth: plays the band's events (none yet: the band comes later)
        synth, result.synth = open_synth(opts.synth, opts.soundfont, midi_out=opts.midi_out, voices=voices,
                                         bend_range=opts.bend_range)
        if synth is not None:
            sinks.append(synth)
        if opts.record:
            recorder = SessionRecorder(session_dir(opts.record), opts.bend_range, voices=voices)
            result.recording = recorder.folder
            sinks.append(recorder.add)
        # [output] the command log: the band will call commands.add(time, target, command, value)
        commands = CommandLog(*[s for s in (recorder and recorder.add_command, on_command) if s])  # noqa: F841
        sinks.append(result.events.append)
        if on_event is not None:
            sinks.append(on_event)
        end = 0.0
        for block in source.blocks(stop):
            end = block.end / block.sample_rate
            if recorder is not None:  # [output] input audio, written by the recorder's thread
                recorder.add_audio(block)
            for ev in listener.process(block):
                for sink in sinks:
                    sink(ev)
        for ev in listener.finish(end):
            for sink in sinks:
                sink(ev)
    finally:
        if isinstance(source, MicSource):
            source.close()
        result.overflows = source.overflows
        if port is not None:
            result.midi_errors = port.errors
            port.close()
        if synth is not None:  # [output]
            synth.close()
        if recorder is not None:
            recorder.close()
            result.recording_error = recorder.error  # [output]
    return result


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
