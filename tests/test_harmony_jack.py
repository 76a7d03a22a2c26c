"""A lead sheet in real time on a real JACK server: a take played in real time, the band
on ``--changes`` with a count-in, its MIDI captured on a JACK port, the live display read
while it plays, the session recorded. Tolerances: a sixteenth (the band's grid)."""

from __future__ import annotations

import threading
import time

import pytest

from improv.band import BandSettings
from improv.display import SessionDisplay
from improv.harmony import parse_chord
from improv.harmony.leadsheet import parse_changes
from improv.session import ListenOptions, run_listen
from improv.testing.jack import JackMidiCapture
from improv.testing.signals import ToneSpec, render

pytestmark = pytest.mark.jack

BEAT = 0.5
CHANGES = "| Am | F | C | G |"


def test_changes_band_and_display_on_jack(jack_server, tmp_path):
    import soundfile
    import torch

    from improv.harmony.record import read_chords
    from improv.record import read_midi_events

    torch.set_num_threads(1)
    line = [69, 72, 76, 72, 65, 69, 72, 69, 67, 72, 76, 72, 67, 71, 74, 71]
    specs = [ToneSpec(4.3 + i * BEAT, 0.85 * BEAT, line[i % len(line)]) for i in range(16)]
    wav = tmp_path / "player.wav"
    soundfile.write(wav, render(specs, 44100, total=13.5), 44100)
    capture = JackMidiCapture("leadsheet")
    view = SessionDisplay()
    shown: list[str] = []
    opts = ListenOptions(input=str(wav), midi_out="leadsheet:in", midi_api="jack", synth="none", echo=False,
                         record=str(tmp_path / "rec"), bands=("bass", "mid", "high"),
                         band=BandSettings(tempo=120, seed=1, changes=CHANGES, count_in=1))
    result: dict = {}
    thread = threading.Thread(target=lambda: result.setdefault("r", run_listen(opts, view=view)))
    thread.start()
    try:
        t0 = time.monotonic()
        while thread.is_alive() and time.monotonic() - t0 < 25:
            text = view.snapshot().harmony
            if text and (not shown or shown[-1] != text):
                shown.append(text)
            time.sleep(0.05)
    finally:
        thread.join(15)
    assert "r" in result, "the session did not end"
    assert capture.snapshot(), "no MIDI reached the JACK port"
    capture.close()
    # the display: the count-in, then the form's chords with the next one, bar and chorus
    assert any(s.startswith("count-in: Am") for s in shown), shown
    for chord, nxt, bar in (("Am", "F", 1), ("F", "C", 2), ("C", "G", 3), ("G", "Am", 4)):
        assert any(s.startswith(f"{chord} -> {nxt}") and f"bar {bar} chorus 1" in s for s in shown), (chord, shown)
    # the recording: the changes as played, every bass note a tone of the chord it starts on
    folder = result["r"].recording
    chords = read_chords(folder)
    start = (1 + 1) * 4 * BEAT  # on the drummer's clock: an empty bar, the count-in bar, then the form
    assert [c["chord"] for c in chords[:5]] == ["Am", "F", "C", "G", "Am"]
    assert abs(chords[0]["time"] - start) < BEAT / 4
    form = parse_changes(CHANGES)
    bass = [e for e in read_midi_events(folder / "session.mid") if e.source == "bass" and hasattr(e, "velocity")]
    assert len(bass) >= 6, f"the bass played {len(bass)} notes"
    for e in bass:
        beat = (e.time - start) / BEAT
        assert beat > -0.26, f"a bass note in the count-in at {e.time:.2f} s"
        c = form.at(max(beat + 0.01, 0.0))[0]
        assert parse_chord(c.symbol).has(e.pitch), f"bass {e.pitch} at {e.time:.2f} s is not in {c.symbol}"
