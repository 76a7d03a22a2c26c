"""The rendered instrument takes: their truth is what FluidSynth actually played."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

import improv.testing.instruments as ri  # noqa: E402

from improv.truth import find_truth  # noqa: E402

TIM = ri.SOUNDFONTS["tim"]


@pytest.fixture(scope="module")
def melodies():
    return ri.load_melodies()


def need_soundfont(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is not installed (Debian: timgm6mb-soundfont)")


def test_notes_sound_on_the_sample_the_truth_names():
    """Identical plucks at irregular grid times: each sounds exactly where its note-on is."""
    need_soundfont(TIM)
    inst = ri.INSTRUMENTS["bass"]
    rng = np.random.default_rng(3)
    starts = np.cumsum(rng.integers(300, 700, 8)) * ri.GRID  # 0.43-1.0 s apart, on the grid
    notes = [ri.PerfNote(int(s), int(s) + ri.on_grid(0.3), 40, 100) for s in starts]
    take = ri.Take("t", inst, "tim", 0, notes=notes, length=int(starts[-1]) + ri.on_grid(1.0))
    x = ri.render_take(take)
    ref = x[starts[0] - 256:starts[0] + 4096]
    for s in starts[1:]:
        seg = x[s - 256 - 64:s + 4096 + 64]
        lag = int(np.argmax(np.correlate(seg, ref, mode="valid"))) - 64
        assert lag == 0, f"note at sample {s} sounds {lag} samples away from its note-on"


def test_take_files_agree(tmp_path, melodies):
    need_soundfont(TIM)
    take = ri.make_take("sax", "tim", 1, seed=5, melodies=melodies)
    wav = ri.write_take(take, tmp_path, attack={})
    audio, rate = soundfile.read(wav)
    assert rate == ri.SAMPLE_RATE and audio.ndim == 1
    assert len(audio) == take.length
    assert 20.0 <= len(audio) / rate <= 31.0
    truth = find_truth(wav)
    assert truth is not None and truth.source.endswith(".gt.mid")
    expected = np.array([[n.start, n.end] for n in take.notes]) / ri.SAMPLE_RATE
    assert truth.intervals.shape == expected.shape
    assert np.abs(truth.intervals - expected).max() < 1e-6  # seconds
    assert list(truth.pitches) == [n.pitch for n in take.notes]
    assert np.all(truth.intervals[1:, 0] >= truth.intervals[:-1, 1]), "notes overlap"
    inst = ri.INSTRUMENTS["sax"]
    assert truth.pitches.min() >= inst.low and truth.pitches.max() <= inst.high
    assert (tmp_path / "sax-tim-1.perf.mid").exists() and (tmp_path / "sax-tim-1.json").exists()


def test_rendered_pitch_is_the_truth_key(tmp_path, melodies):
    """The middle half of every note of 150 ms or more sits within 50 cents of its key."""
    import librosa

    need_soundfont(TIM)
    take = ri.make_take("violin", "tim", 2, seed=5, melodies=melodies)
    wav = ri.write_take(take, tmp_path, attack={})
    x, sr = soundfile.read(wav, dtype="float32")
    hop = 256
    f0 = librosa.yin(x, fmin=150, fmax=2000, sr=sr, frame_length=2048, hop_length=hop, center=False)
    t = (np.arange(len(f0)) * hop + 2048) / sr  # each frame's end: the causal time of its estimate
    truth = find_truth(wav)
    errors = []
    for (a, b), key in zip(truth.intervals, truth.pitches):
        if b - a < 0.15:
            continue
        m = (t >= a + 0.25 * (b - a)) & (t <= b - 0.25 * (b - a))
        if m.any():
            errors.append(abs(np.median(librosa.hz_to_midi(f0[m])) - key) * 100)
    errors = np.array(errors)
    assert len(errors) >= 15
    assert np.mean(errors < 50) >= 0.95, f"cents off the key: {np.sort(errors)[-5:]}"


def test_same_seed_same_take(melodies):
    need_soundfont(TIM)
    a = ri.make_take("flute", "tim", 1, seed=9, melodies=melodies)
    b = ri.make_take("flute", "tim", 1, seed=9, melodies=melodies)
    c = ri.make_take("flute", "tim", 1, seed=10, melodies=melodies)
    assert a.notes == b.notes and a.controls == b.controls
    assert a.notes != c.notes
    assert np.array_equal(ri.render_take(a), ri.render_take(b))


def test_demo_recording_matches_its_script(tmp_path):
    """recordings/demo.wav is what benchmarks/render_instruments.py --demo makes."""
    need_soundfont(TIM)
    repo = Path(__file__).resolve().parents[1]
    made = ri.render_demo(tmp_path / "demo.wav")
    assert soundfile.read(made)[0].shape == soundfile.read(repo / "recordings" / "demo.wav")[0].shape
    assert find_truth(made).intervals.tolist() == find_truth(repo / "recordings" / "demo.wav").intervals.tolist()
