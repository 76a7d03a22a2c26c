"""The end-to-end benchmark (benchmarks/bench_e2e.py) on a real JACK server: a rendered
melody into PortAudio's input, improv listening with three bands, every message leaving
improv matched to what the band planned. Its figures must obey causality: no band
message answers a note before the note was decided and the band's handoff had passed."""

from __future__ import annotations


import pytest

from improv.testing.signals import ToneSpec, render

pytestmark = pytest.mark.jack


MELODY = [62, 64, 65, 67, 69, 67, 65, 64, 62, 64, 65, 67, 69, 71, 72, 71]


def test_e2e_reactions_are_causal_and_every_message_is_accounted_for(jack_server, portaudio, tmp_path):
    import soundfile

    from improv.testing import load_benchmark

    bench_e2e = load_benchmark("bench_e2e")
    from improv.band import BandSettings

    rate = jack_server.rate
    specs = [ToneSpec(0.5 + 0.5 * i, 0.42, m) for i, m in enumerate(MELODY)]
    wav = tmp_path / "melody.wav"
    soundfile.write(wav, render(specs, rate, total=9.0), rate)
    onsets = [s.onset for s in specs]
    res = bench_e2e.play_one(wav, onsets, rate, jack_server.period, ("bass", "mid", "high"), 120.0, 1, tmp_path)
    assert "error" not in res, res.get("error")
    assert res["unmatched_messages"] == 0, "a band message that the band never planned"
    assert res["lost_messages"] <= 2, f"{res['lost_messages']} messages sent but never captured"
    assert res["band_messages"] >= 10, f"the band played {res['band_messages']} messages"
    assert res["matched"] >= len(MELODY) - 1, f"{res['matched']} of {len(MELODY)} notes heard within 50 ms"
    handoff = BandSettings().handoff
    period_ms = 1000 * jack_server.period / rate
    reacted = [r for r in res["rows"] if r["first_ms"] is not None]
    assert len(reacted) >= len(MELODY) - 3, "the band stopped answering"
    for r in res["rows"]:
        # the echo leaves when the note is decided: not before the block that decided it was
        # played (a message can be stamped in the very cycle whose audio decided it: one period)
        assert r["echo_ms"] is None or r["echo_ms"] >= r["decision_ms"] - period_ms - 1.0, r
        if r["first_ms"] is not None:
            # a reaction is planned after the note was heard, at least ``handoff`` ahead of its time
            assert r["first_ms"] >= r["decision_ms"] + 1000 * handoff - period_ms, r
            assert r["first_on_ms"] is None or r["first_on_ms"] >= r["first_ms"], r
    summary = bench_e2e.summarise([res])
    assert summary["n"] == len(reacted)
