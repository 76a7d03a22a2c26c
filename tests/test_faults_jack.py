"""The audio server dies under a live session: improv says so in one line and ends, with
every note closed in the recording (it used to hang for ever in PortAudio's terminate at
interpreter exit, deaf to Ctrl-C, with the player's note left open in session.mid).

The session is a real ``improv listen`` process on a JACK server of the test's own, fed a
held tone by ``sndfile-jackplay``; the test waits until improv has heard the note, then
kills the server.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from improv.testing.jack import release_slot, start_jack
from improv.testing.signals import ToneSpec, render

pytestmark = [pytest.mark.jack, pytest.mark.slow]

EXIT_WITHIN_S = 10.0   # a hang is for ever; a clean end takes about 0.5 s (the input's watchdog)


def _improv(*args: str) -> list[str]:
    return [sys.executable, "-u", "-c", "import sys; from improv.cli import main; sys.exit(main())", *args]


def _wait_line(proc: subprocess.Popen, needle: str, timeout: float) -> list[str]:
    """Lines of ``proc``'s stdout up to the first that contains ``needle`` (read on a thread)."""
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen: list[str] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"improv never printed {needle!r}; it printed {seen[-5:]}")


def _open_notes(path: Path) -> list[tuple[int, int]]:
    """(channel, key) of notes that start in ``path`` and never end."""
    sounding: dict[tuple[int, int], int] = {}
    for msg in mido.MidiFile(path):
        if msg.type == "note_on" and msg.velocity > 0:
            sounding[(msg.channel, msg.note)] = sounding.get((msg.channel, msg.note), 0) + 1
        elif msg.type in ("note_off", "note_on"):
            k = (msg.channel, msg.note)
            if sounding.get(k):
                sounding[k] -= 1
    return [k for k, n in sounding.items() if n]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_audio_server_dying_ends_the_session_cleanly(tmp_path, sig):
    if shutil.which("sndfile-jackplay") is None:
        pytest.skip("sndfile-jackplay is not installed (apt install sndfile-tools)")
    env_before = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    name = f"improv-fault-{os.getpid()}-{sig}"
    server = start_jack(name)
    env = {**os.environ, "JACK_DEFAULT_SERVER": name, "JACK_NO_START_SERVER": "1"}
    for k, v in env_before.items():  # the session's own server stays the default for other tests
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    wav = tmp_path / "tone.wav"
    sf.write(wav, render([ToneSpec(0.2, 20.0, 57.0)], server.rate, total=21.0).astype(np.float32), server.rate)
    rec = tmp_path / "rec"
    proc = subprocess.Popen(_improv("listen", "--bands", "bass", "--midi-api", "jack", "--synth", "none",
                                    "--no-keys", "--record", str(rec), "--samplerate", str(server.rate),
                                    "--blocksize", str(server.period)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    player = None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # PortAudio's input exists once the session listens
            ports = subprocess.run(["jack_lsp", "-s", name], capture_output=True, text=True, env=env).stdout
            if "PortAudio" in ports:
                break
            assert proc.poll() is None, f"improv ended early: {proc.stderr.read()}"
            time.sleep(0.1)
        pa_in = next(p for p in ports.split() if p.startswith("PortAudio") and "in" in p)
        player = subprocess.Popen(["sndfile-jackplay", f"-a{pa_in}", str(wav)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        _wait_line(proc, "player on", timeout=20)
        server.process.send_signal(sig)
        killed = time.monotonic()
        try:
            proc.wait(timeout=EXIT_WITHIN_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"improv still running {EXIT_WITHIN_S:.0f} s after the audio server died")
        took = time.monotonic() - killed
        err = proc.stderr.read()
    finally:
        for p in (proc, player):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        server.stop()
        release_slot(name)  # a SIGKILLed server keeps its slot in JACK's registry (8 in all) otherwise
    lines = [line for line in err.splitlines() if line.strip()]
    assert any("audio input stopped" in line for line in lines), err
    assert "Traceback" not in err, err
    assert proc.returncode != 0, "a session that lost its input must not exit 0"
    session = next(rec.glob("*/session.mid"))
    msgs = [m for m in mido.MidiFile(session) if m.type == "note_on" and m.velocity > 0]
    assert msgs, "the recording kept no note"
    assert _open_notes(session) == [], "notes left open in session.mid"
    print(f"ended {took:.2f} s after the audio server died")
