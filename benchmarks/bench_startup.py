"""How long ``improv --version`` and the ``--help`` screens take, in a fresh interpreter each.

    python3 benchmarks/bench_startup.py [--runs 7] [--json FILE]

Each case is run ``--runs`` times in a new ``python3`` process (``-c`` calling
``improv.cli.main``, so the source tree in use is measured, not an installed copy);
the median and the slowest wall time are printed, and which heavy modules
(torch, scipy, librosa) the process imported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
CASES = [["--version"], ["--help"], ["listen", "--help"], ["clock", "--help"], ["render", "--help"],
         ["generate", "--help"], ["eval-model", "--help"], ["learn", "--help"], ["bench", "--help"]]
HEAVY = ("torch", "scipy", "librosa")
PROBE = ("import sys, contextlib, io\n"
         "from improv.cli import main\n"
         "with contextlib.redirect_stdout(io.StringIO()):\n"
         "    try:\n        main(sys.argv[1:])\n    except SystemExit:\n        pass\n"
         "print(','.join(m for m in %r if m in sys.modules))\n" % (HEAVY,))


def run_once(argv: list[str]) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env, timeout=120)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"improv {' '.join(argv)} failed: {r.stderr.strip()}")
    return wall, r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    rows = {}
    print(f"{'command':28s} {'median':>8s} {'max':>8s}  heavy modules imported")
    bare = []
    for _ in range(args.runs):  # the interpreter alone, for scale on a loaded machine
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - t0)
    rows["python3 -c pass"] = {"median_s": statistics.median(bare), "max_s": max(bare), "heavy": ""}
    print(f"{'python3 -c pass':28s} {statistics.median(bare):7.3f}s {max(bare):7.3f}s", flush=True)
    for argv in CASES:
        times, heavy = [], ""
        for _ in range(args.runs):
            t, heavy = run_once(argv)
            times.append(t)
        name = "improv " + " ".join(argv)
        rows[name] = {"median_s": statistics.median(times), "max_s": max(times), "heavy": heavy}
        print(f"{name:28s} {statistics.median(times):7.3f}s {max(times):7.3f}s  {heavy or '-'}", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
