"""End to end on a real JACK server: a WAV into PortAudio's input, improv's MIDI captured."""

from __future__ import annotations

import threading
import time

import pytest

from improv.session import ListenOptions, run_listen
from improv.testing.jack import JackMidiCapture, wire_improv
from improv.testing.signals import ToneSpec, render

pytestmark = pytest.mark.jack

NOTES = [ToneSpec(0.3 + 0.55 * i, 0.4, m) for i, m in enumerate([60, 64, 67, 57, 72, 48])]


def _note_ons(events):
    return [(t, d[1]) for t, d in events if len(d) == 3 and d[0] & 0xF0 == 0x90 and d[2] > 0]


def test_microphone_to_midi_on_jack(jack_server, portaudio):
    rate = jack_server.rate
    audio = render(NOTES, rate, total=3.9)
    capture = JackMidiCapture("capture")
    stop = threading.Event()
    opts = ListenOptions(device="system", samplerate=rate, blocksize=jack_server.period, midi_api="jack")
    result: dict = {}
    thread = threading.Thread(target=lambda: result.setdefault("r", run_listen(opts, stop=stop)))
    thread.start()
    try:
        player = wire_improv(capture, audio, "wavplayer", timeout=10)
        player.start()
        assert player.done.wait(10), "JACK never played the whole signal"
        capture.wait_for(lambda ev: len(_note_ons(ev)) >= len(NOTES), timeout=2.0)
    finally:
        stop.set()
        thread.join(10)
    ons = _note_ons(capture.snapshot())
    assert [p for _, p in ons] == [round(n.midi) for n in NOTES], "pitches must come out exact, in order"
    for (frame, pitch), note in zip(ons, NOTES):
        delay_ms = 1000.0 * (frame - player.start_frame - note.onset * rate) / rate
        assert 0.0 <= delay_ms <= 60.0, f"NoteOn {pitch} came {delay_ms:.1f} ms after its onset (limit 60 ms)"
    # Overflows are counted and shown; on a loaded machine the dummy server may report a few.
    assert "r" in result and result["r"].overflows <= 5
    player.close()
    capture.close()


def test_closing_the_port_on_jack_lets_the_last_note_offs_out(jack_server):
    """rtmidi hands JACK messages over in the next process cycle; a port closed at once
    dropped them, leaving the gear's notes hanging when improv quit."""
    import mido

    from improv.midi import MidiOut

    capture = JackMidiCapture("closecapture")
    port = MidiOut(None, "jack", client="improvclose")
    try:
        assert capture.wait_for(lambda _: any(p.name == "improvclose:improv" for p in capture.client.get_ports()), 5)
        capture.connect_from("improvclose:improv")
        port.send(mido.Message("note_on", channel=2, note=60, velocity=90))
        assert capture.wait_for(lambda ev: len(ev) >= 1, 5), "the note-on never arrived"
        port.send(mido.Message("note_on", channel=2, note=64, velocity=90))
    finally:
        port.close()  # straight after a send: note 64 and the all-notes-off are still in the ring
    time.sleep(0.1)
    got = [bytes(d) for _, d in capture.snapshot()]
    capture.close()
    assert bytes([0x92, 64, 90]) in got, "the message sent just before close was lost"
    offs = {d[1] for d in got if len(d) == 3 and d[0] == 0x82}
    assert offs == {60, 64}, f"note-offs of the sounding notes at close: {sorted(offs)}"
    assert sum(1 for d in got if len(d) == 3 and d[0] & 0xF0 == 0xB0 and d[1] == 123) == 16, \
        "all-notes-off on every channel"
