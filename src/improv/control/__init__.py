"""Command inputs: foot controller (MIDI), computer keyboard and OSC -> band commands.

Every input turns what it receives into :class:`improv.record.Command` objects (the
vocabulary of :mod:`improv.band.commands`) and hands them to one callback.

* :mod:`~improv.control.mapping` — the TOML mapping file (switches and keys -> commands),
  its built-in default for a 6-switch controller (CC 80-85 momentary, PC 0-5), writing it.
* :mod:`~improv.control.switches` — press / release / long press / toggle on the caller's clock.
* :mod:`~improv.control.controller` — the MIDI input port, reconnected when the controller returns.
* :mod:`~improv.control.keyboard` — single keys in cbreak mode while a session runs.
* :mod:`~improv.control.osc` — ``/improv/<band>/<command> [value]`` over UDP.
* :mod:`~improv.control.controls` — :func:`open_controls`: all of them, one dispatcher thread.
* :mod:`~improv.control.learn` — ``improv learn`` (MIDI learn into the mapping file).

Wiring into ``improv listen`` (``cli.add_listen`` / ``cmd_listen``)::

    from .control import add_control_options, control_options, open_controls

    # in add_listen(sub), after the other options (it reuses listen's --midi-api):
    add_control_options(p)          # --controller PORT, --mapping FILE, --osc [HOST:]PORT, --no-keys

    # in cmd_listen(args), around the session:
    t0 = time.perf_counter()        # the session's time origin, the same one the band uses
    with open_controls(control_options(args),
                       on_command=band_commands,              # e.g. CommandLog(...).add-ing sink, see below
                       now=lambda: time.perf_counter() - t0,  # session seconds
                       log=console.print) as controls:
        result = run_listen(opts, ...)

``on_command(cmd)`` runs in the controls' own dispatcher thread, one command at a time in
arrival order; it should only hand the command over (queue, or a lock-protected
set of the band's state) and return. A sink that takes commands into the session's
:class:`~improv.record.CommandLog` is::

    band_commands = lambda cmd: commands.add(cmd.time, cmd.target, cmd.command, cmd.value)

:func:`open_controls` raises an :class:`~improv.errors.ImprovError` (one line) for a
controller port that is not there, a bad mapping file or an OSC port in use; once
open, nothing an input receives can raise: bad messages and a lost controller are
reported through ``log``.
"""

from .controls import ControlOptions, Controls, add_control_options, control_options, open_controls
from .mapping import DEFAULT_MAPPING_TOML, Mapping, default_mapping_path, load_mapping, parse_mapping

__all__ = ["ControlOptions", "Controls", "add_control_options", "control_options", "open_controls",
           "Mapping", "DEFAULT_MAPPING_TOML", "default_mapping_path", "load_mapping", "parse_mapping"]
