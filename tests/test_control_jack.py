"""The foot controller on a real JACK server: another JACK MIDI client plays the foot switch.

Tolerances: a command's time is 0 to 50 ms after the JACK cycle in which its switch
message was written (the server runs 5.3 ms periods; measured figures are in
benchmarks/bench_control.py); a long press comes 600 ms (the mapping's long-press
time) after its press, within the same 50 ms.
"""

from __future__ import annotations

import re
import threading
import time

import mido
import pytest

from improv.testing.jack import RATE, JackMidiSource, wait_cycles, wait_until

from improv.cli import main
from improv.control import ControlOptions, load_mapping, open_controls, parse_mapping
from improv.control.mapping import DEFAULT_MAPPING_TOML
from improv.control.switches import SwitchLogic
from improv.errors import MidiError

pytestmark = pytest.mark.jack

TOL = 0.050


class Sink:
    def __init__(self):
        self.commands = []
        self.logs = []
        self._cond = threading.Condition()

    def command(self, cmd):
        with self._cond:
            self.commands.append(cmd)
            self._cond.notify_all()

    def log(self, line):
        with self._cond:
            self.logs.append(line)
            self._cond.notify_all()

    def wait(self, pred, timeout=5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: pred(self), timeout)


def connected(src: JackMidiSource, timeout: float = 5.0) -> bool:
    """Wait until improv's input is connected to ``src`` and JACK has had a few cycles to take it in."""
    try:
        wait_until(lambda: src.client.get_all_connections(src.port), timeout, "improv's input connected")
    except AssertionError:
        return False
    wait_cycles(src.client, 0.05)
    return True


def at(seconds: float) -> int:
    return int(round(seconds * RATE))


MAPPING = parse_mapping(DEFAULT_MAPPING_TOML.replace("[keys]", """
[cc.86]
mode = "toggle"
on = "high: take over 0.7"
off = "high: accompany"
[note]
36 = "panic"

[keys]""", 1))


def test_switches_from_a_jack_client_become_commands(jack_server):
    events = [
        (at(0.00), bytes([0xC0, 3])),                                        # 0 PC 3: make room
        (at(0.20), bytes([0xB0, 80, 127])), (at(0.30), bytes([0xB0, 80, 0])),  # 1 A: stop, at once
        (at(0.50), bytes([0xB0, 82, 127])), (at(0.65), bytes([0xB0, 82, 0])),  # 4 C short: busier on release
        (at(1.00), bytes([0xB0, 83, 127])), (at(2.00), bytes([0xB0, 83, 0])),  # 5 D held: accompany at +0.6
        (at(2.20), bytes([0xB0, 86, 127])), (at(2.40), bytes([0xB0, 86, 0])),  # 7, 8 toggle on, off
        (at(2.60), bytes([0x90, 36, 100])), (at(2.70), bytes([0x80, 36, 0])),  # 9 note: panic
        (at(2.80), bytes([0xB0, 99, 127])),                                   # not mapped
    ]
    want = [(0, 0.0, "all", "make-room", None), (1, 0.0, "all", "stop", None), (4, 0.0, "all", "busier", None),
            (5, 0.6, "all", "accompany", "harmonic"), (7, 0.0, "high", "take-over", 0.7),
            (8, 0.0, "high", "accompany", "harmonic"), (9, 0.0, "all", "panic", None)]
    src = JackMidiSource(events, name="footswitch")
    sink = Sink()
    try:
        with open_controls(ControlOptions(controller="footsw", keys=False, midi_api="jack"), sink.command,
                           time.monotonic, sink.log, mapping=MAPPING) as controls:
            assert controls.controller.name == "footswitch:out"
            assert connected(src)
            src.start()
            assert src.done.wait(5)
            assert sink.wait(lambda s: len(s.commands) >= len(want))
            wait_cycles(src.client, 0.2)  # nothing more comes
        assert [(c.target, c.command, c.value) for c in sink.commands] == [w[2:] for w in want]
        for cmd, (i, offset, *_rest) in zip(sink.commands, want):
            late = cmd.time - (src.sent_at[i] + offset)
            assert -0.001 <= late <= TOL, (cmd, late)
        assert controls.controller.received == len(events)
        assert sink.logs[0].startswith("foot controller: footswitch:out (jack)")
    finally:
        src.close()


