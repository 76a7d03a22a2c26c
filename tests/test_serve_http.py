"""The band model's HTTP JSON API, served on loopback and asked by a real HTTP client."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import mido
import numpy as np
import pytest

from improv.model import load_model, read_midi
from improv.model.offline import cosine
from improv.serve.http import HttpService

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def service(model):
    s = HttpService("127.0.0.1", 0, model=model, max_queue=4)
    s.start()
    yield s
    s.stop()


def call(url: str, body=None, raw: bytes | None = None, headers: dict | None = None, timeout: float = 120):
    """(status, headers, JSON body) of a GET (no body) or a POST."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.load(e)


def predict(service, body, **kw):
    return call(service.url + "/predict", body, **kw)


def melody_midi(pitches=(60, 62, 64, 65, 67, 65, 64, 62, 60, 64, 67, 72), bpm=100.0, drums=False) -> bytes:
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    tr = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0)])
    for i, p in enumerate(pitches):
        tr.append(mido.Message("note_on", note=p, velocity=60 + i, time=0))
        tr.append(mido.Message("note_off", note=p, velocity=0, time=480))
    mid.tracks.append(tr)
    if drums:
        dr = mido.MidiTrack()
        for i in range(2 * len(pitches)):
            dr.append(mido.Message("note_on", channel=9, note=36 if i % 2 == 0 else 42, velocity=100, time=0))
            dr.append(mido.Message("note_off", channel=9, note=36 if i % 2 == 0 else 42, velocity=0, time=240))
        mid.tracks.append(dr)
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decoded(variation) -> list[tuple]:
    """The notes of a variation's base64 MIDI as (voice, pitch, onset s, duration s, velocity)."""
    mid = mido.MidiFile(file=io.BytesIO(base64.b64decode(variation["midi"])))
    tempo = next(m.tempo for m in mid.tracks[0] if m.type == "set_tempo")
    out = []
    for track in mid.tracks[1:]:
        name = next(m.name for m in track if m.type == "track_name")
        tick, on = 0, {}
        for m in track:
            tick += m.time
            if m.type == "note_on" and m.velocity > 0:
                on[m.note] = (tick, m.velocity)
            elif m.type in ("note_on", "note_off") and m.note in on:
                t0, v = on.pop(m.note)
                sec = mido.tick2second
                out.append((name, m.note, round(sec(t0, mid.ticks_per_beat, tempo), 3),
                            round(sec(tick - t0, mid.ticks_per_beat, tempo), 3), v))
    return sorted(out)


def as_rows(notes) -> list[tuple]:
    return sorted((n["voice"], n["pitch"], round(n["onset"], 3), round(n["duration"], 3), n["velocity"]) for n in notes)


def test_health(service, model):
    status, _, body = call(service.url + "/health")
    assert status == 200
    assert body["status"] == "ok" and body["layers"] == model.config.n_layers and body["max_queue"] == 4
    assert set(body["tasks"]) == {"generate", "continue", "embed"}


def test_generate_variations_differ_and_midi_matches_notes(service):
    status, _, r = predict(service, {"task": "generate", "length_seconds": 6, "bpm": 120, "num_variations": 2,
                                     "seed": 11})
    assert status == 200 and r["task"] == "generate" and r["seed"] == 11 and r["bpm"] == 120
    a, b = r["variations"]
    assert (a["seed"], b["seed"]) == (11, 12)
    assert len(a["notes"]) > 0 and as_rows(a["notes"]) != as_rows(b["notes"])
    for v in r["variations"]:
        assert decoded(v) == as_rows(v["notes"])  # the base64 MIDI and the notes form say the same
        assert max(n["onset"] + n["duration"] for n in v["notes"]) <= 6 + 1e-3
        assert {n["voice"] for n in v["notes"]} <= {"player", "bass", "mid", "high"}


def test_every_response_says_its_seed_and_the_seed_reproduces_it(service):
    status, _, r = predict(service, {"task": "generate", "length_seconds": 4, "voices": "bass,mid"})
    assert status == 200 and isinstance(r["seed"], int)
    again = predict(service, {"task": "generate", "length_seconds": 4, "voices": ["bass", "mid"],
                              "seed": r["seed"]})[2]
    assert again["variations"][0]["notes"] == r["variations"][0]["notes"]
    assert {n["voice"] for n in r["variations"][0]["notes"]} <= {"bass", "mid"}


