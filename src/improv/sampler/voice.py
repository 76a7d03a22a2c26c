"""A band note made from one of the player's notes: pitch-shifted, looped, faded.

:func:`shift_pitch` moves a note by a number of semitones: by resampling (linear
interpolation; the note gets shorter or longer, which the loop makes up for) up to
:data:`RESAMPLE_SEMITONES`, beyond that by librosa's phase-vocoder ``pitch_shift``
(length and timbre's timing kept; librosa is a dependency already, needs no binary,
and its result is within a few cents, see tests/test_sampler.py). :func:`prepare` turns
the shifted note into a :class:`Prepared` sound: a head (the note as played, a short
fade-in) and a loop (its sustain, crossfaded into itself), so it lasts as long as the
band note. :class:`Mixer` plays prepared sounds at their frames, each with a short
release at its note-off, into float32 blocks: the same code live (the JACK worker
thread, :mod:`improv.sampler.jackout`) and offline (tests, benchmark).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .bank import SampledNote

RESAMPLE_SEMITONES = 2.0   # shifts up to this are done by resampling; larger by the phase vocoder
FADE_IN = 0.002            # seconds
RELEASE = 0.020            # seconds of fade-out after the note-off
LOOP_FADE = 0.020          # seconds of crossfade where the loop wraps
LEVEL_DB = -16.0           # a note at velocity 127 is played at this RMS level (dBFS)


def resample_shift(x: np.ndarray, semitones: float) -> np.ndarray:
    """``x`` read faster (up) or slower (down) by ``2**(semitones/12)``: linear interpolation."""
    ratio = 2.0 ** (semitones / 12.0)
    n = int(len(x) / ratio)
    pos = np.arange(n, dtype=np.float64) * ratio
    return np.interp(pos, np.arange(len(x)), x).astype(np.float32)


_vocoder_ready = threading.Event()


def warm_vocoder(sample_rate: int = 48000) -> None:
    """Run librosa's pitch shift once (its first call compiles and loads for seconds)."""
    import librosa

    x = np.sin(2 * np.pi * 220.0 * np.arange(sample_rate // 4) / sample_rate).astype(np.float32)
    librosa.effects.pitch_shift(x, sr=sample_rate, n_steps=3.0, res_type="soxr_hq")
    _vocoder_ready.set()


def shift_pitch(x: np.ndarray, semitones: float, sample_rate: int, vocoder: bool | None = None) -> np.ndarray:
    """``x`` moved by ``semitones`` (see the module doc). ``vocoder`` forces the method;
    None chooses by size (resampling while the phase vocoder is not warmed up yet)."""
    if abs(semitones) < 1e-4:
        return np.asarray(x, dtype=np.float32)
    if vocoder is None:
        vocoder = abs(semitones) > RESAMPLE_SEMITONES and _vocoder_ready.is_set()
    if not vocoder:
        return resample_shift(x, semitones)
    import librosa

    return librosa.effects.pitch_shift(np.asarray(x, dtype=np.float32), sr=sample_rate, n_steps=float(semitones),
                                       res_type="soxr_hq").astype(np.float32)


@dataclass(frozen=True, eq=False)
class Prepared:
    """A note ready to play: ``head`` once, then ``loop`` over and over (already at its level)."""

    head: np.ndarray = field(repr=False)
    loop: np.ndarray = field(repr=False)
    pitch: float          # the pitch it sounds at (fractional MIDI)
    source: SampledNote = field(repr=False)
    semitones: float = 0.0


def prepare(note: SampledNote, pitch: float, velocity: int = 100, vocoder: bool | None = None) -> Prepared:
    """The band note ``pitch`` (fractional MIDI) at ``velocity`` made from ``note``."""
    sr = note.sample_rate
    semis = float(pitch) - note.pitch
    x = shift_pitch(note.audio, semis, sr, vocoder)
    gain = 10.0 ** ((LEVEL_DB - note.rms_db) / 20.0) * (max(1, min(int(velocity), 127)) / 127.0)
    x = (x * np.float32(gain)).astype(np.float32)
    n = len(x)
    fi = min(int(FADE_IN * sr), n // 4)
    if fi > 0:
        x[:fi] *= np.linspace(0.0, 1.0, fi, endpoint=False, dtype=np.float32)
    # the sustain: from 40% to 90% of the note, its end crossfaded into its start
    s, e = int(0.4 * n), int(0.9 * n)
    f = min(int(LOOP_FADE * sr), (e - s) // 3)
    if e - s < 8 or f < 1:
        return Prepared(x, np.zeros(1, np.float32), pitch, note, semis)
    ramp = np.linspace(0.0, 1.0, f, endpoint=False, dtype=np.float32)
    loop = x[s:e - f].copy()
    loop[:f] = x[s:s + f] * ramp + x[e - f:e] * (1.0 - ramp)
    head = x[:e - f].copy()
    return Prepared(head, loop, float(pitch), note, semis)


class PreparedCache:
    """Prepared notes by (bank note, pitch in cents, velocity step): the phase vocoder runs once
    per pitch asked of a note. Bounded (least recently used out)."""

    def __init__(self, size: int = 96):
        self.size = size
        self._items: OrderedDict[tuple, Prepared] = OrderedDict()

    def get(self, note: SampledNote, pitch: float, velocity: int, quick: bool = False) -> Prepared:
        """The prepared note (from the cache when it was asked before). ``quick``: not in the
        cache and no time for the phase vocoder, so resampled this once (not kept)."""
        key = (note.key, round(pitch * 100), velocity // 8)
        hit = self._items.get(key)
        if hit is not None and hit.source is note:
            self._items.move_to_end(key)
            return hit
        if quick:
            return prepare(note, pitch, velocity, vocoder=False)
        p = prepare(note, pitch, velocity)
        self._items[key] = p
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return p


class _Voice:
    __slots__ = ("sound", "pos", "tag", "release", "released", "start")

    def __init__(self, sound: Prepared, tag, start: int):
        self.sound = sound
        self.pos = 0
        self.tag = tag
        self.start = start          # stream frame it begins at
        self.release = -1           # stream frame its release begins at (-1: held)
        self.released = 0           # frames of release played


class Mixer:
    """Sounding notes mixed into blocks. ``start(frame, sound, tag)`` and ``stop(frame, tag)``
    act at stream frames (from 0); ``render(frames)`` gives the next block. One thread."""

    def __init__(self, sample_rate: int, max_voices: int = 24):
        self.sample_rate = int(sample_rate)
        self.max_voices = max_voices
        self.frame = 0                      # stream frame of the next block's first sample
        self.voices: list[_Voice] = []
        self._release = max(1, int(RELEASE * self.sample_rate))
        self._release_ramp = np.linspace(1.0, 0.0, self._release, dtype=np.float32)

    def start(self, frame: int, sound: Prepared, tag) -> None:
        for v in self.voices:  # the same key again: the old one is released there
            if v.tag == tag and v.release < 0:
                v.release = max(frame, self.frame)
        if len(self.voices) >= self.max_voices:
            self.voices.pop(0)
        self.voices.append(_Voice(sound, tag, max(int(frame), self.frame)))

    def stop(self, frame: int, tag=None) -> None:
        """Release the held note ``tag`` (every note when None) from ``frame``."""
        for v in self.voices:
            if (tag is None or v.tag == tag) and v.release < 0:
                v.release = max(int(frame), self.frame, v.start)

    def silence(self) -> None:
        self.stop(self.frame)

    def render(self, frames: int, out: np.ndarray | None = None) -> np.ndarray:
        out = np.zeros(frames, np.float32) if out is None else out
        out[:frames] = 0.0
        f0, f1 = self.frame, self.frame + frames
        keep = []
        for v in self.voices:
            if v.start >= f1:
                keep.append(v)
                continue
            a = v.start - f0 if v.start > f0 else 0      # first sample in this block
            b = frames
            if v.release >= 0:
                b = min(b, v.release + self._release - v.released - f0 if v.release >= f0 else
                        self._release - v.released)
            if b > a:
                seg = self._read(v, b - a)
                if v.release >= 0:
                    r0 = max(v.release - f0, a)       # release starts inside or before this block
                    if r0 < b:
                        k = b - r0
                        seg[r0 - a:] *= self._release_ramp[v.released:v.released + k]
                        v.released += k
                out[a:b] += seg
            if v.release < 0 or v.released < self._release:
                keep.append(v)
        self.voices = keep
        self.frame = f1
        return out

    def _read(self, v: _Voice, n: int) -> np.ndarray:
        head, loop = v.sound.head, v.sound.loop
        out = np.empty(n, np.float32)
        i = 0
        while i < n:
            if v.pos < len(head):
                k = min(n - i, len(head) - v.pos)
                out[i:i + k] = head[v.pos:v.pos + k]
            else:
                j = (v.pos - len(head)) % len(loop)
                k = min(n - i, len(loop) - j)
                out[i:i + k] = loop[j:j + k]
            v.pos += k
            i += k
        return out
