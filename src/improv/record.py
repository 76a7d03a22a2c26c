"""Session recording: a session's input audio, notes and commands, written as it goes.

A session folder (``recordings/<date-time>/``) holds:

* ``input.wav`` — the input audio as heard (mono, 24-bit PCM), sample 0 at session
  time 0. Written block by block; the WAV header is brought up to date (and the file
  synced) every ``save_every`` seconds, so after a crash any WAV reader finds every
  sample up to the last update.
* ``session.mid`` — a type-1 MIDI file, one track and channel per source (the player,
  each band), each track starting with its pitch-bend range (RPN 0) and, for the band,
  program and volume; commands appear as marker meta events. Rewritten at most every
  ``save_every`` seconds through a temporary file and an atomic rename.
* ``commands.jsonl`` — the command log (:class:`CommandLog`): one JSON object a line,
  ``{"time": 12.5, "target": "bass", "command": "density", "value": 0.7}``, flushed
  line by line.

``SessionRecorder`` does all file I/O in its own thread; ``add``, ``add_audio`` and
``add_command`` only put into a queue, so the analysis thread never waits on a disk.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import mido
import numpy as np
import soundfile

from .audio import Block
from .errors import ConfigError
from .events import BANDS, PLAYER, Command, Event, Note, NoteOff, NoteOn, PitchBend, notes_from_events
from .output import CHANNELS, BandLayout, encode

TRANSCRIPT = "transcript"  # track name of the player's corrected transcript in session.mid
TRANSCRIPT_CHANNEL = 15   # MIDI channel 16: its own, so it never cuts a sent note short
TICKS_PER_BEAT = 960
TEMPO = 500_000  # 120 BPM: one tick is 0.52 ms
AUDIO_FILE = "input.wav"
MIDI_FILE = "session.mid"
COMMANDS_FILE = "commands.jsonl"


def session_dir(root: str | Path, now: datetime | None = None) -> Path:
    """A new ``root/<date-time>/`` folder (suffixed if that second is taken)."""
    root = Path(root)
    stamp = (now or datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--record {root}: cannot create the folder ({e.strerror}); choose another") from None
    path, n = root / stamp, 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    path.mkdir()
    return path


def _voice_fields(voice: Any) -> tuple[int, int, int]:
    """(program, volume, bank) of a :class:`improv.synth.Voice` or a (program, volume) pair."""
    if isinstance(voice, tuple):
        program, volume = voice[:2]
        return int(program), int(volume), int(voice[2]) if len(voice) > 2 else 0
    return int(voice.program), int(voice.volume), int(getattr(voice, "bank", 0))


def bend_range_messages(channel: int, bend_range: float) -> list[mido.Message]:
    """RPN 0 (pitch-bend sensitivity) set to ``bend_range`` semitones, then RPN null."""
    semis = int(bend_range)
    cents = int(round((bend_range - semis) * 100))
    return [mido.Message("control_change", channel=channel, control=c, value=v)
            for c, v in ((101, 0), (100, 0), (6, semis), (38, cents), (101, 127), (100, 127))]


def voice_messages(channel: int, voice: Any) -> list[mido.Message]:
    """Bank select, program change and channel volume for a voice."""
    program, volume, bank = _voice_fields(voice)
    msgs = []
    if bank:
        msgs += [mido.Message("control_change", channel=channel, control=0, value=bank >> 7),
                 mido.Message("control_change", channel=channel, control=32, value=bank & 127)]
    msgs += [mido.Message("program_change", channel=channel, program=program),
             mido.Message("control_change", channel=channel, control=7, value=volume)]
    return msgs


def _tick(seconds: float) -> int:
    return int(round(mido.second2tick(max(seconds, 0.0), TICKS_PER_BEAT, TEMPO)))


def transcript_track(notes: list[Note], channel: int = TRANSCRIPT_CHANNEL,
                     name: str = TRANSCRIPT) -> mido.MidiTrack:
    """The player's corrected transcript as a track: each note at its estimated onset and
    end, on the key nearest its held pitch (``events.notes_from_events``: retakes resolved,
    onsets back-dated, pitch from the held bend) — what goes to notation or a DAW."""
    msgs: list[tuple[int, int, mido.Message]] = []  # (tick, note-offs first, message)
    for n in notes:
        key = int(min(127, max(0, round(n.pitch))))
        on, off = _tick(n.onset), max(_tick(n.offset), _tick(n.onset) + 1)
        msgs.append((on, 1, mido.Message("note_on", channel=channel, note=key, velocity=n.velocity)))
        msgs.append((off, 0, mido.Message("note_off", channel=channel, note=key, velocity=0)))
    msgs.sort(key=lambda m: (m[0], m[1]))
    track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
    last = 0
    for tick, _, msg in msgs:
        track.append(msg.copy(time=tick - last))
        last = tick
    return track


def events_to_midifile(events: list[Event], bend_range: float = 2.0,
                       channels: dict[str, int] | None = None, voices: Mapping[str, Any] | None = None,
                       commands: list["Command"] | None = None, transcript: bool = True) -> mido.MidiFile:
    """A type-1 MIDI file with one track per source, times from the events' ``time``.

    Each track starts with its pitch-bend range (RPN 0) and, for sources in ``voices``
    (``Voice`` or (program, volume)), its program and volume. ``commands`` become
    marker meta events on the first track. The player's track holds what was sent (every
    NoteOn, retakes included, when it was sent: what the band heard); with ``transcript``
    a last track, "transcript", holds the corrected notes (:func:`transcript_track`).
    """
    layout = BandLayout.make(channels, bend_range=bend_range)
    voices = voices or {}
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=TEMPO, time=0)])
    last_tick = 0
    for cmd in sorted(commands or [], key=lambda c: c.time):
        tick = _tick(cmd.time)
        meta.append(mido.MetaMessage("marker", text=cmd.label(), time=tick - last_tick))
        last_tick = tick
    mid.tracks.append(meta)
    sources = [s for s in (PLAYER, *BANDS) if any(e.source == s for e in events)]
    for source in sources:
        ch = layout.channel(source)
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=source, time=0)])
        track.extend(bend_range_messages(ch, bend_range))
        if source in voices:
            track.extend(voice_messages(ch, voices[source]))
        last_tick = 0
        for ev in sorted((e for e in events if e.source == source), key=lambda e: e.time):
            tick = _tick(ev.time)
            for msg in encode(ev, layout):
                track.append(msg.copy(time=max(0, tick - last_tick)))
                last_tick = max(last_tick, tick)
        mid.tracks.append(track)
    if transcript and PLAYER in sources:
        mid.tracks.append(transcript_track(notes_from_events(events, PLAYER)))
    return mid


def read_midi_events(mid: mido.MidiFile | str | Path) -> list[Event]:
    """The events of a session MIDI file, back from its tracks (track name = source).

    Times come back to the tick (0.52 ms); bends are read with each track's RPN 0 range
    (2 semitones if none). A note-on takes the bend in force as its ``cents``.
    """
    if not isinstance(mid, mido.MidiFile):
        try:
            mid = mido.MidiFile(str(mid))
        except (OSError, EOFError, ValueError) as e:
            raise ConfigError(f"{mid}: not a readable MIDI file ({e}); record the session again") from None
    tempo = next((m.tempo for t in mid.tracks for m in t if m.type == "set_tempo"), 500_000)
    events: list[Event] = []
    for track in mid.tracks:
        source = next((m.name for m in track if m.type == "track_name"), None)
        if source not in CHANNELS:
            continue
        tick, semis, cents, bend_cents, rpn = 0, 2, 0, 0.0, [127, 127]
        for msg in track:
            tick += msg.time
            t = mido.tick2second(tick, mid.ticks_per_beat, tempo)
            if msg.type == "control_change":
                if msg.control in (101, 100):
                    rpn[0 if msg.control == 101 else 1] = msg.value
                elif msg.control == 6 and rpn == [0, 0]:
                    semis = msg.value
                elif msg.control == 38 and rpn == [0, 0]:
                    cents = msg.value
            elif msg.type == "pitchwheel":
                bend_cents = msg.pitch / 8192.0 * (100.0 * semis + cents)
                events.append(PitchBend(t, bend_cents, source))
            elif msg.type == "note_on" and msg.velocity > 0:
                events.append(NoteOn(t, msg.note, msg.velocity, source, cents=bend_cents))
            elif msg.type in ("note_off", "note_on"):
                events.append(NoteOff(t, msg.note, source))
    events.sort(key=lambda e: e.time)
    return events


# ---------------------------------------------------------------- commands


class CommandLog:
    """Where the session's commands go: ``add(time, target, command, value)``.

    Each command is handed to every sink (the recorder writes ``commands.jsonl``, the
    display shows it). Sinks must not block: they run in the caller's thread.
    """

    def __init__(self, *sinks: Callable[[Command], None]):
        self._sinks = list(sinks)

    def subscribe(self, sink: Callable[[Command], None]) -> None:
        self._sinks.append(sink)

    def add(self, time: float, target: str, command: str, value: Any = None) -> Command:
        cmd = Command(float(time), str(target), str(command), value)
        for sink in self._sinks:
            sink(cmd)
        return cmd


def read_commands(path: str | Path) -> list[Command]:
    """The commands of a ``commands.jsonl``; a last line cut short by a crash is left out."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            out.append(Command(float(d["time"]), str(d["target"]), str(d["command"]), d.get("value")))
        except (ValueError, KeyError, TypeError):
            if n == len(lines):
                break
            raise ConfigError(f"{path}:{n}: not a command line ({line[:40]!r}); fix or delete that line") from None
    return out


