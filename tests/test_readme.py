"""The README's quick start, run exactly as written (after the set-up step, which CI runs),
and its command listing checked against the commands improv has."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from improv.record import read_midi_events

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(section: str) -> list[str]:
    text = README.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def test_quick_start_names_setup_then_one_command_and_the_tests():
    first, tests = _blocks("Quick start")[:2]
    assert first.strip().startswith("scripts/setup.sh && improv ")
    assert tests.strip() == "python3 -m pytest -q"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/setup.sh" in ci and "python3 -m pytest -q" in ci


@pytest.mark.slow
def test_quick_start_plays_and_records_the_band(tmp_path):
    command = _blocks("Quick start")[0].strip().split("scripts/setup.sh && ", 1)[1]
    (tmp_path / "recordings").symlink_to(ROOT / "recordings")
    shim = tmp_path / "bin" / "improv"  # `improv` as scripts/setup.sh installs it, from this checkout
    shim.parent.mkdir()
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m improv \"$@\"\n")
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{shim.parent}:{os.environ['PATH']}", "JACK_NO_START_SERVER": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    summary = r.stderr.strip().splitlines()[-1]
    assert "the band (bass,mid,high,drums) played" in summary and "recorded to out/" in summary, summary
    assert " bend " not in r.stdout, "bends stay out of the log"
    sessions = list((tmp_path / "out").iterdir())
    assert len(sessions) == 1
    events = read_midi_events(sessions[0] / "session.mid")
    sources = {e.source for e in events if type(e).__name__ == "NoteOn"}
    assert {"player", "bass", "mid", "high"} <= sources, sources


def test_the_commands_listed_are_improvs():
    from improv.cli import COMMANDS

    listed = set(re.findall(r"^improv ([a-z-]+)", "\n".join(_blocks("Use")), re.M))
    listed |= set(re.findall(r"/ ([a-z-]+) ", "\n".join(_blocks("Use"))))
    assert listed <= set(COMMANDS), listed - set(COMMANDS)
    assert {"listen", "devices", "ports", "render", "clock"} <= listed
