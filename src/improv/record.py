"""Session recording: a session's input audio, notes and commands, written as it goes.

A session folder (``recordings/<date-time>/``) holds:

* ``input.wav`` — the input audio as heard (mono, 24-bit PCM), sample 0 at session
  time 0. Written block by block; the WAV header is brought up to date (and the file
  synced) every ``save_every`` seconds, so after a crash any WAV reader finds every
  sample up to the last update.
* ``events.jsonl`` — the journal of the session's notes: a header line (bend range,
  voices), then one JSON object an event, appended as they come and flushed every
  ``save_every`` seconds, so the cost of a second of recording does not grow with the
  session and a crash loses at most ``save_every`` seconds. A last line cut short by
  a crash is left out when it is read.
* ``session.mid`` — a type-1 MIDI file, one track and channel per source (the player,
  each band), each track starting with its pitch-bend range (RPN 0) and, for the band,
  program and volume; commands appear as marker meta events. Written once from the
  journal when the session closes (through a temporary file and an atomic rename);
  after a crash ``improv recover SESSION`` writes it (``improv render`` reads the
  journal by itself). A note left sounding is ended at the journal's last time.
* ``controls.jsonl`` — the CC macros sent (``--cc-map``), one JSON object a line
  (``{"time": 2.43, "cc": 74, "value": 96, "channel": 2, "source": "all", "quantity":
  "intensity"}``, channel 1-16), flushed with the journal; ``session.mid`` carries them
  on a track of their own, "cc".
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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import mido
import numpy as np
import soundfile

from .audio import Block
from .errors import ConfigError
from .events import (ALL_BANDS, PLAYER, Command, ControlChange, Event, Note, NoteOff, NoteOn, PitchBend,
                     notes_from_events)
from .output import CHANNELS, BandLayout, encode
from .timing.tempomap import BarTiming, TempoMap

TRANSCRIPT = "transcript"  # track name of the player's corrected transcript in session.mid
TRANSCRIPT_CHANNEL = 15   # MIDI channel 16: its own, so it never cuts a sent note short
TICKS_PER_BEAT = 960
TEMPO = 500_000  # 120 BPM: one tick is 0.52 ms
AUDIO_FILE = "input.wav"
MIDI_FILE = "session.mid"
COMMANDS_FILE = "commands.jsonl"
JOURNAL_FILE = "events.jsonl"
CONTROLS_FILE = "controls.jsonl"
CONTROLS_TRACK = "cc"       # session.mid's track of the CC macros
JOURNAL_KIND = "improv session events"


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


def transcript_track(notes: list[Note], tick: Callable[[float], int], channel: int = TRANSCRIPT_CHANNEL,
                     name: str = TRANSCRIPT) -> mido.MidiTrack:
    """The player's corrected transcript as a track: each note at its estimated onset and
    end, on the key nearest its held pitch (``events.notes_from_events``: retakes resolved,
    onsets back-dated, pitch from the held bend) — what goes to notation or a DAW.
    ``tick`` turns session seconds into the file's ticks (its tempo map)."""
    msgs: list[tuple[int, int, mido.Message]] = []  # (tick, note-offs first, message)
    for n in notes:
        key = int(min(127, max(0, round(n.pitch))))
        on, off = tick(n.onset), max(tick(n.offset), tick(n.onset) + 1)
        msgs.append((on, 1, mido.Message("note_on", channel=channel, note=key, velocity=n.velocity)))
        msgs.append((off, 0, mido.Message("note_off", channel=channel, note=key, velocity=0)))
    msgs.sort(key=lambda m: (m[0], m[1]))
    track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
    last = 0
    for t, _, msg in msgs:
        track.append(msg.copy(time=t - last))
        last = t
    return track


