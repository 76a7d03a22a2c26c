"""Tempo and beat tracking benchmark: rendered melodies with jitter, scored with mir_eval.

    PYTHONPATH=src python3 benchmarks/bench_tempo.py --set nottingham --split test --n 120
    PYTHONPATH=src python3 benchmarks/bench_tempo.py --set pop909 --n 60 --audio 20

For each piece the tracker is fed the onsets causally (MIDI onsets at their own time;
with ``--audio`` also the NoteOns of improv's Listener over a FluidSynth rendering, at
the time the Listener decides them). Time advances in 5 ms steps; a beat counts as
played when, ``--lookahead`` seconds before it, the tracker is locked and predicts
it (what a band scheduling its notes ahead would play). Scored over the truth beats
after the first 4 beats from the player's first note:

* tempo error at beat 4 (and the share of pieces within 4 %), and the share of later
  beats at which the locked tempo is within 4 %;
* beat F-measure (mir_eval.beat.f_measure, 70 ms window).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import mir_eval
import numpy as np


from improv.testing.tempo_data import NOTTINGHAM, POP909, Piece, nottingham_piece, pop909_piece, render_wav  # noqa: E402

from improv.timing.tracker import BeatTracker, TrackerSettings  # noqa: E402

STEP = 0.005


def simulate(arrivals: list[tuple[float, float, int]], end: float, settings: TrackerSettings | None = None,
             meter: str | None = None, lookahead: float = 0.05) -> dict:
    """Run the tracker over (arrival time, onset time, velocity) and collect what it plays."""
    tr = BeatTracker(settings, meter=meter)
    arrivals = sorted(arrivals)
    i = 0
    played: list[float] = []
    last_beat_no: int | None = None
    tempo_log: list[tuple[float, float | None, bool]] = []
    cost = []
    now = 0.0
    while now < end:
        while i < len(arrivals) and arrivals[i][0] <= now:
            t0 = time.perf_counter()
            tr.add_onset(arrivals[i][1], now=arrivals[i][0], velocity=arrivals[i][2])
            cost.append(time.perf_counter() - t0)
            i += 1
        st = tr.state(now)
        tempo_log.append((now, st.bpm if st.locked else None, st.locked))
        if st.locked:
            b = tr.beat_at(now + lookahead)
            k = int(np.floor(b + 1e-9))
            if last_beat_no is None or k > last_beat_no:
                t_k = tr.time_of(k)
                if not played or t_k - played[-1] > 0.5 * tr.period:
                    played.append(t_k)
                last_beat_no = k
        else:
            last_beat_no = None
        now += STEP
    return {"beats": np.array(played), "tempo_log": tempo_log, "cost": cost}


def score(piece: Piece, sim: dict) -> dict:
    ref_all = piece.beats[piece.beats >= piece.onsets.min() - 0.07]
    ref = ref_all[4:]
    est = sim["beats"]
    est = est[(est >= ref[0] - 0.07) & (est <= ref[-1] + 0.07)]
    f = float(mir_eval.beat.f_measure(ref, est, f_measure_threshold=0.07)) if len(est) else 0.0
    f_any = max([f] + [float(mir_eval.beat.f_measure(r, est, f_measure_threshold=0.07)) if len(est) else 0.0
                       for r in _other_levels(ref)])
    log = sim["tempo_log"]
    times = np.array([x[0] for x in log])

    def tempo_at(t):
        j = min(int(np.searchsorted(times, t)), len(log) - 1)
        return log[j][1]

    true_bpm = 60.0 / np.median(np.diff(piece.beats))
    at4 = tempo_at(ref[0])
    err4 = None if at4 is None else abs(at4 / true_bpm - 1.0)
    ok_beats = 0
    octave_ok = 0
    for b in ref:
        bpm = tempo_at(b)
        if bpm is not None and abs(bpm / true_bpm - 1) <= 0.04:
            ok_beats += 1
        if bpm is not None and min(abs(bpm * r / true_bpm - 1) for r in (0.5, 1, 2, 2 / 3, 1.5, 1 / 3, 3)) <= 0.04:
            octave_ok += 1
    return {"name": piece.name, "meter": piece.meter, "bpm": round(true_bpm, 2), "f": round(f, 4),
            "f_any_level": round(f_any, 4),
            "tempo_at_4": None if at4 is None else round(at4, 2),
            "err_at_4": None if err4 is None else round(err4, 4),
            "tempo_ok_share": round(ok_beats / len(ref), 4), "tempo_ok_any_level_share": round(octave_ok / len(ref), 4),
            "locked_at_4": at4 is not None}


def _other_levels(ref: np.ndarray) -> list[np.ndarray]:
    """The reference beats at double and triple rate, and at half rate (both phases):
    for the 'any metrical level' F-measure, which forgives choosing another level."""
    out = []
    for k in (2, 3):
        fine = np.concatenate([ref[:-1, None] + np.diff(ref)[:, None] * np.arange(k)[None, :] / k]).ravel()
        out.append(np.append(fine, ref[-1]))
    out += [ref[0::2], ref[1::2]]
    return out


def listener_arrivals(piece: Piece, tracker: str = "yin") -> list[tuple[float, float, int]]:
    """Render the piece, run improv's Listener over it block by block, return its NoteOns."""
    from improv.audio import FileSource
    from improv.events import NoteOn
    from improv.listen.pipeline import Listener

    with tempfile.TemporaryDirectory() as tmp:
        wav = render_wav(piece, Path(tmp) / "p.wav")
        src = FileSource(wav, blocksize=256, fast=True)
        lis = Listener(tracker, src.sample_rate)
        out = []
        for block in src.blocks():
            for ev in lis.process(block):
                if isinstance(ev, NoteOn):
                    out.append((ev.time, ev.onset, ev.velocity))
    return out


