"""Rhythm pieces with a fake clock: meter, swing, tempo, tap tempo, tracker, MIDI clock, scheduler."""

from __future__ import annotations

import time

import numpy as np
import pytest

from improv.errors import ConfigError
from improv.events import NoteOn
from improv.timing import (BeatTracker, FixedClock, MidiClockIn, MidiClockOut, Scheduler, TapTempo, check_tempo,
                           parse_meter, parse_swing)
from improv.timing.midiclock import CONTINUE, SONG_POSITION, START, STOP, TICK

# ---------------------------------------------------------------- meter, swing, tempo


@pytest.mark.parametrize("text,beats,qpb", [("4/4", 4, 1.0), ("3/4", 3, 1.0), ("6/8", 2, 1.5), ("5/4", 5, 1.0)])
def test_meters(text, beats, qpb):
    m = parse_meter(text)
    assert (m.beats_per_bar, m.quarters_per_beat, m.name) == (beats, qpb, text)


@pytest.mark.parametrize("bad", ["7/8", "4/3", "four", "", "0/4"])
def test_unknown_meter_is_a_one_line_config_error(bad):
    with pytest.raises(ConfigError) as e:
        parse_meter(bad)
    assert "\n" not in str(e.value) and "4/4" in str(e.value)


def test_swing_moves_only_offbeats_and_inverts():
    s = parse_swing("66.6667%")
    m = parse_meter("4/4")
    assert s.apply(3.0, m) == 3.0
    assert abs(s.apply(3.5, m) - (3 + 2 / 3)) < 1e-6  # the off-beat eighth lands on the triplet
    for b in np.linspace(0, 4, 37):
        assert abs(s.remove(s.apply(b, m), m) - b) < 1e-9
    assert parse_swing(50).apply(2.5, m) == 2.5
    assert s.apply(1.5, parse_meter("6/8")) == 1.5  # compound meters stay straight


@pytest.mark.parametrize("bad", [40, 80, "lots", float("nan")])
def test_bad_swing(bad):
    with pytest.raises(ConfigError):
        parse_swing(bad)


@pytest.mark.parametrize("bad", [0, -120, 5, 1000, "fast", float("inf")])
def test_absurd_tempos_are_config_errors(bad):
    with pytest.raises(ConfigError) as e:
        check_tempo(bad)
    assert "BPM" in str(e.value) or "beats per minute" in str(e.value)


def test_fixed_clock_and_tempo_change_keep_the_beat_continuous():
    c = FixedClock(120, t0=1.0, meter="3/4")
    assert c.beat_at(2.0) == pytest.approx(2.0) and c.time_of(4) == pytest.approx(3.0)
    c.set_tempo(60, now=2.0)
    assert c.beat_at(2.0) == pytest.approx(2.0) and c.time_of(3) == pytest.approx(3.0)
    assert c.next_downbeat(2.1) == (pytest.approx(3.0), pytest.approx(3.0))
    assert c.next_beat(2.1, subdivision=2) == (pytest.approx(2.5), pytest.approx(2.5))


# ---------------------------------------------------------------- tap tempo


def test_tap_tempo_from_jittered_taps():
    rng = np.random.default_rng(1)
    tap = TapTempo()
    taps = 10.0 + 0.6 * np.arange(6) + rng.uniform(-0.01, 0.01, 6)  # 100 BPM, +-10 ms
    for t in taps:
        bpm = tap.tap(float(t))
    assert bpm == pytest.approx(100, rel=0.03)
    assert tap.clock.beat_at(float(taps[-1])) == pytest.approx(round(tap.clock.beat_at(float(taps[-1]))))
    assert tap.tap(float(taps[-1]) + 0.005) == bpm and tap.ignored == 1  # switch bounce
    tap.tap(float(taps[-1]) + 10.0)  # a long pause starts a new sequence
    assert tap.taps == [float(taps[-1]) + 10.0]


def test_two_taps_do_not_make_a_tempo():
    tap = TapTempo()
    assert tap.tap(0.0) is None and tap.tap(0.5) is None and tap.clock is None


# ---------------------------------------------------------------- beat tracker


