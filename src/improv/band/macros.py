"""The band's state as MIDI CC macros (``--cc-map FILE``): a synth's filter and effects
move with the band, as an MPC's Q-Link knobs or a Push's macros would move them.

A CC map is a TOML file of ``[[macro]]`` tables, each one controller driven by one
quantity of one band (or of all of them)::

    every = "beat"              # when the macros are read: "beat" (default) or "bar"

    [[macro]]
    source = "intensity"        # what drives it (SOURCES below)
    band = "all"                # bass, mid, high, drums, or all (the mean of the bands playing)
    cc = 74                     # controller number 0-119
    channel = 2                 # MIDI channel 1-16 (default: the band's own; needed with all)
    range = [20, 110]           # the CC value at 0 and at 1 of the source (high to low inverts)
    curve = "linear"            # linear, exp (x^2), log (sqrt x), or a power > 0
    glide = 2.0                 # smoothing: time constant in beats (0: jump at once)
    step = 1                    # send only when the value moved at least this much
    every = "bar"               # this macro's rate (default: the file's)

Each macro is read on the band's beats (or bar lines) as it plans them — free mode: every
half second (a bar: two seconds) — smoothed, and sent only when its value changed: at most
one message a beat, never per audio block. The messages go out through the session's
MIDI port at the beat's time (the band's scheduler, as its notes), to the built-in synth
when the channel is a band's, and into the recording (``controls.jsonl``, and a track "cc"
of ``session.mid``). Every error in a map names the file, the macro and the key.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..events import ALL_BANDS, BANDS, DRUMS, ControlChange
from .orders import MAX_STEPS, Orders

# source: what it is, 0..1 (the help shown in errors and the README)
SOURCES: dict[str, str] = {
    "intensity": "the band's loudness: mean velocity of its notes over the last 4 beats / 127 (0 when silent)",
    "activity": "notes per beat over the last 4 beats, 4 or more = 1",
    "density": "the busier/simpler steps: simpler x3 = 0, as told = 0.5, busier x3 = 1",
    "chaos": "the more orderly/more chaotic steps: orderly x3 = 0, as told = 0.5, chaotic x3 = 1",
    "variation": "take over's variation 0-1 (0 in other modes)",
    "dissonance": "fight's dissonance budget 0-1 (0 in other modes)",
    "register": "where in its range the band played over the last 4 beats: its lowest note 0, highest 1",
    "playing": "1 while the band plays, 0 once stopped",
}
CURVES = {"linear": 1.0, "exp": 2.0, "log": 0.5}
RATES = ("beat", "bar")
MACRO_KEYS = ("source", "band", "cc", "channel", "range", "curve", "glide", "step", "every")
TOP_KEYS = ("every", "macro")
WINDOW_BEATS = 4.0
FREE_BEAT = 0.5          # seconds: a "beat" of a band in free mode (as its density counts them)


@dataclass(frozen=True)
class Macro:
    """One controller driven by one quantity of one band (validated)."""

    source: str
    band: str                      # a band, or "all"
    cc: int                        # 0-119
    channel: int                   # 0-15 (as sent)
    low: int = 0                   # CC value at source 0
    high: int = 127                # CC value at source 1
    curve: float = 1.0             # the source is raised to this power
    glide: float = 0.0             # beats
    step: int = 1
    every: str = "beat"

    def value(self, x: float) -> float:
        """The CC value (not rounded) for a source value ``x`` in 0..1."""
        x = min(1.0, max(0.0, x)) ** self.curve
        return self.low + (self.high - self.low) * x

    def label(self) -> str:
        return f"{self.band} {self.source} -> CC {self.cc} ch {self.channel + 1}"


@dataclass(frozen=True)
class CCMap:
    macros: tuple[Macro, ...]
    path: str = ""


def load_cc_map(path: str | Path, channels: dict[str, int] | None = None) -> CCMap:
    """Read and validate a CC map file; ``channels`` are the bands' (0-based) channels, the
    default of a macro for one band. A bad file raises a one-line ConfigError naming it."""
    where = f"--cc-map {path}"
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{where}: cannot read it ({e.strerror}); give a TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: not a TOML file ({e}); see examples/cc-map.toml") from None
    return parse_cc_map(data, where, channels)


def parse_cc_map(data: dict[str, Any], where: str = "--cc-map", channels: dict[str, int] | None = None) -> CCMap:
    """A CC map from its TOML data (see the module doc); errors name ``where``, the macro and the key."""
    from ..output import CHANNELS

    channels = {**CHANNELS, **(channels or {})}
    for key in data:
        if key not in TOP_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}; a CC map has 'every' and [[macro]] tables")
    every = _rate(data.get("every", "beat"), f"{where}: every")
    tables = data.get("macro")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{where}: no [[macro]] table; give at least one, e.g. [[macro]] source = \"intensity\" "
                          "band = \"all\" cc = 74 channel = 2")
    macros: list[Macro] = []
    used: dict[tuple[int, int], int] = {}
    for i, t in enumerate(tables, 1):
        at = f"{where}: macro {i}"
        for key in t:
            if key not in MACRO_KEYS:
                raise ConfigError(f"{at}: unknown key {key!r}; keys are {', '.join(MACRO_KEYS)}")
        source = t.get("source")
        if source not in SOURCES:
            raise ConfigError(f"{at}: source = {source!r}: give one of {', '.join(SOURCES)}")
        band = t.get("band", "all")
        if band not in (*ALL_BANDS, "all"):
            raise ConfigError(f"{at}: band = {band!r}: give one of {', '.join(ALL_BANDS)}, all")
        if source == "register" and band == DRUMS:
            raise ConfigError(f"{at}: source = 'register' has no meaning for the drums; give a melodic band or all")
        cc = _int(t.get("cc"), f"{at}: cc", 0, 119, "a controller number 0-119 (120-127 are channel mode messages)")
        if "channel" in t:
            channel = _int(t["channel"], f"{at}: channel", 1, 16, "a MIDI channel 1-16") - 1
        elif band != "all":
            channel = channels[band]
        else:
            raise ConfigError(f"{at}: band = 'all' needs a channel (channel = 1 to 16)")
        low, high = 0, 127
        if "range" in t:
            r = t["range"]
            if not (isinstance(r, list) and len(r) == 2):
                raise ConfigError(f"{at}: range = {r!r}: give [LOW, HIGH], two CC values 0-127")
            low = _int(r[0], f"{at}: range", 0, 127, "two CC values 0-127, [LOW, HIGH]")
            high = _int(r[1], f"{at}: range", 0, 127, "two CC values 0-127, [LOW, HIGH]")
        curve = t.get("curve", "linear")
        if isinstance(curve, str) and curve in CURVES:
            power = CURVES[curve]
        elif isinstance(curve, (int, float)) and not isinstance(curve, bool) and 0.1 <= curve <= 10:
            power = float(curve)
        else:
            raise ConfigError(f"{at}: curve = {curve!r}: give linear, exp, log or a power 0.1-10")
        glide = t.get("glide", 0.0)
        if isinstance(glide, bool) or not isinstance(glide, (int, float)) or not 0 <= glide <= 64 \
                or not math.isfinite(glide):
            raise ConfigError(f"{at}: glide = {glide!r}: give a time constant in beats, 0 (none) to 64")
        step = _int(t.get("step", 1), f"{at}: step", 1, 127, "the least change sent, 1-127")
        rate = _rate(t.get("every", every), f"{at}: every")
        if (channel, cc) in used:
            raise ConfigError(f"{at}: cc {cc} on channel {channel + 1} is already macro {used[(channel, cc)]}'s; "
                              "give each its own controller")
        used[(channel, cc)] = i
        macros.append(Macro(source, band, cc, channel, low, high, power, float(glide), step, rate))
    return CCMap(tuple(macros), where)


def _int(v: Any, at: str, lo: int, hi: int, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConfigError(f"{at} = {v!r}: give {what}")
    return v


def _rate(v: Any, at: str) -> str:
    if v not in RATES:
        raise ConfigError(f"{at} = {v!r}: give beat or bar")
    return v


# ------------------------------------------------------------------ reading the band


def band_state(band, name: str, t: float) -> dict[str, float]:
    """The quantities of :data:`SOURCES` (0..1) of one band player at session time ``t``, as
    the band has planned it (call from the band's thread)."""
    p = band.players[name]
    o: Orders = p.orders_at(t)
    bs = band.map.beat_seconds if band.map is not None else FREE_BEAT
    since = t - WINDOW_BEATS * bs
    if name == DRUMS:
        notes = [(on.velocity, None) for on, _, _ in band._drum_hits if since <= on.time < t]
        lo_hi = None
    else:
        notes = [(n.velocity, n.pitch) for n in band.context.band(name, since=since, until=t)]
        lo_hi = band.ranges[name]
    out = {
        "intensity": sum(v for v, _ in notes) / len(notes) / 127.0 if notes else 0.0,
        "activity": min(1.0, len(notes) / WINDOW_BEATS / 4.0),
        "density": (o.density + MAX_STEPS) / (2 * MAX_STEPS),
        "chaos": (MAX_STEPS - o.order) / (2 * MAX_STEPS),
        "variation": o.amount if o.mode == "take-over" else 0.0,
        "dissonance": o.amount if o.mode == "fight" else 0.0,
        "playing": 0.0 if o.stopped else 1.0,
    }
    pitches = [p for _, p in notes if p is not None]
    if lo_hi is not None and pitches:
        out["register"] = (sum(pitches) / len(pitches) - lo_hi[0]) / max(lo_hi[1] - lo_hi[0], 1)
    return out


def read_source(band, macro: Macro, t: float) -> float | None:
    """The macro's source value at ``t`` (the mean over the bands playing for "all"); None
    when it has none yet (register before any note)."""
    names = [b for b in band.players if macro.band in ("all", b) and (macro.source != "register" or b in BANDS)]
    values = [v for v in (band_state(band, b, t).get(macro.source) for b in names) if v is not None]
    return sum(values) / len(values) if values else None


class MacroSender:
    """Reads the band on its beats (or bars) and emits a :class:`ControlChange` for each macro
    whose value changed. ``pump(now)`` (after each band step, in the band's thread) emits the
    beats up to ``now + horizon`` through ``emit``."""

    def __init__(self, ccmap: CCMap, band, emit: Callable[[ControlChange], None], horizon: float = 0.08):
        self.macros = tuple(m for m in ccmap.macros if m.band == "all" or m.band in band.players)
        self.band = band
        self.emit = emit
        self.horizon = horizon
        self._smooth: dict[Macro, float] = {}
        self._sent: dict[Macro, int] = {}
        self._last: dict[str, float | None] = {rate: None for rate in RATES}

    def pump(self, now: float) -> None:
        if self.band.map is None:
            return
        for rate in RATES:
            macros = [m for m in self.macros if m.every == rate]
            if not macros:
                continue
            last = self._last[rate]
            t = self._boundary_after(last if last is not None else now - 1e-3, rate)
            if t < now - 0.05:  # fell behind (a stall, a new time map): from the next one
                t = self._boundary_after(now, rate)
            while t <= now + self.horizon:
                beats = self._beats(last, t)
                for m in macros:
                    self._update(m, t, beats)
                last = t
                t = self._boundary_after(t, rate)
            self._last[rate] = last

    def _update(self, m: Macro, t: float, beats: float) -> None:
        x = read_source(self.band, m, t)
        if x is None:
            return
        target = m.value(x)
        y = self._smooth.get(m)
        if y is None or m.glide <= 0:
            y = target
        else:
            y += (1.0 - math.exp(-beats / m.glide)) * (target - y)
        self._smooth[m] = y
        value = int(round(min(127.0, max(0.0, y))))
        sent = self._sent.get(m)
        if sent is None or abs(value - sent) >= m.step or (value != sent and value == round(target)):
            self._sent[m] = value
            self.emit(ControlChange(t, m.cc, value, m.channel, m.band, m.source))

    def _beats(self, last: float | None, t: float) -> float:
        """Beats between two readings (the first reading: one)."""
        m = self.band.map
        if last is None:
            return 1.0
        if m.metered:
            return max(0.0, m.clock.beat_at(t) - m.clock.beat_at(last))
        return max(0.0, (t - last) / FREE_BEAT)

    def _boundary_after(self, t: float, rate: str) -> float:
        """The band's next beat (or bar line) strictly after ``t``."""
        m = self.band.map
        if m.metered:
            per = m.meter.beats_per_bar if rate == "bar" else 1
            b = m.clock.beat_at(t)
            k = math.floor(b / per + 1e-6) + 1
            return m.clock.time_of(k * per)
        per = FREE_BEAT * (4 if rate == "bar" else 1)
        return (math.floor(t / per + 1e-6) + 1) * per


__all__ = ["CCMap", "Macro", "MacroSender", "SOURCES", "band_state", "load_cc_map", "parse_cc_map", "read_source"]