def events_to_midifile(events: list[Event], bend_range: float = 2.0,
                       channels: dict[str, int] | None = None, voices: Mapping[str, Any] | None = None,
                       commands: list["Command"] | None = None, timing: BarTiming | None = None,
                       transcript: bool = True, controls: list[ControlChange] | None = None) -> mido.MidiFile:
    """A type-1 MIDI file with one track per source, times from the events' ``time``.

    Each track starts with its pitch-bend range (RPN 0) and, for sources in ``voices``
    (``Voice`` or (program, volume)), its program and volume. ``commands`` become
    marker meta events on the first track. With the band's ``timing`` the file carries
    its tempo map and time signature, the band's downbeats on bar lines
    (:mod:`improv.timing.tempomap`); without, 120 BPM.
    The player's track holds what was sent (every NoteOn, retakes included, when it was
    sent: what the band heard); with ``transcript`` a last track, "transcript", holds the
    corrected notes (:func:`transcript_track`). ``controls`` (the CC macros) go on a track
    of their own, "cc", each on its channel.
    """
    layout = BandLayout.make(channels, bend_range=bend_range)
    voices = voices or {}
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    tmap = TempoMap.from_bars(timing, TICKS_PER_BEAT)
    _tick = tmap.tick
    marks = list(tmap.meta) + [(_tick(cmd.time), mido.MetaMessage("marker", text=cmd.label()))
                               for cmd in sorted(commands or [], key=lambda c: c.time)]
    marks.sort(key=lambda x: x[0])
    meta = mido.MidiTrack()
    last_tick = 0
    for tick, msg in marks:
        meta.append(msg.copy(time=tick - last_tick))
        last_tick = tick
    mid.tracks.append(meta)
    sources = [s for s in (PLAYER, *ALL_BANDS) if any(e.source == s for e in events)]
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
        mid.tracks.append(transcript_track(notes_from_events(events, PLAYER), _tick))
    if controls:
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=CONTROLS_TRACK, time=0)])
        last_tick = 0
        for cc in sorted(controls, key=lambda c: c.time):
            tick = _tick(cc.time)
            track.append(cc.message().copy(time=max(0, tick - last_tick)))
            last_tick = max(last_tick, tick)
        mid.tracks.append(track)
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
    tmap = TempoMap.from_midi(mid)
    events: list[Event] = []
    for track in mid.tracks:
        source = next((m.name for m in track if m.type == "track_name"), None)
        if source not in CHANNELS:
            continue
        tick, semis, cents, bend_cents, rpn = 0, 2, 0, 0.0, [127, 127]
        for msg in track:
            tick += msg.time
            t = tmap.seconds(tick)
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


def _read_jsonl(path: str | Path, parse, what: str) -> list:
    """``parse(dict)`` of each line of a journal (none if there is no file); a last line cut
    short by a crash is left out, a bad line before it is one error naming it."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(parse(json.loads(line)))
        except (ValueError, KeyError, TypeError, AttributeError):
            if n == len(lines):
                break
            raise ConfigError(f"{path}:{n}: not a {what} line ({line[:40]!r}); fix or delete that line") from None
    return out


def read_commands(path: str | Path) -> list[Command]:
    """The commands of a ``commands.jsonl``; a last line cut short by a crash is left out."""
    return _read_jsonl(path, lambda d: Command(float(d["time"]), str(d["target"]), str(d["command"]),
                                               d.get("value")), "command")


# ----------------------------------------------------------------- CC macros


def control_to_json(cc: ControlChange) -> str:
    return json.dumps({"time": round(cc.time, 6), "cc": cc.control, "value": cc.value, "channel": cc.channel + 1,
                       "source": cc.source, "quantity": cc.quantity})


def read_controls(path: str | Path) -> list[ControlChange]:
    """The CC macros of a ``controls.jsonl`` (none if there is none); a last line cut short
    by a crash is left out."""
    return _read_jsonl(path, lambda d: ControlChange(float(d["time"]), int(d["cc"]), int(d["value"]),
                                                     int(d["channel"]) - 1, str(d.get("source", "all")),
                                                     str(d.get("quantity", ""))), "CC")


# ----------------------------------------------------------------- journal


def event_to_json(ev: Event) -> str:
    """One journal line (no newline) for a note event: what its MIDI messages carry."""
    t = round(ev.time, 6)
    if isinstance(ev, NoteOn):
        d = {"time": t, "source": ev.source, "on": ev.pitch, "velocity": ev.velocity, "cents": round(ev.cents, 3)}
        if ev.onset is not None:  # the transcript's back-dated onset, and its retakes
            d["onset"] = round(ev.onset, 6)
        if ev.retake:
            d["retake"] = True
        return json.dumps(d)
    if isinstance(ev, NoteOff):
        d = {"time": t, "source": ev.source, "off": ev.pitch}
        if ev.end is not None:
            d["end"] = round(ev.end, 6)
        return json.dumps(d)
    if isinstance(ev, PitchBend):
        return json.dumps({"time": t, "source": ev.source, "bend": round(ev.cents, 3)})
    raise TypeError(f"not a note event: {ev!r}")


def _event_from_json(d: dict) -> Event:
    t, source = float(d["time"]), str(d["source"])
    if "on" in d:
        onset = d.get("onset")
        return NoteOn(t, int(d["on"]), int(d["velocity"]), source, cents=float(d.get("cents", 0.0)),
                      onset=None if onset is None else float(onset), retake=bool(d.get("retake", False)))
    if "off" in d:
        end = d.get("end")
        return NoteOff(t, int(d["off"]), source, end=None if end is None else float(end))
    return PitchBend(t, float(d["bend"]), source)


@dataclass
class Journal:
    """A session's ``events.jsonl`` as read back (see :func:`read_journal`)."""

    events: list[Event]
    bend_range: float = 2.0
    voices: dict[str, tuple[int, int, int]] = None  # type: ignore[assignment]
    closed: int = 0        # notes left sounding (a crash) that were ended at the last time