def test_continue_base64_midi_round_trip(service):
    """A melody (and a drum track on channel 10) continued: the prime comes back as it went
    in, velocities included, the band plays after it, the drums stay drums."""
    status, _, r = predict(service, {"task": "continue", "midi": b64(melody_midi(drums=True)), "length_seconds": 6,
                                     "seed": 3, "num_variations": 2})
    assert status == 200 and r["seed"] == 3 and r["bpm"] == pytest.approx(100)
    for v in r["variations"]:
        notes = v["notes"]
        prime = [n for n in notes if n["voice"] == "player" and n["onset"] < 12 * 0.6 - 1e-6]
        assert [(n["pitch"], n["velocity"]) for n in prime] == [(p, 60 + i) for i, p in enumerate(
            (60, 62, 64, 65, 67, 65, 64, 62, 60, 64, 67, 72))]
        new = [n for n in notes if n["onset"] >= 12 * 0.6 - 1e-6 and n["voice"] != "drums"]
        assert v["new_notes"] == len(new) > 0
        assert {n["voice"] for n in new} & {"bass", "mid", "high"}, "the band plays in the continuation"
        drums = [n for n in notes if n["voice"] == "drums"]
        assert len(drums) == 24 and {n["pitch"] for n in drums} == {36, 42}
        assert not [n for n in notes if n["voice"] == "bass" and n["pitch"] in (36, 42) and n["onset"] < 7.2]
        assert decoded(v) == as_rows(notes)
        piece = read_midi(io.BytesIO(base64.b64decode(v["midi"])))  # what improv reads back from it
        assert len(piece.drums) == 24 and not np.any((piece.notes_beats[:, 0] == 0) & (piece.notes_beats[:, 2] < 12))
    assert r["variations"][0]["notes"] != r["variations"][1]["notes"]


def test_continue_notes_form_with_prime_seconds(service):
    notes = [{"onset": 0.5 * i, "duration": 0.5, "pitch": p, "velocity": 70, "voice": "player"}
             for i, p in enumerate([62, 64, 65, 67, 69, 67, 65, 64, 62, 61, 62, 69])]
    notes.append({"onset": 0.0, "duration": 2.0, "pitch": 38, "voice": "bass"})  # velocity defaults to 80
    status, _, r = predict(service, {"task": "continue", "notes": notes, "bpm": 120, "prime_seconds": 3.0,
                                     "length_seconds": 4, "seed": 5, "voices": "bass,mid,high"})
    assert status == 200 and r["prime_seconds"] == 3.0
    out = r["variations"][0]["notes"]
    prime = [n for n in out if n["onset"] < 3.0]
    want = [n for n in notes if n["onset"] < 3.0]
    assert as_rows(prime) == as_rows([{**n, "velocity": n.get("velocity", 80)} for n in want])
    later = [n for n in out if n["onset"] >= 3.0]
    assert later and {n["voice"] for n in later} <= {"bass", "mid", "high"}  # the player's line stops at the prime
    assert max(n["onset"] + n["duration"] for n in out) <= 3.0 + 4.0 + 1e-3


def test_embed_is_deterministic_and_tells_pieces_apart(service, model):
    tune = b64(melody_midi())
    a = predict(service, {"task": "embed", "midi": tune})[2]
    b = predict(service, {"task": "embed", "midi": tune, "seed": 99})[2]
    assert a["dim"] == model.config.d_model == len(a["embedding"]) and a["layer"] == model.config.n_layers
    assert a["embedding"] == b["embedding"]
    # the same piece as notes (seconds at its tempo) lands on the same frames: the same vector
    notes = [{"onset": 0.6 * i, "duration": 0.6, "pitch": p} for i, p in
             enumerate((60, 62, 64, 65, 67, 65, 64, 62, 60, 64, 67, 72))]
    c = predict(service, {"task": "embed", "notes": notes, "bpm": 100})[2]
    assert np.allclose(c["embedding"], a["embedding"], atol=1e-5)
    near = predict(service, {"task": "embed", "midi": b64(melody_midi(
        (60, 62, 64, 65, 67, 65, 64, 62, 60, 64, 67, 71)))})[2]  # one note changed
    far = predict(service, {"task": "embed", "midi": b64(melody_midi(
        (30, 90, 31, 89, 32, 88, 33, 87, 34, 86, 35, 85), bpm=180))})[2]
    assert cosine(np.array(a["embedding"]), np.array(near["embedding"])) > \
        cosine(np.array(a["embedding"]), np.array(far["embedding"]))
    first = predict(service, {"task": "embed", "midi": tune, "layer": 1})[2]
    assert first["layer"] == 1 and not np.allclose(first["embedding"], a["embedding"])


