"""How much the band plays in free mode, against metered and the default (follow).

For each recording (bench_band's set: the demo, instrument takes, SSVD songs, plus
vocadito_1), the same seed, three band settings: ``--free`` (never metered: a "beat" is
half a second), ``--tempo 120`` and the default (the beat tracker's tempo once it
locks, free mode before and whenever it is unlocked). Band notes per second per band,
from the player's first onset to the end of the recording, through the same replay of
``improv listen --fast`` as bench_band.py. Prints the machine's load average.

    PYTHONPATH=src python3 benchmarks/bench_free.py [--quick] [--seeds 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from improv.testing import load_benchmark

B = load_benchmark("bench_band")
from improv.events import BANDS, NoteOn, PLAYER

MODES = {"free": dict(free=True), "metered": dict(tempo=120.0), "default": {}}


def rates(rec: B.Recording, seed: int) -> dict:
    out = {"recording": rec.name, "seed": seed}
    for mode, kw in MODES.items():
        events, band = B.session(rec, [], seed, **kw)
        ons = [e for e in events if isinstance(e, NoteOn)]
        first = min((e.time for e in ons if e.source == PLAYER), default=None)
        if first is None:
            return out
        span = rec.duration - first
        out[mode] = {b: sum(1 for e in ons if e.source == b) / span for b in BANDS}
        out[mode]["player"] = sum(1 for e in ons if e.source == PLAYER) / span
        out[mode]["metered_share"] = _metered_share(band, first, rec.duration)
    return out


def _metered_share(band, start: float, end: float) -> float:
    """Share of [start, end] the band played metered (from its log of time maps)."""
    maps = [(e.time, e.metered) for e in band.log if e.event == "time map"]
    total = 0.0
    for i, (t, metered) in enumerate(maps):
        a = max(t, start)
        b = min(maps[i + 1][0] if i + 1 < len(maps) else end, end)
        total += max(0.0, b - a) * metered
    return total / max(end - start, 1e-9)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="bench_band's quick set (demo, 3 takes, 1 SSVD) + vocadito")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    recs = B.recordings(args.quick)
    voc = B.SHARED / "vocadito" / "vocadito_1.wav"
    if voc.exists():
        import soundfile

        recs.append(B.Recording("vocadito_1", voc, soundfile.info(str(voc)).duration))
    else:
        print(f"skipped vocadito_1: {voc} not found", file=sys.stderr)
    load_before = os.getloadavg()
    rows = [rates(r, s) for r in recs for s in range(args.seeds)]
    print(f"{'recording':22s} {'seed':>4s} {'player/s':>8s} | " + " | ".join(
        f"{m} bass mid high" for m in MODES) + " | default metered share")
    for r in rows:
        if "free" not in r:
            print(f"{r['recording']:22s} {r['seed']:4d} (no player notes)")
            continue
        print(f"{r['recording']:22s} {r['seed']:4d} {r['free']['player']:8.2f} | " + " | ".join(
            " ".join(f"{r[m][b]:.2f}" for b in BANDS) for m in MODES) + f" | {r['default']['metered_share']:.2f}")
    ok = [r for r in rows if "free" in r]
    for m in MODES:
        tot = [sum(r[m][b] for b in BANDS) for r in ok]
        print(f"{m:8s} all bands: median {np.median(tot):.2f} notes/s (min {min(tot):.2f}, max {max(tot):.2f})")
    ratio = [sum(r["free"][b] for b in BANDS) / sum(r["metered"][b] for b in BANDS) for r in ok]
    print(f"free / metered (120 BPM), all bands: median {np.median(ratio):.2f} (min {min(ratio):.2f}, "
          f"max {max(ratio):.2f}); load average before {load_before}, after {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "load_before": load_before, "load_after": os.getloadavg()}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
