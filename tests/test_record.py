"""Session recordings: input audio, session.mid and the command log, written as they go.

The crash tests run a real session in a subprocess, kill it with SIGKILL, and read
what it left: every file must be readable and hold everything up to one second
before the kill.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile

from improv.audio import Block
from improv.events import NoteOff, NoteOn, PitchBend, notes_from_events
from improv.record import (AUDIO_FILE, COMMANDS_FILE, MIDI_FILE, Command, CommandLog, SessionRecorder,
                           events_to_midifile, read_commands, read_midi_events)
from improv.synth import Voice
from improv.testing.signals import ToneSpec, render

SRC = Path(__file__).resolve().parents[1] / "src"
LINE = re.compile(r"^\s*(\d+\.\d+)\s+(\w+)\s+(on|off|bend)\s+(\S+)?")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _read_lines_until(proc: subprocess.Popen, want, timeout: float) -> list[str]:
    """Lines of proc's stdout until ``want(lines)`` or the timeout."""
    lines: list[str] = []
    buf = b""
    end = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while time.monotonic() < end and not want(lines):
        r, _, _ = select.select([fd], [], [], 0.05)
        if not r:
            if proc.poll() is not None:
                break
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
        *done, buf = buf.split(b"\n")
        lines += [d.decode() for d in done]
    return lines


def _session(root: Path) -> Path:
    folders = [p for p in root.iterdir() if p.is_dir()]
    assert len(folders) == 1, f"expected one session folder in {root}, found {folders}"
    return folders[0]


# ------------------------------------------------------------ crash: listen


SPECS = [ToneSpec(0.4 + 0.6 * i, 0.45, m) for i, m in enumerate([57, 60, 64, 67, 62, 65, 69, 72, 60, 55])]


