"""``improv eval-model``: held-out likelihood against an n-gram, and accompaniment statistics.

Likelihood: every token of every held-out frame (both timings), the transformer given
no control codes (the n-gram has none), scored with windows of ``context`` frames
sliding by half a window so every frame after the first half-window sees at least
that much past. Figures are nats per token and per note event (total over onsets).

Accompaniment: held-out metered pieces that have one. The band listens from the bar of
the player's first note for ``listen_bars`` bars, then plays; both the generated and the
real accompaniment are scored from that entry on. The real lead is fed to a live
``Session`` beat by beat (each note observed when it starts, released when it ends; no
look-ahead), the three bands are proposed one beat at a time with role accompany, the
real part's density and register, and a pitch range covering the default band range
and the real part. The same statistics are taken on the real accompaniment:

* in-scale rate: band notes whose pitch class is in the piece's key (Krumhansl-
  Schmuckler over the real piece; major scale, or natural minor plus the raised 7th);
* strong-beat consonance: at bar downbeats (and half-bars in even metres) where the
  lead and a band sound, the interval class is 0, 3, 4, 7, 8 or 9;
* strong-beat consonance "heard": the same against the player's pitch just before the
  strong beat, the last one a band deciding ahead of the beat can know;
* range adherence and monophony (generated only; both by construction);
* repetition: non-empty one-bar patterns of a band voice that repeat an earlier bar;
* novelty: non-empty one-bar patterns absent from the training split's bars.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .data import Rendering
from .encoding import (BANDS, CHORD_UNKNOWN, LEAD, N_VOICES, POS_UNKNOWN, UNKNOWN, VOICES, frames_to_notes,
                       sounding_pitch)
from .net import FrameNet, input_indices
from .ngram import MODES, NGram
from .sampling import chain
from .sampling import harmonize as harmonize_hook
from .sampling import keep_key as key_hook
from .session import DEFAULT_RANGES, VoiceControl
from .store import BandModel

Progress = Callable[[str, int, int], None]
CONSONANT = (0, 3, 4, 7, 8, 9)
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10, 11)


# ------------------------------------------------------------------ likelihood


@torch.inference_mode()
def model_logprobs(net: FrameNet, tokens: np.ndarray, barpos: np.ndarray, batch: int = 16,
                   chords: np.ndarray | None = None) -> np.ndarray:
    """Log-probabilities ``[T-1, 4]`` of frames 1..T-1 of one rendering, controls unknown; for a
    model with the chord control, the chord classes ``[T]`` of the frames (None: all unknown)."""
    L = net.cfg.context
    T = len(tokens)
    half = L // 2
    starts = [0] if T <= L + 1 else list(range(0, T - L - 1, half)) + [T - L - 1]
    out = np.zeros((T - 1, N_VOICES))
    done = np.zeros(T - 1, dtype=bool)
    wins = []
    for s in starts:
        e = min(T, s + L + 1)
        wins.append((s, e))
    for i in range(0, len(wins), batch):
        group = wins[i:i + batch]
        n = max(e - s for s, e in group)
        tok = np.zeros((len(group), n, N_VOICES), dtype=np.int64)
        pos = np.full((len(group), n), POS_UNKNOWN, dtype=np.int64)
        for j, (s, e) in enumerate(group):
            tok[j, :e - s] = tokens[s:e]
            pos[j, :e - s] = barpos[s:e]
        t = torch.from_numpy(tok)
        ctrl = torch.full((len(group), n - 1, N_VOICES, 3), UNKNOWN, dtype=torch.long)
        ch = None
        if net.cfg.chords:
            ch = np.full((len(group), n), CHORD_UNKNOWN, dtype=np.int64)
            if chords is not None:
                for j, (s, e) in enumerate(group):
                    ch[j, :e - s] = chords[s:e]
            ch = torch.from_numpy(ch[:, 1:])  # each frame carries the chord of the frame it predicts
        idx = input_indices(t[:, :-1], torch.from_numpy(pos)[:, :-1], ctrl, ch)
        logits = net(idx, t[:, 1:])
        lp = torch.gather(F.log_softmax(logits, -1), -1, t[:, 1:].unsqueeze(-1)).squeeze(-1).numpy()
        for j, (s, e) in enumerate(group):
            # Frames predicted by this window: s+1..e-1; keep those not yet scored, except the
            # first half of a later window (too little context), which an earlier one scored.
            first = s + 1 if s == 0 else s + 1 + half
            for f in range(first, e):
                if not done[f - 1]:
                    out[f - 1] = lp[j, f - s - 1]
                    done[f - 1] = True
    return out


@dataclass
class NLLReport:
    tokens: int
    events: int
    model_per_token: float
    ngram_per_token: float
    model_per_event: float
    ngram_per_event: float
    ngram_order: int
    ngram_mode: str
    per_source: dict

    @property
    def improvement(self) -> float:
        """Relative reduction of the n-gram's NLL by the model (0.15 = 15% lower)."""
        return 1.0 - self.model_per_token / self.ngram_per_token


