"""What one band player has been told: the state its last commands left it in.

:class:`Orders` is immutable; ``orders.after(command, value)`` is the state after a
command. A band follows its orders until told otherwise: the mode commands (accompany,
make room, take over, fight, lead) replace the mode, while busier/simpler and more
orderly/more chaotic are steps that stay through mode changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

T = TypeVar("T")

MODES = ("accompany", "make-room", "take-over", "fight", "lead")
MAX_STEPS = 3


@dataclass(frozen=True)
class Orders:
    stopped: bool = False
    mode: str = "accompany"
    style: str = "harmonic"       # accompany: harmonic | contrapuntal
    amount: float = 0.0           # take-over: variation 0..1; fight: dissonance budget 0..1
    density: int = 0              # busier (+) / simpler (-) steps
    order: int = 0                # more orderly (+) / more chaotic (-) steps
    follows: str | None = None    # accompanying this band (after "X: lead"), not the player
    sparse: bool = False          # accompanying a leading band sparsely (else busily)

    def after(self, command: str, value: Any = None) -> "Orders":
        """The orders after ``command`` (already validated by ``check_command``)."""
        if command == "stop":
            return replace(self, stopped=True)
        if command == "go":
            return replace(self, stopped=False)
        if command == "busier":
            return replace(self, density=min(self.density + 1, MAX_STEPS))
        if command == "simpler":
            return replace(self, density=max(self.density - 1, -MAX_STEPS))
        if command == "more-orderly":
            return replace(self, order=min(self.order + 1, MAX_STEPS))
        if command == "more-chaotic":
            return replace(self, order=max(self.order - 1, -MAX_STEPS))
        if command == "make-room":
            return replace(self, mode="make-room", follows=None)
        if command == "accompany":
            return replace(self, mode="accompany", style=value or "harmonic", follows=None, sparse=False)
        if command == "take-over":
            return replace(self, mode="take-over", amount=float(value if value is not None else 0.3), follows=None)
        if command == "fight":
            return replace(self, mode="fight", amount=float(value if value is not None else 0.5), follows=None)
        raise ValueError(f"not a band order: {command}")

    def leading(self) -> "Orders":
        return replace(self, mode="lead", follows=None)

    def accompanying(self, leader: str, density: str, style: str) -> "Orders":
        return replace(self, mode="accompany", style=style, follows=leader, sparse=density == "sparse")

    def label(self) -> str:
        if self.mode == "accompany":
            text = f"accompany {self.style}"
            if self.follows:
                text += f" ({'sparse' if self.sparse else 'busy'}) {self.follows}"
        elif self.mode in ("take-over", "fight"):
            text = f"{self.mode.replace('-', ' ')} {self.amount:g}"
        else:
            text = self.mode.replace("-", " ")  # as people write it: "make room"
        if self.density:
            text += f", {'busier' if self.density > 0 else 'simpler'} x{abs(self.density)}"
        if self.order:
            text += f", {'orderly' if self.order > 0 else 'chaotic'} x{abs(self.order)}"
        return ("stopped: " + text) if self.stopped else text


class Timeline(Generic[T]):
    """A value that changes at given times (a player's orders, the drummer's style):
    ``set(value, at)`` replaces whatever was set from ``at`` on; ``at(t)`` applies what
    has become due and gives the value in force; ``latest()`` what will be in force once
    everything set is."""

    def __init__(self, value: T):
        self.value = value
        self._pending: list[tuple[float, T]] = []

    def set(self, value: T, at: float) -> None:
        self._pending = [(t, v) for t, v in self._pending if t < at]
        self._pending.append((at, value))

    def at(self, t: float) -> T:
        while self._pending and self._pending[0][0] <= t + 1e-9:
            self.value = self._pending.pop(0)[1]
        return self.value

    def latest(self) -> T:
        return self._pending[-1][1] if self._pending else self.value

    def peek(self, t: float) -> T:
        """The value in force at ``t``, applying nothing (a reader beside the planner)."""
        value = self.value
        for at, v in self._pending:
            if at <= t + 1e-9:
                value = v
        return value


class Player:
    """What every band player keeps, the drummer too: its orders over time (commands take
    effect at their time), a hold after a panic, and whether and how it is playing (the
    band asks and tells it through these methods only)."""

    def __init__(self, name: str):
        self.name = name
        self._orders: Timeline[Orders] = Timeline(Orders())
        self.hold_until = -math.inf           # silent before this (after a panic, during a count-in)
        self.since: float | None = None       # when the current stretch of playing began
        self.slot: str | None = None          # the model voice it played last frame
        self.taking_over = False              # playing the lead voice right now

    def order(self, orders: Orders, at: float) -> None:
        """New orders from ``at`` (session seconds)."""
        self._orders.set(orders, at)

    def current(self, t: float) -> Orders:
        """The orders in force at ``t`` (applying what has become due)."""
        return self._orders.at(t)

    def latest(self) -> Orders:
        """The orders once everything pending is in force (what the display shows)."""
        return self._orders.latest()

    def orders_at(self, t: float) -> Orders:
        """The orders in force at ``t``, applying nothing (the CC macros read them)."""
        return self._orders.peek(t)

    def rest(self) -> None:
        """Silent from this frame: the next note starts a new stretch of playing."""
        self.slot, self.since, self.taking_over = None, None, False

    def plays(self, slot: str, t: float) -> bool:
        """Plays model voice ``slot`` in the frame at ``t``; True when this starts a take-over."""
        starts = slot == "lead" and not self.taking_over
        if self.since is None:
            self.since = t
        self.slot, self.taking_over = slot, slot == "lead"
        return starts

    def hold(self, until: float) -> None:
        """Silent until ``until`` (a panic: the band stays as it was told, after a breath)."""
        self.hold_until = until
