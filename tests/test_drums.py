"""The drummer (issue 14): grooves per style on a fake clock, every command, free colour,
count-in and click, session.mid's tempo map, and bad input.

The band runs on audio time driven here (``step(now)`` every 10 ms, as ``--fast`` does);
with only the drummer it needs no model. Tolerances: milliseconds (micro-timing is at
most 2.5 standard deviations of a line's spread plus its push) and hit counts.
"""

from __future__ import annotations

import math

import mido
import numpy as np
import pytest

from improv.band import Band, BandSettings
from improv.band.drums import KITS, STYLES, VOICES, Drummer, load_grooves
from improv.cli import main
from improv.errors import ConfigError
from improv.events import Command, NoteOff, NoteOn
from improv.record import events_to_midifile, read_midi_events
from improv.timing.tempomap import FREE_TEXT, BarTiming, TempoMap

BPM = 120.0
BEAT = 60.0 / BPM
METERED = [s for s in STYLES if s != "free"]
TOMS = {41, 43, 45, 47, 48, 50}


def player(start: float, beats: float, step: float = 0.5, velocity: int = 90, pitch: int = 67) -> list:
    """The player's notes every ``step`` beats from ``start`` seconds for ``beats`` beats."""
    out = []
    n = int(round(beats / step))
    for i in range(n):
        t = start + i * step * BEAT
        out.append(NoteOn(t + 0.03, pitch + (i % 3), velocity, onset=t))
        out.append(NoteOff(t + 0.03 + 0.8 * step * BEAT, pitch + (i % 3), end=t + 0.8 * step * BEAT))
    return out


def drive(band: Band, events: list, until: float, commands: list[Command] = ()) -> list:
    events = sorted(events, key=lambda e: e.time)
    cmds = sorted(commands, key=lambda c: c.time)
    out, t, i = [], 0.0, 0
    while t <= until + 1e-9:
        while i < len(events) and events[i].time <= t:
            band.hear(events[i])
            i += 1
        while cmds and cmds[0].time <= t:
            band.command(cmds.pop(0))
        band.step(t)
        out += band.due(t)
        t = round(t + 0.01, 6)
    return out + band.finish(t)


def hits(events: list, start: float = -math.inf, end: float = math.inf) -> list[NoteOn]:
    return [e for e in events if isinstance(e, NoteOn) and e.source == "drums" and start <= e.time < end]


def session(style: str = "rock", commands=(), seconds: float = 24.0, seed: int = 3, playing=None, **kw):
    band = Band(BandSettings(bands=("drums",), tempo=BPM, style=style, seed=seed, **kw))
    playing = player(0.5, 2 * seconds) if playing is None else playing
    return drive(band, playing, seconds, list(commands)), band


def per_beat(events, start, end) -> float:
    return len(hits(events, start, end)) / ((end - start) / BEAT)


# ------------------------------------------------------------------ grooves (data)


def test_every_style_loads_and_busier_simpler_steps_are_large_enough():
    grooves = load_grooves()
    assert set(grooves) == set(STYLES)
    for name in METERED:
        g = grooves[name]
        e = {lv: g.expected_hits(lv) for lv in range(-3, 4)}
        assert e[1] >= 1.3 * e[0] and e[-1] <= 0.7 * e[0], (name, e)
        assert all(e[lv + 1] >= e[lv] for lv in range(-3, 3)), (name, e)
        assert g.fills, name


@pytest.mark.parametrize("style", METERED)
def test_hits_fall_on_the_grooves_grid(style):
    events, band = session(style, seconds=12.0)
    g = load_grooves()[style]
    m = band.map
    spb = g.steps_per_beat
    limit = max(ln.timing for ln in g.lines) * 1.6 * 2.5 + max(abs(ln.push) for ln in g.lines) + 0.002
    swing = band.drummer.swing
    from improv.timing import Swing

    sw = swing or Swing(g.swing)
    out = []
    for h in hits(events, 1.0):
        straight = sw.remove(m.clock.beat_at(h.time), m.meter)
        off = abs(straight * spb - round(straight * spb)) / spb * BEAT  # seconds from the grid (straight)
        if h.pitch in VOICES.values():
            out.append(off)
    assert out and max(out) <= limit + 0.004, (style, max(out), limit)


