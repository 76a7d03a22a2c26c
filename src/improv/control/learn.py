"""MIDI learn: ask for each command, record the switch pressed, write the mapping file.

For each command in turn, :func:`learn_switch` watches the controller for the next
press and tells what kind of switch it is:

* Program Change -> ``[program] N = command``;
* a note -> ``[note]``; held at least the long-press time -> its ``long`` command;
* a CC whose value 0 follows within ``window`` seconds -> a momentary switch (``press``,
  or ``long`` when held that long); a CC with no release -> a toggle: a non-zero value
  learns its ``on`` command, 0 its ``off`` command (press the switch again for the next
  command to learn the other state);
* a CC that sends a stream of different values is an expression pedal: it is named
  and ignored, and the prompt waits for a switch.

Several messages sent by one press (within 50 ms) count as one: the first is learned.
The mapping file is rewritten (atomically) after every switch learned, merged with
what it held: other switches and keys stay.
"""

from __future__ import annotations

import os
import select
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import mido

from ..band.commands import parse_command
from ..cli import finite  # argparse type: nan and inf refused
from ..errors import ConfigError, MidiError
from ..events import Command
from .mapping import (BUILTIN, DEFAULT_MAPPING_TOML, Mapping, Switch, default_mapping_path, load_mapping,
                      parse_mapping, short_text, switch_label, write_mapping)
from .switches import switch_event

SAME_PRESS_S = 0.05
DEFAULT_COMMANDS = ("all: stop", "all: go", "panic", "tap", "all: busier", "all: simpler", "all: make room",
                    "all: accompany harmonic", "all: accompany contrapuntal", "all: take over", "all: fight",
                    "all: more orderly", "all: more chaotic")
BAND_COMMANDS = ("stop", "go", "busier", "simpler", "make room", "accompany harmonic", "accompany contrapuntal",
                 "take over", "fight", "more orderly", "more chaotic", "lead sparse harmonic")


@dataclass(frozen=True)
class Stamped:
    time: float
    msg: mido.Message


SKIP = "skip"