def _metered_onsets(bpm, beats, rng, jitter=0.02, offbeats=0.5):
    p = 60.0 / bpm
    on = []
    for b in range(beats):
        on.append(b * p)
        if rng.random() < offbeats:
            on.append((b + 0.5) * p)
    return np.array(on) + rng.uniform(-jitter, jitter, len(on)) + 1.0


@pytest.mark.parametrize("bpm", [72, 100, 128, 160])
def test_tracker_locks_and_predicts_beats(bpm):
    rng = np.random.default_rng(bpm)
    on = _metered_onsets(bpm, 24, rng)
    tr = BeatTracker(meter="4/4")
    for t in on:
        tr.add_event(NoteOn(time=float(t) + 0.03, pitch=60, velocity=90, onset=float(t)))
    now = float(on[-1]) + 0.05
    st = tr.state(now)
    assert st.locked and st.bpm == pytest.approx(bpm, rel=0.04)
    p = 60.0 / bpm
    nb, t_next = tr.next_beat(now)
    true_next = 1.0 + np.ceil((now - 1.0) / p) * p
    assert abs(t_next - true_next) < 0.07, f"next beat {1000 * (t_next - true_next):+.0f} ms off"


def test_tracker_beat_numbers_stay_continuous():
    rng = np.random.default_rng(3)
    on = _metered_onsets(110, 32, rng)
    tr = BeatTracker(meter="4/4")
    seen = []
    for t in on:
        tr.add_onset(float(t))
        if tr.locked:
            seen.append((round(tr.beat_at(float(t))), float(t)))
    beats = [b for b, _ in seen]
    assert beats == sorted(beats), "beat numbers never run backwards"


def test_tracker_stays_free_on_loose_playing_and_goes_free_when_the_player_stops():
    rng = np.random.default_rng(7)
    locked = 0
    for trial in range(5):
        tr = BeatTracker()
        t = 0.0
        for _ in range(30):
            t += float(rng.exponential(0.45)) + 0.05  # ambient: no pulse
            tr.add_onset(t)
            locked += tr.locked
    assert locked / 150 < 0.2, f"locked on {locked} of 150 loose onsets"
    tr = BeatTracker(meter="4/4")
    on = _metered_onsets(120, 16, np.random.default_rng(0))
    for t in on:
        tr.add_onset(float(t))
    assert tr.state(float(on[-1]) + 0.1).locked
    assert not tr.state(float(on[-1]) + 8 * 0.5 + 0.1).locked  # 8 beats of silence


def test_tracker_ignores_out_of_order_and_double_onsets():
    tr = BeatTracker()
    tr.add_onset(1.0)
    tr.add_onset(0.5)
    tr.add_onset(1.01)
    assert tr._onsets == [1.0]


# ---------------------------------------------------------------- MIDI clock in


def _clock_ticks(t0, bpm, n):
    return [t0 + i * 60.0 / bpm / 24 for i in range(n)]


def test_midi_clock_follows_start_ticks_and_tempo():
    c = MidiClockIn()
    c.feed(START, 0.999)
    ticks = _clock_ticks(1.0, 120, 24 * 4)
    rng = np.random.default_rng(0)
    for t in ticks:
        c.feed(TICK, t + float(rng.uniform(0, 0.0053)))  # rtmidi-like arrival jitter
    st = c.state(ticks[-1] + 0.01)
    assert st.locked and st.bpm == pytest.approx(120, rel=0.01)
    assert c.time_of(4.0) == pytest.approx(3.0 + 0.00265, abs=0.003)  # beat 4 = tick 96 at 3.0 s (+ mean delay)


def test_midi_clock_stop_song_position_continue():
    c = MidiClockIn()
    c.feed("start", 0.0)
    for t in _clock_ticks(0.0, 120, 48):
        c.feed("clock", t)
    c.feed(STOP, 1.0)
    assert not c.state(1.01).locked and "Stop" in c.state(1.01).message
    c.feed(SONG_POSITION, 1.5, value=16)  # sixteenth 16 = beat 4
    c.feed(CONTINUE, 2.0)
    for t in _clock_ticks(2.0, 120, 24):
        c.feed(TICK, t)
    assert c.state(2.5).locked
    assert c.beat_at(2.0) == pytest.approx(4.0, abs=0.01)