def summarize(rows: list[dict]) -> dict:
    f = np.array([r["f"] for r in rows])
    errs = [r["err_at_4"] for r in rows]
    within = np.array([e is not None and e <= 0.04 for e in errs])
    return {"pieces": len(rows), "f_mean": round(float(f.mean()), 4), "f_median": round(float(np.median(f)), 4),
            "f_p10": round(float(np.percentile(f, 10)), 4), "share_f_ge_0.80": round(float((f >= 0.8).mean()), 4),
            "f_any_level_mean": round(float(np.mean([r["f_any_level"] for r in rows])), 4),
            "tempo_within_4pct_at_beat4": round(float(within.mean()), 4),
            "locked_at_beat4": round(float(np.mean([r["locked_at_4"] for r in rows])), 4),
            "tempo_ok_share_mean": round(float(np.mean([r["tempo_ok_share"] for r in rows])), 4),
            "tempo_ok_any_level_mean": round(float(np.mean([r["tempo_ok_any_level_share"] for r in rows])), 4),
            "median_abs_err_at_4": round(float(np.median([e for e in errs if e is not None])), 4)
            if any(e is not None for e in errs) else None}


def load_pieces(which: str, split: str, n: int, seed: int, jitter: float) -> list[Piece]:
    rng = np.random.default_rng(seed)
    pieces: list[Piece] = []
    if which == "nottingham":
        if not NOTTINGHAM.exists():
            sys.exit(f"no Nottingham data at {NOTTINGHAM}")
        files = sorted(NOTTINGHAM.glob("*.mid"))
        files = files[0::2] if split == "dev" else files[1::2]
        order = np.random.default_rng(seed + 1).permutation(len(files))
        for idx in order:
            bpm = float(rng.uniform(60, 180))
            p = nottingham_piece(files[idx], bpm, rng, jitter)
            if p is not None:
                pieces.append(p)
            if len(pieces) >= n:
                break
    else:
        if not POP909.exists():
            sys.exit(f"no POP909 data at {POP909}")
        folders = sorted(d for d in POP909.iterdir() if d.is_dir())
        folders = folders[0::2] if split == "dev" else folders[1::2]
        order = np.random.default_rng(seed + 1).permutation(len(folders))
        for idx in order:
            p = pop909_piece(folders[idx], rng, jitter)
            if p is not None:
                pieces.append(p)
            if len(pieces) >= n:
                break
    return pieces


def loose_playing(trials: int = 30, seconds: float = 30.0, seed: int = 5) -> dict:
    """Onsets with no pulse (exponential gaps, mean 0.4 s): the share of time the tracker
    wrongly believes it is locked (the band should stay in free mode)."""
    rng = np.random.default_rng(seed)
    shares = []
    for _ in range(trials):
        t, on = 0.5, []
        while t < seconds:
            on.append(t)
            t += 0.06 + float(rng.exponential(0.34))
        sim = simulate([(o, o, 80) for o in on], seconds)
        shares.append(np.mean([locked for _, _, locked in sim["tempo_log"]]))
    return {"trials": trials, "locked_share_mean": round(float(np.mean(shares)), 4),
            "locked_share_max": round(float(np.max(shares)), 4)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", choices=["nottingham", "pop909"], default="nottingham")
    ap.add_argument("--split", choices=["dev", "test"], default="test")
    ap.add_argument("--n", type=int, default=100, help="pieces")
    ap.add_argument("--audio", type=int, default=0, help="also run the first N pieces through the Listener")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jitter", type=float, default=0.02, help="uniform onset jitter, +-s (default 0.02)")
    ap.add_argument("--lookahead", type=float, default=0.05)
    ap.add_argument("--meter", action="store_true", help="tell the tracker the piece's meter")
    ap.add_argument("--json", help="write rows and summary here")
    ap.add_argument("--per-piece", action="store_true")
    args = ap.parse_args(argv)

    pieces = load_pieces(args.set, args.split, args.n, args.seed, args.jitter)
    out = {"set": args.set, "split": args.split, "jitter": args.jitter, "lookahead": args.lookahead}
    for path in (["midi"] + (["audio"] if args.audio else [])):
        rows, costs = [], []
        for k, p in enumerate(pieces if path == "midi" else pieces[:args.audio]):
            if path == "midi":
                arr = [(float(o), float(o), int(v)) for o, v in zip(p.onsets, p.velocities)]
            else:
                arr = listener_arrivals(p)
            sim = simulate(arr, float(p.beats[-1]) + 0.2, meter=p.meter if args.meter else None,
                           lookahead=args.lookahead)
            costs += sim["cost"]
            r = score(p, sim)
            rows.append(r)
            if args.per_piece:
                print(path, r, flush=True)
        summ = summarize(rows)
        c = np.array(costs) * 1000
        summ["update_ms_median"] = round(float(np.median(c)), 2)
        summ["update_ms_p99"] = round(float(np.percentile(c, 99)), 2)
        out[path] = {"summary": summ, "rows": rows}
        print(path, json.dumps(summ), flush=True)
    out["loose"] = loose_playing()
    print("loose", json.dumps(out["loose"]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
