"""The band learns from your sessions (issue 18): the shipped model against one fine-tuned
on a player's own sessions, on held-out sessions of the same player.

The player (:mod:`improv.testing.sessions`): the A blues scale in swung eighths, coming
back to four motifs of their own, a bar or two of rest between phrases, at 110 BPM, over a
band playing a 12-bar blues. Session folders are written directly in the recorder's
format (``session.mid``: the player on channel 1, the band on 2-4, the band's bars as the
tempo map) — not rendered to audio and heard: the figures are about what the model
learns, and the hearing has its own benchmarks. Training: ``--train`` sessions of
``--bars`` bars (every other one marked with ``improv keep``); held out: ``--held-out``
sessions drawn with other seeds.

The fine-tune is the command a user runs (``improv train --sessions DIR``, timed). Then,
on the held-out sessions, for the shipped and the fine-tuned model:

* NLL of the player's line: nats per player note, every frame of both renderings (beats
  and seconds), controls unknown (``improv.model.finetune.session_nll``);
* take-over: the player's notes go to the band (``mid: take over``, bass and high
  accompanying; the band on audio time as ``improv listen --fast`` runs it, fixed tempo
  110); the mid band's notes in the player's silences of 1.5 beats or more are its
  take-over phrases. Against the player's notes of the same session:
  pitch-class similarity (histogram intersection of the pitch-class distributions, and
  the correlation of the profiles as ``bench_band`` takes it) and rhythm similarity
  (histogram intersection of the onsets' positions in the beat, in sixteenths — the
  player's swung off-beat falls on the fourth — and of the inter-onset intervals, in
  sixteenths up to 8);
* in-key rate: every band note (take-over and accompaniment) whose pitch class is in the
  session's key (Krumhansl-Schmuckler over the player's notes; the scale of
  ``improv.model.evaluate.in_scale``); the player's own rate is given for reference;
* range adherence: band notes inside their band's range.

    PYTHONPATH=src python3 benchmarks/bench_finetune.py [--json out.json] [--steps 400]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from improv.band import Band, BandSettings, parse_command  # noqa: E402
from improv.band import measure as M  # noqa: E402
from improv.band.generators import ModelGenerator  # noqa: E402
from improv.band.offline import Heard, play  # noqa: E402
from improv.events import BANDS, PLAYER, notes_from_events  # noqa: E402
from improv.model import load_model  # noqa: E402
from improv.model.evaluate import estimate_key, in_scale  # noqa: E402
from improv.model.finetune import session_nll  # noqa: E402
from improv.model.sessions import keep, load_material  # noqa: E402
from improv.output import RANGES  # noqa: E402
from improv.testing.sessions import BluesPlayer, blues_events, write_sessions  # noqa: E402

BLOCK = 256 / 48000


def heard_of(events, duration: float) -> Heard:
    """The player's events as the listener would hand them out, block by block."""
    ends = np.arange(BLOCK, duration + 1.0, BLOCK)
    groups: list[list] = [[] for _ in ends]
    for ev in events:
        groups[min(len(ends) - 1, int(np.searchsorted(ends, ev.time)))].append(ev)
    return Heard(tuple(float(e) for e in ends), tuple(tuple(g) for g in groups), (), float(ends[-1]))


def hist_intersection(a: np.ndarray, b: np.ndarray) -> float:
    if a.sum() == 0 or b.sum() == 0:
        return math.nan
    return float(np.minimum(a / a.sum(), b / b.sum()).sum())


def rhythm_hists(notes, beat: float, t0: float) -> tuple[np.ndarray, np.ndarray]:
    """Onset positions in the beat (4 sixteenths) and inter-onset intervals (1..8 sixteenths)."""
    on = np.array(sorted(n.onset for n in notes))
    six = np.round((on - t0) / (beat / 4)).astype(int)
    pos = np.bincount(six % 4, minlength=4).astype(float)
    ioi = np.diff(six)
    ioi = ioi[(ioi >= 1) & (ioi <= 8)]
    return pos, np.bincount(ioi - 1, minlength=8).astype(float)


def takeover_run(model, events, duration: float, seed: int, tempo: float) -> dict:
    player = [e for e in events if e.source == PLAYER]
    band = Band(BandSettings(bands=BANDS, seed=seed, tempo=tempo), generator=ModelGenerator(model, seed))
    out = play(band, heard_of(player, duration), [parse_command("mid: take over", 0.0)])
    pnotes = notes_from_events(player, PLAYER, until=duration)
    beat = 60.0 / tempo
    t0 = min(n.onset for n in pnotes)  # the band's beat 0: the player's first onset (--tempo)
    takeover = []
    for g0, g1 in M.gaps(pnotes, 0.3):
        if g1 - g0 >= 1.5 * beat:
            takeover += M.between(notes_from_events(out, "mid", until=duration), g0, g1)
    band_notes = {b: notes_from_events(out, b, until=duration) for b in BANDS}
    key_rows = np.array([(3, round(n.pitch), n.onset, n.offset) for n in pnotes], dtype=float)
    key = estimate_key(key_rows)
    allband = [n for v in band_notes.values() for n in v]

    def inkey(ns) -> float:
        return float(in_scale(np.array([round(n.pitch) for n in ns]), key).mean()) if ns else math.nan

    inrange = [RANGES[b][0] <= round(n.pitch) <= RANGES[b][1] for b, v in band_notes.items() for n in v]
    ppos, pioi = rhythm_hists(pnotes, beat, t0)
    tpos, tioi = rhythm_hists(takeover, beat, t0) if len(takeover) > 1 else (np.zeros(4), np.zeros(8))
    return {
        "takeover_notes": len(takeover), "band_notes": len(allband),
        "pc_similarity": hist_intersection(M.pc_profile(takeover), M.pc_profile(pnotes)) if takeover else math.nan,
        "pc_correlation": M.correlation(M.pc_profile(takeover), M.pc_profile(pnotes)) if len(takeover) >= 3
        else math.nan,
        "rhythm_position_similarity": hist_intersection(tpos, ppos),
        "rhythm_ioi_similarity": hist_intersection(tioi, pioi),
        "in_key_band": inkey(allband), "in_key_takeover": inkey(takeover), "in_key_player": inkey(pnotes),
        "range_adherence": float(np.mean(inrange)) if inrange else math.nan,
        "offbeat_on_fourth_sixteenth": float(tpos[3] / max(1.0, tpos[1:].sum())),
    }


