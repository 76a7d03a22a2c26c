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


class _Positions:
    """Predicted positions of a list of frame arrays, read either way.

    ``prev(i)`` is the token i steps back in the chosen reading (REST before the start),
    without materialising all contexts at once.
    """

    def __init__(self, tracks: list[np.ndarray], mode: str):
        self.mode = mode
        flat, voice, target_idx = [], [], []
        base = 0
        for toks in tracks:
            toks = np.asarray(toks, dtype=np.int64)
            T = len(toks)
            if T < 2:
                continue
            if mode == "voice":
                # one stream per voice, each padded in front by its own start
                for v in range(N_VOICES):
                    flat.append(toks[:, v])
                    idx = base + np.arange(1, T)
                    voice.append(np.full(T - 1, v))
                    target_idx.append(idx)
                    base += T
            else:
                flat.append(toks.reshape(-1))
                pos = np.arange(N_VOICES, T * N_VOICES)
                voice.append(pos % N_VOICES)
                target_idx.append(base + pos)
                base += T * N_VOICES
        self.flat = np.concatenate(flat) if flat else np.zeros(0, np.int64)
        self.voice = np.concatenate(voice) if voice else np.zeros(0, np.int64)
        self.idx = np.concatenate(target_idx) if target_idx else np.zeros(0, np.int64)
        # first index of the stream each position belongs to, for padding with REST
        starts = np.zeros(len(self.flat), dtype=np.int64)
        pos = 0
        for arr in flat:
            starts[pos:pos + len(arr)] = pos
            pos += len(arr)
        self.start = starts[self.idx] if len(self.idx) else self.idx
        # frame-major order of predicted positions (voice mode stores voice-major)
        if mode == "voice":
            order = []
            off = 0
            for toks in tracks:
                T = len(toks)
                if T < 2:
                    continue
                grid = off + np.arange(N_VOICES)[None, :] * (T - 1) + np.arange(T - 1)[:, None]
                order.append(grid.reshape(-1))
                off += N_VOICES * (T - 1)
            self.frame_major = np.concatenate(order) if order else np.zeros(0, np.int64)
        else:
            self.frame_major = np.arange(len(self.idx))

    @property
    def target(self) -> np.ndarray:
        return self.flat[self.idx]

    def prev(self, i: int) -> np.ndarray:
        j = self.idx - i
        return np.where(j >= self.start, self.flat[np.maximum(j, 0)], REST)


@dataclass
class _Table:
    ctx_keys: np.ndarray
    ctx_count: np.ndarray
    ctx_types: np.ndarray
    pair_keys: np.ndarray
    pair_count: np.ndarray


class NGram:
    """Interpolated Witten-Bell n-gram (context of order-1 tokens, plus the voice)."""

    def __init__(self, order: int = 4, mode: str = "voice"):
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}")
        self.order = order
        self.mode = mode
        self.tables: list[_Table] = []

    def fit(self, tracks: list[np.ndarray]) -> "NGram":
        pos = _Positions(tracks, self.mode)
        target = pos.target
        key = pos.voice.astype(np.int64)
        self.tables = []
        for k in range(self.order):
            if k:
                key = key * VOCAB + pos.prev(k)
            pair_keys, pair_count = np.unique(key * VOCAB + target, return_counts=True)
            pair_ctx = pair_keys // VOCAB
            ctx_keys, first, ctx_types = np.unique(pair_ctx, return_index=True, return_counts=True)
            ctx_count = np.add.reduceat(pair_count, first)
            self.tables.append(_Table(ctx_keys, ctx_count, ctx_types, pair_keys, pair_count))
        return self

    def truncated(self, order: int) -> "NGram":
        """The same counts used as an n-gram of a lower order."""
        m = NGram(order, self.mode)
        m.tables = self.tables[:order]
        return m

    @staticmethod
    def _lookup(keys: np.ndarray, table_keys: np.ndarray, values: np.ndarray) -> np.ndarray:
        i = np.searchsorted(table_keys, keys)
        i = np.minimum(i, len(table_keys) - 1)
        hit = table_keys[i] == keys
        return np.where(hit, values[i], 0)

    def logprobs(self, tracks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Natural-log probability of every predicted token (frame-major: frames 1..T-1 of
        each track, voices bass, mid, high, lead), and its voice id."""
        pos = _Positions(tracks, self.mode)
        target = pos.target
        key = pos.voice.astype(np.int64)
        p = np.full(len(target), 1.0 / VOCAB)
        for k, tab in enumerate(self.tables):
            if k:
                key = key * VOCAB + pos.prev(k)
            c_ctx = self._lookup(key, tab.ctx_keys, tab.ctx_count).astype(np.float64)
            n_types = self._lookup(key, tab.ctx_keys, tab.ctx_types).astype(np.float64)
            c_pair = self._lookup(key * VOCAB + target, tab.pair_keys, tab.pair_count).astype(np.float64)
            p = np.where(c_ctx > 0, (c_pair + n_types * p) / np.maximum(c_ctx + n_types, 1), p)
        return np.log(p)[pos.frame_major], pos.voice[pos.frame_major]
