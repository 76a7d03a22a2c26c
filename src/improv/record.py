"""Session recording: the notes of a session as a standard MIDI file, written as it goes.

``SessionRecorder`` keeps every event in memory and, from its own thread, rewrites
``session.mid`` at most every ``save_every`` seconds through a temporary file and an
atomic rename, so a crash or a pulled cable loses at most that much and never leaves
a half-written file. Each source (the player, each band) has its own track and channel.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from datetime import datetime
from pathlib import Path

import mido

from .errors import ConfigError
from .events import BANDS, PLAYER, Event, NoteOff, NoteOn, PitchBend
from .midi import cents_to_bend

TICKS_PER_BEAT = 960
TEMPO = 500_000  # 120 BPM: one tick is 0.52 ms
CHANNELS = {PLAYER: 0, "bass": 1, "mid": 2, "high": 3}


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


def events_to_midifile(events: list[Event], bend_range: float = 2.0,
                       channels: dict[str, int] | None = None) -> mido.MidiFile:
    """A type-1 MIDI file with one track per source, times from the events' ``time``."""
    channels = channels or CHANNELS
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=TEMPO, time=0)])
    mid.tracks.append(meta)
    sources = [s for s in (PLAYER, *BANDS) if any(e.source == s for e in events)]
    for source in sources:
        ch = channels.get(source, 0)
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=source, time=0)])
        last_tick = 0
        for ev in sorted((e for e in events if e.source == source), key=lambda e: e.time):
            tick = int(round(mido.second2tick(max(ev.time, 0.0), TICKS_PER_BEAT, TEMPO)))
            for msg in event_messages(ev, ch, bend_range):
                track.append(msg.copy(time=max(0, tick - last_tick)))
                last_tick = max(last_tick, tick)
        mid.tracks.append(track)
    return mid


def event_messages(ev: Event, channel: int, bend_range: float, bends: bool = True) -> list[mido.Message]:
    """The MIDI messages one event becomes (a bend goes before its note-on)."""
    if isinstance(ev, NoteOn):
        msgs = []
        if bends:
            msgs.append(mido.Message("pitchwheel", channel=channel, pitch=cents_to_bend(ev.cents, bend_range)))
        msgs.append(mido.Message("note_on", channel=channel, note=ev.pitch, velocity=ev.velocity))
        return msgs
    if isinstance(ev, NoteOff):
        return [mido.Message("note_off", channel=channel, note=ev.pitch, velocity=0)]
    if isinstance(ev, PitchBend):
        return [mido.Message("pitchwheel", channel=channel, pitch=cents_to_bend(ev.cents, bend_range))] \
            if bends else []
    raise TypeError(f"not a note event: {ev!r}")


class SessionRecorder:
    """Collects events and keeps ``session.mid`` in ``folder`` up to date from a thread."""

    def __init__(self, folder: Path, bend_range: float = 2.0, save_every: float = 1.0):
        self.folder = Path(folder)
        self.path = self.folder / "session.mid"
        self.bend_range = bend_range
        self.save_every = save_every
        self._events: list[Event] = []
        self._queue: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="improv-recorder", daemon=True)
        self._thread.start()

    def add(self, event: Event) -> None:
        """Non-blocking: safe to call from the analysis thread."""
        self._queue.put(event)

    def _run(self) -> None:
        last_save = time.monotonic()
        dirty = False
        while True:
            try:
                ev = self._queue.get(timeout=self.save_every)
            except queue.Empty:
                ev = False
            if ev is None:
                break
            if ev:
                self._events.append(ev)
                dirty = True
            if dirty and time.monotonic() - last_save >= self.save_every:
                self._save()
                dirty, last_save = False, time.monotonic()
        self._save()

    def _save(self) -> None:
        mid = events_to_midifile(self._events, self.bend_range)
        tmp = self.path.with_suffix(".mid.tmp")
        mid.save(str(tmp))
        os.replace(tmp, self.path)

    def close(self) -> Path:
        self._queue.put(None)
        self._thread.join()
        return self.path
