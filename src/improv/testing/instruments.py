#!/usr/bin/env python3
"""Instrument recordings with exact ground truth, rendered with FluidSynth.

Monophonic melodies (music21's bundled corpus: Essen folk songs, Ryan's Mammoth fiddle
tunes; and a few lines written here) are played by a simulated musician — tempo drift,
timing jitter, velocity, legato/detached/staccato notes, repeated notes, vibrato through
the pitch wheel or CC1, scoops into notes, a slightly-off tuning — on General MIDI
instruments, and rendered with libfluidsynth and a Debian GM SoundFont (TimGM6mb, and
FluidR3_GM as a second timbre set). Each take gives:

* ``NAME.wav`` — 44.1 kHz mono 16-bit;
* ``NAME.gt.mid`` — the truth: exactly the rendered notes (read by
  ``improv.truth.read_midi_notes``); its pitches are the keys (the vibrato is centred on
  the key, scoops end on it, the take's tuning offset is at most 12 cents);
* ``NAME.perf.mid`` — the whole performance (program, pitch wheel, CC1, CC91), for
  listening or re-rendering with the ``fluidsynth`` command;
* ``NAME.json`` — how it was made: seed, melodies, tempo, tuning, the soundfont's
  measured attack for this instrument.

Timing is exact to the sample: FluidSynth renders in 64-sample blocks and applies an
event at the start of the next block, so every event is put on that grid (1.45 ms at
44.1 kHz) and the synth is driven directly (``fluid_synth_write_float`` between events).
The ``fluidsynth -F`` command line is not used for the takes because its MIDI player
dispatches events on an integer-millisecond clock once per block: measured ±0.8 ms
(1.45 ms spread) against the file's times.

The truth onset is the note-on: the sample where the synth starts the voice. How long
a soundfont sample then takes to sound is measured (``--attacks``) and written beside
each take, not folded into the truth. FluidR3's cello is left out: it reaches -20 dB of
its peak only 60-70 ms after the note-on (beyond the 50 ms onset tolerance).

Deterministic: the same seed gives the same files, bit for bit.

    python3 benchmarks/render_instruments.py                 # ~/.cache/improv/instruments
    python3 benchmarks/render_instruments.py OUT --instruments sax,bass --takes 2
    python3 benchmarks/render_instruments.py --attacks       # attack table, no takes
    python3 benchmarks/render_instruments.py --demo recordings/demo.wav
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import mido
import numpy as np
import soundfile
import soxr

SAMPLE_RATE = 44100
GRID = 64  # FluidSynth's block: events take effect at the start of the next one
BEND_RANGE = 2  # semitones, set by RPN 0 at the start of every take
DEFAULT_OUT = Path.home() / ".cache" / "improv" / "instruments"
SOUNDFONTS = {
    "tim": Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
    "fluidr3": Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
}


@dataclass(frozen=True)
class Instrument:
    """A GM instrument as a player uses it. ``low``/``high``: sounding MIDI range."""

    name: str
    program: int
    low: int
    high: int
    qpm: tuple[float, float]     # tempo range, quarter notes per minute
    min_note: float              # shortest note the player plays, seconds
    vibrato: float               # chance of vibrato on a long note
    scoop: float                 # chance of a scoop from below into a note
    sustained: bool = True       # winds and bowed strings; False: plucked
    soundfonts: tuple[str, ...] = ("tim", "fluidr3")


INSTRUMENTS: dict[str, Instrument] = {i.name: i for i in (
    Instrument("sax", 65, 51, 77, (80, 150), 0.09, 0.55, 0.12),                 # alto sax
    Instrument("flute", 73, 62, 91, (80, 150), 0.08, 0.45, 0.03),
    Instrument("violin", 40, 55, 88, (70, 140), 0.09, 0.65, 0.08),
    Instrument("bass", 33, 28, 55, (80, 140), 0.12, 0.05, 0.0, sustained=False),  # finger bass
    Instrument("guitar", 24, 40, 76, (70, 130), 0.10, 0.15, 0.0, sustained=False),  # nylon
    Instrument("tenorsax", 66, 44, 75, (80, 140), 0.10, 0.55, 0.12),
    Instrument("clarinet", 71, 50, 84, (80, 140), 0.09, 0.15, 0.02),
    Instrument("trumpet", 56, 55, 82, (80, 150), 0.09, 0.35, 0.10),
    Instrument("cello", 42, 36, 69, (60, 120), 0.11, 0.65, 0.08, soundfonts=("tim",)),
)}
CORE = ("sax", "flute", "violin", "bass", "guitar")
EXTRA = ("tenorsax", "clarinet", "trumpet", "cello")


# ------------------------------------------------------------------------ melodies


@dataclass(frozen=True)
class MelodyNote:
    beat: float   # quarter notes from the melody's start
    beats: float
    pitch: int


@dataclass(frozen=True)
class Melody:
    name: str
    notes: tuple[MelodyNote, ...]
    swing: bool = False


CORPUS = (
    ("essenFolksong/altdeu10", 3), ("essenFolksong/altdeu10", 7), ("essenFolksong/altdeu20", 12),
    ("essenFolksong/ballad10", 5), ("essenFolksong/ballad20", 9), ("essenFolksong/han1", 4),
    ("essenFolksong/han1", 21), ("essenFolksong/kinder0", 2), ("essenFolksong/kinder0", 15),
    ("essenFolksong/irl", 3), ("essenFolksong/lux", 8), ("essenFolksong/erk10", 11),
    ("ryansMammoth/AcaciaReel", None), ("ryansMammoth/AdmiralsHornpipe", None),
    ("ryansMammoth/BarneysGoatJig", None), ("ryansMammoth/BelleOfTheKitchenJig", None),
    ("ryansMammoth/AlhambraReel", None), ("ryansMammoth/AcrobatsHornpipe", None),
)

# tinyNotation: c = C4, c' = C5, C = C3; "-" flat, "#" sharp; trip{} triplets.
WRITTEN = {
    "blues-line": ("4/4 c8 e-8 f8 f#8 g4 b-8 g8 c'4 r8 b-8 g8 f8 e-8 c8 f4 f8 f8 f4 a8 c'8 e-'4 d'8 c'8 "
                   "a4 r4 g8 a8 b-8 b8 c'2 r4 e-8 d8 c4 c8 c8 c2.", True),
    "ballad": ("4/4 e2 g4 a4 b2. a4 g2 e4 d4 e1 r4 g4 a4 b4 d'2 c'4 b4 a1 r2 b4 a4 g2 e2 d4 e4 g4 a4 e1", False),
    "walking-bass": ("4/4 F4 A4 c4 d4 B-4 A4 G4 F4 B-4 d4 f4 d4 B-4 B-4 A4 G4 F4 A4 c4 e-4 d4 c4 B-4 A4 "
                     "G4 B-4 d4 G4 c4 c4 B-4 G4 F4 F4 A4 c4 f2 r2", True),
    "bebop-line": ("4/4 r8 d8 f8 a8 c'8 b8 b-8 a8 g8 f8 e8 g8 trip{f8 e8 d8} c#4 d4 r8 a8 c'8 e'8 g'8 "
                   "f'8 e'8 d'8 c'8 b-8 a8 g8 f4 d4 r2", True),
    "repeated-notes": ("4/4 g8 g8 g8 e-8 f8 f8 f8 d8 e-8 e-8 e-8 c8 d4 r4 g8 g8 g8 b-8 c'8 c'8 b-8 g8 "
                       "f4 f4 f4 r4", False),
}


def melody_from_stream(name: str, stream, swing: bool = False) -> Melody:
    """The top line of a music21 stream: ties merged, grace notes and chord symbols dropped."""
    from music21 import harmony

    s = stream.stripTies()
    part = s.parts[0] if hasattr(s, "parts") and len(s.parts) else s
    notes = []
    for n in part.flatten().notes:
        ql = float(n.quarterLength)
        if ql <= 0 or isinstance(n, harmony.ChordSymbol):
            continue
        pitch = max(p.midi for p in n.pitches)
        notes.append(MelodyNote(float(n.offset), ql, int(pitch)))
    notes.sort(key=lambda m: m.beat)
    # A monophonic line: a note ends where the next one starts at the latest.
    clean = [m if i + 1 == len(notes) or m.beat + m.beats <= notes[i + 1].beat + 1e-9
             else MelodyNote(m.beat, notes[i + 1].beat - m.beat, m.pitch)
             for i, m in enumerate(notes)]
    return Melody(name, tuple(m for m in clean if m.beats > 0), swing)


def load_melodies() -> list[Melody]:
    from music21 import converter, corpus

    out = []
    for path, number in CORPUS:
        score = corpus.parse(path, number=number) if number is not None else corpus.parse(path)
        out.append(melody_from_stream(f"{path}#{number}" if number is not None else path, score))
    for name, (text, swing) in WRITTEN.items():
        out.append(melody_from_stream(name, converter.parse("tinyNotation: " + text), swing))
    return out


# --------------------------------------------------------------------- performance


@dataclass(frozen=True)
class PerfNote:
    start: int  # samples at SAMPLE_RATE, multiples of GRID
    end: int
    pitch: int
    velocity: int


@dataclass(frozen=True)
class Control:
    sample: int
    kind: str   # "bend" (value: cents from the key) or "cc" (number, value)
    value: float
    number: int = 0


@dataclass
class Take:
    name: str
    instrument: Instrument
    soundfont: str
    seed: int
    notes: list[PerfNote] = field(default_factory=list)
    controls: list[Control] = field(default_factory=list)
    length: int = 0
    tuning_cents: float = 0.0
    reverb: int = 0
    modwheel_vibrato: bool = False
    melodies: list[str] = field(default_factory=list)
    qpm: list[float] = field(default_factory=list)


def on_grid(seconds: float) -> int:
    return int(round(seconds * SAMPLE_RATE / GRID)) * GRID


def transpose_for(inst: Instrument, melody: Melody, rng: np.random.Generator) -> int | None:
    """A transposition that puts the melody in the instrument's range, near its middle."""
    lo = min(n.pitch for n in melody.notes)
    hi = max(n.pitch for n in melody.notes)
    valid = np.arange(inst.low - lo, inst.high - hi + 1)
    if len(valid) == 0:
        return None
    middle = (inst.low + inst.high) / 2 - (lo + hi) / 2
    near = valid[np.abs(valid - middle) <= 5]
    return int(rng.choice(near if len(near) else valid))


