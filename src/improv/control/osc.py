"""Commands over OSC (python-osc, UDP): ``/improv/<band>/<command> [value]``.

Addresses (case-insensitive; command names with ``-``, ``_`` or nothing between words)::

    /improv/bass/make-room              /improv/high/take_over 0.7
    /improv/all/stop                    /improv/mid/accompany "contrapuntal"
    /improv/high/accompany/contrapuntal /improv/all/lead "busy" "harmonic"
    /improv/panic    /improv/tap        /improv/player "mid"    /improv/stop (all bands)

The value comes from the arguments or from the address parts after the command. OSC
buttons (TouchOSC, Open Stage Control) send 1 on press and 0 on release: for a command
that takes no number, one numeric argument is such a button state — non-zero gives
the command, 0 gives nothing. For ``take-over`` and ``fight`` a number is the amount
(0..1), so put a button's amount in the address (``/improv/high/take-over/0.7``).

A bad address or value is logged in one line (at most once a second per address)
and the server carries on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..band.commands import COMMANDS, TARGETS, check_command, parse_command
from ..errors import ConfigError
from ..events import Command

PREFIX = "improv"


def osc_command(address: str, args: tuple[Any, ...] | list[Any], now: float) -> Command | None:
    """The command an OSC message means (None: a button's release); ConfigError if bad."""
    parts = [p for p in address.strip().split("/") if p]
    if not parts or parts[0].lower() != PREFIX:
        raise ConfigError(f"OSC {address}: not an improv address; send /improv/<band>/<command> [value]")
    parts = parts[1:]
    if not parts:
        raise ConfigError(f"OSC {address}: no command; send /improv/<band>/<command> [value]")
    text = f"{parts[0]}: {' '.join(parts[1:])}" if len(parts) > 1 else parts[0]
    try:
        base = parse_command(text)
    except ConfigError as e:
        raise ConfigError(f"OSC {address}: {e}") from None
    # OSC floats are 32-bit: 0.7 arrives as 0.699999988; 6 digits is all they carry
    args = [int(a) if isinstance(a, bool) else float(f"{a:.6g}") if isinstance(a, float) else a for a in args]
    if not args:
        return replace(base, time=float(now))
    words = parts[1:] if parts[0].lower() in (*TARGETS, "player") else parts
    in_address = len(words) > 1  # the value is already in the address
    spec = COMMANDS[base.command]
    numeric = all(isinstance(a, (int, float)) for a in args)
    try:
        if spec.kind == "amount" and len(args) == 1 and numeric and not in_address:
            return Command(float(now), base.target, base.command, check_command("all", base.command, args[0])[2])
        if numeric and len(args) == 1:
            return None if args[0] == 0 else replace(base, time=float(now))
        if spec.kind in ("choice", "words") and not in_address and all(isinstance(a, str) for a in args):
            return parse_command(f"{text} {' '.join(args)}", time=now)
    except ConfigError as e:
        raise ConfigError(f"OSC {address}: {e}") from None
    shown = " ".join(repr(a) for a in args)
    wanted = {"none": "no value (or one button state, 1 or 0)", "amount": "one number 0 to 1",
              "choice": f"one of {', '.join(spec.choices)}", "words": f"words from {', '.join(spec.choices)}"}
    if in_address:
        wanted = {k: "nothing more: the value is in the address (or one button state, 1 or 0)" for k in wanted}
    raise ConfigError(f"OSC {address} {shown}: {base.command!r} takes {wanted[spec.kind]}")


def parse_osc_address(text: str) -> tuple[str, int]:
    """``--osc [HOST:]PORT`` -> (host, port); all interfaces when no host is given."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise ConfigError(f"--osc {text!r}: give a UDP port number (e.g. 9000) or HOST:PORT")
    return (host.strip("[]") or "0.0.0.0", number)


class OscInput:
    """A UDP OSC server in a thread of its own; ``emit(Command)`` for each good message."""

    def __init__(self, host: str, port: int, emit: Callable[[Command], None], now: Callable[[], float],
                 log: Callable[[str], None]):
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        self._emit = emit
        self._now = now
        self._log = log
        self._last_complaint: dict[str, float] = {}
        self.received = 0
        self.rejected = 0
        dispatcher = Dispatcher(strict_timing=False)  # a bundle's time tag never holds the server up
        dispatcher.set_default_handler(self._on_message)
        try:
            self._server = BlockingOSCUDPServer((host, port), dispatcher)
        except OSError as e:
            raise ConfigError(f"--osc {host}:{port}: cannot listen on this UDP port ({e.strerror}); "
                              f"choose another port") from None
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="improv-osc", daemon=True)
        self._thread.start()

    def _on_message(self, address: str, *args: Any) -> None:
        self.received += 1
        try:
            cmd = osc_command(address, args, self._now())
        except ConfigError as e:
            self.rejected += 1
            t = time.monotonic()
            if t - self._last_complaint.get(address, -1e9) >= 1.0:
                self._last_complaint[address] = t
                self._log(str(e))
            return
        if cmd is not None:
            self._emit(cmd)

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()


__all__ = ["OscInput", "osc_command", "parse_osc_address"]
