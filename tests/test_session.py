"""The session core: one Session for every front end, sources by strategy (a file, nothing
at all with notes arriving from elsewhere), band drivers by strategy, outputs closed in
reverse order whatever ends the loop."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import soundfile

from improv.audio import SilentSource
from improv.band import BandSettings
from improv.events import Command, NoteOff, NoteOn
from improv.record import read_midi_events
from improv.session import ListenOptions, Session, play_offline
from improv.testing.signals import ToneSpec, render

BEAT = 0.5


def test_no_input_and_notes_from_elsewhere_the_band_answers():
    """A session whose source is nothing: player notes put in with play() are heard by the
    band, which plays on the beat grid in its ranges; the player's notes are published too."""
    source = SilentSource(fast=True, seconds=8.0)
    opts = ListenOptions(fast=True, midi=False, synth="none", bands=("bass", "mid"),
                         band=BandSettings(tempo=120.0, seed=4))
    session = Session(opts, source=source)
    for i, p in enumerate([62, 65, 69, 67, 65, 64, 62, 60] * 2):
        t = 0.5 + i * BEAT
        session.play(NoteOn(t, p, 80, onset=t))
        session.play(NoteOff(t + 0.4, p, end=t + 0.4))
    result = session.run()
    player = [e for e in result.events if e.source == "player" and isinstance(e, NoteOn)]
    assert len(player) == 16
    band = [e for e in result.events if e.source in ("bass", "mid") and isinstance(e, NoteOn)]
    assert len(band) >= 8, f"the band played {len(band)} notes over 16 beats"
    for e in band:
        lo, hi = session.layout.range(e.source)
        assert lo <= e.pitch <= hi
    times = [e.time for e in result.events]
    assert times == sorted(times), "events published out of time order"
    assert abs(result.seconds - 8.0) < 0.02


def test_the_fast_session_and_an_offline_replay_give_the_same_band(tmp_path):
    """``listen --fast`` and play_offline (benchmarks) step the band through the same driver."""
    specs = [ToneSpec(0.3 + 0.5 * i, 0.4, m) for i, m in enumerate([60, 62, 64, 65, 67, 65, 64, 62] * 2)]
    wav = tmp_path / "take.wav"
    soundfile.write(wav, render(specs, 22050, total=9.0), 22050)
    settings = BandSettings(tempo=120.0, seed=7)
    cmds = [Command(3.0, "mid", "busier", None), Command(5.0, "bass", "make-room", None)]
    opts = ListenOptions(input=str(wav), fast=True, midi=False, synth="none", bands=("bass", "mid"),
                         band=settings, commands=list(cmds))
    result = Session(opts).run()
    from improv.band import Band
    from improv.band.offline import hear_blocks

    heard = hear_blocks(str(wav))
    replay = play_offline(Band(BandSettings(bands=("bass", "mid"), tempo=120.0, seed=7)), heard.ends,
                          heard.events, heard.tail, cmds)
    live = [(round(e.time, 6), e.source, e.pitch, type(e).__name__) for e in result.events
            if e.source in ("bass", "mid")]
    again = [(round(e.time, 6), e.source, e.pitch, type(e).__name__) for e in replay]
    assert live == again and live, "the session and the replay differ"


def test_an_error_in_the_loop_still_closes_every_output(tmp_path):
    """An exception from a sink ends the session; the recording still gets every note's end."""
    specs = [ToneSpec(0.2, 3.0, 57)]
    wav = tmp_path / "held.wav"
    soundfile.write(wav, render(specs, 22050, total=4.0), 22050)
    seen: list = []

    def sink(ev):
        seen.append(ev)
        if isinstance(ev, NoteOn) and ev.source == "bass":
            raise RuntimeError("a sink failed")

    opts = ListenOptions(input=str(wav), fast=True, midi=False, synth="none", bands=("bass",),
                         band=BandSettings(tempo=120.0, seed=1), record=str(tmp_path / "rec"))
    session = Session(opts, on_event=sink)
    with pytest.raises(RuntimeError):
        session.run()
    events = read_midi_events(session.result.recording / "session.mid")
    for source in ("player", "bass"):
        ons = sum(isinstance(e, NoteOn) for e in events if e.source == source)
        offs = sum(isinstance(e, NoteOff) for e in events if e.source == source)
        assert ons >= 1 and ons == offs, f"{source}: {ons} notes started, {offs} ended in the recording"


def test_silent_source_stops_when_asked():
    stop = threading.Event()
    source = SilentSource(fast=True)
    n = 0
    for block in source.blocks(stop):
        n += 1
        assert not np.any(block.samples)
        if n == 10:
            stop.set()
    assert n == 10
