"""The drummer: a fourth band player that plays General MIDI drums from grooves written as data.

The drummer does not go through the band model (the model knows nothing of drums).
Its grooves are TOML files in ``grooves/``, one per style (``grooves/README.md`` says
how they are written): lines of steps per drum voice, each step a probability and a
velocity factor, lines that play at some density levels only, fills, and the feel
(swing, accents, micro-timing, how often the kick follows the bass). Everything
random is drawn from a hash of (seed, bar, step, line), so planning a frame twice
(the band replans what it has not handed on when it hears a note) gives the same hits.

Like the melodic players it takes the time of the frame as an argument, follows
:class:`~improv.band.orders.Orders` (stop/go, busier/simpler, make room, more
orderly/chaotic, fight, take over, lead) and is driven by :class:`improv.band.Band`,
which asks it for the hits of each frame it plans:

* metered (:meth:`Drummer.plan` with a metered time map): the groove of the style in
  force at the density level of its orders; a fill at the end of every 4-bar phrase
  (3 in 4 of them; always at the end of 8 bars, longer) and a crash on the one after
  it; the kick moves onto (or adds a hit at) the bass's onsets; make room leaves out
  the steps of the bar where the player attacked in the last two bars, one level
  sparser and softer; fight displaces the accents off the beat, pushes the kick a
  sixteenth late and adds a dotted-eighth cross-rhythm; take over plays a break
  (busier, a fill in every bar) while the player rests; intensity (the player's
  loudness and notes per beat over the last two bars) scales velocities and the
  chance of the optional hits.
* free mode (no beat) or the ``free`` style: colour, never a beat: cymbal swells,
  mallet rolls and single accents (after the player's loud notes), started at
  irregular times, more of them in the player's gaps.
* count-in (``--count-in BARS``: sticks on every beat of the bars before beat 0) and
  ``--click`` (a metronome on every beat: bell on the one).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..timing import Meter, Swing, parse_meter, parse_swing
from .commands import STYLE_NAMES
from .orders import Orders, Player, Timeline

GROOVE_DIR = Path(__file__).with_name("grooves")
STYLES: tuple[str, ...] = STYLE_NAMES      # (the ``style`` command's choices: one list)
DEFAULT_STYLE = "straight"
# General MIDI drum kits: program numbers (from 0) on the drum channel (GS/GM2 kit map)
KITS: dict[str, int] = {"standard": 0, "room": 8, "power": 16, "electronic": 24, "tr808": 25, "jazz": 32,
                        "brush": 40, "orchestra": 48}
DRUM_CHANNEL = 9            # MIDI channel 10
HIT_SECONDS = 0.04          # note-off this long after each hit (GM drums ring out regardless)

VOICES: dict[str, int] = {
    "kick": 36, "kick2": 35, "snare": 38, "snare2": 40, "rim": 37, "clap": 39, "hat": 42, "pedal": 44,
    "open": 46, "ride": 51, "bell": 53, "crash": 49, "crash2": 57, "splash": 55, "china": 52,
    "tom-low": 45, "tom-mid": 47, "tom-high": 50, "floor": 43, "floor-low": 41, "cowbell": 56,
    "tambourine": 54, "shaker": 70, "cabasa": 69, "claves": 75, "woodblock": 76, "sticks": 31,
    "click": 33, "click-bell": 34,
}
KICKS = frozenset({35, 36})
# step symbols: (probability, velocity factor)
SYMBOLS: dict[str, tuple[float, float]] = {"X": (1.0, 1.2), "x": (1.0, 1.0), "o": (0.65, 1.0), "g": (0.6, 0.45),
                                           "-": (0.25, 0.85)}
LEVELS = (-3, 3)            # density levels (busier/simpler steps and modes)


def choices_text(names) -> str:
    return ", ".join(names)


def check_style(name: str, option: str = "--style") -> str:
    n = str(name).strip().lower()
    if n not in STYLES:
        raise ConfigError(f"{option} {name!r}: unknown style; choose one of {choices_text(STYLES)}")
    return n


def check_kit(name: str) -> int:
    """``--kit`` by name -> the kit's program number."""
    n = str(name).strip().lower()
    if n not in KITS:
        raise ConfigError(f"--kit {name!r}: unknown drum kit; choose one of {choices_text(KITS)}")
    return KITS[n]


# ---------------------------------------------------------------- grooves (data)


