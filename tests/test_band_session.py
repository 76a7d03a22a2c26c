"""``improv listen --fast`` with band players: a rendered WAV in, the session recorded.

The same band run offline over the listener's events (``improv.band.offline``) gives
exactly the events of the session (one pipeline, two drivers).
"""

from __future__ import annotations

import json

import pytest
import soundfile

from improv.band import BandSettings, parse_command
from improv.band.generators import ModelGenerator
from improv.band.offline import hear_blocks, play
from improv.cli import main
from improv.display import SessionDisplay
from improv.events import NoteOff, NoteOn
from improv.model import load_model
from improv.record import read_midi_events
from improv.session import ListenOptions, run_listen
from improv.testing.signals import ToneSpec, render

RATE = 44100
BEAT = 0.5
PITCHES = [64, 67, 69, 67, 64, 62, 60, 62, 64, 64, 67, 72, 71, 69, 67, 64]


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    specs = [ToneSpec(0.5 + i * BEAT, 0.8 * BEAT, p) for i, p in enumerate(PITCHES)]
    path = tmp_path_factory.mktemp("band") / "melody.wav"
    soundfile.write(path, render(specs, RATE, total=9.0), RATE)
    return path


def _key(ev):
    return (type(ev).__name__, round(ev.time, 9), ev.pitch, ev.source)


def test_fast_session_records_the_band_and_matches_the_offline_replay(wav, tmp_path):
    import torch

    torch.set_num_threads(1)
    cmds = [parse_command("mid: busier", 3.0), parse_command("all: stop", 6.0), parse_command("bass: go", 7.0)]
    opts = ListenOptions(input=str(wav), fast=True, midi=False, synth="none", record=str(tmp_path),
                         bands=("bass", "mid"), band=BandSettings(tempo=120, seed=4), commands=cmds)
    view = SessionDisplay()
    result = run_listen(opts, view=view)
    assert view.tempo == 120 and view.beat and view.beat.endswith("/4")
    assert view.bands["bass"].active and view.bands["bass"].command == "accompany harmonic"
    assert view.bands["mid"].command == "stopped: accompany harmonic, busier x1"
    assert not view.bands["high"].active
    times = [e.time for e in result.events]
    assert times == sorted(times), "--fast emits the player's and the band's events in time order"
    band_ev = [e for e in result.events if e.source in ("bass", "mid")]
    assert sum(isinstance(e, NoteOn) for e in band_ev) >= 8
    # stop at 6.0: notes off at once (one block, 5.8 ms), nothing until bass goes again at 7.0
    assert not [e for e in band_ev if isinstance(e, NoteOn) and 6.0 <= e.time < 7.0]
    assert not [e for e in band_ev if e.source == "mid" and isinstance(e, NoteOn) and e.time >= 6.0]
    offs = [e for e in band_ev if isinstance(e, NoteOff) and 6.0 <= e.time <= 6.0 + 256 / RATE]
    assert offs, "the sounding notes ended at the stop"

    # recorded: the band's tracks in session.mid, the commands in commands.jsonl
    recorded = read_midi_events(result.recording / "session.mid")
    for name in ("bass", "mid"):
        ons = [e for e in recorded if e.source == name and isinstance(e, NoteOn)]
        assert len(ons) == sum(1 for e in band_ev if e.source == name and isinstance(e, NoteOn))
    lines = [json.loads(x) for x in (result.recording / "commands.jsonl").read_text().splitlines()]
    assert [(x["time"], x["target"], x["command"]) for x in lines] == [
        (3.0, "mid", "busier"), (6.0, "all", "stop"), (7.0, "bass", "go")]

    # the same band offline over the listener's events: the same notes at the same times
    from improv.band import Band

    heard = hear_blocks(str(wav))
    replay = play(Band(BandSettings(bands=("bass", "mid"), tempo=120, seed=4),
                       generator=ModelGenerator(load_model(), 4)), heard, cmds)
    assert [_key(e) for e in replay] == [_key(e) for e in band_ev]


def test_listen_cli_rejects_bad_band_options(wav, tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("1.0 bass: busier\n2.0 piano: stop\n")
    cases = [
        (["--bands", "bass,piano"], "unknown band 'piano'"),
        (["--bands", "bass", "--commands", str(bad)], "bad.txt:2: unknown band 'piano'"),
        (["--bands", "bass", "--range", "bass=E1-C2"], "at least an octave"),
        (["--bands", "bass", "--range", "bass=H1-C3"], "not a note"),
        (["--bands", "bass", "--program", "bass=200"], "0 to 127"),
        (["--bands", "bass", "--channel", "bass=1"], "not the player's"),
        (["--bands", "bass", "--tempo", "1000"], "--tempo 1000"),
        (["--bands", "bass", "--meter", "7/9"], "unknown meter"),
        (["--bands", "bass", "--swing", "90"], "--swing 90"),
        (["--bands", "bass", "--band-generator", "dice"], "unknown"),
        (["--bands", "bass", "--player-register", "kazoo"], "range 'kazoo'"),
    ]
    for extra, message in cases:
        rc = main(["listen", "-i", str(wav), "--fast", "--no-midi", "--synth", "none", "-q", *extra])
        err = capsys.readouterr().err.strip()
        assert rc == 2, (extra, err)
        assert message in err and len(err.splitlines()) == 1, (extra, err)


def test_listen_cli_plays_the_band(wav, tmp_path, capsys):
    script = tmp_path / "cmds.txt"
    script.write_text("2.0 high: make room\n4.0 panic\n")
    rc = main(["listen", "-i", str(wav), "--fast", "--no-midi", "--synth", "none", "--bands", "all",
               "--tempo", "120", "--seed", "1", "--commands", str(script), "--record", str(tmp_path / "rec")])
    out = capsys.readouterr().out
    assert rc == 0
    assert " bass   on " in out and " high   on " in out
    assert "cmd panic" in out and "cmd make room" in out
    folder = next((tmp_path / "rec").iterdir())
    recorded = read_midi_events(folder / "session.mid")
    assert {e.source for e in recorded} >= {"player", "bass", "mid", "high"}
