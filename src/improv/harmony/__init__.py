"""The band's harmonic sense: chord symbols, lead sheets, the online chord follower, the
band's own proposed changes, and the chord in force at every moment of a session.

* :mod:`.chords` — chord symbols (lead-sheet, WJD and Harte spellings) -> :class:`Chord`.
* :mod:`.leadsheet` — ``--changes`` text and files -> a looping :class:`Form`.
* :mod:`.follower` — the online chord follower and a template-matching baseline.
* :mod:`.propose` — the band's own changes from a transition table learned from POP909.
* :mod:`.harmony` — :class:`Harmony`, what the band asks "which chord now?".
"""

from .chords import Chord, chord, parse_chord

__all__ = ["Chord", "chord", "parse_chord"]
