"""Turning one voice's logits into a token: masks, hooks, temperature, top-p.

Hooks let the band bend the model at every step: a hook is any callable
``hook(ctx: StepContext, logits: numpy.ndarray) -> None`` that edits the logits of one
voice for one frame in place (index ``pitch_token(p)`` for pitch ``p``, ``REST``,
``HOLD``). Add to favour, subtract to avoid, set ``-inf`` to forbid. The model's own
masks (range, role, HOLD only while a note sounds) are applied after the hooks, so no
hook can break range adherence or monophony.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from .encoding import HOLD, PITCH_HI, PITCH_LO, REST, VOCAB, pitch_token

NEG_INF = -np.inf


@dataclass(frozen=True, slots=True)
class StepContext:
    """What a hook may look at when one voice's next frame is chosen.

    ``time`` is the frame's start in the session's units (beats or seconds);
    ``sounding`` maps every voice to the pitch it sounds just before this frame (None
    when silent; for the player past "now" this is the model's guess); ``chosen_tokens``
    holds the tokens already decided for this frame (the voices before this one: bass,
    mid, high, lead); ``lead_pitch`` is the player's last pitch actually heard (sounding
    or not; None before the first note); ``heard_pitch_classes`` the frames each pitch
    class sounded in the player's line over the last 16 beats (metered; 8 s unmetered)
    before the proposal; ``lead_forecast`` the model's expectation of the player's pitch
    class in this frame (``[12]``, summing to the chance that the player sounds; the band
    decides before it hears that note);
    ``low``/``high`` the voice's allowed range.
    """

    voice: str
    frame: int
    time: float
    bar_position: int | None
    sounding: dict[str, int | None]
    chosen_tokens: dict[str, int]
    lead_pitch: int | None
    low: int
    high: int
    heard_pitch_classes: np.ndarray | None = None
    lead_forecast: np.ndarray | None = None


Hook = Callable[[StepContext, np.ndarray], None]


def softmax_sample(logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> int:
    """Sample an index from logits (``-inf`` = forbidden) with temperature and nucleus top-p.

    Temperature 0 picks the most likely token.
    """
    if temperature <= 0:
        return int(np.argmax(logits))
    z = logits / temperature
    p = np.exp(z - z.max())
    if top_p < 1.0:
        order = np.argsort(-p)
        cum = np.cumsum(p[order])
        cut = int(np.searchsorted(cum, top_p * cum[-1])) + 1
        order = order[:cut]
        cum = cum[:cut]
        return int(order[min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), cut - 1)])
    cum = np.cumsum(p)
    return min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), len(p) - 1)


def allowed_mask(low: int, high: int, can_hold: bool, silent: bool) -> np.ndarray:
    """Boolean ``[VOCAB]``: REST always, HOLD while a note sounds, pitches in [low, high]."""
    m = np.zeros(VOCAB, dtype=bool)
    m[REST] = True
    if silent:
        return m
    m[HOLD] = can_hold
    lo, hi = max(low, PITCH_LO), min(high, PITCH_HI)
    if lo <= hi:
        m[pitch_token(lo):pitch_token(hi) + 1] = True
    return m


# ------------------------------------------------------------------ hooks for the band


def pitch_indices(pitches: Iterable[int]) -> np.ndarray:
    return np.array([pitch_token(p) for p in pitches if PITCH_LO <= p <= PITCH_HI], dtype=np.int64)


def bias_pitches(logits: np.ndarray, pitches: Iterable[int], amount: float) -> None:
    """Add ``amount`` (nats) to the logits of these pitches (negative to discourage)."""
    idx = pitch_indices(pitches)
    logits[idx] += amount


def forbid_pitches(logits: np.ndarray, pitches: Iterable[int]) -> None:
    logits[pitch_indices(pitches)] = NEG_INF


def make_room(semitones: int = 4, strength: float = float("inf")) -> Hook:
    """Keep away from the player's pitch: pitches within ``semitones`` of the lead's
    current (or last) pitch are forbidden (``strength`` inf) or discouraged by ``strength``."""

    def hook(ctx: StepContext, logits: np.ndarray) -> None:
        if ctx.lead_pitch is None:
            return
        near = range(ctx.lead_pitch - semitones, ctx.lead_pitch + semitones + 1)
        if strength == float("inf"):
            forbid_pitches(logits, near)
        else:
            bias_pitches(logits, near, -strength)

    return hook


DISSONANT = (1, 2, 6, 10, 11)


def fight(strength: float = 2.0) -> Hook:
    """Favour dissonance with the player: pitches a second, tritone or seventh away from
    the lead's pitch (any octave) get ``+strength``, consonant ones ``-strength/2``."""

    def hook(ctx: StepContext, logits: np.ndarray) -> None:
        if ctx.lead_pitch is None:
            return
        pitches = np.arange(PITCH_LO, PITCH_HI + 1)
        ic = (pitches - ctx.lead_pitch) % 12
        diss = np.isin(ic, DISSONANT)
        logits[2:] += np.where(diss, strength, -strength / 2)

    return hook


