#!/usr/bin/env python3
"""``improv serve`` over OSC: a note in -> the band's first answering ``/improv/generated/note``
out, beside the same answer through ``improv listen`` on JACK (``bench_e2e.py``).

    PYTHONPATH=src python3 benchmarks/bench_serve_osc.py                 # vocadito_1, both paths
    PYTHONPATH=src python3 benchmarks/bench_serve_osc.py --no-listen --json serve.json

The same melody both ways: the truth notes of a take (vocadito_1 by default, 33 s of
singing). Through ``serve``: the service runs in this process with its OSC server on
loopback, as ``improv serve --no-midi --synth none`` does; a real OSC client (a UDP
socket of its own) sends each note at its true onset as ``/improv/note keys PITCH 96 -1
DURATION`` and stamps every ``/improv/generated/note`` when it arrives. Through
``listen``: ``bench_e2e.run`` plays the take's audio into PortAudio on a JACK server of
its own; improv hears it and its band answers on JACK MIDI.

"Answering" is ``bench_e2e``'s: the band plans each frame a little ahead, so a band note
can answer a player's note only if its frame was planned after the band took that note
in. ``Band.trace`` records, for every planned event, how many player notes the band had
heard; each note received over OSC is matched to its planned event (band, pitch, the
latest planned at or before it left), and a note's answer is the first band note after
it was sent that was planned with it heard. Times are ``perf_counter`` on both sides of
the loopback: what a client on this machine waits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

DEFAULT_TAKE = Path(os.environ.get("IMPROV_SHARED_DATA", HERE.parent.parent / "shared" / "data")) \
    / "vocadito" / "vocadito_1.wav"


def _stats(values) -> dict:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if not len(v):
        return {"n": 0}
    return {"n": int(len(v)), "p50_ms": round(float(np.percentile(v, 50)), 1),
            "p95_ms": round(float(np.percentile(v, 95)), 1), "max_ms": round(float(v.max()), 1)}


def serve_osc(notes: list[tuple[float, float, int]], bands: tuple[str, ...], tempo: float | None, seed: int,
              log=print) -> dict:
    """Play ``notes`` (onset s, duration s, pitch) to a serve session over OSC on loopback."""
    from improv.band import BandSettings
    from improv.serve.osc import OscServer
    from improv.serve.service import ServeService
    from improv.session import ListenOptions
    from improv.testing.osc import OscClient

    opts = ListenOptions(midi=False, synth="none", bands=bands, keep_events=False,
                         band=BandSettings(bands=bands, tempo=tempo, seed=seed))
    service = ServeService(opts, log=log)
    server = OscServer(service, "127.0.0.1", 0, log=log)
    client = OscClient(server.port)
    load = []
    try:
        client.send("/improv/session/init")
        client.wait_for("/improv/capabilities")
        client.send("/improv/track/create", "keys", 0, "melodic")
        client.send("/improv/session/start")
        client.wait_for("/improv/state", lambda a: json.loads(a[0])["session"] == "running", timeout=60)
        band = service.band
        band.trace = []                 # before any note: what each planned event had heard
        time.sleep(0.5)
        sent: list[float] = []
        asked: list[float] = []
        t0 = time.perf_counter() + 0.2
        for onset, duration, pitch in notes:
            while time.perf_counter() < t0 + onset:
                time.sleep(min(0.002, max(0.0, t0 + onset - time.perf_counter())))
            sent.append(client.send("/improv/note", "keys", int(pitch), 96, -1.0, float(duration)))
            if len(sent) % 2 == 0:   # the listener answers while the band plays (the value in force)
                asked.append(client.send("/improv/param/set", "lookahead", band.settings.lookahead))
            if len(sent) % 20 == 0:
                load.append(os.getloadavg()[0])
        time.sleep(2.0)
        trace = list(band.trace)
        received = client.messages("/improv/generated/note")
        replies = [m[0] for m in client.messages("/improv/param")]
        steps = list(service._session.driver.live.step_seconds)
        client.send("/improv/session/end")
        service.wait(20)
    finally:
        service.close()
        server.close()
        client.close()
    return analyse(sent, received, trace) | {
        "param_round_trip": _stats([1000 * (r - a) for a, r in zip(asked, replies)]),
        "notes_sent": len(sent), "band_messages": len(received), "load": round(float(np.mean(load)), 2)
        if load else None, "band_step_ms_p50": round(1000 * float(np.median(steps)), 2) if steps else None}


def analyse(sent: list[float], received, trace) -> dict:
    """Per note sent: the first answering band note-on / message received (ms)."""
    planned: dict[tuple[str, int, bool], list[tuple[float, int]]] = {}
    for e in trace:
        planned.setdefault((e.band, e.pitch, e.note_on), []).append((e.time, e.heard))
    msgs = []          # (arrival, note on?, heard)
    unmatched = 0
    for arrival, _, (band, pitch, velocity, onset, duration) in received:
        on = velocity > 0
        when = onset if on else onset + duration          # when it left the band (session seconds)
        due = [(t, h) for t, h in planned.get((band, pitch, on), ()) if t <= when + 0.001]
        if not due:
            unmatched += 1
            continue
        msgs.append((arrival, on, max(due)[1]))
    first_on, first_msg = [], []
    for i, s in enumerate(sent):
        first_on.append(next((1000 * (a - s) for a, on, h in msgs if on and h > i and a >= s), None))
        first_msg.append(next((1000 * (a - s) for a, _, h in msgs if h > i and a >= s), None))
    return {"first_note_on": _stats(first_on), "first_message": _stats(first_msg),
            "no_answer": sum(1 for x in first_on if x is None), "unmatched_messages": unmatched,
            "per_note_ms": [None if x is None else round(x, 1) for x in first_on]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("take", nargs="?", type=Path, default=DEFAULT_TAKE, help="a recording with truth beside it")
    ap.add_argument("--bands", default="bass,mid,high")
    ap.add_argument("--tempo", type=float, help="play metered at this tempo (default: follow the player)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-listen", action="store_true", help="serve over OSC only (no JACK run)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    from improv.truth import find_truth

    truth = find_truth(args.take)
    if truth is None:
        print(f"{args.take}: no truth beside it", file=sys.stderr)
        return 2
    bands = tuple(b for b in args.bands.split(",") if b)
    notes = [(float(a), float(b - a), int(round(p))) for (a, b), p in zip(truth.intervals, truth.pitches)]
    print(f"serve over OSC: {args.take.name}, {len(notes)} notes in real time ...", file=sys.stderr)
    out = {"take": args.take.name, "bands": list(bands), "tempo": args.tempo,
           "serve_osc": serve_osc(notes, bands, args.tempo, args.seed, log=lambda t: print(t, file=sys.stderr))}
    if not args.no_listen:
        import bench_e2e

        res = bench_e2e.run(log=lambda t: print(t, file=sys.stderr), files=[args.take], bands=bands,
                            tempo=args.tempo, seed=args.seed)
        out["listen_jack"] = {k: res.get(k) for k in ("first_note_on", "first_message", "decision",
                                                       "band_after_decision", "echo", "matched_notes",
                                                       "truth_notes", "no_reaction", "load")}
    text = json.dumps(out, indent=1)
    if args.json:
        args.json.write_text(text)
    rows = [("serve, OSC loopback", "note sent -> first answering band note-on received", out["serve_osc"]
             ["first_note_on"]),
            ("serve, OSC loopback", "note sent -> first answering band message received", out["serve_osc"]
             ["first_message"]),
            ("serve, OSC loopback", "/improv/param/set -> its reply, while the band plays", out["serve_osc"]
             ["param_round_trip"])]
    if "listen_jack" in out:
        j = out["listen_jack"]
        rows += [("listen, JACK", "true onset -> first answering band note-on on JACK MIDI", j["first_note_on"]),
                 ("listen, JACK", "true onset -> first answering band message on JACK MIDI", j["first_message"]),
                 ("listen, JACK", "the listener's decision -> first answering message", j["band_after_decision"]),
                 ("listen, JACK", "true onset -> the listener's decision", j["decision"])]
    print("| path | figure | n | p50 ms | p95 ms | max ms |\n|---|---|---:|---:|---:|---:|")
    for path, what, s in rows:
        print(f"| {path} | {what} | {s.get('n', 0)} | {s.get('p50_ms')} | {s.get('p95_ms')} | {s.get('max_ms')} |")
    print(json.dumps({k: v for k, v in out["serve_osc"].items() if k != "per_note_ms"}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
