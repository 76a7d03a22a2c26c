"""Does the band play the player's song? (issue 13)

Held-out POP909 songs (the model's **test** split, never used for choosing settings;
``--split val`` for tuning) with their annotated chords (``chord_midi.txt``). For each
song, the first ``--seconds`` of the MELODY track is played to the band two ways:

* **audio**: rendered as a flute with FluidSynth (TimGM6mb, 22.05 kHz) and heard by the
  whole listening pipeline, as ``improv listen --fast --bands all`` does
  (:func:`improv.band.offline.hear_blocks` / ``play``);
* **notes**: the melody's notes fed to the band as note events, at their own times.

and in three harmonic settings:

* **follow** (the default, no tempo given: the band's own beat tracker or free mode);
* **changes**: the annotated chords given as the changes (``TimedHarmony``), each change
  moved to the nearest beat of the band's clock (as a lead sheet writes them), the
  band's clock fixed on the song's beats (its median tempo and first downbeat, as a
  lead sheet with a count-in would set them); scored against the annotations and
  against the changes as given;
* **auto**: the band proposes its own changes (``--changes auto``).

Scores, time-weighted over each band voice's sounding notes:

* chord tones: share of sounding time on a tone of the annotated chord (``N`` skipped);
* bass on strong beats (changes): share of the bass notes sounding at the band's
  strong beats (beats 1 and 3) that are chord tones of the changes given;
* consonance: share of the time a band note and a melody note sound together at a
  consonant interval (unison, thirds, fifth, sixths, octaves);
* the follower's chords (the chord log as the band planned it) against the annotations,
  ``mir_eval.chord`` root and majmin, beside the template-matching baseline on the same
  heard notes (steps of 1.5 s: causal = the previous step's notes, offline = the
  step's own);
* auto: the melody's chord-tone share under the band's chords (ReaLchords' "harmony"),
  beside the same under the annotated chords.

    PYTHONPATH=src python3 benchmarks/bench_harmony.py [--songs 16] [--seconds 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CACHE = Path.home() / ".cache" / "improv" / "bench_harmony"
SR = 22050
CONSONANT = np.isin(np.arange(12), (0, 3, 4, 7, 8, 9))
FLUTE = 73


def songs(split: str, count: int, shared: Path) -> list[Path]:
    from improv.model.data import split_of

    folders = [f for f in sorted((shared / "symbolic" / "pop909").iterdir())
               if (f / "chord_midi.txt").exists() and split_of(f"pop909/{f.name}") == split]
    step = max(1, len(folders) // count)
    return folders[::step][:count]


def melody(folder: Path, seconds: float) -> tuple[list[tuple[float, float, int]], float]:
    """The melody's first ``seconds`` from a second before its first note, times from
    there; and that offset into the song (seconds)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(folder / f"{folder.name}.mid"))
    inst = next(i for i in pm.instruments if i.name.strip().upper() == "MELODY")
    notes = sorted((n.start, n.end, n.pitch) for n in inst.notes)
    offset = max(0.0, notes[0][0] - 1.0)
    notes = [(float(a) - offset, float(b) - offset, int(p)) for a, b, p in notes]
    out = []
    for s, e, p in notes:
        if s >= seconds:
            break
        if out and s < out[-1][1]:  # monophonic
            out[-1] = (out[-1][0], s, out[-1][2])
        out.append((s, min(e, seconds), p))
    return [(s, e, p) for s, e, p in out if e - s > 0.02], offset


def render(folder: Path, notes, seconds: float) -> Path:
    import soundfile as sf
    from improv.testing.instruments import GRID, SOUNDFONTS, FluidRenderer

    path = CACHE / f"{folder.name}-{seconds:g}s-flute.wav"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    r = FluidRenderer(SOUNDFONTS["tim"], SR)
    g = lambda t: int(round(t * SR / GRID)) * GRID
    events = [(0, 0, ("program", FLUTE, 0))]
    for s, e, p in notes:
        events.append((g(s), 2, ("on", p, 90)))
        events.append((max(g(e), g(s) + GRID), 1, ("off", p, 0)))
    x = r.render(events, g(seconds + 1.0))
    r.close()
    x = 0.5 * x / max(1e-6, float(np.abs(x).max()))
    sf.write(str(path), x.astype(np.float32), SR)
    return path


