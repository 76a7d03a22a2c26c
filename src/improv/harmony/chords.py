"""Chord symbols: lead-sheet text (``Dm7``, ``Bb7#11``, ``F#m7b5``, ``C/E``), the Weimar Jazz
Database's spelling (``Eb-7``, ``Bbj7``, ``Ab79b``, ``Co``, ``Bø``, ``C7alt``, ``NC``) and
POP909's Harte labels (``B:maj``, ``A:min7/b7``, ``G:sus4(b7)``, ``N``).

A small table rather than music21's ``harmony.ChordSymbol``: music21 reads ``-`` as a flat
(``C-7`` is C-flat 7, ``Bb7`` comes out as B major), knows neither ``j7``, ``o``, ``ø``
nor ``alt``, and takes 1-30 ms a symbol; a chord here is its root, its pitch classes
and its bass, which is all the band needs.

:func:`parse_chord` raises :class:`~improv.errors.ConfigError` naming the symbol (the
lead-sheet reader adds the bar).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError

NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_LETTER = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

# Harte shorthands (POP909 chord_midi.txt, mir_eval) -> intervals above the root
HARTE: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8),
    "sus2": (0, 2, 7), "sus4": (0, 5, 7), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10), "minmaj7": (0, 3, 7, 11), "hdim7": (0, 3, 6, 10), "dim7": (0, 3, 6, 9),
    "maj6": (0, 4, 7, 9), "min6": (0, 3, 7, 9), "9": (0, 4, 7, 10, 2), "maj9": (0, 4, 7, 11, 2),
    "min9": (0, 3, 7, 10, 2), "11": (0, 4, 7, 10, 2, 5), "13": (0, 4, 7, 10, 2, 9), "5": (0, 7), "1": (0,),
}
# Harte degrees (for "(b7)" and "/b3")
_DEGREE = {"1": 0, "2": 2, "3": 4, "4": 5, "5": 7, "6": 9, "7": 11, "9": 2, "11": 5, "13": 9}
# the quality each chord reports (for display, mir_eval and the transition table)
_QUALITY_OF = {
    (0, 4, 7): "maj", (0, 3, 7): "min", (0, 3, 6): "dim", (0, 4, 8): "aug", (0, 2, 7): "sus2", (0, 5, 7): "sus4",
    (0, 4, 7, 10): "7", (0, 4, 7, 11): "maj7", (0, 3, 7, 10): "min7", (0, 3, 7, 11): "minmaj7",
    (0, 3, 6, 10): "hdim7", (0, 3, 6, 9): "dim7", (0, 4, 7, 9): "maj6", (0, 3, 7, 9): "min6",
    (0, 5, 7, 10): "7sus4",
}
_SHORT = {"maj": "", "min": "m", "dim": "dim", "aug": "+", "sus2": "sus2", "sus4": "sus4", "7": "7",
          "maj7": "maj7", "min7": "m7", "minmaj7": "m(maj7)", "hdim7": "m7b5", "dim7": "dim7", "maj6": "6",
          "min6": "m6", "7sus4": "7sus4"}


@dataclass(frozen=True)
class Chord:
    """A chord: ``root`` and ``bass`` are pitch classes (0 = C), ``tones`` the pitch classes
    sounding (root first), ``symbol`` the text it was read from."""

    root: int
    tones: tuple[int, ...]
    bass: int
    symbol: str

    @property
    def intervals(self) -> frozenset[int]:
        return frozenset((t - self.root) % 12 for t in self.tones)

    @property
    def minor(self) -> bool:
        """A minor third above the root and no major third (the triad's colour)."""
        iv = self.intervals
        return 3 in iv and 4 not in iv

    @property
    def fifth(self) -> int | None:
        """The chord's fifth (perfect, diminished or augmented), as a pitch class."""
        iv = self.intervals
        for f in (7, 6, 8):
            if f in iv:
                return (self.root + f) % 12
        return None

    @property
    def quality(self) -> str:
        key = tuple(sorted(self.intervals))
        q = _QUALITY_OF.get(key)
        if q is not None:
            return q
        if 10 in self.intervals and 4 in self.intervals:
            return "7"
        if 11 in self.intervals:
            return "minmaj7" if self.minor else "maj7"
        if 10 in self.intervals:
            return "min7" if self.minor else "7"
        return "min" if self.minor else "maj"

    @property
    def name(self) -> str:
        """A short lead-sheet name (``Dm7``, ``G7``, ``C/E``)."""
        text = NAMES[self.root] + _SHORT.get(self.quality, self.quality)
        return text if self.bass == self.root else f"{text}/{NAMES[self.bass]}"

    def harte(self, triad: bool = True) -> str:
        """The mir_eval label: root and major/minor (``triad``) or the full quality."""
        if triad:
            return f"{NAMES[self.root]}:{'min' if self.minor else 'maj'}"
        return f"{NAMES[self.root]}:{self.quality}"

    def has(self, pitch: int) -> bool:
        return pitch % 12 in self.tones

    def mask(self) -> list[bool]:
        return [pc in self.tones for pc in range(12)]


def chord(root: int, intervals: tuple[int, ...], bass: int | None = None, symbol: str | None = None) -> Chord:
    tones = tuple(dict.fromkeys((root + i) % 12 for i in intervals))
    b = root % 12 if bass is None else bass % 12
    if b not in tones:
        tones = tones + (b,)
    c = Chord(root % 12, tones, b, "")
    return Chord(c.root, c.tones, c.bass, symbol if symbol is not None else c.name)


def _root(text: str) -> tuple[int, str] | None:
    """``"Bb7"`` -> (10, "7"); ``"F#"`` -> (6, ""); None when no note letter leads."""
    if not text or text[0].upper() not in _LETTER:
        return None
    pc = _LETTER[text[0].upper()]
    rest = text[1:]
    if rest[:1] in ("b", "#", "♭", "♯"):
        pc += -1 if rest[0] in ("b", "♭") else 1
        rest = rest[1:]
    return pc % 12, rest


NO_CHORD = ("N", "NC", "N.C.", "N.C")


def parse_chord(symbol: str) -> Chord | None:
    """One chord symbol -> :class:`Chord` (None for no chord: ``N``, ``NC``).

    Raises ConfigError naming the symbol and what is accepted."""
    s = symbol.strip()
    if not s:
        raise ConfigError("empty chord symbol")
    if s.upper() in NO_CHORD:
        return None
    try:
        if ":" in s:
            return _parse_harte(s)
        return _parse_lead(s)
    except ConfigError:
        raise
    except (ValueError, KeyError, IndexError):
        raise ConfigError(_bad(symbol)) from None


def _bad(symbol: str, why: str = "") -> str:
    return (f"chord {symbol!r} is not a chord symbol{': ' + why if why else ''} (write e.g. C, Dm7, G7, Bbmaj7, "
            "F#m7b5, Eb-7, Co7, C7alt, C/E, or Harte like A:min7/b7)")


def _parse_harte(s: str) -> Chord:
    rootpart, _, rest = s.partition(":")
    r = _root(rootpart)
    if r is None or r[1]:
        raise ConfigError(_bad(s, f"root {rootpart!r}"))
    root = r[0]
    qual, _, bass = rest.partition("/")
    ext = ""
    if "(" in qual:
        qual, _, ext = qual.partition("(")
        if not ext.endswith(")"):
            raise ConfigError(_bad(s, "unclosed '('"))
        ext = ext[:-1]
    qual = qual or "maj"
    if qual not in HARTE:
        raise ConfigError(_bad(s, f"quality {qual!r} (Harte: {', '.join(HARTE)})"))
    iv = list(HARTE[qual])
    for d in filter(None, (x.strip() for x in ext.split(","))):
        if d.startswith("*"):
            v = _harte_degree(d[1:], s)
            if v in iv:
                iv.remove(v)
        else:
            iv.append(_harte_degree(d, s))
    b = None if not bass else (root + _harte_degree(bass, s)) % 12
    return chord(root, tuple(iv), b, s)


def _harte_degree(d: str, s: str) -> int:
    m = re.fullmatch(r"([b#]*)(\d+)", d)
    if m is None or m.group(2) not in _DEGREE:
        raise ConfigError(_bad(s, f"degree {d!r}"))
    return (_DEGREE[m.group(2)] + m.group(1).count("#") - m.group(1).count("b")) % 12


# lead-sheet qualities, longest first: (text, third, fifth, seventh or None)
_BASES = [
    ("m(maj7)", 3, 7, 11), ("mmaj7", 3, 7, 11), ("minmaj7", 3, 7, 11), ("-maj7", 3, 7, 11), ("-j7", 3, 7, 11),
    ("m(ma7)", 3, 7, 11), ("-Δ", 3, 7, 11), ("mΔ", 3, 7, 11), ("m^7", 3, 7, 11),
    ("m7b5", 3, 6, 10), ("-7b5", 3, 6, 10), ("min7b5", 3, 6, 10), ("ø7", 3, 6, 10), ("ø", 3, 6, 10),
    ("hdim7", 3, 6, 10), ("hdim", 3, 6, 10),
    ("dim7", 3, 6, 9), ("o7", 3, 6, 9), ("°7", 3, 6, 9), ("dim", 3, 6, None), ("o", 3, 6, None), ("°", 3, 6, None),
    ("maj", 4, 7, 11), ("Maj", 4, 7, 11), ("ma", 4, 7, 11), ("M", 4, 7, 11), ("j", 4, 7, 11), ("Δ", 4, 7, 11),
    ("^", 4, 7, 11),
    ("min", 3, 7, 10), ("mi", 3, 7, 10), ("m", 3, 7, 10), ("-", 3, 7, 10),
    ("aug", 4, 8, 10), ("+", 4, 8, 10),
    ("", 4, 7, 10),
]
_ALT = re.compile(r"(?:add)?(?:([b#+\-])(5|9|11|13|2|4|6)|(5|9|11|13|2|4|6)([b#+\-]?))")


def _parse_lead(s: str) -> Chord:
    r = _root(s)
    if r is None:
        raise ConfigError(_bad(s, "it must start with a note letter A-G"))
    root, rest = r
    bass = None
    if "/" in rest:
        rest, _, btext = rest.rpartition("/")
        b = _root(btext.strip())
        if b is None or b[1]:
            raise ConfigError(_bad(s, f"bass note {btext!r}"))
        bass = b[0]
    q = rest.replace(" ", "")
    for text, third, fifth, seventh in _BASES:
        if q.startswith(text):
            q = q[len(text):]
            break
    # the number: 6, 69, 7, 9, 11, 13 (a seventh only with a number, or alone for Δ, ø, o7)
    iv = {0, third, fifth}
    alone_seventh = text in ("Δ", "^", "ø", "ø7", "hdim7", "hdim", "m7b5", "-7b5", "min7b5", "dim7", "o7", "°7",
                             "m(maj7)", "mmaj7", "minmaj7", "-maj7", "-j7", "m(ma7)", "-Δ", "mΔ", "m^7")
    if alone_seventh:
        iv.add(seventh)
    if text in ("maj", "Maj", "ma", "M", "j") and not q[:1].isdigit():
        pass  # "Cmaj", "CM": a major triad
    q = q.replace("(", "").replace(")", "").replace(",", "")
    m = re.match(r"(69|6/9|13|11|9|7|6|5|2|4)", q)
    if m is not None:
        num = m.group(1)
        q = q[m.end():]
        if num == "5" and text == "":
            iv = {0, 7}
        elif num in ("6", "69", "6/9"):
            iv.add(9)
            if num != "6":
                iv.add(2)
        elif num in ("2", "4") and text == "":
            iv.discard(4)
            iv.add(2 if num == "2" else 5)
        elif num in ("7", "9", "11", "13"):
            if seventh is not None:
                iv.add(seventh)
            if num in ("9", "11", "13"):
                iv.add(2)
            if num == "13":
                iv.add(9)
            if num == "11":
                iv.add(5)
                if third == 4:
                    iv.discard(4)  # C11: the 11th replaces the third
        # a second number after an accidental-less 7 (WJD's "79b", "7911#") is read below
    while q:
        if q.startswith("sus"):
            q = q[3:]
            iv.discard(3)
            iv.discard(4)
            if q[:1] == "2":
                iv.add(2)
                q = q[1:]
            else:
                iv.add(5)
                if q[:1] == "4":
                    q = q[1:]
                if q[:1] == "7":
                    iv.add(10)
                    q = q[1:]
            continue
        if q.startswith("alt"):
            q = q[3:]
            iv |= {10, 1, 3, 6, 8}
            iv.discard(7)
            continue
        if q.startswith("omit3") or q.startswith("no3"):
            q = q[5:] if q.startswith("omit3") else q[3:]
            iv.discard(3)
            iv.discard(4)
            continue
        m = _ALT.match(q)
        if m is None or not m.group(0):
            raise ConfigError(_bad(s, f"cannot read {q!r}"))
        pre, num1, num2, post = m.groups()
        num, acc = (num1, pre) if num1 else (num2, post or "")
        step = {"5": 7, "9": 2, "11": 5, "13": 9, "2": 2, "4": 5, "6": 9}[num]
        shift = {"b": -1, "-": -1, "#": 1, "+": 1, "": 0}[acc]
        if num == "5" and shift:
            iv.discard(7)
        if num in ("9", "11", "13") and not m.group(0).startswith("add") and seventh is not None \
                and 11 not in iv and 9 not in iv:
            iv.add(seventh)  # "C7b9" already has it; "Cb9" alone implies the dominant 7th
        iv.add((step + shift) % 12)
        q = q[m.end():]
    return chord(root, tuple(sorted(iv, key=lambda i: (i != 0, i))), bass, s)


__all__ = ["HARTE", "NAMES", "Chord", "chord", "parse_chord"]
