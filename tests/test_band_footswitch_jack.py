"""The whole chain on a real JACK server: a WAV into PortAudio's input (the microphone),
a foot controller (another JACK MIDI client) pressing switches of the default mapping
into improv's controller input, and the band's MIDI captured on a JACK MIDI port.

Default mapping: switch A = CC 80 (all: stop, on press), switch B = CC 81 (all: go).
Tolerances: band notes off within 100 ms of the press (plus one 5.3 ms JACK period);
nothing new while stopped; playing again within two beats of go.
"""

from __future__ import annotations

import threading

import pytest

from improv.band import BandSettings
from improv.control import ControlOptions
from improv.session import ListenOptions, run_listen
from improv.testing.jack import JackMidiCapture, JackMidiSource, wait_cycles, wait_until, wire_improv
from improv.testing.signals import ToneSpec, render
from test_band_jack import BEAT, PLAYER, _notes, _sounding

pytestmark = pytest.mark.jack


def test_foot_switches_stop_and_restart_the_band(jack_server, portaudio):
    import torch

    torch.set_num_threads(1)
    rate, period = jack_server.rate, jack_server.period
    specs = [ToneSpec(0.5 + i * BEAT, 0.85 * BEAT, PLAYER[i % len(PLAYER)]) for i in range(18)]
    audio = render(specs, rate, total=10.0)
    press = {"stop": 4.0, "go": 6.5}
    script = [(int(press["stop"] * rate), bytes([0xB0, 80, 127])), (int((press["stop"] + 0.1) * rate), bytes([0xB0, 80, 0])),
              (int(press["go"] * rate), bytes([0xB0, 81, 127])), (int((press["go"] + 0.1) * rate), bytes([0xB0, 81, 0]))]
    pedal = JackMidiSource(script, name="footswitch")
    capture = JackMidiCapture("pedalcapture")
    stop = threading.Event()
    started: list = []
    opts = ListenOptions(device="system", samplerate=rate, blocksize=period, midi_api="jack", synth="none",
                         echo=False, bands=("bass", "mid", "high"), band=BandSettings(tempo=120, seed=3),
                         controls=ControlOptions(controller="footswitch", keys=False, midi_api="jack"))
    result: dict = {}
    thread = threading.Thread(target=lambda: result.setdefault("r", run_listen(opts, stop=stop,
                                                                               on_band=started.append)))
    thread.start()
    try:
        player = wire_improv(capture, audio, "pedalplayer", ready=lambda: bool(started))
        assert started, "improv never started the band"
        wait_until(lambda: pedal.client.get_all_connections(pedal.port), 10, "improv's controller input connected")
        wait_cycles(pedal.client, 0.05)
        player.start()
        pedal.playing = True
        assert player.done.wait(15), "JACK never played the whole signal"
        wait_cycles(capture.client, 0.3)  # what was in flight arrives
    finally:
        stop.set()
        thread.join(15)
    assert "r" in result, "the session did not end"
    assert len(pedal.sent) == 4, "the foot switch did not send its presses"
    notes = _notes(capture.snapshot(), rate)
    ons = [(f, ch, p) for f, ch, p, on in notes if on]
    stop_at, go_at = pedal.sent[0][0], pedal.sent[2][0]
    before = [f for f, _, _ in ons if stop_at - 2 * rate <= f < stop_at]
    assert len(before) >= 3, f"the band played {len(before)} notes in the 2 s before the stop: the test means nothing"
    limit = int(0.100 * rate) + period
    for ch, p in _sounding(notes, stop_at):
        offs = [f for f, c, q, on in notes if not on and (c, q) == (ch, p) and stop_at <= f <= stop_at + limit]
        assert offs, f"band note {p} (channel {ch + 1}) still on 100 ms after the stop switch"
    silent = [(round((f - stop_at) / rate, 3), p) for f, _, p in ons if stop_at + limit <= f < go_at]
    assert not silent, f"the band played while stopped (s after the press, pitch): {silent}"
    resumed = [f for f, _, _ in ons if f >= go_at]
    assert resumed and (resumed[0] - go_at) / rate <= 2 * BEAT, "the band did not play again after the go switch"
    player.close()
    capture.close()
    pedal.client.deactivate()
    pedal.client.close()
