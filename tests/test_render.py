"""``improv render``: the mix has the player's audio and the band at the right times and
pitches; the piano roll has each note drawn where it belongs, in its band's colour."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import soundfile

from improv.audio import Block
from improv.cli import main
from improv.events import NoteOff, NoteOn
from improv.record import SessionRecorder
from improv.render import (COLOURS, COMMAND_COLOUR, MIX_FILE, PIANOROLL_FILE, load_session, pianoroll_figure,
                           render_session)
from improv.synth import Voice

TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
RATE = 48000
PLAYER_HZ = 440.0

# (source, key, on, off)
NOTES = [("player", 69, 0.20, 2.60), ("bass", 45, 0.50, 1.30), ("mid", 64, 1.00, 1.80),
         ("high", 81, 1.60, 2.40), ("bass", 40, 2.00, 2.80)]
COMMANDS = [(0.9, "bass", "density", 0.5), (2.2, "all", "stop", None)]


@pytest.fixture(scope="module")
def soundfont() -> Path:
    if not TIMGM.exists():
        pytest.skip(f"TimGM6mb SoundFont not found at {TIMGM} (apt install timgm6mb-soundfont)")
    return TIMGM


@pytest.fixture()
def session(tmp_path) -> Path:
    """A session as `improv listen --record` leaves it: a sine input, notes, commands."""
    rec = SessionRecorder(tmp_path, voices={"bass": Voice(33, 110), "mid": Voice(0, 100), "high": Voice(73, 100)})
    t = np.arange(int(3.0 * RATE)) / RATE
    audio = (0.2 * np.sin(2 * np.pi * PLAYER_HZ * t)).astype(np.float32)
    for i in range(0, len(audio), 256):
        rec.add_audio(Block(audio[i:i + 256], i, RATE))
    for src, key, on, off in NOTES:
        rec.add(NoteOn(on, key, 100, src))
        rec.add(NoteOff(off, key, src))
    for c in COMMANDS:
        rec.commands.add(*c)
    rec.close()
    return tmp_path


def heard_midi(x: np.ndarray, start: float, end: float) -> float:
    import librosa

    f0 = librosa.yin(x[int(start * RATE):int(end * RATE)], fmin=30.0, fmax=2000.0, sr=RATE, frame_length=4096)
    return float(np.median(librosa.hz_to_midi(f0)))


def test_mix_is_input_plus_band_at_the_recorded_times(session, soundfont):
    result = render_session(session, soundfont=soundfont, pianoroll=False)
    assert result.mix == session / MIX_FILE and result.pianoroll is None
    mix, rate = soundfile.read(result.mix, dtype="float32")
    assert rate == RATE and mix.shape[1] == 2
    assert abs(len(mix) / RATE - (2.8 + 1.5)) < 0.01, "session length: last note-off plus the release tail"
    inp, _ = soundfile.read(session / "input.wav", dtype="float32")
    # The player's audio is in the mix unchanged (no clipping here, so no scaling)...
    assert np.abs(mix).max() < 1.0
    band = mix[: len(inp)].mean(axis=1) - inp
    np.testing.assert_allclose(mix[:9000, 0], inp[:9000], atol=1e-4)  # before any band note
    # ... and what is left is the band: silent until the first note, then its pitches.
    quiet = np.abs(band[: int(0.49 * RATE)]).max()
    onset = np.nonzero(np.abs(band) > 1e-3)[0][0] / RATE
    print(f"band silent to {quiet:.1e} before its first note; starts at {onset:.4f} s")
    assert quiet < 1e-3
    assert 0.5 <= onset <= 0.505
    band_full = mix.mean(axis=1).copy()
    band_full[: len(inp)] -= inp
    assert abs(heard_midi(band_full, 0.65, 0.95) - 45) * 100 < 25  # bass alone
    assert abs(heard_midi(band_full, 2.45, 2.75) - 40) * 100 < 25  # the last bass note alone


def test_mix_never_clips(tmp_path, soundfont):
    rec = SessionRecorder(tmp_path)
    loud = np.full(RATE, 0.999, dtype=np.float32)
    rec.add_audio(Block(loud, 0, RATE))
    for key in (36, 40, 43):
        rec.add(NoteOn(0.1, key, 127, "bass"))
    rec.close()
    r = render_session(tmp_path, soundfont=soundfont, pianoroll=False)
    mix, _ = soundfile.read(r.mix, dtype="float32")
    assert np.abs(mix).max() <= 0.99
    assert np.abs(mix).max() > 0.9  # scaled to just under full scale, not squashed


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=float) / 255.0


def test_pianoroll_draws_each_note_in_its_colour(session):
    s = load_session(session)
    fig, ax = pianoroll_figure(s, width=12.0, height=6.0, pitch_range=(36, 88), time_range=(0.0, 3.0))
    png = session / PIANOROLL_FILE
    fig.savefig(str(png), dpi=100, facecolor="white")
    img = matplotlib.image.imread(str(png))[:, :, :3]
    h = img.shape[0]

    def pixel(t: float, pitch: float) -> np.ndarray:
        x, y = ax.transData.transform((t, pitch))
        return img[int(round(h - y)), int(round(x))]

    for src, key, on, off in NOTES:
        for t in np.linspace(on + 0.05, off - 0.05, 5):
            got = pixel(t, key)
            assert np.abs(got - _rgb(COLOURS[src])).max() < 0.05, f"{src} {key} at {t:.2f} s: {got}"
        # a semitone above and below is not this note's colour (0.8-semitone bars)
        for dy in (-1, 1):
            assert np.abs(pixel((on + off) / 2, key + dy) - _rgb(COLOURS[src])).max() > 0.2
    # nothing where nothing was played
    assert np.allclose(pixel(1.0, 52), 1.0, atol=0.02)
    assert np.allclose(pixel(0.1, 69), 1.0, atol=0.02)  # before the player's note
    # commands: dashed vertical lines at their times (a dash or a gap; look along the line)
    for t, *_ in COMMANDS:
        column = [pixel(t, p) for p in np.arange(38, 60, 0.1)]
        assert any(np.abs(c - _rgb(COMMAND_COLOUR)).max() < 0.15 for c in column), f"no command line at {t} s"
    # and the artists agree with the MIDI file
    drawn = sorted((p.get_gid(), round(p.get_x(), 2), round(p.get_y() + 0.4)) for p in ax.patches)
    assert drawn == sorted((src, round(on, 2), key) for src, key, on, _ in NOTES)


def test_render_command(session, soundfont, capsys):
    assert main(["render", str(session), "--soundfont", str(soundfont)]) == 0
    out = capsys.readouterr().out
    assert "mix: " in out and "piano roll: " in out and "1 player, 2 bass, 1 mid, 1 high" in out
    assert (session / MIX_FILE).stat().st_size > 0
    assert matplotlib.image.imread(str(session / PIANOROLL_FILE)).shape[0] > 100


def test_render_command_errors_are_one_line(tmp_path, capsys):
    for folder in (tmp_path / "nope", tmp_path):
        assert main(["render", str(folder)]) == 2
        err = capsys.readouterr().err
        print(err)
        assert err.count("\n") == 1 and err.startswith("improv: ") and str(folder) in err
