"""improv train --sessions (fine-tuning on recorded sessions), improv keep, listen --model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch

from improv.band import Band, BandSettings
from improv.cli import main
from improv.model import load_model
from improv.model.encoding import LEAD
from improv.model.sessions import KEEP_FILE, load_material, read_take
from improv.record import MIDI_FILE
from improv.testing.sessions import BLUES, BluesPlayer, write_session, write_sessions

STEPS = ["--steps", "6", "--batch", "4"]


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    """Three sessions of 32 bars of the blues player (3.5 minutes of playing)."""
    root = tmp_path_factory.mktemp("sessions")
    write_sessions(root, 3, 32, seed=7)
    return root


def _out(capsys) -> str:
    """What was printed, its lines joined (the console wraps them at its width)."""
    return " ".join(capsys.readouterr().out.split())


def _train(sessions, out, ckpt, *extra):
    return main(["train", "--sessions", str(sessions), "--model", str(out), "--checkpoints", str(ckpt), *STEPS,
                 *extra])


def test_a_session_reads_back_as_the_recorder_wrote_it(sessions):
    take = read_take(sessions / "take-000")
    notes = take.piece.notes
    lead = notes[notes[:, 0] == LEAD]
    assert take.piece.metered and take.piece.beats_per_bar == 4.0
    assert take.player_notes == len(lead) > 50 and take.band_notes > 100
    assert set(((lead[:, 1] - 57) % 12).astype(int)) <= set(BLUES)          # the player's blues scale
    # swung eighths: every onset on the beat or two thirds into it (in quarters from the first downbeat)
    phase = (lead[:, 2] - take.piece.bar_phase) % 1.0
    near = np.min(np.abs(phase[:, None] - np.array([0.0, 2 / 3, 1.0])), axis=1)
    assert np.all(near < 0.01)
    assert take.kept == ()


def test_finetune_lowers_the_players_nll_writes_a_card_and_is_seeded(sessions, tmp_path, capsys):
    out = tmp_path / "you.pt"
    assert _train(sessions, out, tmp_path / "ck") == 0
    printed = _out(capsys)
    assert "wrote" in printed and "nats per note" in printed
    model = load_model(out)
    ft = model.meta["finetune"]
    before, after = ft["before"]["player"]["per_note"], ft["after"]["player"]["per_note"]
    assert after < before - 0.1            # six small steps already move it toward the player
    assert model.meta["sessions"]["sessions"] == 3 and model.meta["steps"] == 6
    card = out.with_suffix(".md").read_text()
    assert "3 sessions" in card and f"{before:.3f}" in card and f"{after:.3f}" in card
    # the same seed and sessions give the same weights; another seed others
    again = tmp_path / "again.pt"
    assert _train(sessions, again, tmp_path / "ck2") == 0
    other = tmp_path / "other.pt"
    assert _train(sessions, other, tmp_path / "ck3", "--seed", "1") == 0
    a, b, c = (load_model(p).net.state_dict() for p in (out, again, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_a_stopped_finetune_resumes_to_the_same_weights(sessions, tmp_path, capsys):
    whole = tmp_path / "whole.pt"
    assert _train(sessions, whole, tmp_path / "ck-whole") == 0
    part = tmp_path / "part.pt"
    ck = tmp_path / "ck-part"
    assert _train(sessions, part, ck, "--minutes", "0.0001") == 0     # stops after its first step
    assert "run the same command again" in _out(capsys) and not part.exists()
    assert _train(sessions, part, ck) == 0
    assert "resuming from step 1" in _out(capsys)
    a, b = load_model(whole).net.state_dict(), load_model(part).net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_keep_marks_the_band_parts_learnt_from(tmp_path, capsys):
    root = tmp_path / "s"
    write_sessions(root, 3, 32, seed=3)
    assert main(["keep", str(root / "take-001"), "--bands", "bass,mid"]) == 0
    assert "kept (bass,mid)" in _out(capsys)
    assert json.loads((root / "take-001" / KEEP_FILE).read_text())["bands"] == ["bass", "mid"]
    m = load_material(root, val_share=0.0)
    targets = {m.train.ids[p]: m.train.targets[k] for k, p in enumerate(m.train.piece)}
    assert targets["session/take-001"].tolist() == [True, True, False, True]
    assert targets["session/take-000"].tolist() == [False, False, False, True]
    fingerprint = m.fingerprint
    assert main(["keep", str(root / "take-001"), "--undo"]) == 0
    assert not (root / "take-001" / KEEP_FILE).exists()
    assert load_material(root, val_share=0.0).fingerprint != fingerprint   # a checkpoint is for one material
    assert main(["keep", str(root / "take-001"), "--bands", "drums"]) == 2
    assert main(["keep", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "unknown band 'drums'" in err[0] and "no session.mid" in err[1]


def test_a_checkpoint_of_other_sessions_is_refused(sessions, tmp_path, capsys):
    root = tmp_path / "s"
    write_sessions(root, 3, 32, seed=7)
    ck = tmp_path / "ck"
    assert _train(root, tmp_path / "a.pt", ck, "--minutes", "0.0001") == 0
    main(["keep", str(root / "take-000")])
    capsys.readouterr()
    assert _train(root, tmp_path / "a.pt", ck) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other sessions" in err[0] and "--fresh" in err[0]


@pytest.mark.parametrize("case", ["empty", "missing", "corrupt", "too little", "not closed"])
def test_bad_sessions_are_one_line_errors(tmp_path, capsys, case):
    root = tmp_path / "sessions"
    root.mkdir()
    if case == "missing":
        root = tmp_path / "nowhere"
    elif case == "corrupt":
        write_sessions(root, 3, 32, seed=1)
        (root / "take-001" / MIDI_FILE).write_bytes(b"MThd\x00\x00\x00\x06garbage")
    elif case == "too little":
        write_session(root / "short", BluesPlayer(), 8, seed=1)
    elif case == "not closed":
        (root / "crashed").mkdir()
        (root / "crashed" / "events.jsonl").write_text("")
    assert _train(root, tmp_path / "you.pt", tmp_path / "ck") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("improv: ")
    expected = {"empty": "no recorded session in it", "missing": "no such folder",
                "corrupt": "not a readable MIDI file", "too little": "needs at least 3 minutes",
                "not closed": "improv recover"}[case]
    assert expected in err[0]
    assert not (tmp_path / "you.pt").exists()


def test_listen_plays_with_the_model_given(sessions, tmp_path, capsys):
    out = tmp_path / "you.pt"
    assert _train(sessions, out, tmp_path / "ck") == 0
    band = Band(BandSettings(model=str(out), seed=0))
    assert band.gen.model.path == out and "finetune" in band.gen.model.meta
    # a take-over leaves more to a model that learnt the player; the shipped one stays steered
    assert [p.model_trust for p in band.players.values()] == [1.0, 1.0, 1.0]
    assert [p.model_trust for p in Band(BandSettings(seed=0)).players.values()] == [0.0, 0.0, 0.0]
    wav = tmp_path / "a.wav"
    t = np.arange(int(1.5 * 16000)) / 16000
    soundfile.write(str(wav), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    capsys.readouterr()
    assert main(["listen", "--input", str(wav), "--fast", "--no-midi", "--synth", "none", "-q",
                 "--model", str(tmp_path / "none.pt")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no band model at" in err[0]
    assert main(["listen", "--input", str(wav), "--fast", "--no-midi", "--synth", "none", "-q",
                 "--model", str(out)]) == 0

