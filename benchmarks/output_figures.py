"""Figures for the sound/display/recording side (issue 6), printed as medians and percentiles.

* live synth: JACK frame at the NoteOn call -> first audible sample on FluidSynth's JACK port
  (own jackd, dummy driver, 48 kHz, 256-frame periods);
* offline rendering speed (times real time) of FluidSynth through improv.synth;
* one live-display frame: snapshot + rich rendering (the display thread's cost per refresh);
* recorder: writer-thread time per second of 48 kHz input audio.

Run: PYTHONPATH=src python3 benchmarks/output_figures.py [--notes 60]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from improv.audio import Block  # noqa: E402
from improv.events import NoteOff, NoteOn  # noqa: E402
from improv.synth import BandSynth, find_soundfont, render_events  # noqa: E402

SF = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def summary(name, xs, unit):
    print(f"{name}: median {statistics.median(xs):.2f} {unit}, p95 {pct(xs, 95):.2f}, "
          f"max {max(xs):.2f}, n={len(xs)}")


def synth_latency(n_notes: int) -> None:
    import jack
    from improv.testing.jack import start_jack

    server = start_jack(f"improv-bench-{os.getpid()}")
    try:
        synth = BandSynth(SF, server.rate)
        synth.start(driver="jack", client_name="improv-synth", autoconnect=False)
        client = jack.Client("benchcap", no_start_server=True)
        port = client.inports.register("in")
        blocks, first = [], []

        def process(frames):
            if not first:
                first.append(client.last_frame_time)
            blocks.append(port.get_array().copy())

        client.set_process_callback(process)
        client.activate()
        client.connect("improv-synth:left", port)
        time.sleep(0.3)
        sent = []
        rng = np.random.default_rng(0)
        for i in range(n_notes):
            time.sleep(0.15 + 0.01 * rng.random())  # random phase against the JACK cycle
            sent.append(client.frame_time)
            synth(NoteOn(0.0, 43, 110, "bass"))
            time.sleep(0.08)
            synth(NoteOff(0.0, 43, "bass"))
            time.sleep(0.25)  # let the release die away
        time.sleep(0.2)
        client.deactivate()
        client.close()
        synth.close()
        audio = np.concatenate(blocks)
        lat = []
        for f in sent:
            i0 = f - first[0]
            idx = np.nonzero(np.abs(audio[i0:i0 + server.rate // 5]) > 10 ** (-50 / 20))[0]
            if len(idx):
                lat.append(1000.0 * idx[0] / server.rate)
        summary(f"live synth on JACK ({server.rate} Hz, {server.period}-frame periods): call -> sound",
                lat, "ms")
    finally:
        server.stop()


def render_speed() -> None:
    events = []
    for i in range(120):
        src, key = ("bass", 36 + i % 12) if i % 2 else ("high", 72 + i % 12)
        events += [NoteOn(i * 0.25, key, 100, src), NoteOff(i * 0.25 + 0.2, key, src)]
    times = []
    for _ in range(5):
        t = time.perf_counter()
        render_events(events, find_soundfont(SF), 48000, duration=31.5)
        times.append(time.perf_counter() - t)
    print(f"offline render, 31.5 s of band at 48 kHz: median {statistics.median(times):.3f} s "
          f"= {31.5 / statistics.median(times):.0f}x real time")


def display_frame() -> None:
    from rich.console import Console

    from improv.audio import FileSource
    from improv.display import SessionDisplay, render_snapshot
    from improv.listen.pipeline import Listener
    from improv.testing.signals import ToneSpec, render

    with tempfile.TemporaryDirectory() as d:
        import soundfile

        wav = Path(d) / "t.wav"
        soundfile.write(wav, render([ToneSpec(0.1, 1.0, 69)], 48000, total=1.2), 48000)
        src = FileSource(wav, fast=True)
        lst = Listener("yin", 48000)
        disp = SessionDisplay()
        disp.attach(lst, src)
        for b in src.blocks():
            for ev in lst.process(b):
                disp.on_event(ev)
            if b.end > 0.6 * 48000:
                break
        console = Console(file=io.StringIO(), width=100, force_terminal=True, color_system="truecolor")
        times = []
        for _ in range(200):
            t = time.perf_counter()
            console.print(render_snapshot(disp.snapshot()))
            times.append(1000 * (time.perf_counter() - t))
        summary("live display, one frame (snapshot + rich render)", times, "ms")
        ev = NoteOn(0.5, 60, 90, onset=0.49)
        t = time.perf_counter()
        for _ in range(10000):
            disp.on_event(ev)
        print(f"display.on_event (analysis thread): {1e6 * (time.perf_counter() - t) / 10000:.2f} us per call")


def recorder_cost() -> None:
    from improv.record import SessionRecorder

    with tempfile.TemporaryDirectory() as d:
        rec = SessionRecorder(Path(d))
        x = (0.1 * np.random.default_rng(0).standard_normal(48000 * 60)).astype(np.float32)
        t_add = time.perf_counter()
        for i in range(0, len(x), 256):
            rec.add_audio(Block(x[i:i + 256], i, 48000))
        t_add = time.perf_counter() - t_add
        t = time.perf_counter()
        rec.close()
        t_close = time.perf_counter() - t
        print(f"recorder: add_audio {1e6 * t_add / (len(x) / 256):.2f} us per 256-frame block "
              f"(analysis thread); writer drained 60 s of audio in {t_add + t_close:.2f} s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--notes", type=int, default=60)
    a = ap.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    render_speed()
    display_frame()
    recorder_cost()
    synth_latency(a.notes)