def test_swing_moves_the_off_beats():
    events, band = session("swing", seconds=12.0)
    m = band.map
    offs = []
    for h in hits(events, 1.0):
        if h.pitch == VOICES["ride"]:
            frac = m.clock.beat_at(h.time) % 1.0
            if 0.3 < frac < 0.9:
                offs.append(frac)
    assert len(offs) >= 6
    assert abs(np.median(offs) - 0.64) < 0.03, np.median(offs)  # the groove's 64 % swing, not 0.5


def test_fills_end_on_phrase_ends_and_a_crash_follows():
    events, band = session("rock", seconds=40.0)
    bars = band.bars
    assert len(bars) >= 18
    fills = band.drummer.fills
    assert len(fills) >= 3
    m = band.map
    for start, end in [f for f in fills if f[1] <= bars[-1] + 1e-6]:
        k = int(np.argmin([abs(b - end) for b in bars]))
        assert abs(bars[k] - end) < 0.002, "a fill ends on a bar line"
        k = round(m.clock.beat_at(end) / 4)   # the bar it ends (bar 0 starts on the player's first note)
        assert k % 4 == 0, f"a fill ends bar {k}: not a 4-bar phrase end"
        crash = [h for h in hits(events, end - 0.02, end + 0.02) if h.pitch == VOICES["crash"]]
        assert crash, f"no crash on the one after the fill ending at {end:.3f}"
    # the 8-bar phrase ends always have one
    ends = {round(m.clock.beat_at(e) / 4) for _, e in fills}
    assert {8, 16} <= ends
    toms = [h for h in hits(events) if h.pitch in TOMS]
    assert all(any(s - 0.02 <= h.time < e for s, e in fills) for h in toms), "toms only in fills"


def test_a_fill_leads_into_every_chorus_of_a_lead_sheet():
    """With changes of 6 bars (not a 4-bar phrase), the drummer fills the last bar of every
    chorus, before the changes start again, and a crash marks the chorus's first bar."""
    events, band = session("rock", seconds=40.0, changes="| Am | F | C | G | Dm | E7 |")
    m = band.map
    ends = {round(m.clock.beat_at(e) / 4) for _, e in band.drummer.fills}
    choruses = [b for b in (6, 12, 18) if m.clock.time_of(4.0 * b) < 38.0]
    assert len(choruses) >= 2
    assert set(choruses) <= ends, f"fills end bars {sorted(ends)}; choruses start at {choruses}"
    for b in choruses:
        t = m.clock.time_of(4.0 * b)
        assert [h for h in hits(events, t - 0.02, t + 0.02) if h.pitch == VOICES["crash"]], f"no crash at bar {b}"


def test_the_kick_follows_the_bass():
    from improv.band.drums import DrumScene
    from improv.band.timebase import TimeMap
    from improv.timing import FixedClock

    m = TimeMap(True, 0.0, FixedClock(BPM))
    d = Drummer("funk", seed=1)
    bass = 0.5 * BEAT + 0.02  # near the and of beat 1: funk has a kick there
    scene = DrumScene(0.5 * BEAT, 1.0 * BEAT, BEAT, True, 0.0, True, bass_onsets=(bass,))
    kicks = [h for h in d.plan(scene, m) if h.note == 36]
    assert kicks and abs(kicks[0].time - bass) < 1e-9, "a kick near the bass note moves onto it"


# ------------------------------------------------------------------ commands


def test_busier_and_simpler():
    base, _ = session("rock", seconds=30.0)
    busy, _ = session("rock", [Command(10.0, "drums", "busier")], seconds=30.0)
    simple, _ = session("rock", [Command(10.0, "drums", "simpler")], seconds=30.0)
    b0 = per_beat(base, 11.0, 30.0)
    assert per_beat(busy, 11.0, 30.0) >= 1.3 * b0
    assert per_beat(simple, 11.0, 30.0) <= 0.7 * b0
    assert per_beat(busy, 2.0, 10.0) == per_beat(base, 2.0, 10.0), "nothing changes before the command"


def test_stop_silences_at_once_and_go_plays_again():
    events, band = session("funk", [Command(10.0, "all", "stop"), Command(14.0, "drums", "go")], seconds=20.0)
    assert not hits(events, 10.0, 14.0)
    offs = [e for e in events if isinstance(e, NoteOff) and e.source == "drums" and e.time >= 10.0]
    assert all(e.time <= 10.0 + 1e-6 for e in offs if e.time < 14.0), "sounding hits end at the stop"
    assert len(hits(events, 15.0, 20.0)) > 10


