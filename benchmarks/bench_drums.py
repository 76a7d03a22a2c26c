"""The drummer's figures (issue 14), on real recordings through the same band as
``improv listen --fast`` (the listening done once per recording and replayed,
:mod:`improv.band.offline`), medians and percentiles over recordings x seeds x styles.

Every command figure compares two sessions that differ only by the command (same
recording, seed, style, tempo): windows run from the command's effect (the band's log)
to the end of the recording.

* busier / simpler: drum hits per beat after the effect, against no command.
* stop: drum note-ons after the command (must be none) and when the last drum
  note-off falls after the command (ms).
* make room: drum hits within 50 ms of the player's onsets (heard onsets), against no
  command.
* fills: share of the fills (``Drummer.fills``) that end on a bar line of a 4- or
  8-bar phrase end (bars counted from beat 0, the player's first note).
* style: a nearest-centroid classifier over bar onset patterns (5 voice groups x 12
  positions per beat), trained only on the style files (bars drawn from the files'
  step probabilities, the style's swing applied), labels the bars the drummer
  generated on the recordings (all held out: the classifier never saw the drummer).
* kick on the bass (``--kick``, needs the model): share of bass onsets with a kick
  within 30 ms, against the same share with the kick's lock turned off.
* JACK (``--jack SECONDS``): the drummer in real time (its own thread stepping the band
  every 10 ms, as :class:`~improv.band.live.LiveBand` does) hands its hits to a
  :class:`~improv.timing.Scheduler` whose sink is improv's JACK client; another JACK
  client stamps each message with the session time of its frame; error = that time
  minus the planned time. improv's listening runs over a recording meanwhile (the
  load of a session), on a JACK dummy server (48 kHz, 256 frames).

    PYTHONPATH=src python3 benchmarks/bench_drums.py [--quick] [--kick] [--jack 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from improv.band import Band, BandSettings, parse_command
from improv.band.drums import STYLES, Groove, load_grooves
from improv.band.offline import hear_blocks, play
from improv.events import NoteOff, NoteOn
from improv.timing import Swing

SHARED = Path(os.environ.get("IMPROV_SHARED_DATA", ROOT.parent / "shared" / "data"))
SSVD = ["1011", "1079", "1072", "1078", "1228", "1213"]
METERED = [s for s in STYLES if s != "free"]
TEMPO = {"swing": 150, "straight": 110, "funk": 100, "bossa": 130, "ballad": 70, "rock": 120, "waltz": 140}
GROUPS = (("kick", {35, 36}), ("snare", {37, 38, 39, 40}), ("hat", {42, 44, 46, 54, 69, 70}),
          ("cymbal", {49, 51, 52, 53, 55, 57}), ("tom", {41, 43, 45, 47, 48, 50}))
POS = 12  # positions per beat in the classifier's grid


def recordings(quick: bool) -> list[tuple[str, Path]]:
    out = [("demo", ROOT / "recordings" / "demo.wav")]
    for n in SSVD[:2] if quick else SSVD:
        p = SHARED / "ssvd-train" / f"{n}.flac"
        if p.exists():
            out.append((f"ssvd-{n}", p))
        else:
            print(f"skipped ssvd-{n}: {p} not found", file=sys.stderr)
    return out


_HEARD: dict[str, object] = {}


def heard(path: Path):
    key = str(path)
    if key not in _HEARD:
        _HEARD[key] = hear_blocks(key)
    return _HEARD[key]


def session(path: Path, style: str, seed: int, script=(), **kw):
    h = heard(path)
    band = Band(BandSettings(bands=kw.pop("bands", ("drums",)), tempo=kw.pop("tempo", TEMPO.get(style, 110)),
                             style=style, seed=seed, **kw))
    cmds = [parse_command(text, t) for t, text in script]
    events = play(band, h, cmds)
    player = [e for evs in h.events for e in evs] + list(h.tail)
    return player, events, band


def drum_hits(events, start=-math.inf, end=math.inf):
    return [e for e in events if isinstance(e, NoteOn) and e.source == "drums" and start <= e.time < end]


def effect(band, text: str) -> float:
    label = parse_command(text).label()
    return next(e["effect"] for e in band.log if e.get("event") == "command" and e["command"] == label)


def stat(values) -> dict:
    v = np.array([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if not len(v):
        return {"n": 0}
    return {"n": int(len(v)), "median": float(np.median(v)), "p10": float(np.percentile(v, 10)),
            "p90": float(np.percentile(v, 90)), "min": float(v.min()), "max": float(v.max())}


# ------------------------------------------------------------------ the classifier


def group_of(note: int) -> int | None:
    return next((i for i, (_, keys) in enumerate(GROUPS) if note in keys), None)


def bar_vector(hits: list[tuple[float, int, int]], beats: int = 4) -> np.ndarray:
    """(position in beats from the bar line, note, velocity) -> a normalised onset pattern."""
    v = np.zeros((len(GROUPS), 4 * POS))
    for pos, note, vel in hits:
        g = group_of(note)
        k = int(round(pos * POS))
        if g is not None and 0 <= k < 4 * POS:
            v[g, k] += vel / 127.0
    flat = v.ravel()
    n = np.linalg.norm(flat)
    return flat / n if n else flat


def sampled_bars(g: Groove, rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """Bars drawn from the style file's step probabilities (levels -1..1), its swing applied."""
    out = []
    bpb = g.meter.beats_per_bar
    sw = Swing(g.swing)
    for i in range(count):
        level = int(rng.integers(-1, 2))
        bar = int(rng.integers(0, g.bars))
        hits = []
        for ln in g.lines:
            if not ln.plays_at(level):
                continue
            for j in range(bpb):
                for sub in range(g.steps_per_beat):
                    step = g.step(ln, bar, j, sub)
                    if step is None or rng.random() >= step[0]:
                        continue
                    a = sw.apply(j + sub / g.steps_per_beat, g.meter)
                    hits.append((a, ln.note, int(np.mean(ln.velocity) * step[1])))
        out.append(bar_vector(hits, bpb))
    return out


