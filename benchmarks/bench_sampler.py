"""The live sampler's figures (issue 18), medians and percentiles.

* **callback**: the sampler's JACK process callback, wrapped to time each call and to
  count the memory the Python allocator hands out during it (``tracemalloc``'s peak
  over the call, and what is still held after it): it copies from the ring allocated
  up front into JACK's port buffer and takes no lock. Then 10,000 calls in a row with
  nothing else running: the memory they keep.
* **timing**: three sampled bands (bass, mid, high) play notes through their scheduler
  as the live band does (``lead`` seconds early, :class:`~improv.band.live.LiveBand`);
  another JACK client captures the sampler's output. Error = the frame the note's first
  sample came out at minus the frame of its planned time (session time mapped to the
  capture's frames by the lower envelope of its cycles' wake-ups). One band per run
  (its notes do not overlap), so each onset is found in the captured audio; the three
  bands run one after the other and are pooled.
* **pitch**: a note recorded 13 cents sharp, shifted by -12..+12 semitones (resampling
  up to 2, the phase vocoder beyond), heard by the project's YIN; error in cents.
* **cpu**: three sampled bands playing eighth notes at 120 BPM each (six notes a second
  in all, each of the 24 pitches prepared once, then from the cache) on JACK for
  ``--seconds``; the process's CPU time over wall time (the worker, both schedulers, the
  callback, all Python), in % of one core.
* **bank**: 30 minutes of a player's notes (0.1-1.5 s, 40-85 MIDI, rests of 0.12-0.6 s) fed
  as fast as it goes through :class:`~improv.sampler.bank.NoteCatcher` block by block
  with the player's events; the bank's bytes at every note against its bound.

    PYTHONPATH=src python3 benchmarks/bench_sampler.py [--seconds 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path

import mido
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from improv.audio import Block  # noqa: E402
from improv.band.live import BandOutput  # noqa: E402
from improv.events import NoteOff, NoteOn  # noqa: E402
from improv.sampler.bank import NoteCatcher, SampleBank  # noqa: E402
from improv.sampler.jackout import SamplerOut, SamplerSynth  # noqa: E402
from improv.sampler.voice import Mixer, prepare, warm_vocoder  # noqa: E402
from improv.testing.jack import JackAudioCapture, start_jack, wait_cycles  # noqa: E402
from improv.timing import Scheduler  # noqa: E402
from test_sampler import tone, yin_pitch  # noqa: E402

CH = {"bass": 1, "mid": 2, "high": 3}
RANGE = {"bass": (36, 52), "mid": (52, 67), "high": (64, 80)}


def pct(xs, qs=(50, 90, 95, 99)) -> dict:
    xs = np.asarray(xs, dtype=float)
    return {f"p{q}": round(float(np.percentile(xs, q)), 3) for q in qs} | {"max": round(float(xs.max()), 3),
                                                                           "n": int(len(xs))}


def make_bank(rate: int) -> SampleBank:
    bank = SampleBank(rate, 60)
    for p in (40.0, 47.1, 55.0, 60.05, 67.0, 74.0):
        bank.add(tone(p, 0.8, rate), p)
    return bank


def rig(origin: float):
    out = SamplerOut("bench-sampler", origin=lambda: origin, autoconnect=False)
    synth = SamplerSynth(make_bank(out.sample_rate), out, None, bands=("bass", "mid", "high"))
    now = lambda: time.perf_counter() - origin  # noqa: E731
    timed = Scheduler(synth, now=now, lead=synth.lead).start()
    plain = Scheduler(BandOutput(synth=synth, now=now), now=now).start()
    return out, synth, timed, plain, now


def schedule(timed, plain, band: str, t: float, pitch: int, length: float) -> None:
    for s in (timed, plain):
        s.schedule(t, mido.Message("note_on", channel=CH[band], note=pitch, velocity=100), tag=band)
        s.schedule(t + length, mido.Message("note_off", channel=CH[band], note=pitch), tag=band)


def bench_timing(notes_per_band: int) -> dict:
    origin = time.perf_counter()
    cap = JackAudioCapture("bench-capture", seconds=3 * notes_per_band * 0.3 + 10)
    out, synth, timed, plain, now = rig(origin)
    cap.connect_from(out.name)
    wait_cycles(cap.client, 0.5)
    rng = np.random.default_rng(7)
    rate = out.sample_rate
    errors, cents, outliers = [], [], []
    cap.recording = True
    for band in ("bass", "mid", "high"):
        lo, hi = RANGE[band]
        t0 = now() + 0.3
        plan = [(t0 + 0.3 * i + rng.uniform(0, 0.05), int(rng.integers(lo, hi))) for i in range(notes_per_band)]
        for t, p in plan:
            schedule(timed, plain, band, t, p, 0.18)
        while now() < plan[-1][0] + 0.4:
            time.sleep(0.05)
        x = cap.audio[:cap.pos]
        for i, (t, p) in enumerate(plan):
            expected = cap.frame_of_time(t, origin)
            k = next(k for k in range(len(cap.cycles)) if cap.cycles[k][1] + 0.001 * rate > expected - 0.03 * rate)
            start = cap.cycles[k][0]
            loud = np.flatnonzero(np.abs(x[start:start + int(0.2 * rate)]) > 1e-3)
            if not len(loud):
                errors.append(float("inf"))
                continue
            errors.append((cap.frame_of_sample(start + loud[0]) - expected) / rate * 1000)
            seg = x[start + loud[0] + int(0.01 * rate):start + loud[0] + int(0.17 * rate)]
            cents.append((yin_pitch(seg, rate) - p) * 100)
            if abs(errors[-1]) > 10 or abs(cents[-1]) > 10:
                outliers.append({"band": band, "note": i, "pitch": p, "error_ms": round(errors[-1], 2),
                                 "cents": round(cents[-1], 1)})
    cap.recording = False
    timed.stop(panic=False)
    plain.stop(panic=False)
    a = np.abs(errors)
    res = {"abs_error_ms": pct(a), "within_10ms": round(float(np.mean(a <= 10.0)), 4),
           "cents_abs": pct(np.abs(cents)), "late_notes": out.late, "resampled_for_time": synth.quick,
           "underruns": out.underruns, "xruns": out.xruns, "prepare_ms": pct(np.array(synth.prepare_seconds) * 1000),
           "outliers": outliers, "placed_late_frames": [p[2] for p in out.placed if p[2]]}
    cap.close()
    out.close()
    return res


def bench_callback(seconds: float) -> dict:
    """The real callback, wrapped: its duration and the memory allocated during it."""
    origin = time.perf_counter()
    out, synth, timed, plain, now = rig(origin)
    durations, peaks, held = [], [], []
    inner = out._process

    def wrapped(frames: int) -> None:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        t0 = time.perf_counter()
        inner(frames)
        d = time.perf_counter() - t0
        cur, peak = tracemalloc.get_traced_memory()
        durations.append(d)
        peaks.append(peak - before)
        held.append(cur - before)

    out.client.deactivate()
    tracemalloc.start()
    inner = lambda frames: None  # noqa: E731 - the wrapper's own cost, measured first
    for _ in range(2000):
        wrapped(256)
    base_peak, base_held = float(np.median(peaks)), float(np.median(held))
    durations.clear(), peaks.clear(), held.clear()
    inner = out._process
    out.client.set_process_callback(wrapped)
    out.client.activate()
    t0 = now() + 0.3
    k = 0
    while now() < t0 + seconds:
        for band in ("bass", "mid", "high"):
            lo, hi = RANGE[band]
            schedule(timed, plain, band, t0 + 0.25 * k, lo + (k * 5) % (hi - lo), 0.2)
        k += 1
        time.sleep(0.25)
    tracemalloc.stop()
    timed.stop(panic=False)
    plain.stop(panic=False)
    live = {"callback_ms": pct(np.array(durations) * 1000),
            "alloc_peak_bytes": pct(np.array(peaks) - base_peak), "alloc_held_bytes": pct(np.array(held) - base_held),
            "wrapper_baseline_bytes": {"peak": base_peak, "held": base_held},
            "underruns": out.underruns, "cycles": len(durations)}
    # memory kept by 10,000 calls in a row (the client stopped, the worker stopped, nothing else running)
    out.client.deactivate()
    out._stop.set()
    out._thread.join()
    out._written = out._read + 10**9
    for _ in range(100):
        out._process(out.period)
    gc.disable()
    tracemalloc.start()
    c0 = tracemalloc.get_traced_memory()[0]
    for _ in range(10_000):
        out._process(out.period)
    live["held_after_10000_calls_bytes"] = tracemalloc.get_traced_memory()[0] - c0
    tracemalloc.stop()
    gc.enable()
    out.client.close()
    return live


def bench_cpu(seconds: float) -> dict:
    origin = time.perf_counter()
    out, synth, timed, plain, now = rig(origin)
    # every pitch prepared once (the cache), as after the first bars of a session
    t0 = now() + 0.5
    step = 0.25  # eighth notes at 120 BPM
    n = int(seconds / step)
    for band in ("bass", "mid", "high"):
        lo, hi = RANGE[band]
        for i in range(n):
            schedule(timed, plain, band, t0 + i * step + 0.01 * CH[band], lo + (i * 3) % (hi - lo), 0.22)
    while now() < t0:
        time.sleep(0.01)
    c0, w0 = time.process_time(), time.perf_counter()
    while now() < t0 + seconds:
        time.sleep(0.1)
    cpu = (time.process_time() - c0) / (time.perf_counter() - w0)
    res = {"cpu_percent_of_one_core": round(100 * cpu, 1), "notes": synth.sampled,
           "render_ms_per_block": pct(np.array(out.render_seconds) * 1000), "late_notes": out.late,
           "underruns": out.underruns}
    timed.stop(panic=False)
    plain.stop(panic=False)
    out.close()
    return res


def bench_pitch() -> dict:
    bank = SampleBank(48000, 30)
    note = bank.add(tone(57.13, 0.8), 57.13)
    rows = {}
    for shift in (-12, -7, -5, -3, -2, -1, -0.5, 0.5, 1, 2, 3, 5, 7, 12):
        sound = prepare(note, 57 + shift, 100)
        m = Mixer(48000)
        m.start(0, sound, "k")
        y = m.render(48000)
        rows[str(shift)] = round((yin_pitch(y[960:]) - (57 + shift)) * 100, 2)
    a = np.abs(list(rows.values()))
    return {"cents_by_shift": rows, "abs_cents": pct(a)}


def bench_bank(minutes: float = 30.0, bound: float = 60.0) -> dict:
    rate = 48000
    bank = SampleBank(rate, bound)
    catcher = NoteCatcher(bank, rate)
    rng = np.random.default_rng(3)
    t, block = 0.3, 4800
    sizes = []
    total = minutes * 60
    t0 = time.perf_counter()
    pos = 0
    notes = 0
    while t < total:
        length = float(rng.uniform(0.1, 1.5))
        p = int(rng.integers(40, 86))
        seg = tone(p, length, rate)
        on = int(t * rate)
        audio = np.zeros(on + len(seg) + rate // 10 - pos, np.float32)
        audio[on - pos:on - pos + len(seg)] = seg
        for i in range(0, len(audio), block):
            catcher.add_audio(Block(audio[i:i + block], pos + i, rate))
        pos += len(audio)
        catcher(NoteOn(t + 0.03, p, 90, onset=t))
        catcher(NoteOff(t + length + 0.03, p, end=t + length))
        sizes.append(bank.nbytes)
        notes += 1
        t += length + float(rng.uniform(0.12, 0.6))
    return {"minutes": minutes, "notes_fed": notes, "kept": len(bank), "evicted": bank.evicted,
            "bound_bytes": bank.max_bytes, "max_bytes": int(max(sizes)), "final_bytes": bank.nbytes,
            "pitches_kept": len({round(n.pitch) for n in bank.notes}), "seconds_to_feed": round(time.perf_counter() - t0, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--notes", type=int, default=40, help="notes per band for the timing figure")
    ap.add_argument("--json")
    args = ap.parse_args()
    warm_vocoder(48000)
    res = {"pitch": bench_pitch(), "bank": bench_bank()}
    print(json.dumps(res, indent=1), flush=True)
    server = start_jack(f"bench-sampler-{os.getpid()}")
    try:
        res["timing"] = bench_timing(args.notes)
        print(json.dumps(res["timing"], indent=1), flush=True)
        res["cpu"] = bench_cpu(args.seconds)
        print(json.dumps(res["cpu"], indent=1), flush=True)
        res["callback"] = bench_callback(min(args.seconds, 10.0))
        print(json.dumps(res["callback"], indent=1), flush=True)
    finally:
        server.stop()
    res["load"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