def test_panic_and_the_sounding_hits_end():
    events, _ = session("rock", [Command(8.0, "all", "panic")], seconds=12.0)
    on = {}
    for e in sorted((e for e in events if e.source == "drums"), key=lambda e: (e.time, isinstance(e, NoteOn))):
        if isinstance(e, NoteOn):
            on[e.pitch] = on.get(e.pitch, 0) + 1
        else:
            on[e.pitch] = on.get(e.pitch, 0) - 1
    assert all(v == 0 for v in on.values()), "every hit has its note-off"
    assert not hits(events, 8.0, 8.45)


def _overlaps(events, playing, window=0.05) -> int:
    onsets = [e.onset for e in playing if isinstance(e, NoteOn)]
    return sum(1 for h in hits(events, 12.0) if any(abs(h.time - o) <= window for o in onsets))


def test_make_room_leaves_the_players_attacks_alone():
    # the player repeats a syncopated rhythm: the drummer can hear where it falls
    rhythm = [0.0, 0.75, 1.5, 2.5, 3.0]
    notes = []
    for bar in range(20):
        for r in rhythm:
            t = 0.5 + (bar * 4 + r) * BEAT
            notes += [NoteOn(t + 0.03, 67, 95, onset=t), NoteOff(t + 0.2, 67, end=t + 0.18)]
    base, _ = session("rock", playing=notes, seconds=36.0)
    room, _ = session("rock", [Command(8.0, "drums", "make room")], playing=notes, seconds=36.0)
    a, b = _overlaps(base, notes), _overlaps(room, notes)
    assert a >= 20 and b <= 0.3 * a, (a, b)


def test_more_orderly_repeats_bars_and_more_chaotic_does_not():
    def repeats(events, band):
        bars, clock = band.bars, band.map.clock
        pats = {}
        for s, e in zip(bars, bars[1:]):
            k = round(clock.beat_at(s) / 4)
            if k >= 2 and k % 4 not in (0, 3):  # no fill bars, no crash after them
                pats[k] = tuple(sorted((round((h.time - s) / BEAT * 4), h.pitch)
                                       for h in hits(events, s - 0.03, e - 0.03)))
        return np.mean([pats[k] == pats[k + 4] for k in pats if k + 4 in pats])

    orderly = session("funk", [Command(1.0, "drums", "more orderly")] * 1 + [Command(1.5, "drums", "more orderly")],
                      seconds=40.0)
    chaotic = session("funk", [Command(1.0, "drums", "more chaotic"), Command(1.5, "drums", "more chaotic")],
                      seconds=40.0)
    assert repeats(*orderly) >= 0.9
    assert repeats(*chaotic) < 0.5


def test_fight_displaces_accents_and_adds_a_cross_rhythm():
    base, band = session("rock", seconds=24.0)
    fight, _ = session("rock", [Command(4.0, "drums", "fight", 1.0)], seconds=24.0)
    m = band.map

    def off_beat_accents(events):
        loud = [h for h in hits(events, 6.0) if h.velocity >= 95]
        return np.mean([abs(m.clock.beat_at(h.time) % 1.0 - 0.5) < 0.45 for h in loud])

    cross = load_grooves()["rock"].cross
    assert len([h for h in hits(fight, 6.0) if h.pitch == cross]) >= 20
    assert not [h for h in hits(base, 6.0) if h.pitch == cross]
    assert off_beat_accents(fight) >= off_beat_accents(base) + 0.2


def test_take_over_plays_a_break_while_the_player_rests():
    playing = player(0.5, 16) + player(0.5 + 24 * BEAT, 16)   # 8 beats of rest in the middle
    base, _ = session("rock", playing=playing, seconds=24.0)
    take, _ = session("rock", [Command(2.0, "drums", "take over")], playing=playing, seconds=24.0)
    rest = (0.5 + 9 * BEAT, 0.5 + 23 * BEAT)
    assert per_beat(take, *rest) >= 1.3 * per_beat(base, *rest)
    assert len([h for h in hits(take, *rest) if h.pitch in TOMS]) > len([h for h in hits(base, *rest)
                                                                         if h.pitch in TOMS])