@dataclass(frozen=True)
class Line:
    """One drum voice's steps: each step (probability, velocity factor) or None (rest)."""

    note: int
    steps: tuple[tuple[float, float] | None, ...]
    levels: tuple[int, int] = (-3, 3)       # the density levels it plays at
    velocity: tuple[int, int] = (70, 100)
    timing: float = 0.004                   # micro-timing spread (sd, seconds)
    push: float = 0.0                       # played this much early (-) or late (+), seconds

    def plays_at(self, level: int) -> bool:
        return self.levels[0] <= level <= self.levels[1]


@dataclass(frozen=True)
class Fill:
    beats: int
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class Colour:
    """Free mode: gestures per second (while the player plays / in their gaps) and voices."""

    rate: float = 0.25
    gap_rate: float = 0.8
    cymbals: tuple[int, ...] = (51, 49)
    toms: tuple[int, ...] = (45, 47, 50, 38)
    accents: tuple[int, ...] = (36, 49)
    roll_spacing: tuple[float, float] = (0.045, 0.075)


@dataclass(frozen=True)
class Groove:
    name: str
    description: str
    meter: Meter
    steps_per_beat: int
    bars: int
    swing: float                            # percent (50 = straight)
    bass_lock: float                        # chance of a kick on a bass onset with no kick there
    accents: tuple[float, ...]              # velocity factor per beat of the bar
    lines: tuple[Line, ...]
    fills: tuple[Fill, ...]
    crash: int = 49
    cross: int = 37                          # fight: the cross-rhythm's voice
    colour: Colour = field(default_factory=Colour)
    tempo: tuple[float, float] = (60.0, 200.0)

    @property
    def pattern_beats(self) -> int:
        return self.meter.beats_per_bar * self.bars

    def step(self, line: Line, bar: int, beat_in_bar: int, sub: int) -> tuple[float, float] | None:
        """The step of ``line`` at (session bar, beat within it, subdivision)."""
        bpb = self.meter.beats_per_bar
        idx = ((bar % self.bars) * bpb + beat_in_bar % bpb) * self.steps_per_beat + sub
        return line.steps[idx % len(line.steps)]

    def expected_hits(self, level: int) -> float:
        """Hits per bar of the groove lines at ``level`` (probabilities summed; fills left out)."""
        total = sum(step[0] for ln in self.lines if ln.plays_at(level) for step in ln.steps if step is not None)
        return total / self.bars


def _voice(value: Any, where: str) -> int:
    if isinstance(value, int) and 27 <= value <= 87:
        return value
    if isinstance(value, str) and value in VOICES:
        return VOICES[value]
    raise ConfigError(f"{where}: voice {value!r}: give a GM drum note 27-87 or one of {', '.join(VOICES)}")


def _steps(text: str, length: int, where: str) -> tuple[tuple[float, float] | None, ...]:
    chars = [c for c in text if not c.isspace() and c != "|"]
    bad = [c for c in chars if c != "." and c not in SYMBOLS]
    if bad:
        raise ConfigError(f"{where}: step {bad[0]!r}: use . (rest) or {' '.join(SYMBOLS)}")
    if len(chars) != length:
        raise ConfigError(f"{where}: {len(chars)} steps, the pattern needs {length}")
    return tuple(None if c == "." else SYMBOLS[c] for c in chars)


def _line(d: dict, length: int, where: str, default_timing: float) -> Line:
    try:
        note = _voice(d["voice"], where)
        steps = _steps(d["steps"], length, where)
    except KeyError as e:
        raise ConfigError(f"{where}: missing {e.args[0]!r}") from None
    lo, hi = d.get("levels", [LEVELS[0], LEVELS[1]])
    vlo, vhi = d.get("velocity", [70, 100])
    if not (LEVELS[0] <= lo <= hi <= LEVELS[1]) or not (1 <= vlo <= vhi <= 127):
        raise ConfigError(f"{where}: levels within {LEVELS[0]}..{LEVELS[1]}, velocity within 1..127, low first")
    return Line(note, steps, (int(lo), int(hi)), (int(vlo), int(vhi)),
                float(d.get("timing_ms", default_timing * 1000.0)) / 1000.0, float(d.get("push_ms", 0.0)) / 1000.0)


