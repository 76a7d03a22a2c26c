"""The band's figures (issue 4) on fixed recordings with scripted command sequences.

Every figure compares two sessions that differ only by a command: the same recording,
the same seed, run through the whole pipeline (``improv listen --fast``: listening,
the band on audio time) once with and once without the command (or with the
reference command), so everything before the command is identical and the
difference afterwards is the command's doing. Windows run from the command's effect
time (from the band's log) to the end of the recording.

* busier / simpler: band notes per beat after the effect, against the same stretch
  without the command (beats of the band's clock; a half second in free mode).
* make room: band notes whose pitch lies in the player's register when they start
  (10th..90th percentile of the player's notes heard in the 8 s before), against no
  command.
* fight: share of band onsets (while the player sounds) a second, tritone or seventh
  away from the player, against ``accompany`` harmonic (the default) and contrapuntal.
* more orderly: interval entropy (bits) and repetition (share of notes repeating one
  of the 4 before) of each band's line, against no command.
* take over (``mid: take over``): for each silence of the player of at least 1.5 beats,
  when the band's first note came (beats after the silence began), when the band was
  silent again after the player came back (beats after the player's onset), and the
  correlation of the pitch classes it played with the player's last phrase (since their
  last silence of 1.5 beats, at most 8 beats; gaps where the band played 3 notes or more).
* reaction: command -> effect (the band's log): stop/panic in ms (notes off), the
  others in beats (metered: the next beat) or ms (free).
* live (``--live``): real-time sessions (paced input, the band's thread and
  scheduler): stop/panic command -> note-off sent (ms), and CPU of listen + three
  bands as a share of one core (process CPU time / wall time), with listening alone
  for comparison.

    PYTHONPATH=src python3 benchmarks/bench_band.py [--quick] [--live] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from improv.band import Band, BandSettings, parse_command  # noqa: E402
from improv.band import measure as M  # noqa: E402
from improv.band.band import PHRASE_BEATS  # noqa: E402
from improv.band.generators import ModelGenerator  # noqa: E402
from improv.band.offline import hear_blocks, play  # noqa: E402
from improv.model import load_model  # noqa: E402
from improv.events import BANDS, PLAYER, notes_from_events  # noqa: E402
from improv.session import ListenOptions, run_listen  # noqa: E402

INSTRUMENTS = Path.home() / ".cache" / "improv" / "instruments"
SHARED = Path(os.environ.get("IMPROV_SHARED_DATA", ROOT.parent / "shared" / "data"))
TAKES = ["sax-tim-1", "flute-tim-1", "violin-tim-2", "bass-tim-1", "guitar-fluidr3-3", "clarinet-tim-1"]
SSVD = ["1011", "1079", "1072"]
TAKEOVER = ["sax-tim-1", "flute-tim-1", "clarinet-fluidr3-2", "trumpet-tim-1", "violin-fluidr3-3", "1078", "1228",
            "1213"]  # takes whose player leaves silences of 1.5 beats or more (plus the added one)


@dataclass
class Recording:
    name: str
    path: Path
    duration: float


def recordings(quick: bool, names: list[str] | None = None) -> list[Recording]:
    import soundfile

    if names is None:
        names = ["demo"] + (TAKES[:3] if quick else TAKES) + (SSVD[:1] if quick else SSVD)
    paths = []
    for n in names:
        if n == "demo":
            paths.append(("demo", ROOT / "recordings" / "demo.wav"))
        elif n.isdigit():
            paths.append((f"ssvd-{n}", SHARED / "ssvd-train" / f"{n}.flac"))
        else:
            paths.append((n, INSTRUMENTS / f"{n}.wav"))
    out = []
    for name, p in paths:
        if p.exists():
            out.append(Recording(name, p, soundfile.info(str(p)).duration))
        else:
            print(f"skipped {name}: {p} not found", file=sys.stderr)
    return out


_HEARD: dict[str, object] = {}
_MODEL: list = []


def session(rec: Recording, script: list[str], seed: int, bands=BANDS, **band_kw):
    """What ``improv listen --fast`` gives with these commands (the listening done once per
    recording and replayed: :mod:`improv.band.offline`; the same events block by block)."""
    if not _MODEL:
        _MODEL.append(load_model())
    key = str(rec.path)
    if key not in _HEARD:
        _HEARD.clear()
        _HEARD[key] = hear_blocks(key)
    heard = _HEARD[key]
    cmds = [parse_command(text, t) for t, text in script]
    band = Band(BandSettings(bands=tuple(bands), seed=seed, **band_kw), generator=ModelGenerator(_MODEL[0], seed))
    events = play(band, heard, cmds)
    player = [e for evs in heard.events for e in evs] + list(heard.tail)
    return player + events, band


def band_notes(events, end):
    return {b: notes_from_events(events, b, until=end) for b in BANDS}


def beat_at(band, t: float) -> tuple[float, bool]:
    """Seconds per beat of the band's clock at ``t`` (free mode: 0.5 s), and whether metered."""
    beat, metered = 0.5, False
    for e in band.log:
        if e.event == "time map" and e.time <= t:
            metered = e.metered
            beat = 60.0 / e.bpm if metered else 0.5
    return beat, metered


