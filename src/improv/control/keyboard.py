"""The computer keyboard while ``improv listen`` runs: one key, one command.

:class:`KeyLogic` maps keys to commands (pure; the mapping file's ``[keys]``): keys
bound to ``select BAND`` choose the band that commands written without a band go to,
``help`` lists the keys. :class:`KeyboardInput` reads single keys from the terminal in
cbreak mode (no Enter needed, no echo; Ctrl-C still stops the session) in a thread of
its own, and puts the terminal back as it was on :meth:`KeyboardInput.close` and, as a
last resort, at interpreter exit. It is not started when stdin is not a terminal or
improv runs in the background (:func:`keyboard_unusable` says why).
"""

from __future__ import annotations

import atexit
import os
import select
import sys
import termios
import threading
import tty
from collections.abc import Callable
from dataclasses import replace

from ..band.commands import COMMANDS
from ..events import Command
from .mapping import Mapping, key_label


class KeyLogic:
    """Keys -> commands for one mapping; ``target`` is the band chosen with ``select``."""

    def __init__(self, mapping: Mapping):
        self.mapping = mapping
        self.target = "all"

    def key(self, ch: str, now: float) -> tuple[list[Command], str | None]:
        """The commands for key ``ch`` at ``now``, and a line to show (or None)."""
        b = self.mapping.keys.get(ch)
        if b is None:
            return [], (f"key {key_label(ch)!r} does nothing; ? lists the keys" if ch.isprintable() else None)
        if b.select is not None:
            self.target = b.select
            return [], f"keys: commands now go to {'all bands' if b.select == 'all' else b.select}"
        if b.help:
            return [], f"keys (commands go to {self.target}): {self.mapping.key_help()}"
        assert b.command is not None
        cmd = b.command
        if not b.targeted and not COMMANDS[cmd.command].global_only:
            cmd = replace(cmd, target=self.target)
        return [replace(cmd, time=float(now))], None


def keyboard_unusable(fd: int | None) -> str | None:
    """Why keys cannot be read from ``fd`` (None: they can)."""
    if fd is None or not os.isatty(fd):
        return "stdin is not a terminal"
    try:
        foreground = os.tcgetpgrp(fd)
    except OSError:  # not our controlling terminal (a pseudo-terminal in a test): no job control
        foreground = None
    if foreground is not None and foreground != os.getpgrp():
        return "improv runs in the background"
    return None


def stdin_fd() -> int | None:
    try:
        return sys.stdin.fileno() if sys.stdin is not None else None
    except (AttributeError, ValueError, OSError):  # replaced or closed stdin (pytest, a pipe closed)
        return None


class KeyboardInput:
    """Single keys from the terminal ``fd`` -> ``emit(Command)``; ``log(str)`` for news."""

    def __init__(self, mapping: Mapping, emit: Callable[[Command], None], now: Callable[[], float],
                 log: Callable[[str], None], fd: int):
        self.logic = KeyLogic(mapping)
        self._emit = emit
        self._now = now
        self._log = log
        self._fd = fd
        self._saved = termios.tcgetattr(fd)
        self._wake_r, self._wake_w = os.pipe()
        self._restored = False
        atexit.register(self._restore)
        tty.setcbreak(fd, termios.TCSANOW)
        self._thread = threading.Thread(target=self._run, name="improv-keys", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            ready, _, _ = select.select([self._fd, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                data = os.read(self._fd, 64)
            except OSError:  # the terminal went away
                return
            if not data:
                return
            if data.startswith(b"\x1b"):
                continue  # Esc, arrows and function keys: not mapped
            now = self._now()
            for ch in data.decode("utf-8", errors="ignore"):
                ch = "\n" if ch == "\r" else ch  # Enter, whether or not the terminal maps CR to NL
                cmds, line = self.logic.key(ch, now)
                if line:
                    self._log(line)
                for cmd in cmds:
                    self._emit(cmd)

    def _restore(self) -> None:
        if self._restored:
            return
        self._restored = True
        try:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        except termios.error:  # the terminal is gone: nothing to restore
            pass

    def close(self) -> None:
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        self._restore()
        atexit.unregister(self._restore)
        os.close(self._wake_r)
        os.close(self._wake_w)


__all__ = ["KeyLogic", "KeyboardInput", "keyboard_unusable", "stdin_fd"]
