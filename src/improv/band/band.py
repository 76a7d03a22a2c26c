"""The band: the players, their shared context and generator, and the plan of notes.

``Band`` is driven from outside with the time passed in (session seconds), so the
same object runs on audio time (``--fast``, tests on a fake clock) and in real time
(:class:`improv.band.live.LiveBand`)::

    band = Band(BandSettings(bands=("bass", "mid"), tempo=100))
    band.hear(note_on)                 # every player event (any thread; queued)
    band.command(cmd)                  # every command (any thread; validated at once)
    band.step(now)                     # decide: plans frames up to now + handoff + lookahead
    for ev in band.due(now): ...       # band NoteOn/NoteOff whose time has come, in order
    band.finish(now)                   # notes off for everything, when the session ends

The plan is made one model frame at a time (a sixteenth metered, 125 ms free), each
frame decided ``lookahead`` seconds before it sounds. ``command`` is the only way
commands reach the band. Stop and panic act at once (notes off at the command's time,
plus ``on_silence`` so a real-time driver drops what it already handed on); the other
commands take effect at the next beat (metered) or the next frame (free), at least
``handoff`` seconds ahead; notes already planned past that point are withdrawn and
planned again.
"""

from __future__ import annotations

import heapq
import itertools
import math
import queue
import statistics
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConfigError
from ..events import ALL_BANDS, BANDS, DRUMS, PLAYER, Event, NoteOff, NoteOn
from ..model import Grid
from ..events import Command
from .commands import check_command
from .context import EPS, Context, CtxNote, pitch_class_profile
from .drums import HIT_SECONDS, Drummer, DrumScene, check_style, default_meter, load_groove
from .generators import Generator, make_generator
from .orders import Orders
from .params import PARAMS, ParamChange, check_param
from .players import DEFAULT_RANGES, BandPlayer, Scene, VoiceRequest, fold_into, parse_range
from .timebase import TimeBase, TimeMap
from ..harmony.source import AutoHarmony, FollowHarmony, FormHarmony, HarmonyNow, make_harmony, parse_key
from ..timing import FixedClock, parse_meter


@dataclass
class BandSettings:
    """How the band plays (the ``improv listen`` band options)."""

    bands: tuple[str, ...] = BANDS
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    tempo: float | None = None           # --tempo: fixed tempo, beat 0 on the player's first onset
    meter: str | None = None             # --meter (default 4/4)
    swing: float | str | None = None     # --swing percent
    free: bool = False                   # --free: never metered
    follow: bool = True                  # follow the player's pulse (BeatTracker) when no tempo is given
    context_bars: float = 8.0            # metered: what the band remembers
    context_seconds: float = 16.0        # free mode: what the band remembers
    player_register: str | tuple[int, int] | None = None  # None/"auto": detected; a band; (low, high)
    lookahead: float = 0.05              # seconds each frame is decided before it leaves
    handoff: float = 0.06                # seconds before their time that events leave: the real-time
    # driver's (60 ms + output latency); --fast keeps the same so both decide alike
    takeover_gap: float = 0.6            # beats of the player's silence before a take-over starts
    react: bool = True                   # a player's onset heard: what is planned but not handed on
    # yet is planned again with it (the band answers ``lookahead`` sooner; a model rebuild a note)
    seed: int | None = 0
    generator: str = "model"
    model: str | None = None             # --model: the band model's file (None: models/band.pt)
    style: str | None = None             # --style: the drummer's grooves (and the default meter, swing)
    count_in: int = 0                    # --count-in BARS (needs --tempo): sticks (and the first chord's
    # root with a lead sheet), then the band (and the form) at beat 0
    click: bool = False                  # --click: a metronome on the drum channel
    start_clock: bool = False            # jam: the band's clock runs from the session's start (needs a
    # tempo), no player needed
    changes: str | None = None           # --changes: lead-sheet text or file, "auto"; None: follow the player
    key: str | None = None               # --key of the changes ("C", "Am", "Bb minor")
    phrases: bool = False                # --sampler-phrases: a take-over starts with the player's last
    # phrase, moved by octaves into the band's range and onto the band's grid, then the model goes on

    def check(self) -> "BandSettings":
        for b in self.bands:
            if b not in ALL_BANDS:
                raise ConfigError(f"--bands: unknown band {b!r}; use {', '.join(ALL_BANDS)}")
        if self.style is not None:
            self.style = check_style(self.style)
        if not 0 <= int(self.count_in) <= 16:
            raise ConfigError(f"--count-in {self.count_in}: give 0 to 16 bars")
        if self.count_in and (self.tempo is None or self.free):
            raise ConfigError("--count-in needs --tempo (and no --free): the count-in sets the band's bars")
        for b, r in self.ranges.items():
            if b not in BANDS:
                raise ConfigError(f"--range {b}=...: unknown band {b!r}; use {', '.join(BANDS)}")
            if not (isinstance(r, tuple) and len(r) == 2 and 21 <= r[0] and r[0] + 12 <= r[1] <= 108):
                raise ConfigError(f"--range {b}={r}: give LOW-HIGH, at least an octave within A0-C8")
        if self.context_bars <= 0 or self.context_seconds <= 0:
            raise ConfigError("--context-bars/--context-seconds: give a positive length")
        if not 0 < self.takeover_gap <= 8:
            raise ConfigError(f"take-over gap {self.takeover_gap:g} beats: give 0 to 8")
        lead_sheet = self.changes is not None and self.changes.strip().lower() not in ("", "auto", "follow")
        if lead_sheet and (self.tempo is None or self.free):
            raise ConfigError("--changes with a lead sheet needs --tempo (the form runs on a fixed clock) "
                              "and no --free")
        make_harmony(self.changes, parse_meter(self.meter).beats_per_bar, 0, self.seed,
                     parse_key(self.key))  # bad bars, chords or key: ConfigError now
        return self


