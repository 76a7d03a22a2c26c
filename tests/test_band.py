"""The band players on a fake clock: the real model, synthetic player notes, commands.

Every test drives :class:`improv.band.Band` with the time passed in (5 ms steps), the
way ``improv listen --fast`` does, and looks at the events it plans. Tolerances are in
beats, milliseconds and notes.
"""

from __future__ import annotations

import numpy as np
import pytest

from improv.band import Band, BandSettings, parse_command, read_command_script
from improv.band.generators import ModelGenerator
from improv.band import measure as M
from improv.errors import ConfigError
from improv.events import BANDS, Note, NoteOff, NoteOn, notes_from_events
from improv.events import Command

BPM = 120.0
BEAT = 60.0 / BPM
STEP = 0.01


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


_MODEL = []


def model():
    from improv.model import load_model

    if not _MODEL:
        _MODEL.append(load_model())
    return _MODEL[0]


def melody(start: float, beats: float, low: int = 62, high: int = 74, seed: int = 0,
           rest_from: float | None = None, rest_to: float | None = None) -> list[tuple[int, float, float]]:
    """(pitch, onset, end) of a stepwise eighth/quarter-note line on the beat grid (C major)."""
    rng = np.random.default_rng(seed)
    scale = [p for p in range(low, high + 1) if p % 12 in (0, 2, 4, 5, 7, 9, 11)]
    i, t, out = len(scale) // 2, start, []
    while t < start + beats * BEAT - 1e-9:
        d = float(rng.choice([0.5, 0.5, 1.0])) * BEAT
        if rest_from is not None and rest_from <= t < rest_to:
            t = rest_to
            continue
        i = int(np.clip(i + rng.choice([-2, -1, 1, 2]), 0, len(scale) - 1))
        out.append((scale[i], t, t + 0.85 * d))
        t += d
    return out


def player_events(notes: list[tuple[int, float, float]], delay: float = 0.03) -> list:
    """NoteOn/NoteOff as the listener emits them: decided ``delay`` after the onset/end."""
    evs = []
    for p, a, b in notes:
        evs.append(NoteOn(a + delay, p, 80, onset=a))
        evs.append(NoteOff(b + delay, p, end=b))
    return sorted(evs, key=lambda e: e.time)


def drive(band: Band, events: list, until: float, commands: list[Command] = ()) -> list:
    """Run the band from 0 to ``until`` on a fake clock (10 ms steps); returns every band event."""
    out, i, k = [], 0, 0
    cmds = sorted(commands, key=lambda c: c.time)
    now = 0.0
    while now < until:
        while i < len(events) and events[i].time <= now:
            band.hear(events[i])
            i += 1
        while cmds and cmds[0].time <= now:
            band.command(cmds.pop(0), now)
        band.step(now)
        for ev in band.due(now):
            assert ev.time <= now + 1e-9, "an event left the plan before its time"
            out.append(ev)
        k += 1
        now = round(k * STEP, 9)
    return out + band.finish(now)


def run(commands=(), seconds=16.0, seed=3, bands=BANDS, notes=None, **kw) -> tuple[list, Band, list]:
    notes = notes if notes is not None else melody(0.5, seconds / BEAT)
    band = Band(BandSettings(bands=bands, tempo=kw.pop("tempo", BPM), seed=seed, **kw),
                generator=ModelGenerator(model(), seed))
    out = drive(band, player_events(notes), seconds, [parse_command(t, at) for at, t in commands])
    return out, band, notes


def band_notes(events, name):
    return notes_from_events([e for e in events if e.source == name], name)


@pytest.fixture(scope="module")
def base():
    return run()


def test_each_band_monophonic_in_range_and_every_note_ends(base):
    events, band, _ = base
    for name in BANDS:
        ons = [e for e in events if e.source == name and isinstance(e, NoteOn)]
        assert len(ons) >= 8, f"{name} played {len(ons)} notes in 16 s"
        sounding = None
        for e in sorted((e for e in events if e.source == name), key=lambda e: (e.time, isinstance(e, NoteOn))):
            if isinstance(e, NoteOn):
                assert sounding is None, f"{name}: NoteOn {e.pitch} at {e.time:.3f} while {sounding} sounds"
                sounding = e.pitch
            elif e.pitch == sounding:
                sounding = None
        assert sounding is None, f"{name}: note {sounding} never ended"
        lo, hi = band.ranges[name]
        assert all(lo <= e.pitch <= hi for e in ons), f"{name} left its range {lo}-{hi}"


def test_band_waits_for_the_player_and_plays_on_the_beat_grid(base):
    events, _, notes = base
    first_player = notes[0][1]
    first_band = min(e.time for e in events if isinstance(e, NoteOn))
    assert first_band > first_player
    # --tempo: beat 0 on the player's first onset; band onsets on sixteenths (1 ms)
    offsets = [((e.time - first_player) / (BEAT / 4)) for e in events if isinstance(e, NoteOn)]
    assert max(abs(x - round(x)) for x in offsets) * BEAT / 4 < 0.001


