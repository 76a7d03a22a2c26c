"""Terminal and JSON output of ``improv bench``."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from .bench import FileResult, Summary, run_file, summarise
from .errors import ConfigError
from .listen.segmenter import DEFAULT_DECIDE, decide_settings
from .listen.trackers import TRACKERS
from .truth import find_truth

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3"}


def collect(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in AUDIO_SUFFIXES))
        elif p.exists():
            files.append(p)
        else:
            raise ConfigError(f"{p}: no such file or folder")
    return files


def _job(item: tuple[str, str, int, str]) -> FileResult:
    path, tracker, blocksize, decide = item
    result = run_file(path, tracker, blocksize, decide_settings(decide))
    result.est_notes = []
    return result


def run_bench(args, console) -> int:
    files = collect(args.files)
    scored, skipped = [], []
    for f in files:
        (scored if find_truth(f) is not None else skipped).append(f)
    for f in skipped:
        console.print(f"skipped {f}: no annotations beside it (NAME.txt, NAME_notesA1.csv, NAME.gt.mid or NAME.mid)")
    if not scored:
        names = ", ".join(f.name for f in skipped[:3]) + (" ..." if len(skipped) > 3 else "")
        raise ConfigError(f"no annotations beside {names}: put NAME.gt.mid, NAME.mid, NAME.txt (SSVD) or "
                          "NAME_notesA1.csv (vocadito) next to each recording")
    trackers = list(TRACKERS) if args.tracker == "all" else [args.tracker]
    summaries: list[Summary] = []
    per_file: dict[str, list[dict]] = {}
    for tracker in trackers:
        items = [(str(f), tracker, args.blocksize, getattr(args, "decide", DEFAULT_DECIDE)) for f in scored]
        if args.jobs > 1:
            with ProcessPoolExecutor(args.jobs) as ex:
                results = list(ex.map(_job, items))
        else:
            results = [_job(i) for i in items]
        summaries.append(summarise(tracker, results))
        per_file[tracker] = [_file_row(r) for r in results]
        if args.per_file:
            _print_files(console, tracker, results)
    _print_summary(console, summaries)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"summary": [s.row() for s in summaries], "files": per_file}, indent=2))
        console.print(f"figures written to {args.json}")
    return 0


def _file_row(r: FileResult) -> dict:
    return {
        "path": r.path, "duration": r.duration, "f1": r.notes.f1, "precision": r.notes.precision,
        "recall": r.notes.recall, "f1_offset": r.notes_offset.f1, "onset_f1": r.onsets.f1,
        "key_f1": r.keys.f1, "latencies_ms": r.latencies_ms,
        "sent_key_f1": r.sent_keys.f1, "sent_key_precision": r.sent_keys.precision,
        "sent_key_recall": r.sent_keys.recall, "sent_bend_f1": r.sent_bends.f1,
        "sent_latencies_ms": r.sent_latencies_ms, "retakes": r.retakes, "rtf": r.rtf,
        "frame_accuracy": r.frame_accuracy, "voicing_recall": r.voicing_recall,
        "voicing_false_alarm": r.voicing_false_alarm,
    }


def _p50(values: list[float]) -> str:
    return f"{float(np.percentile(values, 50)):.0f}" if values else "-"


def _print_files(console, tracker: str, results: list[FileResult]) -> None:
    from rich.table import Table

    t = Table(title=f"{tracker}: per file — as sent (every NoteOn at the time it was sent) | transcript")
    for col in ("file", "notes", "sent key F1", "sent key+bend F1", "sent lat p50", "retakes",
                "transcript F1", "F1+off", "onset F1"):
        t.add_column(col, justify="right" if col != "file" else "left")
    for r in results:
        t.add_row(Path(r.path).name, str(r.notes.ref), f"{r.sent_keys.f1:.3f}", f"{r.sent_bends.f1:.3f}",
                  _p50(r.sent_latencies_ms), str(r.retakes), f"{r.notes.f1:.3f}",
                  f"{r.notes_offset.f1:.3f}", f"{r.onsets.f1:.3f}")
    console.print(t)


def _print_summary(console, summaries: list[Summary]) -> None:
    from rich.table import Table

    t = Table(title="improv bench, AS SENT: every NoteOn improv emitted (retakes included) at the time it "
                    "was sent; later than 50 ms after the true onset = missed (pitch 50 cents)")
    for c in ("tracker", "files", "notes", "key P", "key R", "key F1", "key F1 file mean", "key+bend F1",
              "latency p50 ms", "p95 ms", "retakes", "CPU RTF"):
        t.add_column(c, justify="left" if c == "tracker" else "right")
    for s in summaries:
        t.add_row(s.tracker, str(s.files), str(s.notes.ref), f"{s.sent_keys.precision:.3f}",
                  f"{s.sent_keys.recall:.3f}", f"{s.sent_keys.f1:.3f}", f"{s.sent_key_f1_mean:.3f}",
                  f"{s.sent_bends.f1:.3f}", f"{s.sent_latency_p50:.1f}", f"{s.sent_latency_p95:.1f}",
                  str(s.retakes), f"{s.rtf:.3f}")
    console.print(t)
    t = Table(title="improv bench, TRANSCRIPT: retakes resolved, back-dated onsets, pitch from the held bend "
                    "(onset 50 ms, pitch 50 cents)")
    cols = ("tracker", "files", "notes", "P", "R", "F1", "F1+offset", "onset F1", "key F1",
            "latency p50 ms", "p95 ms", "frame acc")
    for c in cols:
        t.add_column(c, justify="left" if c == "tracker" else "right")
    for s in summaries:
        t.add_row(s.tracker, str(s.files), str(s.notes.ref), f"{s.notes.precision:.3f}", f"{s.notes.recall:.3f}",
                  f"{s.notes.f1:.3f}", f"{s.notes_offset.f1:.3f}", f"{s.onsets.f1:.3f}", f"{s.keys.f1:.3f}",
                  f"{s.latency_p50:.1f}", f"{s.latency_p95:.1f}",
                  "-" if s.frame_accuracy is None else f"{s.frame_accuracy:.3f}")
    console.print(t)
