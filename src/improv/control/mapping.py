"""The mapping file: which controller switch and which computer key gives which command.

A TOML file (``--mapping FILE``; by default ``~/.config/improv/mapping.toml`` when it
exists, else the built-in :data:`DEFAULT_MAPPING_TOML`)::

    [controller]
    channel = 1            # only this MIDI channel (1-16); left out: any channel
    long_press_ms = 600    # a switch held this long gives its "long" command

    [program]              # Program Change number -> command
    0 = "all: stop"

    [cc]                   # CC number -> command (momentary switch: 127 press, 0 release)
    80 = "all: stop"
    82 = { press = "all: busier", long = "all: simpler" }

    [cc.86]                # a toggle switch: one value on, another off
    mode = "toggle"
    on = "high: take over 0.7"
    off = "high: accompany"
    on_value = 127         # left out: any value but off_value means on
    off_value = 0

    [note]                 # note number -> command (note-on press, note-off release)
    60 = "panic"

    [keys]                 # computer keys while `improv listen` runs
    s = "stop"             # no band named: the band chosen with "select"
    S = "all: stop"
    "1" = "select bass"
    space = "tap"
    "?" = "help"

A momentary switch (CC or note) takes ``press`` (or a plain string), ``long`` and
``release``. Without ``long`` the ``press`` command is given at once on press; with
``long``, a press released before ``long_press_ms`` gives ``press`` (on release) and a
press held that long gives ``long`` (at that moment). Program Change has no release,
so it takes ``press`` only. Commands are written as :func:`improv.band.commands.parse_command`
reads them.

Every error names the file, the line and the key, and says what to do, in one line
(:class:`~improv.errors.ConfigError`).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import tomli_w

from ..band.commands import COMMANDS, TARGETS, command_text, parse_command
from ..errors import ConfigError
from ..events import note_name
from ..events import Command

KINDS = ("program", "cc", "note")
KIND_LABEL = {"program": "PC", "cc": "CC", "note": "note"}
MOMENTARY_SLOTS = ("press", "long", "release")
TOGGLE_SLOTS = ("on", "off")
DEFAULT_LONG_PRESS_MS = 600.0
KEY_NAMES = {"space": " ", "tab": "\t", "enter": "\n", "backspace": "\x7f"}
KEY_ACTIONS = ("select", "help")
BUILTIN = "built-in default mapping"


@dataclass(frozen=True)
class Switch:
    """What one controller switch does.

    ``kind`` is ``program``, ``cc`` or ``note``; ``mode`` is ``momentary`` (press, long,
    release) or ``toggle`` (CC only: on, off). Commands are templates (time 0).
    """

    kind: str
    number: int
    mode: str = "momentary"
    press: Command | None = None
    long: Command | None = None
    release: Command | None = None
    on: Command | None = None
    off: Command | None = None
    on_value: int | None = None
    off_value: int = 0
    long_press_ms: float | None = None  # None: the mapping's

    @property
    def key(self) -> tuple[str, int]:
        return (self.kind, self.number)

    def label(self) -> str:
        return switch_label(self.kind, self.number)

    def slots(self) -> dict[str, Command]:
        names = TOGGLE_SLOTS if self.mode == "toggle" else MOMENTARY_SLOTS
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


def short_text(cmd: Command) -> str:
    """The text form, without "all: " for the commands that always go to all bands."""
    text = command_text(cmd)
    return text.split(": ", 1)[1] if COMMANDS[cmd.command].global_only else text


def switch_label(kind: str, number: int) -> str:
    if kind == "note":
        return f"note {number} ({note_name(number)})"
    return f"{KIND_LABEL[kind]} {number}"


@dataclass(frozen=True)
class KeyBinding:
    """A computer key: a command, ``select`` (a band for the untargeted commands) or ``help``.

    ``targeted``: the command names its band; otherwise it goes to the band selected.
    """

    key: str
    command: Command | None = None
    targeted: bool = False
    select: str | None = None
    help: bool = False

    def text(self) -> str:
        if self.select:
            return f"select {self.select}"
        if self.help:
            return "help"
        assert self.command is not None
        if self.targeted or self.command.target != "all":
            return short_text(self.command)
        return command_text(self.command).split(": ", 1)[1]


@dataclass(frozen=True)
class Mapping:
    switches: dict[tuple[str, int], Switch] = field(default_factory=dict)
    keys: dict[str, KeyBinding] = field(default_factory=dict)
    channel: int | None = None  # 1..16; None: any
    long_press_ms: float = DEFAULT_LONG_PRESS_MS
    source: str = BUILTIN

    def switch(self, kind: str, number: int) -> Switch | None:
        return self.switches.get((kind, number))

    def long_s(self, sw: Switch) -> float:
        return (sw.long_press_ms if sw.long_press_ms is not None else self.long_press_ms) / 1000.0

    def with_switch(self, sw: Switch) -> "Mapping":
        return replace(self, switches={**self.switches, sw.key: sw})

    def describe(self) -> list[str]:
        """One line per switch and key, for `improv mapping` and the key help."""
        lines = []
        for (kind, number), sw in sorted(self.switches.items(), key=lambda kv: (KINDS.index(kv[0][0]), kv[0][1])):
            parts = [f"{name}: {short_text(c)}" for name, c in sw.slots().items()]
            mode = f" {sw.mode}" if kind == "cc" else ""
            lines.append(f"{sw.label()}{mode}  " + "; ".join(parts))
        return lines

    def key_help(self) -> str:
        return "  ".join(f"{key_label(k)}={b.text()}" for k, b in self.keys.items())


def key_label(key: str) -> str:
    return {v: k for k, v in KEY_NAMES.items()}.get(key, key)


# ------------------------------------------------------------------ paths


def default_mapping_path() -> Path:
    """``$XDG_CONFIG_HOME/improv/mapping.toml`` (``~/.config/improv/mapping.toml``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "improv" / "mapping.toml"


def load_mapping(path: str | Path | None = None) -> Mapping:
    """The mapping in ``path``; with None the user's default file if it exists, else the built-in one."""
    if path is None:
        user = default_mapping_path()
        if not user.exists():
            return parse_mapping(DEFAULT_MAPPING_TOML, BUILTIN)
        path = user
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--mapping {path}: no such file; write one with `improv mapping --write-default {path}` "
                          f"or `improv learn --mapping {path}`") from None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigError(f"--mapping {path}: cannot read it ({reason}); check the file") from None
    return parse_mapping(text, str(path))


