"""A real OSC client on loopback for the tests and benchmarks of ``improv serve``.

It sends from a UDP socket of its own (the server answers to that address) and keeps
every message that comes back, stamped with ``time.perf_counter()`` on arrival.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any, Callable

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder


class OscClient:
    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.address = self.sock.getsockname()
        self.to = (host, port)
        self.received: list[tuple[float, str, list[Any]]] = []   # (arrival, address, arguments)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="osc-test-client", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65536)
            except (socket.timeout, OSError):
                continue
            t = time.perf_counter()
            msg = OscMessage(data)
            with self._lock:
                self.received.append((t, msg.address, list(msg.params)))

    def send(self, address: str, *args: Any) -> float:
        """Send one message; returns when it left (``perf_counter``)."""
        builder = OscMessageBuilder(address)
        for a in args:
            builder.add_arg(a)
        data = builder.build().dgram
        t = time.perf_counter()
        self.sock.sendto(data, self.to)
        return t

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.to)

    def messages(self, address: str | None = None, since: int = 0) -> list[tuple[float, str, list[Any]]]:
        with self._lock:
            return [m for m in self.received[since:] if address is None or m[1] == address]

    def mark(self) -> int:
        """The index of the next message to arrive (for ``since``)."""
        with self._lock:
            return len(self.received)

    def wait_for(self, address: str, pred: Callable[[list[Any]], bool] = lambda a: True, timeout: float = 10.0,
                 since: int = 0) -> list[Any]:
        """The arguments of the first ``address`` message since ``since`` for which ``pred`` holds."""
        end = time.monotonic() + timeout
        while True:
            for _, _, args in self.messages(address, since):
                if pred(args):
                    return args
            if time.monotonic() > end:
                seen = [m[1] for m in self.messages(since=since)][-8:]
                raise AssertionError(f"no {address} within {timeout:g} s (last messages: {seen})")
            time.sleep(0.005)

    def wait_json(self, address: str, pred: Callable[[dict], bool] = lambda d: True, timeout: float = 10.0,
                  since: int = 0) -> dict:
        args = self.wait_for(address, lambda a: bool(a) and pred(json.loads(a[0])), timeout, since)
        return json.loads(args[0])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.sock.close()


__all__ = ["OscClient"]
