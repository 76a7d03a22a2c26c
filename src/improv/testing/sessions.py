"""Recorded sessions of a player with a style of their own, written directly as session folders.

``blues_session`` makes what ``improv listen --record`` would leave after a session with a
player who plays the blues scale in swung eighths and keeps coming back to a few motifs of
their own, leaving a bar or two of rest between phrases (room for a band to take over),
over a band playing a 12-bar blues (bass on the roots, mid on chord tones, high sparse).
``session.mid`` is written with the recorder's own writer
(:func:`improv.record.events_to_midifile`: the player on channel 1, the band on 2-4, the
band's bars as its tempo map), so training reads it as it reads a real session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..events import PLAYER, NoteOff, NoteOn
from ..record import MIDI_FILE, events_to_midifile
from ..timing.meter import DEFAULT_METER
from ..timing.tempomap import BarTiming

BLUES = (0, 3, 5, 6, 7, 10)              # the blues scale's pitch classes above the tonic
PROGRESSION = (0, 5, 0, 0, 5, 5, 0, 0, 7, 5, 0, 7)   # 12-bar blues roots (semitones above the tonic)
SWING = 2.0 / 3.0                         # where the off-beat eighth falls in the beat


@dataclass(frozen=True)
class BluesPlayer:
    """A player: tonic (MIDI), register, tempo, and motifs as (scale step, eighths) pairs."""

    tonic: int = 57                       # A3
    tempo: float = 110.0
    motifs: tuple[tuple[tuple[int, int], ...], ...] = (
        ((6, 1), (5, 1), (4, 1), (3, 1), (2, 2), (0, 2)),          # down the scale to the root
        ((0, 1), (1, 1), (2, 1), (3, 1), (4, 2), (3, 2)),          # up to the fifth and the blue note back
        ((4, 1), (5, 1), (4, 1), (2, 1), (1, 1), (0, 3)),          # the turn around the fifth
        ((7, 2), (6, 1), (5, 1), (3, 2), (2, 2)),                   # the octave falling to the blue fifth
    )

    def pitch(self, step: int) -> int:
        octave, k = divmod(step, len(BLUES))
        return self.tonic + 12 * octave + BLUES[k]


def blues_events(player: BluesPlayer, bars: int, seed: int, band: bool = True) -> tuple[list, tuple[float, ...]]:
    """(events in session seconds, downbeats) of one session."""
    rng = np.random.default_rng(seed)
    beat = 60.0 / player.tempo
    t0 = 0.5                                          # the band's first downbeat
    downbeats = tuple(t0 + 4 * beat * b for b in range(bars + 1))
    ev: list = []

    def note(source, pitch, start, end, vel):
        ev.append(NoteOn(start, int(pitch), int(vel), source))
        ev.append(NoteOff(max(start + 0.02, end), int(pitch), source))

    # the player: phrases of 1-2 motifs (repeated, sometimes transposed by a scale step), then rest
    bar = 0
    favourite = rng.permutation(len(player.motifs))
    while bar < bars - 1:
        eighth = 0.0                                  # eighths from the phrase's bar
        n_motifs = int(rng.integers(1, 3))
        for m in range(n_motifs):
            pick = favourite[0] if rng.random() < 0.5 else rng.choice(len(player.motifs))
            shift = 0 if rng.random() < 0.7 else int(rng.choice([-1, 1]))
            for step, length in player.motifs[pick]:
                beat_i, half = divmod(eighth, 2)
                at = downbeats[bar] + beat * (beat_i + (SWING if half else 0.0))
                end_e = eighth + length
                eb, eh = divmod(end_e, 2)
                end = downbeats[bar] + beat * (eb + (SWING if eh else 0.0)) - 0.03
                if at >= downbeats[-1] - beat:
                    break
                note(PLAYER, player.pitch(step + shift), at, end, 80 + int(rng.integers(-10, 11)))
                eighth = end_e
            eighth += 1 if m < n_motifs - 1 else 0
        bar += int(np.ceil(eighth / 8)) + int(rng.integers(1, 3))   # a bar or two of rest
    if band:
        for b in range(bars):
            root = player.tonic - 24 + PROGRESSION[b % 12]
            start = downbeats[b]
            for q in range(4):                        # bass: root, fifth, octave, fifth
                note("bass", root + (0, 7, 12, 7)[q], start + q * beat, start + (q + 0.9) * beat, 90)
            for h in range(2):                        # mid: the dominant seventh's third and seventh
                note("mid", root + 12 + (4, 10)[h], start + 2 * h * beat, start + (2 * h + 1.8) * beat, 70)
            if b % 4 == 3:                             # high: a fill on the last bar of four
                note("high", root + 31, start + 2 * beat, start + 3.8 * beat, 65)
    ev.sort(key=lambda e: (e.time, isinstance(e, NoteOn)))
    return ev, downbeats


def write_session(folder: str | Path, player: BluesPlayer, bars: int, seed: int, band: bool = True) -> Path:
    """A session folder with ``session.mid`` as the recorder writes it; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ev, downbeats = blues_events(player, bars, seed, band)
    timing = BarTiming(DEFAULT_METER, downbeats, ((0.0, True),))
    events_to_midifile(ev, timing=timing).save(str(folder / MIDI_FILE))
    return folder


def write_sessions(root: str | Path, count: int, bars: int, seed: int = 0, player: BluesPlayer | None = None,
                   prefix: str = "take") -> list[Path]:
    player = player or BluesPlayer()
    return [write_session(Path(root) / f"{prefix}-{k:03d}", player, bars, seed * 1000 + k) for k in range(count)]


__all__ = ["BLUES", "BluesPlayer", "blues_events", "write_session", "write_sessions"]