# ------------------------------------------------------------------ parsing


_HEADER = re.compile(r"^\s*\[\[?(?P<name>[^\]]*)\]\]?\s*(#.*)?$")
_KEYLINE = re.compile(r"""^\s*(?P<key>(?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_\-]+)"""
                      r"""(?:\s*\.\s*(?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_\-]+))*)\s*=""")
_PART = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_\-]+)\s*""")


def _dotted(text: str) -> tuple[str, ...]:
    parts = []
    for m in _PART.finditer(text):
        p = m.group(1)
        if p[0] in "\"'":
            p = p[1:-1].encode().decode("unicode_escape") if p[0] == '"' else p[1:-1]
        parts.append(p)
    return tuple(parts)


class _Lines:
    """Where each table and key of a TOML text is (1-based lines), for error messages."""

    def __init__(self, text: str):
        self.where: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        for n, line in enumerate(text.splitlines(), 1):
            h = _HEADER.match(line)
            if h:
                table = _dotted(h.group("name"))
                self.where.setdefault(table, n)
                continue
            k = _KEYLINE.match(line)
            if k:
                self.where.setdefault(table + _dotted(k.group("key")), n)

    def line(self, path: tuple[str, ...]) -> int | None:
        for end in range(len(path), 0, -1):
            if path[:end] in self.where:
                return self.where[path[:end]]
        return None


class _Parser:
    def __init__(self, text: str, source: str):
        self.source = source
        self.lines = _Lines(text)
        try:
            self.data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
            what = re.sub(r"\s*\(at line.*\)", "", str(e))
            where = f" line {m.group(1)}" if m else ""
            raise ConfigError(f"{source}{where}: not valid TOML ({what}); fix it (https://toml.io) or start again "
                              f"from `improv mapping --write-default FILE`") from None

    def fail(self, path: tuple[str, ...], problem: str) -> ConfigError:
        line = self.lines.line(path)
        at = f" line {line}" if line else ""
        table, key = path[:-1], path[-1] if path else ""
        where = f"[{'.'.join(table)}] {key}" if table else f"[{key}]"
        return ConfigError(f"{self.source}{at}, {where}: {problem}")

    def command(self, path: tuple[str, ...], value: Any) -> Command:
        if not isinstance(value, str):
            raise self.fail(path, f"write the command as a string, e.g. \"all: stop\" (got {value!r})")
        try:
            return parse_command(value)
        except ConfigError as e:
            raise self.fail(path, str(e)) from None

    def number(self, path: tuple[str, ...], key: str, what: str) -> int:
        try:
            n = int(key)
        except ValueError:
            n = -1
        if not 0 <= n <= 127 or not key.strip().isdigit():
            raise self.fail(path, f"{key!r} is not a {what} number; give 0 to 127")
        return n

    def parse(self) -> Mapping:
        data = self.data
        unknown = [k for k in data if k not in (*KINDS, "controller", "keys")]
        if unknown:
            raise self.fail((unknown[0],), "unknown section; use controller, program, cc, note and keys")
        ctl = data.get("controller", {})
        if not isinstance(ctl, dict):
            raise self.fail(("controller",), "must be a table ([controller])")
        for k in ctl:
            if k not in ("channel", "long_press_ms"):
                raise self.fail(("controller", k), "unknown setting; use channel (1-16 or \"any\") and long_press_ms")
        channel = ctl.get("channel", "any")
        if channel == "any":
            channel = None
        elif not isinstance(channel, int) or isinstance(channel, bool) or not 1 <= channel <= 16:
            raise self.fail(("controller", "channel"), f"{channel!r}: give a MIDI channel 1 to 16, or \"any\"")
        long_ms = self.long_ms(("controller", "long_press_ms"), ctl.get("long_press_ms", DEFAULT_LONG_PRESS_MS))
        switches: dict[tuple[str, int], Switch] = {}
        for kind in KINDS:
            table = data.get(kind, {})
            if not isinstance(table, dict):
                raise self.fail((kind,), f"must be a table ([{kind}]) of numbers to commands")
            for key, value in table.items():
                sw = self.switch(kind, key, value)
                switches[sw.key] = sw
        keys = self.keys(data.get("keys", {}))
        return Mapping(switches, keys, channel, long_ms, self.source)

    def long_ms(self, path: tuple[str, ...], value: Any) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 100 <= value <= 5000:
            raise self.fail(path, f"{value!r}: give milliseconds from 100 to 5000")
        return float(value)

    def switch(self, kind: str, key: str, value: Any) -> Switch:
        path = (kind, key)
        number = self.number(path, key, {"program": "program", "cc": "controller", "note": "note"}[kind])
        if isinstance(value, str):
            return Switch(kind, number, press=self.command(path, value))
        if not isinstance(value, dict):
            raise self.fail(path, "give a command string, or a table with press/long/release (or mode = \"toggle\" "
                                  "with on/off)")
        mode = value.get("mode", "momentary")
        if mode not in ("momentary", "toggle"):
            raise self.fail(path + ("mode",), f"{mode!r}: use \"momentary\" or \"toggle\"")
        if kind != "cc" and mode == "toggle":
            raise self.fail(path + ("mode",), "only CC switches can toggle; use a [cc] entry")
        if mode == "toggle":
            allowed: tuple[str, ...] = ("mode", *TOGGLE_SLOTS, "on_value", "off_value")
        elif kind == "program":
            allowed = ("mode", "press")
        else:
            allowed = ("mode", *MOMENTARY_SLOTS, "long_press_ms")
        for k in value:
            if k not in allowed:
                hint = {"program": "Program Change has no release: give press only",
                        "toggle": "a toggle takes on, off, on_value and off_value"}.get(
                    "toggle" if mode == "toggle" else kind, f"use {', '.join(allowed)}")
                raise self.fail(path + (k,), f"not a setting here; {hint}")
        cmds = {k: self.command(path + (k,), value[k]) for k in (*MOMENTARY_SLOTS, *TOGGLE_SLOTS) if k in value}
        if not cmds:
            slots = "on and/or off" if mode == "toggle" else "press (and long, release)"
            raise self.fail(path, f"no command given; add {slots}")
        extra: dict[str, Any] = {}
        if mode == "toggle":
            for k in ("on_value", "off_value"):
                if k in value:
                    v = value[k]
                    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 127:
                        raise self.fail(path + (k,), f"{v!r}: give a CC value 0 to 127")
                    extra[k] = v
            if extra.get("on_value") is not None and extra.get("on_value") == extra.get("off_value", 0):
                raise self.fail(path + ("on_value",), "on_value and off_value must differ")
        elif "long_press_ms" in value:
            extra["long_press_ms"] = self.long_ms(path + ("long_press_ms",), value["long_press_ms"])
        return Switch(kind, number, mode, **cmds, **extra)

    def keys(self, table: Any) -> dict[str, KeyBinding]:
        if not isinstance(table, dict):
            raise self.fail(("keys",), "must be a table ([keys]) of keys to commands")
        out: dict[str, KeyBinding] = {}
        for name, value in table.items():
            path = ("keys", name)
            key = KEY_NAMES.get(name.lower(), name) if len(name) > 1 else name
            if len(key) != 1 or not (key.isprintable() or key in KEY_NAMES.values()):
                raise self.fail(path, f"{name!r} is not a key; use one character or {', '.join(KEY_NAMES)}")
            if not isinstance(value, str):
                raise self.fail(path, f"write the command as a string, e.g. \"stop\" (got {value!r})")
            words = value.split()
            if words and words[0].lower() == "select":
                target = words[1].lower() if len(words) == 2 else ""
                if target not in TARGETS:
                    raise self.fail(path, f"{value!r}: write select and one of {', '.join(TARGETS)}")
                out[key] = KeyBinding(key, select=target)
            elif value.strip().lower() == "help":
                out[key] = KeyBinding(key, help=True)
            else:
                out[key] = KeyBinding(key, self.command(path, value), targeted=":" in value)
        return out


def parse_mapping(text: str, source: str = "mapping") -> Mapping:
    """A :class:`Mapping` from TOML text; ``source`` names it in error messages."""
    return _Parser(text, source).parse()


# ------------------------------------------------------------------ writing


def mapping_to_dict(mapping: Mapping) -> dict[str, Any]:
    """The TOML tables of a mapping (what :func:`parse_mapping` reads back)."""
    out: dict[str, Any] = {"controller": {"long_press_ms": _num(mapping.long_press_ms)}}
    if mapping.channel is not None:
        out["controller"]["channel"] = mapping.channel
    for kind in KINDS:
        table: dict[str, Any] = {}
        for (k, number), sw in sorted(mapping.switches.items(), key=lambda kv: kv[0][1]):
            if k != kind:
                continue
            slots = {n: short_text(c) for n, c in sw.slots().items()}
            if sw.mode == "momentary" and list(slots) == ["press"] and sw.long_press_ms is None:
                table[str(number)] = slots["press"]
                continue
            entry: dict[str, Any] = {"mode": sw.mode} if sw.mode == "toggle" else {}
            entry.update(slots)
            if sw.mode == "toggle":
                if sw.on_value is not None:
                    entry["on_value"] = sw.on_value
                entry["off_value"] = sw.off_value
            elif sw.long_press_ms is not None:
                entry["long_press_ms"] = _num(sw.long_press_ms)
            table[str(number)] = entry
        if table:
            out[kind] = table
    if mapping.keys:
        out["keys"] = {key_label(k): b.text() for k, b in mapping.keys.items()}
    return out


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


WRITTEN_HEADER = """\
# improv mapping: controller switches and computer keys -> band commands.
# Written by improv; `improv mapping --write-default FILE` writes a commented example.
# Commands: "band: command value" with band = bass, mid, high or all (see `improv mapping`).

