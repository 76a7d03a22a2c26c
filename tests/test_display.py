"""The live display: figures from a real listener, drawn in a pseudo-terminal, plain
log lines elsewhere, never holding the analysis thread up; and `improv listen` with no
audio input says so in one line."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import soundfile
from rich.console import Console

from improv.audio import FileSource
from improv.display import (LiveDisplay, NullDisplay, PlainDisplay, SessionDisplay, make_display,
                            render_snapshot)
from improv.events import NoteOff, NoteOn
from improv.listen.pipeline import Listener
from improv.events import Command
from improv.testing.signals import ToneSpec, render

SRC = Path(__file__).resolve().parents[1] / "src"
RATE = 48000
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LOG_LINE = re.compile(r"^\s*\d+\.\d{3}\s+player\s+(on|off|bend)\b")


def _env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> Path:
    """A4 played 20 cents sharp, 0.3 - 1.3 s."""
    path = tmp_path_factory.mktemp("display") / "a4.wav"
    soundfile.write(path, render([ToneSpec(0.3, 1.0, 69.2)], RATE, total=1.6), RATE)
    return path


def _console(width: int = 110) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=width, force_terminal=False, color_system=None, highlight=False), buf


def test_display_figures_from_a_real_listener(tone):
    source = FileSource(tone, blocksize=256, fast=True)
    listener = Listener("yin", source.sample_rate)
    display = SessionDisplay()
    display.attach(listener, source, "a4.wav")
    mid = None
    for block in source.blocks():
        for ev in listener.process(block):
            display.on_event(ev)
        if mid is None and block.end >= 0.8 * RATE:
            mid = display.snapshot()
    end = display.snapshot()
    assert mid.heard is not None and mid.heard[0] == "A4"
    print(f"heard {mid.heard[0]} {mid.heard[1]:+.1f}c at {mid.level_db:.1f} dBFS")
    assert abs(mid.heard[1] - 20.0) < 5.0
    assert -30.0 < mid.level_db < 0.0
    assert mid.sounding is not None and mid.sounding[0] == "A4"
    assert mid.latency_count == 1 and 0.0 < mid.latency_ms[0] < 60.0
    assert abs(mid.elapsed - 0.8) < 0.02
    assert end.sounding is None and end.heard is None, "after the note: nothing heard, nothing sounding"
    assert all(not b.active for b in end.bands), "no band yet: all shown as -"
    assert end.dropped == 0 and end.notes == 1


def test_band_state_and_commands_reach_the_panel():
    display = SessionDisplay()
    display.on_event(NoteOn(1.0, 45, 90, "bass"))
    display.on_command(Command(1.5, "bass", "density", 0.5))
    display.on_command(Command(1.6, "high", "mute"))
    display.bands["mid"].density = 0.75  # the band updates its state in place
    display.bands["mid"].active = True
    display.set_clock(96.0, "3/4")
    console, buf = _console()
    console.print(render_snapshot(display.snapshot()))
    text = buf.getvalue()
    print(text)
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.split()[:1] in
            (["bass"], ["mid"], ["high"])}
    assert rows["bass"] == ["density", "0.5", "A2", "-"]
    assert rows["mid"] == ["-", "-", "0.75"]
    assert rows["high"] == ["mute", "-", "-"]
    assert "96 BPM" in text and "beat 3/4" in text
    assert "1.500  bass   cmd density 0.5" in text  # the command log line


def test_make_display_picks_by_terminal():
    plain, _ = _console()
    assert type(make_display(plain)) is PlainDisplay
    assert type(make_display(plain, quiet=True)) is NullDisplay
    tty = Console(file=io.StringIO(), force_terminal=True)
    assert type(make_display(tty)) is LiveDisplay


def test_plain_display_never_holds_the_caller_up():
    """The log writer blocks on a full pipe; on_event must still return at once."""
    r, w = os.pipe()
    writer = os.fdopen(w, "w", buffering=1)
    display = PlainDisplay(Console(file=writer, force_terminal=False, width=200))
    display.start()
    done = threading.Event()

    def feed():
        for i in range(5000):  # ~300 kB of log lines: far more than a pipe holds
            display.on_event(NoteOn(i * 0.01, 60, 90, onset=i * 0.01))
        done.set()

    threading.Thread(target=feed, daemon=True).start()
    finished = done.wait(10.0)
    # drain the pipe so the writer thread can finish
    drained = threading.Thread(target=lambda: [None for _ in iter(lambda: os.read(r, 65536), b"")], daemon=True)
    drained.start()
    display.stop()
    writer.close()
    drained.join(10)
    os.close(r)
    assert finished, "on_event blocked while the log writer was stuck on a full pipe"


def _run_in_pty(args: list[str], timeout: float = 60.0) -> tuple[int, str]:
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                            env=_env(TERM="xterm-256color", COLUMNS="100", LINES="40"))
    os.close(slave)
    out = b""
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return proc.returncode, out.decode(errors="replace")


def test_live_display_in_a_pseudo_terminal(tone):
    rc, out = _run_in_pty([sys.executable, "-m", "improv.cli", "listen", "--input", str(tone),
                           "--no-midi", "--synth", "none", "--bands", "none"])
    text = ANSI.sub("", out)
    print(text[-1500:])
    assert rc == 0
    assert "\x1b[" in out, "a terminal gets the live panel (cursor movements, colours)"
    frames = text.count("heard ")
    print(f"{frames} frames drawn for 1.6 s of input")
    assert frames >= 5, "the panel is redrawn from its own refresh, several times a second"
    assert re.search(r"heard\s+A4\s+\+\d+c", text), "the pitch heard, with its cents"
    assert re.search(r"note\s+A4\s+vel", text), "the player's sounding note"
    assert re.search(r"bass\s+-\s+-\s+-", text), "bands shown as - until they exist"
    assert "dropped blocks 0" in text
    assert "1 notes" in text, "the summary after the panel"
    assert not LOG_LINE.search(text.split("improv ")[0]), "no plain log lines before the panel"


def test_plain_log_lines_when_not_a_terminal(tone):
    p = subprocess.run([sys.executable, "-m", "improv.cli", "listen", "--input", str(tone), "--no-midi",
                        "--synth", "none", "--bands", "none"], capture_output=True, text=True, env=_env(),
                       timeout=60)
    print(p.stdout)
    assert p.returncode == 0
    assert "\x1b[" not in p.stdout
    lines = p.stdout.strip().splitlines()
    log = [x for x in lines if LOG_LINE.match(x)]
    assert [LOG_LINE.match(x).group(1) for x in log if LOG_LINE.match(x).group(1) != "bend"] == ["on", "off"]
    assert " on  A4 " in log[0]
    assert p.stderr.strip().splitlines()[-1].startswith("1 notes"), "the summary is a status line, on stderr"


def test_listen_without_audio_input_says_so_in_one_line():
    """No sound card, no JACK server: PortAudio finds no input; one line, what to do, non-zero exit."""
    env = _env(JACK_DEFAULT_SERVER=f"improv-none-{os.getpid()}", JACK_NO_START_SERVER="1")
    probe = subprocess.run([sys.executable, "-c", "import sounddevice as sd; "
                            "print(sum(d['max_input_channels'] > 0 for d in sd.query_devices()))"],
                           capture_output=True, text=True, env=env, timeout=60)
    if probe.returncode == 0 and probe.stdout.strip() != "0":
        pytest.skip(f"this machine has {probe.stdout.strip()} audio inputs besides JACK; no-input cannot be staged")
    p = subprocess.run([sys.executable, "-m", "improv.cli", "listen", "--no-midi", "--synth", "none"],
                       capture_output=True, text=True, timeout=60, env=env)
    print(repr(p.stderr))
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1, "exactly one line on stderr"
    assert p.stderr.startswith("improv: ")
    assert "improv devices" in p.stderr and "--input FILE" in p.stderr
    assert p.stdout == ""


def test_display_survives_note_off_without_note_on():
    d = SessionDisplay()
    d.on_event(NoteOff(0.5, 60))
    assert d.snapshot().sounding is None
