"""``improv serve``'s OSC server (UDP, python-osc): the session lifecycle, notes in, the band out.

Inbound (to ``--osc``, default 127.0.0.1:9100)::

    /improv/session/init                          -> /improv/capabilities JSON (bands, controls,
                                                     commands, parameters and their ranges)
    /improv/track/create TRACK_ID INSTRUMENT TYPE  TYPE melodic|drum; INSTRUMENT a GM program (0-127
                                                     or name). A band's name as TRACK_ID sets its sound.
    /improv/session/start    /improv/session/end
    /improv/note TRACK_ID PITCH VELOCITY ONSET DURATION
                                                    seconds; ONSET session time (-1: now); DURATION 0:
                                                    until the track's next note (VELOCITY 0 ends it).
                                                    The band hears the melodic tracks as the player (one
                                                    line: a note ends the one before); drum tracks'
                                                    onsets give it the pulse (the beat tracker)
    /improv/bar/end TRACK_ID BAR_INDEX TS_NUM TS_DEN  a metered client's bar ended now
    /improv/param/set NAME VALUE                   -> /improv/param NAME VALUE (as applied)
    /improv/state                                  -> /improv/state JSON
    /improv/<band>/<command> [value]               the band's commands (improv.control.osc)

Outbound (to every client that sent session/init or session/start, or only ``--reply``)::

    /improv/generated/note BAND PITCH VELOCITY ONSET DURATION
        when a band note starts (DURATION 0: not known yet) and when it ends (VELOCITY 0,
        ONSET its start, DURATION its length); session seconds
    /improv/features JSON    each bar (free mode: every 2 s): density, register, consonance, key/chord
    /improv/state JSON       what each band is doing and why, the parameters (each bar, and on changes)
    /improv/error TEXT       a bad message (to its sender): one reply, one log line; the server goes on

Every handler only checks and hands over (a queue, an event): the listener never waits
on the model. Replies leave from the server's own port.
"""

from __future__ import annotations

import json
import math
import sys
import threading
from collections.abc import Callable
from typing import Any

from ..control.osc import PREFIX, RateLimitedLog, exposed, osc_command
from ..errors import ConfigError

DEFAULT_PORT = 9100