def test_style_command_changes_the_groove():
    events, band = session("rock", [Command(6.0, "all", "style", "funk")], seconds=16.0)
    sixteenths = [h for h in hits(events, 8.0) if h.pitch == VOICES["hat"]
                  and round(band.map.clock.beat_at(h.time) * 4) % 2 == 1]
    before = [h for h in hits(events, 1.0, 6.0) if h.pitch == VOICES["hat"]
              and round(band.map.clock.beat_at(h.time) * 4) % 2 == 1]
    assert len(sixteenths) >= 10 and not before
    with pytest.raises(ConfigError, match="swing, straight"):
        band.command(Command(10.0, "all", "style", "polka"))


def test_intensity_follows_the_players_loudness():
    soft, _ = session("rock", playing=player(0.5, 40, velocity=40), seconds=16.0)
    loud, _ = session("rock", playing=player(0.5, 40, velocity=120), seconds=16.0)
    assert np.mean([h.velocity for h in hits(loud, 3.0)]) > np.mean([h.velocity for h in hits(soft, 3.0)]) + 10


# ------------------------------------------------------------------ free, count-in, click


def test_free_mode_plays_colour_never_a_beat():
    band = Band(BandSettings(bands=("drums",), free=True, seed=2))
    events = drive(band, player(0.5, 20) + player(14.0, 12, velocity=120), 30.0)
    hs = hits(events)
    assert len(hs) >= 20
    starts = [hs[0].time] + [b.time for a, b in zip(hs, hs[1:]) if b.time - a.time > 0.3]
    gaps = np.diff(starts)
    assert len(gaps) >= 4 and np.std(gaps) / np.mean(gaps) > 0.3, "gestures start at irregular times"


def test_count_in_and_click():
    band = Band(BandSettings(bands=("drums",), tempo=BPM, count_in=1, click=True, seed=1))
    events = drive(band, [], 6.0)
    bpb = 4
    start = band.time.fixed.time_of(0.0)
    assert abs(start - 2 * bpb * BEAT) < 1e-9   # an empty bar, the count-in bar, then beat 0
    sticks = [h.time for h in hits(events) if h.pitch == VOICES["sticks"]]
    assert np.allclose(sticks, [start - (bpb - i) * BEAT for i in range(bpb)], atol=1e-6)
    clicks = [h.time for h in hits(events, start - 1e-6, 6.0 - 0.2) if h.pitch in (33, 34)]
    assert np.allclose(np.diff(clicks), BEAT, atol=1e-6)
    assert [h.pitch for h in hits(events, start - 1e-6, start + 1e-6) if h.pitch in (33, 34)] == [34]
    assert all(h.pitch in (VOICES["sticks"], 33, 34) for h in hits(events, 0.0, start - 0.02))



# ------------------------------------------------------------------ session.mid


def test_session_mid_carries_tempo_and_meter(tmp_path):
    import pretty_midi

    band = Band(BandSettings(bands=("drums",), tempo=96.0, meter="3/4", style="waltz", seed=1))
    events = drive(band, player(1.3, 40, step=1.0), 20.0)
    mid = events_to_midifile(events, timing=band.bar_timing())
    path = tmp_path / "session.mid"
    mid.save(str(path))
    pm = pretty_midi.PrettyMIDI(str(path))
    times, tempi = pm.get_tempo_changes()
    first = band.bars[0]
    assert abs(first - 1.3) < 1e-6, band.bars[:3]
    i = int(np.searchsorted(times, first + 1e-6)) - 1
    assert abs(tempi[i] - 96.0) < 0.01 and abs(tempi[0] - 96.0) < 4.0
    sigs = [(s.numerator, s.denominator) for s in pm.time_signature_changes if s.time >= first - 1e-3]
    assert sigs and sigs[0] == (3, 4)
    downbeats = pm.get_downbeats()
    for b in band.bars[:-1]:
        assert np.min(np.abs(downbeats - b)) < 0.001, f"the band's downbeat at {b:.3f} is not on a bar line"
    back = read_midi_events(path)
    a = sorted(e.time for e in events if isinstance(e, NoteOn))
    b2 = sorted(e.time for e in back if isinstance(e, NoteOn))
    assert len(a) == len(b2) and np.max(np.abs(np.array(a) - np.array(b2))) < 0.0015


