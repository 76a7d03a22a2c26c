"""Controller messages -> commands, on the caller's clock: press, release, long press, toggle.

:class:`SwitchLogic` holds no thread and reads no clock: ``message(msg, now)`` and
``poll(now)`` take the time, so tests drive it with a fake clock and the live input
(:mod:`improv.control.controller`) calls ``poll`` at :meth:`SwitchLogic.next_deadline`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import mido

from ..events import Command
from .mapping import Mapping, Switch


@dataclass
class _Held:
    switch: Switch
    start: float
    deadline: float | None  # when the long press fires; None: the switch has no long command
    long_fired: bool = False


def switch_event(msg: mido.Message) -> tuple[str, int, int] | None:
    """(kind, number, value) of a switch message: value 127 press / 0 release for notes,
    the CC value, 127 for a Program Change; None for anything else."""
    if msg.type == "program_change":
        return ("program", msg.program, 127)
    if msg.type == "control_change":
        return ("cc", msg.control, msg.value)
    if msg.type == "note_on":
        return ("note", msg.note, 127 if msg.velocity > 0 else 0)
    if msg.type == "note_off":
        return ("note", msg.note, 0)
    return None


class SwitchLogic:
    """The commands a mapping gives for controller messages.

    Momentary switches (CC, note): a value above 0 is a press, 0 a release. Without a
    ``long`` command the ``press`` command comes at once; with one, a release before
    the long-press time gives ``press`` and reaching that time gives ``long`` (stamped
    with the exact deadline even if ``poll`` comes late). A second press of a switch
    already held is ignored. Toggle switches (CC): ``off_value`` gives ``off``,
    ``on_value`` (or any other value when it is not set) gives ``on``.
    """

    def __init__(self, mapping: Mapping):
        self.mapping = mapping
        self._held: dict[tuple[str, int], _Held] = {}

    def reset(self) -> None:
        """Forget the switches held (the controller went away: no release will come)."""
        self._held.clear()

    def message(self, msg: mido.Message, now: float) -> list[Command]:
        ev = switch_event(msg)
        if ev is None:
            return []
        if self.mapping.channel is not None and msg.channel != self.mapping.channel - 1:
            return []
        kind, number, value = ev
        sw = self.mapping.switch(kind, number)
        if sw is None:
            return []
        if kind == "program":
            return _stamp([sw.press], now)
        if sw.mode == "toggle":
            if value == sw.off_value:
                return _stamp([sw.off], now)
            if sw.on_value is None or value == sw.on_value:
                return _stamp([sw.on], now)
            return []
        return self._press(sw, now) if value > 0 else self._release(sw, now)

    def _press(self, sw: Switch, now: float) -> list[Command]:
        if sw.key in self._held:
            return []
        if sw.long is None:
            self._held[sw.key] = _Held(sw, now, None)
            return _stamp([sw.press], now)
        self._held[sw.key] = _Held(sw, now, now + self.mapping.long_s(sw))
        return []

    def _release(self, sw: Switch, now: float) -> list[Command]:
        held = self._held.pop(sw.key, None)
        if held is None:
            return []
        out: list[Command] = []
        if held.deadline is not None and not held.long_fired:
            if now < held.deadline:
                out += _stamp([sw.press], now)
            else:
                out += _stamp([sw.long], held.deadline)
        return out + _stamp([sw.release], now)

    def poll(self, now: float) -> list[Command]:
        """The long presses whose time has come."""
        out: list[Command] = []
        for held in self._held.values():
            if held.deadline is not None and not held.long_fired and now >= held.deadline:
                held.long_fired = True
                out += _stamp([held.switch.long], held.deadline)
        return out

    def next_deadline(self) -> float | None:
        pending = [h.deadline for h in self._held.values() if h.deadline is not None and not h.long_fired]
        return min(pending) if pending else None


def _stamp(cmds: list[Command | None], now: float) -> list[Command]:
    return [replace(c, time=float(now)) for c in cmds if c is not None]


__all__ = ["SwitchLogic", "switch_event"]
