"""All command inputs of a session, opened and closed together.

:func:`open_controls` opens the foot controller (``--controller``), the keyboard
(unless ``--no-keys`` or stdin is not a terminal) and OSC (``--osc``) with one mapping
(``--mapping``). Every input hands its commands to one queue; a dispatcher thread
calls ``on_command(cmd)`` and ``log(line)`` from there, one at a time and in order of
arrival, so the receiver sees a single thread and the inputs never wait on it.
"""

from __future__ import annotations

import argparse
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ImprovError

if TYPE_CHECKING:  # the parser's options (add_control_options) must load without MIDI, numpy or the mapping
    from ..events import Command
    from .mapping import Mapping

_log = logging.getLogger("improv.control")


@dataclass
class ControlOptions:
    controller: str | None = None  # part of the foot controller's MIDI input port name
    mapping: str | None = None     # mapping file (None: ~/.config/improv/mapping.toml or the built-in one)
    osc: str | None = None         # "[HOST:]PORT" for the OSC server; None: no OSC
    keys: bool = True              # read single keys while the session runs (when stdin is a terminal)
    midi_api: str | None = None    # "jack", "alsa" or None/"auto"


def add_control_options(parser: argparse.ArgumentParser) -> None:
    """Add --controller, --mapping, --osc and --no-keys (``--midi-api`` is the session's own)."""
    g = parser.add_argument_group("commands (foot controller, keyboard, OSC)")
    g.add_argument("--controller", metavar="PORT",
                   help="MIDI foot controller: part of its input port name (see `improv ports`)")
    g.add_argument("--mapping", metavar="FILE",
                   help="switches and keys -> commands (TOML; default ~/.config/improv/mapping.toml if it exists, "
                        "else the built-in one: CC 80-85 / PC 0-5; `improv mapping` shows it, `improv learn` "
                        "records yours)")
    g.add_argument("--osc", metavar="[HOST:]PORT",
                   help="take OSC commands on this UDP port (/improv/<band>/<command> [value]); "
                        "this machine only (127.0.0.1) unless HOST is given; HOST 0.0.0.0 opens it to the "
                        "network, where anyone who can reach the port can command the band")
    g.add_argument("--no-keys", dest="keys", action="store_false",
                   help="do not read commands from the keyboard (? lists the keys)")


def control_options(args: argparse.Namespace) -> ControlOptions:
    api = getattr(args, "midi_api", None)
    return ControlOptions(controller=args.controller, mapping=args.mapping, osc=args.osc, keys=args.keys,
                          midi_api=None if api in (None, "auto") else api)


_STOP = object()


class Controls:
    """The open inputs; ``close()`` (or leaving the ``with`` block) stops them all.

    ``submit(cmd)`` hands a command in from anywhere else (a display, a test), as the
    inputs do. ``opened`` lists what is listening, one line each.
    """

    def __init__(self, mapping: Mapping, on_command: Callable[[Command], None], log: Callable[[str], None]):
        self.mapping = mapping
        self.controller = None
        self.keyboard = None
        self.osc = None
        self.opened: list[str] = []
        self.commands = 0
        self._on_command = on_command
        self._log = log
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._dispatch, name="improv-commands", daemon=True)
        self._thread.start()

    def submit(self, cmd: Command) -> None:
        self._queue.put(cmd)

    def log(self, line: str) -> None:
        self._queue.put(line)

    def _dispatch(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, str):
                self._log(item)
                continue
            self.commands += 1
            try:
                self._on_command(item)
            except ImprovError as e:
                self._log(f"command {item.label()}: {e}")
            except Exception as e:  # a fault in the receiver must not stop every later command
                self._log(f"command {item.label()} failed: {type(e).__name__}: {e}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for part in (self.keyboard, self.controller, self.osc):
            if part is not None:
                part.close()
        self._queue.put(_STOP)
        self._thread.join(timeout=5)

    def __enter__(self) -> "Controls":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_controls(opts: ControlOptions, on_command: Callable[[Command], None], now: Callable[[], float],
                  log: Callable[[str], None] | None = None, mapping: Mapping | None = None,
                  key_fd: int | None = None) -> Controls:
    """Open the inputs ``opts`` asks for; raise an ImprovError (one line) when one cannot open.

    ``now()`` gives the session time in seconds (the commands' ``time``); ``log(line)``
    gets news (what is listening, a controller lost and found, a bad OSC message; by
    default the ``improv.control`` logger). ``mapping`` overrides ``opts.mapping``;
    ``key_fd`` reads keys from that terminal instead of stdin.
    """
    from .controller import ControllerInput
    from .keyboard import KeyboardInput, keyboard_unusable, stdin_fd
    from .osc import OscInput, parse_osc_address

    from .mapping import BUILTIN, load_mapping

    log = log or _log.info
    mapping = mapping or load_mapping(opts.mapping)
    osc_at = parse_osc_address(opts.osc) if opts.osc else None
    controls = Controls(mapping, on_command, log)
    where = "" if mapping.source == BUILTIN else f" (mapping {mapping.source})"
    try:
        if opts.controller:
            controls.controller = ControllerInput(opts.controller, mapping, controls.submit, now, controls.log,
                                                  api=opts.midi_api)
            controls.opened.append(f"foot controller: {controls.controller.name} "
                                   f"({controls.controller.port.api}){where}")
        if osc_at is not None:
            controls.osc = OscInput(*osc_at, controls.submit, now, controls.log)
            controls.opened.append(f"OSC: udp {controls.osc.host}:{controls.osc.port} (/improv/<band>/<command>)")
        if opts.keys and mapping.keys:
            fd = key_fd if key_fd is not None else stdin_fd()
            why = keyboard_unusable(fd)
            if why is None:
                assert fd is not None
                controls.keyboard = KeyboardInput(mapping, controls.submit, now, controls.log, fd)
                help_key = next((k for k, b in mapping.keys.items() if b.help), None)
                controls.opened.append("keys: " + (f"press {help_key} for the list" if help_key else
                                                   mapping.key_help()))
            else:
                controls.opened.append(f"keys: off ({why})")
    except BaseException:
        controls.close()
        raise
    for line in controls.opened:
        controls.log(line)
    return controls


__all__ = ["ControlOptions", "Controls", "add_control_options", "control_options", "open_controls"]
