"""Tempo tracking on a rendered recording: a melody with human-like timing played by
FluidSynth, heard by improv's Listener, followed by the BeatTracker."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import mido
import mir_eval
import numpy as np
import pytest

from improv.audio import FileSource
from improv.events import NoteOn
from improv.listen.pipeline import Listener
from improv.timing import BeatTracker

SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")

# A 4/4 tune in beats: (start, length, pitch); quarters, eighths, a dotted rhythm, a rest.
TUNE = [(0, 1, 67), (1, 0.5, 69), (1.5, 0.5, 71), (2, 1, 72), (3, 1, 71),
        (4, 1.5, 69), (5.5, 0.5, 67), (6, 1, 66), (7, 1, 67),
        (8, 0.5, 69), (8.5, 0.5, 71), (9, 0.5, 72), (9.5, 0.5, 74), (10, 1, 76), (11, 1, 74),
        (12, 1, 72), (13, 1, 71), (14, 2, 69)]


def _render(tmp: Path, bpm: float, rng: np.random.Generator) -> tuple[Path, np.ndarray]:
    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        pytest.skip("FluidSynth or the TimGM6mb SoundFont is missing (apt install fluidsynth timgm6mb-soundfont)")
    p = 60.0 / bpm
    notes = [(s + 16 * rep, d, m) for rep in range(2) for s, d, m in TUNE]
    mid = mido.MidiFile(ticks_per_beat=1000)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=1_000_000))  # 1 tick = 1 ms
    tr.append(mido.Message("program_change", program=73))  # flute
    msgs = []
    for s, d, m in notes:
        on = 0.5 + s * p + rng.uniform(-0.02, 0.02)  # +-20 ms of human timing
        off = 0.5 + (s + d) * p - 0.03
        msgs += [(round(on * 1000), 1, mido.Message("note_on", note=m, velocity=90)),
                 (round(off * 1000), 0, mido.Message("note_off", note=m))]
    now = 0
    for t, _, m in sorted(msgs, key=lambda x: (x[0], x[1])):
        tr.append(m.copy(time=t - now))
        now = t
    mid.save(str(tmp / "tune.mid"))
    wav = tmp / "tune.wav"
    subprocess.run(["fluidsynth", "-ni", "-g", "1.0", "-F", str(wav), "-r", "44100", str(SOUNDFONT),
                    str(tmp / "tune.mid")], check=True, capture_output=True)
    return wav, 0.5 + np.arange(32) * p


@pytest.mark.parametrize("bpm", [84, 132])
def test_tracker_follows_a_rendered_flute(tmp_path, bpm):
    wav, beats = _render(tmp_path, bpm, np.random.default_rng(bpm))
    src = FileSource(wav, blocksize=256, fast=True)
    listener = Listener("yin", src.sample_rate)
    tracker = BeatTracker(meter="4/4")
    played: list[float] = []
    next_beat = None
    for block in src.blocks():
        now = block.end / block.sample_rate
        for ev in listener.process(block):
            if isinstance(ev, NoteOn):
                tracker.add_event(ev)
        if tracker.state(now).locked:  # what a band scheduling 50 ms ahead would play
            k = int(np.floor(tracker.beat_at(now + 0.05)))
            if next_beat is None or k >= next_beat:
                played.append(tracker.time_of(k))
                next_beat = k + 1
        else:
            next_beat = None
    assert tracker.bpm == pytest.approx(bpm, rel=0.04)
    ref = beats[4:]
    est = np.array([t for t in played if t >= ref[0] - 0.07])
    f = mir_eval.beat.f_measure(ref, est, f_measure_threshold=0.07)
    print(f"{bpm} BPM: tracked {tracker.bpm:.1f}, F = {f:.2f} over {len(ref)} beats")
    assert f >= 0.8
