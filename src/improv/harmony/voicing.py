"""How each band player plays from the chord in force: pitch biases (nats, one per
pitch of the model's range) and a hook, added to what :mod:`improv.band.players` asks of
the model. The model still chooses rhythm and line; these move its choice of pitch.

* bass: chord tones; on strong beats (the bar's first beat and its middle) the root,
  else the fifth; on the beat before a change, a step to the next chord's root is
  welcome too (the approach note).
* mid: chord tones, the guide tones (third, seventh) first.
* high: a counterline: chord tones on the beats; with given changes, passing notes
  between them are allowed off the beat (a smaller penalty), so it resolves to chord
  tones.
* fight: the chord's tones are pushed away instead (it bends the changes on purpose).

A note still sounding when the chord no longer holds it is not held on (the hook
forbids HOLD), so a band's note does not ring across a change it clashes with.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..model.encoding import PITCH_HI, PITCH_LO
from .source import HarmonyNow

_PITCHES = np.arange(PITCH_LO, PITCH_HI + 1)
_PCS = _PITCHES % 12

# nats against a pitch class that is surely not a chord tone: (given chords, followed)
OFF_CHORD = {"bass": (9.0, 9.0), "mid": (7.0, 7.0), "high": (6.0, 6.0)}
OFF_BEAT_HIGH = 0.45        # the high band's penalty off the beat: this share (passing notes), given chords
ROOT_FOLLOWED = 1.0         # nats toward the root on strong beats when the chord is followed (given: 3)


def chord_bias(band: str, h: HarmonyNow, mode: str, on_beat: bool, strong: bool, t: float,
               beat_seconds: float) -> tuple[np.ndarray, Callable | None]:
    """(pitch biases, hook) for ``band`` at a frame at ``t`` with harmony ``h``."""
    tones = h.tones[_PCS]
    pv = np.zeros(len(_PITCHES))
    if mode == "fight":
        pv += np.where(tones > 0.5, -1.5, 0.5)
        return pv, None
    strict, loose = OFF_CHORD[band]
    weight = strict if h.strict else loose
    penalty = weight * (1.0 - tones)
    if band == "high" and not on_beat and h.strict:
        penalty *= OFF_BEAT_HIGH
    pv -= penalty
    c = h.chord
    if c is not None:
        third = [(c.root + i) % 12 for i in (3, 4) if (c.root + i) % 12 in c.tones]
        seventh = [(c.root + i) % 12 for i in (10, 11) if (c.root + i) % 12 in c.tones]
        fifth = c.fifth
        if band == "bass":
            roots = h.roots[_PCS]
            if strong:
                pv += (3.0 if h.strict else ROOT_FOLLOWED) * roots
                if fifth is not None:
                    pv[_PCS == fifth] += 1.0
                pv[(tones > 0.5) & (roots < 0.5) & (_PCS != (fifth if fifth is not None else -1))] -= 1.5
                if h.strict and c.bass != c.root:  # a slash chord: its bass note on the strong beats
                    pv[_PCS == c.bass] += 4.0
            else:
                pv += 1.0 * roots
                if fifth is not None:
                    pv[_PCS == fifth] += 0.5
            if h.next is not None and h.next_at is not None and 0 < h.next_at - t <= beat_seconds + 1e-6 \
                    and not strong:
                target = h.next.bass
                approach = ((_PCS - target) % 12 == 1) | ((_PCS - target) % 12 == 11)
                pv[approach] += weight * 0.8  # a half step to the next root is welcome here
        elif band == "mid":
            for pc in third + seventh:
                pv[_PCS == pc] += 1.0
        elif band == "high" and on_beat:
            for pc in third + seventh:
                pv[_PCS == pc] += 0.5
    off = tones < 0.5

    def release(ctx, logits: np.ndarray) -> None:
        p = ctx.sounding.get(ctx.voice)
        if p is not None and PITCH_LO <= p <= PITCH_HI and off[p - PITCH_LO]:
            logits[1] = -np.inf  # no HOLD of a note the chord no longer holds

    return pv, release


__all__ = ["OFF_CHORD", "chord_bias"]
