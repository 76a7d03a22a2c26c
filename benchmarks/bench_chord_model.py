"""Does the band model use the chord it is given? (issue 13, the chord control)

On the **validation** split (``--split test`` for final figures) of the corpora with chords
(POP909's annotations; Nottingham's chord track and the chorales analysed into triads), for
each model file given:

* NLL per token (all four voices, every frame, controls unknown, sliding windows as in
  ``improv eval-model``), per corpus: with every chord unknown, and (models with the
  control) with the corpus's chords;
* the chord-tone mass of the band voices: at every frame where a band voice starts a note
  under a known chord, the model's probability that the note is a tone of that chord
  (over its pitch probabilities), teacher-forced; "unknown" for the same frames with the
  chord withheld.

    PYTHONPATH=src python3 benchmarks/bench_chord_model.py models/band.pt models/band-chords.pt [--pieces 40]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

SOURCES = ("pop909", "nottingham", "chorales", "wjd")


@torch.inference_mode()
def chord_tone_mass(net, tokens: np.ndarray, barpos: np.ndarray, chords: np.ndarray, give: bool) -> tuple[float, int]:
    """Sum over band onsets under a known chord of P(pitch is a chord tone | pitch), and their count."""
    from improv.model.encoding import CHORD_UNKNOWN, N_VOICES, PITCH_LO, UNKNOWN, VOCAB
    from improv.model.net import input_indices

    L = net.cfg.context
    total, count = 0.0, 0
    pcs = (np.arange(VOCAB - 2) + PITCH_LO) % 12
    for s in range(0, max(1, len(tokens) - 1), L):
        e = min(len(tokens), s + L + 1)
        if e - s < 2:
            break
        t = torch.from_numpy(tokens[s:e].astype(np.int64))[None]
        pos = torch.from_numpy(barpos[s:e].astype(np.int64))[None]
        ctrl = torch.full((1, e - s - 1, N_VOICES, 3), UNKNOWN, dtype=torch.long)
        ch = None
        if net.cfg.chords:
            c = chords[s + 1:e].astype(np.int64) if give else np.full(e - s - 1, CHORD_UNKNOWN)
            ch = torch.from_numpy(c)[None]
        logits = net(input_indices(t[:, :-1], pos[:, :-1], ctrl, ch), t[:, 1:])[0]  # [T, 4, VOCAB]
        p = F.softmax(logits[..., 2:], -1).numpy()                                   # pitches only
        nxt, k = tokens[s + 1:e], chords[s + 1:e].astype(np.int64)
        for v in range(3):
            on = (nxt[:, v] >= 2) & (k < CHORD_UNKNOWN)
            for f in np.flatnonzero(on):
                root, third = k[f] % 12, 3 if k[f] >= 12 else 4
                tones = np.isin((pcs - root) % 12, (0, third, 7))
                total += float(p[f, v][tones].sum() / p[f, v].sum())
                count += 1
    return total, count


def main(argv=None) -> int:
    from improv.model.data import load_rendering_cached
    from improv.model.evaluate import model_logprobs
    from improv.model.store import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--pieces", type=int, default=40, help="renderings per corpus (default 40)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    r = load_rendering_cached(list(SOURCES))
    if r is None:
        print("parse the corpora first: improv train --sources " + ",".join(SOURCES) + " --steps 1 ...")
        return 2
    out = {}
    t0 = time.monotonic()
    for path in args.models:
        model = load_model(path)
        net = model.net
        res = {}
        settings = [("unknown", False)] + ([("given", True)] if net.cfg.chords else [])
        for source in SOURCES:
            sub = r.where(split=args.split, source=source)
            ks = list(range(len(sub.start)))[:args.pieces]
            for name, give in settings:
                nll = n = 0.0
                mass = cnt = 0.0
                for k in ks:
                    toks, pos = sub.frames(k)
                    ch = sub.frame_chords(k)
                    lp = model_logprobs(net, toks, pos, chords=ch if give else None)
                    nll, n = nll - lp.sum(), n + lp.size
                    m, c = chord_tone_mass(net, toks, pos, ch, give)
                    mass, cnt = mass + m, cnt + c
                res[f"{source}/{name}"] = {"nll_per_token": nll / max(n, 1), "tokens": int(n),
                                           "band_chord_tone_mass": mass / max(cnt, 1), "band_onsets": int(cnt)}
                print(f"{Path(path).name:18s} {source:10s} chords {name:7s}: NLL/token {nll / max(n, 1):.4f}  "
                      f"band chord-tone mass {mass / max(cnt, 1):.3f} ({int(cnt)} onsets)", flush=True)
        out[str(path)] = res
    out["split"] = args.split
    out["wall_seconds"] = round(time.monotonic() - t0, 1)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
