"""Harmony: chord symbols, lead sheets, the chord follower, and the band playing changes.

The band tests drive the real model on a fake clock (as ``tests/test_band.py``) with
synthetic player notes; tolerances are in beats and notes.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_band import band_notes, drive, model, player_events

from improv.band import Band, BandSettings
from improv.band.band import FORM_START
from improv.band.generators import ModelGenerator
from improv.cli import main
from improv.errors import ConfigError
from improv.events import NoteOn
from improv.harmony import parse_chord
from improv.harmony.follower import ChordFollower, SecondsGrid
from improv.harmony.leadsheet import parse_changes, read_changes

# ------------------------------------------------------------------ chord symbols

# every quality in POP909's chord_midi.txt (Harte), with the pitch classes over C
POP909 = {
    "C:maj": {0, 4, 7}, "C:min": {0, 3, 7}, "C:sus2": {0, 2, 7}, "C:sus4": {0, 5, 7}, "C:min7": {0, 3, 7, 10},
    "C:maj7": {0, 4, 7, 11}, "C:7": {0, 4, 7, 10}, "C:maj6": {0, 4, 7, 9}, "C:dim": {0, 3, 6},
    "C:hdim7": {0, 3, 6, 10}, "C:aug": {0, 4, 8}, "C:min6": {0, 3, 7, 9}, "C:dim7": {0, 3, 6, 9},
    "C:minmaj7": {0, 3, 7, 11}, "C:sus4(b7)": {0, 5, 7, 10},
}
# slash chords in POP909: the bass as a degree
POP909_SLASH = {"C:maj/3": 4, "C:maj/5": 7, "C:min/b3": 3, "C:min/5": 7, "C:min7/b7": 10, "C:maj7/7": 11,
                "C:7/b7": 10, "C:maj7/3": 4, "C:maj7/5": 7, "C:7/5": 7, "C:min7/5": 7, "C:7/3": 4}
# the Weimar Jazz Database's chord spellings
WJD = {
    "C": {0, 4, 7}, "C-": {0, 3, 7}, "C7": {0, 4, 7, 10}, "C-7": {0, 3, 7, 10}, "Cj7": {0, 4, 7, 11},
    "C6": {0, 4, 7, 9}, "C-6": {0, 3, 7, 9}, "C-j7": {0, 3, 7, 11}, "Co": {0, 3, 6}, "Co7": {0, 3, 6, 9},
    "Cm7b5": {0, 3, 6, 10}, "Cø": {0, 3, 6, 10}, "C+": {0, 4, 8}, "C+7": {0, 4, 8, 10}, "Csus": {0, 5, 7},
    "C7sus": {0, 5, 7, 10}, "C79": {0, 4, 7, 10, 2}, "C79b": {0, 4, 7, 10, 1}, "C79#": {0, 4, 7, 10, 3},
    "C7911#": {0, 4, 7, 10, 2, 6}, "C7913": {0, 4, 7, 10, 2, 9}, "C713": {0, 4, 7, 10, 9}, "Cj79": {0, 4, 7, 11, 2},
    "C-79": {0, 3, 7, 10, 2}, "C69": {0, 4, 7, 9, 2}, "C7alt": {0, 4, 10, 1, 3, 6, 8},
}
LEAD = {"Dm7": (2, {2, 5, 9, 0}), "G7": (7, {7, 11, 2, 5}), "Bbmaj7": (10, {10, 2, 5, 9}),
        "F#m7b5": (6, {6, 9, 0, 4}), "Eb-7": (3, {3, 6, 10, 1}), "Abm(maj7)": (8, {8, 11, 3, 7}),
        "Db7#11": (1, {1, 5, 8, 11, 7}), "E7b9": (4, {4, 8, 11, 2, 5}), "Bdim7": (11, {11, 2, 5, 8})}


@pytest.mark.parametrize("symbol,tones", [*POP909.items(), *WJD.items()])
def test_every_quality_of_pop909_and_wjd(symbol, tones):
    c = parse_chord(symbol)
    assert c.root == 0 and set(c.tones) == tones, f"{symbol}: {sorted(c.tones)}"


@pytest.mark.parametrize("symbol,bass", POP909_SLASH.items())
def test_pop909_slash_chords(symbol, bass):
    c = parse_chord(symbol)
    assert c.root == 0 and c.bass == bass and bass in c.tones


@pytest.mark.parametrize("symbol", LEAD)
def test_lead_sheet_symbols(symbol):
    root, tones = LEAD[symbol]
    c = parse_chord(symbol)
    assert (c.root, set(c.tones)) == (root, tones)


def test_slash_chords_and_no_chord():
    c = parse_chord("C/E")
    assert (c.root, c.bass, set(c.tones)) == (0, 4, {0, 4, 7})
    c = parse_chord("Am7/G")
    assert (c.root, c.bass) == (9, 7)
    c = parse_chord("D/F#")
    assert c.bass == 6 and c.harte() == "D:maj"
    assert parse_chord("C/Bb").tones == (0, 4, 7, 10)  # a bass outside the chord sounds too
    assert parse_chord("N") is None and parse_chord("NC") is None


@pytest.mark.parametrize("bad", ["H7", "Cxyz", "C:foo", "C:maj(b7", "C/X", "", "7", "Cmaj7/"])
def test_bad_chord_symbols_name_the_symbol(bad):
    with pytest.raises(ConfigError) as e:
        parse_chord(bad)
    assert str(e.value).count("\n") == 0
    if bad:
        assert repr(bad) in str(e.value) or "empty" in str(e.value)


# ------------------------------------------------------------------ lead sheets

def test_bars_repeats_and_chords_sharing_a_bar():
    f = parse_changes("| Dm7 G7 | Cmaj7 | % | A7 |")
    assert f.beats == 16
    names = [(round(b, 3), f.at(b)[0].symbol) for b in (0, 1.9, 2, 4, 8, 12, 16, 18)]
    assert names == [(0, "Dm7"), (1.9, "Dm7"), (2, "G7"), (4, "Cmaj7"), (8, "Cmaj7"), (12, "A7"), (16, "Dm7"),
                     (18, "G7")]
    assert f.at(17)[1:3] == (0, 1)  # bar 1 of the second chorus
    assert [s for s, _ in parse_changes("| C D E |", 4).bars[0]] == [0, 2, 3]
    assert [s for s, _ in parse_changes("| C D E |", 3).bars[0]] == [0, 1, 2]


def test_chordpro_file(tmp_path):
    p = tmp_path / "song.cho"
    p.write_text("{title: test}\n# verse\n[Am]When I [F]find\n[C]myself\n\n[G]times of trouble\n")
    f = read_changes(str(p))
    assert [[c.symbol for _, c in bar] for bar in f.bars] == [["Am", "F"], ["C"], ["G"]]
    inline = tmp_path / "changes.txt"
    inline.write_text("| Dm7 | G7 |\n| Cmaj7 | % |\n")
    assert len(read_changes(str(inline)).bars) == 4


@pytest.mark.parametrize("text,words", [("| Dm7 | Hm7 |", ["bar 2", "'Hm7'"]), ("| % | C |", ["bar 1", "%"]),
                                        ("| C | | D |", ["bar 2", "empty"]), ("| C %  |", ["bar 1", "%"])])
def test_bad_changes_name_the_bar_and_symbol(text, words):
    with pytest.raises(ConfigError) as e:
        parse_changes(text)
    for w in words:
        assert w in str(e.value)


def test_cli_bad_changes_one_line_exit_2(capsys):
    code = main(["listen", "--input", "nothing.wav", "--fast", "--no-midi", "--synth", "none", "--bands", "all",
                 "--tempo", "100", "--changes", "| Dm7 G7 | Cmaj7 | Xyz |"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "bar 3" in err[0] and "Xyz" in err[0]
    code = main(["listen", "--input", "nothing.wav", "--fast", "--no-midi", "--synth", "none", "--bands", "all",
                 "--changes", "| C | G |"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--tempo" in err[0]


# ------------------------------------------------------------------ the follower

CHANGES = "| C | Am | F | G | C | Em | Dm | G7 |"


def arpeggios(form, bars: int, beat: float, kind: str) -> list[tuple[int, float, float]]:
    """(pitch, onset, end): per bar, eighth notes up and down the chord (root, third,
    fifth, octave, fifth, third, root, third), or up the key's scale from the root to the
    fifth and down again (1 2 3 5 5 4 3 1)."""
    out = []
    for bar in range(bars):
        c = form.at(bar * 4)[0]
        tones = sorted(c.tones, key=lambda x: (x - c.root) % 12)
        root = 60 + c.root
        chord_line = [root, root + (tones[1] - c.root) % 12, root + (tones[2] - c.root) % 12, root + 12]
        if kind == "arpeggio":
            line = chord_line + chord_line[2::-1] + [chord_line[1]]
            rhythm = [0.5] * 8
        else:  # up the C major scale from the root to the fifth and down again (1 2 3 5 | 5 4 3 1)
            scale = [p for p in range(root, root + 13) if p % 12 in (0, 2, 4, 5, 7, 9, 11)]
            third = root + (tones[1] - c.root) % 12
            fifth = root + (tones[2] - c.root) % 12
            line = [root, scale[1], third, fifth, fifth, scale[3], third, root]
            rhythm = [0.5] * 8
        t = bar * 4 * beat
        for p, d in zip(line, rhythm):
            out.append((p, t, t + 0.9 * d * beat))
            t += d * beat
    return out


@pytest.mark.parametrize("evidence", ["templates", "learned"])
@pytest.mark.parametrize("kind", ["arpeggio", "scale"])
def test_follower_names_the_chords_of_arpeggios_and_scales(kind, evidence):
    """By the second half of each bar (after two beats of it), the follower names the bar's
    chord (root and major/minor), on at least 14 of the 16 bars — with the templates and
    with the learned recogniser (the band's default, models/chords.pt)."""
    from improv.harmony.source import default_follower

    form = parse_changes(CHANGES)
    beat = 0.5
    notes = arpeggios(form, 16, beat, kind)
    f = ChordFollower() if evidence == "templates" else default_follower()
    assert (f.recogniser is not None) == (evidence == "learned")
    grid = SecondsGrid(2 * beat)  # half bars
    evs = sorted([(s, 1, p) for p, s, e in notes] + [(e, 0, p) for p, s, e in notes])
    right = 0
    i = 0
    for bar in range(16):
        t = (bar * 4 + 2.75) * beat  # late in the bar's second half: what it decided for then
        while i < len(evs) and evs[i][0] <= t:
            at, on, p = evs[i]
            f.hear_on(p, at) if on else f.hear_off(at)
            i += 1
        named = f.state(t, t, grid).chord
        truth = form.at(bar * 4)[0]
        right += named.root == truth.root and named.minor == truth.minor
    assert right >= 14, f"{right} of 16 bars named"


def test_recogniser_online_equals_offline():
    """The learned recogniser read frame by frame as notes arrive (at irregular "now"s)
    gives the posteriors of the whole melody read at once, to 1e-4."""
    from improv.harmony import learned

    net = learned.load()
    assert net is not None, "models/chords.pt is missing"
    notes = [(s, e, p) for p, s, e in arpeggios(parse_changes(CHANGES), 4, 0.45, "scale")]
    n = int(notes[-1][1] / learned.FRAME)
    offline = learned.posteriors(net, notes, n)
    rec = learned.Recogniser(net)
    rng = np.random.default_rng(1)
    now, got = 0.0, {}
    while rec.frames < n:
        now = min(now + float(rng.uniform(0.01, 0.4)), n * learned.FRAME)
        heard = [(s, e if e <= now else None, p) for s, e, p in notes if s <= now]
        rec.advance(heard, now)
        got[rec.frames - 1] = rec._post.copy()
    for k, post in got.items():
        assert np.allclose(post, offline[k], atol=1e-4), k


def test_recogniser_features_on_a_grid():
    """A note from 0.1 to 0.3 s of pitch 64 (E) on the 125 ms grid: 0.2 of frame 0 (its
    onset), all of frame 1, 0.4 of frame 2, nothing of frame 3; the rest of each frame is
    silent; transposed by 3 it is G."""
    from improv.harmony.learned import frame_features

    x = frame_features([(0.1, 0.3, 64)], 4)
    assert x[:, 4] == pytest.approx([0.2, 1.0, 0.4, 0.0]) and x[:, :12].sum() == pytest.approx(1.6)
    assert list(x[:, 12]) == [1, 0, 0, 0] and x[:, 13] == pytest.approx([0.8, 0.0, 0.6, 1.0])
    assert frame_features([(0.1, 0.3, 64)], 4, shift=3)[1, 7] == pytest.approx(1.0)


# ------------------------------------------------------------------ the band plays the changes

BPM = 120.0
BEAT = 60.0 / BPM


def form_start(count_in: int) -> float:
    """When the form's first bar starts: FORM_START into the session, or with a count-in on
    the drummer's clock after an empty bar and the count-in bars."""
    return (count_in + 1) * 4 * BEAT if count_in else FORM_START


def band_with(changes: str, seconds: float, count_in: int = 0, seed: int = 3, notes=None):
    band = Band(BandSettings(tempo=BPM, changes=changes, count_in=count_in, seed=seed),
                generator=ModelGenerator(model(), seed))
    if notes is None:
        start = form_start(count_in)
        rng = np.random.default_rng(seed)
        notes, t = [], start + 0.25
        while t < seconds - 0.5:
            d = float(rng.choice([0.5, 1.0])) * BEAT
            notes.append((int(rng.choice([64, 65, 67, 69, 71, 72, 74])), t, t + 0.9 * d))
            t += d
    out = drive(band, player_events(notes), seconds)
    return out, band


def chord_at(form, count_in: int, t: float):
    beat = (t - FORM_START) / BEAT - count_in * 4
    return form.at(max(beat, 0.0))[0]


def test_with_changes_every_bass_note_is_a_chord_tone():
    text = "| Dm7 G7 | Cmaj7 | % | A7 |"
    form = parse_changes(text)
    out, band = band_with(text, 20.0)
    bass = band_notes(out, "bass")
    assert len(bass) >= 10, f"the bass played {len(bass)} notes"
    for n in bass:
        # a chord tone of every chord it sounds over (the bass does not ring across a change)
        t = n.onset
        while t < n.offset - 1e-3:
            c = chord_at(form, 0, t + 1e-4)
            assert c.has(int(n.pitch)), f"bass {n.pitch} at {t:.2f} s is not in {c.symbol}"
            t += BEAT / 4
    for name in ("mid", "high"):
        notes = band_notes(out, name)
        share = np.mean([chord_at(form, 0, n.onset + 1e-4).has(int(n.pitch)) for n in notes])
        assert share >= 0.8, f"{name}: {share:.2f} of its notes are chord tones"
    # strong beats: the root or the fifth in the bass when it sounds there
    roots = fifth = total = 0
    for b in range(int(16 / BEAT)):
        t = FORM_START + b * BEAT
        if b % 2:
            continue
        sounding = [n for n in bass if n.onset <= t + 1e-4 < n.offset]
        if sounding:
            c = chord_at(form, 0, t + 1e-4)
            total += 1
            roots += int(sounding[0].pitch) % 12 == c.root
            fifth += int(sounding[0].pitch) % 12 == c.fifth
    assert total >= 6 and (roots + fifth) / total >= 0.8, f"{roots}+{fifth} of {total} strong beats root/fifth"
    assert [c["chord"] for c in band.chords[:5]] == ["Dm7", "G7", "Cmaj7", "A7", "Dm7"]
    assert band.chords[0]["bar"] == 1 and band.chords[4]["chorus"] == 2


def test_count_in():
    text = "| Am | F | C | G |"
    out, band = band_with(text, 8.0, count_in=1)
    start = form_start(1)
    before = [e for e in out if isinstance(e, NoteOn) and e.time < start - 1e-6 and e.source != "drums"]
    assert [round((e.time - start) / BEAT, 3) for e in before] == [-4, -3, -2, -1], "one root a beat"
    assert len({e.source for e in before}) == 1 and all(e.pitch % 12 == 9 for e in before)  # A, the first root
    assert before[0].velocity > before[1].velocity  # the bar's first beat accented
    sticks = [e for e in out if isinstance(e, NoteOn) and e.source == "drums" and e.time < start - 1e-6]
    assert [round((e.time - start) / BEAT, 3) for e in sticks] == [-4, -3, -2, -1], "the drummer's sticks"
    after = [e for e in out if isinstance(e, NoteOn) and e.time >= start - 1e-6]
    assert after and min(e.time for e in after if e.source == "bass") >= start - 1e-6
    assert band.chords[0]["chord"] == "Am" and abs(band.chords[0]["time"] - start) < 1e-3


# ------------------------------------------------------------------ the session: recording and display

def test_changes_session_records_chords_and_markers(tmp_path, capsys):
    """``improv listen --changes ... --record``: chords.jsonl and marker events in session.mid,
    the form's bars and choruses counted, and the display's chord line."""
    import mido
    import soundfile as sf
    from improv.testing.signals import ToneSpec, render

    from improv.display import SessionDisplay, render_snapshot
    from improv.harmony.record import read_chords
    from improv.harmony.source import harmony_line

    sr = 22050
    tones = [ToneSpec(0.6 + 0.5 * i, 0.4, m) for i, m in enumerate([69, 72, 76, 72, 65, 69, 72, 69] * 2)]
    wav = tmp_path / "take.wav"
    sf.write(str(wav), render(tones, sr, total=9.0).astype(np.float32), sr)
    code = main(["listen", "--input", str(wav), "--fast", "--no-midi", "--synth", "none", "--bands", "all",
                 "--tempo", "120", "--changes", "| Am | F | C | G |", "--key", "A minor",
                 "--record", str(tmp_path / "rec")])
    assert code == 0, capsys.readouterr().err
    folder = next((tmp_path / "rec").iterdir())
    chords = read_chords(folder)
    assert [c["chord"] for c in chords[:5]] == ["Am", "F", "C", "G", "Am"]
    assert [(c["bar"], c["chorus"]) for c in chords[:5]] == [(1, 1), (2, 1), (3, 1), (4, 1), (1, 2)]
    assert all(abs(b["time"] - a["time"] - 2.0) < 1e-3 for a, b in zip(chords, chords[1:]))  # a bar at 120 BPM
    mid = mido.MidiFile(str(folder / "session.mid"))
    track = next(t for t in mid.tracks if any(m.type == "track_name" and m.name == "chords" for m in t))
    markers = [m.text for m in track if m.type == "marker"]
    assert markers[:5] == ["Am", "F", "C", "G", "Am"]
    # on the session's tempo map: each chord marker at its chord's time, within a tick (0.5 ms)
    from improv.timing.tempomap import TempoMap

    tmap, tick = TempoMap.from_midi(mid), 0
    times = []
    for m in track:
        tick += m.time
        if m.type == "marker":
            times.append(tmap.seconds(tick))
    assert all(abs(t - c["time"]) < 0.002 for t, c in zip(times, chords)), (times[:4], chords[:4])
    d = SessionDisplay()
    d.set_harmony(harmony_line({"chord": "Am", "next": "F", "key": "A minor", "bar": 1, "chorus": 2,
                                "source": "changes"}))
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(render_snapshot(d.snapshot()))
    assert "Am -> F   key A minor   bar 1 chorus 2" in console.export_text()


def test_lead_harmonic_makes_the_band_propose_changes():
    """``all: lead harmonic`` switches the follower to the band's own changes: a chord a bar,
    chosen before the bar, in the key heard (C major here)."""
    from test_band import run

    events, band, _ = run(commands=[(4.0, "mid: lead harmonic")], seconds=14.0)
    auto = [c for c in band.chords if c["source"] == "auto"]
    assert len(auto) >= 3
    times = [c["time"] for c in auto]
    assert all(abs(((t - times[0]) / (4 * 0.5)) - round((t - times[0]) / (4 * 0.5))) < 1e-3 for t in times), \
        "one chord a bar, changing on bar lines"
    scale = {0, 2, 4, 5, 7, 9, 11}
    assert sum(set(parse_chord(c["chord"]).tones) <= scale for c in auto) >= 0.7 * len(auto)


@pytest.mark.parametrize("text,key", [("C", (0, False)), ("Am", (9, True)), ("F# minor", (6, True)),
                                      ("Bb major", (10, False)), ("Ebm", (3, True))])
def test_key_option(text, key):
    from improv.harmony.source import parse_key

    assert parse_key(text) == key


def test_harmony_options_need_a_band(capsys):
    code = main(["listen", "--input", "nothing.wav", "--fast", "--no-midi", "--synth", "none", "--bands", "none",
                 "--changes", "| C | G |", "--tempo", "100"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--bands" in err[0]
    code = main(["listen", "--input", "nothing.wav", "--fast", "--no-midi", "--synth", "none", "--bands", "all",
                 "--key", "H major"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--key" in err[0]


def test_listen_help_shows_the_harmony_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["listen", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--changes" in out and "--count-in" in out and "| Dm7 G7 | Cmaj7 | % |" in out


class _Told(ModelGenerator):
    """The band's model generator, keeping every chord the band hands it."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.told: list[tuple[float, object]] = []

    def set_chord(self, at, chord, given=True) -> None:
        self.told.append((at, chord, given))
        super().set_chord(at, chord, given)


def test_the_band_hands_the_model_the_chord_it_plays_over():
    """With changes, every frame the band plans tells the model the chord of that frame (the
    changes as given); the session holds it for the frames it predicts."""
    from improv.model.encoding import chord_class_of

    text = "| Dm7 G7 | Cmaj7 | F | A7 |"
    form = parse_changes(text)
    gen = _Told(model(), 3)
    band = Band(BandSettings(tempo=BPM, changes=text, seed=3), generator=gen)
    rng = np.random.default_rng(3)
    notes = [(int(rng.choice([64, 65, 67, 69])), FORM_START + 0.25 + 0.5 * i, FORM_START + 0.6 + 0.5 * i)
             for i in range(20)]
    drive(band, player_events(notes), 12.0)
    m = band.map
    checked = 0
    for at, chord, given in gen.told:
        t = m.seconds(at)
        if t < FORM_START + 1e-6:
            continue
        want = chord_at(form, 0, t + 1e-4)
        assert chord is not None and chord.symbol == want.symbol, f"{t:.2f} s: told {chord}, plays over {want.symbol}"
        assert given
        checked += 1
    assert checked >= 0.9 * (12.0 - FORM_START) / (BEAT / 4)  # every frame from the form's start
    s = gen.session
    for at, chord, _ in gen.told[-8:]:
        assert s.chord_at(s.grid.frame(at)) == chord_class_of(chord)


def test_the_model_is_told_chords_given_and_not_the_followers_guess():
    """Following, the band hands on the follower's chord as not given: the model hears
    "unknown" (chosen on validation songs); changes reach it."""
    from improv.model.encoding import CHORD_UNKNOWN

    gen = _Told(model(), 3)
    band = Band(BandSettings(tempo=BPM, seed=3), generator=gen)
    rng = np.random.default_rng(4)
    notes = [(int(rng.choice([60, 64, 67, 72])), 0.25 + 0.5 * i, 0.6 + 0.5 * i) for i in range(16)]
    drive(band, player_events(notes), 8.0)
    followed = [(at, c) for at, c, given in gen.told if c is not None]
    assert followed and not any(given for _, c, given in gen.told if c is not None)
    s = gen.session
    assert all(s.chord_at(s.grid.frame(at)) == CHORD_UNKNOWN for at, _ in followed[-8:])
    gen.set_chord(followed[-1][0], parse_chord("Am"), given=True)
    assert s.chord_at(s.grid.frame(followed[-1][0])) == 21
