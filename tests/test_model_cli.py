"""improv train / continue / generate on real files, and the evaluation measures."""

from __future__ import annotations

import json

import mido
import numpy as np
import pytest
import torch

from improv.cli import main
from improv.model import BandModel, load_model, read_midi
from improv.model.data import load_pieces, render
from improv.model.encoding import LEAD, pitch_token
from improv.model.evaluate import (accompany, estimate_key, evaluate_nll, generated_overlaps, in_scale,
                                   select_ngram, strong_frames)
from improv.model.net import FrameNet, ModelConfig
from improv.model.ngram import NGram

TINY = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, head_hidden=32, context=48, dropout=0.0)


def _melody_file(path, bpm=100.0):
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    tr = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0)])
    for p in [60, 62, 64, 65, 67, 65, 64, 62, 60, 64, 67, 72]:
        tr.append(mido.Message("note_on", note=p, velocity=80, time=0))
        tr.append(mido.Message("note_off", note=p, velocity=0, time=480))
    mid.tracks.append(tr)
    mid.save(str(path))


def test_continue_writes_variations_after_the_prompt(tmp_path):
    src = tmp_path / "tune.mid"
    _melody_file(src)
    assert main(["continue", str(src), "--seconds", "4", "--variations", "2", "--out", str(tmp_path),
                 "--seed", "5"]) == 0
    outs = [tmp_path / "tune-cont1.mid", tmp_path / "tune-cont2.mid"]
    got = []
    for out in outs:
        piece = read_midi(out)
        notes = piece.notes_beats
        assert piece.seconds_per_beat == pytest.approx(0.6)
        lead = notes[notes[:, 0] == LEAD]
        assert list(lead[:12, 1]) == [60, 62, 64, 65, 67, 65, 64, 62, 60, 64, 67, 72]  # the prompt is kept
        new = notes[notes[:, 2] >= 12.0]
        assert len(new) > 0 and new[:, 3].max() <= 12.0 + 4 / 0.6 + 1e-6
        got.append(new[:, 1].tolist())
    assert got[0] != got[1]


def test_generate_from_nothing(tmp_path):
    assert main(["generate", "--seconds", "3", "--bpm", "120", "--out", str(tmp_path), "--voices", "lead,bass"]) == 0
    piece = read_midi(tmp_path / "generated-1.mid")
    voices = set(piece.notes_beats[:, 0].astype(int).tolist())
    assert voices <= {0, LEAD} and len(piece.notes_beats) > 0


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert main(["continue", str(tmp_path / "none.mid")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["generate", "--voices", "drums"]) == 2
    assert "--voices" in capsys.readouterr().err


def test_train_command_writes_a_loadable_model(tmp_path):
    out = tmp_path / "m.pt"
    assert main(["train", "--size", "tiny", "--steps", "3", "--batch", "2", "--limit", "2", "--sources", "chorales",
                 "--threads", "1", "--out", str(out), "--checkpoints", str(tmp_path / "ck"),
                 "--cache", str(tmp_path / "cache")]) == 0
    m = load_model(out)
    assert m.meta["steps"] == 3 and m.config.d_model == 64
    assert (tmp_path / "ck" / "checkpoint.pt").exists()


def test_key_scale_and_strong_beats():
    c_major = np.array([[LEAD, p, i, i + 1] for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60])],
                       dtype=float)
    assert estimate_key(c_major) == (0, True)
    a_minor = np.array([[LEAD, p, i, i + 1] for i, p in enumerate([57, 59, 60, 62, 64, 65, 68, 69, 64, 60, 57])],
                       dtype=float)
    assert estimate_key(a_minor) == (9, False)
    assert list(in_scale([60, 61, 66, 71], (0, True))) == [True, False, False, True]
    pos = np.arange(32) % 16
    assert np.flatnonzero(strong_frames(pos, 16)).tolist() == [0, 8, 16, 24]
    assert np.flatnonzero(strong_frames(np.arange(24) % 12, 12)).tolist() == [0, 12]


@pytest.fixture(scope="module")
def small_corpus():
    return render(load_pieces(["chorales", "nottingham"], limit=8))