def select_ngram(train_r: Rendering, val_r: Rendering, orders=range(2, 9), progress: Progress | None = None
                 ) -> tuple[NGram, dict]:
    """The n-gram (reading and order) with the lowest NLL on the validation split."""
    train_tracks = [train_r.frames(k)[0] for k in range(len(train_r.start))]
    val_tracks = [val_r.frames(k)[0] for k in range(len(val_r.start))]
    best, table = None, {}
    orders = list(orders)
    total = len(MODES) * len(orders)
    i = 0
    for mode in MODES:
        full = NGram(max(orders), mode).fit(train_tracks)
        for order in orders:
            m = full.truncated(order)
            lp, _ = m.logprobs(val_tracks)
            nll = float(-lp.mean())
            table[f"{mode}-{order}"] = nll
            if best is None or nll < best[0]:
                best = (nll, m)
            i += 1
            if progress:
                progress("n-gram orders on the validation split", i, total)
    return best[1], table


def evaluate_nll(net: FrameNet, ngram: NGram, test_r: Rendering, progress: Progress | None = None,
                 chords: bool = False) -> NLLReport:
    """The model's and the n-gram's NLL on ``test_r``; ``chords``: give a model with the chord
    control the corpus's chords (else every chord is unknown, as for a model without it)."""
    tracks = [test_r.frames(k)[0] for k in range(len(test_r.start))]
    ng_lp, ng_voice = ngram.logprobs(tracks)
    # The n-gram's positions are frame-major in both modes: frame 1..T-1, voices 0..3.
    offs = np.cumsum([0] + [(len(t) - 1) * N_VOICES for t in tracks])
    sums: dict[str, list[float]] = {}
    tot_m = tot_n = 0.0
    n_tok = n_ev = 0
    for k in range(len(test_r.start)):
        toks, pos = test_r.frames(k)
        if len(toks) < 2:
            continue
        lp = model_logprobs(net, toks, pos, chords=test_r.frame_chords(k) if chords else None)
        m = -lp.sum()
        n = -ng_lp[offs[k]:offs[k + 1]].sum()
        ev = int((toks[1:] >= 2).sum())
        src = test_r.sources[test_r.piece[k]] + ("" if test_r.metered[k] else " (unmetered)")
        s = sums.setdefault(src, [0.0, 0.0, 0, 0])
        s[0] += m
        s[1] += n
        s[2] += lp.size
        s[3] += ev
        tot_m, tot_n, n_tok, n_ev = tot_m + m, tot_n + n, n_tok + lp.size, n_ev + ev
        if progress:
            progress("held-out likelihood", k + 1, len(test_r.start))
    per_source = {src: {"tokens": s[2], "events": s[3], "model_per_token": s[0] / s[2], "ngram_per_token": s[1] / s[2],
                        "improvement": 1 - s[0] / s[1]} for src, s in sorted(sums.items())}
    return NLLReport(tokens=n_tok, events=n_ev, model_per_token=tot_m / n_tok, ngram_per_token=tot_n / n_tok,
                     model_per_event=tot_m / max(n_ev, 1), ngram_per_event=tot_n / max(n_ev, 1),
                     ngram_order=ngram.order, ngram_mode=ngram.mode, per_source=per_source)


