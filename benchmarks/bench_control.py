"""Foot-controller latency on a JACK dummy server (48 kHz, 256-frame periods).

    PYTHONPATH=src python3 benchmarks/bench_control.py --presses 300 --json control.json

A JACK MIDI client plays a foot switch: CC 80 press (127) and release (0), one press
every ``--interval`` seconds at a random frame inside the JACK period. improv's
controller input (:func:`improv.control.open_controls`, rtmidi on JACK, the default
mapping: CC 80 = "all: stop", acting on press) turns each press into a Command and
the dispatcher thread hands it to ``on_command``. Latency = ``time.monotonic()`` in
``on_command`` minus ``time.monotonic()`` in the sending client's process callback of
the cycle that carried the press (the moment the message entered the JACK graph).
JACK itself adds up to one period (5.3 ms) between a hardware MIDI event and that
cycle; that part is not in these figures.

Two cases: idle, and with the listening pipeline (YIN) running in real time in a
thread of the same process (as in ``improv listen``). Also: the long-press lateness
(command time stamped at the deadline; on_command call minus deadline).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

from improv.testing.jack import RATE, JackMidiSource, start_jack  # noqa: E402

from improv.control import ControlOptions, open_controls  # noqa: E402


def stats_ms(values: list[float]) -> dict:
    a = np.asarray(values) * 1000.0
    if len(a) == 0:
        return {"n": 0}
    return {"n": int(len(a)), "median_ms": round(float(np.median(a)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "max_ms": round(float(a.max()), 3)}


def run_case(presses: int, interval: float, long_presses: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    events, press_idx = [], []
    for i in range(presses):
        f = int(i * interval * RATE) + int(rng.integers(0, 256))
        press_idx.append(len(events))
        events.append((f, bytes([0xB0, 80, 127])))
        events.append((f + int(0.03 * RATE), bytes([0xB0, 80, 0])))
    base = int(presses * interval * RATE) + RATE // 2
    long_idx = []
    for i in range(long_presses):  # CC 82: short "busier", long (600 ms) "simpler"
        f = base + int(i * 1.0 * RATE) + int(rng.integers(0, 256))
        long_idx.append(len(events))
        events.append((f, bytes([0xB0, 82, 127])))
        events.append((f + int(0.8 * RATE), bytes([0xB0, 82, 0])))
    calls: list[tuple[float, object]] = []
    src = JackMidiSource(events, name="benchpedal")
    try:
        with open_controls(ControlOptions(controller="benchpedal", keys=False, midi_api="jack"),
                           lambda c: calls.append((time.monotonic(), c)), time.monotonic, lambda s: None):
            end = time.monotonic() + 5
            while not src.client.get_all_connections(src.port) and time.monotonic() < end:
                time.sleep(0.01)
            time.sleep(0.05)
            src.start()
            src.done.wait(presses * interval + long_presses + 10)
            time.sleep(1.0)
    finally:
        src.close()
    stops = [(t, c) for t, c in calls if c.command == "stop"]
    longs = [(t, c) for t, c in calls if c.command == "simpler"]
    lat = [t - src.sent_at[i] for (t, _c), i in zip(stops, press_idx)]
    stamp = [c.time - src.sent_at[i] for (_t, c), i in zip(stops, press_idx)]
    long_late = [t - c.time for t, c in longs]
    long_err = [c.time - (src.sent_at[i] + 0.6) for (_t, c), i in zip(longs, long_idx)]
    return {"presses": presses, "commands": len(stops), "lost": presses - len(stops),
            "latency_to_on_command": stats_ms(lat), "command_time_minus_cycle": stats_ms(stamp),
            "long_press_on_command_after_deadline": stats_ms(long_late),
            "long_press_stamp_error": stats_ms(long_err)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presses", type=int, default=300)
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between presses (default 0.05)")
    ap.add_argument("--long-presses", type=int, default=10)
    ap.add_argument("--no-load", action="store_true", help="skip the case with the listening pipeline running")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    server = start_jack(f"improv-bench-control-{os.getpid()}")
    results: dict = {"machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()}}
    try:
        results["idle"] = run_case(args.presses, args.interval, args.long_presses, 1)
        if not args.no_load:
            from improv.testing import load_benchmark

            sched = load_benchmark("bench_scheduler")
            listening_load, make_wav = sched.listening_load, sched.make_wav

            stop = threading.Event()
            stats: dict = {}
            with tempfile.TemporaryDirectory() as tmp:
                wav = make_wav(Path(tmp))
                t = threading.Thread(target=listening_load, args=(stop, wav, stats), daemon=True)
                t.start()
                time.sleep(1.0)
                try:
                    results["listening"] = run_case(args.presses, args.interval, args.long_presses, 2)
                finally:
                    stop.set()
                    t.join(timeout=10)
            results["listening"]["pipeline_blocks"] = stats.get("blocks", 0)
        results["machine"]["load_after"] = os.getloadavg()
    finally:
        server.stop()
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