def player_register_setting(text: str | None, ranges: dict[str, tuple[int, int]]) -> tuple[int, int] | None:
    """``--player-register``: auto (None), a band's name (its range) or LOW-HIGH."""
    if text is None or str(text).strip().lower() in ("", "auto"):
        return None
    t = str(text).strip().lower()
    if t in BANDS:
        return ranges.get(t, DEFAULT_RANGES[t])
    return parse_range(t)


@dataclass(frozen=True, slots=True)
class ReplayNote:
    """A note of the player's phrase as a taking-over band replays it: frames ``start`` to
    ``end`` (frame numbers), the band's ``pitch`` and the player's (``lead_pitch``)."""

    start: int
    end: int
    pitch: int
    lead_pitch: int
    velocity: int


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One line of the band's log: a command and when it took effect, a new time map,
    a take-over starting, a hand-back."""

    time: float                        # when it happened (a command: the time it was given)
    event: str                         # "command" | "time map" | "take-over" | "hand-back"
    band: str | None = None            # take-over, hand-back
    command: str | None = None         # the command's label ("mid busier")
    applied: float | None = None       # a command: when the band took it in
    effect: float | None = None        # a command: when it takes effect
    bpm: float | None = None           # a time map (metered), a tap
    metered: bool | None = None        # a time map
    onset: float | None = None         # a hand-back: the player's onset that caused it


@dataclass(frozen=True, slots=True)
class PulseOnset:
    """An onset heard for the pulse only (:meth:`Band.hear_pulse`)."""

    onset: float
    velocity: int = 100


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """A planned band event and what the band had heard when it planned it (benchmarks)."""

    time: float
    band: str
    pitch: int
    note_on: bool
    heard: int                          # player onsets taken in when planned
    decided: float                      # session time of the plan


@dataclass(frozen=True, slots=True)
class BandView:
    """What the display shows of a band: the orders in force, notes per beat lately, the last note."""

    command: str
    density: float
    last_note: int | None


def chord_key_name(key: tuple[int, bool]) -> str:
    from ..harmony.chords import NAMES

    return f"{NAMES[key[0]]} {'minor' if key[1] else 'major'}"


MAX_REDRAWS = 3     # a bar's last frame is drawn at most this many times again (silence, novelty checks)


def _forcing(hook, avoid: int | None):
    """``hook``, then a new note forced (no rest, no hold), not on pitch ``avoid``."""
    from ..model.encoding import PITCH_HI, PITCH_LO

    def forced(ctx, logits) -> None:
        if hook is not None:
            hook(ctx, logits)
        logits[:2] = -math.inf
        if avoid is not None and PITCH_LO <= avoid <= PITCH_HI:
            logits[2 + avoid - PITCH_LO] = -math.inf

    return forced


PHRASE_BEATS = 8.0  # the player's "last phrase": since their last silence of 1.5 beats, at most 8 beats
FORM_START = 0.25   # seconds: a lead sheet's first beat (count-in or form) after the session starts


class Band:
    """Three (or fewer) monophonic band players answering the player (see the module doc)."""

    def __init__(self, settings: BandSettings | None = None, generator: Generator | None = None,
                 on_command: Callable[[Command], None] | None = None,
                 on_silence: Callable[[tuple[str, ...], bool], None] | None = None, harmony=None):
        self.settings = s = (settings or BandSettings()).check()
        self.ranges = {b: s.ranges.get(b, DEFAULT_RANGES[b]) for b in BANDS}
        self.players = {b: BandPlayer(b, *self.ranges[b], takeover_gap=s.takeover_gap) for b in s.bands
                        if b != DRUMS}
        meter = s.meter if s.meter is not None else default_meter(s.style)
        swing = s.swing if s.swing is not None or s.style is None else load_groove(s.style).swing
        self.time = TimeBase(s.tempo, meter, swing, s.free, s.follow)  # (--style: its meter and swing)
        # [drums] the drummer (not the model's): a player in ``players`` too, so commands reach it;
        # with --count-in or --click and no drums, it plays only those
        self.drummer: Drummer | None = None
        if DRUMS in s.bands or s.count_in or s.click:
            self.drummer = Drummer(s.style, s.seed, s.takeover_gap, s.count_in, s.click, plays=DRUMS in s.bands,
                                   swing=self.time.swing if s.swing is not None else None)
            self.players[DRUMS] = self.drummer
        self._drum_hits: list[tuple[NoteOn, NoteOff, float]] = []   # (on, off, frame start) of recent hits
        self.bars: list[float] = []     # the band's downbeats as planned (session.mid's bar lines)
        self.timeline: list[tuple[float, bool]] = []  # (from, metered?) of each time map
        if s.count_in:  # the bars before beat 0 count in (an empty bar first, so none is late)
            bpb = self.time.meter.beats_per_bar
            self.time.fixed = FixedClock(s.tempo, t0=0.0, beat0=-(s.count_in + 1) * bpb, meter=self.time.meter)
            start = self.time.fixed.time_of(0.0)
            for p in self.players.values():
                if p is not self.drummer:
                    p.hold(start)
        # ``harmony``: an improv.harmony.source.Harmony given directly (benchmarks: timed chords);
        # with --count-in the form starts at the drummer's beat 0, after the count-in
        self.harmony = harmony if harmony is not None else \
            make_harmony(s.changes, self.time.meter.beats_per_bar, 0, s.seed, parse_key(s.key), alone=s.start_clock)
        if (isinstance(self.harmony, FormHarmony) or s.start_clock) and not s.count_in and s.tempo is not None:
            # the form's (or the jam's) clock starts with the session
            self.time.fixed = FixedClock(s.tempo, t0=FORM_START, meter=self.time.meter)
        self.chords: list[dict[str, Any]] = []  # chord changes as planned (chords.jsonl, markers)
        self.harmony_now: HarmonyNow | None = None
        self.context = Context(s.context_seconds)
        if generator is None and not any(b != DRUMS for b in s.bands):
            from .drums import NoModel

            generator = NoModel()  # [drums] the drummer alone needs no model
        if generator is None and s.model is not None and s.generator == "model":
            from ..model import load_model

            generator = make_generator(s.generator, s.seed, model=load_model(s.model))
        self.gen = generator if generator is not None else make_generator(s.generator, s.seed)
        trust = float(getattr(self.gen, "model_trust", 0.0))
        for p in self.players.values():
            if isinstance(p, BandPlayer):
                p.model_trust = trust
        self.on_command = on_command
        self.on_silence = on_silence
        self.handoff = s.handoff        # seconds before their time that events leave (the driver's)
        self.register_override = player_register_setting(s.player_register, self.ranges) \
            if not isinstance(s.player_register, tuple) else s.player_register
        self.map: TimeMap | None = None
        self.k = 0                      # the next frame to plan
        self.now = 0.0
        self._heap: list[tuple[float, int, int, Event]] = []
        self._seq = itertools.count()
        self._open: dict[str, CtxNote | None] = {b: None for b in s.bands}
        self._replay: dict[str, tuple[ReplayNote, ...]] = {}  # phrases: the player's phrase a taker replays
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._stale = False             # the generator must be rebuilt from the context
        self._replan: dict[str, float] = {}
        self.log: deque[LogEntry] = deque(maxlen=20000)
        self.remaps = 0
        self.skipped = 0                # frames not planned because the driver fell behind
        self.heard = 0                  # player onsets taken in so far
        self._heard_new = False
        self.reactions = 0              # times plans were withdrawn to answer a note at once
        # every planned event when a list: what each band message could have heard (bench_e2e)
        self.trace: list[TraceEntry] | None = None
        # run-time parameters (improv.band.params) not held by the settings or the players
        self.shift = {b: 0 for b in self.players if b != DRUMS}          # register, semitones
        self.checks = {b: {"silence": False, "novelty": False} for b in self.players if b != DRUMS}
        self.redraws: Counter = Counter()   # (band, "silence" | "novelty") -> bars re-drawn
        self.params_set = 0                 # parameter changes applied

    def set_handoff(self, seconds: float) -> None:
        """The driver hands events on ``seconds`` before their time (a real-time driver: its
        scheduler's lead plus the output latency); commands take effect after it."""
        self.handoff = float(seconds)

    def set_param(self, name: str, value, now: float | None = None) -> ParamChange:
        """A run-time parameter (:mod:`improv.band.params`), from any thread: checked at once
        (ConfigError names what is wrong), applied at the next :meth:`step`."""
        param, band, v = check_param(name, value, tuple(self.players))
        change = ParamChange(self.now if now is None else float(now), param, band, v)
        self._inbox.put(change)
        return change

    # ------------------------------------------------------------ input (any thread)

    def hear(self, ev: Event) -> None:
        """A player event (other sources are ignored). Non-blocking."""
        if ev.source == PLAYER and isinstance(ev, (NoteOn, NoteOff)):
            self._inbox.put(ev)

    def hear_pulse(self, onset: float, velocity: int = 100) -> None:
        """An onset that marks the pulse but is not the player's line (a client's drum track):
        the beat tracker hears it, the model and the harmony do not. Non-blocking."""
        self._inbox.put(PulseOnset(float(onset), int(velocity)))

    def command(self, cmd: Command, now: float | None = None) -> Command:
        """The one way commands reach the band. Validates at once (ConfigError names what is
        wrong), logs it (``on_command``), silences at once for stop/panic (``on_silence``),
        and queues it for the next :meth:`step`. ``now`` defaults to the command's time."""
        target, name, value = check_command(cmd.target, cmd.command, cmd.value)
        cmd = Command(float(cmd.time), target, name, value)
        at = cmd.time if now is None else float(now)
        if self.on_command is not None:
            self.on_command(cmd)
        if self.on_silence is not None and name in ("stop", "panic"):
            bands = tuple(self.players) if target == "all" else tuple(b for b in (target,) if b in self.players)
            self.on_silence(bands, name == "panic")
        self._inbox.put((at, cmd))
        return cmd

    # ------------------------------------------------------------ driving (one thread)

    def step(self, now: float) -> None:
        """Take in what was heard and commanded, then plan up to ``now + handoff + lookahead``."""
        self.now = max(self.now, float(now))
        self._drain()
        self._update_map()
        if self.map is None:
            return
        if self._heard_new:
            self._heard_new = False
            if self.settings.react:
                self._react()
        if self._stale:
            self._rebuild()
        if self._replan:
            self._do_replans()
        m = self.map
        late = m.frame_at_or_after(self.now + self.handoff)
        if self.k < late:  # the driver fell behind (a stall): frames that cannot leave on time are skipped
            self.skipped += late - self.k
            self.k = late
        horizon = self.now + self.handoff + self.settings.lookahead
        while m.seconds(self.k * m.unit) < horizon:
            self._plan_frame(self.k)
            self.k += 1
        self.context.forget(self.now)
        self.harmony.forget(self.now - max(self.context.window, 30.0))
        window_units = self.context.window / m.beat_seconds * m.beats_per_unit
        if m.units(self.now) > 2.0 * window_units + 4:
            self._remap()  # forget in the model too: rebuild it from the context

    def due(self, until: float) -> list[Event]:
        """Band events planned at or before ``until``, in time order (they leave the plan)."""
        out = []
        while self._heap and self._heap[0][0] <= until + 1e-9:
            out.append(heapq.heappop(self._heap)[3])
        return out

    def finish(self, now: float) -> list[Event]:
        """End the session: every band silent at ``now``; returns the events still to send."""
        self.now = max(self.now, float(now))
        self._drain()
        for name in self.players:
            self._cut(name, self.now)
        return self.due(math.inf)

    def pending(self) -> int:
        return len(self._heap)

    def planned_until(self) -> float | None:
        """Session time up to which the band has planned (the start of the next frame to
        plan), None before its first time map."""
        return None if self.map is None else self.map.seconds(self.k * self.map.unit)

    # ------------------------------------------------------------ what happened

    def _drain(self) -> None:
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, NoteOn):
                self._player_on(item)
            elif isinstance(item, NoteOff):
                self._player_off(item)
            elif isinstance(item, ParamChange):
                self._set_param(item)
            elif isinstance(item, PulseOnset):
                self.time.player_onset(item.onset, max(self.now, item.onset), item.velocity)
            else:
                self._apply(*item)

    def _player_on(self, ev: NoteOn) -> None:
        onset = ev.onset if ev.onset is not None else ev.time
        self.heard += 1
        self._heard_new = True
        self.time.player_onset(onset, ev.time, ev.velocity)
        self.context.player_on(ev.pitch, onset, ev.velocity)
        self.harmony.hear_on(ev.pitch, onset)
        if self.map is not None and not self._stale:
            self.gen.note_on("lead", ev.pitch, self.map.units(onset))
        for name, p in self.players.items():
            if p.taking_over:  # the player is back: hand back at once
                self._replay.pop(name, None)
                self._cut(name, self.now)
                self._silence((name,), False)
                self.log.append(LogEntry(self.now, "hand-back", band=name, onset=onset))

    def _player_off(self, ev: NoteOff) -> None:
        end = ev.end if ev.end is not None else ev.time
        note = self.context.player_off(end)
        self.harmony.hear_off(end)
        if note is not None and self.map is not None and not self._stale:
            self.gen.note_off("lead", self.map.units(note.end))

    def _apply(self, at: float, cmd: Command) -> None:
        name, value = cmd.command, cmd.value
        if name not in ("stop", "panic"):
            at = max(at, self.now)  # (queued from another thread: what is handed on cannot change)
        # stop and panic act from their own time: what was already handed on was silenced
        # by ``on_silence`` (the scheduler drops it), and with --fast nothing after it plays
        targets = [b for b in self.players if cmd.target in ("all", b)]
        effect, bpm = at, None
        if name == "panic":
            for b, p in self.players.items():
                self._cut(b, at)
                p.hold(self._effect_time(at))
            self._silence(tuple(self.players), True)
        elif name == "stop":
            for b in targets:
                p = self.players[b]
                p.order(p.latest().after("stop"), at)
                p.current(at)
                self._cut(b, at)
            self._silence(tuple(targets), False)
        elif name == "tap":
            bpm, effect = self.time.tap(at), None
        elif name in ("freeze", "forget"):
            effect = None  # the sampler's bank (improv.sampler), not the players
        elif name == "player":
            self.register_override = None if value == "auto" else self.ranges[value]
        elif name == "style":
            c = effect = self._effect_time(at)
            if self.drummer is not None:
                self.drummer.set_style(value, c)
                self._replan_from(DRUMS, c)
        else:
            c = effect = self._effect_time(at)
            if name == "lead":
                density, style = value
                if style == "harmonic" and isinstance(self.harmony, FollowHarmony):
                    self.harmony = AutoHarmony(self.settings.seed, self.harmony.follower)  # the band's changes
                for b, p in self.players.items():
                    if cmd.target in ("all", b):
                        self._order(p, p.latest().leading(), c)
                    else:
                        self._order(p, p.latest().accompanying(cmd.target, density, style), c)
            else:
                for b in targets:
                    p = self.players[b]
                    self._order(p, p.latest().after(name, value), c)
        self.log.append(LogEntry(cmd.time, "command", command=cmd.label(), applied=at, effect=effect, bpm=bpm))

    def _set_param(self, ch: ParamChange) -> None:
        """Apply a checked parameter change (see :mod:`improv.band.params`)."""
        spec = PARAMS[ch.name]
        targets = [ch.band] if ch.band is not None else [b for b in self.players if b in spec.bands]
        at = max(ch.time, self.now)
        s = self.settings
        if ch.name == "temperature":
            for b in targets:
                self.players[b].temperature = float(ch.value)
        elif ch.name == "top_p":
            for b in targets:
                self.players[b].top_p = float(ch.value)
        elif ch.name in ("context_bars", "context_seconds"):
            setattr(s, ch.name, float(ch.value))
            m = self.map
            if m is not None:
                self.context.window = s.context_bars * m.meter.beats_per_bar * m.clock.period if m.metered \
                    else s.context_seconds
        elif ch.name == "lookahead":
            s.lookahead = float(ch.value)
        elif ch.name == "density":
            c = self._effect_time(at)
            for b in targets:
                p = self.players[b]
                self._order(p, replace(p.latest(), density=int(ch.value)), c)
        elif ch.name == "register":
            c = self._effect_time(at)
            for b in targets:
                lo, hi = self.ranges[b]
                shift = int(max(21 - lo, min(108 - hi, int(ch.value))))  # (kept within A0-C8)
                self.shift[b] = shift
                p = self.players[b]
                p.low, p.high = lo + shift, hi + shift
                self._replan_from(b, c)
        elif ch.name in ("silence_check", "novelty_check"):
            for b in targets:
                self.checks[b][ch.name.split("_")[0]] = bool(ch.value)
        self.params_set += 1
        self.log.append(LogEntry(ch.time, "param", band=ch.band,
                                 command=f"{ch.band + '.' if ch.band else ''}{ch.name} {ch.value:g}", applied=at))

    def _order(self, p: BandPlayer, orders: Orders, at: float) -> None:
        p.order(orders, at)
        self._replan_from(p.name, at)

    def _replan_from(self, name: str, at: float) -> None:
        if self.map is not None and at < self.map.seconds(self.k * self.map.unit) - 1e-9:
            self._cut(name, at)
            self._replan[name] = min(self._replan.get(name, at), at)

    def _react(self) -> None:
        """The player's new note was heard: frames planned but not handed on yet (those
        after ``now + handoff``) are withdrawn, to be planned again with it."""
        m = self.map
        k0 = m.frame_at_or_after(self.now + self.handoff + 0.005)
        if k0 >= self.k:
            return
        t0 = m.seconds(k0 * m.unit)
        for name in self.players:
            self._withdraw(name, t0)
        self.k = k0
        self.reactions += 1

    def _effect_time(self, at: float) -> float:
        """The next beat (metered) or frame (free) at least ``handoff`` + 20 ms after ``at``."""
        if self.map is None:
            return at
        m = self.map
        u = m.units(at + self.handoff + 0.02)
        step = 1.0 if m.metered else m.unit
        return m.seconds(math.ceil(u / step - 1e-9) * step)

    def _silence(self, bands: tuple[str, ...], panic: bool) -> None:
        if self.on_silence is not None and (bands or panic):
            self.on_silence(bands, panic)

    # ------------------------------------------------------------ time map and model

    def _update_map(self) -> None:
        clock = self.time.clock(self.now)
        if self.map is None:
            if self.context.player_notes_heard or clock is not None:
                self._remap()
            return
        if (clock is not None) != self.map.metered:
            self._remap()
        elif clock is not None:
            offset, ratio = self.map.drift(clock, self.now)
            tight = clock.source in ("midi-clock", "link")  # [drums] an external clock: follow it closely
            if offset > (0.02 if tight else 0.1) or ratio > (0.02 if tight else 0.04) \
                    or clock.source != self.map.clock.source:
                self._remap()

    def _remap(self) -> None:
        """A new time map from the current clock: plans after the next frame are withdrawn
        (notes sounding then go on) and the model is rebuilt from the context."""
        now = self.now
        start = max(0.0, now - self.context.window)
        m = self.time.make_map(now, start)
        k0 = m.frame_at_or_after(now + self.handoff + 0.02)
        if self.map is not None:
            t0 = m.seconds(k0 * m.unit)
            for name in self.players:
                self._withdraw(name, t0)
        self.map, self.k = m, k0
        t0 = m.seconds(k0 * m.unit)
        self.bars = [b for b in self.bars if b < t0 - 1e-6]
        self.timeline = [(t, metered) for t, metered in self.timeline if t < t0 - 1e-6]
        self.timeline.append((t0, m.metered))
        if m.metered:  # the bar line this map starts in, when the band had no bar before it
            bpb = m.meter.beats_per_bar
            d = m.seconds(math.floor((k0 * m.unit + m.origin) / bpb + 1e-9) * bpb - m.origin)
            since = self.timeline[-2][0] if len(self.timeline) > 1 else 0.0
            if d >= max(0.0, since) - 1e-9 and (not self.bars or d > self.bars[-1] + 1e-6) and d < t0 - 1e-6:
                self.bars.append(max(d, 0.0))
        if m.metered:
            self.context.window = self.settings.context_bars * m.meter.beats_per_bar * m.clock.period
        else:
            self.context.window = self.settings.context_seconds
        self._stale = True
        self.remaps += 1
        self.log.append(LogEntry(now, "time map", metered=m.metered, bpm=m.clock.bpm if m.metered else None))

    def _rebuild(self) -> None:
        m = self.map
        t0 = m.seconds(0.0)
        notes = []
        for n in self.context.since(t0):
            s = max(m.units(n.start), 0.0)
            e = None if n.end is None else m.units(n.end)
            if e is not None and e <= s:
                continue
            notes.append((n.slot, n.model_pitch, s, e))
        self.gen.rebuild(Grid(m.metered, m.meter.beats_per_bar, 0.0), notes)
        self._stale = False

    # ------------------------------------------------------------ planning

    def _scene(self, ft: float, k: int) -> Scene:
        m, ctx = self.map, self.context
        bs = m.beat_seconds
        silent_since = ctx.player_silent_since()
        sounding = ctx.player_sounding
        silent_for = 0.0 if sounding or silent_since is None else max(0.0, (ft - silent_since) / bs)
        last = ctx.last_player_note()
        register = self.register_override or ctx.player_register(self.now)
        span = self.register_override or ctx.player_span(self.now)
        profile, rate = None, 0.0
        if any(p.latest().mode == "take-over" for p in self.players.values()) and not sounding:
            phrase = ctx.last_phrase(1.5 * bs, self.now, PHRASE_BEATS * bs)
            if phrase:
                profile = pitch_class_profile(phrase, self.now)
                length = (phrase[-1].end or self.now) - phrase[0].start
                rate = len(phrase) / max(length / bs, 1.0)
        h = self.harmony.at(ft, self.now, m)
        strong = m.on_beat(k) and (not m.metered or self._strong(k))
        return Scene(ft, m.metered, bs, m.on_beat(k), register, last.pitch if last is not None else None,
                     sounding, silent_for, ctx.player_motion(), profile, rate, span, h, strong)

    def _strong(self, k: int) -> bool:
        """Frame ``k`` starts the bar or its middle beat (4/4: beats 1 and 3)."""
        bpb = self.map.meter.beats_per_bar
        beat = round(k * self.map.unit) % bpb
        return beat == 0 or (bpb % 2 == 0 and beat == bpb // 2)

    def _plan_frame(self, k: int, only: set[str] | None = None) -> None:
        m = self.map
        ft = m.seconds(k * m.unit)
        scene = self._scene(ft, k)
        self._note_chord(scene.harmony, ft)
        if self.map is not None and not self._stale:
            h = scene.harmony
            self.gen.set_chord(k * m.unit, h.chord if h is not None else None, h is not None and h.strict)
        if m.metered and self._bar_start(k):
            while self.bars and self.bars[-1] >= ft - 1e-6:
                self.bars.pop()
            self.bars.append(ft)
        if scene.harmony is not None and scene.harmony.counting_in:
            if only is None:
                self._count_in(k, ft, scene.harmony)
            if self.drummer is not None and (only is None or DRUMS in only):
                self._plan_drums(k, scene)  # the sticks of the count-in
            return
        requests: dict[str, tuple[str, Any]] = {}
        silent: list[str] = []
        for name, p in self.players.items():
            if (only is not None and name not in only) or name == DRUMS:
                continue
            req = p.request(scene, self.context)
            if req is not None and req.slot in requests:
                req = None  # one band takes over the player's line at a time
            if req is None or (p.slot is not None and p.slot != req.slot):
                self._end_open(name, ft)
            if req is None:
                p.rest()
                silent.append(name)
                continue
            if req.slot == "lead":
                silent.append(name)
            if p.plays(req.slot, ft):
                self.log.append(LogEntry(ft, "take-over", band=name))
                if self.settings.phrases:
                    self._replay[name] = self._phrase_to_replay(k, req)
            if req.slot == "lead" and self._replay.get(name):
                if self._replay_frame(name, k):
                    continue  # the frame is the phrase's: no model request for the lead slot
                del self._replay[name]
            requests[req.slot] = (name, req)
        if requests:
            self._propose(k, requests, silent)
        if self.drummer is not None and (only is None or DRUMS in only):
            self._plan_drums(k, scene)

    def _phrase_to_replay(self, k: int, req) -> tuple[ReplayNote, ...]:
        """The player's last phrase as a taker replays it from frame ``k``: onsets and ends
        on the band's frames (as far apart as the player played them), moved by whole
        octaves so its middle lies in the band's range (``req.fold``), each note folded in."""
        m, ctx = self.map, self.context
        bs = m.beat_seconds
        phrase = [n for n in ctx.last_phrase(1.5 * bs, self.now, PHRASE_BEATS * bs) if n.end is not None]
        if len(phrase) < 2:
            return ()
        u0 = m.units(phrase[0].start)
        lo, hi = req.fold if req.fold else (0, 127)
        mid = (lo + hi) / 2
        shift = 12 * round((mid - statistics.median(n.pitch for n in phrase)) / 12)
        out = []
        for n in phrase:
            a = k + round((m.units(n.start) - u0) / m.unit)
            b = max(a + 1, k + round((m.units(n.end) - u0) / m.unit))
            if out and a <= out[-1].start:
                continue  # two notes on one frame: the first one
            if out and out[-1].end > a:
                out[-1] = replace(out[-1], end=a)
            out.append(ReplayNote(a, b, fold_into(n.pitch + shift, lo, hi), n.pitch, max(1, min(127, n.velocity))))
        return tuple(out)

    def _replay_frame(self, name: str, k: int) -> bool:
        """Plays the replayed phrase's notes of frame ``k`` (the generator hears them as the
        lead line); False once the phrase is over."""
        notes = self._replay[name]
        if k >= notes[-1].end:
            return False
        m = self.map
        live = self.map is not None and not self._stale
        for n in notes:
            if n.start == k:
                self._on(name, "lead", n.pitch, n.lead_pitch, m.seconds(k * m.unit), n.velocity)
                if live:
                    self.gen.note_on("lead", n.lead_pitch, k * m.unit)
            if n.end == k + 1:
                self._off(name, m.seconds((k + 1) * m.unit))
                if live:
                    self.gen.note_off("lead", (k + 1) * m.unit)
        return True

    def _propose(self, k: int, requests: dict, silent: list[str]) -> None:
        m = self.map
        prop = self.gen.propose(k * m.unit, {slot: r for slot, (_, r) in requests.items()}, tuple(silent), m.unit)
        if m.metered and self._bar_start(k + 1) and any(any(self.checks.get(name, {}).values())
                                                         for name, _ in requests.values()):
            prop = self._checked(k, prop, requests, silent)
        self.gen.accept(prop)
        for slot, (name, req) in requests.items():
            rel = prop.releases.get(slot)
            if rel is not None:
                self._off(name, m.seconds(rel))
            for n in prop.for_voice(slot):
                pitch = fold_into(n.pitch, *req.fold) if req.fold else n.pitch
                self._on(name, slot, pitch, n.pitch, m.seconds(n.start), req.velocity)
                if n.end is not None:
                    self._off(name, m.seconds(n.end))

    def _checked(self, k: int, prop, requests: dict, silent: list[str]):
        """The silence and novelty checks, on a bar's last frame: a band asked to play whose
        bar would be silent, or the same notes as its last bar, has the frame re-drawn with a
        note forced (and not the pitch that would repeat the last bar)."""
        m = self.map
        bpb = m.meter.beats_per_bar
        a = k * m.unit + m.origin
        bar0 = math.floor(a / bpb + 1e-9) * bpb - m.origin          # the bar's start, in units
        for _ in range(MAX_REDRAWS):
            redo: dict[str, tuple[str, int | None]] = {}
            for slot, (name, req) in requests.items():
                checks = self.checks.get(name)
                if not checks:
                    continue
                this = self._bar_notes(name, bar0, bar0 + bpb, prop, slot, req)
                if checks["silence"] and not this and self._open[name] is None:
                    redo[slot] = ("silence", None)
                elif checks["novelty"] and this and this == self._bar_notes(name, bar0 - bpb, bar0):
                    last = [n for n in prop.for_voice(slot)]
                    redo[slot] = ("novelty", last[-1].pitch if last else None)
            if not redo:
                break
            for slot, (why, pitch) in redo.items():
                name, req = requests[slot]
                self.redraws[(name, why)] += 1
                requests[slot] = (name, replace(req, hook=_forcing(req.hook, pitch)))
            prop = self.gen.propose(k * m.unit, {slot: r for slot, (_, r) in requests.items()}, tuple(silent),
                                    m.unit)
        return prop

    def _bar_notes(self, name: str, u0: float, u1: float, prop=None, slot: str | None = None,
                   req: VoiceRequest | None = None) -> tuple[tuple[float, int], ...]:
        """(position in the bar in units, pitch) of ``name``'s onsets in [u0, u1), with the
        proposal's for ``slot`` (folded as they will be sent)."""
        m = self.map
        out = [(round(m.units(n.start) - u0, 3), n.pitch)
               for n in self.context.band(name, since=m.seconds(u0) - 1e-6, until=m.seconds(u1) - 1e-6)]
        if prop is not None:
            for n in prop.for_voice(slot):
                pitch = fold_into(n.pitch, *req.fold) if req.fold else n.pitch
                out.append((round(n.start - u0, 3), pitch))
        return tuple(sorted(out))

    def _bar_start(self, k: int) -> bool:
        m = self.map
        a = k * m.unit + m.origin
        bpb = m.meter.beats_per_bar
        return abs(a / bpb - round(a / bpb)) < 1e-6

    def _plan_drums(self, k: int, scene: Scene) -> None:
        """[drums] The drummer's hits of frame ``k`` (after the melodic bands': the kick
        follows the bass's onsets in the frame)."""
        m, ctx = self.map, self.context
        ft, fe = m.seconds(k * m.unit), m.seconds((k + 1) * m.unit)
        window = 2 * m.meter.beats_per_bar * m.beat_seconds if m.metered else 4.0
        recent = [n for n in ctx.player(since=ft - window) if n.start < ft]
        bass = tuple(n.start for n in ctx.band("bass", since=ft - 1e-9, until=fe - 1e-9)) if "bass" in self.players \
            else ()
        positions = tuple(m.units(n.start) + m.origin for n in recent) if m.metered else ()
        form_bars = len(self.harmony.form.bars) if isinstance(self.harmony, FormHarmony) else 0
        ds = DrumScene(ft, fe, scene.beat_seconds, scene.player_sounding, scene.player_silent_for,
                       ctx.player_notes_heard > 0, tuple((n.start, n.velocity) for n in recent), positions, bass,
                       form_bars)
        sent = [on for on, _, f in self._drum_hits if abs(f - ft) < 1e-6]  # handed on before a replan
        for h in self.drummer.plan(ds, m):
            if any(on.pitch == h.note and abs(on.time - h.time) < 0.03 for on in sent):
                continue
            on, off = NoteOn(h.time, h.note, h.velocity, DRUMS), NoteOff(h.time + HIT_SECONDS, h.note, DRUMS)
            self._drum_hits.append((on, off, ft))
            self._push(on)
            self._push(off)
        if len(self._drum_hits) > 256:
            self._drum_hits = [x for x in self._drum_hits if x[1].time >= self.now - 1.0]

    def _drop_drums(self, at: float, end: bool) -> None:
        """[drums] Hits of the frames from ``at`` not handed on yet are withdrawn (a hit can
        sound a little before its frame); with ``end`` (a cut) also every hit not handed on
        from ``at``, and the note-offs after ``at`` move to ``at``."""
        pending = {id(e[3]) for e in self._heap if e[3].source == DRUMS}
        gone: set[int] = set()
        keep = []
        for on, off, f in self._drum_hits:
            if id(on) in pending and (f >= at - EPS or (end and on.time >= at - EPS)):
                gone.update((id(on), id(off)))
                continue
            if end and id(off) in pending and off.time > at:
                gone.add(id(off))
                off = NoteOff(max(at, on.time + 1e-3), off.pitch, DRUMS)
                self._push(off)
            keep.append((on, off, f))
        self._drum_hits = keep
        if gone:
            self._heap = [e for e in self._heap if id(e[3]) not in gone]
            heapq.heapify(self._heap)
    def _note_chord(self, h: HarmonyNow | None, ft: float) -> None:
        """Keep the chord in force (the display) and log each change once, as planned."""
        self.harmony_now = h
        if h is None or h.counting_in or h.chord is None:
            return
        name = h.chord.symbol if h.strict and h.source == "changes" else h.chord.name
        # a frame planned again (a heard note, a command): what was logged from it on is withdrawn
        while self.chords and self.chords[-1]["time"] >= ft - 1e-6:
            self.chords.pop()
        last = self.chords[-1] if self.chords else None
        if last is None or last["chord"] != name:
            entry = {"time": ft, "chord": name, "source": h.source,
                     "key": None if h.key is None else chord_key_name(h.key)}
            if h.bar is not None:
                entry.update(bar=h.bar + 1, chorus=h.chorus + 1)
            self.chords.append(entry)

    def _count_in(self, k: int, ft: float, h: HarmonyNow) -> None:
        """The count-in: the first chord's root, short, on every beat (the first of each bar
        louder), from the lowest band playing; nothing else sounds."""
        if not self.map.on_beat(k) or not self.players:
            return
        bpb = self.map.meter.beats_per_bar
        if self.map.clock.beat_at(ft) < -self.settings.count_in * bpb - 1e-6:
            return  # the empty bar before the count-in (so that no click is late)
        name = next((b for b in ("mid", "high", "bass") if b in self.players), None)
        if name is None:
            return  # the drummer alone: its sticks count in
        lo, hi = self.ranges[name]
        root = h.chord.root if h.chord is not None else 0
        pitch = fold_into(60 + root, lo, hi)
        accent = self._strong(k) and round(k * self.map.unit) % self.map.meter.beats_per_bar == 0
        self._push(NoteOn(ft, pitch, 100 if accent else 70, name))
        self._push(NoteOff(ft + 0.5 * self.map.beat_seconds * 0.5, pitch, name))

    def _do_replans(self) -> None:
        groups: dict[int, set[str]] = {}
        for name, at in self._replan.items():
            groups.setdefault(self.map.frame_at_or_after(at), set()).add(name)
        self._replan.clear()
        for k0 in sorted(groups):
            for k in range(k0, self.k):
                self._plan_frame(k, only=groups[k0])

    # ------------------------------------------------------------ the plan

    def _push(self, ev: Event) -> None:
        heapq.heappush(self._heap, (ev.time, 0 if isinstance(ev, NoteOff) else 1, next(self._seq), ev))
        if self.trace is not None:
            self.trace.append(TraceEntry(ev.time, ev.source, ev.pitch, isinstance(ev, NoteOn), self.heard, self.now))

    def _on(self, name: str, slot: str, pitch: int, slot_pitch: int, t: float, velocity: int) -> None:
        if self._open[name] is not None:
            self._off(name, t)
        self._open[name] = self.context.band_on(name, slot, pitch, t, velocity, slot_pitch)
        self._push(NoteOn(t, int(pitch), int(velocity), name))

    def _off(self, name: str, t: float) -> None:
        note = self._open[name]
        if note is None:
            return
        note.end = max(t, note.start + 1e-3)
        self._open[name] = None
        self._push(NoteOff(note.end, note.pitch, name))

    def _end_open(self, name: str, t: float) -> None:
        note = self._open[name]
        if note is not None:
            self._off(name, t)
            if self.map is not None and not self._stale:
                self.gen.note_off(note.slot, self.map.units(t))

    def _drop(self, name: str, at: float) -> None:
        before = len(self._heap)
        self._heap = [e for e in self._heap if not (e[3].source == name and e[0] >= at - EPS)]
        if len(self._heap) != before:
            heapq.heapify(self._heap)

    def _cut(self, name: str, at: float) -> None:
        """``name`` is silent from ``at``: later plans dropped, a sounding note ends at ``at``."""
        if name == DRUMS:
            self._drop_drums(at, end=True)
            self.drummer.cut(at)
            return
        self._drop(name, at)
        self._replay.pop(name, None)
        ending = self.context.cut(name, at)
        if ending is not None:
            self._push(NoteOff(at, ending.pitch, name))
        self._open[name] = None
        self.players[name].rest()
        self._stale = True

    def _withdraw(self, name: str, at: float) -> None:
        """Plans of ``name`` from ``at`` are dropped; a note sounding then stays open."""
        if name == DRUMS:
            self._drop_drums(at, end=False)
            self.drummer.withdraw(at)
            return
        self._drop(name, at)
        self._open[name] = self.context.retract(name, at)
        self._stale = True

    # ------------------------------------------------------------ for the display

    def describe(self, now: float) -> dict[str, BandView]:
        """Per band: the orders in force (label), the last note, notes per beat lately."""
        out = {}
        bs = self.map.beat_seconds if self.map is not None else 0.5
        for name, p in self.players.items():
            o = p.latest()
            label = o.label()
            if o.mode == "take-over" and not o.stopped:
                label += " (playing)" if p.taking_over else " (waiting)"
            if name == DRUMS:
                hits = sum(1 for on, _, _ in self._drum_hits if now - 4 * bs <= on.time < now)
                label += f", {self.drummer.latest_style()}"
                out[name] = BandView(label, hits / 4.0, None)
                continue
            recent = self.context.band(name, since=now - 4 * bs, until=now)
            last = self.context.recent_pitches(name, 1, now)
            out[name] = BandView(label, len(recent) / 4.0, last[-1] if last else None)
        return out

    def state(self, now: float) -> dict[str, Any]:
        """What each band is doing and why, with the parameters in force (JSON-ready; any
        thread: it reads what the band thread last wrote)."""
        views = self.describe(now)
        given: dict[str, LogEntry] = {}
        for e in reversed(list(self.log)):   # (a copy: the band thread appends meanwhile)
            if e.event in ("command", "param") and e.command:
                target = e.band or e.command.split()[0]
                for b in (self.players if target == "all" or e.band is None and e.event == "param" else (target,)):
                    given.setdefault(b, e)
            if len(given) == len(self.players):
                break
        bands: dict[str, Any] = {}
        register = self.register_override or self.context.player_register(now)
        for name, p in self.players.items():
            o, view = p.latest(), views[name]
            if o.stopped:
                why = "stopped by a command; go starts it again"
            elif o.mode == "take-over":
                why = "carrying the player's line on while the player rests" if p.taking_over else \
                    "waiting to take over when the player stops"
            elif o.mode == "make-room":
                why = "leaving the player room: sparser, quieter, out of their register" + \
                    (f" ({register[0]}-{register[1]})" if register else "")
            elif o.mode == "lead":
                why = "leading: the other bands accompany it"
            elif o.mode == "fight":
                why = "fighting the player: contrary motion, off the beat, out of key"
            elif o.follows:
                why = f"accompanying {o.follows}, who leads"
            else:
                why = "accompanying the player" + (f" (heard in {register[0]}-{register[1]})" if register else "")
            entry: dict[str, Any] = {"doing": view.command, "why": why, "notes_per_beat": round(view.density, 3),
                                     "last_note": view.last_note}
            cause = given.get(name)
            entry["because"] = f"{cause.event} {cause.command} at {cause.time:.2f} s" if cause else "default orders"
            if name != DRUMS:
                entry.update(range=[p.low, p.high], register_shift=self.shift[name], temperature=p.temperature,
                             top_p=p.top_p, density_steps=o.density, silence_check=self.checks[name]["silence"],
                             novelty_check=self.checks[name]["novelty"],
                             redraws={"silence": self.redraws[(name, "silence")],
                                      "novelty": self.redraws[(name, "novelty")]})
            else:
                entry["density_steps"] = o.density
            bands[name] = entry
        bpm, beat = self.clock_text(now)
        s = self.settings
        return {"time": round(now, 4), "bands": bands,
                "clock": {"tempo": None if bpm is None else round(bpm, 3), "beat": beat,
                          "source": self.map.clock.source if self.map is not None and self.map.metered else "free"},
                "harmony": self.harmony_text(),
                "params": {"lookahead": s.lookahead, "context_bars": s.context_bars,
                           "context_seconds": s.context_seconds, "context_window_s": round(self.context.window, 3)},
                "heard": self.heard, "params_set": self.params_set}

    def bar_timing(self):
        """The session's bars so far, for session.mid's tempo map (any thread)."""
        from ..timing.tempomap import BarTiming

        return BarTiming(self.time.meter, tuple(self.bars), tuple(self.timeline))
    def harmony_text(self) -> dict[str, Any] | None:
        """For the display: the chord in force, the next one (when known), key, bar of form."""
        h = self.harmony_now
        if h is None:
            return None
        out: dict[str, Any] = {"chord": None if h.chord is None else
                               (h.chord.symbol if h.source == "changes" else h.chord.name),
                               "source": h.source, "key": None if h.key is None else chord_key_name(h.key)}
        if h.next is not None:
            out["next"] = h.next.symbol if h.source == "changes" else h.next.name
        if h.bar is not None:
            out["bar"], out["chorus"] = h.bar + 1, h.chorus + 1
        if h.counting_in:
            out["count_in"] = True
        return out

    def clock_text(self, now: float) -> tuple[float | None, str | None]:
        """(tempo, beat as shown) for the display: "3/4" on the grid, "free" otherwise."""
        if self.map is None or not self.map.metered:
            return None, "free"
        b = self.map.clock.beat_at(now)
        bpb = self.map.meter.beats_per_bar
        return self.map.clock.bpm, f"{int(b % bpb) + 1}/{bpb}"
