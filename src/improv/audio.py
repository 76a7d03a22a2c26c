"""Audio sources: the microphone and a recording, both yielding the same blocks.

A source yields :class:`Block` objects: float32 mono samples stamped with the index
of their first sample at the source's own rate. The listening pipeline does the rest
(resampling included), so a file and the microphone go through the same stages.

The microphone callback only copies into a ring buffer allocated up front; the
reading side (``MicSource.blocks``) runs in the analysis thread.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile
import soxr

from .errors import AudioInputError


@dataclass(frozen=True, slots=True)
class Block:
    """A block of mono audio. ``start`` is the index of its first sample."""

    samples: np.ndarray
    start: int
    sample_rate: int

    @property
    def end(self) -> int:
        return self.start + len(self.samples)


class Resampler:
    """Causal, low-delay streaming resampler.

    An 8th-order Butterworth low-pass (0.1 ms phase delay at voice frequencies) removes
    what would alias, then soxr's quick cubic stream interpolates. soxr's higher
    qualities hold back 20 ms or more, which a live partner cannot afford. The output
    is time-aligned with the input (output sample k is at k / out_rate seconds), and
    feeding a signal in one piece or block by block gives identical samples.
    """

    def __init__(self, in_rate: int, out_rate: int):
        self.in_rate = int(in_rate)
        self.out_rate = int(out_rate)
        self.identity = self.in_rate == self.out_rate
        if not self.identity:
            import scipy.signal  # here, not at import: `improv --help` must not wait for scipy

            cutoff = 0.45 * min(self.in_rate, self.out_rate)
            self._sos = scipy.signal.butter(8, cutoff, fs=self.in_rate, output="sos")
            self._sosfilt = scipy.signal.sosfilt
        self.reset()

    def reset(self) -> None:
        if self.identity:
            return
        self._zi = np.zeros((self._sos.shape[0], 2))
        self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality="QQ")

    def process(self, x: np.ndarray) -> np.ndarray:
        if self.identity:
            return np.asarray(x, dtype=np.float32)
        y, self._zi = self._sosfilt(self._sos, x, zi=self._zi)
        return self._stream.resample_chunk(y.astype(np.float32))


def to_mono(data: np.ndarray) -> np.ndarray:
    """Average the channels of a (frames, channels) array; pass mono through."""
    if data.ndim == 1:
        return data.astype(np.float32, copy=False)
    return data.mean(axis=1, dtype=np.float32)


# --------------------------------------------------------------------------- files


def open_recording(path: str | Path) -> soundfile.SoundFile:
    """Open an audio file for reading, or raise a one-line :class:`AudioInputError`."""
    p = Path(path)
    if not p.exists():
        raise AudioInputError(f"{p}: no such file; give the path of a WAV, FLAC or OGG recording")
    if p.is_dir():
        raise AudioInputError(f"{p}: is a folder; give the path of a WAV, FLAC or OGG recording")
    try:
        f = soundfile.SoundFile(str(p))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioInputError(
            f"{p}: cannot read it as audio ({_first_line(e)}); convert it to WAV, FLAC or OGG"
        ) from None
    if f.frames == 0:
        f.close()
        raise AudioInputError(f"{p}: the file holds no audio (0 samples); record or export it again")
    return f


def read_recording(path: str | Path) -> tuple[np.ndarray, int]:
    """Whole file as float32 mono at its own rate."""
    with open_recording(path) as f:
        try:
            data = f.read(dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError) as e:
            raise AudioInputError(f"{path}: the audio is corrupt ({_first_line(e)}); export it again") from None
        return to_mono(data), f.samplerate


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _wait_until(due: float) -> None:
    """Real-time pacing: a block is handed on when its last sample would have arrived."""
    delay = due - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


@dataclass
class FileSource:
    """A recording played block by block, paced in real time unless ``fast``."""

    path: str | Path
    blocksize: int = 256
    fast: bool = False
    sample_rate: int = field(init=False)
    duration: float = field(init=False)

    def __post_init__(self) -> None:
        with open_recording(self.path) as f:
            self.sample_rate = f.samplerate
            self.duration = f.frames / f.samplerate
        if self.blocksize <= 0:
            raise AudioInputError(f"--blocksize {self.blocksize}: give a positive number of samples, e.g. 256")

    def blocks(self, stop: threading.Event | None = None) -> Iterator[Block]:
        start_wall = time.perf_counter()
        index = 0
        with open_recording(self.path) as f:
            while stop is None or not stop.is_set():
                try:
                    data = f.read(self.blocksize, dtype="float32", always_2d=True)
                except (soundfile.LibsndfileError, RuntimeError) as e:
                    raise AudioInputError(
                        f"{self.path}: the audio is corrupt after {index / self.sample_rate:.2f} s "
                        f"({_first_line(e)}); export it again"
                    ) from None
                if len(data) == 0:
                    return
                block = Block(to_mono(data), index, self.sample_rate)
                index += len(data)
                if not self.fast:
                    _wait_until(start_wall + index / self.sample_rate)
                yield block

    @property
    def overflows(self) -> int:
        return 0


@dataclass
class SilentSource:
    """No input at all: silent blocks, paced in real time unless ``fast``, for ``seconds``
    (None: until stopped). A session with this source is the band alone (``jam``); player
    notes from elsewhere (OSC, a DAW) reach it through :meth:`improv.session.Session.play`."""

    sample_rate: int = 16000
    blocksize: int = 256
    fast: bool = False
    seconds: float | None = None
    duration: float | None = field(init=False)

    def __post_init__(self) -> None:
        if self.blocksize <= 0:
            raise AudioInputError(f"--blocksize {self.blocksize}: give a positive number of samples, e.g. 256")
        self.duration = self.seconds

    def blocks(self, stop: threading.Event | None = None) -> Iterator[Block]:
        start_wall = time.perf_counter()
        silence = np.zeros(self.blocksize, dtype=np.float32)
        total = None if self.seconds is None else int(self.seconds * self.sample_rate)
        index = 0
        while (stop is None or not stop.is_set()) and (total is None or index < total):
            n = self.blocksize if total is None else min(self.blocksize, total - index)
            block = Block(silence[:n].copy(), index, self.sample_rate)
            index += n
            if not self.fast:
                _wait_until(start_wall + index / self.sample_rate)
            yield block

    @property
    def overflows(self) -> int:
        return 0


# --------------------------------------------------------------------- microphone


def _sounddevice():
    """Import sounddevice, turning a missing PortAudio into a user message."""
    try:
        import sounddevice
    except OSError as e:
        raise AudioInputError(
            f"PortAudio is not installed ({_first_line(e)}); install it (Debian: apt install libportaudio2) "
            "or use --input FILE"
        ) from None
    return sounddevice


def list_input_devices() -> list[dict]:
    """Audio devices with at least one input channel, as sounddevice describes them."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        apis = sd.query_hostapis()
    except sd.PortAudioError as e:
        raise AudioInputError(f"cannot query audio devices ({_first_line(e)})") from None
    out = []
    for d in devices:
        if d["max_input_channels"] > 0:
            out.append({**d, "hostapi_name": apis[d["hostapi"]]["name"]})
    return out


