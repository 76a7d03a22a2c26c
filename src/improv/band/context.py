"""The band's rolling memory: the player's notes and the band's own, in session seconds.

Notes older than the window are forgotten (:meth:`Context.forget`). Everything the
players need to decide a frame is derived from here: the player's register, whether
the player sounds or how long they have been silent, the last phrase, each band's
recent onsets and pitches. The band's planned notes live here too (from the moment
they are planned), so the model can be rebuilt from the context at any time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..events import PLAYER

EPS = 1e-9  # times this close count as the same (the band's plan uses the same tolerance)


@dataclass(slots=True)
class CtxNote:
    """One note in the context. ``slot`` is the model voice it was played as (the player's
    notes and a band's take-over notes are ``lead``), ``slot_pitch`` its pitch there
    (a take-over line is folded into the band's range when sent)."""

    source: str
    slot: str
    pitch: int
    start: float
    end: float | None = None
    velocity: int = 80
    slot_pitch: int | None = None

    @property
    def model_pitch(self) -> int:
        return self.pitch if self.slot_pitch is None else self.slot_pitch

    def sounding_at(self, t: float) -> bool:
        return self.start <= t and (self.end is None or self.end > t)


class Context:
    """Notes of the last ``window`` seconds (the band sets the window from bars and tempo)."""

    def __init__(self, window: float = 16.0):
        self.window = float(window)
        self.notes: list[CtxNote] = []
        self._player_open: CtxNote | None = None
        self.player_notes_heard = 0

    # ------------------------------------------------------------ player

    def player_on(self, pitch: int, start: float, velocity: int = 80) -> CtxNote:
        if self._player_open is not None and self._player_open.end is None:
            self._player_open.end = max(start, self._player_open.start + 1e-3)
        note = CtxNote(PLAYER, "lead", int(pitch), float(start), None, int(velocity))
        self._insert(note)
        self._player_open = note
        self.player_notes_heard += 1
        return note

    def player_off(self, end: float) -> CtxNote | None:
        note = self._player_open
        if note is None or note.end is not None:
            return None
        note.end = max(float(end), note.start + 1e-3)
        self._player_open = None
        return note

    @property
    def player_sounding(self) -> bool:
        return self._player_open is not None and self._player_open.end is None

    def player(self, since: float | None = None) -> list[CtxNote]:
        return [n for n in self.notes if n.source == PLAYER and (since is None or n.start >= since)]

    def last_player_note(self) -> CtxNote | None:
        for n in reversed(self.notes):
            if n.source == PLAYER:
                return n
        return None

    def player_silent_since(self) -> float | None:
        """When the player's last note ended (None while one sounds or before the first)."""
        if self.player_sounding:
            return None
        last = self.last_player_note()
        return None if last is None else last.end

    def player_register(self, now: float, seconds: float = 10.0, min_notes: int = 3) -> tuple[int, int] | None:
        """The player's recent register: 10th to 90th percentile of pitches (duration-weighted)."""
        notes = [n for n in self.notes if n.source == PLAYER and n.start >= now - seconds]
        if len(notes) < min_notes:
            notes = self.player()[-8:]
            if len(notes) < min_notes:
                return None
        p = np.array([n.pitch for n in notes], dtype=float)
        w = np.array([min(((n.end if n.end is not None else now) - n.start), 2.0) + 0.05 for n in notes])
        order = np.argsort(p)
        cw = np.cumsum(w[order]) / w.sum()
        lo = p[order][int(np.searchsorted(cw, 0.1))]
        hi = p[order][min(int(np.searchsorted(cw, 0.9)), len(p) - 1)]
        return int(lo), int(hi)

    def player_span(self, now: float, seconds: float = 12.0) -> tuple[int, int] | None:
        """Lowest and highest pitch the player played lately (what make room keeps clear)."""
        notes = [n.pitch for n in self.notes if n.source == PLAYER and n.start >= now - seconds]
        if len(notes) < 3:
            notes = [n.pitch for n in self.player()[-8:]]
            if len(notes) < 3:
                return None
        return min(notes), max(notes)

    def player_motion(self) -> int:
        """Direction of the player's last interval: +1 up, -1 down, 0 repeated or unknown."""
        last = [n.pitch for n in self.notes if n.source == PLAYER][-2:]
        if len(last) < 2:
            return 0
        return int(np.sign(last[1] - last[0]))

    def last_phrase(self, gap: float, now: float, longest: float = math.inf) -> list[CtxNote]:
        """The player's notes since the last silence of at least ``gap`` seconds, at most
        ``longest`` seconds back from the last note's end."""
        notes = [n for n in self.notes if n.source == PLAYER]
        out: list[CtxNote] = []
        stop = None
        for n in reversed(notes):
            end = n.end if n.end is not None else now
            if stop is None:
                stop = end - longest
            if out and out[-1].start - end >= gap:
                break
            if n.start < stop:
                break
            out.append(n)
        return out[::-1]

    # ------------------------------------------------------------ band

    def band_on(self, source: str, slot: str, pitch: int, start: float, velocity: int,
                slot_pitch: int | None = None) -> CtxNote:
        note = CtxNote(source, slot, int(pitch), float(start), None, int(velocity),
                       None if slot_pitch is None or slot_pitch == pitch else int(slot_pitch))
        self._insert(note)
        return note

    def band(self, source: str, since: float | None = None, until: float | None = None) -> list[CtxNote]:
        return [n for n in self.notes if n.source == source and (since is None or n.start >= since)
                and (until is None or n.start < until)]

    def onset_rate(self, source: str, at: float, window: float, since: float | None = None) -> float:
        """Onsets of ``source`` per second in [at - window, at), over at least 1/4 of the window."""
        lo = at - window if since is None else max(at - window, since)
        span = max(at - lo, window / 4)
        count = sum(1 for n in self.notes if n.source == source and lo <= n.start < at)
        return count / span

    def recent_pitches(self, source: str, count: int, before: float) -> list[int]:
        out = [n.pitch for n in self.notes if n.source == source and n.start < before]
        return out[-count:]

    def cut(self, source: str, at: float) -> CtxNote | None:
        """``source`` is silent from ``at``: later notes are dropped, a note sounding then ends
        there. Returns that note (it needs a NoteOff at ``at``), if any."""
        return self._drop_from(source, at, end=at)

    def retract(self, source: str, at: float) -> CtxNote | None:
        """Plans of ``source`` from ``at`` are withdrawn: later notes are dropped and a note
        sounding at ``at`` is open again (its end is decided anew). Returns that note."""
        return self._drop_from(source, at, end=None)

    def _drop_from(self, source: str, at: float, end: float | None) -> CtxNote | None:
        """Notes of ``source`` starting at ``at`` or later are dropped; the one sounding then
        gets ``end``, and is returned."""
        sounding = None
        keep = []
        for n in self.notes:
            if n.source == source:
                if n.start >= at - EPS:
                    continue
                if n.end is None or n.end >= at - EPS:  # (the band drops plans from at - EPS on)
                    n.end = end
                    sounding = n
            keep.append(n)
        self.notes = keep
        return sounding

    # ------------------------------------------------------------ memory

    def forget(self, now: float) -> int:
        """Drop notes that ended more than ``window`` seconds before ``now``; returns how many."""
        limit = now - self.window
        before = len(self.notes)
        self.notes = [n for n in self.notes if n.end is None or n.end >= limit]
        return before - len(self.notes)

    def since(self, t: float) -> list[CtxNote]:
        """Notes sounding at or starting after ``t`` (what a rebuilt model is told)."""
        return [n for n in self.notes if n.end is None or n.end > t]

    def _insert(self, note: CtxNote) -> None:
        if not self.notes or self.notes[-1].start <= note.start:
            self.notes.append(note)
            return
        i = len(self.notes)
        while i > 0 and self.notes[i - 1].start > note.start:
            i -= 1
        self.notes.insert(i, note)


def pitch_class_profile(notes: list[CtxNote], until: float | None = None) -> np.ndarray:
    """Duration-weighted pitch-class histogram (notes still sounding count up to ``until``)."""
    prof = np.zeros(12)
    for n in notes:
        end = n.end if n.end is not None else (until if until is not None else n.start + 0.25)
        prof[n.pitch % 12] += max(end - n.start, 0.05)
    return prof


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])