def beat_times(n_beats: float, qpm: float, rng: np.random.Generator) -> np.ndarray:
    """Seconds at each whole beat, the tempo wandering by up to ±6%."""
    n = int(np.ceil(n_beats)) + 2
    drift = np.clip(np.cumsum(rng.normal(0.0, 0.012, n)), -0.06, 0.06)
    return np.concatenate([[0.0], np.cumsum(60.0 / (qpm * (1.0 + drift)))])


def perform(take: Take, melodies: list[Melody], rng: np.random.Generator,
            target: tuple[float, float] = (20.0, 28.0), shuffle: bool = True) -> Take:
    """Play melodies one after another (in a random order unless not ``shuffle``) until
    the take is ``target`` seconds long."""
    inst = take.instrument
    length = rng.uniform(*target)
    take.tuning_cents = float(rng.uniform(-12, 12)) if rng.random() < 0.5 else 0.0
    take.reverb = int(rng.integers(20, 60)) if rng.random() < 0.5 else 0
    take.modwheel_vibrato = bool(inst.sustained and rng.random() < 0.3)
    jitter = rng.uniform(0.004, 0.012)
    style = rng.dirichlet([3, 4.5, 1.7, 0.8]) if inst.sustained else rng.dirichlet([2, 4, 2, 0.5])
    t = rng.uniform(0.4, 0.8)
    order = rng.permutation(len(melodies)) if shuffle else np.arange(len(melodies))
    raw: list[tuple[float, float, int, int, float]] = []  # onset, end, pitch, velocity, nominal length
    full = False
    for k in order:
        mel = melodies[k]
        shift = transpose_for(inst, mel, rng)
        if shift is None:
            continue
        shortest = min(n.beats for n in mel.notes if n.beats >= 0.12)
        qpm = min(rng.uniform(*inst.qpm), 60.0 * shortest / inst.min_note)
        end_beat = max(n.beat + n.beats for n in mel.notes)
        clock = beat_times(end_beat, qpm, rng)
        first = mel.notes[0].beat
        swing = rng.uniform(0.08, 0.16) if mel.swing else 0.0
        base_vel = rng.integers(60, 100)
        beats = np.arange(len(clock))

        def seconds(beat: float) -> float:
            if swing and abs(beat % 1.0 - 0.5) < 1e-6:
                beat += swing
            return t + float(np.interp(beat, beats, clock))

        played = 0
        for n in mel.notes:
            on, off = seconds(n.beat - first), seconds(n.beat - first + n.beats)
            if off > length and (played or raw):
                full = True
                break
            on += float(np.clip(rng.normal(0.0, jitter), -0.025, 0.025))
            accent = 8 if abs(n.beat % 2.0) < 1e-6 else 0
            vel = int(np.clip(base_vel + accent + rng.normal(0, 7), 25, 120))
            raw.append((on, off, n.pitch + shift, vel, off - on))
            played += 1
        if played:
            take.melodies.append(f"{mel.name} ({shift:+d})")
            take.qpm.append(round(float(qpm), 1))
        t = raw[-1][1] + rng.uniform(0.5, 1.5)
        if full or raw[-1][1] >= length:
            break
    return articulate(take, raw, style, rng)