def test_stop_ends_notes_at_once_and_go_resumes_within_two_beats():
    events, band, _ = run([(5.0, "all: stop"), (9.0, "all: go")])
    offs = [e for e in events if isinstance(e, NoteOff) and 5.0 <= e.time <= 5.1]
    ons_before = [e for e in events if isinstance(e, NoteOn) and e.time < 5.0]
    assert ons_before and offs, "nothing was sounding to stop"
    assert max(e.time for e in offs) - 5.0 <= 0.010, "notes off more than 10 ms after stop"
    assert not [e for e in events if isinstance(e, NoteOn) and 5.0 <= e.time < 9.0], "a band played while stopped"
    after = [e.time for e in events if isinstance(e, NoteOn) and e.time >= 9.0]
    assert after and after[0] - 9.0 <= 2 * BEAT


def test_panic_silences_every_band_and_they_go_on_as_told():
    # panic inside a band note: the same run without it (identical up to the command) says when
    first, _, _ = run([(6.0, "bass: make room")], seconds=9.0)
    at = min(round(n.onset + 0.05, 2) for b in BANDS for n in band_notes(first, b)
             if n.onset >= 6.5 and n.offset - n.onset > 0.1)
    events, band, _ = run([(6.0, "bass: make room"), (at, "panic")])
    sounding_at = {n: M.sounding(band_notes(events, n), at - 1e-6) for n in BANDS}
    for name in BANDS:
        notes = band_notes(events, name)
        s = M.sounding(notes, at + 0.005)
        assert s is None or s.onset > at, f"{name} still sounds {s} after panic"
    assert any(sounding_at.values()), "nothing was sounding to panic"
    later = [e for e in events if isinstance(e, NoteOn) and e.time > at]
    assert later and later[0].time - at <= 2 * BEAT, "the bands did not go on after panic"
    assert band.players["bass"].latest().mode == "make-room"


def test_other_commands_take_effect_on_the_next_beat():
    _, band, _ = run([(4.1, "mid: busier"), (6.0, "high: fight"), (8.37, "all: more orderly")], seconds=10.0)
    rows = [e for e in band.log if e.event == "command"]
    assert len(rows) == 3
    for row in rows:
        delay_beats = (row.effect - row.time) / BEAT
        assert 0.0 < delay_beats <= 1.0 + 0.08 / BEAT + 1e-6, row  # the next beat at least 80 ms on
        phase = (row.effect - 0.5) / BEAT  # beat 0 on the first onset at 0.5 s
        assert abs(phase - round(phase)) < 1e-6, f"{row.command} took effect off the beat"


def test_busier_and_simpler_change_notes_per_beat_by_a_third():
    counts = {}
    for label, cmds in (("base", []), ("busier", [(6.0, "all: busier")]), ("simpler", [(6.0, "all: simpler")])):
        events, _, _ = run(cmds, seconds=16.0, seed=5)
        counts[label] = sum(1 for e in events if isinstance(e, NoteOn) and e.time >= 6.5)
    assert counts["busier"] >= 1.3 * counts["base"], counts
    assert counts["simpler"] <= 0.7 * counts["base"], counts


def test_make_room_keeps_out_of_the_players_register():
    # The mid band's range (E4-E5) lies inside the player's register (about E4-E5 too, the
    # 10th..90th percentile of a line walking over G3-G5): it cannot help playing there
    # until it makes room (then it moves an octave away, sparser and quieter). Measured
    # against the same run without the command, from half a second after it.
    notes = melody(0.5, 30, 55, 79, seed=1)
    player = [Note(a, b, p) for p, a, b in notes]
    counts, velocity, rate = {}, {}, {}
    for label, cmds in (("base", []), ("room", [(4.0, "mid: make room")])):
        events, _, _ = run(cmds, seconds=14.0, notes=notes, seed=2, bands=("mid",), ranges={"mid": (64, 76)})
        after = M.between(band_notes(events, "mid"), 4.5, 14.0)
        counts[label] = M.inside_recent(after, player)
        velocity[label] = np.mean([n.velocity for n in after]) if after else 0.0
        rate[label] = len(after)
    assert counts["base"] >= 8, f"without make room the band must play in the register (notes inside): {counts}"
    assert rate["room"] >= 3, f"make room still plays (out of the way): {rate}"
    assert counts["room"] <= 0.2 * counts["base"], f"notes inside the player's register: {counts}"
    assert velocity["room"] < velocity["base"], "make room is also quieter"
    assert rate["room"] < rate["base"], "and sparser"


