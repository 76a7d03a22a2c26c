"""``--cc-map FILE``: the band's state as MIDI CC macros — read on the band's beats, sent only
on change, through the session's MIDI port (captured on a real JACK server) and into the
recording; a bad map is one line naming the key."""

from __future__ import annotations

import threading
from collections import defaultdict

import mido
import numpy as np
import pytest

from improv.band import BandSettings
from improv.band.macros import parse_cc_map
from improv.events import Command
from improv.record import CONTROLS_TRACK, read_controls

from test_cli import assert_one_line_error, run_cli

BEAT = 60.0 / 110.0   # jam's default tempo
FORM_START = 0.25     # the jam's first beat

MAP = """
[[macro]]
source = "density"
band = "bass"
cc = 1

[[macro]]
source = "intensity"
band = "all"
cc = 74
channel = 12
range = [20, 110]
glide = 1

[[macro]]
source = "playing"
band = "all"
cc = 80
channel = 12
every = "bar"
"""


def _by_controller(ccs):
    out = defaultdict(list)
    for c in ccs:
        out[(c.channel, c.control)].append(c)
    return out


def test_a_map_reads_with_its_defaults():
    m = parse_cc_map({"macro": [{"source": "chaos", "band": "high", "cc": 71}]}, channels={"high": 6})
    (macro,) = m.macros
    assert (macro.channel, macro.low, macro.high, macro.every, macro.glide, macro.step) == (6, 0, 127, "beat", 0.0, 1)
    assert macro.value(0.0) == 0 and macro.value(1.0) == 127
    inverted = parse_cc_map({"macro": [{"source": "activity", "cc": 91, "channel": 3, "range": [90, 30],
                                        "curve": "exp"}]}).macros[0]
    assert inverted.value(0.0) == 90 and inverted.value(1.0) == 30 and inverted.value(0.5) == pytest.approx(75)


def test_the_jam_records_its_macros_on_the_beats(tmp_path, capsys):
    ccmap = tmp_path / "cc.toml"
    ccmap.write_text(MAP)
    script = tmp_path / "c.txt"
    script.write_text("4.0 bass: busier\n8.0 all: stop\n")
    code, out, err = run_cli(capsys, "jam", "--fast", "--seconds", "16", "--no-midi", "--synth", "none", "--seed", "4",
                             "--commands", str(script), "--cc-map", str(ccmap), "--record", str(tmp_path / "rec"))
    assert code == 0, err
    assert "CC macro messages" in err
    folder = next((tmp_path / "rec").iterdir())
    ccs = read_controls(folder / "controls.jsonl")
    by = _by_controller(ccs)
    density, intensity, playing = by[(1, 1)], by[(11, 74)], by[(11, 80)]  # the bass's own channel: 2
    assert density and intensity and playing, sorted(by)
    # on the band's beats (bar lines for every = "bar"), only when the value changed
    for c in ccs:
        beats = (c.time - FORM_START) / BEAT
        assert abs(beats - round(beats)) < 1e-6, c
    for c in playing:
        assert round((c.time - FORM_START) / BEAT) % 4 == 0, c
    for series in by.values():
        values = [c.value for c in series]
        assert all(a != b for a, b in zip(values, values[1:])), values
    # busier from the beat after 4 s: the bass's density macro goes 64 -> 85 (one step of three up)
    assert [c.value for c in density] == [64, 85], density
    assert 4.0 < density[1].time <= 4.0 + 2 * BEAT
    # the band plays (intensity up from 20), then stops at 8 s: playing 1 -> 0 at the next bar,
    # and the intensity glides back to the range's low end once four beats pass without a note
    assert [c.value for c in playing] == [127, 0] and 8.0 <= playing[-1].time <= 8.0 + 4 * BEAT + 1e-6, playing
    loud = [c.value for c in intensity if c.time < 8.0]
    assert max(loud) > 60, loud
    assert intensity[-1].value == 20 and intensity[-1].time > 8.0 + 4 * BEAT
    # session.mid carries them on a track of their own, each on its channel
    mid = mido.MidiFile(str(folder / "session.mid"))
    track = next(t for t in mid.tracks if any(m.type == "track_name" and m.name == CONTROLS_TRACK for m in t))
    sent = [(m.channel, m.control, m.value) for m in track if m.type == "control_change"]
    assert sent == [(c.channel, c.control, c.value) for c in sorted(ccs, key=lambda c: c.time)]


