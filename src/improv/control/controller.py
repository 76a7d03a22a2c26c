"""The foot controller on a MIDI input port (rtmidi, JACK or ALSA), kept connected.

:class:`ControllerPort` connects improv's MIDI input to an existing port matched by
substring and reconnects it on request. :class:`ControllerInput` turns what arrives
into commands with a :class:`~improv.control.switches.SwitchLogic`; one thread of its
own fires long presses on time and looks at the port list about once a second: when
the controller disappears the session goes on and says so, and when a port matching
the name comes back it is connected again.

The rtmidi callback (on JACK it runs in JACK's process thread) only decodes the
message, updates the switch state under a short lock and hands the commands over;
it never waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import mido
import rtmidi

from ..errors import MidiError
from ..midi import _open, api_name, choose_api
from ..events import Command
from .mapping import Mapping
from .switches import SwitchLogic

RawCallback = Callable[[list[int], float], None]


def match_port(ports: list[str], wanted: str) -> int | None:
    """Index of the first port whose name contains ``wanted`` (any case), or None."""
    w = wanted.lower()
    return next((i for i, p in enumerate(ports) if w in p.lower()), None)


def list_input_ports(api: str | None = None) -> list[str]:
    """The MIDI input ports there are now (on JACK if a server runs, else ALSA)."""
    probe = _open(rtmidi.MidiIn, choose_api(api), "improv-list")
    try:
        return probe.get_ports()
    finally:
        probe.delete()


class ControllerPort:
    """improv's MIDI input, connected to the existing port whose name contains ``wanted``.

    ``on_raw(bytes, seconds)`` runs in rtmidi's thread with each message and
    ``time.monotonic()`` at its arrival. ``option`` names the command-line option in
    the error raised when no port matches.
    """

    def __init__(self, wanted: str, on_raw: RawCallback, api: str | None = None,
                 client: str = "improv-control", option: str = "--controller"):
        if not wanted or not wanted.strip():
            raise MidiError(f"{option}: give part of the controller's port name (see `improv ports`)")
        self.wanted = wanted
        self._on_raw = on_raw
        self._api = choose_api(api)
        self.api = api_name(self._api)
        self._in = _open(rtmidi.MidiIn, self._api, client)
        self._in.ignore_types(sysex=True, timing=True, active_sense=True)
        ports = self._in.get_ports()
        idx = match_port(ports, wanted)
        if idx is None:
            listing = "; ".join(ports) if ports else "none"
            self._in.delete()
            raise MidiError(f"{option} {wanted!r}: no MIDI input port matches (ports on {self.api}: {listing}); "
                            f"connect the controller, or give part of one of these names")
        self.name = ports[idx]
        self._connect(idx)

    def _connect(self, idx: int) -> None:
        self._in.open_port(idx)
        self._in.set_callback(self._on_message)
        self.connected = True

    def _on_message(self, event, _data=None) -> None:
        self._on_raw(event[0], time.monotonic())

    def ports(self) -> list[str]:
        return self._in.get_ports()

    def present(self) -> bool:
        """Whether the connected port is still there."""
        return self.name in self.ports()

    def disconnect(self) -> None:
        if self.connected:
            self._in.cancel_callback()
            self._in.close_port()
            self.connected = False

    def reconnect(self) -> bool:
        """Connect again if a port matching the name is there; True if connected."""
        if self.connected:
            return True
        idx = match_port(self.ports(), self.wanted)
        if idx is None:
            return False
        self.name = self.ports()[idx]
        try:
            self._connect(idx)
        except rtmidi.RtMidiError:  # it went away again between the listing and the connection
            return False
        return True

    def close(self) -> None:
        self.disconnect()
        self._in.delete()


class ControllerInput:
    """Commands from a foot controller: ``emit(Command)`` for each, ``log(str)`` for news.

    ``now()`` gives session seconds (the commands' times). Call :meth:`close` to stop.
    """

    def __init__(self, wanted: str, mapping: Mapping, emit: Callable[[Command], None], now: Callable[[], float],
                 log: Callable[[str], None], api: str | None = None, check_every: float = 1.0,
                 client: str = "improv-control"):
        self.logic = SwitchLogic(mapping)
        self._emit = emit
        self._now = now
        self._log = log
        self._check_every = check_every
        self._cond = threading.Condition()
        self._stop = False
        self.received = 0
        self.lost = 0
        self.port = ControllerPort(wanted, self._on_raw, api, client=client)
        self._thread = threading.Thread(target=self._run, name="improv-controller", daemon=True)
        self._thread.start()

    @property
    def name(self) -> str:
        return self.port.name

    def _on_raw(self, data: list[int], _arrival: float) -> None:
        try:
            msg = mido.Message.from_bytes(data)
        except ValueError:
            return  # a malformed or partial message from the device: nothing to map
        now = self._now()
        with self._cond:
            self.received += 1
            cmds = self.logic.message(msg, now)
            if self.logic.next_deadline() is not None:
                self._cond.notify()
        for cmd in cmds:
            self._emit(cmd)

    def _run(self) -> None:
        next_check = time.monotonic() + self._check_every
        while True:
            with self._cond:
                if self._stop:
                    return
                wait = next_check - time.monotonic()
                deadline = self.logic.next_deadline()
                if deadline is not None:
                    wait = min(wait, deadline - self._now())
                if wait > 0:
                    self._cond.wait(wait)
                if self._stop:
                    return
                cmds = self.logic.poll(self._now())
            for cmd in cmds:
                self._emit(cmd)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self._check_every
                self._check_port()

    def _check_port(self) -> None:
        if self.port.connected:
            if self.port.present():
                return
            self.port.disconnect()  # not under the lock: rtmidi's thread may be waiting for it
            with self._cond:
                self.logic.reset()
            self.lost += 1
            self._log(f"controller {self.port.name} disappeared; playing on without it, and will pick it up "
                      f"again when a port matching {self.port.wanted!r} comes back")
        elif self.port.reconnect():
            self._log(f"controller {self.port.name} is back; its switches work again")

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=5)
        self.port.close()


__all__ = ["ControllerPort", "ControllerInput", "match_port", "list_input_ports"]
