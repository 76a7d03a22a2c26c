"""Synthetic test signals: harmonic tones with vibrato, bends, detuning, noise.

Every signal comes with its exact truth (onset, offset, MIDI pitch) so tests can state
tolerances in milliseconds and cents.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ToneSpec:
    onset: float        # seconds
    duration: float     # seconds
    midi: float         # fractional MIDI pitch (A4 = 440 Hz)
    amp: float = 0.3
    vibrato_cents: float = 0.0
    vibrato_hz: float = 6.0
    bend_to: float | None = None  # glide linearly to this MIDI pitch ...
    bend_time: float = 0.3        # ... over this long, starting at bend_start
    bend_start: float = 0.1


def midi_to_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


def render(specs: list[ToneSpec], sr: int, total: float | None = None, noise_db: float = -70.0,
           partials: int = 8, attack: float = 0.01, release: float = 0.03, seed: int = 0) -> np.ndarray:
    """Sum of harmonic tones (1/k amplitudes) with attack/release ramps, plus white noise."""
    end = total or max(s.onset + s.duration for s in specs) + 0.3
    out = np.zeros(int(end * sr), dtype=np.float64)
    for s in specs:
        n = int(s.duration * sr)
        t = np.arange(n) / sr
        pitch = np.full(n, s.midi, dtype=np.float64)
        if s.bend_to is not None:
            frac = np.clip((t - s.bend_start) / s.bend_time, 0.0, 1.0)
            pitch = s.midi + (s.bend_to - s.midi) * frac
        if s.vibrato_cents:
            pitch = pitch + (s.vibrato_cents / 100.0) * np.sin(2 * np.pi * s.vibrato_hz * t)
        phase = 2 * np.pi * np.cumsum(midi_to_hz(pitch)) / sr
        f_top = float(midi_to_hz(pitch.max()))
        tone = sum((1.0 / k) * np.sin(k * phase) for k in range(1, partials + 1) if k * f_top < 0.45 * sr)
        env = np.ones(n)
        a, r = int(attack * sr), int(release * sr)
        env[:a] = np.linspace(0, 1, a, endpoint=False)
        env[n - r:] = np.linspace(1, 0, r)
        i0 = int(s.onset * sr)
        out[i0:i0 + n] += s.amp * env * tone / 1.5
    rng = np.random.default_rng(seed)
    out += 10 ** (noise_db / 20.0) * rng.standard_normal(len(out))
    return out.astype(np.float32)