def notes_heard(notes, duration: float):
    """The melody as the listener would hand it on: events at their own times, in blocks."""
    from improv.band.offline import Heard
    from improv.events import NoteOff, NoteOn

    evs = []
    for s, e, p in notes:
        evs.append((s, 1, NoteOn(s, p, 90, onset=s)))
        evs.append((e, 0, NoteOff(e, p, end=e)))
    evs.sort(key=lambda x: (x[0], x[1]))
    block = 256 / SR
    ends = np.arange(block, duration + block, block)
    groups, i = [], 0
    for end in ends:
        g = []
        while i < len(evs) and evs[i][0] <= end:
            g.append(evs[i][2])
            i += 1
        groups.append(tuple(g))
    return Heard(tuple(float(x) for x in ends), tuple(groups), tuple(x[2] for x in evs[i:]), float(ends[-1]))


def player_notes(heard) -> list[tuple[float, float, int]]:
    from improv.events import PLAYER, NoteOff, NoteOn

    out, cur = [], None
    for ev in [e for g in heard.events for e in g] + list(heard.tail):
        if ev.source != PLAYER:
            continue
        if isinstance(ev, NoteOn):
            t = ev.onset if ev.onset is not None else ev.time
            if cur is not None:
                out.append((cur[0], t, cur[1]))
            cur = (t, ev.pitch)
        elif isinstance(ev, NoteOff) and cur is not None:
            out.append((cur[0], ev.end if ev.end is not None else ev.time, cur[1]))
            cur = None
    return out


def band_notes(events) -> dict[str, list[tuple[float, float, int]]]:
    from improv.events import BANDS, NoteOff, NoteOn

    out: dict[str, list] = {b: [] for b in BANDS}
    open_: dict[str, tuple[float, int]] = {}
    for ev in sorted(events, key=lambda e: (e.time, isinstance(e, NoteOn))):
        if ev.source not in out:
            continue
        if isinstance(ev, NoteOn):
            if ev.source in open_:
                s, p = open_.pop(ev.source)
                out[ev.source].append((s, ev.time, p))
            open_[ev.source] = (ev.time, ev.pitch)
        elif isinstance(ev, NoteOff) and ev.source in open_ and open_[ev.source][1] == ev.pitch:
            s, p = open_.pop(ev.source)
            out[ev.source].append((s, ev.time, p))
    return out


def chord_tone_share(notes, chords) -> tuple[float, float]:
    """(time on chord tones, time under a chord) for notes against [(s, e, Chord|None)]."""
    ok = total = 0.0
    for s, e, p in notes:
        for cs, ce, c in chords:
            if c is None or ce <= s or cs >= e:
                continue
            d = min(e, ce) - max(s, cs)
            total += d
            ok += d * c.has(p)
    return ok, total


def consonance(notes, mel) -> tuple[float, float]:
    ok = total = 0.0
    for s, e, p in notes:
        for ms, me, mp in mel:
            if me <= s or ms >= e:
                continue
            d = min(e, me) - max(s, ms)
            total += d
            ok += d * CONSONANT[(p - mp) % 12]
    return ok, total


def strong_beat_bass(notes, chords, beats: np.ndarray) -> tuple[float, float]:
    ok = total = 0
    for t in beats:
        for s, e, p in notes:
            if s <= t + 1e-3 < e:
                c = next((c for cs, ce, c in chords if cs <= t < ce), None)
                if c is not None:
                    total += 1
                    ok += c.has(p)
    return ok, total


def chord_log_intervals(log: list[dict], end: float):
    from improv.harmony import parse_chord

    out = []
    for a, b in zip(log, log[1:] + [{"time": end}]):
        if b["time"] > a["time"]:
            out.append((a["time"], min(b["time"], end), parse_chord(a["chord"])))
    return out


