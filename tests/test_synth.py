"""The built-in FluidSynth: the band's notes come out at the pitches (and times) sent.

The rendered audio is listened to (librosa's YIN), not just checked to exist.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from improv.events import NoteOff, NoteOn, PitchBend
from improv.output import CHANNELS
from improv.synth import (BandSynth, SynthError, Voice, find_soundfont, open_synth, render_events)

RATE = 44100
TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")


@pytest.fixture(scope="module")
def soundfont() -> Path:
    if not TIMGM.exists():
        pytest.skip(f"TimGM6mb SoundFont not found at {TIMGM} (apt install timgm6mb-soundfont)")
    return TIMGM


def heard_midi(x: np.ndarray, rate: int, start: float, end: float) -> float:
    """Median fractional MIDI pitch of the mono signal between two times (YIN)."""
    import librosa

    seg = x[int(start * rate):int(end * rate)]
    f0 = librosa.yin(seg, fmin=30.0, fmax=2000.0, sr=rate, frame_length=4096, hop_length=512)
    return float(np.median(librosa.hz_to_midi(f0)))


def first_sound(x: np.ndarray, rate: int, after: float, threshold_db: float = -50.0) -> float:
    """Time of the first sample after ``after`` louder than ``threshold_db`` dBFS."""
    i0 = int(after * rate)
    idx = np.nonzero(np.abs(x[i0:]) > 10 ** (threshold_db / 20.0))[0]
    return (i0 + idx[0]) / rate if len(idx) else float("inf")


# (source, key, start, end): one note at a time so each pitch can be measured alone
NOTES = [("bass", 40, 0.20, 1.00), ("bass", 45, 1.40, 2.20), ("mid", 60, 2.60, 3.40),
         ("mid", 67, 3.80, 4.60), ("high", 76, 5.00, 5.80), ("high", 81, 6.20, 7.00)]


def note_events(notes, cents: float = 0.0):
    evs = []
    for src, key, on, off in notes:
        evs += [NoteOn(on, key, 100, src, cents=cents), NoteOff(off, key, src)]
    return evs


def test_rendered_band_notes_have_the_pitches_sent(soundfont):
    audio = render_events(note_events(NOTES), soundfont, RATE).mean(axis=1)
    assert np.abs(audio).max() > 0.05, "the band should be clearly audible at gain 1.0"
    for src, key, on, off in NOTES:
        got = heard_midi(audio, RATE, on + 0.15, off - 0.05)
        print(f"{src:5s} {key}: heard {got:.3f}")
        assert abs(got - key) * 100 < 20, f"{src} key {key}: heard {got:.2f} ({100 * (got - key):+.0f} cents)"


@pytest.mark.parametrize("at", [0.1, 0.3333, 0.77777])
def test_rendered_notes_start_when_sent(soundfont, at):
    """Offline rendering applies each event at its own sample (FluidSynth works in 64-sample steps)."""
    audio = render_events([NoteOn(at, 45, 100, "bass"), NoteOff(at + 0.3, 45, "bass")], soundfont, RATE,
                          duration=at + 0.5).mean(axis=1)
    start = first_sound(audio, RATE, 0.0, threshold_db=-60.0)
    print(f"sent {at} s, sounds from {start:.5f} s")
    assert at <= start <= at + 0.003, f"note sent at {at} s sounded from {start:.4f} s"


def test_player_events_are_not_played_by_default(soundfont):
    audio = render_events([NoteOn(0.1, 60, 100), NoteOff(0.6, 60)], soundfont, RATE, duration=1.0)
    assert np.abs(audio).max() < 1e-4, "the player's own notes must not be doubled by the synth"


@pytest.mark.parametrize("bend_range", [2.0, 12.0])
def test_bends_follow_cents_with_the_bend_range(soundfont, bend_range):
    # key 69 bent +50 cents at the note-on, then to -70 cents while it sounds
    events = [NoteOn(0.1, 69, 100, "mid", cents=50.0), PitchBend(1.0, -70.0, "mid"), NoteOff(1.9, 69, "mid")]
    audio = render_events(events, soundfont, RATE, bend_range=bend_range,
                          voices={"mid": Voice(0, 100)}).mean(axis=1)
    up = heard_midi(audio, RATE, 0.3, 0.95)
    down = heard_midi(audio, RATE, 1.2, 1.85)
    print(f"range {bend_range}: +50c -> {100 * (up - 69):+.1f}c, -70c -> {100 * (down - 69):+.1f}c")
    assert abs(100 * (up - 69) - 50) < 15
    assert abs(100 * (down - 69) + 70) < 15


def test_voice_sets_program_and_volume(soundfont):
    with BandSynth(soundfont, RATE, voices={"bass": Voice(40, 80), "high": (73, 127)}) as synth:
        ch = CHANNELS["bass"]
        assert synth.synth.channel_info(ch)[2] == 40
        assert synth.synth.get_cc(ch, 7) == 80
        assert synth.synth.channel_info(CHANNELS["high"])[2] == 73
        synth.set_voice("bass", Voice(33, 64))
        assert synth.synth.channel_info(ch)[2] == 33 and synth.synth.get_cc(ch, 7) == 64

    def rms_db(volume: int) -> float:
        a = render_events([NoteOn(0.0, 60, 100, "mid"), NoteOff(0.8, 60, "mid")], soundfont, RATE,
                          voices={"mid": Voice(0, volume)})[: int(0.8 * RATE)]
        return 10 * np.log10(np.mean(a.astype(np.float64) ** 2))

    drop = rms_db(127) - rms_db(64)
    print(f"CC7 127 -> 64: {drop:.1f} dB quieter")
    # SoundFont 2 default CC7 curve: 40 log10(127/64) = 11.9 dB
    assert 9.0 < drop < 15.0


def test_bad_voice_values_are_config_errors():
    from improv.errors import ConfigError

    with pytest.raises(ConfigError, match="program 128"):
        Voice(128)
    with pytest.raises(ConfigError, match="volume -1"):
        Voice(0, -1)


def test_soundfont_errors_are_one_line(tmp_path):
    with pytest.raises(SynthError) as e:
        find_soundfont(tmp_path / "missing.sf2")
    assert "--soundfont" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(SynthError, match="no General MIDI SoundFont found.*--soundfont FILE"):
        find_soundfont(None, candidates=[str(tmp_path / "*.sf2"), str(tmp_path / "none.sf2")])
    fake = tmp_path / "fake.sf2"
    fake.write_bytes(b"RIFF\x04\x00\x00\x00junk")
    assert find_soundfont(None, candidates=[str(tmp_path / "*.sf2")]) == fake
    with pytest.raises(SynthError, match="cannot load it as a SoundFont") as e:
        BandSynth(fake, RATE)
    assert "\n" not in str(e.value)


def test_synth_modes_without_audio_out(soundfont, monkeypatch):
    """No JACK server: --synth fluidsynth says so in one line; auto falls back to MIDI only."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", f"improv-no-such-server-{os.getpid()}")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    with pytest.raises(SynthError) as e:
        open_synth("fluidsynth", soundfont, driver="jack")
    msg = str(e.value)
    print(msg)
    assert "\n" not in msg and "--synth none" in msg and "JACK" in msg
    synth, why = open_synth("auto", None, driver="jack")
    assert synth is None and why.startswith("MIDI only")
    assert open_synth("auto", None, midi_out="qsynth") == (None, "MIDI goes to --midi-out")
    assert open_synth("none") == (None, "--synth none")


