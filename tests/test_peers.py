"""The peers of benchmarks/compare.py on synthetic tones with exact truth, and one small run."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import soundfile


import improv.testing.peers as peers  # noqa: E402
from improv.testing.signals import ToneSpec, render  # noqa: E402

from improv.bench import score_notes  # noqa: E402
from improv.truth import Truth  # noqa: E402

SR = 44100
# A5 to A3, a repeated C5 with a 60 ms gap, a vibrato note, all above aubio's MIDI 45 floor.
SPECS = [
    ToneSpec(0.30, 0.40, 81), ToneSpec(0.80, 0.35, 76), ToneSpec(1.25, 0.40, 72),
    ToneSpec(1.71, 0.40, 72), ToneSpec(2.30, 0.60, 67, vibrato_cents=30), ToneSpec(3.10, 0.50, 57),
]


def truth_of(specs) -> Truth:
    iv = np.array([[s.onset, s.onset + s.duration] for s in specs])
    return Truth(iv, np.array([s.midi for s in specs], dtype=float), "synthetic")


@pytest.fixture(scope="module")
def tones():
    return render(SPECS, SR, noise_db=-70.0)


def test_aubio_notes_finds_the_tones_and_decides_after_the_onset(tones):
    pytest.importorskip("aubio", reason="aubio is not installed (pip install aubio)")
    notes = peers.AubioNotes().track(tones, SR)
    sc = score_notes(truth_of(SPECS), notes)
    assert sc["notes"].hit >= 5, [(round(n.onset, 3), n.pitch) for n in notes]
    lat = np.array(sc["latencies_ms"])
    hop_ms = 1000 * 256 / SR
    # aubio emits a note six hops after its onset (median of six pitch estimates)
    assert np.all(lat >= 5 * hop_ms - 15), lat
    assert np.all(lat <= 150), lat
    for n in notes:
        assert n.decided >= n.onset


def test_aubio_sizes_keep_the_default_durations():
    assert peers.aubio_sizes(44100) == (512, 256)
    assert peers.aubio_sizes(48000) == (512, 256)
    assert peers.aubio_sizes(22050) == (256, 128)
    assert peers.aubio_sizes(16000) == (256, 128)


def test_pyin_segmentation_splits_on_pitch_moves_and_onsets():
    seg = peers.PyinNotes()
    sec = seg.hop / seg.rate
    frames = np.full(200, np.nan)
    frames[10:60] = 60.0          # C4 ...
    frames[60:62] = 61.0          # ... a 2-frame wobble is not a new note
    frames[62:100] = 60.0
    frames[100:150] = 62.2        # legato to D4 (+20 cents): a new note at frame 100
    frames[160:190] = 64.0        # after a gap
    notes = seg.segment(frames, onsets={175})  # an onset inside the last run: repeated E4
    starts = [round(n.onset / sec) for n in notes]
    assert starts == [10, 100, 160, 175]
    assert [round(n.pitch, 1) for n in notes] == [60.0, 62.2, 64.0, 64.0]
    assert round(notes[0].offset / sec) == 100
    assert all(n.decided is None for n in notes)  # offline


def test_pyin_offline_on_tones(tones, tmp_path):
    wav = tmp_path / "tones.wav"
    soundfile.write(wav, tones, SR)
    tr = peers.PyinNotes().transcribe(wav)
    sc = score_notes(truth_of(SPECS), tr.notes)
    assert sc["notes"].f1 >= 0.9, [(round(n.onset, 3), round(n.pitch, 2)) for n in tr.notes]


def test_basic_pitch_on_tones(tones, tmp_path):
    if importlib.util.find_spec("basic_pitch") is None or importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("basic-pitch on ONNX is not installed (pip install --no-deps basic-pitch; "
                    "pip install onnxruntime pretty-midi)")
    wav = tmp_path / "tones.wav"
    soundfile.write(wav, tones, SR)
    peer = peers.BasicPitch()
    tr = peer.transcribe(wav)
    sc = score_notes(truth_of(SPECS), tr.notes)
    assert sc["onsets"].hit >= 5
    assert sc["notes"].hit >= 4, [(round(n.onset, 3), n.pitch) for n in tr.notes]


def test_compare_runs_end_to_end(tmp_path):
    """One rendered take, two methods, the real data switched off: table, JSON, plot."""
    pytest.importorskip("aubio", reason="aubio is not installed (pip install aubio)")
    from improv.testing import load_benchmark

    compare = load_benchmark("compare")
    import improv.testing.instruments as ri

    if not ri.SOUNDFONTS["tim"].exists():
        pytest.skip(f"{ri.SOUNDFONTS['tim']} is not installed (Debian: timgm6mb-soundfont)")
    takes = tmp_path / "takes"
    takes.mkdir()
    by_name = {m.name: m for m in ri.load_melodies()}
    take = ri.Take("sax-tim-1", ri.INSTRUMENTS["sax"], "tim", 3)
    ri.perform(take, [by_name["blues-line"]], np.random.default_rng(3), target=(6.0, 8.0))
    ri.write_take(take, takes, attack={})
    out = tmp_path / "out"
    rc = compare.main(["--data", str(tmp_path / "absent"), "--takes", "one", "--instruments", str(takes),
                       "--out", str(out), "--methods", "improv:yin,aubio-notes", "--jobs", "1",
                       "--no-generation"])
    assert rc == 0
    data = json.loads((out / "compare.json").read_text())
    assert data["methods"] == ["improv:yin", "aubio-notes"]
    assert data["recordings"] == [{"path": str(takes / "sax-tim-1.wav"), "group": "inst:sax"}]
    for m in data["methods"]:
        s = data["summary"][m]["all"]
        assert s["notes"]["ref"] == len(take.notes)
        assert 0.0 <= s["notes"]["f1"] <= 1.0
        assert s["latency_p50"] is not None
    assert data["generation"]["model_step"] == []
    assert data["generation"]["end_to_end"]["status"] == "skipped"
    assert "skipped (--no-generation)" in (out / "compare.md").read_text()
    assert data["machine"]["cpu_count"] >= 1 and len(data["machine"]["load_before"]) == 3
    assert (out / "compare.png").stat().st_size > 10_000
    assert "| improv:yin | causal |" in (out / "compare.md").read_text()


def test_band_model_step_figures():
    """The generation section's numbers: every step proposes notes for the three bands
    within their ranges, and the throughput follows from the step times."""
    from improv.testing import load_benchmark

    bench_model = load_benchmark("bench_model")

    from improv.model import load_model
    from improv.model.store import default_model_path

    if not default_model_path().exists():
        pytest.skip(f"{default_model_path()} is absent (improv train writes it)")
    model = load_model()
    ms, notes = bench_model.run_steps(model, beats=24, warmup=2, metered=True)
    assert len(ms) == len(notes) == 24 and np.all(ms > 0)
    assert notes.sum() > 0, "the band model proposed no notes in 24 beats"
    fig = bench_model.step_figures(ms, notes, unit_s=0.5)
    assert fig["notes_per_second_sustained"] == pytest.approx(notes.sum() / (ms.sum() / 1e3))
    assert fig["p50_ms"] <= fig["p95_ms"] <= fig["max_ms"]


def test_excerpt_cuts_in_a_gap_and_keeps_whole_notes():
    from improv.testing import load_benchmark

    compare = load_benchmark("compare")

    iv = np.array([[1.0, 2.0], [2.05, 3.0], [3.5, 4.0], [4.02, 5.0], [6.0, 7.0]])
    assert compare.excerpt_bounds(iv, 2.5, 8.0) == (0.5, 3.25)     # the 0.5 s gap after 3.0
    assert compare.excerpt_bounds(iv, 3.0, 8.0) == (0.5, 5.25)     # 20 ms after 4.0 is no gap
    assert compare.excerpt_bounds(iv, 10.0, 8.0) == (0.5, 8.0)     # shorter than asked: whole take


def test_ssvd_excerpt_shifts_the_truth_with_the_audio(tmp_path):
    """Truth and audio of an excerpt stay aligned: the tones are found where its truth says."""
    from improv.testing import load_benchmark

    compare = load_benchmark("compare")

    from improv.truth import find_truth

    src = tmp_path / "src"
    src.mkdir()
    specs = [ToneSpec(2.0 + 0.6 * k, 0.45, 60 + k) for k in range(10)]
    soundfile.write(src / "take.flac", render(specs, SR, noise_db=-70.0), SR)
    (src / "take.txt").write_text("".join(f"{s.onset:.4f}\t{s.onset + s.duration:.4f}\t{s.midi}\n" for s in specs))
    out = compare.ssvd_excerpt(src / "take.flac", 2.0, tmp_path / "cut")
    truth = find_truth(out)
    # from 0.5 s before the first onset (1.5 s) to the middle of the first gap once 2 s
    # are sung: note 3 ends at 3.65 s, the next starts at 3.8 s
    assert list(truth.pitches) == [60, 61, 62]
    assert np.allclose(truth.intervals, [[0.5, 0.95], [1.1, 1.55], [1.7, 2.15]], atol=1e-3)
    x, sr = soundfile.read(out)
    assert abs(len(x) / sr - (3.725 - 1.5)) < 2e-3
    notes = peers.PyinNotes().transcribe(out).notes
    sc = score_notes(truth, notes)
    assert sc["notes"].hit == 3 and sc["notes"].est == 3, [(round(n.onset, 3), round(n.pitch, 2)) for n in notes]
