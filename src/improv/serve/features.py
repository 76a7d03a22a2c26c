"""Per-bar features of what was played, for ``/improv/features``.

:class:`BarFeatures` is an event sink (it sees every event a session publishes: the
player's notes as heard, the band's as they left) and summarises a span of time on
demand: per source, onsets per beat (density), the lowest, middle and highest pitch
(register); for the band, the share of its onsets consonant with the player's note
sounding then (consonance, None when the player was silent throughout); the chord and
key when the band knows them.
"""

from __future__ import annotations

import threading
from collections import deque
from statistics import median
from typing import Any

from ..events import PLAYER, Event, NoteOff, NoteOn

CONSONANT = frozenset((0, 3, 4, 5, 7, 8, 9))   # intervals (semitones, mod 12) heard as consonant


class BarFeatures:
    """Collects note onsets and the player's sounding spans; :meth:`span` summarises."""

    def __init__(self, keep_seconds: float = 60.0):
        self.keep = keep_seconds
        self._onsets: deque[tuple[float, str, int]] = deque()        # (time, source, pitch)
        self._player: deque[list] = deque()                            # [start, end|None, pitch]
        self._lock = threading.Lock()

    def __call__(self, ev: Event) -> None:
        with self._lock:
            if isinstance(ev, NoteOn) and ev.velocity > 0:
                t = ev.onset if ev.source == PLAYER and ev.onset is not None else ev.time
                self._onsets.append((t, ev.source, ev.pitch))
                if ev.source == PLAYER:
                    if self._player and self._player[-1][1] is None:
                        self._player[-1][1] = t
                    self._player.append([t, None, ev.pitch])
            elif isinstance(ev, NoteOff) and ev.source == PLAYER and self._player and self._player[-1][1] is None:
                self._player[-1][1] = ev.end if ev.end is not None else ev.time
            horizon = ev.time - self.keep
            while self._onsets and self._onsets[0][0] < horizon:
                self._onsets.popleft()
            while len(self._player) > 1 and self._player[0][1] is not None and self._player[0][1] < horizon:
                self._player.popleft()

    def _player_pitch(self, t: float) -> int | None:
        for start, end, pitch in reversed(self._player):
            if start <= t + 1e-6 and (end is None or end > t):
                return pitch
            if start < t - self.keep:
                break
        return None

    def span(self, start: float, end: float, beat_seconds: float) -> dict[str, Any]:
        """Features of the onsets in [start, end): ``{"sources": {name: {...}}, "consonance": x}``."""
        with self._lock:
            onsets = [o for o in self._onsets if start <= o[0] < end]
            beats = max((end - start) / beat_seconds, 1e-9)
            sources: dict[str, Any] = {}
            for name in sorted({s for _, s, _ in onsets}):
                pitches = [p for _, s, p in onsets if s == name]
                sources[name] = {"notes": len(pitches), "density": round(len(pitches) / beats, 3),
                                 "register": {"low": min(pitches), "median": float(median(pitches)),
                                              "high": max(pitches)}}
            judged = []
            for t, s, p in onsets:
                if s in (PLAYER, "drums"):
                    continue
                heard = self._player_pitch(t)
                if heard is not None:
                    judged.append((p - heard) % 12 in CONSONANT)
        return {"start": round(start, 4), "end": round(end, 4), "sources": sources,
                "consonance": round(sum(judged) / len(judged), 3) if judged else None,
                "consonance_onsets": len(judged)}


__all__ = ["BarFeatures", "CONSONANT"]