# --------------------------------------------------------------- live, JACK


class JackAudioCapture:
    """An in-process JACK client recording what reaches its audio input."""

    def __init__(self, name: str = "synthcap"):
        import jack

        self.client = jack.Client(name, no_start_server=True)
        self.port = self.client.inports.register("in")
        self.blocks: list[np.ndarray] = []
        self.first_frame: int | None = None
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        if self.first_frame is None:
            self.first_frame = self.client.last_frame_time
        self.blocks.append(self.port.get_array().copy())

    def audio(self) -> np.ndarray:
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, dtype=np.float32)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


@pytest.mark.jack
def test_live_synth_plays_through_jack(jack_server, soundfont):
    rate = jack_server.rate
    synth = BandSynth(soundfont, rate)
    capture = None
    sent: list[tuple[str, int, int]] = []  # (source, key, JACK frame when sent)
    try:
        assert synth.start(driver="jack", client_name="improv-synth", autoconnect=False) == "jack"
        capture = JackAudioCapture()
        capture.client.connect("improv-synth:left", capture.port)
        time.sleep(0.2)
        for src, key in [("bass", 43), ("mid", 64), ("high", 79)]:
            # the analysis thread would call the synth; here another thread does
            sent.append((src, key, capture.client.frame_time))
            threading.Thread(target=synth, args=(NoteOn(0.0, key, 100, src),)).start()
            time.sleep(0.5)
            synth(NoteOff(0.0, key, src))
            time.sleep(0.3)
    finally:
        synth.close()
        if capture is not None:
            capture.close()
    audio = capture.audio()
    assert len(audio) > rate * 2
    for src, key, frame in sent:
        at = (frame - capture.first_frame) / rate
        start = first_sound(audio, rate, at, threshold_db=-50.0)
        got = heard_midi(audio, rate, start + 0.1, start + 0.45)
        print(f"JACK {src} {key}: heard {got:.3f}, sounding {1000 * (start - at):.1f} ms after the call")
        assert start < at + 0.3, f"{src} {key}: nothing heard on the JACK port"
        assert abs(got - key) * 100 < 20


@pytest.mark.jack
def test_listen_plays_the_band_through_fluidsynth_on_jack(jack_server, soundfont, tmp_path):
    """`improv listen --synth fluidsynth`: the synth joins JACK, wired to the speakers, for the session."""
    import jack
    import soundfile

    from improv.session import ListenOptions, run_listen
    from improv.testing.signals import ToneSpec, render

    wav = tmp_path / "in.wav"
    soundfile.write(wav, render([ToneSpec(0.2, 0.5, 60)], jack_server.rate, total=1.5), jack_server.rate)
    opts = ListenOptions(input=str(wav), midi=False, synth="fluidsynth", soundfont=str(soundfont))
    result: dict = {}
    thread = threading.Thread(target=lambda: result.setdefault("r", run_listen(opts)))
    thread.start()
    probe = jack.Client("probe", no_start_server=True)
    try:
        wired = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not wired:
            if any(p.name == "improv-synth:left" for p in probe.get_ports()):
                wired = [p.name for p in probe.get_all_connections("improv-synth:left")]
            time.sleep(0.05)
    finally:
        thread.join(20)
        after = [p.name for p in probe.get_ports() if p.name.startswith("improv-synth")]
        probe.close()
    assert wired == ["system:playback_1"]
    assert result["r"].synth == f"FluidSynth ({soundfont.name}) via jack"
    assert after == [], "the synth leaves JACK when the session ends"