def parse_groove(data: dict, name: str) -> Groove:
    where = f"groove {name}"
    meter = parse_meter(data.get("meter", "4/4"))
    spb = int(data.get("steps_per_beat", 4))
    bars = int(data.get("bars", 1))
    if spb not in (1, 2, 3, 4, 6, 8, 12) or not 1 <= bars <= 4:
        raise ConfigError(f"{where}: steps_per_beat 1,2,3,4,6,8,12 and bars 1-4")
    length = meter.beats_per_bar * bars * spb
    timing = float(data.get("timing_ms", 4.0)) / 1000.0
    lines = tuple(_line(d, length, f"{where} line {i + 1}", timing) for i, d in enumerate(data.get("line", [])))
    fills = []
    for i, f in enumerate(data.get("fill", [])):
        beats = int(f.get("beats", 1))
        flines = tuple(_line(d, beats * spb, f"{where} fill {i + 1} line {j + 1}", timing)
                       for j, d in enumerate(f.get("line", [])))
        fills.append(Fill(beats, flines))
    accents = tuple(float(a) for a in data.get("accents", [1.0]))
    c = data.get("colour", {})
    colour = Colour(float(c.get("rate", 0.25)), float(c.get("gap_rate", 0.8)),
                    tuple(_voice(v, where) for v in c.get("cymbals", ["ride", "crash"])),
                    tuple(_voice(v, where) for v in c.get("toms", ["tom-low", "tom-mid", "tom-high", "snare"])),
                    tuple(_voice(v, where) for v in c.get("accents", ["kick", "crash"])),
                    tuple(float(x) / 1000.0 for x in c.get("roll_spacing_ms", [45, 75])))
    swing = float(data.get("swing", 50.0))
    parse_swing(swing)
    return Groove(str(data.get("name", name)), str(data.get("description", "")), meter, spb, bars, swing,
                  float(data.get("bass_lock", 0.3)), accents, lines, tuple(fills),
                  _voice(data.get("crash", "crash"), where), _voice(data.get("cross", "rim"), where), colour,
                  tuple(float(x) for x in data.get("tempo", [60, 200])))


def load_groove(name: str, folder: Path = GROOVE_DIR) -> Groove:
    name = check_style(name)
    path = folder / f"{name}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"groove file {path}: cannot read it ({e})") from None
    return parse_groove(data, name)


def load_grooves(folder: Path = GROOVE_DIR) -> dict[str, Groove]:
    return {s: load_groove(s, folder) for s in STYLES}


def default_meter(style: str | None) -> str | None:
    """The meter a style is written in, when it is not 4/4 (waltz: 3/4)."""
    if style is None:
        return None
    m = load_groove(style).meter
    return None if m.name == "4/4" else m.name


# ---------------------------------------------------------------- randomness


_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def uniform(*keys: int) -> float:
    """A number in [0, 1) that depends only on ``keys`` (the same keys, the same number)."""
    h = 0x1234567
    for k in keys:
        h = _mix(h ^ (int(k) & _MASK))
    return (h >> 11) / float(1 << 53)


def gauss(*keys: int) -> float:
    u1 = max(uniform(*keys, 101), 1e-12)
    u2 = uniform(*keys, 102)
    return max(-2.5, min(2.5, math.sqrt(-2.0 * math.log(u1)) * math.cos(2 * math.pi * u2)))


def _sharpen(p: float, order: int) -> float:
    """More orderly: probabilities toward 0 or 1; more chaotic: toward 1/2."""
    if order == 0 or p <= 0.0 or p >= 1.0:
        return p
    gain = 1.0 + 0.8 * order if order > 0 else 1.0 / (1.0 - 0.6 * order)
    z = math.log(p / (1.0 - p)) * gain
    return 1.0 / (1.0 + math.exp(-z))


# ---------------------------------------------------------------- the drummer


@dataclass(frozen=True, slots=True)
class DrumHit:
    time: float
    note: int
    velocity: int


@dataclass(frozen=True)
class DrumScene:
    """What the drummer hears when a frame is decided (times in session seconds)."""

    time: float                                 # the frame's start
    end: float                                  # the frame's end
    beat_seconds: float
    player_sounding: bool
    player_silent_for: float                    # beats (0 while sounding)
    player_heard: bool                          # the player has played at all
    player_onsets: tuple[tuple[float, int], ...] = ()  # (onset, velocity) over the last two bars (4 s free)
    player_positions: tuple[float, ...] = ()    # metered: those onsets in straight beats of the clock
    bass_onsets: tuple[float, ...] = ()         # the bass's onsets planned in this frame
    form_bars: int = 0                          # a lead sheet's chorus in bars (0: none); its last bar
    # leads into the next chorus, a section of changes: a fill there too