# ------------------------------------------------------------------ accompaniment


def estimate_key(notes: np.ndarray) -> tuple[int, bool]:
    """(tonic pitch class, is_major) by Krumhansl-Schmuckler over duration-weighted pitch classes."""
    hist = np.zeros(12)
    for _, p, s, e in notes:
        hist[int(p) % 12] += max(e - s, 1e-3)
    best = (-2.0, 0, True)
    for tonic in range(12):
        for major, prof in ((True, MAJOR), (False, MINOR)):
            r = np.corrcoef(hist, np.roll(prof, tonic))[0, 1]
            if np.isfinite(r) and r > best[0]:
                best = (r, tonic, major)
    return best[1], best[2]


def in_scale(pitches: np.ndarray, key: tuple[int, bool]) -> np.ndarray:
    tonic, major = key
    scale = np.array(MAJOR_SCALE if major else MINOR_SCALE)
    return np.isin((np.asarray(pitches, dtype=np.int64) - tonic) % 12, scale)


def strong_frames(barpos: np.ndarray, bar_frames: int) -> np.ndarray:
    strong = barpos == 0
    if bar_frames % 8 == 0:
        strong |= barpos == bar_frames // 2
    return strong


def bar_patterns(tokens: np.ndarray, barpos: np.ndarray, bar_frames: int, voices=(0, 1, 2)) -> list[bytes]:
    """Non-empty one-bar token patterns of the given voices, prefixed by the voice."""
    out = []
    starts = np.flatnonzero(barpos == 0)
    for s in starts:
        if s + bar_frames > len(tokens):
            break
        block = tokens[s:s + bar_frames]
        for v in voices:
            col = block[:, v]
            if (col >= 2).any():
                out.append(bytes([v]) + col.astype(np.uint8).tobytes())
    return out


def training_bars(train_r: Rendering) -> set[bytes]:
    seen: set[bytes] = set()
    for k in np.flatnonzero(train_r.metered):
        toks, pos = train_r.frames(k)
        bf = int(pos.max()) + 1 if len(pos) else 16
        seen.update(bar_patterns(toks, pos, bf))
    return seen


@dataclass
class AccompStats:
    notes: int = 0
    in_scale: int = 0
    strong: int = 0
    consonant: int = 0
    in_range: int = 0
    overlaps: int = 0
    bars: int = 0
    repeated: int = 0
    novel: int = 0
    heard_pairs: int = 0
    heard_consonant: int = 0

    def row(self) -> dict:
        d = max(self.notes, 1)
        return {"notes": self.notes, "in_scale": self.in_scale / d,
                "strong_beat_consonance": self.consonant / max(self.strong, 1), "strong_beat_pairs": self.strong,
                "strong_beat_consonance_heard": self.heard_consonant / max(self.heard_pairs, 1),
                "range_adherence": self.in_range / d, "monophony": 1 - self.overlaps / d,
                "repetition": self.repeated / max(self.bars, 1), "novelty": self.novel / max(self.bars, 1),
                "bars": self.bars}


def _score(stats: AccompStats, band_tokens: np.ndarray, lead_tokens: np.ndarray, barpos: np.ndarray,
           bar_frames: int, key, ranges: dict[str, tuple[int, int]] | None, train_bars: set[bytes]) -> None:
    notes = frames_to_notes(np.concatenate([band_tokens, lead_tokens[:, None]], axis=1)[:, :3])
    pitches = notes[:, 1]
    stats.notes += len(notes)
    stats.in_scale += int(in_scale(pitches, key).sum())
    if ranges is not None:
        for v, band in enumerate(BANDS):
            lo, hi = ranges[band]
            sel = notes[:, 0] == v
            stats.in_range += int(((notes[sel, 1] >= lo) & (notes[sel, 1] <= hi)).sum())
    else:
        stats.in_range += len(notes)
    snd = sounding_pitch(np.concatenate([band_tokens, lead_tokens[:, None]], axis=1))
    strong = strong_frames(barpos, bar_frames)
    lead = snd[:, 3]
    heard = np.concatenate([[-1], lead[:-1]])  # the player's pitch in the frame before
    for v in range(3):
        both = strong & (lead >= 0) & (snd[:, v] >= 0)
        stats.strong += int(both.sum())
        stats.consonant += int(np.isin((snd[both, v] - lead[both]) % 12, CONSONANT).sum())
        both = strong & (heard >= 0) & (snd[:, v] >= 0)
        stats.heard_pairs += int(both.sum())
        stats.heard_consonant += int(np.isin((snd[both, v] - heard[both]) % 12, CONSONANT).sum())
    full = np.zeros((len(band_tokens), N_VOICES), dtype=np.int64)
    full[:, :3] = band_tokens
    pats = bar_patterns(full, barpos, bar_frames)
    seen: set[bytes] = set()
    for p in pats:
        stats.bars += 1
        stats.repeated += p in seen
        stats.novel += train_bars is not None and p not in train_bars
        seen.add(p)


