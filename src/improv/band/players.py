"""One band player (bass, mid or high): its settings, its orders, and what it asks of the
generator for each frame.

A player never plays by itself: for every frame the band plans, ``request(scene,
context)`` turns the player's orders and what is heard (a :class:`Scene`) into a
:class:`VoiceRequest` — which model voice to sample (its own, or ``lead`` while it takes
over the player's line), the model's controls (role, density, register, range), a
hook that bends the logits (:func:`shaped`), and a velocity — or None to stay silent.
Everything depends on the frame's time passed in, never on a clock.

The hook decides *which* pitch and *whether* a note starts separately: pitch biases
move probability among the pitches in range without changing their total, then the
total is steered toward a chance of a new note. How the orders become both:

* density: a ladder of notes per beat (0.25, 0.5, 1, 2, 4; free mode: per half
  second); each band has a default rung (bass 1, mid 1, high 0.5), busier/simpler move
  it one rung, the mode moves it (make room -1, contrapuntal +1, leading +1, sparse
  accompaniment -1, busy +1; free mode +1 in the player's gaps of at least 0.4 s, so a
  free band is as busy as a metered one at 120 BPM while the player plays).
  The model's density control is set to it, and each frame's chance of a new note is
  steered toward ``target / 4``, raised or lowered by how far the band's rate over the
  last four beats is off (left to itself, the model keeps a band silent that has not
  played yet).
* register: the centre of the band's range away from the player's register (10th to
  90th percentile of the last 10 s); accompaniment discourages that register softly
  and the player's own pitch (and its neighbours) strongly; make room forbids the
  player's recent span (lowest to highest note of the last 12 s, widening the range by
  an octave away from it when less than a fifth is left), one rung sparser, 30 %
  quieter.
* harmonic: the player's key (the model's ``keep_key``) and consonance with the
  player's pitch, strongest on the beats; contrapuntal: the key, contrary motion to
  the player's last interval, no unisons/octaves with the player, consonance on the
  beats; fight: the model's ``fight`` hook (1 + 3 x dissonance budget), pitches out of
  the player's key (1 + 2 x budget), contrary motion, fewer onsets on the beats and more
  off them.
* more orderly / more chaotic: a lower / higher temperature and a narrower / full
  nucleus among the pitches, plus a bias toward / away from the band's recent pitches
  and small steps.
* take over: silent while the player plays; once the player has been silent for
  ``takeover_gap`` beats (0.6), the player samples the model's ``lead`` voice (role
  lead, the player's register), starting a note at once, at the density of the
  player's last phrase, its pitch classes drawn toward that phrase's (in proportion,
  and toward those it has played too little of so far; less so with more variation,
  which also raises the pitch temperature), folded by octaves into its own range. The
  band hands back the moment the player's next note is heard.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..harmony.voicing import chord_bias
from ..model import VoiceControl, fight, heard_key, keep_key
from ..model.encoding import PITCH_HI, PITCH_LO
from ..output import RANGES as DEFAULT_RANGES
from .context import Context, pitch_class_profile
from .orders import Orders, Player

DEFAULT_VELOCITY = {"bass": 90, "mid": 72, "high": 80}
DENSITY_LADDER = (0.25, 0.5, 1.0, 2.0, 4.0)     # notes per beat (free mode: per half second)
DEFAULT_RUNG = {"bass": 2, "mid": 2, "high": 1}
CONSONANT = (0, 3, 4, 7, 8, 9)
PITCH_TOP_P = 0.95                               # nucleus among the pitches (the model's recommended)
DISSONANT = (1, 2, 6, 10, 11)
CONSONANCE_FOLLOWED = 2.0                        # the player-consonance bias when the chord is only followed
_PITCHES = np.arange(PITCH_LO, PITCH_HI + 1)


@dataclass(frozen=True)
class Scene:
    """What is heard when a frame is decided (times in session seconds)."""

    time: float                       # the frame's start
    metered: bool
    beat_seconds: float               # a beat (free mode: half a second)
    on_beat: bool
    player_register: tuple[int, int] | None
    player_pitch: int | None          # sounding, or the last heard
    player_sounding: bool
    player_silent_for: float          # beats since the player's last note ended (0 while sounding)
    player_motion: int                # -1, 0, +1: the player's last interval
    phrase_profile: np.ndarray | None = field(default=None, repr=False)  # pitch classes of the last phrase
    phrase_rate: float = 0.0          # the player's notes per beat in the last phrase
    player_span: tuple[int, int] | None = None  # lowest and highest pitch lately (make room keeps clear)
    harmony: object | None = None     # improv.harmony.HarmonyNow: the chord in force at this frame
    strong_beat: bool = False         # the bar's first beat or its middle (metered)


@dataclass(frozen=True)
class VoiceRequest:
    slot: str                         # model voice: the band's own, or "lead" (take over)
    control: VoiceControl
    hook: Callable | None
    velocity: int
    fold: tuple[int, int] | None = None  # fold pitches by octaves into this range when sent
    kick: bool = False                # the first frame of a take-over


def parse_range(text: str) -> tuple[int, int]:
    """``"E1-C3"`` or ``"28-48"`` -> (28, 48)."""
    from ..model.encoding import PITCH_HI as HI, PITCH_LO as LO

    parts = text.replace("..", "-").split("-")
    if len(parts) != 2:
        raise ConfigError(f"range {text!r}: write LOW-HIGH, e.g. E1-C3 or 28-48")
    lo, hi = (_pitch(p.strip(), text) for p in parts)
    if not LO <= lo < hi <= HI:
        raise ConfigError(f"range {text!r}: need {LO} <= low < high <= {HI} (A0 to C8)")
    if hi - lo < 12:
        raise ConfigError(f"range {text!r}: give at least an octave (12 semitones)")
    return lo, hi


_NOTE = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}


def _pitch(word: str, whole: str) -> int:
    if word.lstrip("-").isdigit():
        return int(word)
    w = word.lower()
    if w and w[0] in _NOTE:
        k = _NOTE[w[0]]
        rest = w[1:]
        while rest[:1] in ("#", "b") and len(rest) > 1:
            k += 1 if rest[0] == "#" else -1
            rest = rest[1:]
        try:
            return 12 * (int(rest) + 1) + k
        except ValueError:
            pass
    raise ConfigError(f"range {whole!r}: {word!r} is not a note (like E1, C#3) or a MIDI number")


class BandPlayer(Player):
    """One monophonic band player. ``orders`` change through :meth:`order` (with the time
    they take effect); the band calls :meth:`request` for every frame it plans."""

    def __init__(self, name: str, low: int | None = None, high: int | None = None, velocity: int | None = None,
                 takeover_gap: float = 0.6, free_gap: float = 0.4):
        super().__init__(name)
        lo, hi = DEFAULT_RANGES[name]
        self.low = lo if low is None else int(low)
        self.high = hi if high is None else int(high)
        self.velocity = DEFAULT_VELOCITY[name] if velocity is None else int(velocity)
        self.takeover_gap = takeover_gap      # beats of the player's silence before taking over
        self.free_gap = free_gap              # seconds: free mode answers gaps at least this long
        self.temperature = 1.0                # run-time parameters (improv.band.params): the pitch
        self.top_p = PITCH_TOP_P              # temperature is scaled by this, the nucleus starts here
        # 0..1: how far a take-over leaves where its notes fall to the model rather than to the
        # player's last phrase's rate (a model fine-tuned on this player's sessions knows their rhythm)
        self.model_trust = 0.0

    # ------------------------------------------------------------ deciding

    def rung(self, orders: Orders, scene: Scene) -> int:
        r = DEFAULT_RUNG[self.name] + orders.density
        if orders.mode == "make-room":
            r -= 1
        elif orders.mode == "lead":
            r += 1
        elif orders.mode == "accompany":
            if orders.style == "contrapuntal":
                r += 1
            if orders.follows is not None:
                r += -1 if orders.sparse else 1
        if not scene.metered and orders.mode != "take-over" and self.in_free_gap(scene):
            # free mode: as busy as metered at 120 BPM while the player plays, answering in
            # their gaps (holding back while they play too left the band at about half the
            # metered density on a player who seldom rests)
            r += 1
        return int(np.clip(r, 0, len(DENSITY_LADDER) - 1))

    def in_free_gap(self, scene: Scene) -> bool:
        """Free mode: the player has been silent for at least ``free_gap`` seconds."""
        return not scene.player_sounding and scene.player_silent_for * scene.beat_seconds >= self.free_gap - 1e-9

    def request(self, scene: Scene, ctx: Context) -> VoiceRequest | None:
        orders = self.current(scene.time)
        if orders.stopped or scene.time < self.hold_until - 1e-9:
            return None
        if orders.mode == "take-over":
            return self._take_over(orders, scene, ctx)
        target = DENSITY_LADDER[self.rung(orders, scene)]
        low, high, forbid = self._range(orders, scene)
        centre = self._centre(low, high, scene.player_register, forbid)
        pv = np.zeros(len(_PITCHES))
        onset = self._onset_prob(target, scene, ctx)
        hooks: list[Callable] = []
        if forbid is not None:
            pv[(_PITCHES >= forbid[0]) & (_PITCHES <= forbid[1])] = -np.inf
        elif scene.player_register is not None and orders.mode != "fight":
            lo, hi = scene.player_register
            pv[(_PITCHES >= lo) & (_PITCHES <= hi)] -= 1.0
        if scene.player_pitch is not None and orders.mode != "fight":
            near = np.abs(_PITCHES - scene.player_pitch) <= 1
            pv[near] -= 3.0
        last = self._last_pitch(ctx, scene.time)
        if orders.mode == "fight":
            budget = orders.amount
            hooks.append(fight(1.0 + 3.0 * budget))
            hooks.append(out_of_key(1.0 + 2.0 * budget))  # clashes with whatever the player plays next too
            pv += self._contrary(scene, last, 1.0)
            onset = min(0.95, onset * (0.4 if scene.on_beat else 1.25))  # rhythmic displacement: off the beat
        elif scene.harmony is None or not scene.harmony.strict:  # (given changes may leave the key)
            hooks.append(keep_key(2.5 if orders.style == "harmonic" or orders.mode != "accompany" else 2.0))
        if scene.harmony is not None:
            bias, release = chord_bias(self.name, scene.harmony, orders.mode, scene.on_beat, scene.strong_beat,
                                       scene.time, scene.beat_seconds)
            pv += bias
            if release is not None:
                hooks.append(release)
            h = scene.harmony
            if self.name == "bass" and orders.mode != "fight" and h.chord is not None:
                if abs(scene.time - h.began) < 1e-3:
                    onset = max(onset, 0.85)      # the bass marks the change
                elif h.strict and scene.strong_beat:
                    onset = max(onset, 0.5)
        if orders.mode != "fight":
            contrapuntal = orders.mode == "accompany" and orders.style == "contrapuntal"
            if contrapuntal:
                pv += self._contrary(scene, last, 1.0)
                if scene.player_pitch is not None:
                    pv[(_PITCHES - scene.player_pitch) % 12 == 0] -= 1.0  # no unisons or octaves with the player
            if scene.player_pitch is not None:
                # consonant with the player, chord tones above all on the beats (an independent
                # line still meets the player consonantly there)
                ic = (_PITCHES - scene.player_pitch) % 12
                amount = (1.0 if scene.on_beat else 0.5) if contrapuntal else (2.0 if scene.on_beat else 1.0)
                amount *= CONSONANCE_FOLLOWED if scene.harmony is not None and not scene.harmony.strict else 1.0
                pv += np.where(np.isin(ic, CONSONANT), amount, -amount)
        pitch_temperature, pitch_top_p = self._order_bias(orders.order, pv, ctx, scene.time, last)
        role = "lead" if orders.mode == "lead" else "accompany"
        velocity = self.velocity
        if orders.mode == "make-room":
            velocity = int(velocity * 0.7)
        elif orders.mode == "lead":
            velocity += 12
        elif orders.mode == "fight":
            velocity += 8
        if scene.on_beat and scene.metered:
            velocity += 6
        control = VoiceControl(role=role, density=min(target, 16.0), register=float(centre), low=low, high=high,
                               temperature=1.0, top_p=1.0)
        return VoiceRequest(self.name, control, shaped(pv, onset, hooks, pitch_temperature=pitch_temperature,
                                                       pitch_top_p=pitch_top_p), int(np.clip(velocity, 1, 127)))

    # ------------------------------------------------------------ parts

    def _range(self, orders: Orders, scene: Scene) -> tuple[int, int, tuple[int, int] | None]:
        """(low, high, forbidden register) for this frame."""
        low, high = self.low, self.high
        if orders.mode != "make-room" or scene.player_span is None:
            return low, high, None
        flo, fhi = scene.player_span[0] - 1, scene.player_span[1] + 1
        below = max(0, min(high, flo - 1) - low + 1)
        above = max(0, high - max(low, fhi + 1) + 1)
        if max(below, above) < 7:
            centre = (low + high) / 2
            if centre < (flo + fhi) / 2:
                low = max(PITCH_LO, low - 12)
            else:
                high = min(PITCH_HI, high + 12)
        return low, high, (flo, fhi)

    @staticmethod
    def _centre(low: int, high: int, register: tuple[int, int] | None, forbid: tuple[int, int] | None) -> float:
        """The middle of the largest part of [low, high] outside the player's register."""
        if register is None:
            return (low + high) / 2
        flo, fhi = forbid if forbid is not None else (register[0] - 1, register[1] + 1)
        parts = [(low, min(high, flo - 1)), (max(low, fhi + 1), high)]
        parts = [(a, b) for a, b in parts if b >= a]
        if not parts:
            return (low + high) / 2
        a, b = max(parts, key=lambda p: p[1] - p[0])
        return (a + b) / 2

    def _onset_prob(self, target: float, scene: Scene, ctx: Context) -> float:
        """The chance of a new note in this frame: ``target`` notes per beat over the four
        frames of a beat, raised or lowered by how far the band's recent rate is off."""
        q = target / 4.0
        if self.since is not None:
            window = 4 * scene.beat_seconds
            rate = ctx.onset_rate(self.name, scene.time, window, since=self.since) * scene.beat_seconds
            q *= float(np.clip((target + 0.1) / (rate + 0.1), 0.25, 4.0))
        return float(np.clip(q, 0.01, 0.9))

    def _last_pitch(self, ctx: Context, t: float) -> int | None:
        recent = ctx.recent_pitches(self.name, 1, t)
        return recent[-1] if recent else None

    @staticmethod
    def _contrary(scene: Scene, last: int | None, amount: float) -> np.ndarray:
        out = np.zeros(len(_PITCHES))
        if last is None or scene.player_motion == 0:
            return out
        opposite = (_PITCHES < last) if scene.player_motion > 0 else (_PITCHES > last)
        same = (_PITCHES > last) if scene.player_motion > 0 else (_PITCHES < last)
        out[opposite] += amount
        out[same] -= amount / 2
        return out

    def _order_bias(self, order: int, pv: np.ndarray, ctx: Context, t: float,
                    last: int | None) -> tuple[float, float]:
        """Pitch temperature and top-p for the order steps; adds the repetition bias to ``pv``."""
        if order == 0:
            return self.temperature, self.top_p
        recent = ctx.recent_pitches(self.name, 8, t)
        if recent:
            counts = np.zeros(len(_PITCHES))
            for p in recent:
                if PITCH_LO <= p <= PITCH_HI:
                    counts[p - PITCH_LO] += 1
            pv += 1.5 * order * counts / len(recent)
        if last is not None:
            leap = np.abs(_PITCHES - last) > 4
            pv[leap] -= 0.4 * order
        if order > 0:
            return (max(0.3, 1.0 - 0.22 * order) * self.temperature,
                    max(0.5 * self.top_p, self.top_p - 0.12 * order))
        return (1.0 + 0.25 * -order) * self.temperature, min(1.0, self.top_p + 0.05 * -order)

    def _take_over(self, orders: Orders, scene: Scene, ctx: Context) -> VoiceRequest | None:
        gap = self.takeover_gap
        if scene.player_sounding or scene.player_pitch is None or scene.player_silent_for < gap - 1e-6:
            return None
        variation = orders.amount
        reg = scene.player_register or (scene.player_pitch - 6, scene.player_pitch + 6)
        low = max(PITCH_LO, reg[0] - 4)
        high = min(PITCH_HI, reg[1] + 4)
        pv = np.zeros(len(_PITCHES))
        kick = not self.taking_over
        target = float(np.clip(scene.phrase_rate, 0.5, 4.0)) if scene.phrase_rate > 0 else 1.0
        onset = 1.0 if kick else self._onset_prob(target, scene, ctx)
        if scene.phrase_profile is not None and scene.phrase_profile.sum() > 0:
            # The pitch classes of the player's last phrase, in proportion (less with more
            # variation), and those it has played less of than the phrase so far.
            w = scene.phrase_profile / scene.phrase_profile.sum()
            bias = (0.5 + 3.0 * (1.0 - variation)) * np.log((w + 0.02) / (w.max() + 0.02))
            if self.since is not None:
                played = pitch_class_profile(ctx.band(self.name, since=self.since), scene.time)
                if played.sum() > 0:
                    share = played / played.sum()
                    bias += 2.0 * (1.0 - 0.7 * variation) * np.clip(np.log((w + 0.05) / (share + 0.05)), -3.0, 3.0)
            pv += bias[_PITCHES % 12]
        if scene.harmony is not None and scene.harmony.strict:  # the changes hold in a take-over too
            pv += chord_bias("high", scene.harmony, "take-over", scene.on_beat, scene.strong_beat, scene.time,
                             scene.beat_seconds)[0]
        control = VoiceControl(role="lead", density=min(target, 16.0), register=(reg[0] + reg[1]) / 2,
                               low=low, high=high, temperature=1.0, top_p=1.0)
        hook = shaped(pv, onset, [], start_note=kick, pitch_temperature=(0.6 + 0.6 * variation) * self.temperature,
                      pitch_top_p=min(1.0, (0.8 + 0.2 * variation) * self.top_p / PITCH_TOP_P),
                      follow=0.8 - 0.4 * self.model_trust)
        return VoiceRequest("lead", control, hook, self.velocity + 6, fold=(self.low, self.high), kick=kick)


