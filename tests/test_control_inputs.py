"""The keyboard (on a real pseudo-terminal) and OSC (real UDP on localhost) through open_controls."""

from __future__ import annotations

import os
import pty
import termios
import threading
import time

import pytest

from improv.control import ControlOptions, open_controls
from improv.control.keyboard import keyboard_unusable
from improv.errors import ConfigError


class Sink:
    def __init__(self):
        self.commands = []
        self.logs = []
        self.threads = set()
        self._cond = threading.Condition()

    def command(self, cmd):
        with self._cond:
            self.threads.add(threading.get_ident())
            self.commands.append(cmd)
            self._cond.notify_all()

    def log(self, line):
        with self._cond:
            self.logs.append(line)
            self._cond.notify_all()

    def wait(self, pred, timeout=3.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: pred(self), timeout)


def fake_clock():
    t0 = time.monotonic()
    return lambda: time.monotonic() - t0


def test_keys_from_a_terminal_and_the_terminal_restored():
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        assert before[3] & termios.ICANON and before[3] & termios.ECHO
        sink = Sink()
        with open_controls(ControlOptions(), sink.command, fake_clock(), sink.log, key_fd=slave) as controls:
            assert controls.keyboard is not None
            during = termios.tcgetattr(slave)
            assert not during[3] & termios.ICANON and not during[3] & termios.ECHO  # cbreak: no Enter, no echo
            os.write(master, b"2r")
            assert sink.wait(lambda s: len(s.commands) == 1)
            os.write(master, b"+S \x1b[Az?")
            assert sink.wait(lambda s: len(s.commands) == 4 and any("space=tap" in x for x in s.logs))
        got = [(c.target, c.command) for c in sink.commands]
        assert got == [("mid", "make-room"), ("mid", "busier"), ("all", "stop"), ("all", "tap")]
        assert any("now go to mid" in x for x in sink.logs) and any("'z' does nothing" in x for x in sink.logs)
        assert termios.tcgetattr(slave) == before
        assert len(sink.threads) == 1  # on_command always from the dispatcher thread
    finally:
        os.close(master)
        os.close(slave)


def test_terminal_restored_when_the_session_fails():
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        sink = Sink()
        with pytest.raises(RuntimeError, match="the band fell over"):
            with open_controls(ControlOptions(), sink.command, fake_clock(), sink.log, key_fd=slave) as controls:
                assert controls.keyboard is not None and termios.tcgetattr(slave) != before
                raise RuntimeError("the band fell over")
        assert termios.tcgetattr(slave) == before
        with pytest.raises(ConfigError, match="--osc"):  # a bad option: nothing opened, nothing to restore
            open_controls(ControlOptions(osc="notaport"), sink.command, fake_clock(), sink.log, key_fd=slave)
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_no_keys_when_stdin_is_not_a_terminal():
    r, w = os.pipe()
    try:
        assert keyboard_unusable(r) == "stdin is not a terminal"
        sink = Sink()
        with open_controls(ControlOptions(), sink.command, fake_clock(), sink.log, key_fd=r) as controls:
            assert controls.keyboard is None
        assert sink.logs == ["keys: off (stdin is not a terminal)"]
        master, slave = pty.openpty()
        with open_controls(ControlOptions(keys=False), sink.command, fake_clock(), sink.log, key_fd=slave) as c2:
            assert c2.keyboard is None and c2.opened == []
        os.close(master)
        os.close(slave)
    finally:
        os.close(r)
        os.close(w)


