"""The live generation session, driven with a fake clock on a small untrained model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from improv.errors import ConfigError
from improv.model import BandModel, VoiceControl, fight, forbid_pitches, make_room
from improv.model.net import FrameNet, ModelConfig

SMALL = ModelConfig(d_model=48, n_layers=2, n_heads=2, d_ff=96, head_hidden=48, context=64, dropout=0.0)


@pytest.fixture(scope="module")
def model() -> BandModel:
    torch.manual_seed(11)
    return BandModel(FrameNet(SMALL).eval())


MELODY = [(67, 0.0, 0.9), (69, 1.0, 1.5), (71, 1.5, 2.0), (72, 2.0, 3.75), (71, 4.0, 4.5), (67, 4.5, 6.0)]


def _play(sess, beats: int, voices=("bass", "mid", "high"), controls=None, hooks=None, accept=True):
    """Feed MELODY as it would arrive (each note when it starts, closed when it ends) and
    propose the bands beat by beat; returns the proposals."""
    props = []
    nxt, open_end = 0, None
    for beat in range(beats):
        now = float(beat)
        if open_end is not None and open_end <= now:
            sess.note_off("player", open_end)
            open_end = None
        while nxt < len(MELODY) and MELODY[nxt][1] < now:
            p, s, e = MELODY[nxt]
            sess.observe("player", p, s, e if e <= now else None)
            open_end = e if e > now else None
            nxt += 1
        prop = sess.propose(now, voices=voices, controls=controls if beat == 0 else None, hooks=hooks)
        if accept:
            sess.accept(prop)
        props.append(prop)
    return props


def _all_notes(props):
    return [n for p in props for n in p.notes]


def test_same_seed_same_notes_other_seed_other_notes(model):
    a = _all_notes(_play(model.session(seed=5), 12))
    b = _all_notes(_play(model.session(seed=5), 12))
    c = _all_notes(_play(model.session(seed=6), 12))
    assert a == b
    assert a != c


def test_ranges_roles_and_monophony(model):
    controls = {"bass": VoiceControl(low=36, high=43, density=1), "mid": VoiceControl(role="silent"),
                "high": VoiceControl(low=70, high=76, register=73)}
    sess = model.session(seed=1)
    props = _play(sess, 16, controls=controls)
    notes = _all_notes(props)
    assert not [n for n in notes if n.voice == "mid"]
    for n in notes:
        lo, hi = (36, 43) if n.voice == "bass" else (70, 76)
        assert lo <= n.pitch <= hi, n
    for voice in ("bass", "high"):
        line = sess.notes(voice)
        assert line, f"{voice} played nothing in 16 beats"
        for (_, s0, e0), (_, s1, _) in zip(line, line[1:]):
            assert e0 is not None and e0 <= s1 + 1e-9


def test_hooks_can_forbid_and_make_room(model):
    def no_c(ctx, logits):
        forbid_pitches(logits, range(24, 109, 12))  # every C

    props = _play(model.session(seed=2), 16, hooks={"bass": no_c, "mid": no_c, "high": no_c})
    assert all(n.pitch % 12 != 0 for n in _all_notes(props))
    seen = []

    def spy(ctx, logits):
        seen.append(ctx)
        make_room(2)(ctx, logits)

    props = _play(model.session(seed=3), 8, voices=("high",), controls={"high": VoiceControl(low=60, high=80)},
                  hooks=spy)
    assert seen and all(c.voice == "high" and c.low == 60 for c in seen)
    lead_at = {c.frame: c.lead_pitch for c in seen}
    for n in _all_notes(props):
        lead = lead_at[round(n.start * 4)]
        assert lead is None or abs(n.pitch - lead) > 2


def test_fight_hook_favours_dissonance(model):
    def diss_rate(strength):
        heard = {}

        def hook(ctx, logits):
            heard[ctx.frame] = ctx.lead_pitch
            if strength:
                fight(strength)(ctx, logits)

        props = _play(model.session(seed=4), 16, voices=("high",), controls={"high": VoiceControl(low=55, high=85)},
                      hooks=hook)
        rates = [(n.pitch - heard[round(n.start * 4)]) % 12 in (1, 2, 6, 10, 11)
                 for n in _all_notes(props) if heard[round(n.start * 4)] is not None]
        assert len(rates) > 20
        return np.mean(rates)

    assert diss_rate(6.0) > diss_rate(0.0) + 0.3


def test_late_note_recomputes_the_past(model):
    """A note observed after proposals were made rewrites the frames it covers: the next
    proposal equals that of a session which heard everything in time (greedy sampling)."""
    live = model.session(seed=0, temperature=0, lead_guess="hold")
    for beat in range(4):
        live.propose(float(beat))
    live.observe("lead", 64, 1.0, 2.5)   # arrives late
    live.observe("bass", 40, 0.0, 3.0)   # the band's own note, reported late too
    late = live.propose(4.0)
    ref = model.session(seed=0, temperature=0, lead_guess="hold")
    ref.observe("lead", 64, 1.0, 2.5)
    ref.observe("bass", 40, 0.0, 3.0)
    fresh = ref.propose(4.0)
    np.testing.assert_array_equal(late.tokens, fresh.tokens)
    assert late.notes == fresh.notes


def test_take_over_and_unmetered(model):
    sess = model.session(metered=False, seed=9)
    sess.observe("lead", 60, 0.0, 0.4)
    sess.observe("lead", 62, 0.5, 0.9)
    prop = sess.propose(1.0, voices=("lead",), controls={"lead": VoiceControl(role="lead", density=2)},
                        horizon=2.0)
    assert prop.start == pytest.approx(1.0) and prop.end == pytest.approx(2.0 + 1.0)
    assert prop.voices == ("lead",)
    for n in prop.notes:
        assert n.voice == "lead" and 36 <= n.pitch <= 96
        assert n.start == pytest.approx(round(n.start / 0.125) * 0.125)


def test_bad_controls_are_config_errors(model):
    with pytest.raises(ConfigError, match="role"):
        VoiceControl(role="solo")
    with pytest.raises(ConfigError, match="range"):
        VoiceControl(low=60, high=50)
    with pytest.raises(ConfigError, match="voice"):
        model.session().propose(0.0, voices=("drums",))


def test_keep_key_hook_sees_the_heard_key(model):
    from improv.model import heard_key, keep_key

    seen = []

    def spy(ctx, logits):
        seen.append(heard_key(ctx.heard_pitch_classes))
        keep_key(50.0)(ctx, logits)

    sess = model.session(seed=8)
    for k, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72] * 2):  # C major, 16 beats
        sess.observe("player", p, float(k), k + 0.9)
    props = [sess.propose(16.0 + b, hooks=spy) for b in range(4)]
    c_major = [(pc in (0, 2, 4, 5, 7, 9, 11)) for pc in range(12)]
    assert seen and all(list(s) == c_major for s in seen)
    assert all(n.pitch % 12 in (0, 2, 4, 5, 7, 9, 11) for p in props for n in p.notes)


def test_a_resting_accompanist_comes_in_on_a_beat(model):
    from improv.model.encoding import REST

    def hush(ctx, logits):  # a model that would rather rest (+8 nats on REST)
        logits[REST] += 8.0

    sess = model.session(seed=2)
    props = _play(sess, 8, controls={b: VoiceControl(role="accompany") for b in ("bass", "mid", "high")},
                  hooks=hush)
    notes = _all_notes(props)
    for band in ("bass", "mid", "high"):
        starts = [n.start for n in notes if n.voice == band]
        assert starts, f"{band} never came in"
        assert starts[0] <= 6.0, f"{band} rested {starts[0]} beats"  # entry push after 2 beats' rest
        assert all(abs(s - round(s)) < 1e-9 for s in starts[:1]), "the first entry is on a beat"
    # Without the push (or with role silent, or density 0) the hushed model stays silent.
    sess = model.session(seed=2)
    sess.entry_rest_cap = None
    assert len(_all_notes(_play(sess, 8, hooks=hush))) < len(notes) / 3
    sess = model.session(seed=2)
    silent = _play(sess, 8, controls={b: VoiceControl(density=0) for b in ("bass", "mid", "high")}, hooks=hush)
    assert len(_all_notes(silent)) < len(notes) / 3


def test_harmonize_hook_sees_a_forecast_of_the_player(model):
    from improv.model import StepContext, harmonize
    from improv.model.encoding import VOCAB, pitch_token

    seen = []

    def spy(ctx, logits):
        seen.append(ctx.lead_forecast)

    sess = model.session(seed=4)
    sess.observe("player", 64, 0.0)
    for b in range(1, 4):
        sess.propose(float(b), hooks=spy)
    assert len(seen) == 3 * 4 * 3  # every frame of every band
    assert all(f.shape == (12,) and f.min() >= 0 and 0 < f.sum() <= 1 + 1e-9 for f in seen)
    # The hook: with the player forecast on E (pitch class 4), pitches consonant with E
    # (C, C#, E, G, G#, A) gain `strength` nats over dissonant ones; the chance of
    # starting a note at all (against REST and HOLD) is unchanged.
    q = np.zeros(12)
    q[4] = 0.9
    ctx = StepContext(voice="mid", frame=0, time=0.0, bar_position=0, sounding={}, chosen_tokens={},
                      lead_pitch=64, low=21, high=108, lead_forecast=q)
    logits = np.zeros(VOCAB)
    logits[pitch_token(100):] = -np.inf
    harmonize(3.0)(ctx, logits)
    for pitch, consonant in ((60, True), (61, True), (64, True), (67, True), (65, False), (66, False), (75, False)):
        assert logits[pitch_token(pitch)] - logits[pitch_token(62)] == pytest.approx(3.0 if consonant else 0.0)
    p = np.exp(logits - np.logaddexp.reduce(logits))
    assert p[2:].sum() == pytest.approx(1 - 2 / (2 + (100 - 21))) and np.isinf(logits[pitch_token(100)])
    # A player likely to rest: no change.
    logits = np.zeros(VOCAB)
    harmonize(3.0)(StepContext(voice="mid", frame=0, time=0.0, bar_position=0, sounding={}, chosen_tokens={},
                               lead_pitch=64, low=21, high=108, lead_forecast=q * 0.1), logits)
    assert not logits.any()


# ------------------------------------------------------------------ the chord control


def test_chords_reach_the_model_as_the_next_frames_chord_and_late_changes_recompute():
    from improv.harmony.chords import parse_chord
    from improv.model.encoding import CHORD_UNKNOWN, FRAMES_PER_BEAT
    from improv.model.net import N_INPUT_ROWS

    torch.manual_seed(12)
    chorded = BandModel(FrameNet(ModelConfig(**{**SMALL.to_dict(), "chords": True})).eval())
    a = chorded.session(seed=1)
    a.set_chord(0.0, parse_chord("C"))
    a.set_chord(2.0, parse_chord("Am7"))  # reduced to its triad: A minor = 9 + 12
    assert (a.chord_at(-1), a.chord_at(0), a.chord_at(2 * FRAMES_PER_BEAT - 1), a.chord_at(2 * FRAMES_PER_BEAT)) \
        == (CHORD_UNKNOWN, 0, 0, 21)
    rows = a._rows(np.zeros((3, 4), dtype=np.int64), 2 * FRAMES_PER_BEAT - 2).numpy()
    assert list(rows[:, -1] - N_INPUT_ROWS) == [0, 21, 21]  # each frame carries the chord of the one after it
    _play(a, 4, accept=False)
    # a change set late (for a time already fed) recomputes those frames: the state equals a
    # session that knew it from the start (the same notes heard, the band's own not kept)
    a.set_chord(1.0, parse_chord("F"))
    b = chorded.session(seed=1)
    b.set_chord(0.0, parse_chord("C"))
    b.set_chord(1.0, parse_chord("F"))
    _play(b, 4, accept=False)
    assert b.chord_at(2 * FRAMES_PER_BEAT) == a.chord_at(2 * FRAMES_PER_BEAT) == 5
    a.propose(4.0)
    b.propose(4.0)
    torch.testing.assert_close(a.cache.last_state, b.cache.last_state, atol=1e-5, rtol=0)
    c = chorded.session(seed=1)  # and it differs from one that never had the F
    c.set_chord(0.0, parse_chord("C"))
    c.set_chord(2.0, parse_chord("Am"))
    _play(c, 4, accept=False)
    c.propose(4.0)
    assert (c.cache.last_state - b.cache.last_state).abs().max() > 1e-3
    with pytest.raises(ConfigError, match="chord class 30"):
        a.set_chord(5.0, 30)


def test_a_model_without_the_chord_control_plays_the_same_whatever_the_chord(model):
    from improv.harmony.chords import parse_chord

    plain, told = model.session(seed=4), model.session(seed=4)
    for beat, symbol in enumerate(["C", "F#m", "Bb", "E"]):
        told.set_chord(float(beat), parse_chord(symbol))
    assert [p.notes for p in _play(plain, 4)] == [p.notes for p in _play(told, 4)]
