"""Meter and swing: how beats group into bars and where the band's off-beats fall.

A *beat* here is the counted beat of the meter: a quarter note in 2/4, 3/4, 4/4 and
5/4, a dotted quarter in 6/8, 9/8 and 12/8. Tempos (BPM) count these beats, and MIDI
clock's 24 pulses per quarter note are converted with ``quarters_per_beat``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class Meter:
    numerator: int
    denominator: int
    beats_per_bar: int
    quarters_per_beat: float
    subdivisions: int  # 2: simple meter (beats split in two), 3: compound

    @property
    def name(self) -> str:
        return f"{self.numerator}/{self.denominator}"

    @property
    def compound(self) -> bool:
        return self.subdivisions == 3

    def bar_beat(self, beat: float) -> tuple[int, float]:
        """(bar index, beat within the bar) of an absolute beat position (beat 0 = a downbeat)."""
        bar = math.floor(beat / self.beats_per_bar)
        return bar, beat - bar * self.beats_per_bar


def _simple(n: int) -> Meter:
    return Meter(n, 4, n, 1.0, 2)


def _compound(n: int) -> Meter:
    return Meter(n, 8, n // 3, 1.5, 3)


METERS: dict[str, Meter] = {
    "2/4": _simple(2), "3/4": _simple(3), "4/4": _simple(4), "5/4": _simple(5),
    "6/8": _compound(6), "9/8": _compound(9), "12/8": _compound(12),
}
DEFAULT_METER = METERS["4/4"]


def parse_meter(text: str | Meter | None) -> Meter:
    """``"4/4"`` -> :class:`Meter`; an unknown meter raises :class:`ConfigError`."""
    if text is None:
        return DEFAULT_METER
    if isinstance(text, Meter):
        return text
    key = str(text).strip().replace(" ", "")
    if key.lower() == "c":
        key = "4/4"
    try:
        return METERS[key]
    except KeyError:
        raise ConfigError(f"--meter {text!r}: unknown meter; choose one of {', '.join(METERS)}") from None


SWING_MIN, SWING_MAX = 50.0, 75.0


@dataclass(frozen=True, slots=True)
class Swing:
    """Where the off-beat of each beat falls, as a percentage of the beat (MPC style).

    50 is straight, 66.7 a triplet feel, 75 a dotted-eighth-and-sixteenth. The beat
    is split in two at its middle and each half is stretched linearly, so positions
    on the beat stay put and the band's off-beats move. Compound meters (6/8, ...)
    already divide the beat in three: swing leaves them straight.
    """

    percent: float = 50.0

    def __post_init__(self) -> None:
        if not (SWING_MIN <= self.percent <= SWING_MAX) or math.isnan(self.percent):
            raise ConfigError(f"--swing {self.percent:g}: give a percentage from {SWING_MIN:g} (straight) "
                              f"to {SWING_MAX:g} (hard swing); 66 is a triplet feel")

    @property
    def ratio(self) -> float:
        return self.percent / 100.0

    def apply(self, beat: float, meter: Meter = DEFAULT_METER) -> float:
        """Straight beat position -> swung beat position."""
        if meter.compound or self.percent == 50.0:
            return beat
        whole = math.floor(beat)
        f = beat - whole
        r = self.ratio
        g = f * (r / 0.5) if f <= 0.5 else r + (f - 0.5) * ((1.0 - r) / 0.5)
        return whole + g

    def remove(self, beat: float, meter: Meter = DEFAULT_METER) -> float:
        """Swung beat position -> straight beat position (inverse of :meth:`apply`)."""
        if meter.compound or self.percent == 50.0:
            return beat
        whole = math.floor(beat)
        g = beat - whole
        r = self.ratio
        f = g * (0.5 / r) if g <= r else 0.5 + (g - r) * (0.5 / (1.0 - r))
        return whole + f


def parse_swing(value: float | str | None) -> Swing:
    """``--swing`` value (percent, "60" or "60%") -> :class:`Swing`."""
    if value is None:
        return Swing()
    try:
        pct = float(str(value).strip().rstrip("%"))
    except ValueError:
        raise ConfigError(f"--swing {value!r}: give a percentage from 50 (straight) to 75, e.g. 60") from None
    return Swing(pct)