def test_take_over_fills_the_gap_and_hands_back_when_the_player_returns():
    gap = (8.0, 11.0)  # the player rests 6 beats
    notes = melody(0.5, 30, seed=4, rest_from=gap[0], rest_to=gap[1])
    events, band, _ = run([(0.0, "high: take over 0.2")], seconds=15.0, notes=notes)
    last_end = max(b for _, a, b in notes if a < gap[0])
    back = min(a for _, a, _ in notes if a >= gap[1])
    high = band_notes(events, "high")
    during = M.between(high, last_end, back)
    assert during, "the high band did not take over"
    assert during[0].onset - last_end <= 1.0 * BEAT, "take over started more than a beat into the gap"
    assert not M.between(high, 0.0, last_end - 0.01), "take over plays only in the player's gaps"
    s = [n for n in high if n.onset < back and n.offset > back]
    assert all(n.offset - back <= BEAT for n in s), "did not hand back within a beat"
    assert all(n.offset - back <= 0.05 for n in s), "hand back is at once (the player's note is heard 30 ms late)"
    assert not M.between(high, back + 0.05, back + BEAT), "played again before the next gap"
    phrase = [Note(a, b, p) for p, a, b in notes if a < gap[0] and a >= gap[0] - 8 * BEAT]
    assert M.correlation(M.pc_profile(during), M.pc_profile(phrase)) >= 0.5


def loose_line(seconds: float, seed: int = 2, start: float = 0.3, hold: float = 0.8,
               gap: float = 0.4) -> list[tuple[int, float, float]]:
    """An unmetered player line: notes 0.2 to 1.3 s apart plus a gap of up to ``gap``
    seconds, each sounding ``hold`` of the time to the next onset."""
    rng = np.random.default_rng(seed)
    t, notes = start, []
    while t < seconds:
        d = float(rng.uniform(0.2, 1.3))
        notes.append((int(rng.integers(62, 74)), t, t + hold * d))
        t += d + float(rng.uniform(0.0, gap))
    return notes


def test_free_mode_without_a_tempo_answers_within_250_ms():
    notes = loose_line(12.0, seed=2)  # loose, unmetered: durations from 0.2 to 1.3 s
    events, band, _ = run([(6.03, "mid: simpler"), (8.0, "all: stop")], seconds=12.0, notes=notes, tempo=None,
                          free=True)
    maps = [e for e in band.log if e.event == "time map"]
    assert maps and not any(m.metered for m in maps)
    row = next(e for e in band.log if e.command == "mid simpler")
    assert 0.0 <= row.effect - row.time <= 0.250
    assert [e for e in events if isinstance(e, NoteOn) and 1.0 < e.time < 8.0], "free mode played nothing"


def test_free_mode_plays_about_as_much_as_metered_and_busier_simpler_work_there():
    # In free mode (no tempo: what `improv listen` does until the beat tracker locks) a
    # "beat" is half a second, and while the player plays each band aims at its metered
    # density at 120 BPM (bass and mid 1 note per half second, high 1 per second).
    # Tolerances on a legato rubato line (the player seldom rests): every band at least
    # half of that aim (notes per second, from 2 s on), all bands together 0.8 to 1.5
    # times what they play metered at 120 BPM on the same line (holding back while the
    # player played gave about 0.5), busier/simpler a third more/less as when metered.
    notes = loose_line(16.0, seed=2, hold=0.95, gap=0.1)
    counts, after = {}, {}
    for label, kw, cmds in (("free", dict(tempo=None, free=True), []), ("metered", dict(tempo=BPM), []),
                            ("busier", dict(tempo=None, free=True), [(6.0, "all: busier")]),
                            ("simpler", dict(tempo=None, free=True), [(6.0, "all: simpler")])):
        events, band, _ = run(cmds, seconds=16.0, notes=notes, seed=4, **kw)
        assert {e.metered for e in band.log if e.event == "time map"} == {label == "metered"}
        ons = [e for e in events if isinstance(e, NoteOn)]
        counts[label] = {b: sum(1 for e in ons if e.source == b and 2.0 <= e.time < 16.0) for b in BANDS}
        after[label] = sum(1 for e in ons if e.time >= 6.5)
    per_second = {b: counts["free"][b] / 14.0 for b in BANDS}
    for b, least in (("bass", 1.0), ("mid", 1.0), ("high", 0.5)):
        assert per_second[b] >= least, f"free mode: {b} {per_second[b]:.2f} notes/s (< {least}); {counts}"
    free, metered = sum(counts["free"].values()), sum(counts["metered"].values())
    assert 0.8 * metered <= free <= 1.5 * metered, counts
    assert after["busier"] >= 1.3 * after["free"], after
    assert after["simpler"] <= 0.7 * after["free"], after


