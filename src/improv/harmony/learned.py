"""A learned, causal chord recogniser: what chord is the player's melody in, now and a
little ahead, from what has been heard so far.

A small GRU reads the melody on a 125 ms grid — per frame the share of the frame each
pitch class sounds, whether a note starts, how much is silent — and after every frame
gives a posterior over the 24 major and minor triads (and "no chord") for the next frame,
the next half second and the next second (``HORIZONS``). It was trained on POP909's
melodies and chord annotations (training split only), transposed to all keys and played
at 0.8-1.25x their tempo, so it knows neither the key nor the tempo in advance: it hears
them, as the template follower does, but from 800 songs of how melodies sit on chords
rather than from triad templates (on validation songs: ``benchmarks/tune_follower.py``).

It runs online one frame at a time (:class:`Recogniser`: a GRU cell step, ~0.1 ms) and
offline over a whole melody (:func:`posteriors`), and the two give the same numbers
(tested). Train with ``python3 -m improv.harmony.learned`` (reads
``../shared/data/symbolic/pop909``; a few minutes on one core) -> ``models/chords.pt``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

FRAME = 0.125                 # seconds per frame
HORIZONS = (1, 4, 8)          # frames ahead of the last frame heard: 0.125, 0.5 and 1 s
N_FEATURES = 14               # 12 pitch classes, onset, silence
N_CLASSES = 25                # 24 triads (root r major: r, minor: 12 + r) and no chord (24)
NO_CHORD = 24
MODEL_PATH = Path(__file__).resolve().parents[3] / "models" / "chords.pt"


def frame_features(notes, n_frames: int, t0: float = 0.0, shift: int = 0) -> np.ndarray:
    """``[n_frames, 14]`` features of monophonic notes ``(start s, end s, pitch)`` on the grid
    from ``t0``; ``shift`` transposes (semitones). A note with end None sounds to the end."""
    x = np.zeros((n_frames, N_FEATURES), dtype=np.float32)
    horizon = t0 + n_frames * FRAME
    for s, e, p in notes:
        e = horizon if e is None else min(e, horizon)
        if e <= t0 or s >= horizon:
            continue
        pc = (int(p) + shift) % 12
        a = (max(s, t0) - t0) / FRAME
        b = (e - t0) / FRAME
        i, j = int(a), min(int(math.ceil(b)), n_frames)
        for k in range(i, j):
            x[k, pc] += min(b, k + 1) - max(a, k)
        if s >= t0:
            x[int(a), 12] = 1.0
    np.clip(x[:, :12], 0.0, 1.0, out=x[:, :12])
    x[:, 13] = 1.0 - np.minimum(1.0, x[:, :12].sum(axis=1))
    return x


def triad_class(c, shift: int = 0) -> int:
    """The class of a :class:`~improv.harmony.chords.Chord` (None: no chord): its root and
    whether its third is minor (the reduction mir_eval's majmin scores)."""
    if c is None:
        return NO_CHORD
    return (c.root + shift) % 12 + (12 if c.minor else 0)


def chord_targets(chords, n_frames: int, t0: float = 0.0, shift: int = 0) -> np.ndarray:
    """``[n_frames]`` class in force at the middle of each frame (``chords``: (start, end, Chord|None))."""
    y = np.full(n_frames, NO_CHORD, dtype=np.int64)
    mids = t0 + (np.arange(n_frames) + 0.5) * FRAME
    for s, e, c in chords:
        k = triad_class(c, shift)
        y[(mids >= s) & (mids < e)] = k
    return y


def horizon_targets(y: np.ndarray) -> np.ndarray:
    """``[n, len(HORIZONS)]``: after frame k, the class at frame k + h (no chord past the end)."""
    n = len(y)
    out = np.full((n, len(HORIZONS)), NO_CHORD, dtype=np.int64)
    for j, h in enumerate(HORIZONS):
        out[: max(0, n - h), j] = y[h:]
    return out


@dataclass(frozen=True)
class NetConfig:
    hidden: int = 128
    layers: int = 2


def _net(cfg: NetConfig):
    import torch
    from torch import nn

    class ChordNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Linear(N_FEATURES, cfg.hidden)
            self.gru = nn.GRU(cfg.hidden, cfg.hidden, num_layers=cfg.layers, batch_first=True)
            self.out = nn.Linear(cfg.hidden, N_CLASSES * len(HORIZONS))

        def forward(self, x, h=None):
            z, h = self.gru(torch.tanh(self.inp(x)), h)
            return self.out(z).view(*z.shape[:-1], len(HORIZONS), N_CLASSES), h

    return ChordNet()


@lru_cache(maxsize=2)
def load(path: str = str(MODEL_PATH)):
    """The trained net (eval mode) or None when the file is not there."""
    import torch

    p = Path(path)
    if not p.exists():
        return None
    d = torch.load(p, map_location="cpu", weights_only=True)
    net = _net(NetConfig(**d["config"]))
    net.load_state_dict({k: v.float() for k, v in d["state"].items()})
    net.eval()
    return net


def available(path: str = str(MODEL_PATH)) -> bool:
    return Path(path).exists()


def posteriors(net, notes, n_frames: int) -> np.ndarray:
    """Offline: ``[n_frames, len(HORIZONS), 25]`` posteriors after each frame."""
    import torch

    x = torch.from_numpy(frame_features(notes, n_frames))[None]
    with torch.no_grad():
        logits, _ = net(x)
    return torch.softmax(logits[0], dim=-1).numpy()


class Recogniser:
    """Online: :meth:`advance` to "now" with the notes heard (frames complete up to now are
    read once, in order), then :meth:`posterior` for a time ahead. Session seconds."""

    def __init__(self, net=None):
        self.net = net if net is not None else load()
        if self.net is None:
            raise FileNotFoundError(f"{MODEL_PATH}: no chord model; train it with python3 -m improv.harmony.learned")
        self.reset()

    def reset(self) -> None:
        self.frames = 0                       # frames read so far (frame k covers [k, k+1) * FRAME)
        self._h = None
        self._post = np.full((len(HORIZONS), N_CLASSES), 1.0 / N_CLASSES)

    def advance(self, notes, now: float) -> None:
        """Read every frame that ended by ``now`` (``notes``: (start, end|None, pitch), all heard)."""
        import torch

        done = int(math.floor(now / FRAME + 1e-9))
        if done <= self.frames:
            return
        if done - self.frames > 2400:  # a long gap (5 minutes): start over from the recent past
            self.frames = done - 64
            self._h = None
        x = frame_features([n for n in notes if n[1] is None or n[1] > self.frames * FRAME],
                           done - self.frames, t0=self.frames * FRAME)
        with torch.no_grad():
            logits, self._h = self.net(torch.from_numpy(x)[None], self._h)
        self._post = torch.softmax(logits[0, -1], dim=-1).numpy()
        self.frames = done

    def posterior(self, t: float) -> np.ndarray:
        """``[25]``: the chord at session time ``t`` (interpolated between the horizons)."""
        ahead = (t - self.frames * FRAME) / FRAME + 0.5  # frames from the last one read, to t's frame middle
        hs = np.asarray(HORIZONS, dtype=float)
        if ahead <= hs[0]:
            return self._post[0]
        if ahead >= hs[-1]:
            return self._post[-1]
        j = int(np.searchsorted(hs, ahead)) - 1
        w = (ahead - hs[j]) / (hs[j + 1] - hs[j])
        return (1 - w) * self._post[j] + w * self._post[j + 1]


# ---------------------------------------------------------------- training

def read_songs(shared: Path, split: str) -> list[tuple[list, list]]:
    """POP909 songs of a split: (melody notes (start, end, pitch) monophonic, chords)."""
    import pretty_midi

    from ..model.data import split_of
    from .table import read_pop909_song

    out = []
    for folder in sorted((shared / "symbolic" / "pop909").iterdir()):
        if not (folder / "chord_midi.txt").exists() or split_of(f"pop909/{folder.name}") != split:
            continue
        chords, _, _ = read_pop909_song(folder)
        pm = pretty_midi.PrettyMIDI(str(folder / f"{folder.name}.mid"))
        inst = next((i for i in pm.instruments if i.name.strip().upper() == "MELODY"), None)
        if inst is None:
            continue
        mel = []
        for n in sorted(inst.notes, key=lambda n: n.start):
            if mel and n.start < mel[-1][1]:
                mel[-1] = (mel[-1][0], float(n.start), mel[-1][2])
            mel.append((float(n.start), float(n.end), int(n.pitch)))
        out.append(([m for m in mel if m[1] - m[0] > 0.02], chords))
    return out


def _batch(songs, rng, n: int, frames: int):
    xs, ys = [], []
    for _ in range(n):
        mel, chords = songs[rng.integers(len(songs))]
        stretch = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
        shift = int(rng.integers(12))
        end = mel[-1][1] * stretch
        t0 = float(rng.uniform(-2.0, max(0.0, end - frames * FRAME * 0.5)))
        m = [(s * stretch, e * stretch, p) for s, e, p in mel]
        c = [(s * stretch, e * stretch, ch) for s, e, ch in chords]
        xs.append(frame_features(m, frames, t0, shift))
        ys.append(horizon_targets(chord_targets(c, frames + max(HORIZONS), t0, shift))[:frames])
    return np.stack(xs), np.stack(ys)


def evaluate(net, songs, seconds: float | None = None) -> dict[str, float]:
    """Frame accuracy (root, majmin) of each horizon's argmax over songs, from their start."""
    import torch  # noqa: F401

    hits = np.zeros((len(HORIZONS), 2))
    count = np.zeros(len(HORIZONS))
    for mel, chords in songs:
        end = seconds if seconds else mel[-1][1]
        n = int(end / FRAME)
        post = posteriors(net, mel, n)
        y = horizon_targets(chord_targets(chords, n + max(HORIZONS)))[:n]
        guess = post.argmax(-1)
        for j in range(len(HORIZONS)):
            ok = y[:, j] != NO_CHORD
            count[j] += ok.sum()
            hits[j, 1] += (guess[ok, j] == y[ok, j]).sum()
            hits[j, 0] += ((guess[ok, j] % 12) == (y[ok, j] % 12)).sum()
    return {f"{name}@{h * FRAME:g}s": float(hits[j, i] / max(count[j], 1))
            for j, h in enumerate(HORIZONS) for i, name in enumerate(("root", "majmin"))}


def train(shared: Path, out: Path, steps: int, seed: int, batch: int = 32, frames: int = 384,
          threads: int = 1, log=print) -> dict:
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    t0 = time.monotonic()
    songs = read_songs(shared, "train")
    val = read_songs(shared, "val")
    log(f"{len(songs)} training songs, {len(val)} validation songs ({time.monotonic() - t0:.0f} s to read)")
    cfg = NetConfig()
    net = _net(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.05)
    rng = np.random.default_rng(seed)
    weights = torch.tensor([1.0, 0.7, 0.5])
    for step in range(1, steps + 1):
        x, y = _batch(songs, rng, batch, frames)
        logits, _ = net(torch.from_numpy(x))
        loss = sum(w * torch.nn.functional.cross_entropy(logits[:, :, j].reshape(-1, N_CLASSES),
                                                         torch.from_numpy(y[:, :, j]).reshape(-1))
                   for j, w in enumerate(weights))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps:
            log(f"step {step}/{steps} loss {loss.item():.3f} ({time.monotonic() - t0:.0f} s)")
    net.eval()
    figures = evaluate(net, val)
    log("validation " + " ".join(f"{k} {v:.3f}" for k, v in figures.items()))
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.half() for k, v in net.state_dict().items()}
    tmp = out.with_suffix(".tmp")
    torch.save({"config": cfg.__dict__, "state": state, "steps": steps, "seed": seed,
                "about": "POP909 training split; 24 triads + no chord; horizons "
                         f"{[h * FRAME for h in HORIZONS]} s", "validation": figures}, tmp)
    tmp.replace(out)
    log(f"wrote {out} ({out.stat().st_size} bytes, {time.monotonic() - t0:.0f} s)")
    return figures


def main(argv: list[str] | None = None) -> int:
    from ..model.data import default_shared_data

    ap = argparse.ArgumentParser(prog="python3 -m improv.harmony.learned", description="train the chord recogniser")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(MODEL_PATH))
    args = ap.parse_args(argv)
    shared = default_shared_data()
    if not (shared / "symbolic" / "pop909").exists():
        print(f"{shared}/symbolic/pop909: not found (see ../shared/data/README.md)", file=sys.stderr)
        return 2
    train(shared, Path(args.out), args.steps, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