def generated_overlaps(session, voices=BANDS) -> int:
    """Notes of a session's voices that start before the previous note of the voice ended."""
    bad = 0
    for v in voices:
        prev_end = None
        for _, s, e in session.notes(v):
            if prev_end is not None and s < prev_end - 1e-9:
                bad += 1
            prev_end = e if e is not None else float("inf")
    return bad


def accompany(model: BandModel, tokens: np.ndarray, barpos: np.ndarray, seed: int,
              temperature: float = 1.0, top_p: float = 0.95, lead_guess: str = "hold", horizon: float = 1.0,
              hooks=None, entry: float = 0.0):
    """Run a live session over a piece's real lead; returns (band tokens [T, 3], ranges, session).

    The bands come in at ``entry`` (beats): before that the session only listens."""
    unit = 0.25
    bar_frames = int(barpos.max()) + 1
    phase_frame = int(np.flatnonzero(barpos == 0)[0]) if (barpos == 0).any() else 0
    sess = model.session(metered=True, beats_per_bar=bar_frames / 4, bar_phase=phase_frame * unit, seed=seed,
                         temperature=temperature, top_p=top_p, lead_guess=lead_guess)
    real = frames_to_notes(tokens)
    controls, ranges = {}, {}
    n_beats = len(tokens) / 4
    # The controls describe the real part where the band plays (from its entry on).
    played = real[real[:, 2] >= entry] if (real[:, 2] >= entry).any() else real
    span = max(n_beats - entry, 1.0) if (real[:, 2] >= entry).any() else n_beats
    for v, band in enumerate(BANDS):
        part = played[played[:, 0] == v]
        lo, hi = DEFAULT_RANGES[band]
        if len(part):
            lo, hi = int(min(lo, part[:, 1].min())), int(max(hi, part[:, 1].max()))
            controls[band] = VoiceControl(role="accompany", density=min(16.0, len(part) / span),
                                          register=float(part[:, 1].mean()), low=lo, high=hi)
        else:
            controls[band] = VoiceControl(role="silent", low=lo, high=hi)
        ranges[band] = (lo, hi)
    lead = real[real[:, 0] == LEAD]
    started = 0
    open_until: float | None = None
    for step in range(int(np.ceil(n_beats / horizon))):
        now = step * horizon
        if open_until is not None and open_until <= now:
            sess.note_off("lead", open_until)
            open_until = None
        while started < len(lead) and lead[started, 2] < now:
            _, p, s, e = lead[started]
            if open_until is not None:
                open_until = None
            if e <= now:
                sess.observe("lead", int(p), s, e)
            else:
                sess.observe("lead", int(p), s)
                open_until = e
            started += 1
        if now < entry - 1e-9:
            continue
        prop = sess.propose(now, voices=BANDS, controls=controls, horizon=horizon, hooks=hooks)
        sess.accept(prop)
    band = np.zeros((len(tokens), 3), dtype=np.int64)
    from .encoding import notes_to_frames
    rows = [(VOICES.index(b), p, s, e if e is not None else len(tokens) * unit)
            for b in BANDS for p, s, e in sess.notes(b)]
    if rows:
        band = notes_to_frames(np.array(rows, dtype=np.float64), len(tokens), unit)[:, :3].astype(np.int64)
    return band, ranges, sess


