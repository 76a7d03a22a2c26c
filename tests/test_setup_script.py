"""scripts/setup.sh on a system Python that refuses `pip install` (PEP 668, Debian 12 /
Ubuntu 24.04): everything goes into .venv/ and `improv` is linked onto the PATH. The
interpreter, pip and apt-get are stand-ins that write down how they were called."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FAKE_PYTHON = r"""#!/usr/bin/env bash
# a stand-in interpreter: "managed" unless it lives in a venv
here=$(cd "$(dirname "$0")" && pwd)
echo "$here/$(basename "$0") $*" >> "$CALLS"
if [ "${1:-}" = "-" ]; then cat >/dev/null; [ -f "$here/../pyvenv.cfg" ] && exit 1; exit 0; fi
if [ "${1:-}" = "-m" ] && [ "${2:-}" = "venv" ]; then
    mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; touch "$3/pyvenv.cfg"
    printf '#!/bin/sh\necho improv-from-venv\n' > "$3/bin/improv"; chmod +x "$3/bin/improv"
fi
exit 0
"""


def test_setup_uses_a_virtual_environment_when_pip_is_refused(tmp_path):
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", repo / "scripts" / "setup.sh")
    fake_bin = tmp_path / "fakebin"
    fake_bin.mkdir()
    (fake_bin / "python3").write_text(FAKE_PYTHON)
    (fake_bin / "apt-get").write_text('#!/bin/sh\necho "apt-get $*" >> "$CALLS"\n')
    for f in fake_bin.iterdir():
        f.chmod(0o755)
    link_dir = tmp_path / "bin"
    calls = tmp_path / "calls.txt"
    env = {**os.environ, "PATH": f"{fake_bin}:{link_dir}:{os.environ['PATH']}", "CALLS": str(calls),
           "IMPROV_BIN_DIR": str(link_dir), "HOME": str(tmp_path)}
    env.pop("PIP_BREAK_SYSTEM_PACKAGES", None)
    env.pop("VIRTUAL_ENV", None)
    r = subprocess.run(["bash", "scripts/setup.sh"], cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    log = calls.read_text().splitlines()
    pips = [ln for ln in log if " -m pip install" in ln]
    assert pips and all(ln.startswith(str(repo / ".venv" / "bin" / "python")) for ln in pips), log
    assert any("-e .[test,bench,link]" in ln for ln in pips)
    assert any(ln.startswith("apt-get install") and "python3-venv" in ln for ln in log)
    improv = link_dir / "improv"
    assert improv.is_symlink() and improv.resolve() == (repo / ".venv" / "bin" / "improv").resolve()
    out = subprocess.run(["improv"], env=env, capture_output=True, text=True, timeout=10).stdout
    assert out.strip() == "improv-from-venv", "`improv` on the PATH is the venv's"
    # again: the venv is reused, not made twice
    calls.write_text("")
    r = subprocess.run(["bash", "scripts/setup.sh"], cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert not any(" -m venv " in ln for ln in calls.read_text().splitlines())
