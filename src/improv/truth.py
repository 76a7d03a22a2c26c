"""Ground truth beside a recording, in the formats improv's benchmarks meet.

* SSVD: ``NAME.txt``, tab-separated ``onset_s offset_s midi`` (fractional MIDI).
* vocadito: ``NAME_notesA1.csv`` (``onset_s,pitch_hz,duration_s``; A2 is the second
  annotator) and ``NAME_f0.csv`` (``time_s,f0_hz``, 0 = unvoiced) for frame truth.
* Standard MIDI files: ``NAME.gt.mid`` or ``NAME.mid`` beside ``NAME.wav``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from .errors import ImprovError


@dataclass(frozen=True)
class Truth:
    intervals: np.ndarray  # (n, 2) seconds
    pitches: np.ndarray    # (n,) fractional MIDI
    source: str            # the file it came from
    f0_times: np.ndarray | None = None
    f0_hz: np.ndarray | None = None


class TruthError(ImprovError):
    pass


def truth_candidates(audio: Path) -> list[Path]:
    stem = audio.with_suffix("")
    base = audio.parent / audio.stem
    return [
        stem.with_suffix(".txt"),
        base.parent / f"{audio.stem}_notesA1.csv",
        base.parent / f"{audio.stem}.gt.mid",
        stem.with_suffix(".mid"),
    ]


def find_truth(audio: str | Path) -> Truth | None:
    """The truth beside ``audio``, or None when there is none."""
    audio = Path(audio)
    for cand in truth_candidates(audio):
        if cand.exists():
            truth = load_truth_file(cand)
            f0 = audio.parent / f"{audio.stem}_f0.csv"
            if f0.exists():
                times, hz = _read_f0_csv(f0)
                truth = Truth(truth.intervals, truth.pitches, truth.source, times, hz)
            return truth
    return None


def load_truth_file(path: Path) -> Truth:
    try:
        if path.suffix == ".txt":
            return _read_ssvd(path)
        if path.suffix == ".csv":
            return _read_vocadito_notes(path)
        if path.suffix == ".mid":
            return read_midi_notes(path)
    except (ValueError, IndexError, OSError, EOFError) as e:
        raise TruthError(f"{path}: cannot read the note annotations ({e}); check the file's format") from None
    raise TruthError(f"{path}: unknown annotation format; use SSVD .txt, vocadito .csv or a MIDI file")


def _read_ssvd(path: Path) -> Truth:
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    arr = np.array([[float(v) for v in r[:3]] for r in rows], dtype=np.float64).reshape(-1, 3)
    return Truth(arr[:, :2], arr[:, 2], str(path))


def _read_vocadito_notes(path: Path) -> Truth:
    with open(path, newline="") as f:
        rows = [[float(v) for v in r[:3]] for r in csv.reader(f) if r and not r[0].startswith("#")]
    arr = np.array(rows, dtype=np.float64).reshape(-1, 3)
    intervals = np.stack([arr[:, 0], arr[:, 0] + arr[:, 2]], axis=1)
    pitches = 69.0 + 12.0 * np.log2(arr[:, 1] / 440.0)
    return Truth(intervals, pitches, str(path))


def _read_f0_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    arr = np.loadtxt(path, delimiter=",", dtype=np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def read_midi_notes(path: Path) -> Truth:
    """All note-on/off pairs of a MIDI file (every track and channel), in seconds."""
    mid = mido.MidiFile(str(path))
    t = 0.0
    sounding: dict[tuple[int, int], float] = {}
    notes: list[tuple[float, float, int]] = []
    for msg in mid:  # merged tracks, times converted to seconds with the tempo map
        t += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            sounding[(msg.channel, msg.note)] = t
        elif msg.type in ("note_off", "note_on"):
            start = sounding.pop((msg.channel, msg.note), None)
            if start is not None and t > start:
                notes.append((start, t, msg.note))
    notes.sort()
    arr = np.array(notes, dtype=np.float64).reshape(-1, 3)
    return Truth(arr[:, :2], arr[:, 2], str(path))
