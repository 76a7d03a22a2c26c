"""OSC from a hostile network: random and malformed datagrams, then a real command.

A real ``improv listen`` process with ``--osc`` on loopback gets a bounded burst of
junk (random bytes, truncated and mutated OSC messages and bundles, unknown addresses,
wrong argument types) and must neither print a traceback nor flood the console, and
must still obey ``/improv/all/stop`` afterwards.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from improv.control.osc import RateLimitedLog, osc_command
from improv.errors import ConfigError
from improv.record import COMMANDS_FILE, read_commands

SRC = Path(__file__).resolve().parents[1] / "src"
BURST = 3000


def junk(rng: np.random.Generator) -> list[bytes]:
    from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
    from pythonosc.osc_message_builder import OscMessageBuilder

    def msg(address, *args) -> bytes:
        b = OscMessageBuilder(address=address)
        for a in args:
            b.add_arg(a)
        return b.build().dgram

    valid = [msg("/improv/bass/busier"), msg("/improv/high/take-over", 0.7), msg("/improv/all/lead", "busy"),
             msg("/improv/mid/accompany", "contrapuntal"), msg("/improv/tap", 1)]
    bundle = OscBundleBuilder(IMMEDIATELY)
    bundle.add_content(OscMessageBuilder(address="/improv/bass/simpler").build())
    valid.append(bundle.build().dgram)
    out = []
    for i in range(BURST):
        kind = i % 6
        if kind == 0:
            out.append(rng.bytes(int(rng.integers(1, 200))))
        elif kind == 1:  # a valid message cut short
            v = valid[int(rng.integers(len(valid)))]
            out.append(v[: int(rng.integers(1, len(v)))])
        elif kind == 2:  # a valid message with bytes flipped
            v = bytearray(valid[int(rng.integers(len(valid)))])
            for _ in range(int(rng.integers(1, 6))):
                v[int(rng.integers(len(v)))] = int(rng.integers(256))
            out.append(bytes(v))
        elif kind == 3:  # addresses nobody knows, each new (the old limit was per address)
            word = "".join(chr(int(c)) for c in rng.integers(33, 127, int(rng.integers(1, 12))))
            out.append(msg(f"/improv/{word}/{i}", float(rng.normal())))
        elif kind == 4:  # good addresses, wrong values
            out.append(msg("/improv/high/take-over", "loud", 3, b"\x00\x01"))
        else:
            out.append(b"#bundle\x00" + rng.bytes(int(rng.integers(0, 40))))
    return out


def _read_until(proc, pattern: str, timeout: float) -> tuple[re.Match | None, str]:
    text, end = "", time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([proc.stdout], [], [], 0.1)
        if r:
            chunk = os.read(proc.stdout.fileno(), 65536).decode(errors="replace")
            if not chunk:
                break
            text += chunk
            m = re.search(pattern, text)
            if m:
                return m, text
        elif proc.poll() is not None:
            break
    return None, text


def test_junk_over_osc_is_survived_and_stop_is_still_obeyed(tmp_path):
    rate = 16000
    wav = tmp_path / "quiet.wav"
    soundfile.write(wav, np.zeros(25 * rate, dtype=np.float32), rate)
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "improv.cli", "listen", "--input", str(wav), "--no-midi",
                             "--synth", "none", "--no-keys", "--osc", "127.0.0.1:0", "--record", str(tmp_path / "rec")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        m, text = _read_until(proc, r"OSC: udp 127\.0\.0\.1:(\d+)", 60)
        assert m, f"no OSC server line: {text[-2000:]}"
        port = int(m.group(1))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t0 = time.monotonic()
        for i, d in enumerate(junk(np.random.default_rng(7))):
            sock.sendto(d, ("127.0.0.1", port))
            if i % 200 == 199:
                time.sleep(0.02)  # a bounded burst, paced so the loopback buffer keeps it
        junk_seconds = time.monotonic() - t0
        time.sleep(0.5)
        from pythonosc.osc_message_builder import OscMessageBuilder

        sock.sendto(OscMessageBuilder(address="/improv/all/stop").build().dgram, ("127.0.0.1", port))
        _, more = _read_until(proc, r"all stop", 10)
        text += more
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        text += rest.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in text, text[-3000:]
    osc_lines = [x for x in text.splitlines() if "OSC" in x]
    # 5 at once, then one line a second at most (the burst took junk_seconds; plus the start-up line,
    # and the count of those not shown at the end)
    assert len(osc_lines) <= 5 + junk_seconds + 3, "\n".join(osc_lines[:20])
    print("\n".join(osc_lines))
    assert any("not shown" in x for x in osc_lines)
    folder = next(p for p in (tmp_path / "rec").iterdir() if p.is_dir())
    cmds = read_commands(folder / COMMANDS_FILE)
    assert any(c.target == "all" and c.command == "stop" for c in cmds), cmds[-5:]


def test_rate_limited_log_says_how_many_were_left_out():
    lines, now = [], [0.0]
    say = RateLimitedLog(lines.append, 1.0, burst=3, clock=lambda: now[0])
    for i in range(100):
        say(f"bad {i}")
        now[0] += 0.05  # 20 a second for 5 s
    assert lines[:3] == ["bad 0", "bad 1", "bad 2"]  # a few at once, then one a second
    assert lines[3] == "bad 20 (and 17 more not shown)"
    assert len(lines) == 3 + 4
    say.flush("bad lines")
    held = sum(int(m) for m in re.findall(r"(\d+) more", " ".join(lines)))
    assert held + 7 == 100


@pytest.mark.parametrize("args", [(b"\x00\xff",), (None,), ((1, 2),), (float("nan"),), (1e300,), ("x" * 5000,)])
def test_odd_argument_types_are_a_one_line_error_or_a_command(args):
    for address in ("/improv/high/take-over", "/improv/bass/accompany", "/improv/all/stop"):
        try:
            osc_command(address, args, 1.0)
        except ConfigError:
            pass
