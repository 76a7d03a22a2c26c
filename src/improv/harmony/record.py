"""The chords of a recorded session: ``chords.jsonl`` (one change per line, as planned:
``{"time": s, "chord": "Dm7", "source": "changes|follow|auto", "key": ..., "bar": .., "chorus": ..}``)
and a ``chords`` track of marker events in ``session.mid``, written when the session ends."""

from __future__ import annotations

import json
from pathlib import Path

import mido

from ..record import MIDI_FILE
from ..timing.tempomap import TempoMap

CHORDS_FILE = "chords.jsonl"


def write_chords(folder: str | Path, chords: list[dict]) -> None:
    folder = Path(folder)
    with open(folder / CHORDS_FILE, "w") as f:
        f.writelines(json.dumps({**c, "time": round(float(c["time"]), 4)}) + "\n" for c in chords)
    path = folder / MIDI_FILE
    if not chords or not path.exists():
        return
    mid = mido.MidiFile(str(path))
    tmap = TempoMap.from_midi(mid)  # the session's own tempo map (the band's bars)
    track = mido.MidiTrack([mido.MetaMessage("track_name", name="chords", time=0)])
    last = 0
    for c in chords:
        tick = tmap.tick(float(c["time"]))
        track.append(mido.MetaMessage("marker", text=str(c["chord"]), time=max(tick - last, 0)))
        last = max(tick, last)
    mid.tracks.append(track)
    tmp = path.with_suffix(".tmp.mid")
    mid.save(str(tmp))
    tmp.replace(path)


def read_chords(folder: str | Path) -> list[dict]:
    path = Path(folder) / CHORDS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
