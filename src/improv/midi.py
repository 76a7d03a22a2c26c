"""MIDI out (and in) through python-rtmidi, on ALSA or JACK, and MIDI files.

One port interface: :class:`MidiOut` checks and locks once in ``send()``; ``panic()``
and ``close()`` always send all-notes-off. The API is chosen automatically — JACK
when a JACK server is running, else ALSA — or forced with ``api="jack"|"alsa"``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import mido
import rtmidi

from .errors import MidiError
from .output import Port

APIS = {"jack": rtmidi.API_UNIX_JACK, "alsa": rtmidi.API_LINUX_ALSA}
DEFAULT_PORT_NAME = "improv"
# enough JACK process cycles to pass on what waits in rtmidi's ring buffer (periods up to 2048 frames at 44.1 kHz)
JACK_DRAIN_SECONDS = 0.15


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def jack_running() -> bool:
    """Whether a JACK server answers, without starting one."""
    os.environ.setdefault("JACK_NO_START_SERVER", "1")
    if rtmidi.API_UNIX_JACK not in rtmidi.get_compiled_api():
        return False
    try:
        probe = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="improv-probe")
    except rtmidi.RtMidiError:
        return False
    probe.delete()
    return True


def jack_server_pid(name: str | None = None) -> int | None:
    """The pid of the local ``jackd`` serving ``name`` (default: $JACK_DEFAULT_SERVER or
    "default"); None if none is found among this machine's processes."""
    name = name or os.environ.get("JACK_DEFAULT_SERVER") or "default"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if not args or os.path.basename(args[0]) not in ("jackd", "jackdmp"):
            continue
        given = next((args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-n", "--name")), None)
        given = given or next((a.split("=", 1)[1] for a in args if a.startswith("--name=")), "default")
        if given == name:
            return int(entry)
    return None


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed and not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def choose_api(api: str | None) -> int:
    """The rtmidi API constant for ``--midi-api`` (None: JACK if running, else ALSA)."""
    if api is None or api == "auto":
        return rtmidi.API_UNIX_JACK if jack_running() else rtmidi.API_LINUX_ALSA
    try:
        return APIS[api]
    except KeyError:
        raise MidiError(f"--midi-api {api!r}: unknown; choose auto, {', '.join(APIS)}") from None


def api_name(api: int) -> str:
    return {v: k for k, v in APIS.items()}.get(api, rtmidi.get_api_name(api))


def _open(kind: type, api: int, client: str):
    os.environ.setdefault("JACK_NO_START_SERVER", "1")
    try:
        return kind(api, name=client)
    except rtmidi.RtMidiError as e:
        if api == rtmidi.API_UNIX_JACK:
            hint = "no JACK server is running; start one (jackd -d dummy, or your JACK setup) or use --midi-api alsa"
        else:
            hint = ("the ALSA sequencer is unavailable (no snd-seq module or no sound support); "
                    "load it (sudo modprobe snd-seq) or start a JACK server and use --midi-api jack")
        raise MidiError(f"no MIDI system: {hint} [{_first_line(e)}]") from None


def list_ports(api: str | None = None) -> dict[str, dict[str, list[str]]]:
    """Output and input port names per available API."""
    out: dict[str, dict[str, list[str]]] = {}
    names = [api] if api not in (None, "auto") else list(APIS)
    for name in names:
        a = choose_api(name)
        try:
            mo, mi = _open(rtmidi.MidiOut, a, "improv-list"), _open(rtmidi.MidiIn, a, "improv-list")
        except MidiError:
            continue
        out[name] = {"outputs": mo.get_ports(), "inputs": mi.get_ports()}
        mo.delete()
        mi.delete()
    return out


def _match(ports: list[str], wanted: str, direction: str) -> int:
    matches = [i for i, p in enumerate(ports) if wanted.lower() in p.lower()]
    if not matches:
        listing = "; ".join(ports) if ports else "none"
        raise MidiError(f"--midi-{direction} {wanted!r}: no MIDI {direction}put port matches "
                        f"(ports: {listing}); run `improv ports`")
    return matches[0]


@dataclass
class PortInfo:
    api: str
    name: str
    virtual: bool


class MidiOut(Port):
    """A MIDI output through rtmidi: an existing port matched by substring, or a virtual
    port. ``send``/``panic`` come from :class:`~improv.output.Port`; a message that cannot
    be sent (the port vanished) is counted in ``errors`` and the session goes on.

    On JACK a thread watches the server's process: when it ends (stopped or killed),
    ``gone`` says why, ``on_gone(line)`` is called once (from that thread), and messages
    are dropped from then on (counted in ``errors``) without touching the dead client.
    """

    def __init__(self, port: str | None = None, api: str | None = None, client: str = "improv",
                 virtual_name: str = DEFAULT_PORT_NAME):
        super().__init__()
        a = choose_api(api)
        self._out = _open(rtmidi.MidiOut, a, client)
        if port:
            idx = _match(self._out.get_ports(), port, "out")
            self._out.open_port(idx)
            self.info = PortInfo(api_name(a), self._out.get_ports()[idx], False)
        else:
            self._out.open_virtual_port(virtual_name)
            self.info = PortInfo(api_name(a), f"{client}:{virtual_name}", True)
        self.gone: str | None = None
        self.on_gone: Callable[[str], None] | None = None
        self._watch = self._watch_server(client) if self.info.api == "jack" else None

    def _watch_server(self, client: str) -> threading.Thread | None:
        """A thread that checks, 4 times a second, that the JACK server's process is alive.

        Not a JACK client: an extra client in the process made the dummy server stall now
        and then (a PortAudio input in the same process got ~5 blocks a second). Servers
        not found as a local process (another user's, PipeWire's) are not watched.
        """
        pid = jack_server_pid()
        if pid is None:
            return None

        def watch() -> None:
            while not self._closed:
                if not _alive(pid):
                    self._server_gone(f"jackd (pid {pid}) ended")
                    return
                time.sleep(0.25)

        thread = threading.Thread(target=watch, name=f"{client}-jack-watch", daemon=True)
        thread.start()
        return thread

    def _server_gone(self, reason: str) -> None:
        self.gone = str(reason) or "the JACK server stopped"
        line = (f"MIDI out {self.info.name!r}: the JACK server stopped ({self.gone}); no more MIDI goes out, "
                f"the session goes on (synth, recording)")
        if self.on_gone is not None:
            self.on_gone(line)

    def panic(self) -> None:
        if self.gone is not None:  # the server is gone: nothing to turn off, nothing to count
            with self._lock:
                self._sounding.clear()
            return
        super().panic()

    def _write(self, data) -> None:
        if self.gone is not None:
            self.errors += 1  # the server is gone: never touch the dead client
            return
        try:
            self._out.send_message(data)
            self.sent += 1
        except rtmidi.RtMidiError:
            self.errors += 1  # a vanished port: counted and shown, the session goes on

    def present(self) -> bool:
        """Whether the port it was opened on still exists (a virtual port always does)."""
        if self.info.virtual:
            return True
        with self._lock:
            if self._closed or self.gone is not None:
                return False
            try:
                return self.info.name in self._out.get_ports()
            except rtmidi.RtMidiError:
                return False

    def reopen(self) -> bool:
        """Connect again to the port of the same name (after it came back); False if it is not there."""
        if self.info.virtual:
            return True
        with self._lock:
            if self._closed or self.gone is not None:
                return False
            try:
                ports = self._out.get_ports()
                if self.info.name not in ports:
                    return False
                self._out.close_port()
                self._out.open_port(ports.index(self.info.name))
            except rtmidi.RtMidiError:
                self.errors += 1
                return False
        return True

    def _close(self) -> None:
        """On JACK, messages wait in a ring buffer for the next process cycle, and closing
        the port drops them: the last note-offs would never reach the gear, so it waits a
        few periods first (not when the server is gone)."""
        if self.info.api == "jack" and self.gone is None:
            time.sleep(JACK_DRAIN_SECONDS)
        self._out.close_port()
        self._out.delete()


class MidiIn:
    """A MIDI input (foot controller, clock): an existing port by substring, or a virtual one.

    ``callback(message: mido.Message, delta_seconds)`` runs in rtmidi's thread.
    """

    def __init__(self, callback, port: str | None = None, api: str | None = None,
                 client: str = "improv-in", virtual_name: str = "control"):
        a = choose_api(api)
        self._in = _open(rtmidi.MidiIn, a, client)
        self._in.ignore_types(sysex=True, timing=False, active_sense=True)
        if port:
            idx = _match(self._in.get_ports(), port, "in")
            self._in.open_port(idx)
            self.info = PortInfo(api_name(a), self._in.get_ports()[idx], False)
        else:
            self._in.open_virtual_port(virtual_name)
            self.info = PortInfo(api_name(a), f"{client}:{virtual_name}", True)
        self._callback = callback
        self._in.set_callback(self._on_message)

    def _on_message(self, event, _data=None) -> None:
        data, delta = event
        try:
            msg = mido.Message.from_bytes(data)
        except ValueError:
            return  # a malformed message from the device: ignore it
        self._callback(msg, delta)

    def close(self) -> None:
        self._in.cancel_callback()
        self._in.close_port()
        self._in.delete()
