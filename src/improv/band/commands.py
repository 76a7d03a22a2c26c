"""The band's meta-commands: one vocabulary for the foot controller, the keyboard and OSC.

A command is a :class:`improv.record.Command` (time, target, command, value): ``target``
is a band (``bass``, ``mid``, ``high``) or ``all``; ``command`` is one of
:data:`COMMANDS`; ``value`` depends on the command (see :class:`Spec`). Text forms
accepted by :func:`parse_command` (mapping files, ``improv learn``, the keyboard)::

    "bass: make room"     "high: take over 0.7"     "mid: busier"    "all: more chaotic"
    "high: lead busy harmonic"   "all: stop"   "all: go"   "panic"   "tap"   "freeze"   "forget"
    "mid: accompany contrapuntal"   "bass: fight 0.5"   "player: mid"

Every error names what is wrong and what is accepted, as one line
(:class:`~improv.errors.ConfigError`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..events import ALL_BANDS, BANDS, Command

TARGETS: tuple[str, ...] = (*ALL_BANDS, "all")
STYLE_NAMES = ("swing", "straight", "funk", "bossa", "ballad", "rock", "waltz", "free")  # = drums.STYLES


@dataclass(frozen=True)
class Spec:
    """What a command means and what value it takes."""

    help: str
    kind: str = "none"            # none | amount (0..1) | choice | words (see choices) | band
    default: Any = None
    choices: tuple[str, ...] = ()
    global_only: bool = False     # target is always "all"


COMMANDS: dict[str, Spec] = {
    "stop": Spec("stop playing now (notes off at once); stays silent until another command"),
    "go": Spec("play again, as before the stop"),
    "make-room": Spec("sparser, quieter, away from the player's register"),
    "accompany": Spec("accompany the player: harmonic (chord tones on strong beats, longer notes) "
                      "or contrapuntal (an independent line, contrary motion)",
                      kind="choice", default="harmonic", choices=("harmonic", "contrapuntal")),
    "take-over": Spec("continue the player's line when the player stops, handing back when they "
                      "come in again; value = variation 0..1", kind="amount", default=0.3),
    "fight": Spec("contrary motion, rhythmic displacement; value = dissonance budget 0..1",
                  kind="amount", default=0.5),
    "busier": Spec("more notes per beat (one step)"),
    "simpler": Spec("fewer notes per beat (one step)"),
    "more-orderly": Spec("more repetition, smaller steps (one step)"),
    "more-chaotic": Spec("more variety, wider leaps (one step)"),
    "lead": Spec("this band leads, the other bands accompany it (busy or sparse, harmonic or "
                 "contrapuntal)", kind="words", default=("sparse", "harmonic"),
                 choices=("busy", "sparse", "harmonic", "contrapuntal")),
    "panic": Spec("all notes off, every band; the bands stay as they were told", global_only=True),
    "tap": Spec("tap tempo (press on each beat)", global_only=True),
    "player": Spec("the player's own register is this band's (the band leaves it room); "
                   "'auto' detects it", kind="choice", default="auto", choices=(*BANDS, "auto"),
                   global_only=True),
    "freeze": Spec("the sampler keeps its bank as it is (no more of the player's notes); 'off' "
                   "takes them in again", kind="choice", default="on", choices=("on", "off"), global_only=True),
    "forget": Spec("the sampler forgets the player's notes it kept (the band plays General MIDI "
                   "until it has new ones)", global_only=True),
    "style": Spec("the drummer's style: its grooves and feel from the next beat", kind="choice",
                  default="straight", choices=STYLE_NAMES, global_only=True),
}

ALIASES = {"room": "make-room", "makeroom": "make-room", "takeover": "take-over", "take": "take-over",
           "orderly": "more-orderly", "chaotic": "more-chaotic", "busy": "busier", "simple": "simpler",
           "all-stop": "stop", "all-go": "go", "start": "go", "leads": "lead", "i-am-in": "player"}


def spoken(name: str) -> str:
    """A command's name as shown and written for people ("make room"); the dashed form
    ("make-room") is its identifier (OSC addresses, the session log). Both parse."""
    return name.replace("-", " ")


def _norm(word: str) -> str:
    return re.sub(r"[\s_]+", "-", word.strip().lower())


def check_command(target: str, command: str, value: Any = None) -> tuple[str, str, Any]:
    """Validate and normalise (target, command, value); raise ConfigError naming the problem."""
    name = _norm(command)
    name = ALIASES.get(name, name)
    if name not in COMMANDS:
        raise ConfigError(f"unknown command {command!r}: use one of {', '.join(map(spoken, COMMANDS))}")
    spec = COMMANDS[name]
    tgt = _norm(target or "all")
    if tgt not in TARGETS:
        raise ConfigError(f"unknown band {target!r} in '{target}: {command}': use one of {', '.join(TARGETS)}")
    if spec.global_only:
        tgt = "all"
    return tgt, name, _check_value(name, spec, value)


def _check_value(name: str, spec: Spec, value: Any) -> Any:
    if value is None or value == "" or value == ():
        return spec.default
    if spec.kind == "none":
        raise ConfigError(f"command {name!r} takes no value (got {value!r})")
    if spec.kind == "amount":
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"command {name!r}: value {value!r} is not a number; give 0 to 1") from None
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"command {name!r}: value {v:g} is out of range; give 0 to 1")
        return v
    words = value.split() if isinstance(value, str) else [str(w) for w in value]
    words = [_norm(w) for w in words]
    bad = [w for w in words if w not in spec.choices]
    if bad:
        raise ConfigError(f"command {name!r}: {bad[0]!r} is not one of {', '.join(spec.choices)}")
    if spec.kind == "choice":
        if len(words) != 1:
            raise ConfigError(f"command {name!r} takes one of {', '.join(spec.choices)}")
        return words[0]
    # words: a density word and a style word, defaults filling what is not given
    density = next((w for w in words if w in ("busy", "sparse")), spec.default[0])
    style = next((w for w in words if w in ("harmonic", "contrapuntal")), spec.default[1])
    return (density, style)


def parse_command(text: str, time: float = 0.0) -> Command:
    """``"high: take over 0.7"`` -> Command(time, "high", "take-over", 0.7).

    The target may be left out ("panic", "tap", "stop" = all bands). Multi-word command
    names may be written with spaces, dashes or underscores.
    """
    raw = text.strip()
    if not raw:
        raise ConfigError("empty command: write e.g. 'bass: make room' or 'all: stop'")
    target, _, rest = raw.partition(":") if ":" in raw else ("all", "", raw)
    if _norm(target) == "player":  # "player: mid" = the player is in the mid band's register
        target, rest = "all", f"player {rest}"
    words = rest.split()
    if not words:
        raise ConfigError(f"command {text!r} has a band but no command: write e.g. '{target.strip()}: busier'")
    # longest command name made of the first one to three words
    for n in (3, 2, 1):
        if len(words) >= n:
            name = _norm(" ".join(words[:n]))
            if name in COMMANDS or name in ALIASES:
                value_words = words[n:]
                break
    else:
        raise ConfigError(f"unknown command {rest.strip()!r} in {text!r}: use one of "
                          f"{', '.join(map(spoken, COMMANDS))}")
    spec = COMMANDS[ALIASES.get(name, name)]
    value: Any
    if not value_words:
        value = None
    elif spec.kind == "amount":
        value = value_words[0] if len(value_words) == 1 else " ".join(value_words)
    else:
        value = " ".join(value_words)
    tgt, cmd, val = check_command(target, name, value)
    return Command(float(time), tgt, cmd, val)


def command_text(cmd: Command) -> str:
    """The text form that :func:`parse_command` reads back."""
    value = cmd.value
    if isinstance(value, (tuple, list)):
        value = " ".join(value)
    return f"{cmd.target}: {spoken(cmd.command)}" + ("" if value is None else f" {value}")


__all__ = ["COMMANDS", "TARGETS", "Spec", "check_command", "parse_command", "command_text", "spoken"]