def resolve_input_device(device: str | int | None) -> int | None:
    """Turn ``--device`` (index or part of a name) into a PortAudio device index."""
    if device is None or device == "":
        return None
    inputs = list_input_devices()
    if isinstance(device, int) or str(device).isdigit():
        idx = int(device)
        if any(d["index"] == idx for d in inputs):
            return idx
        raise AudioInputError(f"--device {idx}: no audio input with that number; run `improv devices` to list them")
    matches = [d for d in inputs if str(device).lower() in d["name"].lower()]
    if not matches:
        raise AudioInputError(f"--device {device!r}: no audio input matches; run `improv devices` to list them")
    return matches[0]["index"]


def _abandon_portaudio(sd) -> None:
    """The stream stopped under us (the audio server died or the device went away): from
    now on any PortAudio call may hang, and so would sounddevice's ``Pa_Terminate`` at
    interpreter exit (the process would never end, deaf to Ctrl-C). Leave PortAudio as it
    is; the operating system frees it with the process."""
    handler = getattr(sd, "_exit_handler", None)
    if handler is not None:
        atexit.unregister(handler)


class MicSource:
    """The microphone through a sounddevice callback that only copies.

    The callback writes into a ring buffer allocated here, with the ADC time of each
    block; ``blocks()`` (the analysis thread) reads from it. If the reader falls more
    than the ring's length behind, the oldest audio is overwritten and counted in
    ``overflows``; PortAudio's own input overflows are counted there too.
    """

    def __init__(self, device: str | int | None = None, samplerate: int | None = None,
                 blocksize: int = 256, ring_seconds: float = 8.0):
        sd = _sounddevice()
        self._sd = sd
        index = resolve_input_device(device)
        try:
            info = sd.query_devices(index, "input")
        except (sd.PortAudioError, ValueError) as e:
            raise AudioInputError(
                f"no usable audio input ({_first_line(e)}); run `improv devices` to list inputs, "
                "or use --input FILE"
            ) from None
        self.device = index
        self.device_name = info["name"]
        self.sample_rate = int(samplerate or info["default_samplerate"])
        if blocksize <= 0:
            raise AudioInputError(f"--blocksize {blocksize}: give a positive number of samples, e.g. 256")
        self.blocksize = blocksize
        capacity = int(ring_seconds * self.sample_rate)
        self._ring = np.zeros(capacity, dtype=np.float32)
        self._capacity = capacity
        self._written = 0  # total samples written (monotonic); only the callback changes it
        self._adc_time = 0.0
        self._status_overflows = 0
        self._ready = threading.Event()
        self._ring_overflows = 0
        self.duration = None
        self._stream = None

    # The callback runs in PortAudio's thread: copy, count, signal, nothing else.
    def _callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self._status_overflows += 1
        w = self._written % self._capacity
        n = min(frames, self._capacity - w)
        self._ring[w:w + n] = indata[:n, 0]
        if n < frames:
            self._ring[: frames - n] = indata[n:, 0]
        self._adc_time = time_info.inputBufferAdcTime
        self._written += frames
        self._ready.set()

    def start(self) -> None:
        sd = self._sd
        try:
            self._stream = sd.InputStream(
                device=self.device, samplerate=self.sample_rate, blocksize=self.blocksize,
                channels=1, dtype="float32", callback=self._callback, latency="low",
            )
            self._stream.start()
        except (sd.PortAudioError, ValueError) as e:
            raise AudioInputError(
                f"cannot open the audio input {self.device_name!r} at {self.sample_rate} Hz "
                f"({_first_line(e)}); try --samplerate, `improv devices`, or --input FILE"
            ) from None

    @property
    def active(self) -> bool:
        return self._stream is not None and self._stream.active

    def blocks(self, stop: threading.Event | None = None) -> Iterator[Block]:
        if self._stream is None:
            self.start()
        read = 0
        while stop is None or not stop.is_set():
            if not self._ready.wait(timeout=0.5):
                if not self._stream.active:
                    _abandon_portaudio(self._sd)
                    raise AudioInputError(
                        "the audio input stopped (device unplugged or audio server gone); "
                        "check it with `improv devices` and start again"
                    )
                continue
            self._ready.clear()
            written = self._written
            if written - read > self._capacity:
                self._ring_overflows += 1
                read = written - self._capacity
            while read < written:
                r = read % self._capacity
                n = min(written - read, self._capacity - r)
                yield Block(self._ring[r:r + n].copy(), read, self.sample_rate)
                read += n

    @property
    def overflows(self) -> int:
        """Blocks lost: PortAudio input overflows plus laps of the ring by the callback."""
        return self._status_overflows + self._ring_overflows

    @property
    def dropped_blocks(self) -> int:
        """Blocks the analysis fell too far behind to read (the callback lapped the ring)."""
        return self._ring_overflows

    @property
    def input_overflows(self) -> int:
        """Input overflows PortAudio reported (the audio server could not deliver in time)."""
        return self._status_overflows

    def close(self) -> None:
        """Stop the stream, unless the server died (then any PortAudio call may hang)."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        if not stream.active:
            _abandon_portaudio(self._sd)
            return
        try:
            stream.stop()
            stream.close()
        except self._sd.PortAudioError:
            pass  # the device went away between the check and the call; nothing left to close
