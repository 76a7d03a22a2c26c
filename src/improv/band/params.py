"""The band's run-time parameters: named, with declared ranges, set while it plays.

One table (:data:`PARAMS`) drives validation, the capabilities a server announces and
what :meth:`improv.band.Band.set_param` changes. A name is the parameter alone (every
band it applies to) or ``BAND.NAME`` for one band (``bass.density``)::

    temperature     0.1 .. 3      the bands' pitch temperature, times this (1: as trained and steered)
    top_p           0.05 .. 1     the nucleus among the pitches in range (default 0.95)
    context_bars    1 .. 64       bars the band remembers (metered)
    context_seconds 1 .. 300      seconds the band remembers (free mode)
    lookahead       0 .. 0.5 s    planning lead: each frame is decided this long before it leaves
    density         -3 .. 3       a band's density steps (busier +, simpler -), as the commands set them
    register        -24 .. 24     semitones the band's range moves (its register)
    silence_check   0 | 1         a bar that would leave a band silent is re-drawn (metered)
    novelty_check   0 | 1         a bar that would repeat the band's last bar exactly is re-drawn (metered)

:func:`check_param` raises :class:`~improv.errors.ConfigError` naming the problem and
the range; the band applies a checked change at its next step (``ParamChange``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..events import ALL_BANDS, BANDS


@dataclass(frozen=True)
class ParamSpec:
    help: str
    low: float
    high: float
    default: Any
    kind: str = "float"            # float | int | switch
    per_band: bool = False         # may be set for one band (BAND.NAME); else the whole band
    bands: tuple[str, ...] = ALL_BANDS  # the bands it applies to

    def describe(self) -> dict[str, Any]:
        out = {"help": self.help, "type": self.kind, "min": self.low, "max": self.high, "default": self.default}
        if self.per_band:
            out["bands"] = list(self.bands)
        return out


PARAMS: dict[str, ParamSpec] = {
    "temperature": ParamSpec("the bands' pitch temperature, times this (1: as trained and steered; lower: "
                             "safer pitches, higher: wilder)", 0.1, 3.0, 1.0, per_band=True, bands=BANDS),
    "top_p": ParamSpec("the nucleus among the pitches in range: only the likeliest pitches making up this share "
                       "are drawn", 0.05, 1.0, 0.95, per_band=True, bands=BANDS),
    "context_bars": ParamSpec("bars the band remembers (metered)", 1, 64, 8.0),
    "context_seconds": ParamSpec("seconds the band remembers (free mode)", 1, 300, 16.0),
    "lookahead": ParamSpec("planning lead in seconds: each model frame is decided this long before it leaves "
                           "(more: steadier under load, later to answer)", 0.0, 0.5, 0.05),
    "density": ParamSpec("density steps (busier +, simpler -), as busier/simpler set them", -3, 3, 0, kind="int",
                         per_band=True),
    "register": ParamSpec("semitones the band's range moves up (+) or down (-)", -24, 24, 0, kind="int",
                          per_band=True, bands=BANDS),
    "silence_check": ParamSpec("on (1): a bar that would leave a band silent is re-drawn (metered)", 0, 1, 0,
                               kind="switch", per_band=True, bands=BANDS),
    "novelty_check": ParamSpec("on (1): a bar that would repeat the band's last bar exactly is re-drawn "
                               "(metered)", 0, 1, 0, kind="switch", per_band=True, bands=BANDS),
}


@dataclass(frozen=True, slots=True)
class ParamChange:
    """A checked parameter change: ``band`` None for every band it applies to."""

    time: float
    name: str
    band: str | None
    value: float | int


def check_param(name: str, value: Any, bands: tuple[str, ...] = ALL_BANDS) -> tuple[str, str | None, float | int]:
    """``("bass.density", 2)`` -> ("density", "bass", 2); ConfigError naming what is wrong.
    ``bands``: the bands playing (a band not among them is refused)."""
    text = str(name).strip().lower().replace("-", "_")
    band, _, param = text.rpartition(".")
    band = band or None
    spec = PARAMS.get(param)
    if spec is None:
        raise ConfigError(f"unknown parameter {name!r}: use one of {', '.join(PARAMS)} (BAND.NAME for one band)")
    if band is not None:
        if not spec.per_band:
            raise ConfigError(f"parameter {param!r} is the whole band's: give it without a band")
        if band not in spec.bands:
            raise ConfigError(f"parameter {name!r}: {param} is for {', '.join(spec.bands)}, not {band!r}")
        if band not in bands:
            raise ConfigError(f"parameter {name!r}: {band} is not playing (the bands are {', '.join(bands)})")
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"parameter {param!r}: {value!r} is not a number; give {_range(spec)}") from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"parameter {param!r}: {value!r} is not a finite number; give {_range(spec)}")
    if spec.kind in ("int", "switch"):
        if value != round(value):
            raise ConfigError(f"parameter {param!r}: {value:g} is not a whole number; give {_range(spec)}")
        value = int(round(value))
    else:
        value = float(f"{float(value):.6g}")  # (OSC floats are 32-bit: 0.7 arrives as 0.699999988)
    if not spec.low <= value <= spec.high:
        raise ConfigError(f"parameter {param!r}: {value:g} is out of range; give {_range(spec)}")
    return param, band, value


def _range(spec: ParamSpec) -> str:
    if spec.kind == "switch":
        return "0 (off) or 1 (on)"
    return f"{spec.low:g} to {spec.high:g}" + (" (whole numbers)" if spec.kind == "int" else "")


__all__ = ["PARAMS", "ParamChange", "ParamSpec", "check_param"]
