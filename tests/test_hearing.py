"""What goes out on the wire, scored as sent; the clean transcript beside it; --decide."""

from __future__ import annotations

import mido
import numpy as np
import pytest
import soundfile

from improv.bench import score_notes, score_sent
from improv.cli import DECIDE_NAMES, main
from improv.events import NoteOff, NoteOn, PitchBend, notes_from_events, sent_notes_from_events
from improv.listen.pipeline import transcribe
from improv.listen.segmenter import DECIDE_PRESETS, decide_settings
from improv.record import TRANSCRIPT, events_to_midifile
from improv.testing.signals import ToneSpec, render
from improv.truth import Truth

SR = 44100


def _truth(notes: list[tuple[float, float, float]]) -> Truth:
    arr = np.array(notes, dtype=float)
    return Truth(arr[:, :2], arr[:, 2], "test")


# A take of three notes (C4 D4 E4); the second was first sent as C#4 and retaken as D4
# 20 ms later; the third was decided 80 ms after its onset.
TRUTH = _truth([(0.5, 0.9, 60.0), (1.0, 1.4, 62.0), (1.5, 1.9, 64.0)])
EVENTS = [
    NoteOn(0.52, 60, 90, onset=0.50), NoteOff(0.93, 60, end=0.90),
    NoteOn(1.02, 61, 90, onset=0.99, cents=-30.0), NoteOff(1.04, 61, end=0.99),
    NoteOn(1.04, 62, 90, onset=0.99, cents=-5.0, retake=True), PitchBend(1.1, 3.0), NoteOff(1.43, 62, end=1.40),
    NoteOn(1.58, 64, 90, onset=1.51), NoteOff(1.93, 64, end=1.90),
]


def test_as_sent_counts_the_wrong_first_guess_and_late_notes():
    sent = sent_notes_from_events(EVENTS, until=2.0)
    assert [n.pitch for n in sent] == [60, 61, 62, 64]
    assert [n.onset for n in sent] == [0.52, 1.02, 1.04, 1.58]  # when sent, not the back-dated onset
    sc = score_sent(TRUTH, EVENTS, until=2.0)
    keys = sc["sent_keys"]
    assert (keys.ref, keys.est, keys.hit) == (3, 4, 2)  # C#4 is a false note, E4 came 80 ms late
    assert keys.precision == pytest.approx(0.5) and keys.recall == pytest.approx(2 / 3)
    assert sc["sent_latencies_ms"] == pytest.approx([20.0, 40.0])
    # key + bend: the bend sent with each NoteOn (-30 cents on C#4 is still not D4)
    assert sc["sent_bends"].hit == 2
    # the transcript resolves the retake and back-dates the onsets: every note is right
    transcript = score_notes(TRUTH, notes_from_events(EVENTS, until=2.0))
    assert transcript["notes"].hit == 3 and transcript["notes"].est == 3


def test_session_midi_keeps_what_was_sent_and_the_transcript_track():
    mid = events_to_midifile(EVENTS)
    names = [next(m.name for m in t if m.type == "track_name") for t in mid.tracks[1:]]
    assert names == ["player", TRANSCRIPT]

    def note_ons(track):
        tick, out = 0, []
        for m in track:
            tick += m.time
            if m.type == "note_on" and m.velocity > 0:
                out.append((round(mido.tick2second(tick, mid.ticks_per_beat, 500_000), 3), m.note, m.channel))
        return out

    assert [n for _, n, _ in note_ons(mid.tracks[1])] == [60, 61, 62, 64]  # the retake's wrong guess too
    clean = note_ons(mid.tracks[2])
    assert [n for _, n, _ in clean] == [60, 62, 64]
    assert [t for t, _, _ in clean] == pytest.approx([0.50, 0.99, 1.51], abs=1e-3)  # back-dated onsets
    assert {c for _, _, c in clean} == {15}  # its own channel: never cuts a sent note short


