"""``improv train --sessions DIR``: the band model fine-tuned on the player's own sessions.

The same training loop as the corpora (:func:`improv.model.train.train`: seeded per step,
checkpointed, resumable), started from the weights of ``--from`` (the shipped model), on
windows of the recorded sessions (:mod:`improv.model.sessions`): the player's line is the
lead, the band's notes are input everywhere and targets only in kept takes. More windows
than in corpus training put the player's line into a band voice (role lead), which is what
a band taking over samples; a lower learning rate keeps what the corpora taught.

The card written beside the weights (``you.md``) says what it was trained on and the
player's NLL on the validation sessions before and after.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .encoding import LEAD, N_VOICES
from .evaluate import model_logprobs
from .net import FrameNet
from .sessions import SOURCE, Material
from .train import TrainSettings

FINETUNE = TrainSettings(steps=400, batch=12, lr=5e-4, min_lr_ratio=0.1, warmup=20, ckpt_every=50, eval_every=100,
                         val_windows=32, swap_prob=0.5, swap_any_voice=True)
WEIGHTS = {SOURCE: 1.0}
DEFAULT_OUT = "you.pt"


def session_nll(net: FrameNet, r, voices: tuple[int, ...] = (LEAD,)) -> dict:
    """Nats per note of ``voices`` over every frame of the renderings (controls unknown), and
    per token; only the voices each rendering learns from (``Rendering.targets``) count."""
    total, onsets, tokens = 0.0, 0, 0
    for k in range(len(r.start)):
        toks, pos = r.frames(k)
        if len(toks) < 2:
            continue
        lp = model_logprobs(net, toks.astype(np.int64), pos.astype(np.int64))
        mask = np.zeros(N_VOICES, dtype=bool)
        mask[list(voices)] = True
        if r.targets is not None:
            mask &= r.targets[k]
        for v in np.flatnonzero(mask):
            total += float(-lp[:, v].sum())
            tokens += len(lp)
            onsets += int((toks[1:, v] >= 2).sum())
    return {"per_note": total / onsets if onsets else None, "per_token": total / tokens if tokens else None,
            "notes": onsets}


def figures(net: FrameNet, material: Material) -> dict:
    """The player's line (and the kept band parts) on the validation sessions."""
    out = {"player": session_nll(net, material.val, (LEAD,))}
    if material.val.targets is not None and material.val.targets[:, :LEAD].any():
        out["kept_band"] = session_nll(net, material.val, tuple(range(LEAD)))
    return out


def settings(steps: int | None, batch: int | None, seed: int, bf16: bool) -> TrainSettings:
    return replace(FINETUNE, steps=steps or FINETUNE.steps, batch=batch or FINETUNE.batch, seed=seed, bf16=bf16)


def write_card(path: Path, facts: dict) -> Path:
    """``you.md``: what the fine-tuned model was trained on, and its figures before and after."""
    m, before, after = facts["material"], facts["before"], facts["after"]
    st = facts["settings"]

    def nll(d, key="player"):
        x = d.get(key, {}).get("per_note")
        return "—" if x is None else f"{x:.3f}"

    held = ", ".join(m["validation_sessions"]) or "none (too few sessions: the training sessions are scored)"
    kept = ", ".join(f"{k} ({'/'.join(v)})" for k, v in m["kept"].items()) or "none (the band's notes are input only)"
    lines = [
        f"# {path.with_suffix('.pt').name}: the band fine-tuned on your sessions",
        "",
        f"Made by `improv train --sessions` on {facts['made']} from `{facts['base']}` "
        f"(see `models/MODEL_CARD.md` for what that model learnt first). Play with it: "
        f"`improv listen --model {path.with_suffix('.pt')}`.",
        "",
        "## Trained on",
        "",
        f"* {m['sessions']} sessions from `{facts['sessions_dir']}`, {m['minutes']:.1f} minutes of your playing, "
        f"{m['player_notes']:,} of your notes (the lead) and {m['band_notes']:,} band notes (input).",
        f"* Kept takes (their band parts learnt from, `improv keep`): {kept}.",
        f"* Held out for the figures: {held}.",
        f"* Sessions: {', '.join(m['names'])}.",
        "",
        "## Training",
        "",
        f"* {facts['steps']} steps of {st['batch']} windows x {facts['context'] + 1} frames, AdamW lr {st['lr']:g} "
        f"(warm-up {st['warmup']}, cosine to {st['min_lr_ratio']:g}), seed {st['seed']}, your line moved into "
        f"a band voice in {100 * st['swap_prob']:.0f}% of windows (what a band taking over plays).",
        f"* {facts['train_seconds'] / 60:.1f} minutes of training on {facts['threads']} torch thread(s) "
        f"({facts['machine']}, torch {facts['torch']}).",
        "",
        "## Figures (validation sessions; nats per note, lower is better)",
        "",
        "| | before (base model) | after (this model) |",
        "|---|---|---|",
        f"| your line (lead) | {nll(before)} | {nll(after)} |",
    ]
    if "kept_band" in after:
        lines.append(f"| the kept band parts | {nll(before, 'kept_band')} | {nll(after, 'kept_band')} |")
    lines += ["", "Validation loss (nats per learnt token) during training: " +
              ", ".join(f"{h['val']:.3f} (step {h['step']})" for h in facts["history"]) + ".", "",
              "Trained on your own recordings on top of the base model: the base model's licence terms "
              "(`models/MODEL_CARD.md`) apply to this one too.", ""]
    path.write_text("\n".join(lines))
    return path


def card_facts(material: Material, sessions_dir: Path, base: Path, before: dict, after: dict, facts: dict,
               context: int) -> dict:
    return {**{k: facts[k] for k in ("steps", "train_seconds", "history", "settings", "threads", "torch", "machine")},
            "material": material.summary(), "sessions_dir": str(sessions_dir), "base": str(base),
            "before": before, "after": after, "context": context,
            "made": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


__all__ = ["FINETUNE", "WEIGHTS", "DEFAULT_OUT", "session_nll", "figures", "settings", "write_card", "card_facts"]