def read_journal(path: str | Path) -> Journal:
    """The events of an ``events.jsonl`` in time order; a last line cut short by a crash is
    left out, and a note left sounding is ended at the journal's last time."""
    path = Path(path)
    try:
        lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the session journal ({e.strerror})") from None
    header: dict = {}
    events: list[Event] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            if n == 1 and d.get("journal") == JOURNAL_KIND:
                header = d
                continue
            events.append(_event_from_json(d))
        except (ValueError, KeyError, TypeError, AttributeError):
            if n == len(lines):
                break
            raise ConfigError(f"{path}:{n}: not a journal line ({line[:40]!r}); fix or delete that line") from None
    events.sort(key=lambda e: e.time)
    end = events[-1].time if events else 0.0
    sounding: dict[tuple[str, int], int] = {}
    for ev in events:
        if isinstance(ev, NoteOn):
            sounding[(ev.source, ev.pitch)] = sounding.get((ev.source, ev.pitch), 0) + 1
        elif isinstance(ev, NoteOff) and sounding.get((ev.source, ev.pitch)):
            sounding[(ev.source, ev.pitch)] -= 1
    left = [NoteOff(end, pitch, source) for (source, pitch), k in sounding.items() for _ in range(k)]
    voices = {str(k): tuple(int(x) for x in v) for k, v in (header.get("voices") or {}).items()}
    return Journal(events + left, float(header.get("bend_range", 2.0)), voices, len(left))


def write_session_midi(folder: str | Path, timing: BarTiming | None = None) -> Path:
    """``session.mid`` of a session folder, written from its journal and command log
    (at the end of a session, or to recover one that crashed), on the band's bars when
    ``timing`` is given (the tempo map and time signature), else at 120 BPM."""
    folder = Path(folder)
    journal = read_journal(folder / JOURNAL_FILE)
    mid = events_to_midifile(journal.events, journal.bend_range, voices=journal.voices,
                             commands=read_commands(folder / COMMANDS_FILE), timing=timing,
                             controls=read_controls(folder / CONTROLS_FILE))
    path = folder / MIDI_FILE
    tmp = path.with_suffix(".mid.tmp")
    mid.save(str(tmp))
    os.replace(tmp, path)
    return path


