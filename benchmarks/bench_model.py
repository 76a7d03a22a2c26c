"""Latency of the band model as the band uses it: load time and one incremental step.

One step = what a band does each beat: observe the player's notes that arrived, then
``propose`` the next beat of all three bands (bass, mid, high) and ``accept`` it. The
player's line is a fixed synthetic tune. The process allows ``--threads`` torch threads;
the session proposes on one (``Session.threads``, its default), and the metered step is
also measured on all ``--threads`` for comparison. Reports medians and percentiles;
prints the machine's load average, since the machine is shared.

    PYTHONPATH=src python3 benchmarks/bench_model.py --threads 2 --beats 400 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def _melody(beats: int) -> list[tuple[int, float, float]]:
    rng = np.random.default_rng(0)
    notes, t, p = [], 0.0, 67
    while t < beats:
        d = float(rng.choice([0.25, 0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
        p = int(np.clip(p + rng.choice([-4, -2, -1, 0, 1, 2, 3, 5]), 55, 84))
        if rng.random() < 0.85:
            notes.append((p, t, t + d * 0.9))
        t += d
    return notes


def bench_steps(model, beats: int, warmup: int, metered: bool = True, session_threads: int | None = 1) -> np.ndarray:
    import torch  # noqa: F401

    from improv.model import VoiceControl

    sess = model.session(metered=metered, seed=0)
    sess.threads = session_threads
    unit = 1.0 if metered else 0.5
    melody = [(p, s * unit, e * unit) for p, s, e in _melody(beats + warmup + 2)]
    controls = {"bass": VoiceControl(low=28, high=52), "mid": VoiceControl(low=48, high=67),
                "high": VoiceControl(low=62, high=84)}
    nxt, open_end = 0, None
    times = []
    for beat in range(beats + warmup):
        now = beat * unit
        t0 = time.perf_counter()
        if open_end is not None and open_end <= now:
            sess.note_off("player", open_end)
            open_end = None
        while nxt < len(melody) and melody[nxt][1] < now:
            p, s, e = melody[nxt]
            sess.observe("player", p, s, e if e <= now else None)
            open_end = e if e > now else None
            nxt += 1
        prop = sess.propose(now, voices=("bass", "mid", "high"), controls=controls if beat == 0 else None)
        sess.accept(prop)
        times.append(time.perf_counter() - t0)
    return np.array(times[warmup:]) * 1e3


def stats(ms: np.ndarray) -> dict:
    return {"n": int(len(ms)), "p50_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()), "mean_ms": float(ms.mean())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beats", type=int, default=400)
    ap.add_argument("--warmup", type=int, default=32)
    ap.add_argument("--loads", type=int, default=5, help="load_model repetitions")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch

    from improv.model import load_model

    torch.set_num_threads(args.threads)
    out: dict = {"threads": args.threads, "load_average_before": os.getloadavg(), "cpus": os.cpu_count()}
    loads = []
    for _ in range(args.loads):
        t0 = time.perf_counter()
        model = load_model(args.model)
        loads.append(time.perf_counter() - t0)
    out["load_model_s"] = {"median": float(np.median(loads)), "max": float(np.max(loads))}
    # A cold start: a new interpreter importing improv.model (torch included) and loading.
    code = ("import time; t=time.perf_counter(); from improv.model import load_model; "
            f"load_model({args.model!r}); print(time.perf_counter()-t)")
    cold = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    out["cold_import_and_load_s"] = float(cold.stdout.strip()) if cold.returncode == 0 else None
    out["model"] = str(model.path)
    out["parameters"] = sum(p.numel() for p in model.net.parameters())
    # As the band uses it: the session proposes on one torch thread (Session.threads = 1)
    # inside a process allowed --threads; and, for comparison, on the process's --threads.
    out["metered_step"] = stats(bench_steps(model, args.beats, args.warmup, metered=True))
    out["unmetered_step"] = stats(bench_steps(model, args.beats // 2, args.warmup, metered=False))
    if args.threads != 1:
        out[f"metered_step_on_{args.threads}_threads"] = stats(
            bench_steps(model, args.beats, args.warmup, metered=True, session_threads=None))
    out["load_average_after"] = os.getloadavg()
    print(f"model {out['model']} ({out['parameters']:,} parameters), torch threads {args.threads}")
    print(f"load_model: median {out['load_model_s']['median'] * 1e3:.0f} ms (warm process); "
          f"cold import + load {out['cold_import_and_load_s']:.2f} s")
    for k in [k for k in out if k.endswith("step") or "_step_on_" in k]:
        s = out[k]
        print(f"{k} (3 bands, next beat): p50 {s['p50_ms']:.2f} ms  p95 {s['p95_ms']:.2f} ms  "
              f"p99 {s['p99_ms']:.2f} ms  max {s['max_ms']:.2f} ms  (n={s['n']})")
    print(f"load average before {out['load_average_before']}, after {out['load_average_after']} "
          f"on {out['cpus']} CPUs")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
