"""The band model: a small decoder-only transformer over frames, in plain PyTorch.

Each frame enters as one vector: the sum of embeddings of its four voice tokens, of its
position in the bar, and of the control settings (density, register, role per voice).
A causal transformer with rotary position encoding (relative, so the key/value cache
can slide forward without recomputation) turns frame *t* into a state; four small
heads read that state and predict frame *t+1* voice by voice (bass, mid, high, lead),
each head also seeing the tokens already chosen for the voices before it.

``FrameNet.forward`` scores whole windows for training; ``Cache`` runs the same weights
frame by frame for generation (tested equal to the full recomputation).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

import numpy as np

from .encoding import (MAX_BAR_FRAMES, N_CHORDS, N_DENSITY, N_REGISTER, N_ROLES, N_VOICES, PITCH_LO,
                       UNKNOWN, VOCAB)

# Rows of the single input embedding table. Besides each voice's own token, a pitch also
# enters through a pitch-class and an octave row shared by all voices, so that harmony
# (the same pitch class in two voices, a key) is easy to see.
_TOK0 = 0
_POS0 = _TOK0 + N_VOICES * VOCAB
_DEN0 = _POS0 + MAX_BAR_FRAMES + 1
_REG0 = _DEN0 + N_VOICES * (N_DENSITY + 1)
_ROL0 = _REG0 + N_VOICES * (N_REGISTER + 1)
_PC0 = _ROL0 + N_VOICES * (N_ROLES + 1)
_OCT0 = _PC0 + 13
N_INPUT_ROWS = _OCT0 + 10
N_INPUT_SLOTS = N_VOICES * 6 + 1  # 4 tokens, 4 pitch classes, 4 octaves, 4x3 controls, bar position
# A model with the chord control (``ModelConfig.chords``) has 25 more rows (24 triads and
# "unknown") and one more slot per frame: the chord in force at the *next* frame, the one
# the heads predict.
_CH0 = N_INPUT_ROWS
N_CHORD_ROWS = N_CHORDS + 1
# Pitch class and octave row of every token (REST and HOLD: the "none" rows).
_TOKEN_PC = np.array([12, 12] + [(PITCH_LO + i) % 12 for i in range(VOCAB - 2)], dtype=np.int64)
_TOKEN_OCT = np.array([9, 9] + [(PITCH_LO + i) // 12 - 1 for i in range(VOCAB - 2)], dtype=np.int64)


@dataclass(frozen=True)
class ModelConfig:
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 768
    head_hidden: int = 256
    context: int = 256
    dropout: float = 0.1
    rope_base: float = 10000.0
    chords: bool = False  # the chord control (models trained before it: False, and they load as they were)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def input_rows(self) -> int:
        return N_INPUT_ROWS + (N_CHORD_ROWS if self.chords else 0)


def input_indices(tokens: torch.Tensor, barpos: torch.Tensor, controls: torch.Tensor,
                  chords: torch.Tensor | None = None) -> torch.Tensor:
    """Rows of the input table ``[..., N_INPUT_SLOTS]`` for frames (``N_INPUT_SLOTS + 1`` with chords).

    tokens ``[..., 4]`` (0..VOCAB-1), barpos ``[...]`` (0..MAX_BAR_FRAMES), controls
    ``[..., 4, 3]`` (density, register, role; UNKNOWN = -1); chords ``[...]`` (0..23, or
    CHORD_UNKNOWN), only for a model with the chord control.
    """
    voice = torch.arange(N_VOICES, device=tokens.device)
    tokens = tokens.long()
    tok = _TOK0 + voice * VOCAB + tokens
    pc = _PC0 + torch.from_numpy(_TOKEN_PC)[tokens]
    octv = _OCT0 + torch.from_numpy(_TOKEN_OCT)[tokens]
    c = controls.long()
    den = _DEN0 + voice * (N_DENSITY + 1) + torch.where(c[..., 0] == UNKNOWN, N_DENSITY, c[..., 0])
    reg = _REG0 + voice * (N_REGISTER + 1) + torch.where(c[..., 1] == UNKNOWN, N_REGISTER, c[..., 1])
    rol = _ROL0 + voice * (N_ROLES + 1) + torch.where(c[..., 2] == UNKNOWN, N_ROLES, c[..., 2])
    pos = (_POS0 + barpos.long()).unsqueeze(-1)
    parts = [tok, pc, octv, den, reg, rol, pos]
    if chords is not None:
        parts.append((_CH0 + chords.long()).unsqueeze(-1))
    return torch.cat(parts, dim=-1)


def input_rows_np(tokens: np.ndarray, barpos: np.ndarray, controls: np.ndarray,
                  chords: np.ndarray | None = None) -> np.ndarray:
    """``input_indices`` in numpy for frames sharing one control setting: tokens ``[T, 4]``,
    barpos ``[T]``, controls ``[4, 3]``, chords ``[T]`` or None -> ``[T, N_INPUT_SLOTS (+1)]``."""
    T = len(tokens)
    rows = np.empty((T, N_INPUT_SLOTS + (chords is not None)), dtype=np.int64)
    v = np.arange(N_VOICES)
    rows[:, 0:4] = _TOK0 + v * VOCAB + tokens
    rows[:, 4:8] = _PC0 + _TOKEN_PC[tokens]
    rows[:, 8:12] = _OCT0 + _TOKEN_OCT[tokens]
    c = controls
    rows[:, 12:16] = _DEN0 + v * (N_DENSITY + 1) + np.where(c[:, 0] == UNKNOWN, N_DENSITY, c[:, 0])
    rows[:, 16:20] = _REG0 + v * (N_REGISTER + 1) + np.where(c[:, 1] == UNKNOWN, N_REGISTER, c[:, 1])
    rows[:, 20:24] = _ROL0 + v * (N_ROLES + 1) + np.where(c[:, 2] == UNKNOWN, N_ROLES, c[:, 2])
    rows[:, 24] = _POS0 + barpos
    if chords is not None:
        rows[:, 25] = _CH0 + chords
    return rows


def widen_for_chords(state: dict, seeded: bool = False) -> dict:
    """A state dict of a model without the chord control, made to load into one with it. The
    "unknown" row starts at zero, so with no chord given the widened model computes exactly
    what the old one did until training moves it; the triads' rows start at zero too, or
    (``seeded``, for fine-tuning) at the mean of the pitch-class rows of their three tones, a
    signal the model already reads (the chord's tones as if sounding)."""
    state = dict(state)
    w = state["inp.weight"]
    if w.shape[0] == N_INPUT_ROWS:
        rows = torch.zeros(N_CHORD_ROWS, w.shape[1], dtype=w.dtype)
        if seeded:
            for k in range(N_CHORDS):
                root, third = k % 12, 3 if k >= 12 else 4
                rows[k] = w[[_PC0 + root, _PC0 + (root + third) % 12, _PC0 + (root + 7) % 12]].mean(0)
        state["inp.weight"] = torch.cat([w, rows])
    return state


def rope_tables(positions: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin ``[T, head_dim/2]`` for absolute integer positions (computed in float64)."""
    inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    ang = positions.to(torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x ``[..., T, head_dim]``; rotate pairs (first half, second half)."""
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.fc1 = nn.Linear(cfg.d_model, cfg.d_ff)
        self.fc2 = nn.Linear(cfg.d_ff, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.p_drop = cfg.dropout

    def _split(self, x: torch.Tensor, cos, sin):
        B, T, D = x.shape
        H = self.n_heads
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, H, D // H).permute(2, 0, 3, 1, 4)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def forward(self, x: torch.Tensor, cos, sin) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self._split(x, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.p_drop if self.training else 0.0)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(B, T, D)))
        return x + self.drop(self.fc2(F.gelu(self.fc1(self.ln2(x)))))


class FrameNet(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.inp = nn.Embedding(cfg.input_rows, d)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)
        # Within-frame conditioning: the tokens of earlier voices in the predicted frame.
        self.cond = nn.Embedding((N_VOICES - 1) * VOCAB, d)
        self.head_ln = nn.LayerNorm(d)
        self.head_w1 = nn.Parameter(torch.empty(N_VOICES, d, cfg.head_hidden))
        self.head_b1 = nn.Parameter(torch.zeros(N_VOICES, cfg.head_hidden))
        self.head_w2 = nn.Parameter(torch.empty(N_VOICES, cfg.head_hidden, VOCAB))
        self.head_b2 = nn.Parameter(torch.zeros(N_VOICES, VOCAB))
        # Pitch-class logits added to every octave of that class (a key lifts all its notes).
        self.head_pc = nn.Parameter(torch.empty(N_VOICES, cfg.head_hidden, 12))
        self.register_buffer("token_pc", torch.from_numpy(_TOKEN_PC[2:].copy()), persistent=False)
        self.apply(self._init)
        nn.init.normal_(self.head_w1, std=0.02)
        nn.init.normal_(self.head_w2, std=0.02)
        nn.init.normal_(self.head_pc, std=0.02)
        for b in self.blocks:
            nn.init.normal_(b.proj.weight, std=0.02 / math.sqrt(2 * cfg.n_layers))
            nn.init.normal_(b.fc2.weight, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    @property
    def head_dim(self) -> int:
        return self.cfg.d_model // self.cfg.n_heads

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        return self.inp(idx).sum(-2)

    def trunk(self, idx: torch.Tensor) -> torch.Tensor:
        """States ``[B, T, D]`` of frames given their input rows ``[B, T, N_INPUT_SLOTS]``."""
        return self.hidden(idx, len(self.blocks))

    def hidden(self, idx: torch.Tensor, layer: int) -> torch.Tensor:
        """States ``[B, T, D]`` after the first ``layer`` blocks (0: the input embedding); after
        the last block, with the final norm (what the heads read)."""
        T = idx.shape[1]
        cos, sin = rope_tables(torch.arange(T), self.head_dim, self.cfg.rope_base)
        x = self.drop(self.embed(idx))
        for b in self.blocks[:layer]:
            x = b(x, cos, sin)
        return self.ln_f(x) if layer == len(self.blocks) else x

    def heads(self, h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Logits ``[..., 4, VOCAB]`` of the next frame from states ``[..., D]``, teacher-forced
        with the next frame's tokens ``[..., 4]`` for the within-frame conditioning."""
        voice = torch.arange(N_VOICES - 1, device=h.device)
        ce = self.cond(voice * VOCAB + target[..., :N_VOICES - 1].long())  # [..., 3, D]
        cum = torch.cat([torch.zeros_like(ce[..., :1, :]), ce.cumsum(-2)], dim=-2)  # [..., 4, D]
        z = self.head_ln(h.unsqueeze(-2) + cum)
        hid = F.gelu(torch.einsum("...vd,vdh->...vh", z, self.head_w1) + self.head_b1)
        logits = torch.einsum("...vh,vho->...vo", hid, self.head_w2) + self.head_b2
        pc = torch.einsum("...vh,vhc->...vc", hid, self.head_pc)[..., self.token_pc]
        return torch.cat([logits[..., :2], logits[..., 2:] + pc], dim=-1)

    def forward(self, idx: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.heads(self.trunk(idx), target)

    def head(self, voice: int, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Logits ``[VOCAB]`` for one voice from a state ``[D]`` and its conditioning sum ``[D]``."""
        z = self.head_ln(h + cond)
        hid = F.gelu(z @ self.head_w1[voice] + self.head_b1[voice])
        logits = hid @ self.head_w2[voice] + self.head_b2[voice]
        logits[2:] += (hid @ self.head_pc[voice])[self.token_pc]
        return logits

    def cond_vector(self, voice: int, token: int) -> torch.Tensor:
        return self.cond.weight[voice * VOCAB + token]


class Cache:
    """Keys and values of the frames seen so far, for incremental inference (batch of one).

    Holds at most ``cfg.context`` frames; older frames slide out of attention (rotary
    positions keep the relative offsets right; as in streaming transformers, the deeper
    layers' cached keys of the kept frames still carry what they saw before). Up to the
    context length, ``feed`` equals a full recomputation. ``truncate(n)`` forgets the
    frames from the n-th on, so speculative frames can be undone and recomputed with
    what really happened.
    """

    ROPE_CHUNK = 4096

    def __init__(self, net: FrameNet):
        cfg = net.cfg
        self.net = net
        self.capacity = cfg.context
        self.n_heads = cfg.n_heads
        shape = (1, cfg.n_heads, self.capacity, net.head_dim)
        self.k = [torch.zeros(shape) for _ in net.blocks]
        self.v = [torch.zeros(shape) for _ in net.blocks]
        self.first = 0  # absolute frame index of cache row 0
        self.length = 0  # rows in use
        self.last_state: torch.Tensor | None = None
        # Plain tensors of every layer, to skip nn.Module dispatch per frame. The query and key
        # rows are reordered within each head so that rotary pairs (i, i + hd/2) sit side by
        # side and rotate as complex numbers: one multiply instead of half-split arithmetic.
        # Queries and keys move alike, so their dot products are unchanged.
        hd = net.head_dim
        d = cfg.d_model
        pair = torch.stack([torch.arange(hd // 2), torch.arange(hd // 2) + hd // 2], dim=1).reshape(-1)
        perm = torch.cat([part * d + h * hd + pair for part in (0, 1) for h in range(cfg.n_heads)]
                         + [torch.arange(2 * d, 3 * d)])
        with torch.no_grad():
            self.layers = [(b.ln1.weight, b.ln1.bias, b.qkv.weight[perm].contiguous(), b.qkv.bias[perm].contiguous(),
                            b.proj.weight, b.proj.bias, b.ln2.weight, b.ln2.bias, b.fc1.weight, b.fc1.bias,
                            b.fc2.weight, b.fc2.bias) for b in net.blocks]
        self._rope_base = None
        self._rot = None

    @property
    def end(self) -> int:
        """Absolute index of the next frame to feed."""
        return self.first + self.length

    def truncate(self, end: int) -> None:
        """Forget frames from absolute index ``end`` on (no-op if ``end`` is past the cache)."""
        if end < self.end:
            self.length = max(0, end - self.first)
            self.last_state = None

    def _make_room(self, t: int) -> None:
        if self.length + t <= self.capacity:
            return
        keep = max(0, self.capacity - t - self.capacity // 4)
        drop = self.length - keep
        for kc, vc in zip(self.k, self.v):
            kc[:, :, :keep] = kc[:, :, drop:self.length].clone()
            vc[:, :, :keep] = vc[:, :, drop:self.length].clone()
        self.first += drop
        self.length = keep

    def _rope(self, start: int, t: int) -> torch.Tensor:
        """Complex rotations ``[t, head_dim/2]`` for absolute positions start..start+t-1."""
        base = self._rope_base
        if base is None or start < base or start + t > base + self.ROPE_CHUNK:
            base = start - 64
            cos, sin = rope_tables(torch.arange(base, base + self.ROPE_CHUNK), self.net.head_dim,
                                   self.net.cfg.rope_base)
            self._rot = torch.complex(cos, sin)
            self._rope_base = base
        i = start - base
        return self._rot[i:i + t]

    @torch.inference_mode()
    def feed(self, idx: torch.Tensor) -> torch.Tensor:
        """Feed frames ``[T, N_INPUT_SLOTS]`` (T <= capacity); returns their states ``[T, D]``."""
        net = self.net
        T = idx.shape[0]
        self._make_room(T)
        n = self.length
        rot = self._rope(self.end, T)
        H = self.n_heads
        D = net.cfg.d_model
        hd = D // H
        x = F.embedding(idx, net.inp.weight).sum(-2)  # [T, D]
        mask = None if T == 1 else torch.ones(T, n + T, dtype=torch.bool).tril(diagonal=n)
        for (l1w, l1b, qw, qb, pw, pb, l2w, l2b, f1w, f1b, f2w, f2b), kc, vc in zip(self.layers, self.k, self.v):
            qkv = F.linear(F.layer_norm(x, (D,), l1w, l1b), qw, qb).view(T, 3, H, hd).permute(1, 2, 0, 3)
            qk = torch.view_as_real(torch.view_as_complex(qkv[:2].unflatten(-1, (hd // 2, 2))) * rot).flatten(-2)
            kc[0, :, n:n + T] = qk[1]
            vc[0, :, n:n + T] = qkv[2]
            a = F.scaled_dot_product_attention(qk[0].unsqueeze(0), kc[:, :, :n + T], vc[:, :, :n + T],
                                               attn_mask=mask)
            x = x + F.linear(a[0].transpose(0, 1).reshape(T, D), pw, pb)
            x = x + F.linear(F.gelu(F.linear(F.layer_norm(x, (D,), l2w, l2b), f1w, f1b)), f2w, f2b)
        self.length += T
        h = F.layer_norm(x, (D,), net.ln_f.weight, net.ln_f.bias)
        self.last_state = h[-1]
        return h


class NumpyHeads:
    """``FrameNet.head`` and ``cond_vector`` in numpy float32, for the per-voice choices of
    live generation (tiny matrices: numpy's per-call overhead is a fraction of torch's)."""

    def __init__(self, net: FrameNet):
        from scipy.special import erf

        self._erf = erf
        g = lambda t: t.detach().numpy().astype(np.float32).copy()  # noqa: E731
        self.ln_w, self.ln_b, self.eps = g(net.head_ln.weight), g(net.head_ln.bias), net.head_ln.eps
        self.w1, self.b1 = g(net.head_w1), g(net.head_b1)
        self.w2, self.b2 = g(net.head_w2), g(net.head_b2)
        self.pc = g(net.head_pc)
        self.token_pc = _TOKEN_PC[2:]
        self.cond = g(net.cond.weight)

    def __call__(self, voice: int, h: np.ndarray, cond: np.ndarray) -> np.ndarray:
        z = h + cond
        z = z - z.mean()
        z = z / np.sqrt((z * z).mean() + self.eps) * self.ln_w + self.ln_b
        a = z @ self.w1[voice] + self.b1[voice]
        hid = 0.5 * a * (1.0 + self._erf(a * 0.7071067811865476))
        logits = (hid @ self.w2[voice] + self.b2[voice]).astype(np.float64)
        logits[2:] += (hid @ self.pc[voice])[self.token_pc]
        return logits

    def cond_vector(self, voice: int, token: int) -> np.ndarray:
        return self.cond[voice * VOCAB + token]


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