def test_ngram_normalises_and_model_nll_runs(small_corpus):
    toks = [small_corpus.frames(k)[0] for k in range(len(small_corpus.start))]
    for mode in ("voice", "stream"):
        ng = NGram(3, mode).fit(toks)
        ctx = toks[0][:6].astype(np.int64)
        total = 0.0
        for w in range(90):
            t = np.vstack([ctx, np.full((1, 4), w)])
            total += np.exp(ng.logprobs([t])[0][-4])
        assert total == pytest.approx(1.0, abs=1e-9)
    ng, table = select_ngram(small_corpus, small_corpus, orders=(2, 3))
    assert set(table) == {"voice-2", "voice-3", "stream-2", "stream-3"}
    torch.manual_seed(0)
    rep = evaluate_nll(FrameNet(TINY).eval(), ng, small_corpus.select(np.arange(len(small_corpus.start)) < 2))
    assert rep.tokens > 0 and rep.model_per_token == pytest.approx(np.log(90), rel=0.1)


def test_accompaniment_is_in_range_and_monophonic(small_corpus):
    torch.manual_seed(0)
    model = BandModel(FrameNet(TINY).eval())
    k = int(np.flatnonzero(small_corpus.metered)[0])
    toks, pos = small_corpus.frames(k)
    toks, pos = toks[:96].astype(np.int64), pos[:96].astype(np.int64)
    band, ranges, sess = accompany(model, toks, pos, seed=0)
    assert band.shape == (96, 3)
    for v, name in enumerate(("bass", "mid", "high")):
        lo, hi = ranges[name]
        col = band[:, v]
        onsets = col[col >= 2]
        assert np.all((onsets >= pitch_token(lo)) & (onsets <= pitch_token(hi)))
    assert generated_overlaps(sess) == 0


def test_eval_model_parses_only_the_pieces_asked_for_and_caches_them(tmp_path, capsys, monkeypatch):
    """`improv eval-model --pieces 1` parsed every corpus first (over an hour on a fresh machine)."""
    import improv.model.data as data

    cache = tmp_path / "cache"
    parsed = []
    real_parse = data._parse_item
    monkeypatch.setattr(data, "_parse_item", lambda item: parsed.append(item) or real_parse(item))
    argv = ["eval-model", "--skip-nll", "--pieces", "1", "--bars", "2", "--sources", "chorales",
            "--cache", str(cache), "--json", str(tmp_path / "e.json")]
    assert main(argv) == 0, capsys.readouterr().err
    assert 1 <= len(parsed) <= 10, f"{len(parsed)} files parsed for one piece"
    assert {s for s, _ in parsed} == {"chorales"}
    first = (tmp_path / "e.json").read_text()
    parsed.clear()
    assert main(argv) == 0
    assert parsed == [], "the second run finds the parsed files in the cache"
    assert (tmp_path / "e.json").read_text() == first


def test_an_interrupted_parse_resumes_from_the_files_parsed(tmp_path, monkeypatch):
    import improv.model.data as data

    items = data._m21_items("chorales")[:3]
    monkeypatch.setattr(data, "_m21_items", lambda source: items)
    calls = []
    real_parse = data._parse_item

    def parse(item):
        calls.append(item)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_parse(item)

    monkeypatch.setattr(data, "_parse_item", parse)
    with pytest.raises(KeyboardInterrupt):
        data.load_pieces(["chorales"], tmp_path)
    calls.clear()
    monkeypatch.setattr(data, "_parse_item", lambda item: calls.append(item) or real_parse(item))
    pieces = data.load_pieces(["chorales"], tmp_path)
    assert calls == items[2:], "only the file not parsed before is parsed again"
    assert len(pieces) >= 2


def _melody_with_drums(path, bpm=100.0):
    """The melody of _melody_file and a kick/snare track on channel 10 (General MIDI drums)."""
    _melody_file(path, bpm)
    mid = mido.MidiFile(str(path))
    dr = mido.MidiTrack()
    for i in range(24):
        dr.append(mido.Message("note_on", channel=9, note=36 if i % 2 == 0 else 38, velocity=90, time=0))
        dr.append(mido.Message("note_off", channel=9, note=36 if i % 2 == 0 else 38, velocity=0, time=240))
    mid.tracks.append(dr)
    mid.save(str(path))