def articulate(take: Take, raw, style: np.ndarray, rng: np.random.Generator) -> Take:
    """Note lengths, repeated notes, vibrato and scoops; everything on the block grid."""
    inst = take.instrument
    notes: list[PerfNote] = []
    controls: list[Control] = [Control(0, "bend", take.tuning_cents)]
    for i, (on, nominal_end, pitch, vel, nominal) in enumerate(raw):
        nxt = raw[i + 1][0] if i + 1 < len(raw) else None
        kind = rng.choice(4, p=style)  # legato, normal, detached, staccato
        ratio = (1.0, rng.uniform(0.85, 0.95), rng.uniform(0.55, 0.75), rng.uniform(0.3, 0.45))[kind]
        end = on + max(inst.min_note * 0.7, ratio * nominal)
        contiguous = nxt is not None and nxt - nominal_end < 0.03
        if nxt is not None:
            if kind == 0 and contiguous:
                end = nxt if raw[i + 1][2] != pitch else nxt - rng.uniform(0.025, 0.05)
            end = min(end, nxt - (0.0 if kind == 0 else 0.012))
        pieces = [(on, end)]
        if end - on >= 0.8 and rng.random() < 0.12:  # split a long note into repeated notes
            k = int(rng.integers(2, 4))
            edges = np.linspace(on, end, k + 1)
            gaps = rng.uniform(0.03, 0.06, k)
            pieces = [(edges[j], edges[j + 1] - (gaps[j] if j + 1 < k else 0.0)) for j in range(k)]
        for a, b in pieces:
            s, e = on_grid(a), on_grid(b)
            if notes and s < notes[-1].end:
                s = notes[-1].end
            if e - s < on_grid(0.05):
                continue
            v = int(np.clip(vel + rng.normal(0, 4), 20, 124))
            notes.append(PerfNote(s, e, int(pitch), v))
            controls.extend(expression(inst, take, s, e, rng))
    take.notes = notes
    take.controls = sorted(controls, key=lambda c: c.sample)
    take.length = notes[-1].end + on_grid(1.0)
    return take