"""


def mapping_to_toml(mapping: Mapping) -> str:
    return WRITTEN_HEADER + tomli_w.dumps(mapping_to_dict(mapping))


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write through a temporary file and a rename, so the file is never half written."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        raise ConfigError(f"{path}: cannot write the mapping ({e.strerror}); choose another file with --mapping") \
            from None


def write_mapping(mapping: Mapping, path: str | Path) -> None:
    write_text_atomic(path, mapping_to_toml(mapping))


# ------------------------------------------------------------------ default


DEFAULT_MAPPING_TOML = """\
# improv mapping: controller switches and computer keys -> band commands.
#
# A command is "band: command value", band = bass, mid, high or all (left out: all):
#   stop, go, make room, accompany [harmonic|contrapuntal], take over [variation 0-1],
#   fight [dissonance 0-1], busier, simpler, more orderly, more chaotic,
#   lead [busy|sparse] [harmonic|contrapuntal], panic, tap, player [bass|mid|high|auto]
# `improv learn` records your own controller's switches into this file;
# `improv mapping --mapping FILE` checks a file and shows what it maps.

[controller]
# channel = 1          # listen to this MIDI channel only (1-16); default: any channel
long_press_ms = 600    # a switch held this long gives its "long" command

# A 6-switch controller (Morningstar MC6, PaintAudio MIDI Captain, an FCB1010's first six,
# or any board you can program): switches A-F send CC 80-85 as momentary switches,
# value 127 on press and 0 on release. A switch with a "long" command gives "press" when
# released before long_press_ms, and "long" as soon as it has been held that long; a
# switch without one acts at once on press (stop and tap need that: keep them short).
[cc]
80 = "all: stop"                                                     # A
81 = "all: go"                                                       # B
82 = { press = "all: busier", long = "all: simpler" }                # C
83 = { press = "all: make room", long = "all: accompany harmonic" }  # D
84 = { press = "all: take over", long = "all: fight" }               # E
85 = "tap"                                                           # F

