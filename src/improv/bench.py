"""``improv bench``: recordings through the live pipeline, scored against their truth.

Each file is read block by block exactly as the microphone would deliver it (same
``Listener``, same block size), as fast as the CPU allows. Scores:

* note precision / recall / F1 with mir_eval (onset 50 ms, pitch 50 cents), also with
  offsets (20% of the note or 50 ms) and onset only;
* note-on decision latency: when the pipeline emitted the NoteOn (end of the block
  that completed the deciding frame) minus the annotated onset, over the notes matched
  on onset and pitch;
* frame pitch accuracy (mir_eval.melody) where a frame truth exists;
* CPU real-time factor: process CPU seconds per second of audio.

Two views of the same run, scored the same way:

* **as sent** (``sent_keys``, ``sent_bends``): every NoteOn improv emitted, retakes
  included, starting at the time it was sent, with its key (and key + the bend sent with
  it). A wrong first guess counts against precision even when a retake corrects it, and
  a note decided more than 50 ms after its true onset counts as missed. This is what the
  band, the player's gear and ``session.mid``'s player track got. Latency: true onset to
  NoteOn sent, over the notes matched as sent.
* **transcript** (``notes``, ``keys``, ``onsets``, ``notes_offset``): the corrected
  transcript (``events.notes_from_events``): retakes resolved, back-dated onsets, pitch =
  the key plus the median pitch bend held while it sounded. ``keys`` scores its bare keys.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mir_eval
import numpy as np

from .audio import FileSource
from .events import Note, NoteOn, notes_from_events, sent_notes_from_events
from .listen.pipeline import Listener
from .listen.segmenter import SegmenterSettings
from .listen.trackers import ANALYSIS_RATE, make_tracker
from .truth import Truth, find_truth

ONSET_TOL = 0.05
PITCH_TOL = 50.0


@dataclass
class Counts:
    ref: int = 0
    est: int = 0
    hit: int = 0

    def add(self, other: "Counts") -> None:
        self.ref += other.ref
        self.est += other.est
        self.hit += other.hit

    @property
    def precision(self) -> float:
        return self.hit / self.est if self.est else 0.0

    @property
    def recall(self) -> float:
        return self.hit / self.ref if self.ref else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class FileResult:
    path: str
    tracker: str
    duration: float
    notes: Counts
    notes_offset: Counts
    onsets: Counts
    keys: Counts
    latencies_ms: list[float]
    cpu_seconds: float
    wall_seconds: float
    frame_accuracy: float | None = None
    voicing_recall: float | None = None
    voicing_false_alarm: float | None = None
    sent_keys: Counts = field(default_factory=Counts)
    sent_bends: Counts = field(default_factory=Counts)
    sent_latencies_ms: list[float] = field(default_factory=list)
    retakes: int = 0
    est_notes: list[Note] = field(default_factory=list, repr=False)

    @property
    def rtf(self) -> float:
        return self.cpu_seconds / self.duration


def _arrays(notes: list[Note]) -> tuple[np.ndarray, np.ndarray]:
    if not notes:
        return np.zeros((0, 2)), np.zeros(0)
    iv = np.array([[n.onset, n.offset] for n in notes])
    return iv, np.array([n.pitch for n in notes])


def _hz(midi: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi) - 69.0) / 12.0)


def score_notes(truth: Truth, notes: list[Note]) -> dict[str, object]:
    """mir_eval note matching of ``notes`` against ``truth``."""
    ref_iv, ref_p = truth.intervals, truth.pitches
    est_iv, est_p = _arrays(notes)
    keys = np.round(est_p)
    counts: dict[str, object] = {}

    def match(est_pitch, offset_ratio):
        if len(est_iv) == 0 or len(ref_iv) == 0:
            return []
        return mir_eval.transcription.match_notes(
            ref_iv, _hz(ref_p), est_iv, _hz(est_pitch), onset_tolerance=ONSET_TOL,
            pitch_tolerance=PITCH_TOL, offset_ratio=offset_ratio)

    m = match(est_p, None)
    counts["notes"] = Counts(len(ref_iv), len(est_iv), len(m))
    counts["notes_offset"] = Counts(len(ref_iv), len(est_iv), len(match(est_p, 0.2)))
    counts["keys"] = Counts(len(ref_iv), len(est_iv), len(match(keys, None)))
    if len(est_iv) and len(ref_iv):
        on = mir_eval.transcription.match_note_onsets(ref_iv, est_iv, onset_tolerance=ONSET_TOL)
    else:
        on = []
    counts["onsets"] = Counts(len(ref_iv), len(est_iv), len(on))
    counts["latencies_ms"] = [
        1000.0 * (notes[j].decided - ref_iv[i, 0]) for i, j in m if notes[j].decided is not None
    ]
    return counts


def score_sent(truth: Truth, events, until: float) -> dict[str, object]:
    """As-sent scores of a run's events: key only and key + bend, and the latency of
    each matched NoteOn from its true onset (see the module docstring)."""
    out: dict[str, object] = {}
    ref_iv, ref_p = truth.intervals, truth.pitches
    for name, bends in (("sent_keys", False), ("sent_bends", True)):
        notes = sent_notes_from_events(events, until=until, bends=bends)
        est_iv, est_p = _arrays(notes)
        m = []
        if len(est_iv) and len(ref_iv):
            m = mir_eval.transcription.match_notes(
                ref_iv, _hz(ref_p), est_iv, _hz(est_p), onset_tolerance=ONSET_TOL,
                pitch_tolerance=PITCH_TOL, offset_ratio=None)
        out[name] = Counts(len(ref_iv), len(est_iv), len(m))
        if not bends:
            out["sent_latencies_ms"] = [1000.0 * (notes[j].onset - ref_iv[i, 0]) for i, j in m]
    return out


def frame_scores(truth: Truth, frame_times: np.ndarray, frame_hz: np.ndarray) -> dict[str, float]:
    """mir_eval.melody raw pitch accuracy and voicing on the truth's time grid."""
    assert truth.f0_times is not None and truth.f0_hz is not None
    ref_v, ref_c, est_v, est_c = mir_eval.melody.to_cent_voicing(
        truth.f0_times, truth.f0_hz, frame_times, frame_hz)
    return {
        "frame_accuracy": float(mir_eval.melody.raw_pitch_accuracy(ref_v, ref_c, est_v, est_c)),
        "voicing_recall": float(mir_eval.melody.voicing_recall(ref_v, est_v)),
        "voicing_false_alarm": float(mir_eval.melody.voicing_false_alarm(ref_v, est_v)),
    }


