"""The frame encoding: MIDI -> frames -> MIDI keeps pitches and timing within one tick (frame)."""

from __future__ import annotations

import mido
import numpy as np
import pytest

from improv.model.encoding import (FRAME_SECONDS, HOLD, LEAD, REST, VOICES, Grid, block_controls, frames_to_notes,
                                   notes_to_frames, pitch_token, read_midi, sounding_pitch, split_polyphony,
                                   write_midi)

BEAT_TICK = 0.25  # one frame of the metered grid, in beats


def _midi_file(path, notes_by_track: dict[str, list[tuple[int, float, float]]], tpb: int = 480, bpm: float = 120.0):
    """A type-1 file with one named track per voice; notes (pitch, start_beat, end_beat)."""
    mid = mido.MidiFile(type=1, ticks_per_beat=tpb)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0),
                                      mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0)]))
    for ch, (name, notes) in enumerate(notes_by_track.items()):
        evs = sorted([(round(s * tpb), 1, p) for p, s, e in notes] + [(round(e * tpb), 0, p) for p, s, e in notes])
        tr = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
        last = 0
        for tick, on, p in evs:
            tr.append(mido.Message("note_on" if on else "note_off", channel=ch, note=p, velocity=90 if on else 0,
                                   time=tick - last))
            last = tick
        mid.tracks.append(tr)
    mid.save(str(path))


PHRASE = {
    "player": [(72, 0.0, 0.5), (74, 0.5, 0.75), (76, 0.75, 2.0), (79, 2.5, 3.0), (77, 3.0, 6.0)],
    "bass": [(36, 0.0, 3.0), (43, 3.0, 6.0)],
    "mid": [(55, 0.0, 1.0), (57, 1.0, 1.25), (59, 1.5, 2.0), (60, 2.0, 6.0)],
    "high": [(64, 0.25, 1.0), (65, 1.0, 2.75), (67, 3.0, 3.5)],
}


def _by_voice(notes: np.ndarray) -> dict[str, list[tuple[int, float, float]]]:
    out: dict[str, list] = {v: [] for v in VOICES}
    for v, p, s, e in notes:
        out[VOICES[int(v)]].append((int(p), float(s), float(e)))
    return {k: sorted(x, key=lambda n: n[1]) for k, x in out.items()}


def test_midi_to_frames_to_midi_on_grid_is_exact(tmp_path):
    src = tmp_path / "in.mid"
    _midi_file(src, PHRASE)
    piece = read_midi(src)
    assert piece.beats_per_bar == 3.0
    assert piece.seconds_per_beat == pytest.approx(0.5)
    tokens = notes_to_frames(piece.notes(metered=True), unit=BEAT_TICK)
    back = frames_to_notes(tokens, unit=BEAT_TICK)
    out = tmp_path / "out.mid"
    write_midi(out, back, metered=True, seconds_per_beat=0.5, beats_per_bar=3)
    again = _by_voice(read_midi(out).notes(metered=True))
    want = {("lead" if k == "player" else k): v for k, v in PHRASE.items()}
    for voice in VOICES:
        assert [n[0] for n in again[voice]] == [n[0] for n in want[voice]], voice
        np.testing.assert_allclose([n[1:] for n in again[voice]], [n[1:] for n in want[voice]], atol=1e-9)


def test_off_grid_timing_moves_less_than_one_tick(tmp_path):
    rng = np.random.default_rng(3)
    notes, t = [], 0.0
    for _ in range(60):
        d = rng.uniform(0.3, 1.2)
        notes.append((int(rng.integers(60, 80)), t, t + d * rng.uniform(0.6, 1.0)))
        t += d
    src = tmp_path / "loose.mid"
    _midi_file(src, {"player": notes})
    piece = read_midi(src)
    back = frames_to_notes(notes_to_frames(piece.notes(True), unit=BEAT_TICK), unit=BEAT_TICK)
    assert len(back) == len(notes)
    got = np.array(sorted((s, e, p) for _, p, s, e in back))
    ref = np.array(sorted((s, e, p) for p, s, e in notes))
    np.testing.assert_array_equal(got[:, 2], ref[:, 2])
    assert np.abs(got[:, 0] - ref[:, 0]).max() <= BEAT_TICK / 2 + 1e-9  # within one tick (frame)
    # An end may also move to the next note's start when both round into the same frame.
    assert np.abs(got[:, 1] - ref[:, 1]).max() <= BEAT_TICK + 1e-9


