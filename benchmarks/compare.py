#!/usr/bin/env python3
"""improv beside the tools a musician would use instead: same recordings, same run, same scoring.

Listening side. Every method turns each recording into notes, scored by
``improv.bench.score_notes`` against ``improv.truth.find_truth`` (onset 50 ms, pitch 50
cents; offsets 20% or 50 ms), pooled over files:

* improv's live pipeline with each tracker (block by block, causal: ``improv.bench.run_file``);
* aubio's note tracker (``aubio-notes``, causal, fed hop by hop);
* Basic Pitch on ONNX (``basic-pitch``, offline, polyphonic);
* pYIN over the whole clip plus a plain note segmentation (``pyin-offline``, non-causal).

Recordings (default, about 280 s of audio, chosen so that the whole run stays within
10 minutes on the shared 2-core machine): vocadito (33 s); 10 of the 67 SSVD
sight-singing takes, spread evenly over the sorted list, each cut to about its first 12 s
of singing at a gap between notes (per-take F1 varies from 0.0 to 0.9, so more singers
matter more than longer takes); one short instrument take (11-14 s, exact truth) per
instrument from ``render_instruments.py``, the soundfonts alternating. The excerpts and
takes are made once into ``~/.cache/improv/compare-takes`` (seconds).
``--ssvd all --ssvd-seconds 0 --takes all`` for everything (40 + 11 minutes of audio).

Generation side: the band model's incremental step (``bench_model.measure``: all three
bands' next beat) — latency p50/p95 and the notes per second it sustains — measured after
the listening jobs, in a process of its own. Then the end-to-end figure (``bench_e2e.py``,
about a minute in real time): a note's true onset in the input audio to the band's first
reacting MIDI message leaving improv, on a JACK server with the whole pipeline running.

    python3 benchmarks/compare.py                 # default set, 6 methods, 2 processes, model step
    python3 benchmarks/compare.py --ssvd all --ssvd-seconds 0 --takes all --methods improv:yin,aubio-notes
    python3 benchmarks/compare.py --methods improv:crepe-full --ssvd 1 --takes short --no-generation

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
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent

from improv.bench import FileResult, Summary, run_file, score_notes, summarise  # noqa: E402
from improv.listen.trackers import DEFAULT_TRACKER  # noqa: E402
from improv.truth import find_truth  # noqa: E402

DEFAULT_METHODS = ("improv:yin", "improv:crepe-tiny", "improv:pesto", "aubio-notes", "basic-pitch", "pyin-offline")
LEFT_OUT = {
    "improv:crepe-full": "measured 9.8 CPU seconds per second of audio (one thread, a 12 s take: 119 s "
                         "of CPU); on the default set (~280 s) it alone would need ~48 CPU minutes. "
                         "Add it with --methods on a few files.",
    "fcpe": "torchfcpe 0.0.4 ships its weights in the wheel but imports torchaudio at import time "
            "(mel_extractor.py: from torchaudio.transforms import Resample); the only torchaudio "
            "on PyPI here is a CUDA build that breaks the CPU torch. pYIN is the offline ceiling instead.",
}
# CPU seconds per second of audio (measured, main as of 55eee41, one thread), to start the
# slow jobs first and to estimate the run.
COST = {"improv:crepe-full": 9.8, "improv:crepe-tiny": 0.5, "improv:pesto": 0.35, "pyin-offline": 0.14,
        "improv:yin": 0.12, "basic-pitch": 0.035, "aubio-notes": 0.007}
DATA = Path(os.environ.get("IMPROV_SHARED_DATA", HERE.parent.parent / "shared" / "data"))
SHORT_TAKES = Path.home() / ".cache" / "improv" / "compare-takes"
SHORT_SECONDS = (11.0, 14.0)
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


def real_recordings(data: Path, ssvd: int | None, log, excerpt: float = 0.0,
                    cache: Path | None = None) -> list[Recording]:
    """vocadito and ``ssvd`` SSVD takes spread evenly over the sorted list (None: all).

    ``excerpt`` > 0: each SSVD take is cut to its first ``excerpt`` seconds or so of
    singing (``ssvd_excerpt``), written with its truth into ``cache`` (the shared data is
    only read)."""
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
        if excerpt > 0:
            folder = (cache or SHORT_TAKES) / f"ssvd-{excerpt:g}s"
            files = [ssvd_excerpt(f, excerpt, folder) for f in files]
        out.extend(Recording(f, "ssvd") for f in files if f is not None)
    return out


def excerpt_bounds(intervals: np.ndarray, seconds: float, duration: float,
                   lead_in: float = 0.5, min_gap: float = 0.1) -> tuple[float, float]:
    """Where to cut a take with truth ``intervals`` (sorted by onset) so that it holds
    about ``seconds`` of singing and no note is cut: from ``lead_in`` before the first
    onset to the middle of the first gap of at least ``min_gap`` (between everything sung
    so far and the next onset) at or after ``seconds`` into the excerpt. The whole take
    when there is no such gap."""
    if len(intervals) == 0:
        return 0.0, duration
    start = max(0.0, float(intervals[0, 0]) - lead_in)
    ends = np.maximum.accumulate(intervals[:, 1])
    for k in range(1, len(intervals)):
        gap = float(intervals[k, 0] - ends[k - 1])
        if ends[k - 1] - start >= seconds and gap >= min_gap:
            return start, float(ends[k - 1]) + min(gap / 2, 0.25)
    return start, duration


def ssvd_excerpt(flac: Path, seconds: float, folder: Path) -> Path | None:
    """The first ``seconds`` of singing of an SSVD take and its truth (shifted), as
    ``folder/<id>.flac`` + ``<id>.txt`` (made once)."""
    import soundfile

    from improv.truth import load_truth_file

    out = folder / flac.name
    txt = out.with_suffix(".txt")
    if out.exists() and txt.exists():
        return out
    truth_file = flac.with_suffix(".txt")
    if not truth_file.exists():
        return None
    truth = load_truth_file(truth_file)
    order = np.argsort(truth.intervals[:, 0], kind="stable")
    iv, pitches = truth.intervals[order], truth.pitches[order]
    info = soundfile.info(str(flac))
    a, b = excerpt_bounds(iv, seconds, info.duration)
    x, sr = soundfile.read(str(flac), start=int(a * info.samplerate), stop=int(b * info.samplerate))
    keep = (iv[:, 0] >= a) & (iv[:, 1] <= b)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.flac")
    soundfile.write(str(tmp), x, sr, format="FLAC")
    txt.write_text("".join(f"{s - a:.4f}\t{e - a:.4f}\t{p:.4f}\n" for (s, e), p in zip(iv[keep], pitches[keep])))
    tmp.replace(out)  # the audio last: a half-written excerpt is made again next time
    return out


def short_recordings(folder: Path, seed: int, log) -> list[Recording]:
    """One short take (``SHORT_SECONDS``) per instrument, the soundfonts alternating,
    rendered into ``folder/seed<N>`` the first time."""
    import improv.testing.instruments as ri

    names = list(ri.INSTRUMENTS)
    plan = [t for t in ri.one_per_instrument(names) if ri.SOUNDFONTS[t[1]].exists()]
    if not plan:
        log("skipped the instrument takes: no General MIDI soundfont in /usr/share/sounds/sf2")
        return []
    folder = folder / f"seed{seed}"
    wavs = [folder / f"{name}-{sf}-{n}.wav" for name, sf, n in plan]
    if not all(w.exists() and find_truth(w) is not None for w in wavs):
        log(f"rendering {len(plan)} short instrument takes into {folder} ...")
        ri.render_set(folder, names, None, seed, log=lambda *_: None, target=SHORT_SECONDS, plan=plan)
    return [Recording(w, f"inst:{name}") for w, (name, _, _) in zip(wavs, plan)]


def instrument_recordings(folder: Path, takes: str, seed: int, log) -> list[Recording]:
    """Instrument takes from ``folder`` (rendered there first if it holds none).

    ``takes``: ``one`` per instrument (soundfonts alternating from one instrument to the
    next), the ``first`` per instrument and soundfont, or ``all``. These are the 20-28 s
    takes of ``render_instruments.py``'s default set (``short_recordings`` for the default).
    """
    import improv.testing.instruments as ri

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
    from improv.testing.peers import make_peer

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
        where = f"{gap:.1f} points behind" if gap > 0 else f"{-gap:.1f} points ahead"
        lines.append(f"{ours} vs basic-pitch (offline): F1 {o['notes']['f1']:.3f} vs {b['notes']['f1']:.3f}, "
                     f"{where}: " + ("within 5 points" if gap <= 5 else "NOT within 5 points"))
    for kind in ("real", "instruments"):
        if kind not in figs[ours]:
            continue
        part = [f"{ours} {figs[ours][kind]['notes']['f1']:.3f}"]
        for peer in ("aubio-notes", "basic-pitch"):
            if peer in figs and kind in figs[peer]:
                part.append(f"{peer} {figs[peer][kind]['notes']['f1']:.3f}")
        line = f"  on the {kind} recordings alone: F1 " + ", ".join(part)
        if "basic-pitch" in figs and kind in figs["basic-pitch"]:
            g = 100 * (figs["basic-pitch"][kind]["notes"]["f1"] - figs[ours][kind]["notes"]["f1"])
            line += f" ({ours} {abs(g):.1f} points {'behind' if g > 0 else 'ahead of'} basic-pitch)"
        lines.append(line)
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


def plot(path: Path, methods: list[str], figs: dict, groups: list[str], e2e: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_note = (e2e or {}).get("per_note_ms") if (e2e or {}).get("status") == "measured" else None
    fig, axes = plt.subplots(1, 3 if per_note else 2, figsize=(21 if per_note else 14, 5.5))
    ax1, ax2 = axes[0], axes[1]
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
    if per_note:
        ax3 = axes[2]
        bins = np.arange(0, 1010, 20)
        for key, label in (("echo_ms", "improv's echo of the note"), ("first_ms", "band's first reacting message"),
                           ("first_on_ms", "band's first reacting note-on")):
            v = per_note.get(key, [])
            if v:
                ax3.hist(np.clip(v, 0, 1000), bins=bins, histtype="step", linewidth=1.5,
                         label=f"{label} (p50 {np.percentile(v, 50):.0f} ms)")
        ax3.set_xlabel("true onset in the input -> MIDI leaving improv on JACK (ms; clipped at 1 s)")
        ax3.set_ylabel("notes")
        ax3.legend(fontsize=8)
        ax3.set_title("end to end, whole pipeline in real time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------ generation


def model_step(threads: int, beats: int, log) -> dict:
    """``bench_model.measure`` in a process of its own (the listening workers are done):
    load time and one incremental step of all three bands, ``threads`` torch threads."""
    import improv

    src = str(Path(improv.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.json"
        cmd = [sys.executable, str(HERE / "bench_model.py"), "--threads", str(threads), "--beats", str(beats),
               "--warmup", "16", "--loads", "2", "--json", str(out)]
        run = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if run.returncode != 0 or not out.exists():
            why = (run.stderr.strip().splitlines() or ["no output"])[-1]
            log(f"band model step not measured ({threads} threads): {why}")
            return {"status": "failed", "threads": threads, "reason": why}
        return {"status": "measured", **json.loads(out.read_text())}


def end_to_end(recs: list[Recording], log) -> dict:
    """A note's true onset in the input audio -> the band's first reacting MIDI message
    leaving improv, on a JACK server with the whole pipeline running in real time
    (``bench_e2e.py`` in a process of its own, on about a minute of these recordings)."""
    from improv.testing import load_benchmark

    bench_e2e = load_benchmark("bench_e2e")
    import improv

    files = bench_e2e.pick([r.path for r in recs])
    if not files:
        return {"status": "skipped", "reason": "no vocadito or instrument take in the set"}
    src = str(Path(improv.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "e2e.json"
        log(f"end to end on JACK, in real time: {', '.join(f.name for f in files)} ...")
        run = subprocess.run([sys.executable, str(HERE / "bench_e2e.py"), *map(str, files), "--json", str(out)],
                             capture_output=True, text=True, env=env)
        if run.returncode != 0 or not out.exists():
            why = (run.stderr.strip().splitlines() or ["no output"])[-1]
            log(f"end to end not measured: {why}")
            return {"status": "failed", "reason": why}
        res = json.loads(out.read_text())
    if not res.get("n"):
        return {"status": "failed", "reason": res.get("reason", "no note was matched"), **res}
    return {"status": "measured", **res}


GEN_COLUMNS = ("band model step", "threads", "p50 ms", "p95 ms", "p99 ms", "notes/step",
               "notes/s sustained", "p95 / 0.5 s", "load model ms", "cold start s")


def generation_rows(gen: dict) -> list[list[str]]:
    rows = []
    for g in gen.get("model_step", []):
        if g.get("status") != "measured":
            rows.append(["(failed)", str(g.get("threads")), "-", "-", "-", "-", "-", "-", "-", "-"])
            continue
        for key, label in (("metered_step", "metered (next beat)"), ("unmetered_step", "free (next 0.5 s)")):
            st = g[key]
            rows.append([label, str(g["threads"]), _fmt(st["p50_ms"], 1), _fmt(st["p95_ms"], 1),
                         _fmt(st["p99_ms"], 1), _fmt(st["notes_per_step"], 2),
                         _fmt(st["notes_per_second_sustained"], 0), _fmt(st["realtime_share_p95"], 2),
                         _fmt(1e3 * g["load_model_s"]["median"], 0), _fmt(g["cold_import_and_load_s"], 1)])
    return rows


def e2e_line(e2e: dict) -> str:
    if e2e.get("status") == "measured":
        on, echo = e2e["first_note_on"], e2e["echo"]
        return (f"end to end on JACK, whole pipeline in real time (true onset -> the band's first MIDI message "
                f"planned with the note heard): p50 {e2e['p50_ms']:.0f} ms, p95 {e2e['p95_ms']:.0f} ms; first band "
                f"note-on p50 {on['p50_ms']:.0f} / p95 {on['p95_ms']:.0f} ms; improv's echo of the note p50 "
                f"{echo['p50_ms']:.0f} / p95 {echo['p95_ms']:.0f} ms ({e2e['n']} of {e2e['truth_notes']} notes "
                f"heard, load {e2e['load']})")
    return f"end to end (true onset -> band's first MIDI message, JACK): {e2e.get('reason', 'not measured')}"


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    t_start = time.perf_counter()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=HERE / "results", help="folder for compare.json/.png/.md")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help="comma list of improv:<tracker>, aubio-notes, basic-pitch, pyin-offline "
                        f"(default {','.join(DEFAULT_METHODS)})")
    p.add_argument("--data", type=Path, default=DATA, help=f"real recordings (default {DATA})")
    p.add_argument("--ssvd", default="10", help="SSVD takes, spread evenly over the sorted list "
                   "(a number, or all; default 10)")
    p.add_argument("--ssvd-seconds", type=float, default=12.0,
                   help="cut each SSVD take to about its first N seconds of singing, at a gap between "
                        "notes (default 12; 0: whole takes)")
    p.add_argument("--takes", choices=["short", "one", "first", "all"], default="short",
                   help="instrument takes: one short take (11-14 s) per instrument, rendered into "
                        "--short-takes (default); or from --instruments (20-28 s takes): one per "
                        "instrument, soundfonts alternating; the first per instrument and soundfont; or all")
    p.add_argument("--short-takes", type=Path, default=SHORT_TAKES,
                   help=f"folder for the short instrument takes and SSVD excerpts (default {SHORT_TAKES})")
    p.add_argument("--instruments", type=Path, default=Path.home() / ".cache" / "improv" / "instruments",
                   help="the 20-28 s instrument takes of render_instruments.py (rendered there if absent)")
    p.add_argument("--seed", type=int, default=1, help="seed for rendering the instrument takes")
    p.add_argument("--jobs", "-j", type=int, default=2)
    p.add_argument("--blocksize", type=int, default=256)
    p.add_argument("--model-threads", default="2,1",
                   help="torch threads for the band-model step benchmark, a comma list (default 2,1)")
    p.add_argument("--model-beats", type=int, default=200, help="steps timed per setting (default 200)")
    p.add_argument("--no-generation", action="store_true", help="skip the band-model step benchmark")
    args = p.parse_args(argv)

    from improv.listen.trackers import TRACKERS
    from improv.testing.peers import PEERS

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if not (m in PEERS or (m.startswith("improv:") and m.split(":", 1)[1] in TRACKERS)):
            p.error(f"unknown method {m!r}: use improv:<{'|'.join(TRACKERS)}> or one of {', '.join(PEERS)}")
    try:
        ssvd = None if args.ssvd == "all" else int(args.ssvd)
        threads = [int(t) for t in args.model_threads.split(",") if t.strip()]
    except ValueError:
        p.error("--ssvd wants a number or all, --model-threads a comma list of numbers")
    if ssvd is not None and ssvd < 0 or any(t < 1 for t in threads) or args.model_beats < 1:
        p.error("--ssvd, --model-threads and --model-beats must be positive")
    if args.ssvd_seconds < 0:
        p.error("--ssvd-seconds must be 0 (whole takes) or more")
    log = lambda *a: print(*a, flush=True)  # noqa: E731
    from improv.testing.peers import missing

    skipped = {m: missing(m) for m in methods if m in PEERS and missing(m)}
    for m, why in skipped.items():
        log(f"skipped {m}: {why}")
    methods = [m for m in methods if m not in skipped]

    recs = real_recordings(args.data, ssvd, log, args.ssvd_seconds, args.short_takes)
    if args.takes == "short":
        recs += short_recordings(args.short_takes, args.seed, log)
    else:
        recs += instrument_recordings(args.instruments, args.takes, args.seed, log)
    if not recs:
        log("no recordings to compare on")
        return 1
    import soundfile

    audio_s = sum(soundfile.info(str(r.path)).duration for r in recs)
    est = sum(audio_s * COST.get(m, 1.0) for m in methods)
    log(f"{len(recs)} recordings, {audio_s:.0f} s of audio; {len(methods)} methods; "
        f"about {est / 60:.1f} CPU minutes ({args.jobs} processes; load average now {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs)")
    for m, why in LEFT_OUT.items():
        if m not in methods:
            log(f"left out {m}: {why}")

    jobs = plan(methods, recs)
    results: dict[str, list[FileResult]] = {m: [] for m in methods}
    load_before = os.getloadavg()
    wall0 = time.perf_counter()
    with LoadSampler() as sampler:
        with ProcessPoolExecutor(args.jobs, initializer=_init_worker) as ex:
            futures = {ex.submit(run_chunk, m, paths, args.blocksize): m for m, paths in jobs}
            done = 0
            for fut in as_completed(futures):
                results[futures[fut]].extend(fut.result())
                done += 1
                log(f"  [{done}/{len(jobs)}] {futures[fut]} ({time.perf_counter() - wall0:.0f} s)")
        wall = time.perf_counter() - wall0
        load_after = os.getloadavg()
        listen_samples = list(sampler.samples)
        gen: dict = {"model_step": []}
        gen_wall0 = time.perf_counter()
        if args.no_generation:
            gen["model_step_status"] = "skipped (--no-generation)"
            gen["end_to_end"] = {"status": "skipped", "reason": "skipped (--no-generation)"}
        else:
            gen["end_to_end"] = end_to_end(recs, log)
            for t in threads:
                log(f"band model: timing {args.model_beats} steps with {t} torch thread(s) ...")
                gen["model_step"].append(model_step(t, args.model_beats, log))
        gen["wall_seconds"] = round(time.perf_counter() - gen_wall0, 1)
        gen["load_during_mean"] = (round(float(np.mean(sampler.samples[len(listen_samples):])), 2)
                                   if len(sampler.samples) > len(listen_samples) else None)

    figs = summaries(methods, results, recs)
    groups = sorted({r.group for r in recs}, key=lambda g: (g.startswith("inst:"), g))
    cpu_total = sum(r.cpu_seconds for rs in results.values() for r in rs)
    total_wall = time.perf_counter() - t_start
    machine = {
        "cpu_count": os.cpu_count(), "processes": args.jobs, "platform": platform.platform(),
        "python": platform.python_version(), "nice": os.nice(0),
        "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after],
        "load_during_mean": round(float(np.mean(listen_samples)), 2) if listen_samples else None,
        "load_during_max": round(float(np.max(listen_samples)), 2) if listen_samples else None,
        "wall_seconds": round(wall, 1), "cpu_seconds_analysis": round(cpu_total, 1),
        "wall_seconds_total": round(total_wall, 1),
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
        "recordings": recordings, "audio_seconds": round(audio_s, 1), "summary": figs, "files": per_file,
        "claims": claims, "generation": gen,
    }, indent=1, default=float))
    plot(args.out / "compare.png", methods, figs, groups, gen.get("end_to_end"))

    rows = table_rows(methods, figs)
    grows = group_rows(methods, figs, groups)
    gcols = ["method"] + [g.replace("inst:", "") for g in groups]
    nref = figs[methods[0]]["all"]["notes"]["ref"] if methods and "all" in figs.get(methods[0], {}) else 0
    load_line = (f"{len(recs)} recordings, {audio_s:.0f} s, {nref} notes; {machine['cpu_count']} CPUs, "
                 f"{args.jobs} processes, nice {machine['nice']}; load average {load_before[0]:.1f} before, "
                 f"{machine['load_during_mean']} mean / {machine['load_during_max']} max during, "
                 f"{load_after[0]:.1f} after; listening {wall:.0f} s wall, {cpu_total:.0f} s CPU; "
                 f"whole run {total_wall:.0f} s wall")
    grows_gen = generation_rows(gen)
    gen_line = (f"band model: {gen['wall_seconds']:.0f} s wall, load average {gen['load_during_mean']} mean"
                if grows_gen else "band model: " + gen.get("model_step_status", "not measured"))
    md = (f"{markdown(COLUMNS, rows)}\n\nnote F1 by set:\n\n{markdown(gcols, grows)}\n\n{load_line}.\n\n"
          + "\n".join(f"  - {c.strip()}" if c.startswith(" ") else f"- {c}" for c in claims)
          + "\n\ngeneration side:\n\n"
          + (markdown(GEN_COLUMNS, grows_gen) + "\n\n" if grows_gen else "")
          + f"{gen_line}.\n\n{e2e_line(gen['end_to_end'])}\n")
    (args.out / "compare.md").write_text(md)
    _print(rows, grows, gcols, load_line, claims, grows_gen, gen_line, e2e_line(gen["end_to_end"]))
    log(f"written: {args.out / 'compare.json'}, {args.out / 'compare.png'}, {args.out / 'compare.md'}")
    return 0


def _print(rows, grows, gcols, load_line, claims, grows_gen, gen_line, e2e) -> None:
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
    if grows_gen:
        t = Table(title="generation: the band model's incremental step (all three bands)", caption=gen_line)
        for c in GEN_COLUMNS:
            t.add_column(c, justify="left" if c == "band model step" else "right")
        for r in grows_gen:
            t.add_row(*r)
        console.print(t)
    else:
        console.print(gen_line)
    console.print(e2e)


if __name__ == "__main__":
    sys.exit(main())