class MessageFeed:
    """Timestamped controller messages (from rtmidi's thread) for the learner, and skips.

    ``clock`` is the clock of the stamps and of the waits (``time.monotonic``).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._items: list[Stamped | str] = []
        self._cond = threading.Condition()

    def put(self, msg: mido.Message, t: float) -> None:
        with self._cond:
            self._items.append(Stamped(t, msg))
            self._cond.notify_all()

    def put_raw(self, data: list[int], t: float) -> None:
        try:
            msg = mido.Message.from_bytes(data)
        except ValueError:
            return
        self.put(msg, t)

    def skip(self) -> None:
        with self._cond:
            self._items.append(SKIP)
            self._cond.notify_all()

    def take(self, pred: Callable[[Stamped | str], bool], until: float | None) -> Stamped | str | None:
        """The first item matching ``pred`` (removed), waiting until ``until`` (None: for ever)."""
        with self._cond:
            while True:
                for i, item in enumerate(self._items):
                    if pred(item):
                        return self._items.pop(i)
                wait = None if until is None else until - self.clock()
                if wait is not None and wait <= 0:
                    return None
                self._cond.wait(wait)


class ScriptedFeed(MessageFeed):
    """A feed of messages given up front with their times: waiting is free (for tests)."""

    def __init__(self, items: list[tuple[float, mido.Message]]):
        super().__init__(clock=lambda: self.now)
        self.now = 0.0
        self._items = [Stamped(t, m) for t, m in sorted(items, key=lambda x: x[0])]

    def take(self, pred, until):
        for i, item in enumerate(self._items):
            if isinstance(item, Stamped) and (until is not None and item.time > until):
                break
            if pred(item):
                if isinstance(item, Stamped):
                    self.now = max(self.now, item.time)
                return self._items.pop(i)
        if until is None:
            return None
        self.now = max(self.now, until)
        return None


@dataclass(frozen=True)
class Learned:
    kind: str
    number: int
    mode: str   # momentary | toggle
    slot: str   # press | long | on | off
    held: float | None = None  # seconds, momentary switches

    def describe(self) -> str:
        what = {"press": "press", "long": "long press", "on": "toggle on", "off": "toggle off"}[self.slot]
        mode = f" {self.mode}" if self.kind == "cc" else ""
        return f"{switch_label(self.kind, self.number)}{mode}, {what}"


def learn_switch(feed: MessageFeed, until: float | None, long_s: float, window: float,
                 channel: int | None = None, say: Callable[[str], None] = lambda s: None) -> Learned | str | None:
    """The next switch pressed (a :class:`Learned`), ``SKIP``, or None when ``until`` passes."""
    ignored: set[int] = set()
    while True:
        item = feed.take(lambda it: True, until)
        if item is None or item == SKIP:
            return item
        assert isinstance(item, Stamped)
        ev = switch_event(item.msg)
        if ev is None or (channel is not None and item.msg.channel != channel - 1):
            continue
        kind, number, value = ev
        t = item.time
        if kind == "program":
            _drop_same_press(feed, t)
            return Learned("program", number, "momentary", "press")
        if value == 0 and kind == "note":
            continue  # a release whose press came before the prompt
        if kind == "cc" and number in ignored:
            continue
        if kind == "cc" and value == 0:
            _drop_same_press(feed, t)
            return Learned("cc", number, "toggle", "off")

        def same(it, kind=kind, number=number) -> bool:
            return isinstance(it, Stamped) and (ev2 := switch_event(it.msg)) is not None and ev2[:2] == (kind, number)

        nxt = feed.take(same, t + window)
        if kind == "cc" and isinstance(nxt, Stamped) and nxt.msg.value != 0:
            ignored.add(number)  # a stream of values: an expression pedal or a knob
            say(f"  CC {number} sends changing values (an expression pedal?); press a switch")
            while feed.take(same, feed.clock() + 0.3) is not None:
                pass
            continue
        _drop_same_press(feed, t)
        if kind == "cc" and nxt is None:
            return Learned("cc", number, "toggle", "on")
        held = nxt.time - t if isinstance(nxt, Stamped) else None
        slot = "long" if held is None or held >= long_s else "press"
        return Learned(kind, number, "momentary", slot, held)


def _drop_same_press(feed: MessageFeed, t: float) -> None:
    """Leave out the other messages the same press sent (some boards send PC and CC at once)."""
    while feed.take(lambda it: isinstance(it, Stamped) and it.time < t + SAME_PRESS_S
                    and not _is_release(it.msg), t + SAME_PRESS_S) is not None:
        pass


def _is_release(msg: mido.Message) -> bool:
    ev = switch_event(msg)
    return ev is not None and ev[0] != "program" and ev[2] == 0


def apply_learned(mapping: Mapping, learned: Learned, cmd: Command) -> tuple[Mapping, str | None]:
    """The mapping with ``cmd`` on the switch learned, and the command it replaced (text) if any."""
    existing = mapping.switch(learned.kind, learned.number)
    if existing is None:
        base, replaced = Switch(learned.kind, learned.number, learned.mode), []
    elif existing.mode == learned.mode:
        before = getattr(existing, learned.slot)
        base, replaced = existing, [before] if before is not None else []
    else:  # a switch learned anew as the other kind: what it did before goes
        base, replaced = Switch(learned.kind, learned.number, learned.mode), list(existing.slots().values())
    new = replace(base, **{learned.slot: replace(cmd, time=0.0)})
    text = ", ".join(short_text(c) for c in replaced if short_text(c) != short_text(cmd)) or None
    return mapping.with_switch(new), text


def learn_commands(texts: list[str] | None, target: str | None) -> list[Command]:
    """The commands to ask for: ``texts`` (each parsed), or the default list (for ``target``)."""
    if texts:
        return [parse_command(t) for t in texts]
    if target in (None, "all"):
        return [parse_command(t) for t in DEFAULT_COMMANDS]
    return [parse_command(f"{target}: {t}") for t in BAND_COMMANDS]


def choose_controller(ports: list[str], wanted: str | None) -> str:
    """``wanted`` as given, or the only input port that is not a MIDI Through or improv's own."""
    if wanted:
        return wanted
    candidates = [p for p in ports if "through" not in p.lower() and not p.lower().startswith("improv")]
    if len(candidates) == 1:
        return candidates[0]
    listing = "; ".join(ports) if ports else "none"
    raise MidiError(f"improv learn: say which controller with --controller PORT (part of its name); "
                    f"MIDI input ports: {listing}")


