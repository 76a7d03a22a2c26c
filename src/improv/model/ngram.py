"""The n-gram (Markov) baseline: interpolated Witten-Bell n-grams over the same frame tokens.

Two ways to read the past are offered and the better one on the validation split is
the baseline: ``voice`` (each voice's own last n-1 tokens) and ``stream`` (the last
n-1 tokens of the interleaved bass, mid, high, lead stream, i.e. the other voices'
latest tokens too). Both condition on which voice is predicted. Counting and lookup
are vectorised: a context is an integer in base VOCAB, counts come from ``np.unique``
and are looked up with ``np.searchsorted``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .encoding import N_VOICES, REST, VOCAB

MODES = ("voice", "stream")


def _sequences(tracks: list[np.ndarray], mode: str, order: int):
    """Per position: voice id, context tokens ``[M, order-1]`` (most recent first), target."""
    k = order - 1
    voices, ctxs, targets = [], [], []
    for toks in tracks:
        toks = np.asarray(toks, dtype=np.int64)
        T = len(toks)
        if T < 2:
            continue
        if mode == "voice":
            pad = np.vstack([np.full((k, N_VOICES), REST, dtype=np.int64), toks])
            # positions t = 1..T-1, all voices
            t = np.arange(1, T)
            ctx = np.stack([pad[t + k - i] for i in range(1, k + 1)], axis=-1) if k else \
                np.zeros((T - 1, N_VOICES, 0), dtype=np.int64)  # [T-1, V, k]
            voices.append(np.broadcast_to(np.arange(N_VOICES), (T - 1, N_VOICES)).reshape(-1))
            ctxs.append(ctx.reshape((T - 1) * N_VOICES, k))
            targets.append(toks[1:].reshape(-1))
        else:
            flat = toks.reshape(-1)
            pad = np.concatenate([np.full(k, REST, dtype=np.int64), flat])
            pos = np.arange(N_VOICES, len(flat))  # predict frames 1..T-1
            ctx = np.stack([pad[pos + k - i] for i in range(1, k + 1)], axis=-1) if k else \
                np.zeros((len(pos), 0), dtype=np.int64)
            voices.append(pos % N_VOICES)
            ctxs.append(ctx)
            targets.append(flat[pos])
    return np.concatenate(voices), np.concatenate(ctxs), np.concatenate(targets)


def _keys(voice: np.ndarray, ctx: np.ndarray, k: int) -> np.ndarray:
    key = voice.astype(np.int64)
    for i in range(k):
        key = key * VOCAB + ctx[:, i]
    return key


@dataclass
class _Table:
    ctx_keys: np.ndarray
    ctx_count: np.ndarray
    ctx_types: np.ndarray
    pair_keys: np.ndarray
    pair_count: np.ndarray


class NGram:
    """Interpolated Witten-Bell n-gram of a given order (context of order-1 tokens)."""

    def __init__(self, order: int = 4, mode: str = "voice"):
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}")
        self.order = order
        self.mode = mode
        self.tables: list[_Table] = []

    def fit(self, tracks: list[np.ndarray]) -> "NGram":
        voice, ctx, target = _sequences(tracks, self.mode, self.order)
        self.tables = []
        for k in range(self.order):
            ck = _keys(voice, ctx, k)
            pk = ck * VOCAB + target
            pair_keys, pair_count = np.unique(pk, return_counts=True)
            pair_ctx = pair_keys // VOCAB
            ctx_keys, ctx_types = np.unique(pair_ctx, return_counts=True)
            ctx_count = np.add.reduceat(pair_count, np.searchsorted(pair_ctx, ctx_keys))
            self.tables.append(_Table(ctx_keys, ctx_count, ctx_types, pair_keys, pair_count))
        return self

    @staticmethod
    def _lookup(keys: np.ndarray, table_keys: np.ndarray, values: np.ndarray) -> np.ndarray:
        i = np.searchsorted(table_keys, keys)
        i = np.minimum(i, len(table_keys) - 1)
        hit = table_keys[i] == keys
        return np.where(hit, values[i], 0)

    def logprobs(self, tracks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Natural-log probability of every predicted token, and its voice id."""
        voice, ctx, target = _sequences(tracks, self.mode, self.order)
        p = np.full(len(target), 1.0 / VOCAB)
        for k, tab in enumerate(self.tables):
            ck = _keys(voice, ctx, k)
            c_ctx = self._lookup(ck, tab.ctx_keys, tab.ctx_count).astype(np.float64)
            n_types = self._lookup(ck, tab.ctx_keys, tab.ctx_types).astype(np.float64)
            c_pair = self._lookup(ck * VOCAB + target, tab.pair_keys, tab.pair_count).astype(np.float64)
            seen = c_ctx > 0
            p = np.where(seen, (c_pair + n_types * p) / np.maximum(c_ctx + n_types, 1), p)
        return np.log(p), voice
