"""Commands combined across bands: every ordered pair of commands, each to a different
band (and to all), then random sequences, metered and free, through the real band on a
fake clock.

Each run checks what a musician would notice: no exception (the session would end),
every band monophonic (a NoteOn never arrives while the band's previous note sounds),
every note inside the band's range (make room may widen it by an octave away from the
player), every note ended, and a final ``all: stop`` silencing every band within 100 ms.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from improv.band import Band, BandSettings
from improv.band.commands import COMMANDS, TARGETS
from improv.band.generators import ModelGenerator
from improv.events import BANDS, NoteOff, NoteOn
from improv.events import Command

from test_band import BEAT, drive, melody, model, player_events

# Commands whose value matters get a few values; the rest take their default.
VALUES = {"accompany": ("harmonic", "contrapuntal"), "take-over": (0.0, 1.0), "fight": (0.2, 1.0),
          "lead": (("busy", "harmonic"), ("sparse", "contrapuntal")), "player": ("bass", "auto")}
STOP_SILENCES_S = 0.100


def every_command() -> list[tuple[str, object]]:
    out = []
    for name in COMMANDS:
        if name == "tap":  # tap is tempo, covered in test_band; here it would move the grid at random
            continue
        for v in VALUES.get(name, (None,)):
            out.append((name, v))
    return out


def check_run(events: list, stop_at: float, band: Band) -> None:
    sounding: dict[str, NoteOn | None] = {b: None for b in band.players}
    for ev in events:
        name = ev.source
        assert name in band.players, f"an event from {name!r}, not a band"
        if isinstance(ev, NoteOn):
            assert sounding[name] is None, f"{name}: {ev.pitch} starts at {ev.time:.3f} s over " \
                                           f"{sounding[name].pitch} (not monophonic)"
            lo, hi = band.ranges[name]
            assert lo - 12 <= ev.pitch <= hi + 12, f"{name}: pitch {ev.pitch} out of {lo}-{hi} (an octave of room)"
            assert ev.time <= stop_at + STOP_SILENCES_S, f"{name}: a note at {ev.time:.3f} s after all: stop"
            sounding[name] = ev
        elif isinstance(ev, NoteOff):
            if sounding[name] is not None and sounding[name].pitch == ev.pitch:
                sounding[name] = None
    assert all(v is None for v in sounding.values()), f"notes never ended: {sounding}"


def pair_script(commands: list[tuple[str, object]], start: float, spacing: float) -> list[Command]:
    """Every ordered pair of commands, the first to one band and the second to another
    (cycling through the pairs of targets), both at the same time."""
    pairs = list(itertools.product(commands, repeat=2))
    targets = [(a, b) for a, b in itertools.product(TARGETS, repeat=2) if a != b or a == "all"]
    script, t = [], start
    for i, ((c1, v1), (c2, v2)) in enumerate(pairs):
        t1, t2 = targets[i % len(targets)]
        script.append(Command(t, t1, c1, v1))
        script.append(Command(t, t2, c2, v2))
        t += spacing
    return script


def run_script(script: list[Command], seconds: float, free: bool, seed: int = 5) -> None:
    notes = melody(0.5, seconds / BEAT, seed=seed, rest_from=seconds * 0.3, rest_to=seconds * 0.4)
    settings = BandSettings(bands=BANDS, tempo=None if free else 120.0, free=free, seed=seed)
    band = Band(settings, generator=ModelGenerator(model(), seed))
    stop_at = seconds - 1.0
    cmds = [*script, Command(stop_at, "all", "stop", None)]
    events = drive(band, player_events(notes), seconds, cmds)
    check_run(events, stop_at, band)
    assert any(isinstance(e, NoteOn) for e in events), "the band never played"


@pytest.mark.slow
@pytest.mark.parametrize("free", [False, True], ids=["metered", "free"])
def test_every_pair_of_commands_across_bands(free):
    cmds = every_command()
    spacing = 0.2
    script = pair_script(cmds, 1.0, spacing)
    run_script(script, script[-1].time + 3.0, free)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("free", [False, True], ids=["metered", "free"])
def test_random_command_sequences(seed, free):
    rng = np.random.default_rng(seed)
    cmds = every_command()
    script, t = [], 0.8
    for _ in range(60):
        name, value = cmds[rng.integers(len(cmds))]
        script.append(Command(t, str(rng.choice(TARGETS)), name, value))
        t += float(rng.choice([0.0, 0.05, 0.3, 0.7]))
    run_script(script, t + 3.0, free, seed)


def test_take_over_on_one_band_and_make_room_on_another():
    """The crash found on a script: high told to take over, bass to make room, together."""
    script = [Command(0.5, "high", "take-over", 0.3), Command(0.5, "bass", "make-room", None)]
    run_script(script, 10.0, False, seed=2)

