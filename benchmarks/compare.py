#!/usr/bin/env python3
"""improv beside the tools a musician would use instead: same recordings, same run, same scoring.

Listening side. Every method turns each recording into notes, scored by
``improv.bench.score_notes`` against ``improv.truth.find_truth`` (onset 50 ms, pitch 50
cents; offsets 20% or 50 ms), pooled over files:

* improv's live pipeline with each tracker (block by block, causal: ``improv.bench.run_file``);
* aubio's note tracker (``aubio-notes``, causal, fed hop by hop);
* Basic Pitch on ONNX (``basic-pitch``, offline, polyphonic);
* pYIN over the whole clip plus a plain note segmentation (``pyin-offline``, non-causal).

Recordings: the real takes in ../shared/data (vocadito; 8 of the 67 SSVD sight-singing
takes, spread evenly) and instrument takes with exact truth from ``render_instruments.py``
(one per instrument, the soundfonts alternating; rendered into the cache first if
missing). About 500 s of audio: the six default methods need about 9 CPU minutes, so
the run takes 5-6 minutes on an idle 2-core machine (``--ssvd all --takes all`` for
everything: 40 + 11 minutes of audio).

Generation side (band model step latency, notes per second, player-to-band latency on
JACK): not measured yet — no band model in this branch. The JSON carries the section with
its status so that the numbers can be added beside the listening ones.

    python3 benchmarks/compare.py                 # ~500 s of audio, 6 methods, 2 processes
    python3 benchmarks/compare.py --ssvd all --takes all --methods improv:yin,aubio-notes

Writes OUT/compare.json, OUT/compare.png (F1 bars, latency histograms) and OUT/compare.md
(the table for the README); prints the table.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread per worker process: the pool is the parallelism

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from improv.bench import FileResult, Summary, run_file, score_notes, summarise  # noqa: E402
from improv.listen.trackers import DEFAULT_TRACKER  # noqa: E402
from improv.truth import find_truth  # noqa: E402

DEFAULT_METHODS = ("improv:yin", "improv:crepe-tiny", "improv:pesto", "aubio-notes", "basic-pitch", "pyin-offline")
LEFT_OUT = {
    "improv:crepe-full": "about 9x slower than real time on an idle core (88 ms of CPU per 10 ms frame, "
                         "../shared/docs/pitch-trackers.md); on this shared machine 8 CPU-minutes per 23 s "
                         "take did not finish it. It alone would take the run past 10 minutes. "
                         "Add it with --methods on a few files.",
    "fcpe": "torchfcpe 0.0.4 ships its weights in the wheel but imports torchaudio at import time "
            "(mel_extractor.py: from torchaudio.transforms import Resample); the only torchaudio "
            "on PyPI here is a CUDA build that breaks the CPU torch. pYIN is the offline ceiling instead.",
}
# Rough CPU seconds per second of audio, to start the slow jobs first.
COST = {"improv:crepe-full": 9.0, "improv:crepe-tiny": 0.5, "improv:pesto": 0.4, "pyin-offline": 0.15,
        "improv:yin": 0.07, "basic-pitch": 0.03, "aubio-notes": 0.01}
DATA = Path(os.environ.get("IMPROV_SHARED_DATA", HERE.parent.parent / "shared" / "data"))
GENERATION_TODO = ("not measured: needs the band model (branch `model`) and the band players; "
                   "to add: band-model step latency p50/p95, notes per second sustained, and the "
                   "player-to-band latency (true onset in the input audio -> first reacting MIDI "
                   "message out of improv) on the JACK server with the whole pipeline running")


@dataclass(frozen=True)
class Recording:
    path: Path
    group: str  # "ssvd", "vocadito" or "inst:<instrument>"

    @property
    def kind(self) -> str:
        return "instruments" if self.group.startswith("inst:") else "real"


def is_causal(method: str) -> bool:
    return method.startswith("improv:") or method == "aubio-notes"


# ----------------------------------------------------------------------- recordings


def real_recordings(data: Path, ssvd: int | None, log) -> list[Recording]:
    """vocadito and ``ssvd`` SSVD files spread evenly over the sorted list (None: all)."""
    if not data.is_dir():
        log(f"skipped the real recordings: {data} is absent")
        return []
    out = []
    voc = data / "vocadito" / "vocadito_1.wav"
    if voc.exists():
        out.append(Recording(voc, "vocadito"))
    files = sorted((data / "ssvd-train").glob("*.flac"))
    if files and ssvd != 0:
        if ssvd is not None and ssvd < len(files):
            files = [files[int((i + 0.5) * len(files) / ssvd)] for i in range(ssvd)]
        out.extend(Recording(f, "ssvd") for f in files)
    return out


def instrument_recordings(folder: Path, takes: str, seed: int, log) -> list[Recording]:
    """Instrument takes from ``folder`` (rendered there first if it holds none).

    ``takes``: ``one`` per instrument (soundfonts alternating from one instrument to the
    next), the ``first`` per instrument and soundfont, or ``all``.
    """
    import render_instruments as ri

    if not any(folder.glob("*.gt.mid")):
        log(f"rendering the instrument takes into {folder} ...")
        ri.render_set(folder, list(ri.INSTRUMENTS), None, seed, log=lambda *_: None)
    found: dict[str, list[tuple[str, Path]]] = {}
    for wav in sorted(folder.glob("*.wav"), key=lambda w: (w.stem.rsplit("-", 1)[0], len(w.stem), w.stem)):
        m = re.fullmatch(r"(\w+)-(\w+)-(\d+)", wav.stem)
        if m and find_truth(wav) is not None:
            found.setdefault(m.group(1), []).append((m.group(2), wav))
    order = [n for n in ri.INSTRUMENTS if n in found] + sorted(set(found) - set(ri.INSTRUMENTS))
    out = []
    for i, name in enumerate(order):
        cands = found[name]
        if takes == "all":
            picked = [w for _, w in cands]
        elif takes == "first":
            picked = list({sf: w for sf, w in reversed(cands)}.values())
        else:
            want = ("tim", "fluidr3")[i % 2]
            picked = [next((w for sf, w in cands if sf == want), cands[0][1])]
        out.extend(Recording(w, f"inst:{name}") for w in sorted(picked))
    return out


# ------------------------------------------------------------------------------ jobs


def _init_worker() -> None:
    import warnings

    import torch

    torch.set_num_threads(1)
    # run_file scores vocadito's frames too; a tracker that hears nothing there makes mir_eval warn
    warnings.filterwarnings("ignore", message="Estimated melody has no voiced frames")


def run_chunk(method: str, paths: list[str], blocksize: int) -> list[FileResult]:
    """Score ``paths`` with ``method`` in this process (peers are built once per chunk)."""
    results: list[FileResult] = []
    if method.startswith("improv:"):
        tracker = method.split(":", 1)[1]
        for p in paths:
            r = run_file(p, tracker, blocksize)
            r.tracker, r.est_notes = method, []
            r.frame_accuracy = r.voicing_recall = r.voicing_false_alarm = None
            results.append(r)
        return results
    from peers import make_peer

    peer = make_peer(method)
    for p in paths:
        tr = peer.transcribe(p)
        sc = score_notes(find_truth(p), tr.notes)
        results.append(FileResult(
            path=str(p), tracker=method, duration=tr.duration, notes=sc["notes"],
            notes_offset=sc["notes_offset"], onsets=sc["onsets"], keys=sc["keys"],
            latencies_ms=sc["latencies_ms"], cpu_seconds=tr.cpu_seconds, wall_seconds=tr.wall_seconds))
    return results


def plan(methods: list[str], recs: list[Recording], chunk_seconds: float = 90.0) -> list[tuple[str, list[str]]]:
    """Chunks of about ``chunk_seconds`` of audio per method, the costliest first."""
    import soundfile

    dur = {r.path: soundfile.info(str(r.path)).duration for r in recs}
    jobs = []
    for m in methods:
        chunk, total = [], 0.0
        for r in sorted(recs, key=lambda r: -dur[r.path]):
            chunk.append(str(r.path))
            total += dur[r.path]
            if total >= chunk_seconds:
                jobs.append((m, chunk, total * COST.get(m, 1.0)))
                chunk, total = [], 0.0
        if chunk:
            jobs.append((m, chunk, total * COST.get(m, 1.0)))
    jobs.sort(key=lambda j: -j[2])
    return [(m, c) for m, c, _ in jobs]


class LoadSampler:
    """The 1-minute load average every few seconds while the run goes."""

    def __init__(self, every: float = 5.0):
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.every):
                return


# --------------------------------------------------------------------------- figures


def summaries(methods: list[str], results: dict[str, list[FileResult]], recs: list[Recording]) -> dict:
    group_of = {str(r.path): r.group for r in recs}
    kind_of = {str(r.path): r.kind for r in recs}
    out: dict[str, dict] = {}
    for m in methods:
        rs = results.get(m, [])
        parts = {"all": rs}
        for k in ("real", "instruments"):
            parts[k] = [r for r in rs if kind_of[r.path] == k]
        for g in sorted(set(group_of.values())):
            parts[g] = [r for r in rs if group_of[r.path] == g]
        out[m] = {name: _row(summarise(m, sub)) for name, sub in parts.items() if sub}
        out[m]["latencies_ms"] = [x for r in rs for x in r.latencies_ms]
    return out


def _row(s: Summary) -> dict:
    row = s.row()
    row.pop("frame_accuracy", None)
    for k in ("latency_p50", "latency_p95"):
        if not np.isfinite(row[k]):
            row[k] = None  # offline methods decide nothing while the audio plays
    return row


def verdicts(figs: dict) -> list[str]:
    """The issue's two claims, checked on the numbers (reported either way)."""
    lines = []
    ours = f"improv:{DEFAULT_TRACKER}"
    if ours not in figs:
        return [f"{ours} (the default) was not run: no verdict"]
    o = figs[ours]["all"]
    if "aubio-notes" in figs:
        a = figs["aubio-notes"]["all"]
        ahead = o["notes"]["f1"] > a["notes"]["f1"]
        if o["latency_p50"] is None or a["latency_p50"] is None:
            return lines + [f"{ours} vs aubio-notes: no matched notes to time"]
        faster = o["latency_p50"] <= a["latency_p50"] and o["latency_p95"] <= a["latency_p95"]
        lines.append(
            f"{ours} vs aubio-notes: F1 {o['notes']['f1']:.3f} vs {a['notes']['f1']:.3f} "
            f"({100 * (o['notes']['f1'] - a['notes']['f1']):+.1f} points), latency p50 {o['latency_p50']:.0f} vs "
            f"{a['latency_p50']:.0f} ms, p95 {o['latency_p95']:.0f} vs {a['latency_p95']:.0f} ms: "
            + ("ahead at equal or lower latency" if ahead and faster else "NOT ahead at equal or lower latency"))
    if "basic-pitch" in figs:
        b = figs["basic-pitch"]["all"]
        gap = 100 * (b["notes"]["f1"] - o["notes"]["f1"])
        lines.append(f"{ours} vs basic-pitch (offline): F1 {o['notes']['f1']:.3f} vs {b['notes']['f1']:.3f}, "
                     f"{gap:.1f} points behind: " + ("within 5 points" if gap <= 5 else "NOT within 5 points"))
    return lines