def train(grooves: dict[str, Groove], seed: int = 0, per_style: int = 200) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cents = {}
    for s in METERED:
        c = np.mean(sampled_bars(grooves[s], rng, per_style), axis=0)
        cents[s] = c / np.linalg.norm(c)
    return cents


def classify(cents: dict[str, np.ndarray], v: np.ndarray) -> str:
    return max(cents, key=lambda s: float(cents[s] @ v))


def generated_bars(events, band) -> list[np.ndarray]:
    clock = band.map.clock if band.map is not None and band.map.metered else None
    if clock is None:
        return []
    out = []
    bars = band.bars
    for s, e in zip(bars, bars[1:]):
        hs = drum_hits(events, s - 0.03, e - 0.03)
        b0 = clock.beat_at(s)
        out.append(bar_vector([(clock.beat_at(h.time) - b0, h.pitch, h.velocity) for h in hs]))
    return out


# ------------------------------------------------------------------ figures


def overlaps(events, onsets, start, window=0.05) -> int:
    on = np.array(sorted(onsets))
    n = 0
    for h in drum_hits(events, start):
        i = np.searchsorted(on, h.time)
        near = [abs(h.time - on[j]) for j in (i - 1, i) if 0 <= j < len(on)]
        n += bool(near) and min(near) <= window
    return n