# ------------------------------------------------------------------- audio


class _WavWriter:
    """``input.wav``, written block by block; the header is brought up to date on ``sync()``.

    libsndfile writes a WAV's sizes only on close; ``SFC_UPDATE_HEADER_NOW`` (through
    soundfile's cffi handle, which soundfile does not wrap) rewrites them on demand,
    so the file stays valid for every reader up to the last sync.
    """

    SFC_UPDATE_HEADER_NOW = 0x1060

    def __init__(self, path: Path, sample_rate: int):
        self.path = path
        self.sample_rate = int(sample_rate)
        self.file = soundfile.SoundFile(str(path), "w", samplerate=self.sample_rate, channels=1,
                                        format="WAV", subtype="PCM_24")
        self.frames = 0
        self._synced = -1

    def write(self, block: Block) -> None:
        if block.sample_rate != self.sample_rate:
            raise ValueError(f"a {block.sample_rate} Hz block for a {self.sample_rate} Hz recording")
        x = block.samples
        gap = block.start - self.frames
        if gap > 0:  # blocks lost upstream (counted there): keep the file aligned with session time
            self.file.write(np.zeros(gap, dtype=np.float32))
            self.frames += gap
        elif gap < 0:
            x = x[-gap:]
        if len(x):
            self.file.write(x)
            self.frames += len(x)

    def sync(self) -> None:
        if self.frames == self._synced:
            return
        snd, ffi = getattr(soundfile, "_snd", None), getattr(soundfile, "_ffi", None)
        if snd is not None and ffi is not None:  # else: data still on disk, readable by libsndfile
            snd.sf_command(self.file._file, self.SFC_UPDATE_HEADER_NOW, ffi.NULL, 0)
        self.file.flush()
        self._synced = self.frames

    def close(self) -> None:
        self.file.close()


