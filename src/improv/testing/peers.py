"""The tools a musician would use instead of improv, behind one small interface.

Each peer turns a recording into :class:`improv.events.Note` objects; a causal peer also
stamps each note with the time it was decided (``Note.decided``), so its decision latency
is scored exactly like improv's (``improv.bench.score_notes``).

* ``aubio-notes`` — aubio's real-time note tracker (``aubio.notes``, the object behind the
  ``aubionotes`` command, default parameters: HFC onsets, YIN-FFT pitch, -70 dB silence,
  30 ms minimum inter-onset interval), fed hop by hop. A note is decided at the end of the
  hop in which ``notes`` emits it — six hops after its onset, since aubio takes the median
  of the six pitch estimates that follow it. Its onset is aubio's own onset estimate: a
  second ``aubio.onset`` object with the same settings runs beside it (the same input
  gives the same detections) and ``get_last()`` (detection time minus aubio's delay
  compensation) is taken. ``aubionotes`` itself prints the start of the emitting block,
  which is 5-6 hops after the onset. By design (``notes.c``) aubio drops notes at or below
  MIDI 45 (A2).
* ``basic-pitch`` — Spotify's Basic Pitch 0.4 on ONNX (one thread), the offline
  polyphonic reference, its default thresholds; note pitch = its MIDI key.
* ``pyin-offline`` — librosa's pYIN over the whole clip (non-causal; 16 kHz, 8 ms hop,
  20-cent grid) and a plain note
  segmentation: voiced runs, split where the pitch moves by more than 0.6 semitone for
  32 ms or more, or at an onset (librosa's offline onset detector, not backtracked)
  inside a run; notes under 60 ms dropped; pitch = median of the note's frames.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from improv.audio import read_recording
from improv.events import Note


@dataclass
class Transcription:
    notes: list[Note]
    duration: float       # seconds of audio
    cpu_seconds: float    # process CPU time of the analysis (model loading excluded)
    wall_seconds: float


class Peer(ABC):
    name: str = ""
    causal: bool = False

    @abstractmethod
    def transcribe(self, path: str | Path) -> Transcription:
        ...


def _timed(fn):
    cpu0, wall0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - cpu0, time.perf_counter() - wall0


# --------------------------------------------------------------------------- aubio


def aubio_sizes(sample_rate: int) -> tuple[int, int]:
    """aubio's defaults (buffer 512, hop 256 at 44.1 kHz) at the same durations, in powers of 2."""
    hop = 2 ** int(round(np.log2(256 * sample_rate / 44100)))
    return 2 * hop, hop


class AubioNotes(Peer):
    name = "aubio-notes"
    causal = True

    def __init__(self, silence_db: float = -70.0, minioi_ms: float = 30.0):
        import aubio

        self._aubio = aubio
        self.silence_db = silence_db
        self.minioi_ms = minioi_ms

    def transcribe(self, path: str | Path) -> Transcription:
        x, sr = read_recording(path)
        notes, cpu, wall = _timed(lambda: self.track(x, sr))
        return Transcription(notes, len(x) / sr, cpu, wall)

    def track(self, x: np.ndarray, sr: int) -> list[Note]:
        aubio = self._aubio
        buf, hop = aubio_sizes(sr)
        notes_o = aubio.notes("default", buf, hop, sr)
        notes_o.set_silence(self.silence_db)
        notes_o.set_minioi_ms(self.minioi_ms)
        onset_o = aubio.onset("default", buf, hop, sr)
        onset_o.set_silence(self.silence_db)
        onset_o.set_minioi_ms(self.minioi_ms)
        out: list[Note] = []
        current: tuple[float, float, float] | None = None  # onset, pitch, decided
        n = int(np.ceil(len(x) / hop))
        padded = np.zeros(n * hop, dtype=np.float32)
        padded[:len(x)] = x
        for i in range(n):
            block = padded[i * hop:(i + 1) * hop]
            res = notes_o(block)
            onset_o(block)
            now = (i + 1) * hop / sr  # the block has fully arrived
            if res[2] != 0 and current is not None:
                out.append(_note(current, now))
                current = None
            if res[0] != 0:
                onset = min(max(onset_o.get_last() / sr, 0.0), now)
                if current is not None:
                    out.append(_note(current, max(onset, current[0] + 1e-3)))
                current = (onset, float(res[0]), now)
        if current is not None:
            out.append(_note(current, len(x) / sr))
        return out


def _note(current: tuple[float, float, float], end: float) -> Note:
    onset, pitch, decided = current
    return Note(onset=onset, offset=max(end, onset + 1e-3), pitch=pitch, decided=decided)


# --------------------------------------------------------------------- Basic Pitch


