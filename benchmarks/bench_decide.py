#!/usr/bin/env python3
"""As-sent F1 and latency of each ``--decide`` preset on the same recordings, in one table.

    PYTHONPATH=src python3 benchmarks/bench_decide.py --set sung=../shared/data/ssvd-train/10*.flac \\
        --set instruments=~/.cache/improv/instruments/*.wav --decide early,balanced,settled --jobs 2

Each ``--set NAME=GLOB[,GLOB...]`` is a row group; every preset runs every file through the
live pipeline (``improv.bench.run_file``). Columns: as sent (every NoteOn at the time it was
sent; key, key + bend; latency from the true onset to the NoteOn sent) and the transcript F1.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
from concurrent.futures import ProcessPoolExecutor

from dataclasses import replace

import numpy as np

from improv.bench import score_notes, run_file, summarise
from improv.truth import find_truth
from improv.listen.segmenter import DECIDE_PRESETS, decide_settings


def _job(item):
    path, decide = item
    r = run_file(path, "yin", 256, decide_settings(decide))
    r.est_notes = []
    return r


def _peer_job(item):
    """A peer's notes scored as a transcript and, for a causal peer, as sent (each note at
    the time it was decided, with its key)."""
    path, name = item
    from improv.testing.peers import make_peer

    peer = make_peer(name)
    tr = peer.transcribe(path)
    truth = find_truth(path)
    out = {"transcript": score_notes(truth, tr.notes)["notes"], "cpu": tr.cpu_seconds, "duration": tr.duration}
    if peer.causal:
        sent = [replace(n, onset=n.decided, pitch=float(round(n.pitch))) for n in tr.notes if n.decided is not None]
        sc = score_notes(truth, sent)
        out["sent"] = sc["notes"]
        out["lat"] = sc["latencies_ms"]
    return out


def _pct(lat: list[float]) -> str:
    return f"{np.percentile(lat, 50):.0f} / {np.percentile(lat, 95):.0f}" if lat else "-"


def _peers(name: str, files: list[str], peers: list[str], jobs: int) -> None:
    from improv.bench import Counts

    for peer in peers:
        items = [(f, peer) for f in files]
        if jobs > 1:
            with ProcessPoolExecutor(jobs) as ex:
                res = list(ex.map(_peer_job, items))
        else:
            res = [_peer_job(i) for i in items]
        tr, sent, lat = Counts(), Counts(), []
        for r in res:
            tr.add(r["transcript"])
            if "sent" in r:
                sent.add(r["sent"])
                lat += r["lat"]
        rtf = sum(r["cpu"] for r in res) / sum(r["duration"] for r in res)
        if sent.ref:
            print(f"| {name} | {peer} | {len(files)} | {tr.ref} | **{sent.f1:.3f}** | "
                  f"{np.mean([r['sent'].f1 for r in res]):.3f} | {sent.precision:.3f} / {sent.recall:.3f} | - | "
                  f"{_pct(lat)} | - | {tr.f1:.3f} | {rtf:.3f} |")
        else:
            print(f"| {name} | {peer} (offline) | {len(files)} | {tr.ref} | - | - | - | - | offline | - | "
                  f"{tr.f1:.3f} | {rtf:.3f} |", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", action="append", required=True, metavar="NAME=GLOB[,GLOB]")
    p.add_argument("--decide", default=",".join(DECIDE_PRESETS))
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--peers", default="", help="also these peers (improv.testing.peers: aubio-notes, "
                   "basic-pitch, pyin-offline); a causal one is scored as sent too")
    args = p.parse_args(argv)
    sets = {}
    for spec in args.set:
        name, _, globs = spec.partition("=")
        files = sorted(f for g in globs.split(",") for f in glob.glob(os.path.expanduser(g)))
        if not files:
            p.error(f"--set {spec}: no files")
        sets[name] = files
    presets = [d for d in args.decide.split(",") if d]
    rows = []
    print("| set | decide | files | notes | as-sent key F1 | file mean | key P / R | key+bend F1 "
          "| latency p50 / p95 ms | retakes | transcript F1 | CPU RTF |")
    print("|---|---|---:|---:|---:|---:|---|---:|---|---:|---:|---:|")
    for name, files in sets.items():
        for decide in presets:
            items = [(f, decide) for f in files]
            if args.jobs > 1:
                with ProcessPoolExecutor(args.jobs) as ex:
                    results = list(ex.map(_job, items))
            else:
                results = [_job(i) for i in items]
            s = summarise("yin", results)
            rows.append({"set": name, "decide": decide, **s.row(),
                         "files_f1": {r.path: r.sent_keys.f1 for r in results}})
            print(f"| {name} | {decide} | {s.files} | {s.notes.ref} | **{s.sent_keys.f1:.3f}** | "
                  f"{s.sent_key_f1_mean:.3f} | {s.sent_keys.precision:.3f} / {s.sent_keys.recall:.3f} | "
                  f"{s.sent_bends.f1:.3f} | {s.sent_latency_p50:.0f} / {s.sent_latency_p95:.0f} | {s.retakes} | "
                  f"{s.notes.f1:.3f} | {s.rtf:.3f} |", flush=True)
        _peers(name, files, [q for q in args.peers.split(",") if q], args.jobs)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