def out_of_key(strength: float) -> Callable:
    """Favour (by ``strength`` nats) pitches outside the player's key: the opposite of the
    model's ``keep_key``, for fight."""

    def hook(ctx, logits: np.ndarray) -> None:
        scale = heard_key(ctx.heard_pitch_classes)
        if scale is not None:
            logits[2:] += np.where(scale[_PITCHES % 12], 0.0, strength)

    return hook


def shaped(pitch_bias: np.ndarray, onset: float, hooks: list[Callable], start_note: bool = False,
           pitch_temperature: float = 1.0, pitch_top_p: float = 0.95, follow: float = 0.8) -> Callable:
    """One hook that decides *which* pitch and *whether* a new note separately.

    Which: the pitch biases and ``hooks`` (the model's keep_key, fight), then a
    temperature and a nucleus (top-p) among the pitches in range, move probability among
    them without changing their total. Whether: the total is then moved toward the chance
    ``onset`` of a new note (``follow`` = 1: exactly; less keeps some of the model's own
    sense of where notes fall); ``start_note`` forbids resting. The model left alone is
    sticky (a band that has not played keeps silent), hence the steering. (The session's
    own temperature and top-p stay at 1 for the band: over all tokens they would turn a
    sparse voice silent, resting being the likeliest token.)"""
    target = float(np.clip(onset, 1e-4, 1 - 1e-4))

    def hook(ctx, logits: np.ndarray) -> None:
        lo, hi = max(ctx.low, PITCH_LO) - PITCH_LO + 2, min(ctx.high, PITCH_HI) - PITCH_LO + 3
        before = _logsumexp(logits[lo:hi])
        logits[2:] += pitch_bias
        for h in hooks:
            h(ctx, logits)
        part = logits[lo:hi]
        if pitch_temperature != 1.0 or pitch_top_p < 1.0:
            finite = np.isfinite(part)
            if finite.any():
                top = part[finite].max()
                part[finite] = top + (part[finite] - top) / pitch_temperature
                if pitch_top_p < 1.0:
                    p = np.exp(part - top)
                    order = np.argsort(-p)
                    cum = np.cumsum(p[order])
                    cut = int(np.searchsorted(cum, pitch_top_p * cum[-1])) + 1
                    part[order[cut:]] = -np.inf
        after = _logsumexp(part)
        if not (np.isfinite(before) and np.isfinite(after)):
            return
        logits[2:] += before - after
        others = _logsumexp(logits[:2])  # rest and hold (the session masks hold when nothing sounds)
        if not np.isfinite(others):
            return
        model_logit = before - others
        want = math.log(target / (1.0 - target))
        logits[2:] += follow * (want - model_logit)
        if start_note:
            logits[0] = -np.inf

    return hook


def _logsumexp(x: np.ndarray) -> float:
    m = np.max(x) if len(x) else -np.inf
    if not np.isfinite(m):
        return -np.inf
    return float(m + np.log(np.exp(x - m).sum()))


def fold_into(pitch: int, low: int, high: int) -> int:
    """Move ``pitch`` by octaves into [low, high] (a range of at least an octave)."""
    while pitch < low:
        pitch += 12
    while pitch > high:
        pitch -= 12
    return pitch