class BasicPitch(Peer):
    name = "basic-pitch"
    causal = False

    def __init__(self, threads: int = 1):
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # basic_pitch warns at import about TF/CoreML/TFLite being absent
        try:
            import basic_pitch
            import basic_pitch.inference as inference
            import onnxruntime as ort
        finally:
            root.setLevel(level)
        self._inference = inference
        model = inference.Model(basic_pitch.ICASSP_2022_MODEL_PATH)
        if model.model_type != inference.Model.MODEL_TYPES.ONNX:
            raise RuntimeError(f"basic-pitch loaded a {model.model_type} model, not ONNX")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = threads
        model.model = ort.InferenceSession(str(basic_pitch.ICASSP_2022_MODEL_PATH), opts,
                                           providers=["CPUExecutionProvider"])
        self._model = model

    def transcribe(self, path: str | Path) -> Transcription:
        import soundfile

        duration = soundfile.info(str(path)).duration

        def run():
            with contextlib.redirect_stdout(io.StringIO()):  # it prints "Predicting MIDI for ..."
                _, _, events = self._inference.predict(str(path), self._model)
            return [Note(onset=float(s), offset=float(e), pitch=float(p), velocity=int(min(127, a * 127)))
                    for s, e, p, a, _bends in events]

        notes, cpu, wall = _timed(run)
        notes.sort(key=lambda n: n.onset)
        return Transcription(notes, duration, cpu, wall)


# --------------------------------------------------------------------------- pYIN


class PyinNotes(Peer):
    name = "pyin-offline"
    causal = False
    rate = 16000
    hop = 128            # 8 ms
    frame = 1024
    resolution = 0.2     # pitch grid in semitones; librosa's default 0.1 costs 10x the CPU

    def __init__(self, fmin: float = 40.0, fmax: float = 2000.0, split_semitones: float = 0.6,
                 split_frames: int = 4, min_note: float = 0.06):
        self.fmin, self.fmax = fmin, fmax
        self.split_semitones = split_semitones
        self.split_frames = split_frames
        self.min_note = min_note

    def transcribe(self, path: str | Path) -> Transcription:
        x, sr = read_recording(path)
        notes, cpu, wall = _timed(lambda: self.track(x, sr))
        return Transcription(notes, len(x) / sr, cpu, wall)

    def track(self, x: np.ndarray, sr: int) -> list[Note]:
        import librosa
        import scipy.signal
        import soxr

        y = soxr.resample(x, sr, self.rate) if sr != self.rate else x
        f0, voiced, _prob = librosa.pyin(y, fmin=self.fmin, fmax=self.fmax, sr=self.rate,
                                         frame_length=self.frame, hop_length=self.hop,
                                         resolution=self.resolution)
        midi = np.where(voiced, librosa.hz_to_midi(np.where(voiced, f0, 1.0)), np.nan)
        smooth = midi.copy()
        ok = ~np.isnan(midi)
        if ok.sum() >= 5:
            smooth[ok] = scipy.signal.medfilt(midi[ok], 5)
        onsets = set(librosa.onset.onset_detect(y=y, sr=self.rate, hop_length=self.hop, units="frames").tolist())
        return self.segment(smooth, onsets)

    def segment(self, midi: np.ndarray, onsets: set[int]) -> list[Note]:
        """Frames (fractional MIDI, NaN = unvoiced; frame i centred at i * hop) into notes."""
        sec = self.hop / self.rate
        notes: list[Note] = []
        start: int | None = None
        away = 0


        def close(a: int, b: int) -> None:
            if (b - a) * sec >= self.min_note:
                notes.append(Note(onset=a * sec, offset=b * sec, pitch=float(np.nanmedian(midi[a:b]))))

        for i, m in enumerate(midi):
            if np.isnan(m):
                if start is not None:
                    close(start, i)
                start, away = None, 0
                continue
            if start is None:
                start, away = i, 0
                continue
            ref = np.nanmedian(midi[start:i])
            if abs(m - ref) > self.split_semitones:
                away += 1
                if away >= self.split_frames:
                    cut = i - away + 1
                    close(start, cut)
                    start, away = cut, 0
            else:
                away = 0
                if i in onsets and (i - start) * sec >= self.min_note:
                    close(start, i)
                    start = i
        if start is not None:
            close(start, len(midi))
        return notes


PEERS: dict[str, type[Peer]] = {p.name: p for p in (AubioNotes, BasicPitch, PyinNotes)}
NEEDS = {
    "aubio-notes": (("aubio",), "pip install aubio"),
    "basic-pitch": (("basic_pitch", "onnxruntime", "pretty_midi"),
                    "pip install --no-deps basic-pitch==0.4.0 && pip install onnxruntime pretty-midi"),
    "pyin-offline": (("librosa",), "pip install librosa"),
}


def missing(name: str) -> str | None:
    """Why peer ``name`` cannot run here (the install command), or None when it can."""
    import importlib.util

    modules, how = NEEDS[name]
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    return f"{', '.join(absent)} not installed; {how}" if absent else None


def make_peer(name: str) -> Peer:
    try:
        return PEERS[name]()
    except KeyError:
        raise ValueError(f"unknown peer {name!r}; choose one of {', '.join(PEERS)}") from None