def effect_of(band, text: str):
    """The band's log entry of the first command written ``text``."""
    label = parse_command(text).label()
    return next(e for e in band.log if e.event == "command" and e.command == label)


def stat(values) -> dict:
    v = np.array([x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))], dtype=float)
    if not len(v):
        return {"n": 0}
    return {"n": int(len(v)), "median": float(np.median(v)), "p10": float(np.percentile(v, 10)),
            "p90": float(np.percentile(v, 90)), "min": float(v.min()), "max": float(v.max())}


# ------------------------------------------------------------------ A/B figures


def ab_figures(rec: Recording, seed: int) -> dict:
    T = round(0.35 * rec.duration, 2)
    end = rec.duration
    base_ev, base_band = session(rec, [], seed)
    player = M.key_notes(base_ev, PLAYER, until=end)  # the player's notes as the band hears them (MIDI keys)
    base = band_notes(base_ev, end)
    out: dict = {"recording": rec.name, "seed": seed, "command_at": T}

    def run(text):
        ev, band = session(rec, [(T, text)], seed)
        eff = effect_of(band, text)
        return band_notes(ev, end), band, eff.effect

    def pooled(notes, a, b):
        return [n for v in notes.values() for n in M.between(v, a, b)]

    # density
    for word, key in (("busier", "busier"), ("simpler", "simpler")):
        notes, band, eff = run(f"all: {word}")
        a, b = len(pooled(base, eff, end)), len(pooled(notes, eff, end))
        beat, _ = beat_at(band, eff)
        span = (end - eff) / beat
        out[key] = {"before_per_beat": a / span, "after_per_beat": b / span,
                    "change": (b / a - 1.0) if a else math.nan, "effect_delay_s": eff - T}
    # make room: band notes inside the player's register as it was when they started (causal)
    notes, band, eff = run("all: make room")
    a = M.inside_recent(pooled(base, eff, end), player)
    b = M.inside_recent(pooled(notes, eff, end), player)
    out["make_room"] = {"inside_before": a, "inside_after": b, "reduction": (1.0 - b / a) if a else math.nan}
    # fight vs accompany
    fight_notes, _, eff = run("all: fight")
    contra_notes, _, eff2 = run("all: accompany contrapuntal")
    w_player = M.between(player, eff, end + 1)
    f_share, f_n = M.dissonant_share(pooled(fight_notes, eff, end), w_player)
    h_share, h_n = M.dissonant_share(pooled(base, eff, end), w_player)
    c_share, c_n = M.dissonant_share(pooled(contra_notes, eff2, end), w_player)
    out["fight"] = {"fight": f_share, "harmonic": h_share, "contrapuntal": c_share, "counted": [f_n, h_n, c_n],
                    "ratio_harmonic": f_share / h_share if h_share else math.inf,
                    "ratio_contrapuntal": f_share / c_share if c_share else math.inf}
    # orderly (one and two steps) and chaotic
    for key, texts in (("orderly", ["all: more orderly"]), ("orderly2", ["all: more orderly"] * 2),
                       ("chaotic", ["all: more chaotic"])):
        ev, band = session(rec, [(T, t) for t in texts], seed)
        notes = band_notes(ev, end)
        eff = effect_of(band, texts[0]).effect
        row = {}
        for name, src in (("before", base), ("after", notes)):
            ent = [M.interval_entropy([round(n.pitch) for n in M.between(src[b], eff, end)]) for b in BANDS]
            rep = [M.repetition([round(n.pitch) for n in M.between(src[b], eff, end)]) for b in BANDS]
            row[name] = {"entropy": float(np.nanmean(ent)), "repetition": float(np.nanmean(rep))}
        row["entropy_change"] = row["after"]["entropy"] - row["before"]["entropy"]
        row["repetition_change"] = row["after"]["repetition"] - row["before"]["repetition"]
        out[key] = row
    # monophony and range (base run)
    out["overlaps"] = sum(M.overlaps(v) for v in base.values())
    return out


