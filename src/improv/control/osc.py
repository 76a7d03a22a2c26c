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

The server listens on 127.0.0.1 (this machine only) unless ``--osc HOST:PORT`` names
another address. Binding 0.0.0.0 or a network address lets anyone who can reach that
port command the band (OSC has no authentication): do it only on a network you trust
(a stage's own Wi-Fi, a phone on a private access point); a line says so when it starts.

A bad address or value, and a datagram that is not OSC at all (malformed, truncated,
random bytes), is counted and logged in one line; the log says at most one line a
second whatever the sender (with how many were left unsaid), and the server carries on.
"""

from __future__ import annotations

import sys
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


LOOPBACK = "127.0.0.1"


def parse_osc_address(text: str) -> tuple[str, int]:
    """``--osc [HOST:]PORT`` -> (host, port); this machine only (127.0.0.1) when no host is given."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise ConfigError(f"--osc {text!r}: give a UDP port number (e.g. 9000) or HOST:PORT")
    return (host.strip("[]") or LOOPBACK, number)


def exposed(host: str) -> bool:
    """Whether a server bound to ``host`` can be reached from other machines."""
    return not (host == "localhost" or host.startswith("127.") or host == "::1")


class RateLimitedLog:
    """Hands ``log`` the first ``burst`` lines at once, then at most one each ``interval``
    seconds (a token bucket); the lines in between are counted and the next line said
    tells how many were left out. Thread-safe."""

    def __init__(self, log: Callable[[str], None], interval: float = 1.0, burst: int = 5,
                 clock: Callable[[], float] = time.monotonic):
        self._log = log
        self.interval = interval
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._held = 0
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            t = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (t - self._last) / self.interval)
            self._last = t
            if self._tokens < 1.0:
                self._held += 1
                return
            self._tokens -= 1.0
            held, self._held = self._held, 0
        self._log(line + (f" (and {held} more not shown)" if held else ""))

    def flush(self, what: str) -> None:
        """Say how many lines were left out since the last one said, if any."""
        with self._lock:
            held, self._held = self._held, 0
        if held:
            self._log(f"{held} more {what} not shown")


class OscInput:
    """A UDP OSC server in a thread of its own; ``emit(Command)`` for each good message."""

    def __init__(self, host: str, port: int, emit: Callable[[Command], None], now: Callable[[], float],
                 log: Callable[[str], None]):
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        self._emit = emit
        self._now = now
        self._complain = RateLimitedLog(log)  # one line a second, whatever the number of senders and addresses
        self.received = 0
        self.rejected = 0
        self.malformed = 0
        dispatcher = Dispatcher(strict_timing=False)  # a bundle's time tag never holds the server up
        dispatcher.set_default_handler(self._on_message)
        owner = self

        class Server(BlockingOSCUDPServer):
            def handle_error(self, request, client_address) -> None:
                """A datagram the OSC parser or a handler choked on: one counted line, no traceback."""
                owner._malformed(client_address, sys.exc_info()[1])

        try:
            self._server = Server((host, port), dispatcher)
        except OSError as e:
            raise ConfigError(f"--osc {host}:{port}: cannot listen on this UDP port ({e.strerror}); "
                              f"choose another port") from None
        self.host, self.port = self._server.server_address[:2]
        if exposed(self.host):
            log(f"OSC listens on {self.host}:{self.port}, open to the network: anyone who can reach this port "
                f"can command the band (give --osc PORT for this machine only)")
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="improv-osc", daemon=True)
        self._thread.start()

    def _on_message(self, address: str, *args: Any) -> None:
        self.received += 1
        try:
            cmd = osc_command(address, args, self._now())
        except ConfigError as e:
            self.rejected += 1
            self._complain(str(e))
            return
        if cmd is not None:
            self._emit(cmd)

    def _malformed(self, sender, error: BaseException | None) -> None:
        self.malformed += 1
        what = f"{type(error).__name__}: {str(error)[:60]}" if error is not None else "unreadable"
        host = sender[0] if isinstance(sender, tuple) and sender else "?"
        self._complain(f"OSC from {host}: not a readable OSC packet ({what}); ignored")

    def close(self) -> None:
        self._complain.flush("bad OSC messages")
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()


__all__ = ["OscInput", "RateLimitedLog", "exposed", "osc_command", "parse_osc_address"]
