"""Scheduling accuracy on a JACK dummy server (48 kHz, 256-frame periods) while the
listening pipeline runs.

    PYTHONPATH=src python3 benchmarks/bench_scheduler.py --seconds 30 --json sched.json

A planner thread plans band notes (16ths at 120 BPM, note-on and note-off) 200 ms
ahead on the session clock and hands them to a :class:`Scheduler`; meanwhile a
thread runs improv's Listener (YIN) over a rendered melody in real time and feeds
the BeatTracker. The notes go out through

* ``rtmidi``: :class:`improv.midi.MidiOut` on JACK (what ``improv listen`` uses), and
* ``jack``: :class:`improv.timing.jackmidi.JackMidi` (frame-accurate),

into a JACK MIDI input that stamps each message with the time of its frame. Error =
that time minus the planned time. Also reported: the scheduler thread's own
lateness (perf_counter at send minus due time), JACK xruns, machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

from improv.testing.jack import start_jack  # noqa: E402

from improv.timing import BeatTracker, FixedClock, MidiClockOut, Scheduler  # noqa: E402
from improv.timing.jackmidi import JackMidi  # noqa: E402


def listening_load(stop: threading.Event, wav: Path, stats: dict) -> None:
    from improv.audio import FileSource
    from improv.events import NoteOn
    from improv.listen.pipeline import Listener

    tracker = BeatTracker(meter="4/4")
    while not stop.is_set():
        src = FileSource(wav, blocksize=256, fast=False)
        lis = Listener("yin", src.sample_rate)
        for block in src.blocks(stop):
            for ev in lis.process(block):
                if isinstance(ev, NoteOn):
                    tracker.add_event(ev)
                    stats["notes"] = stats.get("notes", 0) + 1
            stats["blocks"] = stats.get("blocks", 0) + 1


def make_wav(tmp: Path) -> Path:
    from improv.testing.tempo_data import NOTTINGHAM, nottingham_piece, render_wav

    files = sorted(NOTTINGHAM.glob("*.mid"))
    if files:
        piece = nottingham_piece(files[3], 120.0, np.random.default_rng(0), 0.02, n_beats=64)
        if piece is not None:
            return render_wav(piece, tmp / "load.wav")
    import soundfile
    from improv.testing.signals import ToneSpec, render

    audio = render([ToneSpec(0.25 * i, 0.2, 60 + i % 12) for i in range(120)], 44100, total=31.0)
    soundfile.write(tmp / "load.wav", audio, 44100)
    return tmp / "load.wav"


def stats_ms(errs: list[float]) -> dict:
    a = np.array(errs)
    if len(a) == 0:
        return {"n": 0}
    return {"n": int(len(a)), "median": round(float(np.median(a)), 3), "mean": round(float(a.mean()), 3),
            "p1": round(float(np.percentile(a, 1)), 3), "p99": round(float(np.percentile(a, 99)), 3),
            "p99_abs": round(float(np.percentile(np.abs(a), 99)), 3), "max_abs": round(float(np.abs(a).max()), 3),
            "within_2ms": round(float((np.abs(a) <= 2.0).mean()), 4)}


def run_case(kind: str, seconds: float, capture_in: list, lock: threading.Lock, capture_name: str,
             latency_ms: float) -> dict:
    from improv.midi import MidiOut

    if kind == "rtmidi":
        sink = MidiOut(api="jack", client="improv-bench", virtual_name="out")
        out_port = "improv-bench:out"
    else:
        sink = JackMidi("improv-bench-jack")
        out_port = sink.out_name
    import jack

    helper = jack.Client("bench-wire", no_start_server=True)
    helper.connect(out_port, capture_name)
    with lock:
        capture_in.clear()
    sched = Scheduler(sink, output_latency_ms=latency_ms).start()
    planned: list[tuple[float, bytes]] = []
    step = 60.0 / 120.0 / 4
    t_start = time.perf_counter() + 0.3
    k = 0
    stop_at = t_start + seconds
    while True:
        now = time.perf_counter()
        while t_start + k * step < now + 0.2 and t_start + k * step < stop_at:
            t = t_start + k * step
            note = 36 + k % 60
            on, off = bytes([0x91, note, 100]), bytes([0x81, note, 0])
            sched.schedule(t, on, tag="bass")
            sched.schedule(t + step / 2, off, tag="bass")
            planned += [(t - latency_ms / 1000.0, on), (t + step / 2 - latency_ms / 1000.0, off)]
            k += 1
        if now > stop_at + 0.3:
            break
        time.sleep(0.02)
    time.sleep(0.1)
    sched.stop(panic=False)
    lateness = sched.lateness_ms()
    xr = getattr(sink, "xruns", None)
    late = getattr(sink, "late", None)
    sink.close()
    helper.close()
    with lock:
        got = [(t, d) for t, d in capture_in if d[0] & 0xF0 in (0x80, 0x90) and d[0] & 0x0F == 1]
    planned.sort(key=lambda x: x[0])
    errs = []
    gi = 0
    for t, d in planned:  # messages arrive in plan order; match each to the next capture with its bytes
        while gi < len(got) and got[gi][1] != d:
            gi += 1
        if gi == len(got):
            break
        errs.append(1000.0 * (got[gi][0] - t))
        gi += 1
    return {"kind": kind, "planned": len(planned), "captured": len(got), "error_ms": stats_ms(errs),
            "thread_lateness_ms": stats_ms(lateness), "late_writes": late, "xruns": xr}


def clock_follow(in_kind: str, out_kind: str, beats: int, rate: int, arrival_offset: float = 0.0) -> dict:
    """A JACK MIDI clock source at 120 BPM drives improv; a band note on every beat; the
    error is the note's frame minus the clock's beat frame (the tick grid, continued)."""
    from improv.testing.jack import JackMidiCapture, JackMidiSource

    from improv.midi import MidiIn, MidiOut
    from improv.timing import MidiClockIn

    follower = MidiClockIn(arrival_offset=arrival_offset)
    holders = []
    if in_kind == "jack":
        jin = JackMidi(f"follow-in-{in_kind}{out_kind}", out=None, inputs={"clock": follower.feed_bytes},
                       frame_stamps=True)
        follower.follow_frames(jin.frame_offset)
        in_port = jin.in_name("clock")
        holders.append(jin)
    else:
        rin = MidiIn(lambda msg, _d: follower.on_message(msg, time.perf_counter()), api="jack",
                     client=f"follow-in-{in_kind}{out_kind}", virtual_name="clock")
        in_port = f"follow-in-{in_kind}{out_kind}:clock"
    if out_kind == "jack":
        sink = JackMidi(f"follow-out-{in_kind}{out_kind}")
        out_port = sink.out_name
    else:
        sink = MidiOut(api="jack", client=f"follow-out-{in_kind}{out_kind}", virtual_name="out")
        out_port = f"follow-out-{in_kind}{out_kind}:out"
    capture = JackMidiCapture(f"follow-cap-{in_kind}{out_kind}")
    tick = rate * 0.5 / 24
    script = [(2048 - 64, bytes([0xFA]))] + [(2048 + round(i * tick), bytes([0xF8])) for i in range(24 * beats)]
    script.append((2048 + round(24 * beats * tick), bytes([0xFC])))
    source = JackMidiSource(script, f"clock-src-{in_kind}{out_kind}")
    source.connect_to(in_port)
    capture.connect_from(out_port)
    sched = Scheduler(sink).start()
    planned: set[int] = set()
    source.start()
    end = time.perf_counter() + beats * 0.5 + 2.0
    while time.perf_counter() < end and not source.done.is_set():
        now = time.perf_counter()
        if follower.state(now).locked:
            b = int(follower.beat_at(now)) + 1
            while (t := follower.time_of(b)) is not None and t < now + 0.15:
                if b not in planned and t > now + 0.004:
                    planned.add(b)
                    sched.schedule(t, [0x91, 50, 100])
                    sched.schedule(t + 0.1, [0x81, 50, 0])
                b += 1
        time.sleep(0.01)
    time.sleep(0.3)
    sched.stop()
    time.sleep(0.05)
    ons = [f for f, d in capture.snapshot() if len(d) == 3 and d[0] == 0x91 and d[2] > 0]
    first = source.start_frame + 2048
    spacing = 24 * tick
    errs = [1000.0 * (f - (first + round((f - first) / spacing) * spacing)) / rate for f in ons]
    for h in (capture, source):
        h.close()
    sink.close()
    if in_kind == "jack":
        jin.close()
    else:
        rin.close()
    return {"in": in_kind, "out": out_kind, "arrival_offset_ms": round(1000 * arrival_offset, 3),
            "notes": len(ons), "error_ms": stats_ms(errs)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--output-latency-ms", type=float, default=10.0)
    ap.add_argument("--no-load", action="store_true", help="without the listening pipeline")
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    server = start_jack(f"improv-bench-{os.getpid()}")
    results = {"jack": {"rate": server.rate, "period": server.period}, "load_before": os.getloadavg()}
    try:
        captured: list[tuple[float, bytes]] = []
        lock = threading.Lock()

        def on_capture(data: bytes, t: float) -> None:
            with lock:
                captured.append((t, data))

        capture = JackMidi("bench-capture", out=None, inputs={"in": on_capture})
        stop = threading.Event()
        load_stats: dict = {}
        with tempfile.TemporaryDirectory() as tmp:
            wav = make_wav(Path(tmp))
            loader = None
            if not args.no_load:
                loader = threading.Thread(target=listening_load, args=(stop, wav, load_stats), daemon=True)
                loader.start()
                time.sleep(1.0)
            for kind in ("rtmidi", "jack"):
                r = run_case(kind, args.seconds, captured, lock, capture.in_name("in"), args.output_latency_ms)
                results[kind] = r
                print(kind, json.dumps(r), flush=True)
            # MIDI clock out from a fixed 120 BPM clock through the frame-accurate client
            sink = JackMidi("improv-clock-out")
            import jack

            helper = jack.Client("bench-wire2", no_start_server=True)
            helper.connect(sink.out_name, capture.in_name("in"))
            with lock:
                captured.clear()
            sched = Scheduler(sink).start()
            t0 = time.perf_counter()
            clock = FixedClock(120.0, t0=t0)
            planned = []
            out = MidiClockOut(clock, lambda t, d: (planned.append((t, d)), sched.schedule(t, d)))
            cstop = threading.Event()
            th = threading.Thread(target=out.run, args=(time.perf_counter, cstop))
            th.start()
            time.sleep(min(10.0, args.seconds))
            cstop.set()
            th.join()
            time.sleep(0.1)
            sched.stop(panic=False)
            with lock:
                ticks = [t for t, d in captured if d == bytes([0xF8])]
            pt = [t for t, d in planned if d == bytes([0xF8])][:len(ticks)]
            results["clock_out"] = {"ticks": len(ticks),
                                    "error_ms": stats_ms([1000 * (a - b) for a, b in zip(ticks, pt)]),
                                    "tick_interval_ms": stats_ms(list(1000 * np.diff(ticks)))}
            print("clock_out", json.dumps(results["clock_out"]), flush=True)
            sink.close()
            helper.close()
            results["clock_follow"] = []
            half_period = server.period / server.rate / 2
            for ik, ok, off in (("jack", "jack", 0.0), ("rtmidi", "jack", 0.0), ("rtmidi", "jack", half_period),
                                ("rtmidi", "rtmidi", 0.0)):
                r = clock_follow(ik, ok, beats=max(8, int(args.seconds)), rate=server.rate, arrival_offset=off)
                results["clock_follow"].append(r)
                print("clock_follow", json.dumps(r), flush=True)
            stop.set()
            if loader is not None:
                loader.join(5)
        capture.close()
        results["listening"] = load_stats
        results["capture_xruns"] = capture.xruns
        results["load_after"] = os.getloadavg()
    finally:
        server.stop()
    print(json.dumps({k: v for k, v in results.items() if k not in ("rtmidi", "jack", "clock_out", "clock_follow")}))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
