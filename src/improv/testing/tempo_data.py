"""Melodies with known beats, rendered with human-like timing, for the tempo benchmark.

* Nottingham folk tunes (``../shared/data/symbolic/nottingham/MIDI``): the melody
  track's notes in beats (the meter's beat: quarter, or dotted quarter in 6/8, 9/8,
  12/8), played at a chosen tempo; the truth beats are the grid.
* POP909 (``../shared/data/symbolic/pop909``): the MELODY track in seconds (the
  file's tempo map) and the annotated beats of ``beat_midi.txt``.

Every onset gets uniform jitter of +-``jitter`` s. ``render_wav`` plays a piece through
FluidSynth (a GM SoundFont from Debian) for the audio path.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from ..timing.tempomap import tempo_changes
from . import SHARED_DATA

SHARED = SHARED_DATA
NOTTINGHAM = SHARED / "symbolic" / "nottingham" / "MIDI"
POP909 = SHARED / "symbolic" / "pop909"
SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"


@dataclass
class Piece:
    name: str
    onsets: np.ndarray  # s, with jitter
    offsets: np.ndarray  # s
    pitches: np.ndarray
    velocities: np.ndarray
    beats: np.ndarray  # truth beat times (s)
    meter: str
    bpm: float  # nominal tempo of the truth beats


def _notes(track: mido.MidiTrack) -> list[tuple[int, int, int, int]]:
    """(start tick, end tick, pitch, velocity) of a track, monophonic: a new note ends the last."""
    now, open_ = 0, {}
    out = []
    for msg in track:
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            open_[msg.note] = (now, msg.velocity)
        elif msg.type in ("note_off", "note_on") and msg.note in open_:
            start, vel = open_.pop(msg.note)
            out.append((start, now, msg.note, vel))
    out.sort()
    mono = []
    for n in out:
        if mono and n[0] == mono[-1][0]:
            continue  # a chord in the melody: keep one note
        if mono and n[0] < mono[-1][1]:
            mono[-1] = (mono[-1][0], n[0], mono[-1][2], mono[-1][3])
        mono.append(n)
    return mono


def nottingham_piece(path: Path, bpm: float, rng: np.random.Generator, jitter: float = 0.02,
                     n_beats: int = 40) -> Piece | None:
    mid = mido.MidiFile(str(path))
    ts = next((m for m in mid.tracks[0] if m.type == "time_signature"), None)
    if ts is None or (ts.numerator, ts.denominator) not in ((2, 4), (3, 4), (4, 4), (6, 8), (9, 8), (12, 8)):
        return None
    compound = ts.denominator == 8
    beat_ticks = mid.ticks_per_beat * (1.5 if compound else 1.0)
    notes = _notes(mid.tracks[0])
    if len(notes) < 16:
        return None
    period = 60.0 / bpm
    start_beat = np.floor(notes[0][0] / beat_ticks)
    last_beat = start_beat + n_beats
    notes = [n for n in notes if n[0] / beat_ticks < last_beat]
    on = np.array([n[0] / beat_ticks for n in notes]) * period
    off = np.array([n[1] / beat_ticks for n in notes]) * period
    on = on + rng.uniform(-jitter, jitter, len(on))
    off = np.maximum(off + rng.uniform(-jitter, jitter, len(off)), on + 0.03)
    beats = np.arange(start_beat, last_beat) * period
    shift = max(0.0, 0.5 - float(on.min()))  # some silence before the first note
    return Piece(f"{path.stem}@{bpm:g}", on + shift, off + shift, np.array([n[2] for n in notes]),
                 np.array([n[3] for n in notes]), beats + shift, f"{ts.numerator}/{ts.denominator}", bpm)


def pop909_piece(folder: Path, rng: np.random.Generator, jitter: float = 0.02, n_beats: int = 40) -> Piece | None:
    mid = mido.MidiFile(str(folder / f"{folder.name}.mid"))
    melody = next((t for t in mid.tracks if t.name.strip().upper() == "MELODY"), None)
    if melody is None:
        return None
    tempo_map = tempo_changes(mid)
    notes = _notes(melody)
    if len(notes) < 16:
        return None
    sec = lambda tick: _tick_to_sec(tick, tempo_map, mid.ticks_per_beat)  # noqa: E731
    on = np.array([sec(n[0]) for n in notes])
    off = np.array([sec(n[1]) for n in notes])
    beats_all = np.loadtxt(folder / "beat_midi.txt", ndmin=2)[:, 0]
    first = on[0]
    i0 = int(np.searchsorted(beats_all, first - 0.1))
    beats = beats_all[i0:i0 + n_beats]
    if len(beats) < n_beats // 2:
        return None
    keep = (on >= first) & (on < beats[-1] + 0.01)
    on, off = on[keep], off[keep]
    pitches = np.array([n[2] for n in notes])[keep]
    vels = np.array([n[3] for n in notes])[keep]
    on = on + rng.uniform(-jitter, jitter, len(on))
    off = np.maximum(off + rng.uniform(-jitter, jitter, len(off)), on + 0.03)
    shift = 0.5 - float(on.min())
    bpm = 60.0 / float(np.median(np.diff(beats)))
    return Piece(f"pop909-{folder.name}", on + shift, off + shift, pitches, vels, beats + shift, "4/4", bpm)


def _tick_to_sec(tick: int, tempo_map: list[tuple[int, int]], tpb: int) -> float:
    sec, last_tick, tempo = 0.0, 0, tempo_map[0][1]
    for t, tp in tempo_map:
        if t >= tick:
            break
        sec += (t - last_tick) * tempo / tpb / 1e6
        last_tick, tempo = t, tp
    return sec + (tick - last_tick) * tempo / tpb / 1e6


def render_wav(piece: Piece, path: Path, program: int = 71, rate: int = 44100) -> Path:
    """The piece played by FluidSynth (GM ``program``, default clarinet) into a WAV file."""
    mid = mido.MidiFile(ticks_per_beat=1000)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=1_000_000, time=0))  # 1 tick = 1 ms
    track.append(mido.Message("program_change", program=program, time=0))
    msgs = []
    for on, off, p, v in zip(piece.onsets, piece.offsets, piece.pitches, piece.velocities):
        msgs.append((int(round(on * 1000)), 1, mido.Message("note_on", note=int(p), velocity=int(v))))
        msgs.append((int(round(off * 1000)), 0, mido.Message("note_off", note=int(p), velocity=0)))
    msgs.sort(key=lambda x: (x[0], x[1]))
    now = 0
    for t, _, m in msgs:
        track.append(m.copy(time=t - now))
        now = t
    track.append(mido.MetaMessage("end_of_track", time=1000))
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.mid"
        mid.save(str(src))
        subprocess.run(["fluidsynth", "-ni", "-g", "1.0", "-F", str(path), "-r", str(rate), SOUNDFONT, str(src)],
                       check=True, capture_output=True)
    return path
