"""Input sanity at the edge: samples that are not numbers, DC, digital silence, dead input.

A take must be heard the same with one bad sample in it, with a DC offset or a DC step,
or starting from digital silence; and an input that cannot be heard is said in one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from improv.events import NoteOn
from improv.listen.pipeline import Listener, transcribe
from improv.audio import Block
from improv.testing.signals import ToneSpec, render

RATE = 48000
PITCHES = [57, 60, 64, 67, 62, 65, 69, 72, 60, 55, 59, 62, 64]
SPECS = [ToneSpec(0.3 + 0.5 * i, 0.4, m) for i, m in enumerate(PITCHES)]
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def take() -> np.ndarray:
    return render(SPECS, RATE, total=7.0)


def onsets(x: np.ndarray, blocksize: int | None = 256) -> list[tuple[float, int]]:
    return [(e.onset, e.pitch) for e in transcribe(x, RATE, blocksize=blocksize) if isinstance(e, NoteOn)]


def assert_same_notes(got, want, ms: float = 20.0):
    assert [p for _, p in got] == [p for _, p in want]
    assert max(abs(a - b) for (a, _), (b, _) in zip(got, want)) < ms / 1000


def test_the_take_is_heard(take):
    assert [p for _, p in onsets(take)] == PITCHES


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_one_sample_that_is_not_a_number_is_replaced_and_counted(take, bad):
    x = take.copy()
    x[int(2.0 * RATE)] = bad  # in a note: the rest of the take was silent
    listener = Listener("yin", RATE)
    events = [e for i in range(0, len(x), 256) for e in listener.process(Block(x[i:i + 256], i, RATE))]
    assert [e.pitch for e in events if isinstance(e, NoteOn)] == PITCHES
    assert listener.stats.nonfinite == 1
    assert any("not numbers" in w for w in listener.input_warnings())


@pytest.mark.parametrize("dc", [0.2, -0.3])
def test_a_dc_offset_is_removed(take, dc):
    want = onsets(take)
    assert_same_notes(onsets(take + dc), want)
    listener = Listener("yin", RATE)
    listener.process(Block(take + dc, 0, RATE))
    assert any(f"{dc:+.3f}" in w for w in listener.input_warnings())


@pytest.mark.parametrize("at", [0.1, 0.75, 1.25, 2.75, 4.25])
@pytest.mark.parametrize("step", [0.2, -0.5, 0.05])
def test_a_dc_step_adds_no_note(take, at, step):
    x = take.copy()
    x[int(at * RATE):] += step
    assert_same_notes(onsets(x), onsets(take))


@pytest.mark.parametrize("amp", [0.1, 0.5, 1.0])
def test_a_tone_from_digital_silence_is_heard(amp):
    t = np.arange(3 * RATE) / RATE
    x = np.zeros(4 * RATE, dtype=np.float32)
    x[RATE:] = amp * np.sin(2 * np.pi * 220.0 * t)
    got = onsets(x)
    assert [p for _, p in got] == [57]
    assert abs(got[0][0] - 1.0) < 0.03


def test_low_notes_are_still_heard_through_the_high_pass():
    lows = [28, 29, 31, 33, 35, 36, 40]  # E1 up
    x = render([ToneSpec(0.3 + 0.6 * i, 0.5, m) for i, m in enumerate(lows)], RATE, total=5.0)
    assert [p for _, p in onsets(x)] == lows


def test_online_equals_offline_with_dc_and_a_bad_sample(take):
    x = take + 0.1
    x[int(1.0 * RATE)] = np.nan
    key = lambda e: (type(e).__name__, getattr(e, "pitch", None), round(getattr(e, "onset", None) or 0.0, 4))  # noqa: E731
    whole = [key(e) for e in transcribe(x, RATE, blocksize=None)]
    assert sum(k[0] == "NoteOn" for k in whole) == len(PITCHES)
    for bs in (64, 256, 1000):
        assert [key(e) for e in transcribe(x, RATE, blocksize=bs)] == whole


@pytest.mark.parametrize("kind", ["silence", "dc only", "noise"])
def test_listen_says_when_the_whole_input_is_unusable(tmp_path, kind):
    x = {"silence": np.zeros(2 * RATE), "dc only": np.full(2 * RATE, 0.2),
         "noise": 0.1 * np.random.default_rng(0).standard_normal(2 * RATE)}[kind]
    wav = tmp_path / "in.wav"
    soundfile.write(wav, x.astype(np.float32), RATE, subtype="FLOAT")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    r = subprocess.run([sys.executable, "-m", "improv.cli", "listen", "--input", str(wav), "--fast", "--no-midi",
                        "--synth", "none", "--quiet"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    wanted = {"silence": "silent throughout", "dc only": "DC offset of +0.200", "noise": "no note heard"}[kind]
    assert wanted in out, out
    if kind == "dc only":
        assert "silent throughout" in out
