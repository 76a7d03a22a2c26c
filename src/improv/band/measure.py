"""Figures about what the band played, for the benchmark and the tests.

All take :class:`improv.events.Note` lists (``notes_from_events``) with times in
seconds; none of them is used while playing.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from ..events import Note, notes_from_events

DISSONANT = (1, 2, 6, 10, 11)


def key_notes(events, source: str, until: float | None = None) -> list[Note]:
    """Notes of ``source`` with their MIDI key as pitch (bends left out): the player's notes
    as the band hears them."""
    from ..events import NoteOn

    plain = [type(e)(**{**{f: getattr(e, f) for f in e.__slots__}, "cents": 0.0}) if isinstance(e, NoteOn) else e
             for e in events if e.source == source and type(e).__name__ in ("NoteOn", "NoteOff")]
    return notes_from_events(plain, source, until)


def between(notes: list[Note], start: float, end: float) -> list[Note]:
    """Notes whose onset lies in [start, end)."""
    return [n for n in notes if start <= n.onset < end]


def register(notes: list[Note], low_q: float = 0.1, high_q: float = 0.9) -> tuple[int, int] | None:
    """The 10th..90th percentile of the notes' (rounded) pitches."""
    if not notes:
        return None
    p = np.array([round(n.pitch) for n in notes])
    return int(np.floor(np.quantile(p, low_q))), int(np.ceil(np.quantile(p, high_q)))


def inside(notes: list[Note], reg: tuple[int, int]) -> int:
    return sum(1 for n in notes if reg[0] <= round(n.pitch) <= reg[1])


def inside_recent(band: list[Note], player: list[Note], seconds: float = 8.0) -> int:
    """Band notes inside the player's register as it was when they started: the 10th..90th
    percentile of the player's notes of the ``seconds`` before (causal, like the band)."""
    count = 0
    for n in band:
        reg = register([p for p in player if n.onset - seconds <= p.onset < n.onset])
        count += reg is not None and reg[0] <= round(n.pitch) <= reg[1]
    return count


def sounding(notes: list[Note], t: float) -> Note | None:
    """The note sounding at ``t`` (the latest one started), or None."""
    best = None
    for n in notes:
        if n.onset <= t < n.offset and (best is None or n.onset > best.onset):
            best = n
    return best


def dissonant_share(band: list[Note], player: list[Note]) -> tuple[float, int]:
    """Share of band onsets (while the player sounds) a second, tritone or seventh from
    the player's pitch, any octave; and how many onsets were counted."""
    counted = diss = 0
    for n in band:
        p = sounding(player, n.onset)
        if p is None:
            continue
        counted += 1
        diss += (round(n.pitch) - round(p.pitch)) % 12 in DISSONANT
    return (diss / counted if counted else math.nan), counted


def interval_entropy(pitches: list[int]) -> float:
    """Shannon entropy (bits) of the successive intervals (semitones)."""
    iv = np.diff(np.asarray(pitches, dtype=int))
    if len(iv) == 0:
        return math.nan
    counts = np.array(list(Counter(iv.tolist()).values()), dtype=float)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def repetition(pitches: list[int], back: int = 4) -> float:
    """Share of notes whose pitch is one of the ``back`` notes before it."""
    if len(pitches) <= 1:
        return math.nan
    hits = sum(1 for i in range(1, len(pitches)) if pitches[i] in pitches[max(0, i - back):i])
    return hits / (len(pitches) - 1)


def pc_profile(notes: list[Note]) -> np.ndarray:
    """Duration-weighted pitch-class histogram."""
    prof = np.zeros(12)
    for n in notes:
        prof[round(n.pitch) % 12] += max(n.offset - n.onset, 0.05)
    return prof


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    if np.std(a) == 0 or np.std(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def gaps(player: list[Note], min_gap: float) -> list[tuple[float, float]]:
    """(silence start, next onset) of every silence of at least ``min_gap`` seconds between
    the player's notes (the end of the recording is not a gap: nothing returns)."""
    out = []
    ordered = sorted(player, key=lambda n: n.onset)
    end = -math.inf
    for a, b in zip(ordered, ordered[1:]):
        end = max(end, a.offset)
        if b.onset - end >= min_gap:
            out.append((end, b.onset))
    return out


def overlaps(notes: list[Note]) -> int:
    """Notes starting before the previous one ended (a monophonic line has none)."""
    ordered = sorted(notes, key=lambda n: n.onset)
    return sum(1 for a, b in zip(ordered, ordered[1:]) if b.onset < a.offset - 1e-6)
