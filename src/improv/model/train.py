"""``improv train``: seeded, split by piece, checkpointed and resumable.

Every batch is drawn from a generator seeded with (seed, step) and dropout is seeded
per step too, so a run resumed from a checkpoint continues exactly as if it had not
stopped. Windows of ``context + 1`` frames are cut from the training pieces (sources
weighted by ``SOURCE_WEIGHTS``), transposed by -6..+5 semitones, sometimes with the
melody moved into a band voice (the band taking the lead), and given the control
codes of what they really play, each dropped at random so the model also works
without them.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .data import Rendering
from .encoding import CHORD_UNKNOWN, LEAD, N_VOICES, PITCH_HI, PITCH_LO, UNKNOWN, block_controls, transpose_chords
from .net import FrameNet, ModelConfig, count_parameters, input_indices, widen_for_chords
from .store import save_model

SOURCE_WEIGHTS = {"chorales": 0.14, "quartets": 0.10, "folk": 0.14, "pop909": 0.30, "nottingham": 0.20, "wjd": 0.12}
UNMETERED_SHARE = 0.3


@dataclass
class TrainSettings:
    steps: int = 3000
    batch: int = 12
    lr: float = 2e-3
    min_lr_ratio: float = 0.05
    warmup: int = 100
    weight_decay: float = 0.05
    clip: float = 1.0
    seed: int = 0
    ckpt_every: int = 250
    eval_every: int = 500
    val_windows: int = 96
    swap_prob: float = 0.12
    control_drop: float = 0.35
    all_controls_drop: float = 0.2
    bf16: bool = True  # bfloat16 autocast for the matmuls (weights and optimizer stay float32)
    # Exposure-bias cure: in this share of windows, up to ``history_noise_max`` of the bands'
    # notes in the *input* are moved by 1-6 semitones (targets stay clean), so that the model
    # does not follow its own wrong notes when it plays live but keeps to the player's key.
    history_noise_prob: float = 0.5
    history_noise_max: float = 0.3
    # The melody moves into the band voice of its register (False: the corpora), or into any band
    # voice (True: a player's sessions, so that every band can take over in the player's style)
    swap_any_voice: bool = False
    # The chord control (models with ``ModelConfig.chords``): in this share of windows every
    # chord is unknown, and in ``chord_span_drop`` of the others a span of up to half the
    # window, so that "no chord" stays a trained case (follow mode, old uses).
    chord_drop: float = 0.3
    chord_span_drop: float = 0.2
    # Start from these weights (a model file) instead of random ones: fine-tuning; a model
    # without the chord control is widened with zero chord rows (it starts out unchanged).
    init_from: str = ""


class Windows:
    """Seeded training windows (tokens, bar positions, controls) from a Rendering."""

    def __init__(self, r: Rendering, length: int, weights: dict[str, float] | None = None):
        self.r = r
        self.length = length
        weights = weights or SOURCE_WEIGHTS
        src = np.array([r.sources[p] for p in r.piece])
        self.prob = np.zeros(len(r.start))
        for metered, share in ((True, 1 - UNMETERED_SHARE), (False, UNMETERED_SHARE)):
            sel_m = r.metered == metered
            present = [s for s in weights if np.any(sel_m & (src == s))]
            total_w = sum(weights[s] for s in present)
            for s in present:
                sel = sel_m & (src == s)
                self.prob[sel] = share * weights[s] / total_w * r.length[sel] / r.length[sel].sum()
        if self.prob.sum() <= 0:
            raise ConfigError("no training pieces: the corpora gave no frames")
        self.prob /= self.prob.sum()

    def window(self, rng: np.random.Generator, k: int | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """tokens ``[L, 4]``, barpos ``[L]``, mask ``[L, 4]`` (False on padding and on the voices
        the rendering does not learn from: ``Rendering.targets``), chord classes ``[L]``."""
        r, L = self.r, self.length
        if k is None:
            k = int(rng.choice(len(self.prob), p=self.prob))
        toks, pos = r.frames(k)
        n = len(toks)
        s = int(rng.integers(0, n - L + 1)) if n > L else 0
        t = np.zeros((L, N_VOICES), dtype=np.int64)
        b = np.zeros(L, dtype=np.int64)
        m = np.zeros((L, N_VOICES), dtype=bool)
        seg = min(L, n - s)
        t[:seg], b[:seg] = toks[s:s + seg], pos[s:s + seg]
        m[:seg] = True if r.targets is None else r.targets[k]
        b[seg:] = pos[s + seg - 1] if seg else 0
        c = np.full(L, CHORD_UNKNOWN, dtype=np.int64)
        c[:seg] = r.frame_chords(k)[s:s + seg]
        return t, b, m, c


def augment(t: np.ndarray, rng: np.random.Generator, st: TrainSettings, chords: np.ndarray | None = None
            ) -> tuple[np.ndarray, int] | tuple[np.ndarray, int, np.ndarray]:
    """Transpose and maybe move the melody into a band voice; returns tokens and melody voice
    (and the chords transposed alike, when given)."""
    notes = t >= 2
    shift = 0
    if notes.any():
        lo, hi = t[notes].min() - 2 + PITCH_LO, t[notes].max() - 2 + PITCH_LO
        shift = int(rng.integers(max(-6, PITCH_LO - lo), min(5, PITCH_HI - hi) + 1))
        t = np.where(notes, t + shift, t)
    melody = LEAD
    if rng.random() < st.swap_prob:
        lead_notes = t[:, LEAD][t[:, LEAD] >= 2]
        if len(lead_notes):
            mean = lead_notes.mean() - 2 + PITCH_LO
            b = int(rng.integers(0, LEAD)) if st.swap_any_voice else 2 if mean >= 60 else 1 if mean >= 48 else 0
            t = t.copy()
            t[:, [LEAD, b]] = t[:, [b, LEAD]]
            if rng.random() < 0.5:
                t[:, LEAD] = 0
            melody = b
    if chords is not None:
        return t, melody, transpose_chords(chords, shift)
    return t, melody


def drop_chords(c: np.ndarray, rng: np.random.Generator, st: TrainSettings) -> np.ndarray:
    """Chords made unknown: all of them in ``chord_drop`` of the windows, a span in some others."""
    if rng.random() < st.chord_drop:
        return np.full_like(c, CHORD_UNKNOWN)
    if rng.random() < st.chord_span_drop:
        c = c.copy()
        n = int(rng.integers(1, len(c) // 2 + 1))
        a = int(rng.integers(0, len(c) - n + 1))
        c[a:a + n] = CHORD_UNKNOWN
    return c


def corrupt_history(t: np.ndarray, rng: np.random.Generator, st: TrainSettings) -> np.ndarray:
    """A copy of tokens whose band notes are partly moved by 1-6 semitones (rhythm kept)."""
    if st.history_noise_prob <= 0 or rng.random() >= st.history_noise_prob:
        return t
    t = t.copy()
    band = t[:, :LEAD]
    onsets = band >= 2
    rate = rng.random() * st.history_noise_max
    hit = onsets & (rng.random(band.shape) < rate)
    if hit.any():
        shift = rng.integers(1, 7, size=int(hit.sum())) * rng.choice([-1, 1], size=int(hit.sum()))
        moved = band[hit] + shift
        band[hit] = np.where((moved >= 2) & (moved < 2 + PITCH_HI - PITCH_LO + 1), moved, band[hit])
    return t


def drop_controls(c: np.ndarray, rng: np.random.Generator, st: TrainSettings) -> np.ndarray:
    c = c.copy()
    if rng.random() < st.all_controls_drop:
        c[:] = UNKNOWN
        return c
    drop = rng.random((N_VOICES, 3)) < st.control_drop
    c[:, drop] = UNKNOWN
    return c


def make_batch(w: Windows, rng: np.random.Generator, n: int, st: TrainSettings, train: bool = True,
               chords: bool = False):
    """Input rows, targets and mask of ``n`` windows; with ``chords``, each frame's input carries
    the chord of the frame after it (the one predicted), dropped as ``drop_chords`` says."""
    toks, inputs, poss, ctrls, masks, chs = [], [], [], [], [], []
    for _ in range(n):
        t, b, m, ch = w.window(rng)
        melody = LEAD
        if train and chords:
            t, melody, ch = augment(t, rng, st, ch)
            ch = drop_chords(ch, rng, st)
        elif train:
            t, melody = augment(t, rng, st)
        if melody != LEAD:  # the voices learnt from move with the melody
            m = m.copy()
            m[:, [LEAD, melody]] = m[:, [melody, LEAD]]
        c = block_controls(t, melody)
        c = drop_controls(c, rng, st) if train else np.full_like(c, UNKNOWN)
        toks.append(t)
        inputs.append(corrupt_history(t, rng, st) if train else t)
        poss.append(b)
        ctrls.append(c)
        masks.append(m)
        chs.append(ch)
    t = torch.from_numpy(np.stack(toks))
    t_in = torch.from_numpy(np.stack(inputs))
    idx = input_indices(t_in[:, :-1], torch.from_numpy(np.stack(poss))[:, :-1],
                        torch.from_numpy(np.stack(ctrls))[:, :-1],
                        torch.from_numpy(np.stack(chs))[:, 1:] if chords else None)
    mask = torch.from_numpy(np.stack(masks))[:, 1:]
    return idx, t[:, 1:], mask


def loss_fn(net: FrameNet, idx, target, mask) -> torch.Tensor:
    logits = net(idx, target)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none")
    ce = ce.view(target.shape)
    m = (mask if mask.dim() == ce.dim() else mask.unsqueeze(-1)).expand_as(ce).float()
    return (ce * m).sum() / m.sum().clamp(min=1)


def lr_at(step: int, st: TrainSettings) -> float:
    if step < st.warmup:
        return st.lr * (step + 1) / st.warmup
    frac = min(1.0, (step - st.warmup) / max(1, st.steps - st.warmup))
    return st.lr * (st.min_lr_ratio + (1 - st.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


Progress = Callable[[int, int, dict], None]


def _save_checkpoint(ckpt: Path, net, opt, step, elapsed, history, cfg: ModelConfig, st: TrainSettings,
                     data: str | None = None) -> None:
    tmp = ckpt.with_name("checkpoint.pt.tmp")
    state = {"net": net.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed,
             "history": history, "config": cfg.to_dict(), "settings": asdict(st)}
    if data is not None:
        state["data"] = data
    torch.save(state, tmp)
    tmp.replace(ckpt)


def train(train_r: Rendering, val_r: Rendering, cfg: ModelConfig, st: TrainSettings, out: Path,
          ckpt_dir: Path, resume: bool = True, progress: Progress | None = None, meta: dict | None = None,
          stop_after: int | None = None, init: dict | None = None, weights: dict[str, float] | None = None,
          data: str | None = None, seconds: float | None = None) -> dict | None:
    """Train, checkpointing into ``ckpt_dir``; writes the final weights to ``out``. Returns facts.

    ``stop_after`` ends the run after that step, ``seconds`` after that much training in this
    call (checkpointed, nothing written to ``out``, returns None): a later call resumes where
    it stopped. Fine-tuning (``improv train --sessions``) starts from the weights ``init``,
    draws windows by the source ``weights`` and ties its checkpoint to the material's
    fingerprint ``data``.
    """
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    ckpt = ckpt_dir / "checkpoint.pt"
    torch.manual_seed(st.seed)
    net = FrameNet(cfg)
    if init is not None:
        net.load_state_dict(init)
    decay = [p for n, p in net.named_parameters() if p.dim() >= 2 and not n.startswith("inp")
             and not n.startswith("cond")]
    no_decay = [p for n, p in net.named_parameters() if not (p.dim() >= 2 and not n.startswith("inp")
                                                              and not n.startswith("cond"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": st.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=st.lr, betas=(0.9, 0.98))
    step, elapsed, history = 0, 0.0, []
    if resume and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        saved = {**asdict(TrainSettings()), **state["settings"]}  # settings added since: their defaults
        if state["config"] != cfg.to_dict() or saved != asdict(st) or state.get("data") != data:
            raise ConfigError(f"{ckpt} was made with other settings or other sessions; use the same ones, or "
                              f"--fresh to start over")
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        step, elapsed, history = state["step"], state["elapsed"], state["history"]
    elif st.init_from:
        from .store import load_model

        base = load_model(st.init_from).net
        if {**base.cfg.to_dict(), "chords": cfg.chords, "dropout": cfg.dropout} != cfg.to_dict():
            raise ConfigError(f"--init {st.init_from}: its size differs from the one asked for; "
                              f"leave --size out to take the model's")
        state = base.state_dict()
        net.load_state_dict(widen_for_chords(state, seeded=True) if cfg.chords and not base.cfg.chords else state)
    windows = Windows(train_r, cfg.context + 1, weights)
    val_w = Windows(val_r if len(val_r.start) else train_r, cfg.context + 1, weights)
    vrng = np.random.default_rng([st.seed, 999_999])
    val_batches = [make_batch(val_w, vrng, 16, st, train=False, chords=cfg.chords) for _ in range(max(1, st.val_windows // 16))]

    def evaluate() -> float:
        net.eval()
        with torch.no_grad():
            losses = [loss_fn(net, *b).item() for b in val_batches]
        net.train()
        return float(np.mean(losses))

    net.train()
    t_last = t_start = time.monotonic()
    while step < st.steps:
        rng = np.random.default_rng([st.seed, step])
        torch.manual_seed(st.seed * 1_000_003 + step)
        idx, target, mask = make_batch(windows, rng, st.batch, st, chords=cfg.chords)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, st)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=st.bf16):
            loss = loss_fn(net, idx, target, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), st.clip)
        opt.step()
        step += 1
        now = time.monotonic()
        elapsed += now - t_last
        t_last = now
        info = {"loss": loss.item(), "lr": lr_at(step - 1, st), "elapsed": elapsed}
        if step % st.eval_every == 0 or step == st.steps:
            info["val"] = evaluate()
            history.append({"step": step, "train": info["loss"], "val": info["val"], "elapsed": elapsed})
        if step % st.ckpt_every == 0 or step == st.steps:
            _save_checkpoint(ckpt, net, opt, step, elapsed, history, cfg, st, data)
        if progress:
            progress(step, st.steps, info)
        out_of_time = seconds is not None and now - t_start >= seconds
        if (out_of_time or stop_after is not None and step >= stop_after) and step < st.steps:
            _save_checkpoint(ckpt, net, opt, step, elapsed, history, cfg, st, data)
            return None
    net.eval()
    facts = {
        "parameters": count_parameters(net), "steps": step, "train_seconds": round(elapsed, 1),
        "history": history, "val_loss": history[-1]["val"] if history else None, "settings": asdict(st),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "machine": platform.processor() or
        platform.machine(), "train_frames": train_r.n_frames, "val_frames": val_r.n_frames,
        **(meta or {}),
    }
    save_model(out, net, facts)
    return facts