def stat(values) -> dict:
    v = np.array([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if not len(v):
        return {"n": 0}
    return {"n": int(len(v)), "median": float(np.median(v)), "mean": float(v.mean()),
            "p10": float(np.percentile(v, 10)), "p90": float(np.percentile(v, 90))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, default=24, help="training sessions (default 24)")
    ap.add_argument("--held-out", type=int, default=6, help="held-out sessions (default 6)")
    ap.add_argument("--bars", type=int, default=48, help="bars per session (default 48: 1.75 min at 110 BPM)")
    ap.add_argument("--steps", type=int, default=None, help="fine-tuning steps (default: the command's)")
    ap.add_argument("--seeds", type=int, default=2, help="band seeds per held-out session (default 2)")
    ap.add_argument("--work", default=None, help="folder for the sessions and the model (default: a temp dir)")
    ap.add_argument("--reuse", action="store_true", help="score the sessions and you.pt already in --work "
                                                         "(no new fine-tune)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="improv-finetune-"))
    player = BluesPlayer()
    train_dir, held_dir = work / "sessions", work / "held-out"
    out = work / "you.pt"
    wall = math.nan
    if not args.reuse:
        takes = write_sessions(train_dir, args.train, args.bars, seed=1, player=player)
        for t in takes[::2]:
            keep(t)
        write_sessions(held_dir, args.held_out, args.bars, seed=2, player=player, prefix="held")
        cmd = [sys.executable, "-m", "improv", "train", "--sessions", str(train_dir), "--model", str(out),
               "--checkpoints", str(work / "ckpt"), "--fresh"]
        if args.steps:
            cmd += ["--steps", str(args.steps)]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        print(proc.stdout[-600:], file=sys.stderr)
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
            return 1
    shipped, tuned = load_model(), load_model(out)
    report: dict = {"train_sessions": args.train, "held_out": args.held_out, "bars": args.bars,
                    "finetune_wall_s": wall, "finetune": tuned.meta.get("finetune"),
                    "steps": tuned.meta.get("steps"), "train_seconds": tuned.meta.get("train_seconds"),
                    "material": tuned.meta.get("sessions")}
    held = load_material(held_dir, val_share=0.0, min_minutes=0, min_notes=0)
    for name, model in (("shipped", shipped), ("fine-tuned", tuned)):
        report.setdefault("nll_player_held_out", {})[name] = session_nll(model.net, held.train)
    duration = args.bars * 4 * 60.0 / player.tempo + 1.0
    runs: dict[str, list] = {"shipped": [], "fine-tuned": []}
    for k in range(args.held_out):
        events, _ = blues_events(player, args.bars, 2000 + k)
        for seed in range(args.seeds):
            for name, model in (("shipped", shipped), ("fine-tuned", tuned)):
                t1 = time.perf_counter()
                runs[name].append(takeover_run(model, events, duration, seed, player.tempo))
                print(f"held-{k:03d} seed {seed} {name}: {time.perf_counter() - t1:.0f} s", file=sys.stderr)
    keys = [k for k in runs["shipped"][0]]
    report["takeover"] = {name: {k: stat(r[k] for r in rows) for k in keys} for name, rows in runs.items()}
    report["runs"] = runs
    text = json.dumps(report, indent=2, default=float)
    if args.json:
        Path(args.json).write_text(text)
    s, f = report["takeover"]["shipped"], report["takeover"]["fine-tuned"]
    nll = report["nll_player_held_out"]
    print(f"fine-tune: {wall / 60:.1f} min wall ({report['steps']} steps)")
    print(f"NLL of the player's line (nats/note): shipped {nll['shipped']['per_note']:.3f}, "
          f"fine-tuned {nll['fine-tuned']['per_note']:.3f}")
    for k in ("pc_similarity", "pc_correlation", "rhythm_position_similarity", "rhythm_ioi_similarity",
              "in_key_band", "in_key_takeover", "in_key_player", "range_adherence", "takeover_notes",
              "offbeat_on_fourth_sixteenth"):
        print(f"{k:30s} shipped {s[k].get('median', math.nan):.3f}  fine-tuned {f[k].get('median', math.nan):.3f}"
              f"   (mean {s[k].get('mean', math.nan):.3f} / {f[k].get('mean', math.nan):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