def test_controller_that_disappears_and_returns(jack_server):
    sink = Sink()
    src = JackMidiSource([(0, bytes([0xB0, 80, 127])), (at(0.1), bytes([0xB0, 80, 0]))], name="pedalboard")
    try:
        with open_controls(ControlOptions(controller="pedalboard", keys=False, midi_api="jack"), sink.command,
                           time.monotonic, sink.log, mapping=MAPPING) as controls:
            assert connected(src)
            src.start()
            assert sink.wait(lambda s: len(s.commands) == 1)
            src.close()  # the cable is pulled
            assert sink.wait(lambda s: any("disappeared" in x for x in s.logs), timeout=3.0), sink.logs
            lost = [x for x in sink.logs if "disappeared" in x][0]
            assert lost.startswith("controller pedalboard:out disappeared; playing on")
            src = JackMidiSource([(0, bytes([0xC0, 1])), (at(0.05), bytes([0xB0, 81, 127]))], name="pedalboard")
            assert sink.wait(lambda s: any("is back" in x for x in s.logs), timeout=3.0), sink.logs
            assert connected(src)
            src.start()
            assert sink.wait(lambda s: len(s.commands) == 3)
            assert controls.controller.lost == 1
        assert [(c.command) for c in sink.commands] == ["stop", "go", "go"]
        assert sum("is back" in x for x in sink.logs) == 1 and sum("disappeared" in x for x in sink.logs) == 1
    finally:
        src.close()


def test_no_matching_port_lists_the_ports(jack_server):
    src = JackMidiSource([], name="somepedal")
    try:
        with pytest.raises(MidiError) as e:
            open_controls(ControlOptions(controller="FCB1010", keys=False, midi_api="jack"), print,
                          time.monotonic, print, mapping=MAPPING)
        msg = str(e.value)
        assert msg.startswith("--controller 'FCB1010': no MIDI input port matches (ports on jack: ")
        assert "somepedal:out" in msg and "\n" not in msg
    finally:
        src.close()


def test_learn_from_scripted_switches_writes_a_mapping_that_maps_them(jack_server, tmp_path, capsys):
    path = tmp_path / "pedal.toml"
    path.write_text('[program]\n7 = "all: go"\n\n[cc]\n50 = "all: go"  # kept\n\n[keys]\nx = "panic"\n')
    commands = ["all: stop", "bass: busier", "bass: simpler", "high: take over 0.7", "high: accompany", "panic",
                "mid: fight"]
    script = [
        (0.20, bytes([0xC0, 7])),                                  # PC 7 -> all: stop
        (0.60, bytes([0xB0, 90, 127])), (0.75, bytes([0xB0, 90, 0])),     # CC 90 short -> bass: busier
        (1.20, bytes([0xB0, 90, 127])), (2.20, bytes([0xB0, 90, 0])),     # CC 90 held 1 s -> bass: simpler (long)
        (2.50, bytes([0xB0, 91, 127])),                                   # CC 91, no release -> toggle on
        (4.40, bytes([0xB0, 91, 0])),                                     # CC 91 again -> toggle off
        (4.70, bytes([0x90, 36, 90])), (4.80, bytes([0x80, 36, 0])),      # note 36 -> panic
        (5.10, bytes([0xC0, 3])), (5.10 + 1 / RATE, bytes([0xB0, 20, 127])),  # one press, two messages -> PC 3
    ]
    src = JackMidiSource([(at(t), d) for t, d in script], name="learnpedal")
    result = {}
    try:
        args = ["learn", *commands, "--controller", "learnpedal", "--mapping", str(path), "--midi-api", "jack",
                "--timeout", "5", "--window", "1.5", "--long-press-ms", "600"]
        runner = threading.Thread(target=lambda: result.setdefault("rc", main(args)))
        runner.start()
        assert connected(src, timeout=10), "improv learn did not connect to the source"
        src.start()
        runner.join(timeout=30)
        assert not runner.is_alive() and result["rc"] == 0
    finally:
        src.close()
    out = capsys.readouterr().out
    assert "7 switches learned" in out, out
    assert "PC 7, press -> all: stop  (was: all: go)" in out
    held = re.search(r"CC 90 momentary, long press \(held (\d+) ms\) -> bass: simpler", out)
    assert held and abs(int(held.group(1)) - 1000) <= 50
    mapping = load_mapping(path)
    assert mapping.switch("cc", 50).press.command == "go" and mapping.keys["x"].command.command == "panic"
    assert mapping.switch("cc", 20) is None
    # the messages learned, played again through the mapping written, give the commands learned
    logic = SwitchLogic(mapping)
    got = []
    for t, data in script:
        got += logic.poll(t)
        got += logic.message(mido.Message.from_bytes(data), t)
    got += logic.poll(10.0)
    assert [(c.target, c.command, c.value) for c in got] == [
        ("all", "stop", None), ("bass", "busier", None), ("bass", "simpler", None), ("high", "take-over", 0.7),
        ("high", "accompany", "harmonic"), ("all", "panic", None), ("mid", "fight", 0.5)]
    assert [round(c.time, 3) for c in got] == [0.2, 0.75, 1.8, 2.5, 4.4, 4.7, 5.1]