@pytest.mark.parametrize("voices", ["lead,bass,mid,high", "all"])
def test_continue_a_melody_writes_the_band_too(tmp_path, voices):
    src = tmp_path / "tune.mid"
    _melody_file(src)
    assert main(["continue", str(src), "--seconds", "8", "--voices", voices, "--out-dir", str(tmp_path),
                 "--seed", "0"]) == 0
    mid = mido.MidiFile(str(tmp_path / "tune-cont1.mid"))
    names = {m.name for t in mid.tracks for m in t if m.type == "track_name"}
    assert "player" in names and names & {"bass", "mid", "high"}, names
    notes = read_midi(tmp_path / "tune-cont1.mid").notes_beats
    band = notes[notes[:, 0] != LEAD]
    assert len(band) >= 3 and band[:, 2].min() >= 12.0  # the band comes in after the melody


def test_continue_keeps_channel_10_as_drums_not_bass(tmp_path):
    src = tmp_path / "groove.mid"
    _melody_with_drums(src)
    piece = read_midi(src)
    assert not np.any(piece.notes_beats[:, 0] == 0)  # no kick or snare read as bass notes
    assert len(piece.drums) == 24 and set(piece.drums[:, 0].astype(int)) == {36, 38}
    assert main(["continue", str(src), "--seconds", "4", "--voices", "bass,mid,high", "--out-dir", str(tmp_path)]) == 0
    mid = mido.MidiFile(str(tmp_path / "groove-cont1.mid"))
    drum_track = [t for t in mid.tracks if any(m.type == "track_name" and m.name == "drums" for m in t)]
    assert len(drum_track) == 1
    hits = [m for m in drum_track[0] if m.type == "note_on" and m.velocity > 0]
    assert len(hits) == 24 and {m.channel for m in hits} == {9} and {m.note for m in hits} == {36, 38}
    out = read_midi(tmp_path / "groove-cont1.mid")
    bass = out.notes_beats[out.notes_beats[:, 0] == 0]
    assert not np.any(bass[:, 2] < 12.0)  # the prompt had no bass: none appears in it


def test_json_beside_the_midi_says_what_the_midi_says(tmp_path):
    src = tmp_path / "tune.mid"
    _melody_file(src)
    assert main(["continue", str(src), "--seconds", "4", "--variations", "2", "--seed", "7", "--json",
                 "--out-dir", str(tmp_path)]) == 0
    for k in (1, 2):
        doc = json.loads((tmp_path / f"tune-cont{k}.json").read_text())
        assert doc["seed"] == 7 + k - 1 and doc["bpm"] == pytest.approx(100)
        piece = read_midi(tmp_path / f"tune-cont{k}.mid")
        names = {LEAD: "player", 0: "bass", 1: "mid", 2: "high"}
        from_midi = sorted((names[int(v)], int(p), round(s * 0.6, 3), round((e - s) * 0.6, 3))
                           for v, p, s, e in piece.notes_beats)
        from_json = sorted((n["voice"], n["pitch"], round(n["onset"], 3), round(n["duration"], 3)) for n in doc["notes"])
        assert from_json == from_midi and len(from_json) > 12
        assert set(doc["notes"][0]) == {"onset", "duration", "pitch", "velocity", "voice"}
    assert main(["generate", "--seconds", "3", "--json", "--out-dir", str(tmp_path), "--seed", "4"]) == 0
    doc = json.loads((tmp_path / "generated-1.json").read_text())
    assert doc["seed"] == 4 and doc["notes"] and max(n["onset"] + n["duration"] for n in doc["notes"]) <= 3 + 1e-3


def test_train_init_from_a_missing_or_bad_model_is_a_one_line_error(tmp_path, capsys):
    for bad in (tmp_path / "none.pt", tmp_path / "bad.pt"):
        if bad.name == "bad.pt":
            bad.write_bytes(b"not a model")
        assert main(["train", "--init", str(bad), "--chords", "--steps", "1", "--limit", "1", "--sources", "chorales",
                     "--model", str(tmp_path / "out.pt"), "--checkpoints", str(tmp_path / "ck")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and str(bad) in err, err
    assert main(["train", "--lr", "0", "--steps", "1", "--limit", "1", "--sources", "chorales",
                 "--model", str(tmp_path / "out.pt"), "--checkpoints", str(tmp_path / "ck")]) == 2
    assert "--lr" in capsys.readouterr().err