def accompany_hooks(keep_key: float = 0.0, harmonize: float = 0.0):
    """The hooks of harmonic accompaniment at these strengths (nats; 0 = off), or None."""
    hooks = [key_hook(keep_key) if keep_key > 0 else None, harmonize_hook(harmonize) if harmonize > 0 else None]
    return chain(*hooks) if any(hooks) else None


ACCOMPANIMENT_SOURCES = ("chorales", "quartets", "pop909", "nottingham")  # the corpora with a real accompaniment


def evaluate_accompaniment(model: BandModel, test_r: Rendering, train_bars: set[bytes] | None, max_pieces: int = 25,
                           max_bars: int = 32, seed: int = 0, temperature: float = 1.0, top_p: float = 0.95,
                           lead_guess: str = "hold", horizon: float = 1.0, keep_key: float = 0.0,
                           listen_bars: int = 1, harmonize: float = 0.0, progress: Progress | None = None) -> dict:
    sources = ACCOMPANIMENT_SOURCES
    chosen = []
    for src in sources:
        ks = [k for k in range(len(test_r.start)) if test_r.metered[k] and test_r.sources[test_r.piece[k]] == src]
        chosen.extend(ks[:max_pieces])
    gen, real = AccompStats(), AccompStats()
    per_source: dict[str, dict] = {}
    for i, k in enumerate(chosen):
        toks, pos = test_r.frames(k)
        bar_frames = int(pos.max()) + 1
        # The band listens from the start of the bar of the player's first note (an
        # intro without a lead line gives it nothing to follow) for ``listen_bars`` bars,
        # then plays for up to ``max_bars`` bars; both parts are scored from its entry.
        lead_on = np.flatnonzero(toks[:, LEAD] >= 2)
        if not len(lead_on):
            continue
        downbeats = np.flatnonzero(pos == 0)
        before = downbeats[downbeats <= lead_on[0]]
        first = int(before[-1]) if len(before) else 0
        entry = first + listen_bars * bar_frames
        toks = toks[:entry + max_bars * bar_frames].astype(np.int64)
        pos = pos[:entry + max_bars * bar_frames].astype(np.int64)
        real_notes = frames_to_notes(toks)
        scored = real_notes[real_notes[:, 2] >= entry / 4]
        if not (scored[:, 0] < 3).any() or not (scored[:, 0] == LEAD).any():
            continue
        key = estimate_key(real_notes)
        band, ranges, sess = accompany(model, toks, pos, seed=seed + i, temperature=temperature, top_p=top_p,
                                       lead_guess=lead_guess, horizon=horizon,
                                       hooks=accompany_hooks(keep_key, harmonize), entry=entry / 4)
        # Both are scored from the band's entry on.
        band, pos_s, lead_s, real_s = band[entry:], pos[entry:], toks[entry:, LEAD], toks[entry:, :3]
        src = test_r.sources[test_r.piece[k]]
        g_src, r_src = per_source.setdefault(src, {"gen": AccompStats(), "real": AccompStats()}).values()
        for stats in (gen, g_src):
            _score(stats, band, lead_s, pos_s, bar_frames, key, ranges, train_bars)
            stats.overlaps += generated_overlaps(sess)
        for stats in (real, r_src):
            _score(stats, real_s, lead_s, pos_s, bar_frames, key, None, train_bars)
        if progress:
            progress("accompanying held-out lead lines", i + 1, len(chosen))
    rows = [gen.row(), real.row()]
    by_source = {s: {"generated": d["gen"].row(), "real": d["real"].row()} for s, d in per_source.items()}
    if train_bars is None:  # the training bars were not loaded: novelty is not measured
        for row in [*rows, *(r for d in by_source.values() for r in d.values())]:
            row["novelty"] = None
    return {"generated": rows[0], "real": rows[1], "per_source": by_source,
            "pieces": len(chosen), "max_bars": max_bars, "temperature": temperature, "top_p": top_p,
            "lead_guess": lead_guess, "horizon_beats": horizon, "keep_key": keep_key, "harmonize": harmonize,
            "listen_bars": listen_bars}
