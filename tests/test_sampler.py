"""The live sampler: the bank on synthetic notes, pitch shifts measured with the project's
YIN, save/reload, bad input, and the sampler voice on a real JACK server (its output
captured by another client: each note at its time and pitch)."""

from __future__ import annotations

import json
import time

import mido
import numpy as np
import pytest
import soxr

from improv.audio import Block
from improv.errors import ConfigError
from improv.events import NoteOff, NoteOn, PitchBend
from improv.listen.trackers import ANALYSIS_RATE, hz_to_midi, make_tracker
from improv.sampler.bank import MAX_SECONDS, NoteCatcher, SampleBank, load_bank
from improv.sampler.voice import Mixer, PreparedCache, prepare, warm_vocoder

SR = 48000


def tone(pitch: float, seconds: float, rate: int = SR, level: float = 0.3, phase: float = 0.7) -> np.ndarray:
    """A reed-like tone (three harmonics) at fractional MIDI ``pitch``, starting mid-cycle."""
    f = 440.0 * 2 ** ((pitch - 69) / 12)
    t = np.arange(int(seconds * rate)) / rate
    x = np.sin(2 * np.pi * f * t + phase) + 0.5 * np.sin(2 * np.pi * 2 * f * t + 0.3) \
        + 0.25 * np.sin(2 * np.pi * 3 * f * t + 1.1)
    return (level / 1.2 * x).astype(np.float32)


def yin_pitch(x: np.ndarray, rate: int = SR) -> float:
    """The median pitch (fractional MIDI) the project's YIN hears in ``x`` (confident frames)."""
    y = soxr.resample(x, rate, ANALYSIS_RATE).astype(np.float32)
    tracker = make_tracker("yin")
    n = len(y) // tracker.hop * tracker.hop
    f0, conf = tracker.process(y[:n])
    good = (conf > 0.5) & (f0 > 0)
    assert good.sum() > 10, "YIN heard no pitch"
    return float(np.median(hz_to_midi(f0[good])))


def play_notes(catcher: NoteCatcher, notes: list[tuple[float, float, float, float]], rate: int = SR,
               block: int = 256) -> np.ndarray:
    """Feed the catcher audio and the player's events for (onset, end, pitch, cents) notes,
    block by block as the session does (events at the end of the block they fall in)."""
    total = max(e for _, e, _, _ in notes) + 0.3
    x = np.zeros(int(total * rate), np.float32)
    for on, end, pitch, cents in notes:
        seg = tone(pitch + cents / 100, end - on, rate)
        x[int(on * rate):int(on * rate) + len(seg)] += seg
    pending = []
    for on, end, pitch, cents in notes:
        pending.append((on + 0.03, NoteOn(on + 0.03, int(pitch), 90, onset=on, cents=cents)))
        pending.append((end + 0.02, NoteOff(end + 0.02, int(pitch), end=end)))
    pending.sort(key=lambda p: p[0])
    for i in range(0, len(x), block):
        b = Block(x[i:i + block], i, rate)
        catcher.add_audio(b)
        while pending and pending[0][0] <= b.end / rate:
            catcher(pending.pop(0)[1])
    return x


# ------------------------------------------------------------------ the bank


def test_notes_are_cut_at_zero_crossings_with_their_pitch_and_length():
    bank = SampleBank(SR, 30)
    catcher = NoteCatcher(bank, SR)
    play_notes(catcher, [(0.2, 0.8, 60, 12.0), (1.0, 1.5, 67, -8.0)])
    assert len(bank) == 2
    for note, (length, pitch) in zip(bank.notes, [(0.6, 60.12), (0.5, 66.92)]):
        x = note.audio
        assert abs(note.pitch - pitch) < 1e-6
        assert abs(note.seconds - length) < 0.012          # cut within 6 ms at each end
        assert np.signbit(x[0]) != np.signbit(x[-1]) or abs(x[0]) < 0.02
        # each end is a zero crossing: the sample there is small against the note's peak
        peak = np.abs(x).max()
        assert abs(x[0]) < 0.05 * peak and abs(x[-1]) < 0.05 * peak
        assert abs(yin_pitch(x) - pitch) * 100 < 5.0      # what was kept sounds at the pitch stored