def mir_scores(ref, est, end: float) -> dict[str, float]:
    """mir_eval.chord root and majmin (duration-weighted) of ``est`` against ``ref``."""
    import mir_eval

    def arrays(rows, fill="N"):
        rows = [(max(0.0, s), min(e, end), c) for s, e, c in rows if s < end]
        iv = np.array([[s, e] for s, e, _ in rows]) if rows else np.zeros((0, 2))
        lab = [fill if c is None else c.harte(triad=True) for _, _, c in rows]
        return iv, lab

    ri, rl = arrays(ref)
    ei, el = arrays(est)
    if len(ei) == 0:
        return {"root": 0.0, "majmin": 0.0}
    ei, el = mir_eval.util.adjust_intervals(ei, el, ri.min(), ri.max(), "N", "N")
    iv, r, e = mir_eval.util.merge_labeled_intervals(ri, rl, ei, el)
    d = mir_eval.util.intervals_to_durations(iv)
    return {"root": float(mir_eval.chord.weighted_accuracy(mir_eval.chord.root(r, e), d)),
            "majmin": float(mir_eval.chord.weighted_accuracy(mir_eval.chord.majmin(r, e), d))}


def template_baseline(notes, end: float, causal: bool):
    from improv.harmony.follower import FREE_STEP, Note, SecondsGrid, template_chords, triad

    grid = SecondsGrid(FREE_STEP)
    n = int(math.ceil(end / FREE_STEP))
    ks = template_chords([Note(p, s, e) for s, e, p in notes], grid, n, causal=causal)
    return [(grid.time(k), grid.time(k + 1), None if c is None else triad(c)) for k, c in enumerate(ks)]


def run_song(folder: Path, seconds: float, seed: int, modes=("follow", "changes", "auto"),
             hows=("audio", "notes"), follower: str = "default") -> dict:
    from improv.band.band import Band, BandSettings
    from improv.band.offline import hear_blocks, play
    from improv.harmony.source import TimedHarmony
    from improv.harmony.table import read_pop909_song
    from improv.timing import FixedClock

    mel, offset = melody(folder, seconds)
    chords, key, beats = read_pop909_song(folder)
    chords = [(s - offset, e - offset, c) for s, e, c in chords if e > offset and s < seconds + offset]
    beats = beats[beats[:, 0] >= offset - 1e-6] - np.array([offset, 0.0])
    heard_audio = hear_blocks(str(render(folder, mel, seconds))) if "audio" in hows else None
    heard_notes = notes_heard(mel, seconds + 0.5)
    spb = float(np.median(np.diff(beats[:, 0])))
    bpm = 60.0 / spb
    downs = beats[beats[:, 1] > 0.5, 0]
    first_down = float(downs[0]) if len(downs) else float(beats[0, 0])
    strong = first_down + spb * np.arange(0, (seconds - first_down) / spb, 2.0)  # the band's beats 1 and 3
    # the changes as a lead sheet gives them: each change on the nearest beat of the band's clock
    snap = lambda t: first_down + round((t - first_down) / spb) * spb
    given = [(snap(s), snap(e), c) for s, e, c in chords if snap(e) > snap(s)]
    res: dict = {"song": folder.name, "bpm": round(bpm, 1), "melody_chord_tones": None}
    ok, tot = chord_tone_share(mel, chords)
    res["melody_chord_tones"] = (ok, tot)
    for how, heard in (("audio", heard_audio), ("notes", heard_notes)):
        if how not in hows:
            continue
        heard_mel = player_notes(heard)
        for mode in modes:
            t0 = time.perf_counter()
            if mode == "changes":
                band = Band(BandSettings(tempo=bpm, seed=seed), harmony=TimedHarmony(given))
                band.time.fixed = FixedClock(bpm, t0=first_down, meter=band.time.meter)
            elif follower == "templates":  # the follower without the learned recogniser
                from improv.harmony.follower import ChordFollower
                from improv.harmony.source import AutoHarmony, FollowHarmony

                h = AutoHarmony(seed, follower=ChordFollower()) if mode == "auto" else FollowHarmony(ChordFollower())
                band = Band(BandSettings(seed=seed, changes="auto" if mode == "auto" else None), harmony=h)
            else:
                band = Band(BandSettings(seed=seed, changes="auto" if mode == "auto" else None))
            evs = play(band, heard)
            bn = band_notes(evs)
            r: dict = {"seconds": round(time.perf_counter() - t0, 1), "notes": {b: len(v) for b, v in bn.items()}}
            for b, notes in bn.items():
                r[f"{b}_chord"] = chord_tone_share(notes, chords)
                r[f"{b}_cons"] = consonance(notes, mel)
            if mode == "changes":
                r["bass_strong"] = strong_beat_bass(bn["bass"], given, strong)
                for b, notes in bn.items():
                    r[f"{b}_given"] = chord_tone_share(notes, given)
            if mode in ("follow", "auto"):
                est = chord_log_intervals(band.chords, seconds)
                r["chords_planned"] = len(band.chords)
                if mode == "follow":
                    r["follower"] = mir_scores(chords, est, seconds)
                    r["template_causal"] = mir_scores(chords, template_baseline(heard_mel, seconds, True), seconds)
                    r["template_offline"] = mir_scores(chords, template_baseline(heard_mel, seconds, False), seconds)
                else:
                    r["melody_under_band_chords"] = chord_tone_share(mel, est)
            res[f"{how}/{mode}"] = r
    return res