@dataclass
class _Gesture:
    start: float
    end: float
    hits: list[DrumHit]


SALT_STEP, SALT_VEL, SALT_TIME, SALT_FILL, SALT_LOCK, SALT_CROSS, SALT_FREE = 1, 2, 3, 4, 5, 6, 7


class Drummer(Player):
    """The drums player (see the module doc). Not monophonic; no model."""

    def __init__(self, style: str | None = None, seed: int | None = 0, takeover_gap: float = 0.6,
                 count_in: int = 0, click: bool = False, plays: bool = True, swing: Swing | None = None,
                 grooves: dict[str, Groove] | None = None):
        super().__init__("drums")
        self.grooves = grooves if grooves is not None else load_grooves()
        self._styles: Timeline[str] = Timeline(check_style(style or DEFAULT_STYLE))
        self.seed = 0 if seed is None else int(seed)
        self.takeover_gap = takeover_gap
        self.count_in = int(count_in)
        self.click = bool(click)
        self.grooving = plays                  # False: only the count-in and the click
        self.swing = swing if swing is not None and swing.percent != 50.0 else None  # --swing overrides
        self._gestures: list[_Gesture] = []
        self.fills: list[tuple[float, float]] = []   # (start, end) seconds of the fills planned (figures)

    # ------------------------------------------------------------ style

    def set_style(self, style: str, at: float) -> None:
        """The groove of ``style`` from ``at`` on."""
        self._styles.set(check_style(style, "style"), at)

    def style_at(self, t: float) -> str:
        return self._styles.at(t)

    def latest_style(self) -> str:
        return self._styles.latest()

    # ------------------------------------------------------------ plans the band withdraws

    def withdraw(self, at: float) -> None:
        """Plans from ``at`` are withdrawn (to be made again): gestures starting then are forgotten."""
        self._gestures = [g for g in self._gestures if g.start < at - 1e-9]
        self.fills = [f for f in self.fills if f[0] < at - 1e-9]

    def cut(self, at: float) -> None:
        """Silent from ``at``: gestures end there."""
        self.withdraw(at)
        for g in self._gestures:
            g.hits = [h for h in g.hits if h.time < at - 1e-9]
            g.end = min(g.end, at)

    # ------------------------------------------------------------ deciding

    def level(self, o: Orders, breaking: bool = False) -> int:
        lv = o.density
        if o.mode == "make-room":
            lv -= 2
        elif o.mode == "lead":
            lv += 1
        elif o.mode == "accompany" and o.follows is not None:
            lv += -1 if o.sparse else 1
        if breaking:
            lv += 2
        return max(LEVELS[0], min(LEVELS[1], lv))

    @staticmethod
    def intensity(scene: DrumScene, window: float) -> float:
        """0..1 from the player's loudness and notes per beat over ``window`` seconds."""
        recent = [(t, v) for t, v in scene.player_onsets if t >= scene.time - window]
        if not recent:
            return 0.35
        vel = sum(v for _, v in recent) / len(recent)
        per_beat = len(recent) / max(window / scene.beat_seconds, 1.0)
        loud = min(max((vel - 40.0) / 70.0, 0.0), 1.0)
        dense = min(max(per_beat / 2.0, 0.0), 1.0)
        return 0.5 * loud + 0.5 * dense

    def breaking(self, o: Orders, scene: DrumScene) -> bool:
        """Take over: a break while the player rests."""
        return (o.mode == "take-over" and scene.player_heard and not scene.player_sounding
                and scene.player_silent_for >= self.takeover_gap - 1e-6)

    def plan(self, scene: DrumScene, m) -> list[DrumHit]:
        """The hits of one frame: ``m`` is the band's :class:`~improv.band.timebase.TimeMap`
        (metered: the frame covers [scene.time, scene.end) = straight beats [a0, a1))."""
        o = self.current(scene.time)
        if o.stopped or scene.time < self.hold_until - 1e-9:
            return []
        style = self.style_at(scene.time)
        if not m.metered:
            return self._free(scene, o, self.grooves[style].colour) if self.grooving else []
        a0 = m.units(scene.time) + m.origin
        a1 = m.units(scene.end) + m.origin
        a0, a1 = round(a0 * 48) / 48, round(a1 * 48) / 48   # frames start on the grid: no rounding drift
        return self._metered(a0, a1, scene, o, style, m)

    def _metered(self, a0: float, a1: float, scene: DrumScene, o: Orders, style: str, m) -> list[DrumHit]:
        meter = m.meter
        bpb = meter.beats_per_bar
        bar = math.floor(a0 / bpb + 1e-9)
        out: list[DrumHit] = []

        def at(a: float, swing: Swing | None = None) -> float:
            return m.clock.time_of((swing or Swing()).apply(a, meter))

        beats = [b for b in range(math.ceil(a0 - 1e-9), math.ceil(a1 - 1e-9))]
        if bar < 0:
            if bar >= -self.count_in:
                out += [DrumHit(at(b), VOICES["sticks"], 105 if b % bpb == 0 else 80) for b in beats]
            elif self.click:
                out += [DrumHit(at(b), VOICES["click-bell" if b % bpb == 0 else "click"], 100) for b in beats]
            return out
        if self.click:
            out += [DrumHit(at(b), VOICES["click-bell" if b % bpb == 0 else "click"], 100) for b in beats]
        if not self.grooving:
            return out
        g = self.grooves[style]
        if style == "free":
            return out + self._free(scene, o, g.colour)
        swing = self.swing or Swing(g.swing)
        breaking = self.breaking(o, scene)
        lv = self.level(o, breaking)
        inten = self.intensity(scene, 2 * bpb * scene.beat_seconds)
        key_bar = bar if o.order <= 0 else bar % (g.bars * (2 if o.order == 1 else 1))
        fill = self.fill_at(g, bar, lv, bpb, breaking, scene.form_bars)
        fill_from = bpb - fill.beats if fill is not None else bpb
        avoid: set[int] = set()
        if o.mode == "make-room":
            avoid = {round(p * 2) % (bpb * 2) for p in scene.player_positions}  # eighths the player used
        spb = g.steps_per_beat
        hits: list[tuple[float, int, int]] = []   # (straight beat, note, velocity)
        n0, n1 = math.ceil(a0 * spb - 1e-6), math.ceil(a1 * spb - 1e-6)
        for n in range(n0, n1):
            a = n / spb
            beat = math.floor(a + 1e-9)
            sub = n - beat * spb
            j = beat - bar * bpb
            n_in_bar = j * spb + sub
            if j >= fill_from:
                lines = [(fi, ln, ln.steps[((j - fill_from) * spb + sub) % len(ln.steps)])
                         for fi, ln in enumerate(fill.lines, start=100)]
            else:
                lines = [(li, ln, g.step(ln, bar, j, sub)) for li, ln in enumerate(g.lines) if ln.plays_at(lv)]
            if j == 0 and sub == 0 and o.mode != "make-room" and self.fill_at(g, bar - 1, lv, bpb, breaking,
                                                                              scene.form_bars):
                lines.append((200, Line(g.crash, (), velocity=(95, 118)), (1.0, 1.0)))
                lines.append((201, Line(VOICES["kick"], (), velocity=(95, 115)), (1.0, 1.0)))
            for li, ln, step in lines:
                if step is None:
                    continue
                if avoid and round(a * 2) % (bpb * 2) in avoid:
                    continue
                p, vf = step
                if p < 1.0:
                    p = min(1.0, p * (0.6 + 0.8 * inten))
                p = _sharpen(p, o.order)
                on_beat = sub == 0
                if o.mode == "fight" and on_beat and ln.note in KICKS:
                    if uniform(self.seed, key_bar, n_in_bar, li, SALT_CROSS) < o.amount:
                        a = a + 0.25  # the kick a sixteenth late
                if uniform(self.seed, key_bar, n_in_bar, li, SALT_STEP) >= p:
                    continue
                lo, hi = ln.velocity
                v = lo + (hi - lo) * uniform(self.seed, key_bar, n_in_bar, li, SALT_VEL)
                if o.order > 0:
                    v = (lo + hi) / 2 + (v - (lo + hi) / 2) * max(0.2, 1.0 - 0.3 * o.order)
                v *= vf * g.accents[j % len(g.accents)] * (0.75 + 0.45 * inten)
                if o.mode == "make-room":
                    v *= 0.75
                elif o.mode in ("lead", "take-over") and breaking:
                    v *= 1.1
                elif o.mode == "lead":
                    v *= 1.08
                elif o.mode == "fight":
                    v *= (1.0 - 0.25 * o.amount) if on_beat else (1.0 + 0.3 * o.amount)
                hits.append((a, ln.note, int(max(1, min(127, round(v))))))
        if o.mode == "fight":  # a dotted-eighth cross-rhythm against the bar
            for s16 in range(math.ceil(a0 * 4 - 1e-6), math.ceil(a1 * 4 - 1e-6)):
                s_in_bar = s16 - bar * bpb * 4
                if s_in_bar % 3 == 0 and uniform(self.seed, key_bar, s_in_bar, SALT_CROSS) < 0.4 + 0.6 * o.amount:
                    hits.append((s16 / 4, g.cross, 80 + int(20 * o.amount)))
        if fill is not None and a0 <= bar * bpb + fill_from < a1:
            self.fills.append((at(bar * bpb + fill_from), at((bar + 1) * bpb)))
            del self.fills[:-1000]
        out += self._timed(hits, scene, o, g, swing, key_bar, m, lv)
        return out

    def _timed(self, hits, scene: DrumScene, o: Orders, g: Groove, swing: Swing, key_bar: int, m,
               lv: int) -> list[DrumHit]:
        """Straight beat positions -> times (swing, push, micro-timing); the kick locks to the bass."""
        meter = m.meter
        spread = 1.0 + 0.6 * max(0, -o.order) if o.order <= 0 else max(0.3, 1.0 - 0.25 * o.order)
        timing = {ln.note: (ln.timing, ln.push) for ln in g.lines}
        out: list[DrumHit] = []
        for a, note, vel in hits:
            sd, push = timing.get(note, (0.004, 0.0))
            z = gauss(self.seed, key_bar, round(a * 48), note, SALT_TIME)
            t = m.clock.time_of(swing.apply(a, meter)) + push + sd * spread * z
            out.append(DrumHit(t, note, vel))
        if scene.bass_onsets and o.mode != "make-room":
            half = scene.beat_seconds / 8
            for tb in scene.bass_onsets:
                near = [i for i, h in enumerate(out) if h.note in KICKS and abs(h.time - tb) <= half]
                if near:
                    for i in near:
                        out[i] = replace(out[i], time=tb)
                elif uniform(self.seed, round(tb * 1000), SALT_LOCK) < g.bass_lock * (1.0 + 0.25 * lv):
                    out.append(DrumHit(tb, VOICES["kick"], 78))
        out.sort(key=lambda h: (h.time, h.note))
        merged: list[DrumHit] = []
        for h in out:  # one hit per voice at a time
            same = next((i for i in range(len(merged) - 1, -1, -1)
                         if merged[i].note == h.note and h.time - merged[i].time < 0.03), None)
            if same is None:
                merged.append(h)
            elif h.velocity > merged[same].velocity:
                merged[same] = replace(merged[same], velocity=h.velocity)
        return merged

    def fill_at(self, g: Groove, bar: int, level: int, bpb: int, breaking: bool = False,
                form_bars: int = 0) -> Fill | None:
        """The fill that ends ``bar`` (at 4- and 8-bar phrase ends, and always at the end of
        a lead sheet's chorus of ``form_bars``, before the changes start again; every bar of
        a break)."""
        if bar < 0 or not g.fills:
            return None
        end8 = bar % 8 == 7 or (form_bars > 0 and bar % form_bars == form_bars - 1)
        end4 = end8 or bar % 4 == 3
        if not (end4 or breaking):
            return None
        if breaking:
            longest = min(2, bpb)
        else:
            chance = 1.0 if end8 else (0.75 if level >= 0 else 0.0)
            if uniform(self.seed, bar, SALT_FILL) >= chance:
                return None
            longest = (2 if end8 else 1) + (1 if level >= 2 else 0)
            if level <= -2:
                longest = 1
        fits = [f for f in g.fills if f.beats <= min(longest, bpb)]
        if not fits:
            return None
        best = max(f.beats for f in fits)
        fits = [f for f in fits if f.beats == best] if end8 or breaking else fits
        return fits[int(uniform(self.seed, bar, SALT_FILL, 2) * len(fits))]

    # ------------------------------------------------------------ free mode: colour

    def _free(self, scene: DrumScene, o: Orders, c: Colour) -> list[DrumHit]:
        t0, t1 = scene.time, scene.end
        self._gestures = [g for g in self._gestures if g.end > t0 - 5.0]
        busy = any(g.end > t0 and g.start < t1 for g in self._gestures)
        if not busy:
            self._maybe_start(scene, o, c)
        return [h for g in self._gestures for h in g.hits if t0 - 1e-9 <= h.time < t1 - 1e-9]

    def _maybe_start(self, scene: DrumScene, o: Orders, c: Colour) -> None:
        t0, t1 = scene.time, scene.end
        key = round(t0 * 1000)
        breaking = self.breaking(o, scene)
        lv = self.level(o, breaking)
        playing = scene.player_sounding or scene.player_silent_for * scene.beat_seconds < 0.4
        rate = (c.rate if playing else c.gap_rate) * 1.6 ** lv
        if o.mode == "make-room" and playing:
            rate = 0.0
        inten = self.intensity(scene, 4.0)
        recent = [v for t, v in scene.player_onsets if t >= t0 - 4.0]
        mean = sum(recent) / len(recent) if recent else 80.0
        loud = [v for t, v in scene.player_onsets if t0 - 0.3 <= t < t0 and (v >= mean + 12 or v >= 105)]
        u = uniform(self.seed, key, SALT_FREE)
        kind = None
        if loud and o.mode != "make-room" and u < 0.7:
            kind = "accent"
        elif u < 1.0 - math.exp(-rate * (t1 - t0)):
            w = uniform(self.seed, key, SALT_FREE, 2)
            kind = "swell" if w < 0.4 else ("roll" if w < 0.8 else "accent")
        if kind is None:
            return
        start = t0 + (t1 - t0) * uniform(self.seed, key, SALT_FREE, 3)
        peak = 45 + 70 * inten + (15 if o.mode == "fight" or breaking else 0)
        if o.mode == "make-room":
            peak *= 0.7
        self._gestures.append(self._gesture(kind, start, peak, c, key, o.order))

    def _gesture(self, kind: str, start: float, peak: float, c: Colour, key: int, order: int) -> _Gesture:
        def pick(voices: tuple[int, ...], salt: int) -> int:
            return voices[int(uniform(self.seed, key, SALT_FREE, salt) * len(voices))]

        hits: list[DrumHit] = []
        if kind == "accent":
            v = int(min(127, peak + 10))
            hits = [DrumHit(start, n, v) for n in c.accents[:2]]
            return _Gesture(start, start + 0.3, hits)
        length = (1.2 + 2.0 * uniform(self.seed, key, SALT_FREE, 4)) if kind == "swell" \
            else (0.5 + 1.2 * uniform(self.seed, key, SALT_FREE, 4))
        note = pick(c.cymbals if kind == "swell" else c.toms, 5)
        lo, hi = c.roll_spacing
        t, i = start, 0
        while t < start + length:
            x = (t - start) / length
            shape = x if kind == "swell" else math.sin(math.pi * x)  # swell: a crescendo; roll: up and down
            v = 12 + (peak - 12) * shape
            hits.append(DrumHit(t, note, int(max(1, min(127, v)))))
            i += 1
            t += lo + (hi - lo) * uniform(self.seed, key, i, SALT_FREE, 6)
        if kind == "swell" and uniform(self.seed, key, SALT_FREE, 7) < 0.6:
            hits.append(DrumHit(t, c.accents[-1], int(min(127, peak + 10))))
        return _Gesture(start, t + 0.05, hits)


class NoModel:
    """The generator of a band with no melodic player (drums alone): nothing to remember."""

    def rebuild(self, grid, notes) -> None:
        pass

    def note_on(self, slot: str, pitch: int, start: float) -> None:
        pass

    def note_off(self, slot: str, end: float) -> None:
        pass

    def set_chord(self, at: float, chord, given: bool = True) -> None:
        pass

    def propose(self, at, requests, silent, unit):
        raise RuntimeError("no melodic band player: nothing to propose")

    def accept(self, proposal) -> None:
        pass


__all__ = ["Drummer", "NoModel", "DrumHit", "DrumScene", "Groove", "KITS", "STYLES", "DEFAULT_STYLE", "DRUM_CHANNEL",
           "check_kit", "check_style", "load_groove", "load_grooves", "default_meter", "uniform"]