class OscServer:
    """The OSC front end of a :class:`~improv.serve.service.ServeService`."""

    def __init__(self, service, host: str, port: int, log: Callable[[str], None],
                 reply: tuple[str, int] | None = None):
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        self.service = service
        self.reply_to = reply
        self._complain = RateLimitedLog(log)
        self._send_lock = threading.Lock()
        self.subscribers: list[tuple[str, int]] = []
        self.received = 0
        self.errors = 0
        self.sent = 0
        self._routes: dict[str, Callable[[tuple, tuple], None]] = {
            "session/init": self._init, "session/start": self._start, "session/end": self._end,
            "track/create": self._track, "note": self._note, "bar/end": self._bar_end,
            "param/set": self._param, "state": self._state,
        }
        owner = self

        class Checked(Dispatcher):
            def call_handlers_for_packet(self, data: bytes, client_address):
                """python-osc drops a packet it cannot parse without a word: here it gets its reply."""
                from pythonosc.osc_packet import OscPacket, ParseError

                try:
                    OscPacket(data)
                except ParseError as e:
                    owner._fail(client_address, f"not a readable OSC packet ({str(e)[:60]}); ignored")
                    return []
                return super().call_handlers_for_packet(data, client_address)

        dispatcher = Checked(strict_timing=False)  # a bundle's time tag never holds the server up
        dispatcher.set_default_handler(self._on_message, needs_reply_address=True)

        class Server(BlockingOSCUDPServer):
            def verify_request(self, request, client_address) -> bool:
                return True  # (python-osc drops what does not look like OSC unsaid: it gets its reply)

            def handle_error(self, request, client_address) -> None:
                """A datagram the OSC parser choked on: one reply, one counted line, no traceback."""
                error = sys.exc_info()[1]
                what = f"{type(error).__name__}: {str(error)[:60]}" if error is not None else "unreadable"
                owner._fail(client_address, f"not a readable OSC packet ({what}); ignored")

        try:
            self._server = Server((host, port), dispatcher)
        except OSError as e:
            raise ConfigError(f"--osc {host}:{port}: cannot listen on this UDP port ({e.strerror}); "
                              "choose another port") from None
        self.host, self.port = self._server.server_address[:2]
        if exposed(self.host):
            log(f"OSC listens on {self.host}:{self.port}, open to the network: anyone who can reach this port "
                "can start sessions and command the band (give --osc PORT for this machine only)")
        service.listeners.append(self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="improv-serve-osc", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ in

    def _on_message(self, sender, address: str, *args: Any) -> None:
        self.received += 1
        parts = [p for p in address.strip().split("/") if p]
        route = "/".join(parts[1:]).lower() if parts and parts[0].lower() == PREFIX else None
        handler = self._routes.get(route) if route is not None else None
        try:
            if handler is not None:
                handler(sender, args)
                return
            cmd = osc_command(address, args, self.service.now())  # /improv/<band>/<command> [value]
            if cmd is not None:
                self.service.command(cmd)
        except ConfigError as e:
            text = str(e) if str(e).startswith("OSC ") else f"OSC {address}: {e}"
            if handler is None and "unknown command" in text:
                text += f"; or one of {', '.join('/improv/' + r for r in self._routes)}"
            self._fail(sender, text)

    def _init(self, sender, args) -> None:
        self._subscribe(sender)
        self._send(self._reply(sender), "/improv/capabilities", json.dumps(self.service.capabilities()))

    def _start(self, sender, args) -> None:
        self._subscribe(sender)
        self.service.start()

    def _end(self, sender, args) -> None:
        self.service.end()

    def _track(self, sender, args) -> None:
        _arity(args, 3, "TRACK_ID INSTRUMENT melodic|drum")
        track = self.service.create_track(_text(args[0]), args[1], _text(args[2]))
        self._send(self._reply(sender), "/improv/track", track.track_id, track.instrument, track.kind,
                   track.band or "")

    def _note(self, sender, args) -> None:
        _arity(args, 5, "TRACK_ID PITCH VELOCITY ONSET DURATION")
        self.service.note(_text(args[0]), _whole(args[1], "pitch"), _whole(args[2], "velocity"),
                          _number(args[3], "onset"), _number(args[4], "duration"))

    def _bar_end(self, sender, args) -> None:
        _arity(args, 4, "TRACK_ID BAR_INDEX TS_NUM TS_DEN")
        self.service.bar_end(_text(args[0]), _whole(args[1], "bar index"), _whole(args[2], "ts_num"),
                             _whole(args[3], "ts_den"))

    def _param(self, sender, args) -> None:
        _arity(args, 2, "NAME VALUE")
        if not isinstance(args[0], str):
            raise ConfigError(f"the parameter's name comes first, not {args[0]!r}; send NAME VALUE")
        done = self.service.set_param(args[0], args[1])
        name = f"{done['band']}.{done['name']}" if done["band"] else done["name"]
        self._send(self._reply(sender), "/improv/param", name, done["value"], done["applied"])

    def _state(self, sender, args) -> None:
        self._send(self._reply(sender), "/improv/state", json.dumps(self.service.state()))

    def _subscribe(self, sender) -> None:
        if self.reply_to is None and isinstance(sender, tuple) and sender not in self.subscribers:
            self.subscribers.append(sender)

    def _fail(self, sender, text: str) -> None:
        self.errors += 1
        host = sender[0] if isinstance(sender, tuple) and sender else "?"
        self._complain(f"OSC from {host}: {text}")
        if isinstance(sender, tuple):
            self._send(self._reply(sender), "/improv/error", text)

    # ------------------------------------------------------------ out (the service's listener)

    def note(self, band: str, pitch: int, velocity: int, onset: float, duration: float) -> None:
        self._broadcast("/improv/generated/note", band, int(pitch), int(velocity), float(onset), float(duration))

    def features(self, data: dict) -> None:
        self._broadcast("/improv/features", json.dumps(data))

    def state(self, data: dict) -> None:
        self._broadcast("/improv/state", json.dumps(data))

    def error(self, text: str) -> None:
        self._broadcast("/improv/error", text)

    def _reply(self, sender) -> tuple[str, int]:
        return self.reply_to if self.reply_to is not None else sender

    def _broadcast(self, address: str, *args) -> None:
        for target in ([self.reply_to] if self.reply_to is not None else list(self.subscribers)):
            self._send(target, address, *args)

    def _send(self, target: tuple[str, int], address: str, *args) -> None:
        from pythonosc.osc_message_builder import OscMessageBuilder

        builder = OscMessageBuilder(address)
        for a in args:
            builder.add_arg(a)
        data = builder.build().dgram
        try:
            with self._send_lock:
                self._server.socket.sendto(data, target)
            self.sent += 1
        except OSError as e:  # a client gone (ICMP unreachable), a full buffer: said, never raised
            self._complain(f"OSC to {target[0]}:{target[1]}: cannot send ({e.strerror or e})")

    def close(self) -> None:
        self._complain.flush("OSC lines")
        if self in self.service.listeners:
            self.service.listeners.remove(self)
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()


def _arity(args: tuple, n: int, what: str) -> None:
    if len(args) != n:
        raise ConfigError(f"takes {n} arguments, {what}; got {len(args)}")


def _text(value) -> str:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{value!r} is not a track id; give a name or a whole number")


def _whole(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value):
        raise ConfigError(f"{what} {value!r} is not a whole number")
    return int(value)


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} {value!r} is not a number (seconds)")
    return float(value)


def parse_reply(text: str) -> tuple[str, int]:
    """``--reply HOST:PORT`` -> (host, port)."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ConfigError(f"--reply {text!r}: give HOST:PORT, e.g. 127.0.0.1:9101")
    return host.strip("[]"), int(port)


__all__ = ["DEFAULT_PORT", "OscServer", "parse_reply"]