def _fmt(x, digits=3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return f"{x:.{digits}f}"


COLUMNS = ("method", "kind", "notes", "F1", "F1+off", "onset F1", "F1 real", "F1 instr.",
           "lat. p50 ms", "p95 ms", "CPU RTF")


def table_rows(methods: list[str], figs: dict) -> list[list[str]]:
    rows = []
    for m in methods:
        f = figs.get(m)
        if not f or "all" not in f:
            continue
        a = f["all"]
        causal = is_causal(m)
        rows.append([
            m, "causal" if causal else "offline", str(a["notes"]["ref"]), _fmt(a["notes"]["f1"]),
            _fmt(a["notes_offset"]["f1"]), _fmt(a["onsets"]["f1"]),
            _fmt(f["real"]["notes"]["f1"]) if "real" in f else "-",
            _fmt(f["instruments"]["notes"]["f1"]) if "instruments" in f else "-",
            _fmt(a["latency_p50"], 0) if causal else "offline", _fmt(a["latency_p95"], 0) if causal else "-",
            _fmt(a["rtf"]),
        ])
    return rows


def group_rows(methods: list[str], figs: dict, groups: list[str]) -> list[list[str]]:
    rows = []
    for m in methods:
        f = figs.get(m, {})
        rows.append([m] + [_fmt(f[g]["notes"]["f1"]) if g in f else "-" for g in groups])
    return rows


def markdown(cols, rows) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(cols))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def plot(path: Path, methods: list[str], figs: dict, groups: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5.5))
    sets = ["all", "real", "instruments"] + groups
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(sets))
    for i, m in enumerate(methods):
        f = figs.get(m, {})
        ax1.bar(x + i * width, [f[s]["notes"]["f1"] if s in f else 0 for s in sets], width, label=m)
    ax1.set_xticks(x + width * (len(methods) - 1) / 2, [s.replace("inst:", "") for s in sets], rotation=45, ha="right")
    ax1.set_ylabel("note F1 (onset 50 ms, pitch 50 cents)")
    ax1.set_ylim(0, 1.18)
    ax1.legend(fontsize=8, ncol=3, loc="upper center")
    ax1.set_title("note F1 by recording set")
    bins = np.arange(-50, 310, 10)
    for m in methods:
        lat = figs.get(m, {}).get("latencies_ms", [])
        if is_causal(m) and lat:
            ax2.hist(np.clip(lat, -50, 300), bins=bins, histtype="step", linewidth=1.5,
                     label=f"{m} (p50 {np.percentile(lat, 50):.0f} ms)")
    ax2.set_xlabel("decision latency: NoteOn emitted - true onset (ms; clipped at 300)")
    ax2.set_ylabel("matched notes")
    ax2.legend(fontsize=8)
    ax2.set_title("causal methods: decision latency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=HERE / "results", help="folder for compare.json/.png/.md")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help="comma list of improv:<tracker>, aubio-notes, basic-pitch, pyin-offline")
    p.add_argument("--data", type=Path, default=DATA, help=f"real recordings (default {DATA})")
    p.add_argument("--ssvd", default="8", help="SSVD files, spread evenly (a number, or all; default 8)")
    p.add_argument("--instruments", type=Path, default=Path.home() / ".cache" / "improv" / "instruments",
                   help="instrument takes (rendered there if absent)")
    p.add_argument("--takes", choices=["one", "first", "all"], default="one",
                   help="instrument takes: one per instrument, soundfonts alternating (default); "
                        "the first per instrument and soundfont; or all")
    p.add_argument("--seed", type=int, default=1, help="seed for rendering the instrument takes")
    p.add_argument("--jobs", "-j", type=int, default=2)
    p.add_argument("--blocksize", type=int, default=256)
    args = p.parse_args(argv)

    from improv.listen.trackers import TRACKERS
    from peers import PEERS

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if not (m in PEERS or (m.startswith("improv:") and m.split(":", 1)[1] in TRACKERS)):
            p.error(f"unknown method {m!r}: use improv:<{'|'.join(TRACKERS)}> or one of {', '.join(PEERS)}")
    ssvd = None if args.ssvd == "all" else int(args.ssvd)
    log = lambda *a: print(*a, flush=True)  # noqa: E731
    from peers import missing

    skipped = {m: missing(m) for m in methods if m in PEERS and missing(m)}
    for m, why in skipped.items():
        log(f"skipped {m}: {why}")
    methods = [m for m in methods if m not in skipped]

    recs = real_recordings(args.data, ssvd, log) + instrument_recordings(args.instruments, args.takes, args.seed, log)
    if not recs:
        log("no recordings to compare on")
        return 1
    import soundfile

    audio_s = sum(soundfile.info(str(r.path)).duration for r in recs)
    est = sum(audio_s * COST.get(m, 1.0) for m in methods)
    log(f"{len(recs)} recordings, {audio_s:.0f} s of audio; {len(methods)} methods; "
        f"about {est / 60:.1f} CPU minutes on an idle machine ({args.jobs} processes)")
    for m, why in LEFT_OUT.items():
        if m not in methods:
            log(f"left out {m}: {why}")

    jobs = plan(methods, recs)
    results: dict[str, list[FileResult]] = {m: [] for m in methods}
    load_before = os.getloadavg()
    wall0 = time.perf_counter()
    with LoadSampler() as sampler, ProcessPoolExecutor(args.jobs, initializer=_init_worker) as ex:
        futures = {ex.submit(run_chunk, m, paths, args.blocksize): m for m, paths in jobs}
        done = 0
        for fut in as_completed(futures):
            results[futures[fut]].extend(fut.result())
            done += 1
            log(f"  [{done}/{len(jobs)}] {futures[fut]} ({time.perf_counter() - wall0:.0f} s)")
    wall = time.perf_counter() - wall0
    load_after = os.getloadavg()

    figs = summaries(methods, results, recs)
    groups = sorted({r.group for r in recs}, key=lambda g: (g.startswith("inst:"), g))
    cpu_total = sum(r.cpu_seconds for rs in results.values() for r in rs)
    machine = {
        "cpu_count": os.cpu_count(), "processes": args.jobs, "platform": platform.platform(),
        "python": platform.python_version(),
        "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after],
        "load_during_mean": round(float(np.mean(sampler.samples)), 2) if sampler.samples else None,
        "load_during_max": round(float(np.max(sampler.samples)), 2) if sampler.samples else None,
        "wall_seconds": round(wall, 1), "cpu_seconds_analysis": round(cpu_total, 1),
    }
    recordings = [{"path": str(r.path), "group": r.group} for r in recs]
    per_file = {m: [{"path": r.path, "duration": r.duration, "f1": r.notes.f1, "f1_offset": r.notes_offset.f1,
                     "onset_f1": r.onsets.f1, "ref": r.notes.ref, "est": r.notes.est, "hit": r.notes.hit,
                     "latencies_ms": r.latencies_ms, "rtf": r.rtf} for r in rs]
                for m, rs in results.items()}
    claims = verdicts(figs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.json").write_text(json.dumps({
        "scoring": "improv.bench.score_notes: mir_eval, onset 50 ms, pitch 50 cents, offsets 20% or 50 ms; "
                   "latency = NoteOn decision time - true onset over notes matched on onset and pitch",
        "machine": machine, "methods": methods,
        "left_out": {**{k: v for k, v in LEFT_OUT.items() if k not in methods}, **skipped},
        "recordings": recordings, "summary": figs, "files": per_file, "claims": claims,
        "generation": {"status": "todo", "reason": GENERATION_TODO},
    }, indent=1, default=float))
    plot(args.out / "compare.png", methods, figs, groups)

    rows = table_rows(methods, figs)
    grows = group_rows(methods, figs, groups)
    gcols = ["method"] + [g.replace("inst:", "") for g in groups]
    load_line = (f"{machine['cpu_count']} CPUs, {args.jobs} processes; load average {load_before[0]:.1f} before, "
                 f"{machine['load_during_mean']} mean / {machine['load_during_max']} max during, "
                 f"{load_after[0]:.1f} after; {wall:.0f} s wall, {cpu_total:.0f} s CPU in analysis")
    md = (f"{markdown(COLUMNS, rows)}\n\nnote F1 by set:\n\n{markdown(gcols, grows)}\n\n"
          f"{len(recs)} recordings, {audio_s:.0f} s; {load_line}.\n\n" + "\n".join(f"- {c}" for c in claims) + "\n")
    (args.out / "compare.md").write_text(md)
    _print(rows, grows, gcols, load_line, claims)
    log(f"generation side: {GENERATION_TODO}")
    log(f"written: {args.out / 'compare.json'}, {args.out / 'compare.png'}, {args.out / 'compare.md'}")
    return 0


def _print(rows, grows, gcols, load_line, claims) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200, highlight=False)
    t = Table(title="listening: improv and its peers (onset 50 ms, pitch 50 cents)", caption=load_line)
    for c in COLUMNS:
        t.add_column(c, justify="left" if c in ("method", "kind") else "right")
    for r in rows:
        t.add_row(*r)
    console.print(t)
    g = Table(title="note F1 by set")
    for c in gcols:
        g.add_column(c, justify="left" if c == "method" else "right")
    for r in grows:
        g.add_row(*r)
    console.print(g)
    for c in claims:
        console.print(c)


if __name__ == "__main__":
    sys.exit(main())
