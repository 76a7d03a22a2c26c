"""``improv jam``: the band plays by itself from the first beat — no player, no input audio —
on its own changes, and everything of a session works (recording, commands, the drummer)."""

from __future__ import annotations

import pytest

from improv.cli import main
from improv.events import NoteOn
from improv.harmony.record import read_chords
from improv.record import read_midi_events

from test_cli import assert_one_line_error, run_cli

BEAT = 60.0 / 110.0  # jam's default tempo


def test_the_band_jams_alone_on_its_own_changes(tmp_path, capsys):
    code, out, err = run_cli(capsys, "jam", "--fast", "--seconds", "16", "--no-midi", "--synth", "none",
                             "--seed", "4", "--record", str(tmp_path))
    assert code == 0, err
    folder = next(tmp_path.iterdir())
    assert not (folder / "input.wav").exists(), "no input: no input.wav of silence"
    assert "silent" not in err, "no warning about a silent input: there is none"
    ons = [e for e in read_midi_events(folder / "session.mid") if isinstance(e, NoteOn)]
    assert not [e for e in ons if e.source == "player"]
    for band in ("bass", "mid", "high", "drums"):
        assert [e for e in ons if e.source == band], f"{band} never played"
    first = min(e.time for e in ons if e.source == "bass")
    assert first < 0.25 + 4 * BEAT, f"the band waited {first:.2f} s: it should start on its first bar"
    chords = read_chords(folder)
    assert len(chords) >= 4 and all(c["source"] == "auto" for c in chords), chords
    bars = [round((c["time"] - 0.25) / (4 * BEAT), 3) for c in chords[1:]]
    assert all(abs(b - round(b)) < 1e-3 for b in bars), f"chords change on bar lines: {bars}"


def test_a_command_script_steers_the_jam(tmp_path, capsys):
    script = tmp_path / "c.txt"
    script.write_text("6.0 all: stop\n")
    code, out, err = run_cli(capsys, "jam", "--fast", "--seconds", "12", "--no-midi", "--synth", "none",
                             "--seed", "4", "--commands", str(script), "--record", str(tmp_path / "rec"))
    assert code == 0, err
    folder = next((tmp_path / "rec").iterdir())
    ons = [e for e in read_midi_events(folder / "session.mid") if isinstance(e, NoteOn)]
    assert [e for e in ons if e.time < 6.0], "the band played before the stop"
    assert not [e for e in ons if e.time > 6.1], "the band played after all: stop"


@pytest.mark.parametrize("argv, words", [
    (["jam", "--fast"], ["--seconds"]),
    (["jam", "--fast", "--seconds", "5", "--listen"], ["--listen"]),
    (["jam", "--bands", "none", "--fast", "--seconds", "5"], ["--bands"]),
    (["jam", "--free", "--fast", "--seconds", "5"], ["--free"]),
    (["jam", "--seconds", "nan", "--fast"], ["--seconds"]),
])
def test_bad_jam_options_are_one_line(capsys, argv, words):
    code, out, err = run_cli(capsys, *argv, "--no-midi", "--synth", "none")
    assert code == 2
    assert_one_line_error(code, err, *words)


def test_jam_help_is_listed(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "jam" in capsys.readouterr().out
