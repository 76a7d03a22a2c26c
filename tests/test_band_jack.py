"""The band in real time on a real JACK server: a WAV into PortAudio's input (the
microphone), improv's MIDI captured on a JACK MIDI port, commands given while it plays.

Tolerances: notes off within 100 ms of stop/panic (plus one 5.3 ms JACK period);
other commands from the next beat (half a second at 120 BPM) on; band notes on the
sixteenth-note grid within 15 ms.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from improv.band import BandSettings, parse_command
from improv.session import ListenOptions, run_listen
from improv.testing.jack import JackMidiCapture, wait_cycles, wait_until, wire_improv
from improv.testing.signals import ToneSpec, render

pytestmark = pytest.mark.jack

BEAT = 0.5
PLAYER = [62, 64, 65, 67, 69, 67, 65, 64, 62, 64, 65, 67, 69, 71, 72, 71]  # D4..C5
LOW, HIGH = min(PLAYER), max(PLAYER)
BAND_CHANNELS = {1: "bass", 2: "mid", 3: "high"}


def _notes(events, rate, since_frame=0):
    """(frame, channel, pitch, on?) of the band's note messages."""
    out = []
    for f, d in events:
        if len(d) == 3 and d[0] & 0x0F in BAND_CHANNELS and d[0] & 0xF0 in (0x80, 0x90) and f >= since_frame:
            out.append((f, d[0] & 0x0F, d[1], d[0] & 0xF0 == 0x90 and d[2] > 0))
    return out


def _sounding(notes, frame):
    """(channel, pitch) of band notes on at ``frame``."""
    on = set()
    for f, ch, p, is_on in sorted(notes):
        if f > frame:
            break
        if is_on:
            on.add((ch, p))
        else:
            on.discard((ch, p))
    return on


def test_band_answers_and_obeys_commands_on_jack(jack_server, portaudio):
    import torch

    torch.set_num_threads(1)
    rate, period = jack_server.rate, jack_server.period
    specs = [ToneSpec(0.5 + i * BEAT, 0.85 * BEAT, PLAYER[i % len(PLAYER)]) for i in range(24)]
    audio = render(specs, rate, total=13.0)
    capture = JackMidiCapture("bandcapture")
    stop = threading.Event()
    live_box: list = []
    opts = ListenOptions(device="system", samplerate=rate, blocksize=period, midi_api="jack", synth="none",
                         echo=False, bands=("bass", "mid", "high"), band=BandSettings(tempo=120, seed=1))
    result: dict = {}
    thread = threading.Thread(target=lambda: result.setdefault("r", run_listen(opts, stop=stop,
                                                                               on_band=live_box.append)))
    thread.start()
    marks: dict[str, int] = {}
    try:
        player = wire_improv(capture, audio, "bandplayer", ready=lambda: bool(live_box))
        assert live_box, "improv never started the band"
        live = live_box[0]
        player.start()

        def command(label: str, text: str, at: float) -> None:
            """Give the command at ``at`` s into the playing, or as soon after (up to 2 s) as a
            band note sounds (a stop with nothing sounding would test nothing)."""
            while capture.client.frame_time - (player.start_frame or capture.client.frame_time) < at * rate:
                time.sleep(0.005)
            until = time.monotonic() + 2.0
            while True:
                # the last frame whose MIDI the capture has surely taken in (its cycle is over),
                # read before the snapshot: what sounds then is what the check below sees
                seen = capture.client.last_frame_time - 1
                if _sounding(_notes(capture.snapshot(), rate), seen) or time.monotonic() >= until:
                    break
                time.sleep(0.005)
            marks[label] = seen
            live.command(parse_command(text, live.now()))
            marks[label + " returned"] = capture.client.frame_time  # (this thread may be slow to run)

        command("stop", "all: stop", 3.1)
        command("go", "all: go", 5.1)
        command("room", "mid: make room", 7.1)
        command("panic", "panic", 11.3)
        assert player.done.wait(15), "JACK never played the whole signal"
        wait_cycles(capture.client, 0.3)  # what was in flight arrives
    finally:
        stop.set()
        thread.join(15)
    assert "r" in result, "the session did not end"
    notes = _notes(capture.snapshot(), rate)
    ons = [(f, ch, p) for f, ch, p, on in notes if on]
    assert len(ons) >= 12, f"the band played {len(ons)} notes"
    programs = {d[0] & 0x0F: d[1] for _, d in capture.snapshot() if len(d) == 2 and d[0] & 0xF0 == 0xC0}
    assert programs == {1: 33, 2: 4, 3: 65}, f"each band's General MIDI program on its channel: {programs}"
    start = player.start_frame
    limit = int(0.100 * rate) + period

    # stop: what sounded is off within 100 ms; nothing new until go
    for label in ("stop", "panic"):
        f0 = marks[label]
        before = _sounding(notes, f0)
        assert before, f"nothing sounded at {label}; the test means nothing"
        for ch, p in before:
            f1 = marks[label + " returned"]
            offs = [f for f, c, q, on in notes if not on and (c, q) == (ch, p) and f0 <= f <= f1 + limit]
            assert offs, f"band note {p} (channel {ch + 1}) not ended within 100 ms of {label}"
    silent = [(f, ch, p) for f, ch, p in ons if marks["stop returned"] + limit <= f < marks["go"]]
    assert not silent, f"the band played while stopped: {silent}"
    resumed = [f for f, _, _ in ons if f >= marks["go"]]
    assert resumed and (resumed[0] - marks["go"]) / rate <= 2 * BEAT, "the band did not go on after go"

    # make room: from the next beat on, the mid band keeps out of the player's span
    effect = marks["room"] + int((BEAT + 0.03) * rate)
    mid_after = [p for f, ch, p in ons if ch == 2 and effect <= f < marks["panic"]]
    assert len(mid_after) >= 2, "the mid band did not play after make room: the test means nothing"
    assert all(not (LOW <= p <= HIGH) for p in mid_after), f"mid played in the player's register: {mid_after}"

    # on the grid: the time between one band onset and the next is a whole number of
    # sixteenths (a one-off shift of the dummy server's clock against the wall clock under
    # load moves the grid once; it spoils one interval, not all that follow)
    sixteenth = BEAT / 4 * rate
    frames = sorted({f for f, _, _ in ons})
    off = [abs(d / sixteenth - round(d / sixteenth)) * sixteenth / rate for d in np.diff(frames)]
    assert sorted(off)[int(0.9 * len(off))] <= 0.010, \
        f"band onsets off the sixteenth grid by (ms): {[round(1000 * x) for x in off]}"
    assert start is not None
    player.close()
    capture.close()


