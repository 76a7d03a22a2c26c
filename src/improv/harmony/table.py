"""A chord-transition table learned from POP909's chord annotations (training split only).

Chords are reduced to 24 classes relative to the song's key: the root's distance above
the tonic (0-11) and major/minor. For major and minor keys apart, the table counts

* ``start``: how often each class is in force (per bar, time-weighted), and
* ``change``: from each class, which class comes next when the chord changes, and
* ``hold``: the chance that the chord in force at one bar line is still in force at the
  next, and
* ``emit``: how long the melody sounds each pitch class (above the tonic) under each class,
* ``keys``: the same over whole songs, for major and minor keys (the key profiles).

It is stored as ``transitions.json`` beside this module (a few kB) and rebuilt with
``python3 -m improv.harmony.table`` (reads ``../shared/data/symbolic/pop909``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .chords import Chord, chord, parse_chord

TABLE_PATH = Path(__file__).with_name("transitions.json")
N_CLASSES = 24   # (degree above the tonic, minor?) -> degree + 12 * minor


def chord_class(c: Chord, tonic: int) -> int:
    return (c.root - tonic) % 12 + (12 if c.minor else 0)


def class_chord(k: int, tonic: int) -> Chord:
    root = (tonic + k % 12) % 12
    return chord(root, (0, 3, 7) if k >= 12 else (0, 4, 7))


@dataclass(frozen=True)
class Table:
    start: np.ndarray    # [2 (major, minor key), 24]: probability of each class
    change: np.ndarray   # [2, 24, 24]: P(next class | class, the chord changes)
    hold: float          # P(same chord at the next bar line)
    emit: np.ndarray     # [2, 24, 12]: P(the melody's pitch class above the tonic | class), time-weighted
    keys: np.ndarray     # [2, 12]: the melody's time per pitch class above the tonic, major and minor keys

    def prior(self, minor_key: bool) -> np.ndarray:
        return self.start[int(minor_key)]

    def after(self, k: int, minor_key: bool) -> np.ndarray:
        return self.change[int(minor_key), k]


@lru_cache(maxsize=1)
def load_table(path: str = str(TABLE_PATH)) -> Table:
    d = json.loads(Path(path).read_text())
    start = np.asarray(d["start"], dtype=float) + 0.5
    start /= start.sum(axis=1, keepdims=True)
    change = np.asarray(d["change"], dtype=float) + 0.2
    for m in range(2):
        np.fill_diagonal(change[m], 0.0)
    change /= change.sum(axis=2, keepdims=True)
    emit = np.asarray(d["emit"], dtype=float) + 1.0
    emit /= emit.sum(axis=2, keepdims=True)
    keys = np.asarray(d["keys"], dtype=float) + 1.0
    keys /= keys.sum(axis=1, keepdims=True)
    return Table(start, change, float(d["hold"]), emit, keys)


def read_pop909_song(folder: Path) -> tuple[list[tuple[float, float, Chord | None]], tuple[int, bool], np.ndarray]:
    """(chords as (start s, end s, chord), key (tonic, minor), beat times and downbeat flags [n, 2])."""
    rows = []
    for line in (folder / "chord_midi.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            rows.append((float(parts[0]), float(parts[1]), parse_chord(parts[2])))
    key_text = (folder / "key_audio.txt").read_text().split()[2]
    k = parse_chord(key_text)
    beats = np.loadtxt(folder / "beat_midi.txt", ndmin=2)
    return rows, (k.root, k.minor), beats[:, [0, 2]]


def build(shared: Path) -> dict:
    import pretty_midi

    from ..model.data import split_of

    start = np.zeros((2, N_CLASSES))
    change = np.zeros((2, N_CLASSES, N_CLASSES))
    emit = np.zeros((2, N_CLASSES, 12))
    keys = np.zeros((2, 12))
    held = total = 0
    songs = 0
    for folder in sorted((shared / "symbolic" / "pop909").iterdir()):
        if not (folder / "chord_midi.txt").exists() or split_of(f"pop909/{folder.name}") != "train":
            continue
        rows, (tonic, minor), beats = read_pop909_song(folder)
        songs += 1
        m = int(minor)
        seq = [(s, e, chord_class(c, tonic)) for s, e, c in rows if c is not None]
        for a, b in zip(seq, seq[1:]):
            if a[2] != b[2]:
                change[m, a[2], b[2]] += 1
        downs = beats[beats[:, 1] > 0.5, 0]

        def at(t):
            for s, e, k in seq:
                if s <= t < e:
                    return k
            return None

        pm = pretty_midi.PrettyMIDI(str(folder / f"{folder.name}.mid"))
        for inst in pm.instruments:
            if inst.name.strip().upper() != "MELODY":
                continue
            for n in inst.notes:
                keys[m, (n.pitch - tonic) % 12] += 10 * min(n.end - n.start, 2.0)
                k = at(n.start + 0.01)
                if k is not None:
                    emit[m, k, (n.pitch - tonic) % 12] += 10 * min(n.end - n.start, 2.0)
        bar_classes = [at(t + 0.05) for t in downs]
        for k in bar_classes:
            if k is not None:
                start[m, k] += 1
        for a, b in zip(bar_classes, bar_classes[1:]):
            if a is not None and b is not None:
                total += 1
                held += a == b
    return {"about": f"POP909 chord annotations, training split ({songs} songs); classes: degree above the "
                     "tonic + 12 if minor; start/change counts for major and minor keys; hold = P(same chord "
                     "at the next bar line); emit = melody time (0.1 s) per pitch class above the tonic under each class; keys = the same per key mode",
            "start": start.astype(int).tolist(), "change": change.astype(int).tolist(),
            "hold": round(held / max(total, 1), 4), "emit": np.round(emit).astype(int).tolist(),
            "keys": np.round(keys).astype(int).tolist()}


def main() -> None:
    from ..model.data import default_shared_data

    d = build(default_shared_data())
    TABLE_PATH.write_text(json.dumps(d, separators=(",", ":")))
    print(f"wrote {TABLE_PATH} ({TABLE_PATH.stat().st_size} bytes): {d['about']}; hold {d['hold']}")


if __name__ == "__main__":
    main()
