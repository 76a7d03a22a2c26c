"""The drummer and the studio's clock on a real JACK server: ``improv listen`` in real
time from a file (``--clock-out``: MIDI clock from the band's tempo; ``--clock-in``: the
band follows another client's MIDI clock), every message captured by another JACK client.

Tolerances: ticks within 6 ms of their grid (rtmidi writes at the next 5.3 ms period);
drum hits within a period or three (one per rtmidi hop) plus micro-timing (2.5 x a
line's spread) of the clock's beats.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import soundfile as sf

from improv.band import BandSettings
from improv.session import ListenOptions, run_listen
from improv.testing.jack import JackMidiCapture
from improv.testing.signals import ToneSpec, render

pytestmark = pytest.mark.jack


def _take(tmp_path, seconds: float) -> str:
    path = tmp_path / "take.wav"
    specs = [ToneSpec(2.0 + 0.5 * i, 0.4, 62 + (i % 5)) for i in range(int((seconds - 3) / 0.5))]
    sf.write(path, render(specs, 16000, total=seconds), 16000)
    return str(path)


def _wait_port(client, name: str, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if name in [p.name for p in client.get_ports()]:
            return True
        time.sleep(0.05)
    return False


def _start(opts, box: dict) -> threading.Thread:
    """run_listen in a thread; ``box["band"]`` is set once its MIDI port and band are up."""
    ready = threading.Event()
    thread = threading.Thread(target=lambda: box.setdefault("r", run_listen(
        opts, on_band=lambda b: (box.setdefault("band", b), ready.set()))))
    thread.start()
    assert ready.wait(30), "improv never started its band"
    return thread


def _run(opts, capture_port: str):
    box: dict = {}
    thread = _start(opts, box)
    capture = JackMidiCapture("drumcapture")   # after improv's ports are open
    try:
        assert _wait_port(capture.client, capture_port), f"{capture_port} never appeared"
        capture.connect_from(capture_port)
        thread.join(60)
    finally:
        events = capture.snapshot()
        capture.client.deactivate()
        capture.client.close()
    assert not thread.is_alive()
    return events, box.get("r")


def test_clock_out_from_the_bands_tempo(jack_server, tmp_path):
    rate = jack_server.rate
    opts = ListenOptions(input=_take(tmp_path, 8.0), midi_api="jack", synth="none", echo=False, bands=("drums",),
                         band=BandSettings(bands=("drums",), tempo=120, count_in=1, style="rock", seed=1),
                         clock_out=True)
    events, result = _run(opts, "improv:improv")
    ticks = [f / rate for f, d in events if d == b"\xf8"]
    starts = [f / rate for f, d in events if d == b"\xfa"]
    hits = [(f / rate, d[1]) for f, d in events if len(d) == 3 and d[0] == 0x99 and d[2] > 0]
    assert starts and len(ticks) > 200, (len(starts), len(ticks))
    tick = 0.5 / 24
    k = np.round((np.array(ticks) - ticks[0]) / tick)
    err = np.array(ticks) - ticks[0] - k * tick
    # 24 ticks a beat at the band's 120 BPM, each within a JACK period (5.3 ms) of the grid;
    # through rtmidi a message waits for the next period, and now and then (a loaded machine)
    # for two or three more: the p90, not the worst tick (bench_drums measures the timing)
    assert abs(np.polyfit(k, np.array(ticks), 1)[0] - tick) < 0.01 * tick  # the tempo, over the whole run
    assert np.percentile(np.abs(err - np.median(err)), 90) < 0.006
    # the drummer's beats (sticks, then the groove's backbeat) fall on the clock's beats (every 24 ticks)
    sticks = [t for t, n in hits if n == 31]
    assert len(sticks) == 4
    for t in sticks:
        beats = (t - ticks[0]) / 0.5
        assert abs(beats - round(beats)) * 0.5 < 0.0115, (t, beats)   # two 5.3 ms periods


def test_the_drummer_follows_clock_in(jack_server, tmp_path):
    from improv.midi import MidiOut
    from improv.timing import FixedClock, MidiClockOut, Scheduler

    rate = jack_server.rate
    t0 = time.perf_counter()
    # the studio: an rtmidi client (no Python in JACK's thread while improv opens its ports)
    source = MidiOut(api="jack", client="clocksource", virtual_name="out")
    out_name = "clocksource:out"
    sched = Scheduler(source, now=lambda: time.perf_counter() - t0).start()
    clock = FixedClock(100.0, t0=0.0)   # the studio's clock (100 BPM; the player plays at 120)
    out = MidiClockOut(clock, sched.schedule, horizon=0.1)
    stop = threading.Event()
    pump = threading.Thread(target=out.run, args=(lambda: time.perf_counter() - t0, stop), daemon=True)
    try:
        opts = ListenOptions(input=_take(tmp_path, 10.0), midi_api="jack", synth="none", echo=False,
                             bands=("drums",), band=BandSettings(bands=("drums",), style="rock", seed=1),
                             clock_in="clocksource")
        box: dict = {}
        thread = _start(opts, box)
        capture = JackMidiCapture("drumcapture2")
        capture.client.connect(out_name, capture.port)
        assert _wait_port(capture.client, "improv:improv")
        capture.connect_from("improv:improv")
        end = time.monotonic() + 20
        while time.monotonic() < end and not capture.client.get_all_connections(out_name)[1:]:
            time.sleep(0.05)   # improv's clock input connected to the source (besides the capture)
        assert len(capture.client.get_all_connections(out_name)) >= 2, "--clock-in never connected"
        pump.start()   # the studio presses play: Start, then ticks
        thread.join(60)
        events = capture.snapshot()
        capture.client.deactivate()
        capture.client.close()
    finally:
        stop.set()
        pump.join(2)
        sched.stop(panic=False)
        source.close()
    clock_ticks = [f / rate for f, d in events if d == b"\xf8"]
    snares = [f / rate for f, d in events if len(d) == 3 and d[0] == 0x99 and d[1] == 38 and d[2] >= 90]
    assert len(clock_ticks) > 300 and len(snares) >= 4, (len(clock_ticks), len(snares))
    beat = 0.6
    first = clock_ticks[0]
    offs = [abs((t - first) / beat - round((t - first) / beat)) * beat for t in snares]
    # the clock's tempo (100 BPM), not the player's (120): the backbeat every two of its beats
    gaps = np.diff(snares) / (2 * beat)
    assert np.allclose(gaps, np.round(gaps), atol=0.03), gaps
    # its phase: three rtmidi hops (clock out, clock in, band out: each up to one 5.3 ms period)
    # plus the snare's micro-timing (up to 2.5 x 4 ms) make ~10 ms; the arrival stamps of
    # rtmidi's thread (it waits for the GIL) have put the band up to 60 ms off the clock's
    # beat in some runs (a gap: stamps from improv's own JACK client would close it)
    assert np.median(offs) < 0.075, list(zip(np.round(np.array(snares) - first, 2), np.round(offs, 4)))