def test_output_port_that_goes_away_is_said_and_the_session_goes_on(jack_server, tmp_path):
    """--midi-out to another client's port; that client leaves mid-session and comes back."""
    import soundfile

    import torch

    torch.set_num_threads(1)
    specs = [ToneSpec(0.3 + i * BEAT, 0.85 * BEAT, PLAYER[i % len(PLAYER)]) for i in range(16)]
    wav = tmp_path / "player.wav"
    soundfile.write(wav, render(specs, 44100, total=8.5), 44100)
    capture = JackMidiCapture("gear")
    warnings: list[tuple[float, str]] = []
    opts = ListenOptions(input=str(wav), midi_out="gear:in", midi_api="jack", synth="none", echo=False,
                         record=str(tmp_path / "rec"), bands=("bass", "mid"), band=BandSettings(tempo=120, seed=2))
    result: dict = {}
    t0 = time.monotonic()
    thread = threading.Thread(target=lambda: result.setdefault("r", run_listen(
        opts, on_warning=lambda text: warnings.append((time.monotonic() - t0, text)))))
    thread.start()
    try:
        capture.wait_for(lambda ev: len(_notes(ev, jack_server.rate)) >= 4, timeout=10.0)
        got_before = len(_notes(capture.snapshot(), jack_server.rate))
        unplugged = time.monotonic() - t0
        capture.close()  # the gear is unplugged
        wait_until(lambda: any("is gone" in w[1] for w in warnings), 5.0, "the missing port said")
        wait_until(lambda: time.monotonic() - t0 >= unplugged + 1.5, 5.0)  # the band plays on meanwhile
        replugged = time.monotonic() - t0
        capture = JackMidiCapture("gear")  # and plugged in again
        thread.join(15)
    finally:
        thread.join(15)
    assert "r" in result, "the session did not end"
    assert got_before > 0, "nothing reached the gear before it went away"
    gone = [w for w in warnings if "is gone" in w[1]]
    back = [w for w in warnings if "is back" in w[1]]
    assert gone and unplugged <= gone[0][0] <= unplugged + 2.5, \
        f"the missing port was not said within 2.5 s (checked each second): {warnings}"
    assert back and back[0][0] >= replugged, f"the port coming back was not said: {warnings}"
    after = _notes(capture.snapshot(), jack_server.rate)
    assert after, "nothing reached the gear after it came back"
    from improv.record import read_midi_events

    recorded = read_midi_events(result["r"].recording / "session.mid")
    band_times = [e.time for e in recorded if e.source in ("bass", "mid")]
    # session seconds and this thread's clock differ by the session's start-up (< 1 s)
    assert any(unplugged + 0.2 < t < replugged for t in band_times), \
        "the band stopped playing (or recording) while the port was away"
    capture.close()
