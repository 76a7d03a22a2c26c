"""Real annotated recordings from ../shared/data through the live pipeline (skipped with a
printed reason when the data is absent). Floors are set well under the measured figures
(see README) so a regression in hearing real voices fails here."""

from __future__ import annotations

import numpy as np

from improv.bench import run_file, summarise
from improv.truth import find_truth
from conftest import shared_path


def _files():
    ssvd = shared_path("ssvd-train")
    voc = shared_path("vocadito")
    return [ssvd / "1072.flac", ssvd / "1075.flac", voc / "vocadito_1.wav"]


def test_truth_formats_are_read():
    ssvd, _, voc = _files()
    t = find_truth(ssvd)
    assert t is not None and len(t.pitches) > 20
    on, off = t.intervals[:, 0], t.intervals[:, 1]
    assert np.all(np.diff(on) >= 0) and np.all(off > on)
    assert 40 <= np.median(t.pitches) <= 80, "SSVD pitches are MIDI numbers of a singing voice"
    v = find_truth(voc)
    assert v is not None and v.f0_times is not None and len(v.pitches) > 20


def test_sung_recordings_heard_with_the_default_tracker():
    results = [run_file(f) for f in _files()]
    s = summarise("yin", results)
    # measured 0.60 / 0.71 / 31 ms on these three (Nov 2026); floors leave room for noise, not for regressions
    assert s.notes.f1 >= 0.52, f"note F1 {s.notes.f1:.3f}"
    assert s.onsets.f1 >= 0.64, f"onset F1 {s.onsets.f1:.3f}"
    assert s.latency_p50 <= 45.0, f"decision latency p50 {s.latency_p50:.0f} ms"
    voc = results[-1]
    assert voc.frame_accuracy is not None and voc.frame_accuracy >= 0.85, "frame pitch accuracy on vocadito"