def test_midi_clock_that_goes_silent_or_jumps_unlocks_with_a_message():
    c = MidiClockIn()
    c.feed(START, 0.0)
    for t in _clock_ticks(0.0, 100, 30):
        c.feed(TICK, t)
    last = _clock_ticks(0.0, 100, 30)[-1]
    st = c.state(last + 1.0)
    assert not st.locked and "silent" in st.message
    # it comes back at another tempo after the gap: a re-fit, locked again at the new tempo
    for t in _clock_ticks(last + 1.0, 140, 30):
        c.feed(TICK, t)
    st = c.state(last + 1.0 + 29 * 60 / 140 / 24 + 0.005)
    assert st.locked and st.bpm == pytest.approx(140, rel=0.01) and c.jumps == 1


def test_absurd_midi_clock_tempo_is_ignored_not_fatal():
    c = MidiClockIn()
    c.feed(START, 0.0)
    for t in _clock_ticks(0.0, 900, 60):
        c.feed(TICK, t)
    st = c.state(_clock_ticks(0.0, 900, 60)[-1])
    assert not st.locked and "outside" in st.message
    c.feed(0x42, 0.5)  # not a clock message: ignored


# ---------------------------------------------------------------- MIDI clock out


def test_midi_clock_out_sends_24_ppqn_with_start_and_stop():
    clock = FixedClock(120, t0=0.0)
    sent: list[tuple[float, bytes]] = []
    out = MidiClockOut(clock, lambda t, d: sent.append((t, d)), horizon=0.05)
    pumps = [0.1 + 0.01 * k for k in range(200)]
    for now in pumps:
        out.pump(now)
    out.stop(2.1)
    kinds = [d[0] for _, d in sent]
    assert kinds[0] == START and kinds[-1] == STOP
    ticks = [t for t, d in sent if d[0] == TICK]
    assert ticks[0] == pytest.approx(0.5)  # the first tick is the next beat
    assert np.allclose(np.diff(ticks), 0.5 / 24)
    assert ticks[-1] <= pumps[-1] + 0.05 < ticks[-1] + 0.5 / 24  # exactly the ticks within the horizon


def test_midi_clock_out_with_a_6_8_meter_counts_quarter_notes():
    clock = FixedClock(60, t0=0.0, meter="6/8")  # 60 dotted quarters per minute
    sent = []
    out = MidiClockOut(clock, lambda t, d: sent.append((t, d)))
    for k in range(300):
        out.pump(0.01 * k)
    ticks = [t for t, d in sent if d[0] == TICK]
    assert np.diff(ticks).mean() == pytest.approx(1.0 / 36)  # 36 ticks per dotted quarter


# ---------------------------------------------------------------- scheduler


class ListSink:
    def __init__(self):
        self.got: list[tuple[float, bytes]] = []
        self.panics = 0

    def send(self, msg):
        self.got.append((time.perf_counter(), bytes(msg.bytes())))

    def panic(self):
        self.panics += 1


def test_scheduler_sends_in_time_order_and_panic_ends_sounding_notes():
    sink = ListSink()
    with Scheduler(sink, output_latency_ms=10) as s:
        t0 = time.perf_counter() + 0.05
        s.schedule(t0 + 0.02, [0x91, 40, 100], tag="bass")
        s.schedule(t0, [0x92, 60, 100], tag="mid")
        s.schedule(t0 + 0.04, [0x82, 60, 0], tag="mid")
        s.schedule(t0 + 5.0, [0x81, 40, 0], tag="bass")  # far future: still pending at panic
        time.sleep(0.15)
        assert [d for _, d in sink.got] == [bytes([0x92, 60, 100]), bytes([0x91, 40, 100]), bytes([0x82, 60, 0])]
        assert s.pending() == 1
    # leaving the block stops and panics: the pending note-off is dropped, the bass note is ended
    assert s.pending() == 0 and bytes([0x81, 40, 0]) in [d for _, d in sink.got] and sink.panics == 1
    assert sink.got[0][0] >= t0 - 0.010 - 0.0005  # sent output latency early, never much earlier