def test_listen_recording_survives_kill_9(tmp_path):
    rate = 48000
    audio = render(SPECS, rate, total=7.0)
    wav = tmp_path / "in.wav"
    soundfile.write(wav, audio, rate, subtype="PCM_24")
    root = tmp_path / "rec"
    proc = subprocess.Popen(
        [sys.executable, "-m", "improv.cli", "listen", "--input", str(wav), "--record", str(root),
         "--no-midi", "--synth", "none", "--bands", "none"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=tmp_path,
    )
    try:
        # Let the session run (in real time) until the 6th note has been logged, then pull the plug.
        lines = _read_lines_until(proc, lambda ls: sum(" on " in x for x in ls) >= 6, timeout=30)
        assert proc.poll() is None, f"the session ended early: {proc.stderr.read().decode()[-500:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    logged = [m for m in map(LINE.match, lines) if m]
    t_last = max(float(m.group(1)) for m in logged)
    folder = _session(root)
    print(f"killed after the line at {t_last:.3f} s; left {sorted(p.name for p in folder.iterdir())}")

    # input.wav: a valid header (stdlib wave trusts it), all audio up to t_last - 1 s, bit-exact
    with wave.open(str(folder / AUDIO_FILE)) as w:
        frames, sampwidth = w.getnframes(), w.getsampwidth()
        assert w.getframerate() == rate and w.getnchannels() == 1 and sampwidth == 3
    got, got_rate = soundfile.read(folder / AUDIO_FILE, dtype="float32")
    assert got_rate == rate and len(got) == frames
    print(f"input.wav holds {frames / rate:.3f} s")
    assert frames >= (t_last - 1.0) * rate, f"only {frames / rate:.2f} s of audio for a kill at {t_last:.2f} s"
    np.testing.assert_allclose(got, audio[:frames], atol=2.0 ** -23)

    # the journal: read by render as it is; `improv recover` writes session.mid from it, every
    # note ended; both hold every note-on logged until t_last - 1 s
    assert not (folder / MIDI_FILE).exists()
    from improv.render import load_session

    crashed = load_session(folder).events
    rec = subprocess.run([sys.executable, "-m", "improv.cli", "recover", str(folder)], capture_output=True,
                         text=True, env=_env(), timeout=60)
    assert rec.returncode == 0, rec.stderr
    print(rec.stdout.strip())
    events = read_midi_events(folder / MIDI_FILE)
    assert [(type(e), e.pitch, round(e.time, 3)) for e in events if not isinstance(e, PitchBend)] == \
        [(type(e), e.pitch, round(e.time, 3)) for e in crashed if not isinstance(e, PitchBend)]
    for src in {e.source for e in events}:
        ons = sum(isinstance(e, NoteOn) and e.source == src for e in events)
        assert ons == sum(isinstance(e, NoteOff) and e.source == src for e in events), f"{src}: a note left open"
    ons_file = [(round(e.time, 3), e.pitch) for e in events if isinstance(e, NoteOn)]
    ons_logged = [(float(m.group(1)), m.group(4)) for m in logged if m.group(3) == "on"]
    due = [(t, name) for t, name in ons_logged if t <= t_last - 1.0]
    print(f"MIDI notes {len(ons_file)}, logged {len(ons_logged)}, due {len(due)}")
    assert len(due) >= 3
    assert len(ons_file) >= len(due)
    for (t, _), (tf, pitch) in zip(due, ons_file):
        assert abs(t - tf) < 0.002
    # and the notes are the ones played
    assert [p for _, p in ons_file[: len(due)]] == [round(s.midi) for s in SPECS[: len(due)]]


# --------------------------------------------------------- crash: commands

_WRITER = r"""
import sys, time
import numpy as np
from improv.audio import Block
from improv.record import SessionRecorder
rec = SessionRecorder(sys.argv[1])
rate, n = 16000, 160
t0 = time.monotonic()
i, last_k = 0, -1
while True:
    now = time.monotonic() - t0
    while i * n < now * rate:
        rec.add_audio(Block(np.full(n, (i % 100) / 200.0, dtype=np.float32), i * n, rate))
        i += 1
    k = int(now * 10)
    if k > last_k:
        last_k = k
        rec.commands.add(now, "bass", "density", k / 10)
        print(f"{now:.3f} cmd {k}", flush=True)
    time.sleep(0.01)
"""


def test_command_log_and_audio_survive_kill_9(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env())
    try:
        lines = _read_lines_until(proc, lambda ls: len(ls) >= 25, timeout=30)
        assert proc.poll() is None, proc.stderr.read().decode()[-500:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    t_last = float(lines[-1].split()[0])
    cmds = read_commands(tmp_path / COMMANDS_FILE)
    print(f"killed after {t_last:.2f} s: {len(cmds)} commands, last at {cmds[-1].time:.2f} s")
    # every line is whole JSON, in order, and nothing logged over a second before the kill is missing
    text = (tmp_path / COMMANDS_FILE).read_text()
    assert text.endswith("\n")
    assert [json.loads(x)["value"] for x in text.splitlines()] == [c.value for c in cmds]
    assert [c.value for c in cmds] == [k / 10 for k in range(len(cmds))]
    assert cmds[-1].time >= t_last - 1.0
    with wave.open(str(tmp_path / AUDIO_FILE)) as w:
        frames = w.getnframes()
    assert frames >= (t_last - 1.0) * 16000
    x, _ = soundfile.read(tmp_path / AUDIO_FILE, dtype="float32")
    expect = np.repeat((np.arange(len(x) // 160 + 1) % 100) / 200.0, 160)[: len(x)]
    np.testing.assert_allclose(x, expect, atol=2.0 ** -22)


# ---------------------------------------------------------------- in process


def test_recorder_writes_all_three_files(tmp_path):
    rec = SessionRecorder(tmp_path, bend_range=2.0, voices={"bass": Voice(33, 110)})
    rate = 16000
    for i in range(10):
        rec.add_audio(Block(np.full(160, 0.25, dtype=np.float32), i * 160, rate))
    # blocks 10-14 lost upstream: the file keeps time with zeros
    rec.add_audio(Block(np.full(160, -0.25, dtype=np.float32), 15 * 160, rate))
    rec.add(NoteOn(0.05, 60, 90))
    rec.add(NoteOn(0.06, 36, 100, "bass"))
    rec.add(NoteOff(0.08, 36, "bass"))
    rec.add(NoteOff(0.09, 60))
    log = CommandLog(rec.add_command)
    cmd = log.add(0.07, "bass", "mute", True)
    assert cmd == Command(0.07, "bass", "mute", True)
    assert rec.close() == tmp_path / MIDI_FILE
    assert rec.error is None
    x, r = soundfile.read(tmp_path / AUDIO_FILE, dtype="float32")
    assert r == rate and len(x) == 16 * 160
    np.testing.assert_allclose(x[:1600], 0.25, atol=1e-6)
    np.testing.assert_array_equal(x[1600:2400], 0.0)
    np.testing.assert_allclose(x[2400:], -0.25, atol=1e-6)
    assert read_commands(tmp_path / COMMANDS_FILE) == [cmd]
    mid = mido.MidiFile(str(tmp_path / MIDI_FILE))
    names = [next(m.name for m in t if m.type == "track_name") for t in mid.tracks[1:]]
    assert names == ["player", "bass", "transcript"]
    bass = mid.tracks[2]
    assert [m.program for m in bass if m.type == "program_change"] == [33]
    assert [m.channel for m in bass if m.type == "note_on"] == [1]
    assert any(m.type == "marker" and m.text == "bass mute True" for m in mid.tracks[0])


@pytest.mark.parametrize("bend_range", [2.0, 12.0, 2.5])
def test_midi_events_round_trip(bend_range):
    events = [NoteOn(0.100, 62, 80, cents=23.0), PitchBend(0.300, -41.0), NoteOff(0.500, 62),
              NoteOn(0.200, 38, 100, "bass"), NoteOff(0.700, 38, "bass"),
              NoteOn(0.900, 74, 70, "high", cents=-10.0), NoteOff(1.400, 74, "high")]
    back = read_midi_events(events_to_midifile(events, bend_range))
    for src in ("player", "bass", "high"):
        a = notes_from_events(events, src)
        b = notes_from_events(back, src)
        assert len(a) == len(b) == 1
        assert abs(a[0].onset - b[0].onset) < 0.001 and abs(a[0].offset - b[0].offset) < 0.001
        # bends come back within the 14-bit resolution of the range (2.5 semitones -> 0.03 cents)
        assert abs(a[0].pitch - b[0].pitch) * 100 < 0.1 * bend_range
    bends = [e.cents for e in back if isinstance(e, PitchBend) and e.source == "player"]
    assert any(abs(c + 41.0) < 0.2 for c in bends)


def test_read_commands_skips_a_line_cut_by_a_crash(tmp_path):
    p = tmp_path / COMMANDS_FILE
    p.write_text('{"time": 1.0, "target": "all", "command": "stop", "value": null}\n{"time": 2.0, "tar')
    assert read_commands(p) == [Command(1.0, "all", "stop", None)]
    p.write_text('garbage\n{"time": 1.0, "target": "all", "command": "stop"}\n')
    from improv.errors import ConfigError

    with pytest.raises(ConfigError, match=r"commands.jsonl:1"):
        read_commands(p)


def test_recorder_reports_a_write_error(tmp_path):
    folder = tmp_path / "gone"
    folder.mkdir()
    rec = SessionRecorder(folder)
    folder.rmdir()  # the disk went away under the session
    rec.add_audio(Block(np.zeros(160, dtype=np.float32), 0, 16000))
    rec.add(NoteOn(0.0, 60, 90))
    rec.close()
    assert rec.error is not None and "recording to" in rec.error


def test_recorder_appends_and_writes_the_midi_file_once(tmp_path):
    """The cost of a second of recording does not depend on the session's length: the
    journal only grows at its end (what was written stays as it was), and session.mid is
    written once, at the close, holding every note."""
    rec = SessionRecorder(tmp_path, save_every=0.02, voices={"bass": Voice(33, 110)})
    journal = tmp_path / "events.jsonl"
    texts = []
    for k in range(5):
        for i in range(200):
            t = k + i / 200
            rec.add(NoteOn(t, 60 + i % 12, 90, "player" if i % 2 else "bass"))
            rec.add(NoteOff(t + 0.004, 60 + i % 12, "player" if i % 2 else "bass"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (not journal.exists()
                                               or journal.read_text().count("\n") < 1 + 400 * (k + 1)):
            time.sleep(0.01)
        texts.append(journal.read_text())
        assert not (tmp_path / MIDI_FILE).exists(), "session.mid rewritten while the session runs"
    for a, b in zip(texts, texts[1:]):
        assert b.startswith(a) and len(b) > len(a)
    rec.close()
    assert rec.error is None
    events = read_midi_events(tmp_path / MIDI_FILE)
    assert sum(isinstance(e, NoteOn) for e in events) == 1000
    assert len(notes_from_events(events, "bass")) == 500
    mid = mido.MidiFile(str(tmp_path / MIDI_FILE))
    assert [m.program for t in mid.tracks for m in t if m.type == "program_change"] == [33]


def test_journal_of_a_crash_ends_the_notes_left_sounding(tmp_path):
    from improv.record import JOURNAL_FILE, read_journal, recover_session

    rec = SessionRecorder(tmp_path, save_every=0.02)
    for ev in (NoteOn(0.1, 60, 90), NoteOff(0.3, 60), NoteOn(0.4, 64, 90), NoteOn(0.5, 40, 100, "bass"),
               PitchBend(0.6, 20.0)):
        rec.add(ev)
    rec.close()
    (tmp_path / MIDI_FILE).unlink()
    with open(tmp_path / JOURNAL_FILE, "a") as f:
        f.write('{"time": 0.7, "sour')  # the line a crash cut short
    journal = read_journal(tmp_path / JOURNAL_FILE)
    assert journal.closed == 2
    path, _ = recover_session(tmp_path)
    events = read_midi_events(path)
    assert [(n.onset, n.offset) for n in notes_from_events(events, "player")] == \
        pytest.approx([(0.1, 0.3), (0.4, 0.6)], abs=0.001)
    assert [(n.onset, n.offset) for n in notes_from_events(events, "bass")] == pytest.approx([(0.5, 0.6)], abs=0.001)


def test_recover_says_in_one_line_when_there_is_nothing_to_recover(tmp_path):
    r = subprocess.run([sys.executable, "-m", "improv.cli", "recover", str(tmp_path)], capture_output=True, text=True,
                       env=_env(), timeout=60)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "events.jsonl" in r.stderr + r.stdout
