#!/usr/bin/env python3
"""End to end on a real JACK server: a note's true onset in the input audio -> the band's
first reacting MIDI message leaving improv.

    PYTHONPATH=src python3 benchmarks/bench_e2e.py                  # vocadito + 2 instrument takes
    PYTHONPATH=src python3 benchmarks/bench_e2e.py take.wav --tempo 120 --json e2e.json

The whole pipeline runs as on stage (``improv listen --bands bass,mid,high --midi-api
jack``, no ``--fast``): a JACK server with the dummy driver (48 kHz, 256-frame periods),
a JACK client plays a recording with truth into PortAudio's input (the microphone),
improv listens, its three band players answer, and a JACK MIDI input stamps every
message leaving improv's port with the frame it arrived in. Times are JACK frames, so
the clock is the audio's own.

What "reacting" means: the band plans one frame at a time (a sixteenth, or 125 ms free),
each a little ahead of when it sounds (``lookahead`` + ``handoff``; when it hears a note
it plans again what it has not handed on yet, ``BandSettings.react``). A band message can
answer a player's note only if the frame it belongs to was planned after the band took
that note in. The band records, for each event it plans, how many player onsets it had
heard (``Band.trace``); each message captured on JACK is matched to its planned event,
and a note's reaction is the first band message after its true onset that was planned
with it heard. Also reported:

* ``echo``: the player's own note-on on MIDI channel 1 (improv's hearing, on the wire);
* ``decision``: when the listener decided the note (NoteOn emitted) - true onset;
* ``first note-on``: the first reacting band note-on (not a note-off).

Notes the listener missed (no decided onset within 50 ms of the truth) have no reaction;
their count is given. The machine's load average is part of the result.
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

from improv.testing.jack import JackMidiCapture, start_jack, wire_improv  # noqa: E402

DATA = Path(os.environ.get("IMPROV_SHARED_DATA", HERE.parent.parent / "shared" / "data"))
SHORT_TAKES = Path.home() / ".cache" / "improv" / "compare-takes"
CHANNEL_SOURCE = {1: "bass", 2: "mid", 3: "high"}
ONSET_S = 0.050    # a decided note and the true onset it stands for (the F1 onset tolerance)


def default_files(log) -> list[Path]:
    """vocadito_1 (33 s of singing) and two short instrument takes (compare.py's set)."""
    takes = (sorted(SHORT_TAKES.glob("seed*/*.wav"))
             or sorted((Path.home() / ".cache" / "improv" / "instruments").glob("*.wav")))
    if not takes:
        log("no instrument takes (run benchmarks/render_instruments.py or compare.py first): skipped")
    voc = DATA / "vocadito" / "vocadito_1.wav"
    if not voc.exists():
        log(f"no vocadito at {voc}: skipped")
    return pick([voc, *takes] if voc.exists() else takes)


def pick(paths: list[Path]) -> list[Path]:
    """From a benchmark's recordings: the first vocadito take and two instrument takes
    (a sax and a violin where there are: a fast and a slow attack), about a minute."""
    paths = [Path(p) for p in paths]
    voc = [p for p in paths if p.stem.startswith("vocadito")][:1]
    inst = [p for p in paths if p.suffix == ".wav" and p.with_suffix(".gt.mid").exists()]
    chosen = [next((p for p in inst if p.stem.startswith(k)), None) for k in ("sax", "violin")]
    chosen = [p for p in chosen if p is not None] or inst[:2]
    return voc + chosen


def load_audio(path: Path, rate: int) -> np.ndarray:
    import soundfile
    import soxr

    audio, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if sr != rate:
        audio = soxr.resample(audio, sr, rate).astype(np.float32)
    return audio


def band_messages(captured: list[tuple[int, bytes]]) -> list[tuple[int, str, int, bool]]:
    """(frame, band, pitch, note on?) of the band's note messages."""
    out = []
    for frame, data in captured:
        if len(data) == 3 and data[0] & 0xF0 in (0x80, 0x90) and data[0] & 0x0F in CHANNEL_SOURCE:
            out.append((frame, CHANNEL_SOURCE[data[0] & 0x0F], data[1], data[0] & 0xF0 == 0x90 and data[2] > 0))
    return out


def audio_offset(played: np.ndarray, recorded: np.ndarray, rate: int) -> float:
    """Session seconds of the played audio's first sample: where it lies in what improv
    recorded (``input.wav``), by cross-correlation of the first 8 s."""
    from scipy.signal import correlate

    probe = played[: 8 * rate]
    lags = correlate(recorded, probe, mode="valid", method="fft")
    return float(np.argmax(lags)) / rate


def align(captured: list[tuple[int, bytes]], sent: list[tuple[float, bytes]],
          reach: int = 32) -> tuple[list[tuple[int, bytes, int]], int, int]:
    """Pair each captured message with the one improv's port sent (same bytes, in order).

    Returns (frame, bytes, index in ``sent``) of each pair, the messages sent but never captured after
    the first pair (lost on the way: seen one in ~3,000 on the dummy server under load), and
    those captured but not logged (the all-notes-off sent when the port closes)."""
    pairs, lost, unlogged, i = [], 0, 0, 0
    for frame, data in captured:
        j = i
        while j < len(sent) and j - i <= reach and sent[j][1] != data:
            j += 1
        if j < len(sent) and sent[j][1] == data:
            if pairs:  # (before the first pair: sent before the capture was connected)
                lost += j - i
            pairs.append((frame, data, j))
            i = j + 1
        else:
            unlogged += 1
    return pairs, lost, unlogged


def analyse(captured, sent, trace, player_ons, truth_onsets, frame_of, audio_start: float,
            rate: int) -> dict:
    """Per true note: decision, echo, first reacting band message and note-on (ms).

    ``captured``: (JACK frame, bytes) of what reached the capture port; ``sent``: (session
    seconds, bytes) of what improv's port sent, in the same order (the last of them are
    what was captured); ``trace``: the band's planned events with the onsets it had heard.
    ``audio_start``: session seconds of the take's first sample (truth in session time, to
    match the decided notes); ``frame_of(seconds)``: the JACK frame a sample of the take
    was played in (truth in JACK time)."""
    import mir_eval

    pairs, lost, unlogged = align(captured, sent)
    if not pairs:
        return {"error": f"improv sent {len(sent)} messages, {len(captured)} were captured, none in order"}
    planned: dict[tuple[str, int, bool], list[tuple[float, int]]] = {}
    for e in trace:
        t, src, pitch, on, heard = e.time, e.band, e.pitch, e.note_on, e.heard
        planned.setdefault((src, pitch, on), []).append((t, heard))
    msgs = []   # (frame, note on?, onsets heard when planned)
    late = []   # ms each band message left after its planned time (the scheduler's accuracy)
    unmatched = 0
    for frame, data, j in pairs:
        when = sent[j][0]
        if not (len(data) == 3 and data[0] & 0xF0 in (0x80, 0x90) and data[0] & 0x0F in CHANNEL_SOURCE):
            continue
        key = (CHANNEL_SOURCE[data[0] & 0x0F], data[1], data[0] & 0xF0 == 0x90 and data[2] > 0)
        # its planned event: the latest of its kind due at or before it was sent
        due = [(t, heard) for t, heard in planned.get(key, ()) if t <= when + 0.001]
        if not due:
            unmatched += 1
            continue
        t, heard = max(due)
        msgs.append((frame, key[2], heard))
        late.append(1000 * (when - t))
    # improv's echo of the player's notes (channel 1), in the order sent; None: lost on the way
    arrived = {j: frame for frame, _, j in pairs}
    echo = [arrived.get(j) for j, (_, d) in enumerate(sent) if len(d) == 3 and d[0] == 0x90 and d[2] > 0]
    onsets = np.asarray(truth_onsets, dtype=float)
    decided = np.asarray([ev.onset if ev.onset is not None else ev.time for ev in player_ons], dtype=float)
    pairs = mir_eval.util.match_events(audio_start + onsets, decided, ONSET_S) if len(decided) and len(onsets) else []
    rows = []
    for j, i in sorted(pairs):
        true_frame = frame_of(float(onsets[j]))
        first = next((f for f, _, heard in msgs if heard > i and f >= true_frame), None)
        first_on = next((f for f, on, heard in msgs if on and heard > i and f >= true_frame), None)
        rows.append({
            "onset_s": round(float(onsets[j]), 3),
            "decision_ms": 1000 * (player_ons[i].time - audio_start - onsets[j]),
            "echo_ms": 1000 * (echo[i] - true_frame) / rate if i < len(echo) and echo[i] is not None else None,
            "first_ms": None if first is None else 1000 * (first - true_frame) / rate,
            "first_on_ms": None if first_on is None else 1000 * (first_on - true_frame) / rate,
        })
    return {"truth_notes": int(len(onsets)), "decided_notes": len(player_ons), "matched": len(rows),
            "band_messages": len(msgs) + unmatched, "unmatched_messages": unmatched, "echo_messages": len(echo),
            "lost_messages": lost, "unlogged_messages": unlogged,
            "band_late_ms": _stats(late), "late": late, "rows": rows}


def play_one(path: Path, truth_onsets: np.ndarray, rate: int, period: int, bands: tuple[str, ...],
             tempo: float | None, seed: int, folder: Path, band_options: dict | None = None) -> dict:
    import torch

    from improv.band import BandSettings
    from improv.events import PLAYER, NoteOn
    from improv.session import ListenOptions, run_listen

    torch.set_num_threads(1)
    audio = load_audio(path, rate)
    capture = JackMidiCapture("e2e-capture")
    stop = threading.Event()
    box: list = []

    sent: list[tuple[float, bytes]] = []
    lock = threading.Lock()

    def on_band(live) -> None:
        """Before any note: the band traces its plans; improv's port logs what it sends, in order."""
        live.band.trace = []
        port = live.output.port
        send = port.send

        def logged(msg) -> None:
            with lock:
                sent.append((live.clock.now(), bytes(msg.bytes())))
                send(msg)

        port.send = logged
        box.append(live)

    band = BandSettings(tempo=tempo, seed=seed, **(band_options or {}))
    opts = ListenOptions(device="system", samplerate=rate, blocksize=period, midi_api="jack", synth="none",
                         echo=True, bands=bands, band=band, record=str(folder))
    result: dict = {}
    error: list[BaseException] = []

    def session() -> None:
        try:
            result["r"] = run_listen(opts, stop=stop, on_band=on_band)
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            error.append(e)

    thread = threading.Thread(target=session, name="e2e-session")
    thread.start()
    load = []
    try:
        player = wire_improv(capture, audio, "e2e-player", ready=lambda: bool(box) or bool(error))
        if error:
            raise error[0]
        cpu0, wall0 = time.process_time(), time.monotonic()
        player.start()
        duration = len(audio) / rate
        until = time.monotonic() + duration + 10.0
        while not player.done.wait(1.0) and time.monotonic() < until:
            load.append(os.getloadavg()[0])
        cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(20)
    if error:
        raise error[0]
    if not player.done.is_set():
        raise RuntimeError(f"{path.name}: JACK never played the whole take")
    live = box[0]
    r = result["r"]
    player_ons = [ev for ev in r.events if ev.source == PLAYER and isinstance(ev, NoteOn)]
    import soundfile

    recorded, _ = soundfile.read(str(r.recording / "input.wav"), dtype="float32")
    out = analyse(capture.snapshot(), sent, live.band.trace, player_ons, truth_onsets, player.frame_of,
                  audio_offset(audio, recorded, rate), rate)
    modes = [e for e in live.band.log if e.event == "time map"]
    out.update(file=path.name, seconds=round(len(audio) / rate, 1),
               load=round(float(np.mean(load)), 2) if load else None,
               time_maps=[("metered %.0f BPM" % e.bpm) if e.metered else "free" for e in modes],
               band_step_ms_p50=round(1000 * float(np.median(live.step_seconds)), 2) if live.step_seconds else None,
               midi_port=r.midi_port, overflows=r.overflows, cpu_share=round(cpu, 3))
    player.close()
    capture.close()
    return out


def _stats(values: list[float]) -> dict:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if not len(v):
        return {"n": 0}
    return {"n": int(len(v)), "p50_ms": round(float(np.percentile(v, 50)), 1),
            "p95_ms": round(float(np.percentile(v, 95)), 1), "max_ms": round(float(v.max()), 1)}


def summarise(per_file: list[dict]) -> dict:
    rows = [row for f in per_file for row in f.get("rows", [])]
    first = _stats([r["first_ms"] for r in rows])
    return {
        "n": first["n"], "p50_ms": first.get("p50_ms"), "p95_ms": first.get("p95_ms"),
        "first_message": first,
        "first_note_on": _stats([r["first_on_ms"] for r in rows]),
        "echo": _stats([r["echo_ms"] for r in rows]),
        "decision": _stats([r["decision_ms"] for r in rows]),
        # from the listener's decision to the band's answer on the wire: the band's share
        "band_after_decision": _stats([r["first_ms"] - r["decision_ms"] for r in rows if r["first_ms"] is not None]),
        "truth_notes": sum(f.get("truth_notes", 0) for f in per_file),
        "matched_notes": len(rows),
        "no_reaction": sum(1 for r in rows if r["first_ms"] is None),
        "band_late_ms": _stats([x for f in per_file for x in f.get("late", [])]),
        "input_overflows": sum(f.get("overflows") or 0 for f in per_file),
        "lost_messages": sum(f.get("lost_messages") or 0 for f in per_file),
        # CPU of the whole process (improv, and this benchmark's two JACK clients) per second
        # while the take played: listening + three bands, live
        "cpu_share_of_a_core": [f.get("cpu_share") for f in per_file],
        "per_note_ms": {key: [round(r[key], 1) for r in rows if r[key] is not None]
                        for key in ("echo_ms", "first_ms", "first_on_ms")},
    }


def run(log=print, files: list[Path] | None = None, bands: tuple[str, ...] = ("bass", "mid", "high"),
        tempo: float | None = None, seed: int = 1, rate: int = 48000, period: int = 256,
        band_options: dict | None = None) -> dict:
    """Play ``files`` (default: :func:`default_files`) through the whole pipeline on a JACK
    server of its own; returns {n, p50_ms, p95_ms (first reacting band message), ..., files}."""
    from improv.truth import find_truth

    files = [Path(f) for f in files] if files else default_files(log)
    jobs = []
    for f in files:
        truth = find_truth(f)
        if truth is None:
            log(f"{f}: no truth beside it; skipped")
            continue
        jobs.append((f, truth.intervals[:, 0]))
    if not jobs:
        return {"status": "skipped", "reason": "no recordings with truth"}
    server = start_jack(f"improv-e2e-{os.getpid()}")
    import sounddevice as sd

    sd._terminate()  # PortAudio sees JACK only if it is there when PortAudio starts
    sd._initialize()
    per_file = []
    tmp = tempfile.mkdtemp(prefix="improv-e2e-")
    try:
        for path, onsets in jobs:
            log(f"end to end: {path.name} ({len(onsets)} notes) in real time on JACK ...")
            res = play_one(path, onsets, rate, period, bands, tempo, seed, Path(tmp), band_options)
            s = summarise([res])
            log(f"  {path.name}: first band reaction p50 {s['p50_ms']} ms p95 {s['p95_ms']} ms over {s['n']} notes; "
                f"echo p50 {s['echo'].get('p50_ms')} ms; time maps {res['time_maps'][:3]}; load {res['load']}")
            per_file.append(res)
    finally:
        sd._terminate()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    summary = summarise(per_file)
    loads = [f["load"] for f in per_file if f.get("load") is not None]
    return {**summary, "bands": list(bands), "tempo": tempo, "jack": {"rate": rate, "period": period},
            "load": round(float(np.mean(loads)), 2) if loads else None,
            "files": [{k: v for k, v in f.items() if k not in ("rows", "late")} | {"summary": summarise([f])}
                      for f in per_file]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path, help="recordings with truth beside them (default: see above)")
    ap.add_argument("--bands", default="bass,mid,high")
    ap.add_argument("--tempo", type=float, help="play metered at this tempo (default: follow the player)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lookahead", type=float, help="seconds each band frame is planned before its handoff")
    ap.add_argument("--no-react", action="store_true",
                    help="the band does not replan what it has not handed on when it hears a note")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    extra = {"lookahead": args.lookahead} if args.lookahead is not None else {}
    if args.no_react:
        extra["react"] = False
    res = run(files=args.files or None, bands=tuple(args.bands.split(",")), tempo=args.tempo, seed=args.seed,
              log=lambda s: print(s, file=sys.stderr, flush=True), band_options=extra)
    text = json.dumps(res, indent=1)
    if args.json:
        args.json.write_text(text)
    print(json.dumps({k: v for k, v in res.items() if k != "files"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