def test_short_quiet_and_sliding_notes_are_not_kept_and_a_retake_replaces_its_guess():
    bank = SampleBank(SR, 30)
    catcher = NoteCatcher(bank, SR)
    play_notes(catcher, [(0.2, 0.25, 60, 0.0)])           # 50 ms: too short
    assert len(bank) == 0 and catcher.rejected["short"] == 1
    catcher(NoteOn(1.0, 62, 90, onset=0.9))
    catcher(PitchBend(1.1, 80.0))                          # a slide of 80 cents
    catcher(NoteOff(1.5, 62, end=1.4))
    assert len(bank) == 0 and catcher.rejected["bent"] == 1
    # a wrong first guess, then its retake with the same onset: one note, the retake's pitch
    bank2 = SampleBank(SR, 30)
    c2 = NoteCatcher(bank2, SR)
    x = tone(64, 1.0)
    for i in range(0, int(1.2 * SR), 256):
        c2.add_audio(Block(np.pad(x, (0, SR))[i:i + 256], i, SR))
    c2(NoteOn(0.35, 65, 90, onset=0.1))
    c2(NoteOff(0.4, 65, end=0.38))
    c2(NoteOn(0.4, 64, 90, onset=0.1, retake=True))
    c2(NoteOff(1.0, 64, end=0.9))
    assert [round(n.pitch) for n in bank2.notes] == [64]


def test_the_bank_stays_under_its_bound_and_keeps_its_spread():
    bank = SampleBank(SR, 5.0)
    pitches = [55 + (i * 7) % 19 for i in range(200)]       # 200 notes of 0.4 s: 80 s into a 5 s bank
    rng = np.random.default_rng(1)
    for i, p in enumerate(pitches):
        bank.add(tone(p, 0.4 + 0.1 * rng.random()), p, onset=float(i))
        assert bank.nbytes <= bank.max_bytes
    assert bank.evicted > 150
    assert len({round(n.pitch) for n in bank.notes}) >= 10  # the oldest of the most crowded pitch goes first
    assert max(n.seconds for n in bank.notes) <= MAX_SECONDS


def test_nearest_pitch_is_chosen_and_reach_is_kept():
    bank = SampleBank(SR, 30)
    for p in (48.0, 55.1, 60.0, 67.0):
        bank.add(tone(p, 0.3), p)
    assert bank.nearest(58.0).pitch == 60.0
    assert bank.nearest(57.0).pitch == 55.1
    assert bank.nearest(70.0).pitch == 67.0
    assert bank.nearest(100.0, reach=24) is None
    bank.freeze()
    assert bank.add(tone(72, 0.3), 72) is None and len(bank) == 4
    bank.freeze(False)
    bank.forget()
    assert len(bank) == 0 and bank.nearest(60) is None


@pytest.mark.parametrize("shift", [0.5, -1.7, 2.0, 3.0, -5.0, 7.0, -12.0])
def test_a_shifted_note_sounds_within_ten_cents_of_the_pitch_asked(shift):
    warm_vocoder(SR)
    bank = SampleBank(SR, 30)
    note = bank.add(tone(57.13, 0.8), 57.13)               # a note 13 cents sharp of A3
    target = 57.0 + shift
    sound = prepare(note, target, 100)
    mixer = Mixer(SR)
    mixer.start(0, sound, "k")
    out = mixer.render(SR)                                 # 1 s: longer than the note, so it loops
    err = (yin_pitch(out[int(0.02 * SR):]) - target) * 100
    assert abs(err) < 10.0, f"{shift:+} semitones: {err:+.1f} cents"
    assert np.sqrt(np.mean(out[int(0.85 * SR):] ** 2)) > 0.05  # still sounding after the note's own length


