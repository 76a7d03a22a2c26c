#!/usr/bin/env python3
"""Soak: a long live session on a real JACK server, its cost minute by minute.

    PYTHONPATH=src python3 benchmarks/bench_soak.py                     # 30 minutes
    PYTHONPATH=src python3 benchmarks/bench_soak.py --minutes 10 --json soak.json

The session runs as on stage (``improv listen --midi-api jack --bands all --synth
fluidsynth --record DIR``, no ``--fast``): a JACK server with the dummy driver (48 kHz,
256-frame periods), a JACK client plays a recording into PortAudio's input (the
microphone) in a loop for the whole run, three band players answer, FluidSynth plays
them, and the recorder writes the session folder.

Each minute it reports the CPU of the process (in % of one core: improv, FluidSynth's
thread, and the benchmark's own JACK player, which does nothing but copy), the
resident memory (VmRSS), the input blocks dropped so far (PortAudio overflows and ring
laps), the JACK xruns and the machine's load average. The targets (issue 17): CPU in
the last 5 minutes within 10% of the first 5, RSS growth at most 10 MB after the first
minute, no dropped block. The machine's load is part of the result: on a shared
machine other jobs move the CPU figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

from improv.testing.jack import JackMidiCapture, start_jack  # noqa: E402

RATE, PERIOD = 48000, 256
DEFAULT_INPUT = HERE.parent / "recordings" / "demo.wav"


class LoopPlayer:
    """An in-process JACK client that plays a mono array into ``destination`` over and over."""

    def __init__(self, samples: np.ndarray, destination: str, name: str = "soak-player"):
        import jack

        self.client = jack.Client(name, no_start_server=True)
        self.port = self.client.outports.register("out")
        self.samples = np.asarray(samples, dtype=np.float32)
        self.pos = 0
        self.playing = False
        self.xruns = 0
        self.client.set_process_callback(self._process)
        self.client.set_xrun_callback(self._xrun)
        self.client.activate()
        self.client.connect(self.port, destination)

    def _xrun(self, delay: float) -> None:
        self.xruns += 1

    def _process(self, frames: int) -> None:
        buf = self.port.get_array()
        if not self.playing:
            buf[:] = 0.0
            return
        done = 0
        while done < frames:
            n = min(frames - done, len(self.samples) - self.pos)
            buf[done:done + n] = self.samples[self.pos:self.pos + n]
            done += n
            self.pos = (self.pos + n) % len(self.samples)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def load_audio(path: Path) -> np.ndarray:
    import soundfile
    import soxr

    audio, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    return soxr.resample(audio, sr, RATE).astype(np.float32) if sr != RATE else audio


def soak(path: Path, minutes: float, folder: Path, tempo: float, log, trace: bool = False) -> dict:
    import sounddevice as sd
    import torch

    from improv.band import BandSettings
    from improv.session import ListenOptions, run_listen

    torch.set_num_threads(1)
    sd._terminate()
    sd._initialize()
    audio = load_audio(path)
    capture = JackMidiCapture("soak-capture")  # only to see the ports; MIDI is not kept
    stop = threading.Event()
    started: list = []
    error: list[BaseException] = []
    result: dict = {}

    opts = ListenOptions(device="system", samplerate=RATE, blocksize=PERIOD, midi_api="jack", synth="fluidsynth",
                         echo=True, bands=("bass", "mid", "high"), band=BandSettings(tempo=tempo, seed=1),
                         record=str(folder), keep_events=False)

    def session() -> None:
        try:
            result["r"] = run_listen(opts, stop=stop, on_start=lambda listener, source: started.append(source),
                                     on_band=lambda b: started.append(b))
        except BaseException as e:  # noqa: BLE001 - reported below
            error.append(e)

    thread = threading.Thread(target=session, name="soak-session")
    thread.start()
    rows: list[dict] = []
    player = None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not error:
            names = [p.name for p in capture.client.get_ports()]
            if len(started) >= 2 and "improv:improv" in names and any(n.startswith("PortAudio") for n in names):
                break
            time.sleep(0.1)
        if error:
            raise error[0]
        source = started[0]
        pa_in = next(p.name for p in capture.client.get_ports(is_input=True, is_audio=True)
                     if p.name.startswith("PortAudio"))
        for src in capture.client.get_all_connections(pa_in):
            capture.client.disconnect(src, pa_in)
        player = LoopPlayer(audio, pa_in)
        player.playing = True
        t0 = time.monotonic()
        cpu_last, wall_last = time.process_time(), t0
        last_snap = None
        for minute in range(1, int(round(minutes)) + 1):
            while time.monotonic() < t0 + 60 * minute:
                if error or not thread.is_alive():
                    raise error[0] if error else RuntimeError("the session ended by itself")
                time.sleep(0.5)
            cpu, wall = time.process_time(), time.monotonic()
            row = {"minute": minute, "cpu_pct": round(100 * (cpu - cpu_last) / (wall - wall_last), 1),
                   "rss_mb": round(rss_mb(), 1), "dropped_blocks": int(source.overflows),
                   "xruns": player.xruns, "load": round(os.getloadavg()[0], 2)}
            cpu_last, wall_last = cpu, wall
            rows.append(row)
            log(json.dumps(row))
            if trace:
                import tracemalloc

                if not tracemalloc.is_tracing():
                    tracemalloc.start(6)
                else:
                    snap = tracemalloc.take_snapshot()
                    if last_snap is not None:
                        for st in snap.compare_to(last_snap, "traceback")[:6]:
                            log(f"  {st.size_diff / 1e3:+.0f} kB {st.count_diff:+d} at "
                                + " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in st.traceback[:4]))
                    last_snap = snap
    finally:
        stop.set()
        thread.join(30)
        if player is not None:
            player.close()
        capture.close()
        sd._terminate()
    if error:
        raise error[0]
    r = result.get("r")
    return {"rows": rows, **summarise(rows),
            "recording_error": getattr(r, "recording_error", None),
            "recording_mb": round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6, 1)}


def summarise(rows: list[dict]) -> dict:
    if not rows:
        return {}
    k = max(1, min(5, len(rows) // 2))
    first = float(np.mean([r["cpu_pct"] for r in rows[:k]]))
    last = float(np.mean([r["cpu_pct"] for r in rows[-k:]]))
    return {"minutes": len(rows), "window_minutes": k,
            "cpu_first_pct": round(first, 1), "cpu_last_pct": round(last, 1),
            "cpu_change_pct": round(100 * (last - first) / first, 1) if first else None,
            "rss_growth_after_first_minute_mb": round(rows[-1]["rss_mb"] - rows[0]["rss_mb"], 1),
            "dropped_blocks": rows[-1]["dropped_blocks"], "xruns": rows[-1]["xruns"],
            "load_mean": round(float(np.mean([r["load"] for r in rows])), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input", nargs="?", type=Path, default=DEFAULT_INPUT, help="played in a loop")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--tempo", type=float, default=100.0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--trace", action="store_true",
                    help="also trace Python allocations from the first minute on and print where memory grew "
                         "each minute (costs CPU: not for the figures)")
    args = ap.parse_args()
    log = lambda s: print(s, flush=True)  # noqa: E731
    server = start_jack(f"improv-soak-{os.getpid()}", RATE, PERIOD)
    folder = Path(tempfile.mkdtemp(prefix="improv-soak-"))
    try:
        out = soak(args.input, args.minutes, folder, args.tempo, log, args.trace)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    out["input"] = args.input.name
    summary = {k: v for k, v in out.items() if k != "rows"}
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    ok = (summary.get("cpu_change_pct") is not None and abs(summary["cpu_change_pct"]) <= 10
          and summary["rss_growth_after_first_minute_mb"] <= 10 and summary["dropped_blocks"] == 0)
    print("targets met" if ok else "targets NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