def with_gap(rec: Recording, gap: float = 4.0, again: float = 6.0) -> Recording:
    """The recording, ``gap`` seconds of silence, then its first ``again`` seconds once more
    (a long silence for the band to fill, and a return to yield to); written to a temp file."""
    import tempfile

    import soundfile

    x, sr = soundfile.read(str(rec.path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    y = np.concatenate([x, np.zeros(int(gap * sr), dtype=np.float32), x[:int(again * sr)]])
    path = Path(tempfile.gettempdir()) / f"improv-bench-{rec.name}-gap.wav"
    soundfile.write(str(path), y, sr)
    return Recording(rec.name + "+gap", path, len(y) / sr)


def takeover_figures(rec: Recording, seed: int, band_name: str = "mid") -> dict:
    rec = with_gap(rec)
    end = rec.duration
    ev, band = session(rec, [(0.0, f"{band_name}: take over")], seed)
    player = M.key_notes(ev, PLAYER, until=end)
    mine = notes_from_events(ev, band_name, until=end)
    rows = []
    for g0, g1 in M.gaps(player, 0.3):
        beat, metered = beat_at(band, g0)
        if g1 - g0 < 1.5 * beat:
            continue
        in_gap = M.between(mine, g0, g1)
        row = {"gap_start": g0, "gap_beats": (g1 - g0) / beat, "metered": metered, "beat_s": beat}
        row["start_beats"] = (in_gap[0].onset - g0) / beat if in_gap else None
        # silent again after the player's return: when the band notes sounding at the return ended
        sounding = [n for n in mine if n.onset < g1 + 1e-6 and n.offset > g1]
        row["yield_beats"] = (max(n.offset for n in sounding) - g1) / beat if sounding else 0.0
        phrase = [n for n in player if _phrase_start(player, g0, 1.5 * beat, PHRASE_BEATS * beat) <= n.onset < g0]
        if len(in_gap) >= 3 and phrase:
            row["pc_correlation"] = M.correlation(M.pc_profile(in_gap), M.pc_profile(phrase))
        row["notes"] = len(in_gap)
        rows.append(row)
    return {"recording": rec.name, "seed": seed, "band": band_name, "gaps": rows}


def _phrase_start(player, before: float, gap: float, longest: float) -> float:
    """Where the player's last phrase before ``before`` began: after their last silence of
    ``gap`` seconds, at most ``longest`` seconds back (as the band takes it)."""
    ordered = [n for n in sorted(player, key=lambda n: n.onset) if n.onset < before]
    if not ordered:
        return before
    stop = ordered[-1].offset - longest
    start = ordered[-1].onset
    for a, b in zip(reversed(ordered[:-1]), reversed(ordered[1:])):
        if b.onset - a.offset >= gap or a.onset < stop:
            break
        start = a.onset
    return start


def reaction_figures(rec: Recording, seed: int) -> dict:
    """Command -> effect on audio time (--fast): stop/panic notes off, the others' effect."""
    d = rec.duration
    script = [(0.25 * d, "bass: busier"), (0.3 * d, "mid: make room"), (0.4 * d, "all: stop"), (0.45 * d, "all: go"),
              (0.55 * d, "high: fight"), (0.62 * d, "panic"), (0.7 * d, "mid: accompany contrapuntal"),
              (0.8 * d, "all: more orderly")]
    ev, band = session(rec, [(round(t, 3), s) for t, s in script], seed)
    rows = []
    for e in band.log:
        if e.event != "command":
            continue
        beat, metered = beat_at(band, e.time)
        row = {"command": e.command, "time": e.time, "metered": metered,
               "delay_ms": 1000.0 * (e.effect - e.time), "delay_beats": (e.effect - e.time) / beat}
        if e.command.endswith(("stop", "panic")):
            # the notes sounding when the command came: how long after it they ended
            ends = [n.offset - e.time for b in BANDS for n in notes_from_events(ev, b, until=rec.duration)
                    if n.onset < e.time - 1e-6 and n.offset > e.time - 1e-6
                    and (e.command.endswith("panic") or e.command.startswith(("all", b)))]
            row["notes_off_ms"] = 1000.0 * max(ends) if ends else None
        rows.append(row)
    return {"recording": rec.name, "seed": seed, "commands": rows}


# ------------------------------------------------------------------ real time


def live_figures(rec: Recording, seconds: float | None = None, jack: bool = False) -> dict:
    """A paced (real-time) session with three bands; stop/panic latencies and CPU. With
    ``jack`` (a JACK server running): MIDI to a virtual JACK port and the built-in synth
    (FluidSynth on JACK), as ``improv listen`` runs by default."""
    import threading

    d = rec.duration if seconds is None else min(seconds, rec.duration)
    script = [(0.3 * d, "all: stop"), (0.4 * d, "all: go"), (0.6 * d, "panic"), (0.8 * d, "all: stop")]
    cmds = [parse_command(s, round(t, 3)) for t, s in script]
    out = {"recording": rec.name, "seconds": d}
    for label, bands in (("listen", ()), ("listen+3 bands", BANDS)):
        stop = threading.Event()
        timer = threading.Timer(d, stop.set)
        timer.start()
        r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        res = run_listen(ListenOptions(input=str(rec.path), fast=False, midi=jack, synth="auto" if jack else "none",
                                       midi_api="jack" if jack else None, bands=bands,
                                       band=BandSettings(seed=1) if bands else None,
                                       commands=cmds if bands else []), stop=stop)
        r1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        timer.cancel()
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        out[label] = {"cpu_share_of_one_core": cpu / (w1 - w0), "wall_s": w1 - w0, "synth": res.synth,
                      "midi": res.midi_port}
        if bands:
            lat = {}
            for c in cmds:
                if c.command not in ("stop", "panic"):
                    continue
                ends = [n.offset - c.time for b in BANDS for n in notes_from_events(res.events, b, until=d + 1)
                        if n.onset < c.time and n.offset > c.time - 0.05]
                lat.setdefault(c.command, []).append(1000.0 * max(ends) if ends else None)
            out[label]["notes_off_ms"] = lat
    return out


# ------------------------------------------------------------------ summary


def summarise(ab: list[dict], takeovers: list[dict], reactions: list[dict]) -> dict:
    s: dict = {}
    s["busier_change"] = stat(r["busier"]["change"] for r in ab)
    s["busier_pass"] = float(np.mean([r["busier"]["change"] >= 0.30 for r in ab]))
    s["simpler_change"] = stat(r["simpler"]["change"] for r in ab)
    s["simpler_pass"] = float(np.mean([r["simpler"]["change"] <= -0.30 for r in ab]))
    rooms = [r["make_room"]["reduction"] for r in ab if "make_room" in r]
    s["make_room_reduction"] = stat(rooms)
    s["make_room_pass"] = float(np.mean([x >= 0.70 for x in rooms if not math.isnan(x)]))
    s["fight_ratio_harmonic"] = stat(r["fight"]["ratio_harmonic"] for r in ab)
    s["fight_ratio_contrapuntal"] = stat(r["fight"]["ratio_contrapuntal"] for r in ab)
    s["fight_share"] = stat(r["fight"]["fight"] for r in ab)
    s["harmonic_share"] = stat(r["fight"]["harmonic"] for r in ab)
    s["fight_pass"] = float(np.mean([r["fight"]["ratio_harmonic"] >= 2.0 for r in ab]))
    for k in ("orderly", "orderly2", "chaotic"):
        s[f"{k}_entropy_change"] = stat(r[k]["entropy_change"] for r in ab)
        s[f"{k}_repetition_change"] = stat(r[k]["repetition_change"] for r in ab)
    s["orderly_pass"] = float(np.mean([r["orderly"]["entropy_change"] < 0 and r["orderly"]["repetition_change"] > 0
                                       for r in ab]))
    gaps = [g for t in takeovers for g in t["gaps"]]
    starts = [g["start_beats"] for g in gaps]
    s["takeover_gaps"] = len(gaps)
    s["takeover_start_beats"] = stat(starts)
    s["takeover_started_within_1_beat"] = float(np.mean([x is not None and x <= 1.0 for x in starts])) if gaps else None
    s["takeover_yield_beats"] = stat(g["yield_beats"] for g in gaps)
    s["takeover_yield_within_1_beat"] = float(np.mean([g["yield_beats"] <= 1.0 for g in gaps])) if gaps else None
    pcs = [g.get("pc_correlation") for g in gaps if g.get("pc_correlation") is not None]
    s["takeover_pc_correlation"] = stat(pcs)
    s["takeover_pc_at_least_0.7"] = float(np.mean([x >= 0.7 for x in pcs if not math.isnan(x)])) if pcs else None
    rows = [c for r in reactions for c in r["commands"]]
    s["stop_panic_notes_off_ms"] = stat(c.get("notes_off_ms") for c in rows if "notes_off_ms" in c)
    s["other_metered_delay_beats"] = stat(c["delay_beats"] for c in rows if c["metered"]
                                          and not c["command"].endswith(("stop", "panic")))
    s["other_free_delay_ms"] = stat(c["delay_ms"] for c in rows if not c["metered"]
                                    and not c["command"].endswith(("stop", "panic")))
    s["overlaps"] = int(sum(r["overlaps"] for r in ab))
    return s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer recordings (demo, 3 takes, 1 SSVD file)")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--live", action="store_true", help="also real-time sessions (CPU, stop/panic latency)")
    ap.add_argument("--live-only", action="store_true")
    ap.add_argument("--jack", action="store_true", help="live sessions on a JACK dummy server of their own, "
                    "with MIDI out and the built-in synth (needs jackd)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    recs = recordings(args.quick)
    takeover_recs = recordings(args.quick, ["demo"] + (TAKEOVER[:2] + TAKEOVER[5:6] if args.quick else TAKEOVER))
    out: dict = {"load_average_before": os.getloadavg(), "cpus": os.cpu_count(),
                 "recordings": [r.name for r in recs], "seeds": args.seeds}
    t0 = time.perf_counter()
    if not args.live_only:
        ab, takeovers, reactions = [], [], []
        for rec in recs:
            for seed in range(args.seeds):
                ab.append(ab_figures(rec, seed))
                reactions.append(reaction_figures(rec, seed))
                print(f"{rec.name} seed {seed}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        for rec in takeover_recs:
            for seed in range(args.seeds):
                takeovers.append(takeover_figures(rec, seed))
                print(f"take over {rec.name} seed {seed}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        out["summary"] = summarise(ab, takeovers, reactions)
        out["ab"], out["takeover"], out["reaction"] = ab, takeovers, reactions
    if args.live or args.live_only:
        out["live"] = [live_figures(r) for r in recs[:2]]
        if args.jack:
            from improv.testing.jack import start_jack

            server = start_jack(f"improv-bench-{os.getpid()}")
            try:
                out["live_jack"] = [live_figures(r, jack=True) for r in recs[:2]]
            finally:
                server.stop()
    out["load_average_after"] = os.getloadavg()
    out["seconds"] = time.perf_counter() - t0
    print(json.dumps({k: v for k, v in out.items() if k in ("summary", "live", "live_jack", "load_average_before",
                                                            "load_average_after", "seconds")}, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