def test_tempo_map_follows_tempo_changes_and_marks_free_time():
    from improv.timing import parse_meter

    bars = [0.5 + 2.0 * i for i in range(5)] + [10.5 + 1.6 * i for i in range(5)]
    tm = TempoMap.from_bars(BarTiming(parse_meter("4/4"), tuple(bars), ((0.5, True), (20.0, False))), 960)
    for i, b in enumerate(bars):
        assert abs(tm.seconds(tm.tick(b)) - b) < 0.001
    ticks = [tm.tick(b) for b in bars]
    assert all((t - ticks[0]) % (4 * 960) == 0 for t in ticks)
    texts = [m.text for _, m in tm.meta if m.type == "marker"]
    assert FREE_TEXT in texts
    free = TempoMap.from_bars(BarTiming(parse_meter("4/4"), ()), 960)
    assert [m.text for _, m in free.meta if m.type == "marker"] == [FREE_TEXT]


# ------------------------------------------------------------------ the command line


def _wav(tmp_path):
    import soundfile as sf

    from improv.testing.signals import ToneSpec, render

    path = tmp_path / "take.wav"
    sf.write(path, render([ToneSpec(0.5 + 0.625 * i, 0.4, 62 + (i % 5)) for i in range(12)], 16000), 16000)
    return path


