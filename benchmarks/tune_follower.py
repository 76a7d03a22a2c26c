"""Choose the chord follower's settings on POP909 **validation** songs (never the test
split): the melody's notes fed to the follower alone (no band), its chord for each
125 ms frame decided 110 ms ahead, scored with mir_eval majmin against the annotations.

    PYTHONPATH=src python3 benchmarks/tune_follower.py [--songs 20]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def follow(mel, seconds, grid, learned=False, **kw):
    from improv.harmony.follower import ChordFollower
    from improv.harmony.learned import Recogniser

    rec = Recogniser() if learned else None
    f = ChordFollower(recogniser=rec, **{k: v for k, v in kw.items()
                                         if k not in ("carry", "emission", "hold_evidence", "key_margin", "hold", "learned_weight")})
    for k in ("carry", "emission", "hold_evidence", "key_margin", "hold", "learned_weight"):
        if k in kw:
            setattr(f, k, kw[k])
    evs = sorted([(s, 1, p) for s, e, p in mel] + [(e, 0, p) for s, e, p in mel])
    out, i = [], 0
    for k in range(int(seconds / 0.125)):
        now = k * 0.125
        while i < len(evs) and evs[i][0] <= now:
            t, kind, p = evs[i]
            f.hear_on(p, t) if kind else f.hear_off(t)
            i += 1
        if not f.notes:
            continue
        st = f.state(now + 0.11, now, grid)
        out.append((now + 0.11, now + 0.235, st.chord))
    return out


def main() -> int:
    from improv.testing import load_benchmark

    bh = load_benchmark("bench_harmony")

    from improv.harmony.follower import SecondsGrid
    from improv.harmony.table import read_pop909_song
    from improv.model.data import default_shared_data

    ap = argparse.ArgumentParser()
    ap.add_argument("--songs", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--learned", action="store_true", help="the learned recogniser (models/chords.pt) as evidence")
    args = ap.parse_args()
    data = []
    for folder in bh.songs("val", args.songs, default_shared_data()):
        mel, off = bh.melody(folder, args.seconds)
        ch, _, _ = read_pop909_song(folder)
        ch = [(s - off, e - off, c) for s, e, c in ch if e > off and s < args.seconds + off]
        data.append((mel, ch))
    if args.learned:
        grid_opts = {"step": [1.0, 1.5], "margin": [0.0, 0.4], "learned_weight": [0.3, 0.5, 0.7, 1.0], "learned": [True]}
    else:
        grid_opts = {"step": [1.5], "hold": [0.2, 0.35, 0.5, 0.65], "sharpness": [4.0, 6.0, 9.0]}
    results = []
    for values in itertools.product(*grid_opts.values()):
        kw = dict(zip(grid_opts, values))
        step = kw.pop("step")
        scores = [bh.mir_scores(ch, follow(mel, args.seconds, SecondsGrid(step), **kw), args.seconds)["majmin"]
                  for mel, ch in data]
        results.append((float(np.mean(scores)), step, kw))
        print(f"{np.mean(scores):.3f} step {step} {kw}", flush=True)
    best = max(results, key=lambda r: r[0])
    print("best", best)
    return 0


if __name__ == "__main__":
    sys.exit(main())
