"""Lead sheets for ``improv listen --changes``: the form the band plays, looped.

Two ways to write it, inline or in a file:

* **Bars**: ``| Dm7 G7 | Cmaj7 | % | A7 |`` — bars between ``|``; the chords of a bar share
  it evenly (two in 4/4: two beats each; three in 4/4: 2 + 1 + 1 beats); ``%`` repeats
  the bar before; ``NC`` (or ``N``) is no chord. Line breaks count as nothing, so a file
  may hold a chorus over several lines.
* **ChordPro-style** (a file whose lines carry ``[Am]``): each line with chords is one
  bar, its ``[...]`` chords sharing the bar; lyrics between them are ignored.

In both, ``#`` starts a comment and ``{...}`` directive lines are ignored. Chord symbols
are those of :mod:`improv.harmony.chords`. Errors name the bar and the symbol.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .chords import Chord, parse_chord


@dataclass(frozen=True)
class Form:
    """The chorus: ``bars[i]`` holds (start beat in the bar, chord) pairs."""

    bars: tuple[tuple[tuple[float, Chord | None], ...], ...]
    beats_per_bar: int
    text: str = ""

    @property
    def beats(self) -> int:
        return len(self.bars) * self.beats_per_bar

    def at(self, beat: float) -> tuple[Chord | None, int, int, float]:
        """(chord, bar of the form from 0, chorus from 0, beat the chord began) at ``beat``
        of the looped form (beat 0 = the first bar's downbeat; ``beat`` >= 0)."""
        chorus, inside = divmod(beat, self.beats)
        bar = int(inside // self.beats_per_bar)
        bar = min(bar, len(self.bars) - 1)
        pos = inside - bar * self.beats_per_bar
        cur, began = None, 0.0
        for start, c in self.bars[bar]:
            if start <= pos + 1e-9:
                cur, began = c, start
        return cur, bar, int(chorus), chorus * self.beats + bar * self.beats_per_bar + began

    def next_change(self, beat: float) -> tuple[Chord | None, float]:
        """The next chord different in time (the one after the chord at ``beat``) and its beat."""
        chorus, inside = divmod(beat, self.beats)
        starts = [(b * self.beats_per_bar + s, c) for b, bar in enumerate(self.bars) for s, c in bar]
        for s, c in starts + [(self.beats + s, c) for s, c in starts]:
            if s > inside + 1e-9:
                return c, chorus * self.beats + s
        return starts[0][1], (chorus + 1) * self.beats


def _split(n: int, beats: int) -> list[float]:
    """Start beats of ``n`` chords sharing a bar of ``beats`` (earlier chords get the remainder)."""
    if n <= 0:
        return []
    if beats % n == 0 or n > beats:
        return [i * beats / n for i in range(n)]
    base, extra = divmod(beats, n)
    lengths = [base + (1 if i < extra else 0) for i in range(n)]
    return [float(sum(lengths[:i])) for i in range(n)]


def _clean(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or (line.startswith("{") and line.endswith("}")):
            continue
        lines.append(line)
    return lines


def parse_changes(text: str, beats_per_bar: int = 4) -> Form:
    """Lead-sheet text (either way of writing it, see the module doc) -> :class:`Form`."""
    lines = _clean(text)
    if not lines:
        raise ConfigError("--changes: no bars given (write e.g. '| Dm7 G7 | Cmaj7 | % |')")
    if any("[" in line for line in lines):
        bars_words = []
        for i, line in enumerate(lines):
            words = re.findall(r"\[([^\]]*)\]", line)
            if words:
                bars_words.append(words)
            elif "|" in line or line.strip() == "%":
                raise ConfigError(f"--changes line {i + 1}: mix of ChordPro [chords] and | bars; use one way")
    else:
        # "| A | B |": the bar lines at a line's ends close its first and last bar
        body = " | ".join(line.strip().strip("|").strip() for line in lines)
        bars_words = [p.split() for p in body.split("|")]
    bars: list[tuple[tuple[float, Chord | None], ...]] = []
    for i, words in enumerate(bars_words):
        where = f"--changes bar {i + 1}"
        if not words:
            raise ConfigError(f"{where}: empty bar (write a chord, '%' to repeat the bar before, or NC)")
        if words == ["%"]:
            if not bars:
                raise ConfigError(f"{where}: '%' repeats the bar before, and there is none")
            bars.append(bars[-1])
            continue
        chords = []
        for w in words:
            if w == "%":
                raise ConfigError(f"{where}: '%' must stand alone in its bar")
            try:
                chords.append(parse_chord(w))
            except ConfigError as e:
                raise ConfigError(f"{where}: {e}") from None
        if len(chords) > beats_per_bar * 2:
            raise ConfigError(f"{where}: {len(chords)} chords in a bar of {beats_per_bar} beats")
        bars.append(tuple(zip(_split(len(chords), beats_per_bar), chords)))
    if all(c is None for bar in bars for _, c in bar):
        raise ConfigError("--changes: every bar is NC (no chord)")
    return Form(tuple(bars), beats_per_bar, text.strip())


def read_changes(value: str, beats_per_bar: int = 4) -> Form:
    """``--changes VALUE``: a file's path (its text) or the text itself."""
    v = value.strip()
    p = Path(v).expanduser()
    looks_like_path = "|" not in v and "[" not in v and p.suffix.lower() in (".txt", ".cho", ".chopro", ".chordpro",
                                                                            ".crd", ".changes")
    if looks_like_path or p.is_file():
        try:
            text = p.read_text()
        except OSError as e:
            raise ConfigError(f"--changes {value}: cannot read the file ({e.strerror})") from None
        return parse_changes(text, beats_per_bar)
    return parse_changes(v, beats_per_bar)


__all__ = ["Form", "parse_changes", "read_changes"]