def recover_session(folder: str | Path) -> tuple[Path, Journal]:
    """After a crash: write the missing ``session.mid`` from the journal (ConfigError if there
    is none). ``input.wav`` needs nothing: its header was kept up to date as it went."""
    folder = Path(folder)
    if not (folder / JOURNAL_FILE).exists():
        if (folder / MIDI_FILE).exists():
            raise ConfigError(f"{folder}: nothing to recover ({MIDI_FILE} is there and no {JOURNAL_FILE})")
        raise ConfigError(f"{folder}: no {JOURNAL_FILE} in it; give a folder made by `improv listen --record`")
    journal = read_journal(folder / JOURNAL_FILE)
    return write_session_midi(folder), journal



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
    and safe to call from the analysis thread. Events are appended to the journal and
    flushed, with the WAV header updated and synced, every ``save_every`` seconds;
    command lines are flushed one by one; ``session.mid`` is written from the journal
    by ``close()``. Nothing the recorder keeps grows with the session. A write error
    (disk full) stops that file, is kept in ``error`` and said once through
    ``on_error``; the session goes on.
    """

    def __init__(self, folder: Path, bend_range: float = 2.0, save_every: float = 1.0,
                 voices: Mapping[str, Any] | None = None, on_error: Callable[[str], None] | None = None,
                 timing: Callable[[], BarTiming | None] | None = None):
        self.folder = Path(folder)
        self.path = self.folder / MIDI_FILE
        self.audio_path = self.folder / AUDIO_FILE
        self.commands_path = self.folder / COMMANDS_FILE
        self.journal_path = self.folder / JOURNAL_FILE
        self.bend_range = bend_range
        self.save_every = save_every
        self.voices = dict(voices or {})
        self.on_error = on_error
        self.timing = timing    # the band's bars (session.mid's tempo map), asked at the close
        self.error: str | None = None
        self._failed: set[str] = set()   # the files that could not be written
        self._journal = None
        self._wav: _WavWriter | None = None
        self._cmd_file = None
        self._cc_file = None
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

    def add_control(self, cc: ControlChange) -> None:
        """Non-blocking: a CC macro sent (from the band's thread)."""
        self._queue.put(cc)

    @property
    def audio_frames(self) -> int:
        return self._wav.frames if self._wav is not None else 0

    def _run(self) -> None:
        last_save = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=self.save_every)
            except queue.Empty:
                item = False
            if item is None:
                break
            if isinstance(item, Block):
                self._guard(AUDIO_FILE, self._write_audio, item)
            elif isinstance(item, Command):
                self._guard(COMMANDS_FILE, self._write_command, item)
            elif isinstance(item, ControlChange):
                self._guard(CONTROLS_FILE, self._write_control, item)
            elif item is not False:
                self._guard(JOURNAL_FILE, self._write_event, item)
            if time.monotonic() - last_save >= self.save_every:
                self._sync()
                last_save = time.monotonic()
        self._sync()
        if self._wav is not None:
            self._guard(AUDIO_FILE, self._wav.close)
        for f in (self._journal, self._cmd_file, self._cc_file):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        if JOURNAL_FILE not in self._failed and self._journal is None:
            self._guard(JOURNAL_FILE, self._open_journal)  # a session with no notes: an empty journal
        if self.journal_path.exists():
            timing = self.timing() if self.timing is not None else None
            self._guard(MIDI_FILE, write_session_midi, self.folder, timing)

    def _sync(self) -> None:
        if self._journal is not None:
            self._guard(JOURNAL_FILE, self._journal.flush)
        if self._cc_file is not None:
            self._guard(CONTROLS_FILE, self._cc_file.flush)
        if self._wav is not None:
            self._guard(AUDIO_FILE, self._wav.sync)

    def _guard(self, name: str, fn, *args) -> None:
        """Run a file operation unless that file failed; on a disk error (or a block at another
        rate) give that file up, keep the first message and say it once."""
        if name in self._failed:
            return
        try:
            fn(*args)
        except (OSError, ValueError, soundfile.LibsndfileError) as e:
            self._failed.add(name)
            if self.error is None:
                self.error = f"recording to {self.folder} failed ({e}); the session goes on without it"
                if self.on_error is not None:
                    self.on_error(self.error)

    def _open_journal(self) -> None:
        header = {"journal": JOURNAL_KIND, "version": 1, "bend_range": self.bend_range,
                  "voices": {k: list(_voice_fields(v)) for k, v in self.voices.items()}}
        self._journal = open(self.journal_path, "w", encoding="utf-8")
        self._journal.write(json.dumps(header) + "\n")

    def _write_event(self, ev: Event) -> None:
        if self._journal is None:
            self._open_journal()
        self._journal.write(event_to_json(ev) + "\n")

    def _write_audio(self, block: Block) -> None:
        if self._wav is None:
            self._wav = _WavWriter(self.audio_path, block.sample_rate)
        self._wav.write(block)

    def _write_command(self, cmd: Command) -> None:
        if self._cmd_file is None:
            self._cmd_file = open(self.commands_path, "a", encoding="utf-8")
        self._cmd_file.write(cmd.to_json() + "\n")
        self._cmd_file.flush()

    def _write_control(self, cc: ControlChange) -> None:
        if self._cc_file is None:
            self._cc_file = open(self.folder / CONTROLS_FILE, "a", encoding="utf-8")
        self._cc_file.write(control_to_json(cc) + "\n")

    def close(self) -> Path:
        self._queue.put(None)
        self._thread.join()
        return self.path