def run(quick: bool, with_kick: bool) -> dict:
    grooves = load_grooves()
    recs = recordings(quick)
    seeds = [1, 2] if quick else [1, 2, 3]
    styles = ["rock", "funk", "swing", "bossa"] if quick else METERED
    cents = train(grooves)
    r: dict = {"busier": [], "simpler": [], "stop_ons_after": [], "stop_last_off_ms": [], "make_room": [],
               "fills_on_phrase_ends": [], "fills": 0, "style_correct": 0, "style_bars": 0,
               "confusion": {}, "free_gesture_cv": []}
    t_start = time.time()
    for name, path in recs:
        h = heard(path)
        end = h.duration
        cmd_at = min(12.0, end / 3)
        for style in styles:
            for seed in seeds:
                player, base, band = session(path, style, seed)
                if band.map is None or not band.map.metered:
                    continue
                bs = band.map.beat_seconds
                onsets = [e.onset for e in player if isinstance(e, NoteOn) and e.onset is not None]
                # style recognition on the bars it played
                for v in generated_bars(base, band):
                    if not v.any():
                        continue
                    got = classify(cents, v)
                    r["style_bars"] += 1
                    r["style_correct"] += got == style
                    r["confusion"].setdefault(style, {}).setdefault(got, 0)
                    r["confusion"][style][got] += 1
                # fills
                clock = band.map.clock
                for fs, fe in band.drummer.fills:
                    if fe > band.bars[-1] + 1e-6:
                        continue
                    k = clock.beat_at(fe) / band.map.meter.beats_per_bar
                    r["fills"] += 1
                    r["fills_on_phrase_ends"].append(abs(k - round(k)) < 0.01 and round(k) % 4 == 0)
                for cmd, key in (("drums: busier", "busier"), ("drums: simpler", "simpler")):
                    _, ev, b2 = session(path, style, seed, [(cmd_at, cmd)])
                    eff = effect(b2, cmd)
                    a = len(drum_hits(base, eff, end)) / ((end - eff) / bs)
                    b = len(drum_hits(ev, eff, end)) / ((end - eff) / bs)
                    if a > 0:
                        r[key].append(b / a - 1.0)
                _, ev, b2 = session(path, style, seed, [(cmd_at, "drums: stop")])
                r["stop_ons_after"].append(len(drum_hits(ev, cmd_at + 1e-9)))
                offs = [e.time for e in ev if isinstance(e, NoteOff) and e.source == "drums" and e.time >= cmd_at - 0.1]
                r["stop_last_off_ms"].append(1000 * max(0.0, max(offs, default=cmd_at) - cmd_at))
                _, ev, b2 = session(path, style, seed, [(cmd_at, "drums: make room")])
                eff = effect(b2, "drums: make room")
                a, b = overlaps(base, onsets, eff), overlaps(ev, onsets, eff)
                if a > 0:
                    r["make_room"].append(b / a - 1.0)
        # free mode: colour at irregular times
        for seed in seeds:
            band = Band(BandSettings(bands=("drums",), free=True, seed=seed, style="free"))
            ev = play(band, h)
            hs = drum_hits(ev)
            starts = [hs[0].time] + [b.time for a, b in zip(hs, hs[1:]) if b.time - a.time > 0.3] if hs else []
            if len(starts) >= 4:
                gaps = np.diff(starts)
                r["free_gesture_cv"].append(float(np.std(gaps) / np.mean(gaps)))
        print(f"{name}: done ({time.time() - t_start:.0f} s)", file=sys.stderr)
    out = {
        "recordings": [n for n, _ in recs], "seeds": seeds, "styles": styles,
        "busier": stat(r["busier"]), "simpler": stat(r["simpler"]),
        "busier_pass": float(np.mean([x >= 0.3 for x in r["busier"]])),
        "simpler_pass": float(np.mean([x <= -0.3 for x in r["simpler"]])),
        "stop_note_ons_after": int(sum(r["stop_ons_after"])), "stop_last_off_ms": stat(r["stop_last_off_ms"]),
        "make_room_overlaps": stat(r["make_room"]),
        "make_room_pass": float(np.mean([x <= -0.7 for x in r["make_room"]])) if r["make_room"] else None,
        "fills": r["fills"], "fills_on_phrase_ends": float(np.mean(r["fills_on_phrase_ends"])) if r["fills"] else None,
        "style_accuracy": r["style_correct"] / max(r["style_bars"], 1), "style_bars": r["style_bars"],
        "confusion": r["confusion"], "free_gesture_interval_cv": stat(r["free_gesture_cv"]),
        "seconds": time.time() - t_start,
    }
    if with_kick:
        out["kick_on_bass"] = kick_lock(recs[:2], seeds[:1])
    return out