@pytest.mark.parametrize("extra,words", [
    (["--style", "polka"], ["--style", "polka", "swing, straight, funk, bossa, ballad, rock, waltz, free"]),
    (["--kit", "tin"], ["--kit", "tin", ", ".join(KITS)]),
    (["--count-in", "2"], ["--count-in", "--tempo"]),
    (["--range", "drums=E1-C3"], ["unknown band 'drums'"]),
])
def test_bad_drum_options_are_one_line(tmp_path, capsys, extra, words):
    rc = main(["listen", "-i", str(_wav(tmp_path)), "--fast", "--no-midi", "--synth", "none", "-q",
               "--bands", "drums", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, (w, err)


def test_listen_with_drums_records_tempo_meter_and_kit(tmp_path, capsys):
    import pretty_midi

    rc = main(["listen", "-i", str(_wav(tmp_path)), "--fast", "--no-midi", "--synth", "none", "-q",
               "--bands", "drums", "--tempo", "96", "--meter", "3/4", "--kit", "brush", "--count-in", "1",
               "--record", str(tmp_path / "rec"), "--seed", "1"])
    assert rc == 0, capsys.readouterr().err
    path = next((tmp_path / "rec").glob("*/session.mid"))
    pm = pretty_midi.PrettyMIDI(str(path))
    _, tempi = pm.get_tempo_changes()
    assert np.allclose(tempi, 96.0, atol=0.01), "a count-in session is on its tempo from the first tick"
    assert [(s.numerator, s.denominator, s.time) for s in pm.time_signature_changes] == [(3, 4, 0.0)]
    drums = [i for i in pm.instruments if i.is_drum]
    assert drums and len(drums[0].notes) > 10
    progs = [m.program for t in mido.MidiFile(str(path)).tracks for m in t
             if m.type == "program_change" and m.channel == 9]
    assert progs == [KITS["brush"]]
    bar = 3 * 60 / 96
    sticks = sorted(n.start for n in drums[0].notes if n.pitch == VOICES["sticks"])
    db = pm.get_downbeats()
    assert np.min(np.abs(db - sticks[0])) < 0.001 and abs(sticks[0] - bar) < 0.001


# ------------------------------------------------------------------ MIDI clock out


def test_clock_out_follows_the_bands_tempo():
    from improv.band.sync import BandClock
    from improv.timing import MidiClockOut

    band = Band(BandSettings(bands=("drums",), tempo=BPM, seed=1))
    sent = []
    out = MidiClockOut(BandClock(band), lambda t, data: sent.append((t, data[0])), horizon=0.08)
    notes = player(0.5, 12)
    t, i = 0.0, 0
    while t <= 6.0:
        while i < len(notes) and notes[i].time <= t:
            band.hear(notes[i])
            i += 1
        band.step(t)
        out.pump(t)
        t = round(t + 0.01, 6)
    assert sent and sent[0][1] == 0xFA, "Start first, once the band is metered"
    start = sent[0][0]
    assert abs(band.map.clock.beat_at(start + 0.001) % 1.0) < 0.01, "Start on a beat"
    ticks = [t for t, b in sent if b == 0xF8]
    assert len(ticks) > 100 and np.allclose(np.diff(ticks), BEAT / 24, atol=1e-6)
    assert abs(ticks[0] - (start + 0.001)) < 1e-6
    out.stop(6.0)
    assert sent[-1][1] == 0xFC


def test_clock_out_needs_real_time_and_a_port(tmp_path, capsys):
    rc = main(["listen", "-i", str(_wav(tmp_path)), "--fast", "--no-midi", "--synth", "none", "-q",
               "--bands", "drums", "--clock-out"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--clock-out" in err and len(err.splitlines()) == 1


def test_the_drummer_follows_a_midi_clock_in():
    from improv.timing import MidiClockIn

    band = Band(BandSettings(bands=("drums",), style="rock", seed=1))
    follower = MidiClockIn(band.time.meter)
    band.time.external = follower
    bpm, start = 100.0, 1.0
    tick = 60.0 / bpm / 24
    follower.feed("start", start - 0.001)
    out, t, k = [], 0.0, 0
    while t <= 12.0:
        while start + k * tick <= t:
            follower.feed("clock", start + k * tick)
            k += 1
        band.step(t)
        out += band.due(t)
        t = round(t + 0.01, 6)
    out += band.finish(t)
    assert band.map is not None and band.map.metered and abs(band.map.clock.bpm - bpm) < 0.5
    beat = 60.0 / bpm
    kicks = [h.time for h in hits(out, 4.0) if h.pitch == 36]
    # kicks of the rock groove fall on the clock's beats or eighths (micro-timing: 2.5 x 4 ms)
    offs = [abs(((t - start) / (beat / 2)) - round((t - start) / (beat / 2))) * beat / 2 for t in kicks]
    assert kicks and max(offs) <= 0.012, max(offs)
    downbeats = [b for b in band.bars if b > 4.0]
    assert all(abs(((b - start) / beat) % 4) < 0.01 or abs(((b - start) / beat) % 4 - 4) < 0.01
               for b in downbeats)


def test_lead_is_busier_and_tap_sets_the_tempo():
    base, _ = session("rock", seconds=20.0)
    lead, _ = session("rock", [Command(6.0, "drums", "lead", ("busy", "harmonic"))], seconds=20.0)
    assert per_beat(lead, 7.0, 20.0) >= 1.3 * per_beat(base, 7.0, 20.0)
    band = Band(BandSettings(bands=("drums",), style="rock", seed=1))
    taps = [Command(1.0 + 0.6 * i, "all", "tap") for i in range(4)]   # 100 BPM
    events = drive(band, [], 12.0, taps)
    assert band.map is not None and abs(band.map.clock.bpm - 100.0) < 0.5
    snares = [h.time for h in hits(events, 4.0) if h.pitch == VOICES["snare"] and h.velocity >= 90]
    gaps = np.diff(snares)   # the backbeat: every two beats of 0.6 s (micro-timing: 2.5 x 4 ms each)
    assert len(snares) >= 6 and np.allclose(gaps / 1.2, np.round(gaps / 1.2), atol=0.02)


def test_a_style_sets_the_bands_meter_and_swing_unless_given():
    assert Band(BandSettings(bands=("drums",), style="swing")).time.swing.percent == 64.0
    assert Band(BandSettings(bands=("drums",), style="swing", swing=55)).time.swing.percent == 55.0
    assert Band(BandSettings(bands=("drums",), style="waltz")).time.meter.name == "3/4"
    assert Band(BandSettings(bands=("drums",), style="waltz", meter="6/8")).time.meter.name == "6/8"


def test_the_drummer_plays_to_a_link_timeline():
    pytest.importorskip("link", reason="LinkPython-extern is not installed (pip install -e .[link])")
    import time

    from improv.timing import LinkClock

    link = LinkClock(90.0, "4/4", enabled=False, origin=time.perf_counter())  # a local timeline, no network
    band = Band(BandSettings(bands=("drums",), style="rock", seed=1))
    band.time.external = link
    events = drive(band, [], 10.0)
    link.close()
    assert band.map.metered and abs(band.map.clock.bpm - 90.0) < 0.01
    snares = [h.time for h in hits(events, 2.0) if h.pitch == VOICES["snare"] and h.velocity >= 90]
    beats = [link.beat_at(t) for t in snares]
    assert len(snares) >= 5 and all(abs(b - round(b)) < 0.02 and round(b) % 2 == 1 for b in beats), beats
    assert all(abs(link.beat_at(b) % 4) < 1e-3 or abs(link.beat_at(b) % 4 - 4) < 1e-3 for b in band.bars)