class EnterSkips:
    """A thread that turns each Enter on the terminal into a skip (only on a terminal)."""

    def __init__(self, feed: MessageFeed, fd: int):
        self._feed = feed
        self._fd = fd
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="improv-learn-enter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            ready, _, _ = select.select([self._fd, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            data = os.read(self._fd, 1024)
            if not data:
                return
            for _ in range(data.count(b"\n")):
                self._feed.skip()

    def close(self) -> None:
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=2)
        os.close(self._wake_r)
        os.close(self._wake_w)


def run_learn(feed: MessageFeed, commands: list[Command], mapping: Mapping, path: Path, say: Callable[[str], None],
              timeout: float | None, window: float, enter_skips: bool) -> tuple[Mapping, int]:
    """Ask for each command, learn, write ``path`` after each switch; the mapping and the count learned."""
    learned_n = 0
    hint = "Enter skips" if enter_skips else (f"{timeout:g} s to press" if timeout else "")
    for i, cmd in enumerate(commands, 1):
        say(f"{i}/{len(commands)}  {short_text(cmd)}: press its switch (hold it for a long press)"
            + (f"; {hint}" if hint else ""))
        until = None if timeout is None else feed.clock() + timeout
        got = learn_switch(feed, until, mapping.long_press_ms / 1000.0, window, mapping.channel, say)
        if got is None:
            say("  nothing pressed; skipped")
            continue
        if got == SKIP:
            say("  skipped")
            continue
        assert isinstance(got, Learned)
        mapping, replaced = apply_learned(mapping, got, cmd)
        write_mapping(mapping, path)
        learned_n += 1
        held = f" (held {got.held * 1000:.0f} ms)" if got.held is not None else ""
        say(f"  {got.describe()}{held} -> {short_text(cmd)}" + (f"  (was: {replaced})" if replaced else ""))
    return mapping, learned_n


# ------------------------------------------------------------------ CLI


def add_learn(sub) -> None:
    p = sub.add_parser("learn", help="MIDI learn: press a switch for each command, write the mapping file",
                       description="Ask for each command in turn and record the foot-controller switch pressed "
                                   "(Program Change, CC momentary or toggle, note; hold it for a long press) "
                                   "into the mapping file, keeping its other entries.")
    p.add_argument("commands", nargs="*", metavar="COMMAND",
                   help='commands to learn, e.g. "bass: make room" "high: take over 0.7" (default: a list of '
                        'commands for all bands, or for --target)')
    p.add_argument("--controller", metavar="PORT", help="the controller's MIDI input port (part of its name); "
                   "default: the only one there is")
    p.add_argument("--mapping", metavar="FILE", help=f"the mapping file to write (default {default_mapping_path()}); "
                   "a new file starts from the built-in mapping")
    p.add_argument("--target", metavar="BAND", help="learn the default commands for this band (bass, mid, high)")
    p.add_argument("--timeout", type=finite, metavar="S",
                   help="seconds to wait for each switch before skipping it (default: none on a terminal, "
                        "where Enter skips; 30 otherwise)")
    p.add_argument("--long-press-ms", type=finite, help="hold time of a long press (default: the file's, or 600)")
    p.add_argument("--window", type=finite, default=2.5, metavar="S",
                   help="how long to wait for a CC switch's release before calling it a toggle (default 2.5)")
    p.add_argument("--midi-api", choices=["auto", "alsa", "jack"], default="auto")
    p.set_defaults(func=cmd_learn)