def ratio(pairs) -> float:
    ok = sum(p[0] for p in pairs)
    tot = sum(p[1] for p in pairs)
    return ok / tot if tot else float("nan")


def summary(results: list[dict]) -> dict:
    out: dict = {"songs": [r["song"] for r in results],
                 "melody_chord_tones": ratio([r["melody_chord_tones"] for r in results])}
    for how in ("audio", "notes"):
        for mode in ("follow", "changes", "auto"):
            key = f"{how}/{mode}"
            if key not in results[0]:
                continue
            rs = [r[key] for r in results]
            s: dict = {}
            for b in ("bass", "mid", "high"):
                s[f"{b}_chord_tones"] = ratio([x[f"{b}_chord"] for x in rs])
                s[f"{b}_consonance"] = ratio([x[f"{b}_cons"] for x in rs])
            if mode == "changes":
                s["bass_strong_beats"] = ratio([x["bass_strong"] for x in rs])
                for b in ("bass", "mid", "high"):
                    s[f"{b}_chord_tones_given"] = ratio([x[f"{b}_given"] for x in rs])
            if mode == "follow":
                for name in ("follower", "template_causal", "template_offline"):
                    for m in ("root", "majmin"):
                        s[f"{name}_{m}"] = float(np.mean([x[name][m] for x in rs]))
            if mode == "auto":
                s["melody_under_band_chords"] = ratio([x["melody_under_band_chords"] for x in rs])
            s["band_seconds"] = float(np.sum([x["seconds"] for x in rs]))
            out[key] = s
    return out


def main(argv: list[str] | None = None) -> int:
    from improv.model.data import default_shared_data

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--songs", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--split", default="test", choices=("test", "val"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    ap.add_argument("--modes", default="follow,changes,auto", help="comma list of follow, changes, auto")
    ap.add_argument("--inputs", default="audio,notes", help="comma list of audio, notes")
    ap.add_argument("--follower", default="default", choices=("default", "templates"),
                    help="templates: the chord follower without the learned recogniser (models/chords.pt)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    shared = default_shared_data()
    if not (shared / "symbolic" / "pop909").exists():
        print(f"bench_harmony: {shared}/symbolic/pop909 is missing; nothing to measure")
        return 1
    t0 = time.perf_counter()
    results = []
    for folder in songs(args.split, args.songs, shared):
        r = run_song(folder, args.seconds, args.seed, tuple(args.modes.split(",")), tuple(args.inputs.split(",")),
                     args.follower)
        results.append(r)
        for key in [k for k in r if "/" in k]:
            f = r[key]
            print(f"{folder.name} {key}: bass/mid/high chord tones {ratio([f['bass_chord']]):.2f}/"
                  f"{ratio([f['mid_chord']]):.2f}/{ratio([f['high_chord']]):.2f}"
                  + (f", follower majmin {f['follower']['majmin']:.2f} (template causal "
                     f"{f['template_causal']['majmin']:.2f})" if "follower" in f else ""), flush=True)
    s = summary(results)
    s["wall_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(s, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": s, "songs": results}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