def run_file(path: str | Path, tracker: str = "yin", blocksize: int = 256,
             settings: SegmenterSettings | None = None, truth: Truth | None = None) -> FileResult:
    """Run one recording through the live pipeline and score it."""
    path = Path(path)
    truth = truth or find_truth(path)
    if truth is None:
        raise FileNotFoundError(path)
    source = FileSource(path, blocksize=blocksize, fast=True)
    listener = Listener(make_tracker(tracker), source.sample_rate, settings,
                        keep_frames=truth.f0_times is not None)
    events = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for block in source.blocks():
        events.extend(listener.process(block))
    events.extend(listener.finish(source.duration))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    notes = notes_from_events(events, until=source.duration)
    sc = score_notes(truth, notes)
    result = FileResult(
        path=str(path), tracker=tracker, duration=source.duration,
        notes=sc["notes"], notes_offset=sc["notes_offset"], onsets=sc["onsets"], keys=sc["keys"],
        latencies_ms=sc["latencies_ms"], cpu_seconds=cpu, wall_seconds=wall, est_notes=notes,
        retakes=sum(1 for e in events if isinstance(e, NoteOn) and e.retake),
        **score_sent(truth, events, source.duration),
    )
    if truth.f0_times is not None:
        frames = listener.stats.frame_log
        times = np.array([f.time for f in frames]) / ANALYSIS_RATE
        hz = np.array([f.f0 if f.confidence >= listener.segmenter.confidence else 0.0 for f in frames])
        fs = frame_scores(truth, times, hz)
        result.frame_accuracy = fs["frame_accuracy"]
        result.voicing_recall = fs["voicing_recall"]
        result.voicing_false_alarm = fs["voicing_false_alarm"]
    return result


@dataclass
class Summary:
    tracker: str
    files: int
    duration: float
    notes: Counts
    notes_offset: Counts
    onsets: Counts
    keys: Counts
    latency_p50: float
    latency_p95: float
    rtf: float
    frame_accuracy: float | None
    sent_keys: Counts = field(default_factory=Counts)
    sent_bends: Counts = field(default_factory=Counts)
    sent_latency_p50: float = float("nan")
    sent_latency_p95: float = float("nan")
    sent_key_f1_mean: float = float("nan")  # as-sent key F1, mean over files
    retakes: int = 0

    def row(self) -> dict:
        d = asdict(self)
        for k in ("notes", "notes_offset", "onsets", "keys", "sent_keys", "sent_bends"):
            c: Counts = getattr(self, k)
            d[k] = {"precision": c.precision, "recall": c.recall, "f1": c.f1, **asdict(c)}
        return d


def summarise(tracker: str, results: list[FileResult]) -> Summary:
    total = {k: Counts() for k in ("notes", "notes_offset", "onsets", "keys", "sent_keys", "sent_bends")}
    lat: list[float] = []
    sent_lat: list[float] = []
    cpu = dur = 0.0
    fa = []
    for r in results:
        for k in total:
            total[k].add(getattr(r, k))
        lat.extend(r.latencies_ms)
        sent_lat.extend(r.sent_latencies_ms)
        cpu += r.cpu_seconds
        dur += r.duration
        if r.frame_accuracy is not None:
            fa.append(r.frame_accuracy)
    return Summary(
        tracker=tracker, files=len(results), duration=dur, **total,
        latency_p50=float(np.percentile(lat, 50)) if lat else float("nan"),
        latency_p95=float(np.percentile(lat, 95)) if lat else float("nan"),
        rtf=cpu / dur if dur else float("nan"),
        frame_accuracy=float(np.mean(fa)) if fa else None,
        sent_latency_p50=float(np.percentile(sent_lat, 50)) if sent_lat else float("nan"),
        sent_latency_p95=float(np.percentile(sent_lat, 95)) if sent_lat else float("nan"),
        sent_key_f1_mean=float(np.mean([r.sent_keys.f1 for r in results])) if results else float("nan"),
        retakes=sum(r.retakes for r in results),
    )


def first_note_on(events) -> NoteOn | None:
    return next((e for e in events if isinstance(e, NoteOn)), None)
