"""Latency of the band model as the band uses it: load time and one incremental step.

One step = what a band does each beat: observe the player's notes that arrived, then
``propose`` the next beat of all three bands (bass, mid, high) and ``accept`` it. The
player's line is a fixed synthetic tune (seeded random walk, 85% of beats sounding).
Reports medians and percentiles, the notes each step proposed and the notes per second
the model sustains when it does nothing but step; prints the machine's load average,
since the machine is shared. ``benchmarks/compare.py`` runs ``measure`` as its
generation section.

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


CHORD_CYCLE = (0, 21, 5, 7)  # chord classes: C, Am, F, G


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


def bench_steps(model, beats: int, warmup: int, metered: bool = True) -> np.ndarray:
    """Milliseconds per step (after ``warmup`` steps)."""
    return run_steps(model, beats, warmup, metered)[0]


def run_steps(model, beats: int, warmup: int, metered: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Milliseconds per step and the band notes each step proposed (after ``warmup`` steps)."""
    import torch  # noqa: F401

    from improv.model import VoiceControl

    sess = model.session(metered=metered, seed=0)
    unit = 1.0 if metered else 0.5
    melody = [(p, s * unit, e * unit) for p, s, e in _melody(beats + warmup + 2)]
    controls = {"bass": VoiceControl(low=28, high=52), "mid": VoiceControl(low=48, high=67),
                "high": VoiceControl(low=62, high=84)}
    nxt, open_end = 0, None
    times, notes = [], []
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
        if beat % 4 == 0:  # a chord a bar (C Am F G), as the band hands it on (a model without the control ignores it)
            sess.set_chord(now, CHORD_CYCLE[(beat // 4) % len(CHORD_CYCLE)])
        prop = sess.propose(now, voices=("bass", "mid", "high"), controls=controls if beat == 0 else None)
        sess.accept(prop)
        times.append(time.perf_counter() - t0)
        notes.append(len(prop.notes))
    return np.array(times[warmup:]) * 1e3, np.array(notes[warmup:])


def stats(ms: np.ndarray) -> dict:
    return {"n": int(len(ms)), "p50_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()), "mean_ms": float(ms.mean())}


def step_figures(ms: np.ndarray, notes: np.ndarray, unit_s: float) -> dict:
    """``stats`` plus throughput: the notes the model proposed per step (all three bands,
    its own density at default controls) and the notes per second it can sustain when it
    does nothing but step (notes / compute time); ``realtime_share_p95``: p95 step time
    over the step's musical length (``unit_s``: a beat at 120 BPM, or 0.5 s unmetered)."""
    out = stats(ms)
    out["notes_per_step"] = float(notes.mean())
    out["notes_per_second_sustained"] = float(notes.sum() / (ms.sum() / 1e3)) if ms.sum() else None
    out["steps_per_second_sustained"] = float(1e3 / ms.mean())
    out["step_unit_s"] = unit_s
    out["realtime_share_p95"] = float(np.percentile(ms, 95) / (unit_s * 1e3))
    return out


def measure(model_path: str | None = None, threads: int = 2, beats: int = 400, warmup: int = 32,
            loads: int = 5, cold: bool = True) -> dict:
    """Everything ``main`` reports, as a dict (``benchmarks/compare.py`` calls this)."""
    import torch

    from improv.model import load_model

    torch.set_num_threads(threads)
    out: dict = {"threads": threads, "load_average_before": list(os.getloadavg()), "cpus": os.cpu_count()}
    loads_s = []
    for _ in range(max(1, loads)):
        t0 = time.perf_counter()
        model = load_model(model_path)
        loads_s.append(time.perf_counter() - t0)
    out["load_model_s"] = {"median": float(np.median(loads_s)), "max": float(np.max(loads_s))}
    out["cold_import_and_load_s"] = None
    if cold:
        # A cold start: a new interpreter importing improv.model (torch included) and loading.
        code = ("import time; t=time.perf_counter(); from improv.model import load_model; "
                f"load_model({model_path!r}); print(time.perf_counter()-t)")
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
        out["cold_import_and_load_s"] = float(run.stdout.strip()) if run.returncode == 0 else None
    out["model"] = str(model.path)
    out["parameters"] = sum(p.numel() for p in model.net.parameters())
    out["metered_step"] = step_figures(*run_steps(model, beats, warmup, metered=True), unit_s=0.5)
    out["unmetered_step"] = step_figures(*run_steps(model, max(1, beats // 2), warmup, metered=False), unit_s=0.5)
    out["load_average_after"] = list(os.getloadavg())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beats", type=int, default=400)
    ap.add_argument("--warmup", type=int, default=32)
    ap.add_argument("--loads", type=int, default=5, help="load_model repetitions")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    out = measure(args.model, args.threads, args.beats, args.warmup, args.loads)
    print(f"model {out['model']} ({out['parameters']:,} parameters), torch threads {args.threads}")
    print(f"load_model: median {out['load_model_s']['median'] * 1e3:.0f} ms (warm process); "
          f"cold import + load {out['cold_import_and_load_s'] or float('nan'):.2f} s")
    for k in ("metered_step", "unmetered_step"):
        s = out[k]
        print(f"{k} (3 bands, next beat): p50 {s['p50_ms']:.2f} ms  p95 {s['p95_ms']:.2f} ms  "
              f"p99 {s['p99_ms']:.2f} ms  max {s['max_ms']:.2f} ms  (n={s['n']}); "
              f"{s['notes_per_step']:.2f} notes/step, sustains {s['notes_per_second_sustained']:.0f} notes/s")
    print(f"load average before {out['load_average_before']}, after {out['load_average_after']} "
          f"on {out['cpus']} CPUs")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