def test_tap_tempo_puts_the_band_on_the_tapped_beat():
    notes = melody(0.3, 24, seed=6)
    taps = [(1.0 + 0.6 * i, "tap") for i in range(4)]  # 100 BPM, last tap at 2.8 s
    events, band, _ = run(taps, seconds=9.0, notes=notes, tempo=None, follow=False)
    maps = [e for e in band.log if e.event == "time map" and e.metered]
    assert maps and abs(maps[-1].bpm - 100.0) < 0.5
    ons = [e.time for e in events if isinstance(e, NoteOn) and e.time > 4.0]
    assert ons
    phase = [((t - 2.8) / 0.15) for t in ons]  # sixteenths of the tapped beat
    assert max(abs(x - round(x)) for x in phase) * 0.15 < 0.001


def test_the_context_forgets_old_notes():
    events, band, _ = run([], seconds=14.0, context_bars=1, bands=("bass",))
    oldest = min(n.start for n in band.context.notes)
    assert oldest > 14.0 - 4 * BEAT - 2 * BEAT  # a bar (plus the note ending then)
    assert band.remaps >= 2, "the model was not rebuilt to forget"


def test_player_register_is_heard_or_set():
    events, band, _ = run([(3.0, "player: bass")], seconds=6.0)
    assert band.register_override == band.ranges["bass"]
    auto = Band(BandSettings(seed=0, tempo=BPM), generator=ModelGenerator(model(), 0))
    drive(auto, player_events(melody(0.5, 8, 64, 76)), 4.0)
    reg = auto.context.player_register(4.0)
    assert reg is not None and 64 <= reg[0] <= reg[1] <= 76


def test_bad_commands_are_one_line_config_errors():
    band = Band(BandSettings(seed=0), generator=ModelGenerator(model(), 0))
    with pytest.raises(ConfigError, match="unknown band"):
        band.command(Command(0.0, "piano", "busier"))
    with pytest.raises(ConfigError, match="unknown command"):
        band.command(Command(0.0, "bass", "louder"))
    with pytest.raises(ConfigError, match="out of range"):
        band.command(Command(0.0, "high", "take-over", 2.0))


def test_command_script(tmp_path):
    p = tmp_path / "cmds.txt"
    p.write_text("# warm up\n2.0 bass: make room\n\n4 all: stop  # silence\n3.5 high: take over 0.7\n")
    cmds = read_command_script(p)
    assert [(c.time, c.target, c.command, c.value) for c in cmds] == [
        (2.0, "bass", "make-room", None), (3.5, "high", "take-over", 0.7), (4.0, "all", "stop", None)]
    p.write_text("1.0 bass: busier\nsoon mid: stop\n")
    with pytest.raises(ConfigError, match=r"cmds.txt:2: 'soon' is not a time"):
        read_command_script(p)
    p.write_text("1.0 bass: louder\n")
    with pytest.raises(ConfigError, match=r"cmds.txt:1: unknown command"):
        read_command_script(p)
    with pytest.raises(ConfigError, match="cannot read"):
        read_command_script(tmp_path / "missing.txt")


def test_swing_moves_the_bands_off_beats():
    events, band, _ = run([], seconds=8.0, swing=66, bands=("mid", "high"))
    beat0 = 0.5  # --tempo: beat 0 on the player's first onset
    fractions = sorted({round(((e.time - beat0) / BEAT) % 1.0, 3) for e in events if isinstance(e, NoteOn)})
    assert fractions, "no band notes"
    swung = (0.0, 0.33, 0.66, 0.83)  # sixteenths 0, 1/4, 1/2, 3/4 of the beat at 66 % swing
    assert all(min(abs(f - s) for s in (*swung, 1.0)) < 0.004 for f in fractions), fractions
    assert any(abs(f - 0.66) < 0.004 for f in fractions), "no swung off-beat in 8 s"


def test_lead_command_gives_one_band_the_lead_and_the_others_follow():
    events, band, _ = run([(3.0, "high: lead busy contrapuntal")], seconds=10.0, seed=7)
    high = band.players["high"].latest()
    assert high.mode == "lead"
    for name in ("bass", "mid"):
        o = band.players[name].latest()
        assert (o.mode, o.style, o.follows, o.sparse) == ("accompany", "contrapuntal", "high", False)
    base, _, _ = run([], seconds=10.0, seed=7)

    def count(evs):
        return sum(1 for e in evs if isinstance(e, NoteOn) and e.source == "high" and e.time >= 3.5)

    assert count(events) >= 1.3 * count(base), "the leading band plays more (one rung busier)"
    vel = [e.velocity for e in events if isinstance(e, NoteOn) and e.source == "high" and e.time >= 3.5]
    vel0 = [e.velocity for e in base if isinstance(e, NoteOn) and e.source == "high" and e.time >= 3.5]
    assert np.mean(vel) > np.mean(vel0), "and louder"
