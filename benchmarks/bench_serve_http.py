"""The band model's HTTP API under a real client on loopback: latency, throughput, memory.

    python3 benchmarks/bench_serve_http.py [--runs 15] [--clients 4] [--seconds 60] [--json FILE]

The service runs as a user would start it, ``python3 -m improv.serve.http --port 0``, in a
process of its own (so its RSS is its own, read from /proc); the clients are threads here
with ``http.client``, one keep-alive connection each.

1. ``generate``, 20 s at 100 BPM, ``--runs`` times one after another (seeds 0..): wall
   time per request at the client (p50, p95) and the model's own time (``elapsed_ms``).
2. ``embed`` of a 1-minute MIDI file (the first minute of POP909 songs from
   ``../shared/data/symbolic``, melody, bridge and piano; a generated minute without them),
   ``--runs`` times.
3. Load: ``--clients`` clients for ``--seconds``, each sending one request after the other
   (generate 8 s, continue a real tune for 8 s, embed, in turn): requests per second,
   latency p50/p95 per task, failed requests (anything but 200), and the server's RSS
   sampled each second (its growth over the second half says whether it is flat).
4. Burst: twice ``--max-queue`` clients for ``--burst-seconds`` (generate 8 s; a client refused
   waits 0.2 s): the requests past the queue are refused at once with 503, none fails, the
   answered ones wait at most a queue's worth.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))
SYMBOLIC = ROOT.parent / "shared" / "data" / "symbolic"


def pct(xs, q) -> float:
    return float(np.percentile(np.asarray(xs, dtype=float), q)) if len(xs) else float("nan")


class Client:
    """One keep-alive connection; ``post`` returns (status, JSON, seconds)."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

    def post(self, body: dict) -> tuple[int, dict, float]:
        data = json.dumps(body).encode()
        t0 = time.perf_counter()
        self.conn.request("POST", "/predict", body=data, headers={"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        out = json.loads(resp.read())
        return resp.status, out, time.perf_counter() - t0

    def get(self, path: str) -> dict:
        self.conn.request("GET", path)
        return json.loads(self.conn.getresponse().read())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def minute_files(n: int) -> list[tuple[str, bytes]]:
    """The first 60 s of ``n`` POP909 songs as MIDI files (improv's own writer)."""
    from improv.model.encoding import read_midi, write_midi
    from improv.model.offline import clip_prompt

    out = []
    for song in sorted((SYMBOLIC / "pop909").glob("*/*.mid"))[:n]:
        piece = read_midi(song)
        notes, vel = clip_prompt(piece.notes_beats, 60.0 / piece.seconds_per_beat, piece.velocities)
        buf = io.BytesIO()
        write_midi(buf, notes, True, piece.seconds_per_beat, piece.beats_per_bar, velocity=vel)
        out.append((song.stem, buf.getvalue()))
    return out


def tune_file() -> bytes:
    """A real tune to continue: a Nottingham reel's MIDI file as it is, else a scale."""
    files = sorted((SYMBOLIC / "nottingham" / "MIDI").glob("reels*.mid"))
    if files:
        return files[0].read_bytes()
    import mido

    mid = mido.MidiFile(type=1)
    tr = mido.MidiTrack()
    for p in (62, 64, 66, 67, 69, 71, 73, 74):
        tr += [mido.Message("note_on", note=p, velocity=80, time=0), mido.Message("note_off", note=p, time=480)]
    mid.tracks.append(tr)
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def start_server(max_queue: int) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    p = subprocess.Popen([sys.executable, "-m", "improv.serve.http", "--port", "0", "--max-queue", str(max_queue)],
                         env=env, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if "serving" not in line:
        p.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return p, int(line.split(" on ")[1].split()[0].rsplit(":", 1)[1])


def run_clients(port: int, pid: int, bodies, clients: int, seconds: float, backoff: float = 0.2):
    """``clients`` threads sending ``bodies`` in turn for ``seconds`` (after a 503, each waits
    ``backoff`` s): [(task, status, latency, end time)] (status 0: the connection failed), and
    the server's RSS each second [(time, MB)]."""
    results: list[tuple[str, int, float, float]] = []
    lock = threading.Lock()
    t_start = time.perf_counter()
    t_end = t_start + seconds

    def client(k: int) -> None:
        cl = Client(port)
        i = k
        while time.perf_counter() < t_end:
            task, body = bodies[i % len(bodies)]
            i += 1
            try:
                status, _, wall = cl.post({**body, "seed": i})
            except (OSError, http.client.HTTPException):
                status, wall = 0, float("nan")
                cl = Client(port)
            with lock:
                results.append((task, status, wall, time.perf_counter() - t_start))
            if status == 503:
                time.sleep(backoff)

    rss = []
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        rss.append((time.perf_counter() - t_start, rss_mb(pid)))
        time.sleep(1.0)
    for t in threads:
        t.join()
    return results, rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--max-queue", type=int, default=8)
    ap.add_argument("--burst-seconds", type=float, default=15.0)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    report: dict = {"machine": f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start"}
    proc, port = start_server(args.max_queue)
    try:
        c = Client(port)
        c.post({"task": "generate", "length_seconds": 2, "seed": 0})  # warm-up
        # 1. generate 20 s
        walls, model_ms, notes = [], [], []
        for k in range(args.runs):
            status, r, wall = c.post({"task": "generate", "length_seconds": 20, "bpm": 100, "seed": k})
            assert status == 200, r
            walls.append(wall)
            model_ms.append(r["elapsed_ms"])
            notes.append(len(r["variations"][0]["notes"]))
        report["generate_20s"] = {"runs": args.runs, "p50_s": pct(walls, 50), "p95_s": pct(walls, 95),
                                  "max_s": max(walls), "model_p50_ms": pct(model_ms, 50),
                                  "notes_median": statistics.median(notes)}
        print(f"generate 20 s: p50 {pct(walls, 50):.2f} s, p95 {pct(walls, 95):.2f} s, max {max(walls):.2f} s "
              f"(model {pct(model_ms, 50):.0f} ms p50; {statistics.median(notes):.0f} notes)", flush=True)
        # 2. embed a 1-minute file
        files = minute_files(args.runs) if (SYMBOLIC / "pop909").is_dir() else []
        if not files:
            r = c.post({"task": "generate", "length_seconds": 60, "seed": 1})[1]
            files = [("generated", base64.b64decode(r["variations"][0]["midi"]))]
            print("(no ../shared/data/symbolic/pop909: a generated minute instead)")
        walls, model_ms = [], []
        for k in range(args.runs):
            name, data = files[k % len(files)]
            status, r, wall = c.post({"task": "embed", "midi": base64.b64encode(data).decode()})
            assert status == 200, r
            walls.append(wall)
            model_ms.append(r["elapsed_ms"])
        report["embed_1min"] = {"runs": args.runs, "files": len(files), "p50_s": pct(walls, 50),
                                "p95_s": pct(walls, 95), "max_s": max(walls), "model_p50_ms": pct(model_ms, 50)}
        print(f"embed a 1-minute file ({len(files)} POP909 minutes): p50 {pct(walls, 50) * 1000:.0f} ms, "
              f"p95 {pct(walls, 95) * 1000:.0f} ms (model {pct(model_ms, 50):.0f} ms p50)", flush=True)
        # 3. load
        tune = base64.b64encode(tune_file()).decode()
        minute = base64.b64encode(files[0][1]).decode()
        bodies = [("generate", {"task": "generate", "length_seconds": 8}),
                  ("continue", {"task": "continue", "midi": tune, "prime_seconds": 10, "length_seconds": 8}),
                  ("embed", {"task": "embed", "midi": minute})]
        results, rss = run_clients(port, proc.pid, bodies, args.clients, args.seconds)
        took = max(r[3] for r in results)
        ok = [r for r in results if r[1] == 200]
        failed = len(results) - len(ok)
        half = [m for t, m in rss if t >= args.seconds / 2]
        rss_first_half = [m for t, m in rss if t < args.seconds / 2]
        per_task = {task: {"n": len(ls), "p50_s": pct(ls, 50), "p95_s": pct(ls, 95)}
                    for task in ("generate", "continue", "embed")
                    for ls in [[r[2] for r in ok if r[0] == task]]}
        report["load"] = {"clients": args.clients, "seconds": took, "max_queue": args.max_queue,
                          "requests": len(results), "ok": len(ok), "failed": failed,
                          "requests_per_s": len(ok) / took, "p50_s": pct([r[2] for r in ok], 50),
                          "p95_s": pct([r[2] for r in ok], 95), "per_task": per_task,
                          "rss_mb_start": rss[0][1], "rss_mb_mid": half[0] if half else float("nan"),
                          "rss_mb_end": rss[-1][1], "rss_mb_max": max(m for _, m in rss),
                          "rss_mb_growth_second_half": (half[-1] - half[0]) if half else float("nan"),
                          "rss_mb_first_half_max": max(rss_first_half) if rss_first_half else float("nan")}
        L = report["load"]
        print(f"load: {args.clients} clients, {took:.0f} s: {len(ok)} requests answered, {failed} failed, "
              f"{L['requests_per_s']:.2f} requests/s, latency p50 {L['p50_s']:.2f} s / p95 {L['p95_s']:.2f} s", flush=True)
        for task, v in per_task.items():
            print(f"  {task:9s} n={v['n']:3d}  p50 {v['p50_s']:.2f} s  p95 {v['p95_s']:.2f} s")
        print(f"  server RSS: {L['rss_mb_start']:.0f} MB at the start, {L['rss_mb_mid']:.0f} MB at half time, "
              f"{L['rss_mb_end']:.0f} MB at the end (max {L['rss_mb_max']:.0f}; "
              f"{L['rss_mb_growth_second_half']:+.1f} MB over the second half)")
        # 4. more clients than the queue holds: the extra requests are refused at once (503), none fails
        burst = 2 * args.max_queue
        b_results, _ = run_clients(port, proc.pid, bodies[:1], burst, args.burst_seconds)
        codes = [r[1] for r in b_results]
        answered = [r[2] for r in b_results if r[1] == 200]
        refused = [r[2] for r in b_results if r[1] == 503]
        report["burst"] = {"clients": burst, "seconds": args.burst_seconds, "answered": len(answered),
                           "refused_503": len(refused), "failed": len(codes) - len(answered) - len(refused),
                           "answered_p95_s": pct(answered, 95), "refused_p50_ms": 1000 * pct(refused, 50)}
        B = report["burst"]
        print(f"burst: {burst} clients (queue {args.max_queue}) for {args.burst_seconds:.0f} s: {B['answered']} answered "
              f"(p95 {B['answered_p95_s']:.2f} s), {B['refused_503']} refused with 503 in {B['refused_p50_ms']:.1f} ms "
              f"(p50), {B['failed']} failed")
        report["health"] = Client(port).get("/health")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    report["machine"] += f", {os.getloadavg()[0]:.1f} at the end"
    print(report["machine"])
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
