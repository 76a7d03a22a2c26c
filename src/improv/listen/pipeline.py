"""The listening pipeline: audio blocks in, note events out.

``Listener.process(block)`` is the only entry point, for the microphone and for a
file alike: replace samples that are not numbers (NaN, Inf: counted), remove DC (a first-order
high-pass at 25 Hz:
-1.4 dB at a low E, 41 Hz; a lower cutoff leaves a DC step's tail long enough to be
heard as a low note), resample to the analysis rate (causal, ~0.1 ms delay), cut into hops, track pitch, measure level, segment
into notes. ``input_warnings()`` says what was wrong with the input as a whole. Events are stamped with the time at
which they were decided: the end of the block that completed the deciding frame, in
the input's own samples, converted to seconds here at the edge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.signal

from ..audio import Block, Resampler
from ..events import Event, NoteOff, NoteOn, PitchBend
from .segmenter import Decision, Frame, NoteEnd, NoteStart, Segmenter, SegmenterSettings
from .trackers import ANALYSIS_RATE, PitchTracker, make_tracker

LEVEL_WINDOW = 160  # samples at the analysis rate (10 ms) for the level meter
DC_CUTOFF_HZ = 25.0  # the high-pass that removes DC before level and pitch (below E1, 41 Hz)
SILENT_DB = -60.0   # an input whose 10 ms level never reaches this is silent
DC_WARN = 0.01      # a mean input value this far from 0 is said (it is removed anyway)


@dataclass
class ListenerStats:
    """Running figures for the display and the bench."""

    blocks: int = 0
    frames: int = 0
    last_f0: float = 0.0
    last_confidence: float = 0.0
    last_level_db: float = -120.0
    last_voiced: bool = False      # the last frame counted as pitched (confidence and gate)
    tuning_cents: float = 0.0      # the player's tuning offset as followed
    seconds: float = 0.0           # audio analysed so far
    nonfinite: int = 0             # input samples that were NaN or Inf (replaced by 0)
    samples: int = 0               # input samples taken in
    input_sum: float = 0.0         # their sum (the DC offset is its mean)
    peak_level_db: float = -120.0  # the loudest 10 ms level (after DC removal)
    notes: int = 0                 # note-ons decided
    frame_log: list[Frame] = field(default_factory=list)


class Listener:
    """Blocks of any rate in, :mod:`improv.events` out. Causal; ``reset()`` starts over."""

    def __init__(self, tracker: PitchTracker | str = "yin", input_rate: int = 44100,
                 settings: SegmenterSettings | None = None, keep_frames: bool = False,
                 on_frame: Callable[[Frame], None] | None = None):
        self.tracker = make_tracker(tracker) if isinstance(tracker, str) else tracker
        self.input_rate = int(input_rate)
        self.hop = self.tracker.hop
        self.resampler = Resampler(self.input_rate, ANALYSIS_RATE)
        r = float(np.exp(-2.0 * np.pi * DC_CUTOFF_HZ / self.input_rate))
        self._dc_b, self._dc_a = np.array([1.0, -1.0]) * (1.0 + r) / 2.0, np.array([1.0, -r])
        self.segmenter = Segmenter(ANALYSIS_RATE, self.hop, settings, confidence=self.tracker.voicing,
                                   start_confidence=self.tracker.start_voicing, onset_offset=LEVEL_WINDOW // 2,
                                   reach=self.tracker.reach)
        self.keep_frames = keep_frames
        self.on_frame = on_frame
        self.reset()

    def reset(self) -> None:
        self.resampler.reset()
        self.tracker.reset()
        self.segmenter.reset()
        self._pending = np.zeros(0, dtype=np.float32)
        self._dc_zi: np.ndarray | None = None
        self._level_hist = np.zeros(LEVEL_WINDOW, dtype=np.float32)
        self._analysed = 0  # analysis samples consumed by the tracker
        self.stats = ListenerStats()

    def process(self, block: Block) -> list[Event]:
        if block.sample_rate != self.input_rate:
            raise ValueError(f"block at {block.sample_rate} Hz fed to a listener built for {self.input_rate} Hz")
        self.stats.blocks += 1
        decided_at = block.end / self.input_rate
        x = block.samples
        finite = np.isfinite(x)
        if not finite.all():  # one NaN would stay in the filters' state for good: the rest of the take deaf
            bad = int(len(x) - np.count_nonzero(finite))
            self.stats.nonfinite += bad
            x = np.where(finite, x, 0.0).astype(np.float32)
        self.stats.samples += len(x)
        self.stats.input_sum += float(np.sum(x, dtype=np.float64))
        if len(x):
            if self._dc_zi is None:  # as if the first value had always been there: an offset from the start is no step
                self._dc_zi = scipy.signal.lfilter_zi(self._dc_b, self._dc_a) * float(x[0])
            x, self._dc_zi = scipy.signal.lfilter(self._dc_b, self._dc_a, x, zi=self._dc_zi)
            x = x.astype(np.float32)
        y = self.resampler.process(x)
        buf = np.concatenate([self._pending, y]) if len(self._pending) else y
        n = (len(buf) // self.hop) * self.hop
        self._pending = buf[n:]
        if n == 0:
            return []
        chunk = buf[:n]
        f0, conf = self.tracker.process(chunk)
        levels = self._levels(chunk)
        events: list[Event] = []
        for i in range(len(f0)):
            self._analysed += self.hop
            fr = Frame(self._analysed, float(f0[i]), float(conf[i]), float(levels[i]))
            if self.keep_frames:
                self.stats.frame_log.append(fr)
            if self.on_frame is not None:
                self.on_frame(fr)
            for d in self.segmenter.process(fr):
                events.append(self._event(d, decided_at))
        st = self.stats
        st.peak_level_db = max(st.peak_level_db, float(levels.max()))
        st.notes += sum(isinstance(e, NoteOn) for e in events)
        st.frames += len(f0)
        st.last_f0, st.last_confidence, st.last_level_db = float(f0[-1]), float(conf[-1]), float(levels[-1])
        st.last_voiced = self.segmenter.voiced(fr)
        st.tuning_cents = self.segmenter.tuning_cents
        st.seconds = self._analysed / ANALYSIS_RATE
        return events

    def finish(self, end_time: float) -> list[Event]:
        """End of input: close a sounding note."""
        return [self._event(d, end_time) for d in self.segmenter.flush(self._analysed)]


    def input_warnings(self) -> list[str]:
        """One line for each thing wrong with the input so far as a whole (none: nothing)."""
        st, out = self.stats, []
        if st.nonfinite:
            out.append(f"input: {st.nonfinite} samples were not numbers (NaN or Inf); "
                       f"they were replaced by silence - check the file or the device")
        if st.samples:
            dc = st.input_sum / st.samples
            if abs(dc) >= DC_WARN:
                out.append(f"input: a DC offset of {dc:+.3f} (mean sample value) was removed - "
                           f"check the interface or the file")
        if st.frames and st.peak_level_db < SILENT_DB:
            out.append(f"input: silent throughout (loudest {st.peak_level_db:.0f} dBFS): no note could be "
                       f"heard - check the input, its gain, or --device")
        elif st.frames and st.notes == 0 and st.seconds >= 1.0:
            out.append(f"input: sound (loudest {st.peak_level_db:.0f} dBFS) but no note heard in "
                       f"{st.seconds:.1f} s - is it a monophonic instrument, and the right input?")
        return out

    def _levels(self, chunk: np.ndarray) -> np.ndarray:
        """RMS level in dBFS over the last 10 ms at each hop boundary of ``chunk``."""
        buf = np.concatenate([self._level_hist, chunk])
        self._level_hist = buf[-LEVEL_WINDOW:]
        sq = np.concatenate([[0.0], np.cumsum(buf.astype(np.float64) ** 2)])
        ends = LEVEL_WINDOW + self.hop * np.arange(1, len(chunk) // self.hop + 1)
        power = (sq[ends] - sq[ends - LEVEL_WINDOW]) / LEVEL_WINDOW
        return 10.0 * np.log10(np.maximum(power, 1e-12))

    def _event(self, d: Decision, decided_at: float) -> Event:
        sec = lambda n: n / ANALYSIS_RATE  # noqa: E731
        if isinstance(d, NoteStart):
            return NoteOn(time=decided_at, pitch=d.pitch, velocity=d.velocity, onset=sec(d.onset),
                          cents=d.cents, tuning=d.tuning, retake=d.retake)
        if isinstance(d, NoteEnd):
            return NoteOff(time=decided_at, pitch=d.pitch, end=sec(d.end))
        return PitchBend(time=decided_at, cents=d.cents)


def transcribe(samples: np.ndarray, sample_rate: int, tracker: PitchTracker | str = "yin",
               settings: SegmenterSettings | None = None, blocksize: int | None = None) -> list[Event]:
    """A whole recording (mono float samples) through the same pipeline, in one go.

    ``blocksize=None`` hands the listener the whole array as one block (the offline
    path); a number feeds it block by block, as the microphone would.
    """
    x = np.asarray(samples, dtype=np.float32)
    listener = Listener(tracker, sample_rate, settings)
    step = len(x) if not blocksize else int(blocksize)
    events: list[Event] = []
    for i in range(0, len(x), max(step, 1)):
        events.extend(listener.process(Block(x[i:i + step], i, sample_rate)))
    events.extend(listener.finish(len(x) / sample_rate))
    return events