def expression(inst: Instrument, take: Take, start: int, end: int, rng: np.random.Generator) -> list[Control]:
    """Pitch-wheel and CC1 messages for one note (the key's pitch is its centre)."""
    out: list[Control] = []
    tune = take.tuning_cents
    dur = (end - start) / SAMPLE_RATE
    if rng.random() < inst.scoop:
        depth, span = rng.uniform(25, 70), rng.uniform(0.03, 0.08)
        steps = max(2, on_grid(span) // GRID)
        for j in range(steps):
            out.append(Control(start + j * GRID, "bend", tune - depth * (1 - j / steps)))
        out.append(Control(start + steps * GRID, "bend", tune))
    else:
        out.append(Control(start, "bend", tune))
    if dur >= 0.35 and rng.random() < inst.vibrato:
        delay = rng.uniform(0.12, 0.25)
        if take.modwheel_vibrato:
            out.append(Control(start + on_grid(delay), "cc", int(rng.integers(30, 90)), 1))
            out.append(Control(end, "cc", 0, 1))
        else:
            rate, depth = rng.uniform(4.5, 6.5), rng.uniform(10, 35)
            if not inst.sustained:
                depth *= 0.4
            step = 7 * GRID  # about 10 ms
            for s in range(start + on_grid(delay), end, step):
                t = (s - start) / SAMPLE_RATE - delay
                ramp = min(1.0, t / 0.15)
                out.append(Control(s, "bend", tune + ramp * depth * np.sin(2 * np.pi * rate * t)))
            out.append(Control(end, "bend", tune))
    return out


# ------------------------------------------------------------------------ rendering


def _bend_value(cents: float) -> int:
    """14-bit pitch-wheel value (0..16383, centre 8192) for ``cents``."""
    return int(np.clip(round(8192 + cents / (100.0 * BEND_RANGE) * 8192), 0, 16383))


def _setup_messages(inst: Instrument, reverb: int) -> list[tuple[str, int, int]]:
    """Program, bend range (RPN 0), CC1/CC91/CC93 at the start of a take."""
    return [("program", inst.program, 0), ("cc", 101, 0), ("cc", 100, 0), ("cc", 6, BEND_RANGE),
            ("cc", 38, 0), ("cc", 101, 127), ("cc", 100, 127), ("cc", 1, 0), ("cc", 91, reverb),
            ("cc", 93, 0)]


class FluidRenderer:
    """libfluidsynth driven sample-exactly: render up to an event, send it, go on."""

    def __init__(self, soundfont: Path, sample_rate: int = SAMPLE_RATE):
        import fluidsynth

        if not soundfont.exists():
            raise FileNotFoundError(f"{soundfont}: soundfont missing; install it "
                                    "(Debian: timgm6mb-soundfont, fluid-soundfont-gm)")
        self._lib = fluidsynth._fl  # noqa: SLF001 - pyfluidsynth exposes no float writer
        self._lib.fluid_synth_write_float.argtypes = [
            ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
            ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        self._lib.fluid_synth_pitch_bend.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        self._synth = fluidsynth.Synth(gain=1.0, samplerate=float(sample_rate),
                                       **{"synth.chorus.active": 0, "synth.reverb.active": 1})
        self._sfid = self._synth.sfload(str(soundfont))
        if self._sfid < 0:
            raise RuntimeError(f"{soundfont}: FluidSynth cannot load it")

    def render(self, events: list[tuple[int, int, tuple]], length: int) -> np.ndarray:
        """``events``: (sample, order, (kind, a, b)) with samples on the GRID. Mono float32."""
        out = np.zeros((length, 2), dtype=np.float32)
        pos = 0
        for sample, _order, msg in sorted(events, key=lambda e: (e[0], e[1])):
            if sample % GRID:
                raise ValueError(f"event at sample {sample} is off the {GRID}-sample grid")
            self._write(out, pos, sample)
            pos = max(pos, sample)
            self._send(msg)
        self._write(out, pos, length)
        return out.mean(axis=1)

    def _write(self, out: np.ndarray, pos: int, until: int) -> None:
        n = min(until, len(out)) - pos
        if n > 0:
            ptr = out[pos:].ctypes.data
            self._lib.fluid_synth_write_float(self._synth.synth, n, ptr, 0, 2, ptr, 1, 2)

    def _send(self, msg: tuple) -> None:
        kind, a, b = msg
        s = self._synth
        if kind == "program":
            s.program_select(0, self._sfid, 0, a)
        elif kind == "cc":
            s.cc(0, a, b)
        elif kind == "bend":
            self._lib.fluid_synth_pitch_bend(s.synth, 0, a)
        elif kind == "on":
            s.noteon(0, a, b)
        elif kind == "off":
            s.noteoff(0, a)

    def close(self) -> None:
        self._synth.delete()


def take_events(take: Take) -> list[tuple[int, int, tuple]]:
    """All messages of a take; at one sample: setup, note-offs, controls, note-ons."""
    ev = [(0, i, m) for i, m in enumerate(_setup_messages(take.instrument, take.reverb))]
    for n in take.notes:
        ev.append((n.end, 100, ("off", n.pitch, 0)))
        ev.append((n.start, 300, ("on", n.pitch, n.velocity)))
    for c in take.controls:
        msg = ("bend", _bend_value(c.value), 0) if c.kind == "bend" else ("cc", c.number, int(c.value))
        ev.append((c.sample, 200, msg))
    return ev


def render_take(take: Take) -> np.ndarray:
    renderer = FluidRenderer(SOUNDFONTS[take.soundfont])
    try:
        return renderer.render(take_events(take), take.length)
    finally:
        renderer.close()


def finish_audio(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Scale to a peak of -12..-3 dBFS and add a quiet noise floor (-75..-62 dBFS RMS)."""
    peak_db, noise_db = rng.uniform(-12, -3), rng.uniform(-75, -62)
    y = x / max(np.abs(x).max(), 1e-9) * 10 ** (peak_db / 20)
    y = y + rng.normal(0.0, 10 ** (noise_db / 20), len(y))
    return y.astype(np.float32), {"peak_dbfs": round(peak_db, 1), "noise_dbfs": round(noise_db, 1)}


# --------------------------------------------------------------------------- files

TICKS_PER_BEAT = 441
TEMPO = 640000  # microseconds per beat: one tick is exactly 64 samples at 44.1 kHz


def _ticks(sample: int) -> int:
    if sample % GRID:
        raise ValueError(f"sample {sample} is off the grid")
    return sample // GRID


def _track(messages: list[tuple[int, mido.Message]]) -> mido.MidiTrack:
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=TEMPO, time=0)])
    now = 0
    for tick, msg in messages:
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def write_truth(notes: list[PerfNote], path: Path) -> None:
    """The notes alone, at their exact times (tick = 64 samples at 44.1 kHz)."""
    msgs = []
    for n in notes:
        msgs.append((_ticks(n.start), 1, mido.Message("note_on", note=n.pitch, velocity=n.velocity)))
        msgs.append((_ticks(n.end), 0, mido.Message("note_off", note=n.pitch, velocity=0)))
    msgs.sort(key=lambda m: (m[0], m[1]))
    mid = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(_track([(t, m) for t, _, m in msgs]))
    mid.save(str(path))


def write_performance(take: Take, path: Path) -> None:
    msgs = []
    for sample, order, (kind, a, b) in sorted(take_events(take), key=lambda e: (e[0], e[1])):
        if kind == "program":
            m = mido.Message("program_change", program=a)
        elif kind == "cc":
            m = mido.Message("control_change", control=a, value=b)
        elif kind == "bend":
            m = mido.Message("pitchwheel", pitch=a - 8192)
        elif kind == "on":
            m = mido.Message("note_on", note=a, velocity=b)
        else:
            m = mido.Message("note_off", note=a, velocity=0)
        msgs.append((_ticks(sample), m))
    mid = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(_track(msgs))
    mid.save(str(path))


# ------------------------------------------------------------------------- attacks


def measure_attack(inst: Instrument, soundfont: str, velocity: int = 80) -> dict:
    """Milliseconds from a lone note-on until the sound reaches -20 dB and -6 dB of its peak
    (1 ms RMS), and from the note-off until it falls 20 dB below its level at the note-off."""
    pitch = (inst.low + inst.high) // 2
    on, off, length = on_grid(0.2), on_grid(1.2), on_grid(2.0)
    take = Take("attack", inst, soundfont, 0, notes=[PerfNote(on, off, pitch, velocity)], length=length)
    x = render_take(take).astype(np.float64)
    env = np.sqrt(np.convolve(x * x, np.ones(44) / 44, mode="same"))
    peak = env[on:off].max()
    level_at_off = env[off - 44]
    ms = lambda n: round(1000.0 * n / SAMPLE_RATE, 1)  # noqa: E731
    return {
        "pitch": pitch, "velocity": velocity,
        "minus20db_ms": ms(int(np.argmax(env[on:] > 0.1 * peak))),
        "minus6db_ms": ms(int(np.argmax(env[on:] > 0.5 * peak))),
        "release_20db_ms": ms(int(np.argmax(env[off:] < 0.1 * level_at_off))),
    }


# ---------------------------------------------------------------------------- sets


def take_plan(instruments: list[str], takes: int | None) -> list[tuple[str, str, int]]:
    """(instrument, soundfont, number): the core instruments 4 takes, the others 2, split
    between the soundfonts the instrument is rendered with."""
    plan = []
    for name in instruments:
        inst = INSTRUMENTS[name]
        n = takes if takes is not None else (4 if name in CORE else 2)
        for k in range(n):
            plan.append((name, inst.soundfonts[(k * len(inst.soundfonts)) // n], k + 1))
    return plan


def make_take(name: str, soundfont: str, number: int, seed: int, melodies: list[Melody],
              target: tuple[float, float] = (20.0, 28.0)) -> Take:
    take_seed = zlib.crc32(f"{seed}:{name}:{soundfont}:{number}".encode())
    rng = np.random.default_rng(take_seed)
    take = Take(f"{name}-{soundfont}-{number}", INSTRUMENTS[name], soundfont, take_seed)
    return perform(take, melodies, rng, target=target)


def write_take(take: Take, out_dir: Path, attack: dict, sample_rate: int = SAMPLE_RATE) -> Path:
    rng = np.random.default_rng(take.seed + 1)
    audio, levels = finish_audio(render_take(take), rng)
    if sample_rate != SAMPLE_RATE:
        audio = soxr.resample(audio, SAMPLE_RATE, sample_rate)
    wav = out_dir / f"{take.name}.wav"
    soundfile.write(str(wav), audio, sample_rate, subtype="PCM_16")
    write_truth(take.notes, out_dir / f"{take.name}.gt.mid")
    write_performance(take, out_dir / f"{take.name}.perf.mid")
    meta = {
        "instrument": take.instrument.name, "program": take.instrument.program,
        "soundfont": str(SOUNDFONTS[take.soundfont]), "seed": take.seed,
        "duration_s": round(take.length / SAMPLE_RATE, 3), "notes": len(take.notes),
        "melodies": take.melodies, "qpm": take.qpm, "tuning_cents": round(take.tuning_cents, 2),
        "reverb_cc91": take.reverb, "vibrato": "cc1" if take.modwheel_vibrato else "pitch wheel",
        "attack": attack, **levels,
        "truth": "note-on/off samples as rendered; the attack above is not folded in",
    }
    (out_dir / f"{take.name}.json").write_text(json.dumps(meta, indent=1))
    return wav


def one_per_instrument(instruments: list[str]) -> list[tuple[str, str, int]]:
    """(instrument, soundfont, 1): one take each, the soundfonts alternating from one
    instrument to the next (an instrument rendered with one soundfont only keeps it)."""
    plan = []
    for i, name in enumerate(instruments):
        fonts = INSTRUMENTS[name].soundfonts
        plan.append((name, fonts[i % len(fonts)], 1))
    return plan


def render_set(out_dir: Path, instruments: list[str], takes: int | None, seed: int,
               log=print, target: tuple[float, float] = (20.0, 28.0),
               plan: list[tuple[str, str, int]] | None = None) -> list[Path]:
    """Render ``plan`` (default: ``take_plan(instruments, takes)``) into ``out_dir``;
    each take lasts ``target`` seconds (drawn uniformly)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    melodies = load_melodies()
    attacks: dict[tuple[str, str], dict] = {}
    written = []
    for name, sf, number in plan if plan is not None else take_plan(instruments, takes):
        if not SOUNDFONTS[sf].exists():
            log(f"skipped {name}-{sf}-{number}: {SOUNDFONTS[sf]} is not installed")
            continue
        if (name, sf) not in attacks:
            attacks[(name, sf)] = measure_attack(INSTRUMENTS[name], sf)
        take = make_take(name, sf, number, seed, melodies, target)
        written.append(write_take(take, out_dir, attacks[(name, sf)]))
        log(f"{written[-1]}: {len(take.notes)} notes, {take.length / SAMPLE_RATE:.1f} s")
    return written


# ---------------------------------------------------------------------------- demo

DEMO_MELODIES = ("blues-line", "bebop-line", "ballad")


def render_demo(path: Path, seed: int = 7, sample_rate: int = 22050) -> Path:
    """A short alto-sax take on TimGM6mb (the soundfont scripts/setup.sh installs)."""
    by_name = {m.name: m for m in load_melodies()}
    melodies = [by_name[n] for n in DEMO_MELODIES]
    inst = INSTRUMENTS["sax"]
    rng = np.random.default_rng(seed)
    take = Take("demo", inst, "tim", seed)
    take = perform(take, melodies, rng, target=(15.0, 18.0), shuffle=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng2 = np.random.default_rng(seed + 1)
    audio, _ = finish_audio(render_take(take), rng2)
    audio = soxr.resample(audio, SAMPLE_RATE, sample_rate)
    soundfile.write(str(path), audio, sample_rate, subtype="PCM_16")
    write_truth(take.notes, path.parent / f"{path.stem}.gt.mid")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--instruments", default=",".join(CORE + EXTRA),
                   help=f"comma list from {','.join(INSTRUMENTS)} (default: all)")
    p.add_argument("--takes", type=int, help="takes per instrument (default: 4 for "
                   f"{','.join(CORE)}, 2 for the others)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--seconds", default="20,28", metavar="MIN,MAX",
                   help="length of each take in seconds, drawn between MIN and MAX (default 20,28)")
    p.add_argument("--attacks", action="store_true", help="print the measured attack of every instrument and exit")
    p.add_argument("--demo", type=Path, metavar="WAV", help="write only the demo take (and its .gt.mid) to WAV")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.instruments.split(",") if n.strip()]
    unknown = [n for n in names if n not in INSTRUMENTS]
    if unknown:
        p.error(f"unknown instrument {unknown[0]!r}; choose from {', '.join(INSTRUMENTS)}")
    if args.demo:
        print(render_demo(args.demo))
        return 0
    if args.attacks:
        print(f"{'instrument':10s} {'soundfont':8s} {'-20 dB':>7s} {'-6 dB':>7s} {'release':>8s}  (ms)")
        for name in names:
            for sf in ("tim", "fluidr3"):
                if SOUNDFONTS[sf].exists():
                    a = measure_attack(INSTRUMENTS[name], sf)
                    used = "" if sf in INSTRUMENTS[name].soundfonts else "  (not used)"
                    print(f"{name:10s} {sf:8s} {a['minus20db_ms']:7.1f} {a['minus6db_ms']:7.1f} "
                          f"{a['release_20db_ms']:8.1f}{used}")
        return 0
    try:
        lo, hi = (float(x) for x in args.seconds.split(","))
    except ValueError:
        p.error(f"--seconds wants MIN,MAX in seconds, e.g. 20,28 (got {args.seconds!r})")
    if not 3.0 <= lo <= hi:
        p.error(f"--seconds wants 3 <= MIN <= MAX (got {args.seconds!r})")
    render_set(args.out, names, args.takes, args.seed, target=(lo, hi))
    return 0


if __name__ == "__main__":
    sys.exit(main())