# ---------------------------------------------------------------- recorder


class SessionRecorder:
    """Writes a session folder as it goes, from its own thread (see the module docstring).

    ``add(event)``, ``add_audio(block)`` and ``add_command(command)`` are non-blocking
    and safe to call from the analysis thread. Every ``save_every`` seconds the MIDI
    file is rewritten (if anything changed) and the WAV header updated and synced;
    command lines are flushed one by one. A write error (disk full) stops that file and
    is kept in ``error``; the session goes on.
    """

    def __init__(self, folder: Path, bend_range: float = 2.0, save_every: float = 1.0,
                 voices: Mapping[str, Any] | None = None):
        self.folder = Path(folder)
        self.path = self.folder / MIDI_FILE
        self.audio_path = self.folder / AUDIO_FILE
        self.commands_path = self.folder / COMMANDS_FILE
        self.bend_range = bend_range
        self.save_every = save_every
        self.voices = dict(voices or {})
        self.error: str | None = None
        self._events: list[Event] = []
        self._commands: list[Command] = []
        self._wav: _WavWriter | None = None
        self._cmd_file = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.commands = CommandLog(self.add_command)
        self._thread = threading.Thread(target=self._run, name="improv-recorder", daemon=True)
        self._thread.start()

    def add(self, event: Event) -> None:
        """Non-blocking: safe to call from the analysis thread."""
        self._queue.put(event)

    def add_audio(self, block: Block) -> None:
        """Non-blocking. The block is kept as is: don't change its samples afterwards."""
        self._queue.put(block)

    def add_command(self, command: Command) -> None:
        """Non-blocking; also a :class:`CommandLog` sink."""
        self._queue.put(command)

    @property
    def audio_frames(self) -> int:
        return self._wav.frames if self._wav is not None else 0

    def _run(self) -> None:
        last_save = time.monotonic()
        dirty = False
        while True:
            try:
                item = self._queue.get(timeout=self.save_every)
            except queue.Empty:
                item = False
            if item is None:
                break
            if isinstance(item, Block):
                self._guard(self._write_audio, item)
            elif isinstance(item, Command):
                self._commands.append(item)
                self._guard(self._write_command, item)
                dirty = True
            elif item is not False:
                self._events.append(item)
                dirty = True
            if time.monotonic() - last_save >= self.save_every:
                if dirty:
                    self._guard(self._save)
                    dirty = False
                if self._wav is not None:
                    self._guard(self._wav.sync)
                last_save = time.monotonic()
        self._guard(self._save)
        if self._wav is not None:
            self._guard(self._wav.sync)
            self._guard(self._wav.close)
        if self._cmd_file is not None:
            self._cmd_file.close()

    def _guard(self, fn, *args) -> None:
        """Run a file operation; on a disk error (or a block at another rate) keep the first message."""
        try:
            fn(*args)
        except (OSError, ValueError, soundfile.LibsndfileError) as e:
            if self.error is None:
                self.error = f"recording to {self.folder} failed ({e})"

    def _write_audio(self, block: Block) -> None:
        if self._wav is None:
            self._wav = _WavWriter(self.audio_path, block.sample_rate)
        self._wav.write(block)

    def _write_command(self, cmd: Command) -> None:
        if self._cmd_file is None:
            self._cmd_file = open(self.commands_path, "a", encoding="utf-8")
        self._cmd_file.write(cmd.to_json() + "\n")
        self._cmd_file.flush()

    def _save(self) -> None:
        mid = events_to_midifile(self._events, self.bend_range, voices=self.voices, commands=self._commands)
        tmp = self.path.with_suffix(".mid.tmp")
        mid.save(str(tmp))
        os.replace(tmp, self.path)

    def close(self) -> Path:
        self._queue.put(None)
        self._thread.join()
        return self.path