@pytest.mark.parametrize("body, field", [
    ({"task": "generate", "top_p": 1.5}, "top_p"),
    ({"task": "generate", "temperature": -1}, "temperature"),
    ({"task": "generate", "num_variations": 6}, "num_variations"),
    ({"task": "generate", "length_seconds": 0}, "length_seconds"),
    ({"task": "generate", "bpm": 1000}, "bpm"),
    ({"task": "generate", "seed": -3}, "seed"),
    ({"task": "generate", "voices": "bass,drums"}, "voices"),
    ({"task": "generate", "top-p": 0.9}, "top-p"),
    ({"task": "sing"}, "task"),
    ({}, "task"),
    ({"task": "continue"}, "midi"),
    ({"task": "continue", "midi": "not base64!"}, "midi"),
    ({"task": "continue", "midi": base64.b64encode(b"MThd but not midi").decode()}, "midi"),
    ({"task": "continue", "notes": [{"onset": 0, "duration": 1, "pitch": 130}]}, "notes[0].pitch"),
    ({"task": "continue", "notes": [{"onset": 0, "duration": 1, "pitch": 60, "voice": "tuba"}]}, "notes[0].voice"),
    ({"task": "generate", "notes": [{"onset": 0, "duration": 1, "pitch": 60}]}, "notes"),
    ({"task": "embed", "notes": [{"onset": 0, "duration": 1, "pitch": 60}], "layer": 99}, "layer"),
    ({"task": "embed", "notes": []}, "notes"),
])
def test_validation_errors_are_4xx_naming_the_field(service, body, field):
    status, _, r = predict(service, body)
    assert 400 <= status < 500, r
    assert r["field"] == field and r["error"].startswith(f"{field}: ")


def test_malformed_and_oversized_bodies(service):
    status, _, r = predict(service, None, raw=b'{"task": "generate",')
    assert status == 422 and r["field"] == "body"
    status, _, r = predict(service, None, raw=b'{"task": "generate", "top_p": NaN}')
    assert status == 422 and r["field"] in ("top_p", "body")
    # a body over the limit is refused from its Content-Length, before it is read
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    conn.putrequest("POST", "/predict")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(5 << 20))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and json.load(resp)["field"] == "body"
    conn.close()


def test_a_full_queue_answers_503_then_serves_again(model):
    with HttpService("127.0.0.1", 0, model=model, max_queue=1) as s:
        slow = {}
        t = threading.Thread(target=lambda: slow.update(r=predict(
            s, {"task": "generate", "length_seconds": 40, "num_variations": 2, "seed": 1})))
        t.start()
        deadline = time.monotonic() + 30
        while call(s.url + "/health")[2]["queue"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        status, headers, r = predict(s, {"task": "generate", "length_seconds": 1})
        health = call(s.url + "/health")[2]  # health still answers while the model is busy
        t.join()
        assert status == 503 and "busy" in r["error"] and headers.get("Retry-After") == "1"
        assert health["queue"] == 1 and health["refused"] == 1
        assert slow["r"][0] == 200
        assert predict(s, {"task": "generate", "length_seconds": 1})[0] == 200


def test_standalone_entry_serves_until_interrupted(service):
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    busy = subprocess.run([sys.executable, "-m", "improv.serve.http", "--port", str(service.port)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert busy.returncode == 2 and "Traceback" not in busy.stderr
    assert len(busy.stderr.strip().splitlines()) == 1 and str(service.port) in busy.stderr
    p = subprocess.Popen([sys.executable, "-m", "improv.serve.http", "--port", "0"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert "serving the band model on http://127.0.0.1:" in line, line + p.stderr.read()
        url = line.split(" on ")[1].split()[0]
        assert call(url + "/health")[0] == 200
        assert predict(type("S", (), {"url": url}), {"task": "generate", "length_seconds": 2, "seed": 1})[0] == 200
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0 and "1 requests answered" in out and "Traceback" not in err


def test_the_docs_similar_example_ranks_files(service, tmp_path):
    """docs/http-api.md's similar.py, run as written against the service: the reference
    first (1.000), then the tune with one note changed, then an unrelated one."""
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "http-api.md").read_text()
    script = re.findall(r"```python\n(.*?)```", doc.split("## `similar`", 1)[1], re.S)[0]
    (tmp_path / "similar.py").write_text(script)
    files = {"ref.mid": melody_midi(), "near.mid": melody_midi((60, 62, 64, 65, 67, 65, 64, 62, 60, 64, 67, 71)),
             "far.mid": melody_midi((30, 90, 31, 89, 32, 88, 33, 87, 34, 86, 35, 85), bpm=180)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    r = subprocess.run([sys.executable, "similar.py", "ref.mid", "far.mid", "near.mid", "ref.mid"], cwd=tmp_path,
                       env={**os.environ, "IMPROV_API": service.url}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ranked = [line.split() for line in r.stdout.strip().splitlines()]
    assert [p for _, p in ranked] == ["ref.mid", "near.mid", "far.mid"]
    assert ranked[0][0] == "1.000" and float(ranked[1][0]) > float(ranked[2][0])


def test_unknown_paths_and_methods_answer_json(service):
    status, _, r = call(service.url + "/nothing")
    assert status == 404 and "/predict" in r["error"] and r["field"] is None
    status, _, r = call(service.url + "/predict")  # a GET
    assert status == 405 and "POST /predict" in r["error"]