def _midi_notes(path) -> list[tuple[float, int]]:
    mid = mido.MidiFile(str(path))
    names = [next((m.name for m in t if m.type == "track_name"), None) for t in mid.tracks]
    assert TRANSCRIPT in names
    t, out = 0.0, []
    for msg in mid:
        t += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            out.append((t, msg.note))
    return out


def test_transcribe_a_monophonic_take(tmp_path):
    melody = [60, 62, 64, 65, 67, 65, 64, 62]
    specs = [ToneSpec(0.3 + 0.4 * i, 0.33, m, vibrato_cents=20.0 if i % 3 == 0 else 0.0) for i, m in enumerate(melody)]
    soundfile.write(tmp_path / "take.wav", render(specs, SR), SR)
    assert main(["transcribe", str(tmp_path / "take.wav"), "--out-dir", str(tmp_path / "out")]) == 0
    notes = _midi_notes(tmp_path / "out" / "take.transcript.mid")
    assert [n for _, n in notes] == melody
    assert np.max(np.abs(np.array([t for t, _ in notes]) - [s.onset for s in specs])) < 0.03  # seconds


def test_transcribe_polyphonic_chords(tmp_path):
    chords = [(60, 64, 67), (57, 60, 64), (53, 57, 60, 65)]  # C, Am, F
    specs = [ToneSpec(0.3 + 0.8 * i, 0.6, m, amp=0.15) for i, c in enumerate(chords) for m in c]
    soundfile.write(tmp_path / "chords.wav", render(specs, SR), SR)
    assert main(["transcribe", str(tmp_path / "chords.wav"), "--polyphonic"]) == 0
    notes = _midi_notes(tmp_path / "chords.transcript.mid")
    for i, chord in enumerate(chords):
        t0 = 0.3 + 0.8 * i
        heard = {n for t, n in notes if abs(t - t0) < 0.08}
        assert set(chord) <= heard, (chord, sorted(heard))


# Three notes scooped into from 120-160 cents below over 70 ms (a singer's or a sax's scoop).
SCOOPS = [ToneSpec(0.3 + 0.8 * i, 0.6, 60.4 + 2 * i, bend_to=62 + 2 * i, bend_start=0.0, bend_time=0.07)
          for i in range(3)]


def test_decide_presets_on_scooped_notes():
    x = render(SCOOPS, SR)
    targets = [62, 64, 66]

    def ons(decide):
        events = transcribe(x, SR, settings=decide_settings(decide), blocksize=256)
        return events, [e for e in events if isinstance(e, NoteOn)]

    early, early_ons = ons("early")
    # early: sent at once on the scoop's key, then corrected by a retake onto the right key
    assert [e.pitch for e in early_ons if not e.retake] == [61, 63, 65]
    assert [e.pitch for e in early_ons if e.retake] == targets
    assert all(on.time - s.onset < 0.03 for on, s in zip([e for e in early_ons if not e.retake], SCOOPS))
    assert [round(n.pitch) for n in notes_from_events(early)] == targets
    # scored as sent, each wrong first guess is a false note; the transcript has none
    truth = _truth([(sp.onset, sp.onset + sp.duration, t) for sp, t in zip(SCOOPS, targets)])
    sent = score_sent(truth, early, until=len(x) / SR)["sent_keys"]
    assert sent.est == 6 and sent.precision <= 0.5
    assert score_notes(truth, notes_from_events(early))["keys"].f1 == 1.0
    balanced, balanced_ons = ons("balanced")  # sent on the scoop's key, carried by pitch bend
    assert any(isinstance(e, PitchBend) and e.cents > 50 for e in balanced)
    settled, settled_ons = ons("settled")
    # settled: waits for the pitch to hold, then sends the right key once, within 80 ms
    assert [e.pitch for e in settled_ons] == targets and not any(e.retake for e in settled_ons)
    assert all(0.03 < on.time - s.onset <= 0.08 for on, s in zip(settled_ons, SCOOPS))


def test_decide_names_agree():
    assert tuple(DECIDE_PRESETS) == DECIDE_NAMES
    with pytest.raises(ValueError):
        decide_settings("later")
