"""The weights shipped in models/: they load and play; a bad file gives a clear error."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from improv.cli import main
from improv.errors import ModelError
from improv.model import BANDS, DEFAULT_RANGES, VoiceControl, default_model_path, load_model

SHIPPED = default_model_path()


@pytest.fixture(scope="module")
def shipped():
    if not SHIPPED.exists():
        pytest.fail(f"the shipped weights {SHIPPED} are missing from the repository; run `improv train`")
    return load_model()


def test_shipped_weights_are_small_and_described(shipped):
    assert SHIPPED.stat().st_size <= 25 * 1024 * 1024
    assert (SHIPPED.parent / "MODEL_CARD.md").exists()
    assert shipped.meta["steps"] > 0 and shipped.meta["sources"]


def test_shipped_model_accompanies_in_range_and_monophonic(shipped):
    torch.set_num_threads(1)
    melody = [(60, 0.0, 1.0), (64, 1.0, 2.0), (67, 2.0, 3.0), (72, 3.0, 4.0), (71, 4.0, 5.5), (67, 6.0, 8.0)]
    ranges = {"bass": (33, 50), "mid": (50, 65), "high": (65, 84)}
    sess = shipped.session(seed=3)
    controls = {b: VoiceControl(low=lo, high=hi) for b, (lo, hi) in ranges.items()}
    for beat in range(16):
        for p, s, e in melody:
            if beat - 1 <= s < beat:
                sess.observe("player", p, s, e)
        sess.accept(sess.propose(float(beat), controls=controls if beat == 0 else None))
    for band in BANDS:
        line = sess.notes(band)
        assert len(line) >= 2, f"{band} played {len(line)} notes in 16 beats"
        lo, hi = ranges[band]
        assert all(lo <= p <= hi for p, _, _ in line)
        for (_, s0, e0), (_, s1, _) in zip(line, line[1:]):
            assert e0 is not None and s0 < e0 <= s1 + 1e-9


def test_shipped_model_takes_over_the_lead(shipped):
    sess = shipped.session(seed=1, metered=False)
    for k, p in enumerate([62, 64, 66, 67, 69]):
        sess.observe("lead", p, 0.25 * k, 0.25 * k + 0.2)
    prop = sess.propose(1.5, voices=("lead",), controls={"lead": VoiceControl(role="lead")}, horizon=4.0)
    pitches = [n.pitch for n in prop.notes]
    assert len(pitches) >= 3
    lo, hi = DEFAULT_RANGES["lead"]
    assert all(lo <= p <= hi for p in pitches)


def test_missing_weights_name_the_file_and_the_fix(tmp_path):
    missing = tmp_path / "nowhere" / "band.pt"
    with pytest.raises(ModelError) as e:
        load_model(missing)
    assert str(missing) in str(e.value) and "improv train" in str(e.value)


@pytest.mark.parametrize("kind", ["garbage", "truncated", "other-torch-file", "wrong-shapes"])
def test_corrupt_weights_name_the_file_and_the_fix(tmp_path, kind, shipped):
    bad = tmp_path / "band.pt"
    if kind == "garbage":
        bad.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "truncated":
        data = SHIPPED.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "other-torch-file":
        torch.save({"weights": torch.zeros(3)}, bad)
    else:
        shutil.copy(SHIPPED, bad)
        blob = torch.load(bad, weights_only=True)
        blob["config"]["d_model"] = blob["config"]["d_model"] * 2
        torch.save(blob, bad)
    with pytest.raises(ModelError) as e:
        load_model(bad)
    assert str(bad) in str(e.value) and "improv train" in str(e.value)


def test_cli_reports_a_bad_model_in_one_line(tmp_path, capsys):
    bad = tmp_path / "band.pt"
    bad.write_bytes(b"not a model")
    assert main(["generate", "--seconds", "2", "--model", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bad) in err and "improv train" in err