def test_scheduler_clear_one_player():
    sink = ListSink()
    with Scheduler(sink) as s:
        t0 = time.perf_counter() + 0.02
        s.schedule(t0, [0x93, 72, 90], tag="high")
        s.schedule(t0 + 3, [0x83, 72, 0], tag="high")
        s.schedule(t0 + 3, [0x91, 36, 90], tag="bass")
        time.sleep(0.06)
        s.clear("high")
        assert s.pending() == 1 and s.pending("bass") == 1
        assert sink.got[-1][1] == bytes([0x83, 72, 0])


def test_bad_output_latency():
    with pytest.raises(ConfigError):
        Scheduler(ListSink(), output_latency_ms=-5)
    with pytest.raises(ConfigError):
        Scheduler(ListSink(), output_latency_ms=5000)


# ---------------------------------------------------------------- Ableton Link (optional)


def test_link_clock_local_timeline():
    pytest.importorskip("link", reason="LinkPython-extern is not installed (pip install LinkPython-extern)")
    from improv.timing import LinkClock

    c = LinkClock(100.0, meter="4/4", enabled=False)  # no network: a local Link timeline
    try:
        now = time.perf_counter()
        b = c.beat_at(now)
        assert c.time_of(b + 1.0) - now == pytest.approx(0.6, abs=0.001)
        c.set_tempo(150.0, now)
        assert c.bpm == pytest.approx(150.0)
        assert c.beat_at(now) == pytest.approx(b, abs=0.01)  # the beat stays put at a tempo change
        assert c.state(now).locked
    finally:
        c.close()


def test_song_position_jump_while_running_refits_at_the_new_place():
    c = MidiClockIn()
    c.feed(START, 0.0)
    for t in _clock_ticks(0.0, 120, 48):
        c.feed(TICK, t)
    c.feed(SONG_POSITION, 1.0, value=64)  # the DAW jumped to bar 5 (sixteenth 64 = beat 16)
    assert c.jumps == 1 and not c.state(1.0).locked  # no grid until ticks come from the new place
    for t in _clock_ticks(1.0, 120, 24):
        c.feed(TICK, t)
    assert c.state(1.5).locked and c.beat_at(1.0) == pytest.approx(16.0, abs=0.01)


class TimedSink:
    """A sink that takes messages ahead of time, like the JACK client."""

    timed = True

    def __init__(self):
        self.got: list[tuple[float, bytes]] = []

    def send_at(self, t, data):
        self.got.append((t, bytes(data)))

    def panic(self):
        pass


def test_clear_with_a_timed_sink_ends_notes_after_they_start():
    sink = TimedSink()
    with Scheduler(sink, lead=0.2) as s:
        t0 = time.perf_counter() + 0.1  # handed over at once (lead 200 ms)
        s.schedule(t0, [0x91, 40, 100], tag="bass")
        s.schedule(t0 + 1.0, [0x81, 40, 0], tag="bass")
        time.sleep(0.02)
        s.clear("bass")
        ons = [t for t, d in sink.got if d == bytes([0x91, 40, 100])]
        offs = [t for t, d in sink.got if d == bytes([0x81, 40, 0])]
        assert ons and offs and offs[0] > ons[0], "the note-off must come after the note it ends"


def test_jack_client_without_a_server_is_a_midi_error(monkeypatch):
    pytest.importorskip("jack", reason="JACK-Client is not installed")
    from improv.errors import MidiError
    from improv.timing.jackmidi import JackMidi

    monkeypatch.setenv("JACK_DEFAULT_SERVER", "improv-no-such-server")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    with pytest.raises(MidiError) as e:
        JackMidi("nobody")
    assert "JACK" in str(e.value) and "\n" not in str(e.value)


def test_frame_stamped_clock_follows_the_frame_clock_offset():
    offset = [10.0]
    c = MidiClockIn()
    c.follow_frames(lambda: offset[0])
    c.feed_bytes(bytes([START]), 0.0)
    for t in _clock_ticks(0.0, 120, 48):
        c.feed_bytes(bytes([TICK]), t)
    assert c.time_of(2.0) == pytest.approx(11.0)
    offset[0] = 10.03  # the server stalled 30 ms: the frame clock slipped against session time
    assert c.time_of(2.0) == pytest.approx(11.03)
    c.feed_bytes(bytes([SONG_POSITION, 0x10, 0x00]), 2.0)  # SPP 16 sixteenths = beat 4
    assert c._next_pos == 96