def test_a_note_is_released_with_a_short_fade_at_its_note_off():
    bank = SampleBank(SR, 30)
    sound = prepare(bank.add(tone(60, 0.5), 60), 60, 100)
    mixer = Mixer(SR)
    mixer.start(1000, sound, "k")
    mixer.stop(1000 + SR // 4, "k")
    out = np.concatenate([mixer.render(256).copy() for _ in range(100)])
    loud = np.flatnonzero(np.abs(out) > 1e-4)
    assert abs(loud[0] - 1000) <= 2                        # starts on its frame
    assert 0 < loud[-1] - (1000 + SR // 4) <= int(0.021 * SR)  # ends within the 20 ms release
    assert np.abs(np.diff(out)).max() < 0.1                # no click: no jump larger than a tone's slope
    assert mixer.voices == []


def test_prepared_sounds_are_cached_per_pitch():
    bank = SampleBank(SR, 30)
    note = bank.add(tone(60, 0.4), 60)
    cache = PreparedCache(size=4)
    a = cache.get(note, 64.0, 100)
    assert cache.get(note, 64.0, 100) is a
    for p in range(65, 70):
        cache.get(note, float(p), 100)
    assert cache.get(note, 64.0, 100) is not a              # pushed out: the cache is bounded


# ------------------------------------------------------------------ files and bad input


def test_a_bank_is_saved_and_loaded_back(tmp_path):
    bank = SampleBank(SR, 30)
    for p in (50.2, 62.0, 69.9):
        bank.add(tone(p, 0.5), p, velocity=80, onset=p / 10)
    bank.save(tmp_path / "b")
    meta = json.loads((tmp_path / "b" / "bank.json").read_text())
    assert meta["sample_rate"] == SR and len(meta["notes"]) == 3
    back = load_bank(tmp_path / "b", SR, 30)
    assert [round(n.pitch, 3) for n in back.notes] == [50.2, 62.0, 69.9]
    for a, b in zip(bank.notes, back.notes):
        np.testing.assert_array_equal(a.audio, b.audio)
    # at another rate: resampled, the same length in seconds
    other = load_bank(tmp_path / "b", 44100, 30)
    assert abs(other.notes[0].seconds - bank.notes[0].seconds) < 0.001
    assert load_bank(tmp_path / "new", SR).notes == ()      # a new folder: a new bank


@pytest.mark.parametrize("setup, words", [
    (lambda d: (d / "x.txt").write_text("hello"), "not a sampler bank"),
    (lambda d: (d / "bank.json").write_text("{ nope"), "not a readable sampler bank"),
    (lambda d: (d / "bank.json").write_text('{"format": "something else", "notes": []}'), "not written by improv"),
    (lambda d: (d / "bank.json").write_text(json.dumps({"format": "improv sampler bank", "version": 1,
                                                         "notes": [{"file": "gone.wav", "pitch": 60}]})),
     "not a readable sampler bank"),
])
def test_a_folder_that_is_not_a_bank_is_one_line(tmp_path, setup, words):
    setup(tmp_path)
    with pytest.raises(ConfigError) as e:
        load_bank(tmp_path, SR)
    assert words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("argv, words", [
    (["--synth", "sampler", "--sampler-bank", "{bad}"], "not a sampler bank"),
    (["--voice", "mid=piano"], "give sampler (your own notes) or gm"),
    (["--voice", "drums=sampler"], "the sampler plays bass, mid, high only"),
    (["--sampler-bank", "{new}"], "give --synth sampler or --voice BAND=sampler too"),
    (["--synth", "sampler", "--sampler-seconds", "0"], "--sampler-seconds 0: give 1 to 3600"),
    (["--synth", "sampler", "--fast"], "leave out --fast"),
])
def test_bad_sampler_options_are_one_line_and_exit_2(tmp_path, capsys, argv, words):
    from improv.cli import main

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "take.wav").write_bytes(b"RIFF")
    argv = [a.format(bad=bad, new=tmp_path / "new") for a in argv]
    take = tmp_path / "in.wav"
    import soundfile

    soundfile.write(take, tone(60, 0.5), SR)
    code = main(["listen", "--input", str(take), "--no-midi", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and words in err[0], err
    assert "Traceback" not in err[0]


def test_freeze_and_forget_are_commands():
    from improv.band.commands import command_text, parse_command

    assert parse_command("freeze", 1.0).command == "freeze"
    assert parse_command("freeze off").value == "off"
    cmd = parse_command("forget", 2.0)
    assert (cmd.target, cmd.command) == ("all", "forget")
    back = parse_command(command_text(cmd), 2.0)
    assert (back.target, back.command, back.value) == ("all", "forget", None)
    with pytest.raises(ConfigError):
        parse_command("freeze sideways")


# ------------------------------------------------------------------ on JACK


@pytest.mark.jack
def test_sampler_voice_on_jack_sounds_each_note_at_its_time_and_pitch(jack_server):
    """A real dummy JACK server: the sampler's output captured by another client. The
    notes go through the scheduler as the live band sends them (``lead`` early)."""
    from improv.band.live import BandOutput
    from improv.sampler.jackout import SamplerOut, SamplerSynth
    from improv.synth import BandSynth, find_soundfont
    from improv.testing.jack import JackAudioCapture, wait_cycles
    from improv.timing import Scheduler

    warm_vocoder(SR)
    origin = time.perf_counter()
    now = lambda: time.perf_counter() - origin  # noqa: E731
    cap = JackAudioCapture("sampler-capture", seconds=12)
    out = SamplerOut("sampler-test", origin=lambda: origin, autoconnect=False)
    try:
        cap.connect_from(out.name)
        wait_cycles(cap.client, 0.5)  # the graph settles after the clients joined
        rate = out.sample_rate
        bank = SampleBank(rate, 30)
        bank.add(tone(57.0, 0.6, rate), 57.0)
        bank.add(tone(64.05, 0.6, rate), 64.05)
        fallback = BandSynth(find_soundfont(), rate)       # offline FluidSynth: what it gets is rendered here
        synth = SamplerSynth(bank, out, fallback, bands=("mid",))
        sched = Scheduler(synth, now=now, lead=synth.lead).start()
        plain = Scheduler(BandOutput(synth=synth, now=now), now=now).start()  # the band's path, at the note's time
        cap.recording = True
        t0 = now() + 0.3
        pitches = [57, 59, 64, 62, 69, 52, 60, 66]
        plan = []
        for i, p in enumerate(pitches):
            t = t0 + 0.35 * i
            for s in (sched, plain):
                s.schedule(t, mido.Message("note_on", channel=2, note=p, velocity=100), tag="mid")
                s.schedule(t + 0.2, mido.Message("note_off", channel=2, note=p), tag="mid")
            plan.append((t, p))
        # a note of a band that is not sampled goes to FluidSynth
        plain.schedule(t0 + 0.1, mido.Message("note_on", channel=1, note=40, velocity=100), tag="bass")
        deadline = time.monotonic() + 15
        while now() < plan[-1][0] + 0.5 and time.monotonic() < deadline:
            time.sleep(0.05)
        cap.recording = False
        sched.stop(panic=False)
        plain.stop(panic=False)
        x = cap.audio[:cap.pos]
        errors_ms, cents = [], []
        for t, p in plan:
            expected = cap.frame_of_time(t, origin)
            i = next(k for k in range(len(cap.cycles)) if cap.cycles[k][1] + rate * 0.001 > expected - 0.03 * rate)
            start = cap.cycles[i][0]
            loud = np.flatnonzero(np.abs(x[start:start + int(0.2 * rate)]) > 1e-3)
            assert len(loud), f"note {p} at {t:.2f} s: nothing heard"
            errors_ms.append((cap.frame_of_sample(start + loud[0]) - expected) / rate * 1000)
            seg = x[start + loud[0] + int(0.01 * rate):start + loud[0] + int(0.19 * rate)]
            cents.append((yin_pitch(seg, rate) - p) * 100)
        assert synth.sampled == len(pitches) and synth.general == 0
        assert np.median(np.abs(errors_ms)) < 3.0, errors_ms
        assert np.percentile(np.abs(errors_ms), 75) < 10.0, errors_ms
        assert max(abs(c) for c in cents) < 10.0, cents
        assert np.abs(fallback.samples(4800)).max() > 1e-3   # the bass note reached FluidSynth
        # an empty bank: the sampled band falls back to General MIDI
        bank.forget()
        synth.send_at(now(), bytes([0x92, 60, 100]))
        synth.send(mido.Message("note_on", channel=2, note=60, velocity=100))
        assert synth.general == 1
    finally:
        cap.close()
        out.close()


@pytest.mark.jack
def test_a_session_with_the_sampler_keeps_the_players_notes_and_plays_the_band_with_them(jack_server, tmp_path,
                                                                                        capsys):
    """``improv listen --synth sampler`` on a take, in real time on JACK: the band's notes
    after the first heard ones are the player's (the sampler's output sounds), ``freeze``
    stops the bank growing, the recording keeps the bank, ``--sampler-bank`` reloads it."""
    import soundfile

    from improv.cli import main
    from improv.testing.jack import JackAudioCapture

    take = tmp_path / "take.wav"
    pitches = [60, 62, 64, 65, 67, 69, 71, 72]
    x = np.zeros(int(5.6 * SR), np.float32)
    for i, p in enumerate(pitches):
        seg = tone(p, 0.5)
        x[int((0.3 + 0.6 * i) * SR):int((0.3 + 0.6 * i) * SR) + len(seg)] += seg
    soundfile.write(take, x, SR)
    script = tmp_path / "script.txt"
    script.write_text("3.3 freeze\n")           # after the fifth note (onset 2.7 s, end 3.2 s)
    cap = JackAudioCapture("sampler-session-capture", seconds=12)
    cap.recording = True
    stop_watch = False

    import jack

    def watch() -> None:  # connect to the sampler's output as soon as it exists
        while not stop_watch:
            try:
                cap.connect_from("improv-sampler:out")
                return
            except jack.JackError:  # not there yet
                time.sleep(0.01)

    import threading

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    bank_dir = tmp_path / "bank"
    try:
        code = main(["listen", "--input", str(take), "--synth", "sampler", "--bands", "mid,high", "--tempo", "100",
                     "--no-midi", "--no-keys", "-q", "--record", str(tmp_path / "rec"), "--commands", str(script),
                     "--sampler-bank", str(bank_dir)])
    finally:
        stop_watch = True
        cap.recording = False
    err = " ".join(capsys.readouterr().err.split())  # (the console wraps the summary)
    assert code == 0, err
    assert "sound: sampler (mid,high) via JACK improv-sampler:out, 0 notes in its bank" in err
    assert "sampler: 5 of your notes kept, 3 not (3 while frozen), 5 in the bank" in err, err
    played = int(err.split("the band played ")[1].split(" notes with them")[0])
    assert played >= 1, err
    saved = json.loads((bank_dir / "bank.json").read_text())
    kept = sorted(round(n["pitch"]) for n in saved["notes"])
    assert kept == pitches[:5], kept                     # frozen at 3.3 s: the last three not kept
    session = next((tmp_path / "rec").iterdir())
    assert json.loads((session / "sampler-bank" / "bank.json").read_text())["notes"] == saved["notes"]
    assert not watcher.is_alive()
    heard = cap.audio[:cap.pos]
    assert cap.pos and np.sqrt(np.mean(heard ** 2)) > 1e-3   # the band sounded through the sampler
    # the bank comes back in the next session
    code = main(["listen", "--input", str(take), "--synth", "sampler", "--bands", "mid", "--tempo", "100",
                 "--no-midi", "--no-keys", "-q", "--sampler-bank", str(bank_dir), "--commands", str(script)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 0 and "5 notes in its bank" in err, err
    cap.close()


# ------------------------------------------------------------------ phrases (take over)


def test_take_over_with_phrases_replays_the_players_last_phrase_on_the_grid_then_the_model_goes_on():
    """``--sampler-phrases``: the taking-over band starts with the player's last phrase, moved
    by octaves into its range (same intervals), its onsets on the band's frames as far apart
    as the player's, then goes on with the model; it hands back when the player returns."""
    from improv.band import measure as M
    from test_band import BEAT, band_notes, melody, run

    gap = (8.0, 13.0)
    notes = melody(0.5, 30, seed=4, rest_from=gap[0], rest_to=gap[1])
    events, band, _ = run([(0.0, "high: take over 0.2")], seconds=15.0, notes=notes, phrases=True)
    last_end = max(b for _, a, b in notes if a < gap[0])
    back = min(a for _, a, _ in notes if a >= gap[1])
    during = M.between(band_notes(events, "high"), last_end, back)
    # the phrase: since the player's last rest of 1.5 beats, at most 8 beats (all of it here)
    phrase = [(p, a) for p, a, b in notes if a < gap[0] and a >= last_end - 8 * BEAT]
    n = len(phrase)
    assert len(during) > n, "the phrase, then more"
    replayed = during[:n]
    lo, hi = band.ranges["high"]
    assert all(lo <= round(x.pitch) <= hi for x in replayed)
    steps = np.diff([round(x.pitch) for x in replayed])
    want = np.diff([p for p, _ in phrase])
    assert np.mean(steps == want) >= 0.8, (steps, want)     # its intervals (a note folded at the range's edge aside)
    onsets = np.array([x.onset for x in replayed]) - replayed[0].onset
    played = np.array([a for _, a in phrase]) - phrase[0][1]
    assert np.max(np.abs(onsets - played)) <= BEAT / 4 + 1e-6   # re-timed onto the grid (a frame: a sixteenth)
    assert during[0].onset - last_end <= 1.0 * BEAT
    s = [x for x in band_notes(events, "high") if x.onset < back and x.offset > back]
    assert all(x.offset - back <= 0.05 for x in s), "hands back at once"


def test_the_sampler_without_a_jack_server_is_one_line(tmp_path):
    import os
    import subprocess
    import sys

    import soundfile

    take = tmp_path / "take.wav"
    soundfile.write(take, tone(60, 0.5), SR)
    env = {**os.environ, "JACK_DEFAULT_SERVER": f"nobody-{os.getpid()}", "JACK_NO_START_SERVER": "1"}
    r = subprocess.run([sys.executable, "-m", "improv", "listen", "--input", str(take), "--synth", "sampler",
                        "--bands", "mid", "--no-midi", "-q"], capture_output=True, text=True, env=env, timeout=120)
    lines = [line for line in r.stderr.splitlines() if line.strip() and "keys: off" not in line]
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and "no JACK server is running" in lines[0], r.stderr