# The same switches sending Program Change 0-5 instead (a Program Change has no
# release, so no long press), and four more for 10-switch boards.
[program]
0 = "all: stop"
1 = "all: go"
2 = "all: busier"
3 = "all: make room"
4 = "all: take over"
5 = "tap"
6 = "all: simpler"
7 = "all: accompany contrapuntal"
8 = "all: fight"
9 = "panic"

# Switches that send notes (note-on press, note-off release) map the same way:
# [note]
# 36 = "panic"
# 37 = { press = "bass: make room", long = "bass: stop" }

# A toggle switch (one value on, the other off) gives two commands:
# [cc.86]
# mode = "toggle"
# on = "high: take over 0.7"
# off = "high: accompany"
# on_value = 127       # left out: any value but off_value is on
# off_value = 0

# The computer keyboard while `improv listen` runs (--no-keys turns it off).
# Commands without a band go to the band chosen with 1, 2, 3 (0: all bands).
[keys]
"1" = "select bass"
"2" = "select mid"
"3" = "select high"
"0" = "select all"
s = "stop"
g = "go"
S = "all: stop"
G = "all: go"
r = "make room"
h = "accompany harmonic"
c = "accompany contrapuntal"
t = "take over"
f = "fight"
"+" = "busier"
"=" = "busier"
"-" = "simpler"
o = "more orderly"
w = "more chaotic"
l = "lead sparse harmonic"
L = "lead busy contrapuntal"
p = "panic"
"!" = "panic"
space = "tap"
k = "freeze"
K = "forget"
"?" = "help"
"""


__all__ = ["Mapping", "Switch", "KeyBinding", "DEFAULT_MAPPING_TOML", "default_mapping_path", "load_mapping",
           "parse_mapping", "mapping_to_dict", "mapping_to_toml", "write_mapping", "switch_label", "key_label",
           "KEY_NAMES", "BUILTIN"]
