"""Online tempo and beat tracking from the player's note onsets (causal).

The tracker keeps the onsets of the last few seconds. Each new onset re-scores a set
of beat-grid hypotheses — every period on a 1 % log grid between ``min_bpm`` and
``max_bpm``, each with the phases that put a beat (or an off-beat) on one of the
latest onsets. A hypothesis's score adds up evidence: each onset's log support (1 on
a beat, less on the half, third and quarter beats, which of them depending on the
meter, a floor off the grid; long notes weigh more), a cost for each beat of the
grid that was not played, a preference for moderate tempos, and, once locked, a cost
for leaving the current tempo and phase. The best one is refined by a
recency-weighted least-squares fit of the onsets to their grid positions.

``confidence`` (0..1) is the share of onsets on the grid's beats and main divisions
times the share of its beats that were played; the tracker locks when it is high
enough with enough onsets, and goes back to free mode when the playing gets loose
(confidence drops) or stops for ``hold_beats`` beats. The tracker is a
:class:`~improv.timing.clock.BeatClock`; beat numbers stay continuous when the grid
is re-estimated. Nothing here reads the wall clock: every call gets ``now``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .clock import BeatClock, ClockState
from .meter import Meter, parse_meter

# Positions inside a beat (fraction of the beat) that an onset may take, and how much
# an onset there supports the hypothesis: the beat itself, then off-beats.
# With no meter given, binary and ternary divisions are both expected; a meter tells which.
_POSITIONS = np.array([0.0, 0.5, 1 / 3, 2 / 3, 0.25, 0.75, 1 / 6, 5 / 6])
_BINS = 480  # resolution of the precomputed support tables (1/480 beat)
_SUPPORT = {
    None: np.array([1.0, 0.55, 0.3, 0.3, 0.25, 0.25, 0.05, 0.05]),
    "simple": np.array([1.0, 0.55, 0.15, 0.15, 0.25, 0.25, 0.02, 0.02]),
    "compound": np.array([1.0, 0.1, 0.55, 0.55, 0.02, 0.02, 0.25, 0.25]),
}


@dataclass
class TrackerSettings:
    min_bpm: float = 50.0
    max_bpm: float = 200.0
    prior_bpm: float = 90.0  # centre of the preference for moderate tempos
    prior_octaves: float = 0.9  # its width (standard deviation in octaves)
    window: float = 8.0  # seconds of onsets kept
    max_onsets: int = 32
    anchors: int = 8  # latest onsets tried as phase anchors
    sigma: float = 0.040  # timing tolerance (s): player jitter plus onset error
    tolerance: float = 0.035  # an onset this close to a grid position counts as on it (confidence)
    floor: float = 0.05  # support of an onset that fits no grid position
    miss_cost: float = -0.7  # log cost of a grid beat with no onset
    prior_weight: float = 0.6  # strength of the tempo preference, per onset
    density_notes: float = 2.0  # preferred notes per beat
    density_octaves: float = 0.8  # width of that preference
    density_weight: float = 0.0  # its strength, per onset (off: on POP909 it fixed the tempo
    # level more often but put the beat on the off-beat more often too; beat F went down)
    accent: float = 1.5  # weight of the durational accent (longer notes count more)
    recency: float = 4.0  # time constant (s) of the refinement's weights
    min_onsets: int = 4
    lock_confidence: float = 0.5
    unlock_confidence: float = 0.3
    unknown_meter_margin: float = 0.1  # added to both with no meter given (more positions fit by chance)
    hold_beats: float = 8.0  # beats without an onset before going free
    stickiness: float = 0.06  # once locked, tempo changes beyond this (fraction) are discouraged
    switch_penalty: float = 0.2  # score factor for a grid unlike the current one

    def check(self) -> "TrackerSettings":
        if not (20.0 <= self.min_bpm < self.max_bpm <= 400.0):
            raise ConfigError(f"tempo range {self.min_bpm:g}-{self.max_bpm:g} BPM: give 20 <= min < max <= 400")
        return self


class BeatTracker(BeatClock):
    """Follows the player's pulse from note onsets; a clock once it is locked."""

    source = "tracker"

    def __init__(self, settings: TrackerSettings | None = None, meter: Meter | str | None = None):
        self.settings = (settings or TrackerSettings()).check()
        self.meter = parse_meter(meter)
        self.meter_given = meter is not None
        kind = None if meter is None else ("compound" if self.meter.compound else "simple")
        self._log_support = np.log(_SUPPORT[kind]).astype(np.float32)
        self._main = {None: np.array([0.0, 0.5, 1 / 3, 2 / 3]), "simple": np.array([0.0, 0.5]),
                      "compound": np.array([0.0, 1 / 3, 2 / 3])}[kind]
        self._fine = {None: np.array([0.25, 0.75, 1 / 6, 5 / 6]), "simple": np.array([0.25, 0.75]),
                      "compound": np.array([1 / 6, 0.5, 5 / 6])}[kind]
        s = self.settings
        lo, hi = math.log(60.0 / s.max_bpm), math.log(60.0 / s.min_bpm)
        self._periods = np.exp(np.arange(lo, hi + 1e-9, math.log(1.01)))
        self._match_table, self._beat_table = self._tables()
        dev = np.log2(self._periods / (60.0 / s.prior_bpm))
        self._log_prior = -0.5 * (dev / s.prior_octaves) ** 2
        self.reset()

    def _tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Support of an onset at each of _BINS positions in the beat, per period (precomputed)."""
        frac = (np.arange(_BINS) + 0.5) / _BINS
        d = np.abs(frac[:, None] - _POSITIONS)
        d = np.minimum(d, 1.0 - d)  # (bins, positions) in beats
        sig = np.minimum(self.settings.sigma, self._periods / 10.0)
        dz = d[None, :, :] * (self._periods / sig)[:, None, None]  # in sigmas
        match = np.exp((self._log_support - 0.5 * dz * dz).max(axis=-1)).astype(np.float32)
        return match, dz[..., 0] < 1.2

    def reset(self) -> None:
        self._onsets: list[float] = []
        self._velocities: list[float] = []
        self.period: float | None = None  # seconds per beat of the current hypothesis
        self._phi = 0.0  # a time at which the raw grid has a beat
        self._offset = 0.0  # beat number of the raw grid's beat at _phi
        self.confidence = 0.0
        self.locked = False
        self.message = "waiting for the player"
        self.updates = 0

    # ----------------------------------------------------------------- input

    def add_onset(self, onset: float, now: float | None = None, velocity: int | None = None) -> None:
        """A player's note started at ``onset`` (s); ``now`` is when we learn it (>= onset)."""
        now = onset if now is None else now
        if self._onsets and onset < self._onsets[-1] - 1e-6:
            return  # out of order: an onset from before the last one is not news
        if self._onsets and onset - self._onsets[-1] < 0.04:
            return  # a double onset (grace note, re-attack): one event for the pulse
        self._onsets.append(float(onset))
        self._velocities.append(float(velocity) if velocity is not None else 80.0)
        s = self.settings
        keep = 0
        while keep < len(self._onsets) and (self._onsets[keep] < now - s.window
                                            or len(self._onsets) - keep > s.max_onsets):
            keep += 1
        if keep:
            del self._onsets[:keep], self._velocities[:keep]
        self._estimate(now)

    def add_event(self, ev) -> None:
        """Feed a player's :class:`~improv.events.NoteOn` (uses its ``onset`` and ``time``)."""
        onset = ev.onset if getattr(ev, "onset", None) is not None else ev.time
        self.add_onset(onset, now=ev.time, velocity=getattr(ev, "velocity", None))

    # ------------------------------------------------------------- estimation

    def _weights(self, t: np.ndarray) -> np.ndarray:
        s = self.settings
        w = np.ones(len(t))
        if len(t) >= 3 and s.accent > 0:
            ioi = np.diff(t)
            med = float(np.median(ioi))
            acc = np.clip(np.log2(ioi / med), 0.0, 2.0)
            w[:-1] += s.accent * acc  # the last note's length is not known yet
        v = np.asarray(self._velocities)
        return w * (0.6 + 0.4 * np.clip(v / 100.0, 0.0, 1.27))

    def _estimate(self, now: float) -> None:
        s = self.settings
        t = np.asarray(self._onsets)
        n = len(t)
        if n < 3:
            self.confidence = 0.0
            self._set_locked(False, "listening for a pulse")
            return
        self.updates += 1
        w = self._weights(t)
        P = self._periods[:, None, None]  # (m, 1, 1)
        recent = t[-s.anchors:]  # the phase is decided by the latest onsets
        a = len(recent)
        anchors = np.concatenate([recent, recent])[None, :, None] + np.concatenate(
            [np.zeros(a), np.full(a, 0.5)])[None, :, None] * P  # (m, 2a, 1): beat or off-beat on an onset
        x = ((t[None, None, :] - anchors) / P).astype(np.float32)  # (m, 2a, n) position in beats
        frac = x - np.floor(x)
        bins = np.minimum((frac * _BINS).astype(np.intp), _BINS - 1)
        rows = np.arange(len(self._periods))[:, None, None]
        match = self._match_table[rows, bins]  # (m, 2a, n): the best-supported position of each onset
        # The grid's beats between the first and last onset, and how many of them were played.
        on_beat = self._beat_table[rows, bins]
        k = np.round(x)
        first = np.ones_like(on_beat)
        first[..., 1:] = ~(on_beat[..., :-1] & (k[..., :-1] == k[..., 1:]))
        covered = (on_beat & first).sum(axis=-1)
        span = np.floor(x[..., -1] + 0.5) - np.ceil(x[..., 0] - 0.5) + 1
        # Evidence adds up over onsets: each onset's log support, each unplayed grid beat a cost.
        evidence = (w * np.log(match + s.floor)).sum(axis=-1) + s.miss_cost * np.maximum(span - covered, 0)
        log_score = evidence + s.prior_weight * n * self._log_prior[:, None]
        if s.density_weight > 0 and t[-1] > t[0]:
            # The beat is usually the level the melody divides into about two notes.
            per_beat = (n - 1) / (t[-1] - t[0]) * self._periods
            dd = np.log2(per_beat / s.density_notes) / s.density_octaves
            log_score = log_score - s.density_weight * n * 0.5 * (dd * dd)[:, None]
        if self.locked and self.period is not None:
            log_score = log_score + self._continuity(anchors[..., 0], P[..., 0])
        i, j = np.unravel_index(int(np.argmax(log_score)), log_score.shape)
        period = float(self._periods[i])
        phi = float(anchors[i, j, 0])
        period, phi, used = self._refine(t, w, period, phi, now)
        conf = self._confidence(t, w, period, phi) * (1.0 - math.exp(-used / 3.0))
        self.confidence = conf
        self._adopt(period, phi, now)
        margin = 0.0 if self.meter_given else s.unknown_meter_margin
        if not self.locked and conf >= s.lock_confidence + margin and n >= s.min_onsets:
            self._set_locked(True, "")
        elif self.locked and conf < s.unlock_confidence + margin:
            self._set_locked(False, "the playing is loose: free mode")

    def _continuity(self, anchors: np.ndarray, periods: np.ndarray) -> np.ndarray:
        """Log factor favouring the current tempo and beat phase once locked."""
        s = self.settings
        cur = self.period
        tempo_dev = np.log(periods / cur) / s.stickiness
        tempo_term = np.maximum(-0.5 * tempo_dev ** 2, math.log(s.switch_penalty))
        x = (anchors - self._phi) / cur
        ph = np.abs(x - np.round(x)) * cur
        phase_term = np.maximum(-0.5 * (ph / (2 * s.sigma)) ** 2, math.log(s.switch_penalty))
        return tempo_term + phase_term

    def _confidence(self, t: np.ndarray, w: np.ndarray, period: float, phi: float) -> float:
        """How metrical the playing is under the grid: the (weighted) share of onsets close
        to a beat or its main division (half, or thirds), quarter divisions counting half, times
        the share of the grid's beats that were played. Loose playing scores low on both."""
        tol = min(self.settings.tolerance, period / 8.0)
        x = (t - phi) / period
        frac = x - np.floor(x)
        d_main = np.abs(frac[:, None] - self._main)
        d_main = np.minimum(d_main, 1.0 - d_main).min(axis=1) * period
        d_fine = np.abs(frac[:, None] - self._fine)
        d_fine = np.minimum(d_fine, 1.0 - d_fine).min(axis=1) * period
        score = np.where(d_main < tol, 1.0, np.where(d_fine < tol, 0.5, 0.0))
        share = float((score * w).sum() / w.sum())
        k = np.round(x)
        on_beat = np.abs(x - k) * period < tol
        played = len(np.unique(k[on_beat]))
        span = int(k[-1] - k[0]) + 1
        return share * min(1.0, played / max(span, 1))

    def _refine(self, t: np.ndarray, w: np.ndarray, period: float, phi: float,
                now: float) -> tuple[float, float, int]:
        """Weighted least squares of onset times on their grid positions."""
        s = self.settings
        x = (t - phi) / period
        k = np.floor(x)
        frac = x - k
        d = np.abs(frac[:, None] - np.append(_POSITIONS, 1.0))
        best = np.argmin(d, axis=1)
        pos = k + np.append(_POSITIONS, 1.0)[best]
        ok = d[np.arange(len(t)), best] * period < 2.5 * min(s.sigma, period / 10.0)
        used = int(ok.sum())
        if used < 3 or np.ptp(pos[ok]) < 1.0:
            return period, phi, used
        rw = w[ok] * np.exp(-(now - t[ok]) / s.recency)
        A = np.stack([np.ones(used), pos[ok]], axis=1) * np.sqrt(rw)[:, None]
        sol, *_ = np.linalg.lstsq(A, t[ok] * np.sqrt(rw), rcond=None)
        new_phi, new_period = float(sol[0]), float(sol[1])
        if not (0.9 * period < new_period < 1.1 * period):
            return period, phi, used
        return new_period, new_phi, used

    def _adopt(self, period: float, phi: float, now: float) -> None:
        """Take a new grid, numbering its beats to continue the current count."""
        if self.period is None:
            # beat 0 is the first grid beat at or before the first onset
            first = self._onsets[0]
            k0 = math.floor((first - phi) / period + 0.25)
            self._offset = -float(k0)
        else:
            old = self.beat_at(now)
            raw = (now - phi) / period
            self._offset = float(round(old - raw))
        self.period, self._phi = period, phi

    def _set_locked(self, locked: bool, message: str) -> None:
        self.locked = locked
        self.message = message

    # ----------------------------------------------------------------- clock

    @property
    def bpm(self) -> float | None:
        return None if self.period is None else 60.0 / self.period

    def beat_at(self, t: float) -> float | None:
        if self.period is None:
            return None
        return self._offset + (t - self._phi) / self.period

    def time_of(self, beat: float) -> float | None:
        if self.period is None:
            return None
        return self._phi + (beat - self._offset) * self.period

    def update(self, now: float) -> None:
        """Let time pass: go free when the player has not played for ``hold_beats`` beats."""
        if self.locked and self._onsets and self.period is not None:
            if now - self._onsets[-1] > self.settings.hold_beats * self.period:
                self._set_locked(False, "the player stopped: free mode")
                self.confidence = 0.0
                self._onsets, self._velocities = [], []
                self.period = None

    def state(self, now: float) -> ClockState:
        self.update(now)
        locked = self.locked
        return ClockState(locked, self.bpm, self.beat_at(now) if locked else None,
                          self.confidence, self.source, self.message)


__all__ = ["BeatTracker", "TrackerSettings"]