@pytest.mark.jack
def test_macros_leave_the_midi_port_on_the_beat(jack_server):
    """A real-time jam on JACK: the CCs arrive on improv:improv on the MIDI clock's beats."""
    from improv.audio import SilentSource
    from improv.session import ListenOptions, run_listen
    from improv.testing.jack import JackMidiCapture, wait_until

    rate = jack_server.rate
    ccmap = parse_cc_map({"macro": [{"source": "density", "band": "all", "cc": 20, "channel": 13},
                                    {"source": "intensity", "band": "all", "cc": 21, "channel": 13, "glide": 1}]})
    opts = ListenOptions(midi_api="jack", synth="none", bands=("bass", "mid", "high", "drums"),
                         band=BandSettings(bands=("bass", "mid", "high", "drums"), tempo=120, seed=2,
                                           start_clock=True, changes="auto"),
                         commands=[Command(3.0, "all", "busier"), Command(5.0, "all", "simpler"),
                                   Command(5.0, "all", "simpler")],
                         clock_out=True, cc_map=ccmap, keep_events=False)
    box: dict = {}
    ready = threading.Event()
    thread = threading.Thread(target=lambda: box.setdefault("r", run_listen(
        opts, source=SilentSource(48000, 256, seconds=8.0), on_band=lambda b: ready.set())))
    thread.start()
    assert ready.wait(30), "improv never started its band"
    capture = JackMidiCapture("cccapture")
    try:
        wait_until(lambda: "improv:improv" in [p.name for p in capture.client.get_ports()], 20, "improv:improv")
        capture.connect_from("improv:improv")
        thread.join(60)
    finally:
        events = capture.snapshot()
        capture.close()
    assert not thread.is_alive()
    assert box["r"].controls > 0
    ticks = np.array([f / rate for f, d in events if d == b"\xf8"])
    ccs = [(f / rate, d[1], d[2]) for f, d in events if len(d) == 3 and d[0] == 0xB0 | 12 and d[1] in (20, 21)]
    density = [(t, v) for t, c, v in ccs if c == 20]
    # as told, busier (+1 step at the beat after 3 s), then simpler twice (-1 step): 64, 85, 42
    # (the first, on the jam's first beat, may leave before the capture is connected)
    assert [v for _, v in density] == [64, 85, 42][-len(density):] and len(density) >= 2, density
    assert 1.5 < density[-1][0] - density[-2][0] < 3.0, density  # two seconds apart, on beats
    intensity = [v for t, c, v in ccs if c == 21]
    assert len(intensity) >= 3 and all(a != b for a, b in zip(intensity, intensity[1:])), intensity
    # each one on a beat of the band's clock (every 24th tick from the Start): both leave through
    # the band's scheduler and rtmidi, which writes at the next JACK period (5.3 ms) or, loaded, later
    start = next(f / rate for f, d in events if d == b"\xfa")
    beats = ticks[ticks >= start - 1e-4][::24]
    assert len(beats) > 8
    off = [np.min(np.abs(beats - t)) for t, _, _ in ccs if beats[0] <= t <= beats[-1] + 0.25]
    assert off and np.percentile(off, 90) < 0.0115, off


@pytest.mark.parametrize("text, words", [
    ("[[macro]]\nsource = 'loudness'\ncc = 74\nchannel = 2\n", ["macro 1", "source", "loudness", "intensity"]),
    ("[[macro]]\nsource = 'chaos'\nband = 'bass'\ncc = 130\n", ["macro 1", "cc", "130", "0-119"]),
    ("[[macro]]\nsource = 'chaos'\nband = 'bass'\ncc = 71\nchannel = 0\n", ["macro 1", "channel", "1-16"]),
    ("[[macro]]\nsource = 'chaos'\ncc = 71\n", ["macro 1", "all", "channel"]),
    ("[[macro]]\nsource = 'chaos'\nband = 'piano'\ncc = 71\n", ["macro 1", "band", "piano"]),
    ("[[macro]]\nsource = 'chaos'\nband = 'bass'\ncc = 71\ncolour = 3\n", ["macro 1", "colour"]),
    ("[[macro]]\nsource = 'chaos'\nband = 'bass'\ncc = 71\nrange = [0, 200]\n", ["macro 1", "range", "0-127"]),
    ("[[macro]]\nsource = 'chaos'\nband = 'bass'\ncc = 71\ncurve = 'wobbly'\n", ["macro 1", "curve", "wobbly"]),
    ("[[macro]]\nsource = 'chaos'\nband = 'bass'\ncc = 71\nglide = -1\n", ["macro 1", "glide"]),
    ("[[macro]]\nsource = 'chaos'\nband = 'bass'\ncc = 71\nevery = 'tick'\n", ["macro 1", "every", "beat or bar"]),
    ("[[macro]]\nsource = 'chaos'\nband = 'bass'\ncc = 71\n[[macro]]\nsource = 'density'\nband = 'bass'\ncc = 71\n",
     ["macro 2", "cc 71", "channel 2", "macro 1"]),
    ("[[macro]]\nsource = 'register'\nband = 'drums'\ncc = 71\n", ["macro 1", "register", "drums"]),
    ("every = 'beat'\n", ["[[macro]]"]),
    ("speed = 3\n[[macro]]\nsource = 'chaos'\nband = 'bass'\ncc = 71\n", ["speed"]),
    ("[[macro]\nsource = ", ["not a TOML file"]),
])
def test_a_bad_map_is_one_line_naming_the_key(tmp_path, capsys, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code, out, err = run_cli(capsys, "jam", "--fast", "--seconds", "2", "--no-midi", "--synth", "none",
                             "--cc-map", str(path))
    assert code == 2
    assert_one_line_error(code, err, "--cc-map", str(path), *words)


def test_a_missing_map_or_no_band_is_one_line(tmp_path, capsys):
    code, out, err = run_cli(capsys, "jam", "--fast", "--seconds", "2", "--no-midi", "--synth", "none",
                             "--cc-map", str(tmp_path / "nowhere.toml"))
    assert_one_line_error(code, err, "--cc-map", "cannot read")
    ok = tmp_path / "ok.toml"
    ok.write_text("[[macro]]\nsource = 'chaos'\nband = 'bass'\ncc = 71\n")
    code, out, err = run_cli(capsys, "listen", "--input", "nowhere.wav", "--bands", "none", "--no-midi",
                             "--synth", "none", "--cc-map", str(ok))
    assert_one_line_error(code, err, "--cc-map", "--bands")
