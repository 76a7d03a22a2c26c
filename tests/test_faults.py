"""Faults on stage: the MIDI server dying, the disk filling up under the recording.

Each is met by a real ``improv listen`` process on a real take: the session goes on (or
ends) cleanly, says what happened in one line while it runs, and every note in the
recording is closed.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile

from improv.events import NoteOff, NoteOn
from improv.render import load_session
from improv.testing.jack import release_slot, start_jack
from improv.testing.signals import ToneSpec, render

SRC = Path(__file__).resolve().parents[1] / "src"
RATE = 48000
PITCHES = [57, 60, 64, 67, 62, 65, 69, 72, 60, 55, 59, 62, 64]
EVENT = re.compile(r"^\s*(\d+\.\d+)\s+(\w+)\s+(on|off|bend)\b")


def _take(tmp_path: Path) -> Path:
    wav = tmp_path / "take.wav"
    soundfile.write(wav, render([ToneSpec(0.3 + 0.5 * i, 0.4, m) for i, m in enumerate(PITCHES)], RATE, total=7.0),
                    RATE)
    return wav


class Lines:
    """A process's output lines, each with the monotonic time it was read."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.lines, self._buf = proc, [], b""

    def until(self, want, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if want(self):
                return True
            r, _, _ = select.select([self.proc.stdout], [], [], 0.05)
            if not r:
                if self.proc.poll() is not None:
                    return want(self)
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return want(self)
            self._buf += chunk
            *done, self._buf = self._buf.split(b"\n")
            now = time.monotonic()
            self.lines += [(now, d.decode(errors="replace")) for d in done]
        return want(self)

    def text(self) -> str:
        return "\n".join(x for _, x in self.lines)

    def find(self, pattern: str):
        return next(((t, x) for t, x in self.lines if re.search(pattern, x)), None)


def assert_every_note_closed(folder: Path, sources=("player", "bass", "mid", "high")) -> dict[str, int]:
    events = load_session(folder).events
    counts = {}
    for src in sources:
        ons = [e for e in events if e.source == src and isinstance(e, NoteOn)]
        offs = [e for e in events if e.source == src and isinstance(e, NoteOff)]
        assert len(ons) == len(offs), f"{src}: {len(ons)} notes on, {len(offs)} off"
        counts[src] = len(ons)
    return counts


def test_midi_server_dying_is_said_and_the_session_goes_on(tmp_path):
    env_before = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    name = f"improv-midikill-{os.getpid()}"
    try:
        server = start_jack(name)
    except RuntimeError as e:
        pytest.fail(f"cannot start a JACK server of the test's own: {e}")
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONUNBUFFERED": "1"}
    for k, v in env_before.items():  # the server of the test session stays the default for later tests
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    proc = subprocess.Popen([sys.executable, "-m", "improv.cli", "listen", "--input", str(_take(tmp_path)),
                             "--midi-api", "jack", "--bands", "all", "--tempo", "120", "--synth", "none",
                             "--no-keys", "--record", str(tmp_path / "rec")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = Lines(proc)
    try:
        assert out.until(lambda o: sum(" on " in x for _, x in o.lines if "player" in x) >= 4, 90), out.text()[-2000:]
        server.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        server.process.wait(10)
        out.until(lambda o: o.proc.poll() is not None, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.stop()
        release_slot(name)
    text = out.text()
    assert proc.returncode == 0, text[-2000:]
    said = out.find(r"JACK server stopped")
    assert said is not None, text[-2000:]
    assert said[0] - killed < 2.0
    assert len([x for _, x in out.lines if "JACK server stopped" in x]) == 1
    assert "Traceback" not in text
    # the session went on to the end of the take: every note heard, the band kept playing, all closed
    heard = [int(m.group(0) is not None) for _, x in out.lines if (m := EVENT.match(x)) and m.group(2) == "player"
             and m.group(3) == "on"]
    assert len(heard) == len(PITCHES)
    folder = next(p for p in (tmp_path / "rec").iterdir() if p.is_dir())
    counts = assert_every_note_closed(folder)
    assert counts["player"] == len(PITCHES)
    band_after = [float(m.group(1)) for _, x in out.lines if (m := EVENT.match(x)) and m.group(2) != "player"]
    assert max(band_after) > 5.5, "the band stopped with the MIDI server"


_LIMITED = r"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails (EFBIG) as on a full disk
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from improv.cli import main
sys.argv = ["improv"] + sys.argv[2:]
sys.exit(main())
"""


@pytest.mark.parametrize("limit", [4000, 60000])
def test_a_full_disk_under_the_recording_is_said_and_the_session_goes_on(tmp_path, limit):
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _LIMITED, str(limit), "listen", "--input", str(_take(tmp_path)),
                             "--no-midi", "--synth", "none", "--no-keys", "--bands", "none", "--record", str(tmp_path / "rec")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = Lines(proc)
    try:
        out.until(lambda o: o.proc.poll() is not None, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.text()
    assert proc.returncode == 0, text[-2000:]
    assert "Traceback" not in text
    # said once while it ran (the closing summary, one line, says it again)
    failed = [i for i, (_, x) in enumerate(out.lines) if x.startswith("improv: recording to") and "failed" in x]
    assert len(failed) == 1, text
    assert "failed" in out.lines[-1][1] and "recorded to" in out.lines[-1][1], text
    # said while the session ran, within 2 s of audio of the first write that failed (input.wav's,
    # the largest file: 144 kB a second) - not only in the summary at the end
    times = [float(m.group(1)) for _, x in out.lines[: failed[0]] if (m := EVENT.match(x))]
    assert not times or times[-1] < 2.0 + limit / (3 * RATE), text
    assert len([x for _, x in out.lines if EVENT.match(x) and " on " in x]) == len(PITCHES), "the session stopped"
    folder = next(p for p in (tmp_path / "rec").iterdir() if p.is_dir())
    counts = assert_every_note_closed(folder, ("player",))
    assert counts["player"] >= (1 if limit < 10000 else len(PITCHES))
