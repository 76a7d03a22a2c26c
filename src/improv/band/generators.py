"""What turns the band's requests into notes, chosen by name (``--band-generator``).

A generator is rebuilt from the band's context whenever the time map changes (and
after plans are withdrawn); between rebuilds it is told every note as it is heard or
planned, and asked for one frame at a time::

    gen.rebuild(grid, notes)              # notes: (slot, pitch, start, end|None) in units
    gen.note_on(slot, pitch, start); gen.note_off(slot, end)
    gen.set_chord(at, chord, given)       # the chord in force from ``at`` (None: no chord; given:
                                          # changes or the band's own, not only followed)
    p = gen.propose(at, requests, silent, unit)   # -> improv.model.Proposal
    gen.accept(p)

* ``model`` (default): the trained band model (:mod:`improv.model`), one live
  session for all voices, so the three bands and the player's line are sampled
  together; the requests' controls and hooks steer it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

from ..errors import ConfigError
from ..model import BandModel, Grid, Proposal, VoiceControl, load_model


class Generator(Protocol):
    name: str

    def rebuild(self, grid: Grid, notes: list[tuple[str, int, float, float | None]]) -> None: ...

    def note_on(self, slot: str, pitch: int, start: float) -> None: ...

    def note_off(self, slot: str, end: float) -> None: ...

    def set_chord(self, at: float, chord, given: bool = True) -> None: ...

    def propose(self, at: float, requests: dict, silent: tuple[str, ...], unit: float) -> Proposal: ...

    def accept(self, proposal: Proposal) -> None: ...


@dataclass
class ModelGenerator:
    """The band model: a :class:`improv.model.Session` rebuilt from the context."""

    model: BandModel
    seed: int | None = 0
    name: str = "model"
    # A model with the chord control is told the chords given (changes, the band's own in auto)
    # and, with this, the chords only followed (the follower's guess) too (a class setting).
    # Off: on validation songs (bench_harmony --split val, notes, seeds 0 and 1) telling it the
    # follower's guess (right about a third of the time) gave chord tones 0.701/0.686/0.660
    # (bass/mid/high), "unknown" 0.700/0.691/0.680.
    follow_chords: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self.session = None
        self.rebuilds = 0

    @property
    def model_trust(self) -> float:
        """How far the players trust the model's own lead line in a take-over: 1 for a model
        fine-tuned on the player's sessions (``improv train --sessions``), 0 for the corpora's."""
        return 1.0 if self.model.meta.get("sessions") else 0.0

    def rebuild(self, grid: Grid, notes: list[tuple[str, int, float, float | None]]) -> None:
        seed = None if self.seed is None else self.seed + self.rebuilds
        self.rebuilds += 1
        s = self.model.session(metered=grid.metered, beats_per_bar=grid.beats_per_bar, bar_phase=grid.bar_phase,
                               seed=seed)
        s.set_controls({"lead": VoiceControl(role="lead")})
        for slot, pitch, start, end in sorted(notes, key=lambda n: n[2]):
            s.observe(slot, pitch, start, end)
        self.session = s

    def note_on(self, slot: str, pitch: int, start: float) -> None:
        self.session.note_on(slot, pitch, start)

    def note_off(self, slot: str, end: float) -> None:
        self.session.note_off(slot, end)

    def set_chord(self, at: float, chord, given: bool = True) -> None:
        """The chord the band plays over from ``at`` on (``improv.harmony.Chord`` or None;
        ``given``: changes or the band's own, else the follower's guess): a model with the
        chord control takes it as input; others ignore it."""
        self.session.set_chord(at, chord if given or self.follow_chords else None)

    def propose(self, at: float, requests: dict, silent: tuple[str, ...], unit: float) -> Proposal:
        controls = {slot: r.control for slot, r in requests.items()}
        for slot in silent:
            controls[slot] = VoiceControl(role="silent")
        hooks = {slot: r.hook for slot, r in requests.items() if r.hook is not None}
        return self.session.propose(at, voices=tuple(requests), controls=controls, horizon=unit, hooks=hooks)

    def accept(self, proposal: Proposal) -> None:
        self.session.accept(proposal)


def _model(seed: int | None, model: BandModel | None = None) -> ModelGenerator:
    return ModelGenerator(model if model is not None else load_model(), seed)


GENERATORS: dict[str, Callable[..., Generator]] = {"model": _model}
DEFAULT_GENERATOR = "model"


def make_generator(name: str = DEFAULT_GENERATOR, seed: int | None = 0, **kwargs) -> Generator:
    try:
        factory = GENERATORS[name]
    except KeyError:
        raise ConfigError(f"--band-generator {name!r}: unknown; use one of {', '.join(GENERATORS)}") from None
    return factory(seed, **kwargs)