def kick_lock(recs, seeds) -> dict:
    """Share of bass onsets with a kick within 30 ms: as played, and with the lock off."""
    from improv.band import drums as D

    shares = {"locked": [], "unlocked": []}
    for name, path in recs:
        for seed in seeds:
            for mode in ("locked", "unlocked"):
                if mode == "unlocked":
                    saved = D.Drummer._timed

                    def no_lock(self, hits, scene, *a, **k):
                        return saved(self, hits, D.DrumScene(**{**scene.__dict__, "bass_onsets": ()}), *a, **k)

                    D.Drummer._timed = no_lock
                try:
                    _, ev, band = session(path, "rock", seed, bands=("bass", "drums"))
                finally:
                    if mode == "unlocked":
                        D.Drummer._timed = saved
                kicks = np.array(sorted(e.time for e in drum_hits(ev) if e.pitch in (35, 36)))
                bass = [e.time for e in ev if isinstance(e, NoteOn) and e.source == "bass"]
                if len(kicks) and bass:
                    near = [np.min(np.abs(kicks - t)) <= 0.03 for t in bass]
                    shares[mode].append(float(np.mean(near)))
    return {k: stat(v) for k, v in shares.items()}


def jack_timing(seconds: float) -> dict:
    import threading

    from improv.testing import load_benchmark
    from improv.testing.jack import start_jack

    sched = load_benchmark("bench_scheduler")
    listening_load, stats_ms = sched.listening_load, sched.stats_ms

    from improv.timing import Scheduler
    from improv.timing.jackmidi import JackMidi

    try:
        server = start_jack(f"improv-drums-{os.getpid()}")
    except (RuntimeError, FileNotFoundError) as e:  # no jackd, or the machine's servers are all taken
        return {"error": str(e).splitlines()[0]}
    got: list[tuple[float, bytes]] = []
    lock = threading.Lock()
    stop = threading.Event()
    stats: dict = {}
    try:
        t0 = time.perf_counter()

        def now() -> float:
            return time.perf_counter() - t0

        def on_capture(data: bytes, t: float) -> None:
            with lock:
                got.append((t, bytes(data)))

        cap = JackMidi("drums-capture", out=None, inputs={"in": on_capture}, origin=t0)
        sink = JackMidi("improv-drums", origin=t0)
        sink.connect_out(cap.in_name("in"))
        load = threading.Thread(target=listening_load, args=(stop, ROOT / "recordings" / "demo.wav", stats),
                                daemon=True)
        load.start()
        band = Band(BandSettings(bands=("drums",), tempo=120, count_in=1, style="funk", seed=1, handoff=0.1))
        sched = Scheduler(sink, now=now).start()
        planned: list[tuple[float, bytes]] = []
        busier_at = seconds / 2
        told = False
        while now() < seconds:
            t = now()
            if not told and t >= busier_at:
                band.command(parse_command("drums: busier", t))
                told = True
            band.step(t)
            for ev in band.due(t + 0.1):
                if isinstance(ev, NoteOn):
                    data = bytes([0x99, ev.pitch, ev.velocity])
                else:
                    data = bytes([0x89, ev.pitch, 0])
                sched.schedule(ev.time, data, tag="drums")
                planned.append((ev.time, data))
            time.sleep(0.01)
        time.sleep(0.3)
        sched.stop(panic=False)
        lateness = sched.lateness_ms()
        stop.set()
        sink.close()
        cap.close()
        load.join(5)
    finally:
        server.stop()
    with lock:
        got = [(t, d) for t, d in got if d[0] & 0xF0 in (0x80, 0x90) and d[0] & 0x0F == 9]
    errs, gi = [], 0
    for t, d in sorted(planned, key=lambda x: x[0]):
        j = gi
        while j < len(got) and got[j][1] != d:
            j += 1
        if j == len(got):
            continue
        errs.append(1000.0 * (got[j][0] - t))
        gi = j + 1
    within = float(np.mean(np.abs(errs) <= 2.0)) if errs else None
    return {"seconds": seconds, "planned": len(planned), "captured": len(got), "error_ms": stats_ms(errs),
            "within_2ms": within, "scheduler_lateness_ms": stats_ms(lateness), "listened_blocks": stats.get("blocks")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 recordings, 2 seeds, 4 styles")
    ap.add_argument("--kick", action="store_true", help="also the kick on the bass (loads the model)")
    ap.add_argument("--jack", type=float, metavar="SECONDS", help="also the hits through improv's JACK client")
    ap.add_argument("--only-jack", action="store_true", help="only the JACK figure")
    ap.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    args = ap.parse_args()
    res = {} if args.only_jack else run(args.quick, args.kick)
    if args.jack:
        res["jack"] = jack_timing(args.jack)
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