def test_osc_over_udp():
    from pythonosc.udp_client import SimpleUDPClient

    sink = Sink()
    clock = fake_clock()
    with open_controls(ControlOptions(osc="127.0.0.1:0", keys=False), sink.command, clock, sink.log) as controls:
        port = controls.osc.port
        assert any(f"udp 127.0.0.1:{port}" in x for x in sink.logs) or sink.wait(
            lambda s: any(f"udp 127.0.0.1:{port}" in x for x in s.logs))
        client = SimpleUDPClient("127.0.0.1", port)
        sent = clock()
        client.send_message("/improv/high/take_over", 0.7)
        client.send_message("/improv/bas/stop", [])          # bad band: logged, nothing else
        client.send_message("/improv/high/take_over", 9.0)   # bad value: logged
        client.send_message("/improv/all/stop", 0.0)         # a button's release: nothing
        client.send_message("/improv/mid/accompany", "contrapuntal")
        client.send_message("/improv/panic", [])
        client._sock.sendto(b"not osc at all", ("127.0.0.1", port))
        client.send_message("/improv/tap", 1)
        assert sink.wait(lambda s: len(s.commands) == 4)
        assert sink.wait(lambda s: sum(x.startswith("OSC /") for x in s.logs) == 2)
    got = [(c.target, c.command, c.value) for c in sink.commands]
    assert got == [("high", "take-over", 0.7), ("mid", "accompany", "contrapuntal"), ("all", "panic", None),
                   ("all", "tap", None)]
    assert all(sent <= c.time < sent + 2.0 for c in sink.commands)
    bad = [x for x in sink.logs if x.startswith("OSC /")]
    assert "unknown band 'bas'" in bad[0] and "out of range" in bad[1]


def test_osc_port_in_use_is_one_line():
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        port = s.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"--osc 127.0.0.1:{port}: cannot listen on this UDP port"):
            open_controls(ControlOptions(osc=f"127.0.0.1:{port}", keys=False), print, time.monotonic, print)
    finally:
        s.close()


def test_a_failing_receiver_is_reported_and_later_commands_still_come():
    from improv.events import Command

    sink = Sink()

    def receiver(cmd):
        if cmd.command == "fight":
            raise ValueError("band exploded")
        sink.command(cmd)

    with open_controls(ControlOptions(keys=False), receiver, fake_clock(), sink.log) as controls:
        controls.submit(Command(1.0, "bass", "fight", 0.5))
        controls.submit(Command(2.0, "bass", "stop"))
        assert sink.wait(lambda s: len(s.commands) == 1)
    assert sink.logs == ["command bass fight 0.5 failed: ValueError: band exploded"]


def test_learn_enter_skips_on_a_terminal_and_writes_after_each_switch(tmp_path):
    import mido

    from improv.control.learn import SKIP, EnterSkips, MessageFeed, ScriptedFeed, run_learn
    from improv.control.mapping import load_mapping, parse_mapping
    from improv.band.commands import parse_command

    master, slave = pty.openpty()
    feed = MessageFeed()
    skips = EnterSkips(feed, slave)
    try:
        os.write(master, b"\n")
        assert feed.take(lambda it: True, time.monotonic() + 3.0) == SKIP
    finally:
        skips.close()
        os.close(master)
        os.close(slave)

    path = tmp_path / "m.toml"
    lines = []
    feed = ScriptedFeed([(1.0, mido.Message("program_change", program=9)),
                         (9.0, mido.Message("control_change", control=64, value=127)),
                         (9.1, mido.Message("control_change", control=64, value=0))])
    feed._items.insert(0, SKIP)  # Enter at the first prompt
    cmds = [parse_command(t) for t in ("all: go", "panic", "bass: stop", "mid: busier")]
    mapping, n = run_learn(feed, cmds, parse_mapping(""), path, lines.append, timeout=5.0, window=2.0,
                           enter_skips=True)
    assert n == 2
    assert [x for x in lines if x.startswith("  ")] == ["  skipped", "  PC 9, press -> panic",
                                                         "  nothing pressed; skipped",
                                                         "  CC 64 momentary, press (held 100 ms) -> mid: busier"]
    back = load_mapping(path)
    assert back.switch("program", 9).press.command == "panic"
    assert back.switch("cc", 64).press == parse_command("mid: busier")