_KS_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_KS_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_PROFILES = np.array([np.roll(p, k) for p in (_KS_MAJOR, _KS_MINOR) for k in range(12)])  # [24, 12]
_PROFILES = (_PROFILES - _PROFILES.mean(1, keepdims=True)) / _PROFILES.std(1, keepdims=True)
_SCALES = np.array([np.isin((np.arange(12) - k) % 12, steps) for steps in ((0, 2, 4, 5, 7, 9, 11),
                                                                             (0, 2, 3, 5, 7, 8, 10, 11))
                    for k in range(12)])  # [24, 12]


def heard_key(pitch_classes: np.ndarray | None, min_frames: float = 16) -> np.ndarray | None:
    """The scale (bool ``[12]``) of the key that best fits the heard pitch classes
    (Krumhansl-Schmuckler; natural minor plus the raised 7th), None with too little heard."""
    if pitch_classes is None or pitch_classes.sum() < min_frames or pitch_classes.std() == 0:
        return None
    x = (pitch_classes - pitch_classes.mean()) / pitch_classes.std()
    return _SCALES[int(np.argmax(_PROFILES @ x))]


def keep_key(strength: float = 3.0) -> Hook:
    """Discourage (by ``strength`` nats) pitches outside the player's key (last 16 beats).

    The opposite of ``fight``; off until a few beats of music have been heard."""

    def hook(ctx: StepContext, logits: np.ndarray) -> None:
        scale = heard_key(ctx.heard_pitch_classes)
        if scale is None:
            return
        pcs = (np.arange(PITCH_LO, PITCH_HI + 1)) % 12
        logits[2:] -= np.where(scale[pcs], 0.0, strength)

    return hook


_CONSONANT_IC = np.isin(np.arange(12), (0, 3, 4, 7, 8, 9))
# [pitch class of the band's note, pitch class of the player's note] -> consonant?
_CONSONANT_PAIRS = _CONSONANT_IC[(np.arange(12)[:, None] - np.arange(12)[None, :]) % 12].astype(np.float64)


def harmonize(strength: float = 2.0, min_sounding: float = 0.3) -> Hook:
    """Favour notes consonant with the player's note *in this frame*, which the band cannot
    hear yet: each pitch gets ``strength`` x (the chance, under the model's forecast of the
    player's pitch class, that it is consonant with it), then all pitches are shifted
    together so that the chance of starting a note (against resting or holding) stays the
    model's: the hook changes which note, not how many. Off while the player is likely to
    rest (forecast mass below ``min_sounding``).
    The opposite of ``fight``; for harmonic accompaniment (with ``keep_key``)."""

    def hook(ctx: StepContext, logits: np.ndarray) -> None:
        q = ctx.lead_forecast
        if q is None or q.sum() < min_sounding:
            return
        c = _CONSONANT_PAIRS @ (q / q.sum())  # [12]: chance of consonance per pitch class
        pcs = np.arange(PITCH_LO, PITCH_HI + 1) % 12
        z = logits[2:]
        ok = np.isfinite(z)
        if not ok.any():
            return
        before = np.logaddexp.reduce(z[ok])
        z[ok] += strength * c[pcs[ok]]
        z[ok] += before - np.logaddexp.reduce(z[ok])

    return hook


def register_limits(low: int, high: int) -> Hook:
    """Forbid every pitch outside ``[low, high]``."""

    def hook(ctx: StepContext, logits: np.ndarray) -> None:
        logits[2:pitch_token(max(low, PITCH_LO))] = NEG_INF
        if high < PITCH_HI:
            logits[pitch_token(high) + 1:] = NEG_INF

    return hook


def chain(*hooks: Hook | None) -> Hook:
    """One hook applying several in order (None entries are skipped)."""
    real = [h for h in hooks if h is not None]

    def hook(ctx: StepContext, logits: np.ndarray) -> None:
        for h in real:
            h(ctx, logits)

    return hook