def test_unmetered_seconds_round_trip(tmp_path):
    src = tmp_path / "in.mid"
    _midi_file(src, {"player": [(60, 0.0, 0.5), (62, 0.5, 1.5), (64, 2.0, 2.25)]}, bpm=90)
    piece = read_midi(src)
    secs = piece.notes(metered=False)
    back = frames_to_notes(notes_to_frames(secs, unit=FRAME_SECONDS), unit=FRAME_SECONDS)
    assert list(back[:, 1]) == [60, 62, 64]
    assert np.abs(back[:, 2:] - secs[:, 2:]).max() <= FRAME_SECONDS / 2 + 1e-9


def test_voices_stay_monophonic():
    # Two notes starting together in the bass keep the lowest; overlapping notes are cut.
    notes = np.array([[0, 40, 0.0, 2.0], [0, 36, 0.0, 1.0], [0, 43, 0.5, 1.5], [LEAD, 70, 0, 1], [LEAD, 72, 0, 1]])
    tok = notes_to_frames(notes, unit=0.25)
    assert tok[0, 0] == pitch_token(36) and tok[0, LEAD] == pitch_token(72)
    assert list(tok[:4, 0]) == [pitch_token(36), HOLD, pitch_token(43), HOLD]
    back = frames_to_notes(tok, unit=0.25)
    for v in range(4):
        mine = back[back[:, 0] == v]
        assert np.all(mine[1:, 2] >= mine[:-1, 3])


def test_sounding_pitch_and_controls():
    tok = np.zeros((40, 4), dtype=np.int64)
    tok[0, 0], tok[1:8, 0] = pitch_token(40), HOLD
    tok[8, 0] = pitch_token(43)
    tok[9, 0] = REST
    tok[10, 0] = HOLD  # a hold after a rest is silence
    snd = sounding_pitch(tok)
    assert list(snd[:11, 0]) == [40] * 8 + [43, -1, -1]
    tok[::2, LEAD] = pitch_token(70)
    ctrl = block_controls(tok)
    # frame t describes the block of frame t+1: frame 0 -> block 0 (frames 0-15).
    dens, reg, role = ctrl[0, 0]
    assert dens == 2 and role == 0  # 2 bass onsets in block 0, accompany
    assert ctrl[0, LEAD, 2] == 1 and ctrl[0, LEAD, 0] == 4  # lead: 8 onsets -> bucket 4 (5-8)
    assert ctrl[20, 1, 2] == 2 and ctrl[20, 1, 1] == -1  # mid silent, register unknown


def test_split_polyphony_gives_chords_to_bass_mid_high():
    chords = [(0.0, 1.0, 48), (0.0, 1.0, 52), (0.0, 1.0, 55), (1.0, 2.0, 50), (1.0, 2.0, 57)]
    rows = split_polyphony(chords)
    got = {(v, p) for v, p, s, e in rows}
    assert got == {(0, 48), (1, 52), (2, 55), (0, 50), (2, 57)}


def test_grid_frames():
    g = Grid(metered=True, beats_per_bar=3, bar_phase=1.0)
    assert g.frame(2.12) == 8 and g.frame(2.13) == 9
    assert list(g.bar_positions(0, 6)) == [8, 9, 10, 11, 0, 1]
    u = Grid(metered=False)
    assert u.unit == FRAME_SECONDS and u.frame(1.0) == 8