def cmd_learn(args) -> int:
    from rich.console import Console

    from .controller import ControllerPort, list_input_ports
    from .keyboard import stdin_fd

    console = Console(highlight=False)
    say = lambda s: console.print(s, markup=False)  # noqa: E731
    if args.timeout is not None and args.timeout <= 0:
        raise ConfigError(f"--timeout {args.timeout:g}: give a positive number of seconds")
    if args.window <= 0.2:
        raise ConfigError(f"--window {args.window:g}: give more than 0.2 seconds")
    commands = learn_commands(args.commands, (args.target or "all").strip().lower())
    path = Path(args.mapping) if args.mapping else default_mapping_path()
    mapping = load_mapping(path) if path.exists() else parse_mapping(DEFAULT_MAPPING_TOML, BUILTIN)
    if args.long_press_ms is not None:
        mapping = replace(mapping, long_press_ms=_long_ms(args.long_press_ms))
    if args.window <= mapping.long_press_ms / 1000.0:
        raise ConfigError(f"--window {args.window:g}: give more than the long-press time "
                          f"({mapping.long_press_ms / 1000.0:g} s)")
    api = None if args.midi_api == "auto" else args.midi_api
    feed = MessageFeed()
    port = ControllerPort(choose_controller(list_input_ports(api), args.controller), feed.put_raw, api, client="improv-learn")
    fd = stdin_fd()
    tty = fd is not None and os.isatty(fd)
    timeout = args.timeout if args.timeout is not None else (None if tty else 30.0)
    skips = EnterSkips(feed, fd) if tty and fd is not None else None
    only = f", channel {mapping.channel} only" if mapping.channel is not None else ""
    say(f"learning from {port.name} ({port.api}{only}) into {path}")
    n = 0
    try:
        mapping, n = run_learn(feed, commands, mapping, path, say, timeout, args.window, skips is not None)
    except KeyboardInterrupt:
        say("stopped")
    finally:
        if skips is not None:
            skips.close()
        port.close()
    say(f"{n} switch{'es' if n != 1 else ''} learned" + (f"; mapping written to {path}" if n else "; nothing written"))
    return 0


def _long_ms(value: float) -> float:
    if not 100 <= value <= 5000:
        raise ConfigError(f"--long-press-ms {value:g}: give 100 to 5000 milliseconds")
    return float(value)


def add_mapping(sub) -> None:
    p = sub.add_parser("mapping", help="show (and check) the command mapping, or write the default one",
                       description="Show what the mapping file maps (switches and keys -> commands), after "
                                   "checking it; or write the built-in default, with comments, to a file.")
    p.add_argument("--mapping", metavar="FILE", help=f"the file to show (default {default_mapping_path()} if it "
                   "exists, else the built-in mapping)")
    p.add_argument("--write-default", metavar="FILE", help="write the built-in mapping to FILE ('-': standard output)")
    p.add_argument("--force", action="store_true", help="with --write-default: replace an existing file")
    p.set_defaults(func=cmd_mapping)


def cmd_mapping(args) -> int:
    from rich.console import Console

    from .mapping import write_text_atomic

    console = Console(highlight=False)
    if args.write_default:
        if args.write_default == "-":
            sys.stdout.write(DEFAULT_MAPPING_TOML)
            return 0
        target = Path(args.write_default)
        if target.exists() and not args.force:
            raise ConfigError(f"--write-default {target}: the file exists; add --force to replace it")
        write_text_atomic(target, DEFAULT_MAPPING_TOML)
        console.print(f"wrote the default mapping to {target}", markup=False)
        return 0
    mapping = load_mapping(args.mapping)
    channel = "any channel" if mapping.channel is None else f"channel {mapping.channel}"
    console.print(f"{mapping.source}: {channel}, long press {mapping.long_press_ms:g} ms", markup=False)
    for line in mapping.describe():
        console.print(f"  {line}", markup=False)
    if mapping.keys:
        console.print("keys:", markup=False)
        for k, b in mapping.keys.items():
            from .mapping import key_label

            console.print(f"  {key_label(k):9s} {b.text()}", markup=False)
    return 0


def add_commands(sub) -> None:
    add_learn(sub)
    add_mapping(sub)


__all__ = ["learn_switch", "apply_learned", "run_learn", "MessageFeed", "ScriptedFeed", "Learned", "SKIP",
           "add_commands", "learn_commands", "choose_controller"]
