"""What one band player has been told: the state its last commands left it in.

:class:`Orders` is immutable; ``orders.after(command, value)`` is the state after a
command. A band follows its orders until told otherwise: the mode commands (accompany,
make room, take over, fight, lead) replace the mode, while busier/simpler and more
orderly/more chaotic are steps that stay through mode changes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

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
