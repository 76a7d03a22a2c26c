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

    # cli.py, add_listen(sub), after the other options (listen's own --midi-api is reused):
    from .control import add_control_options
    add_control_options(p)   # --controller PORT, --mapping FILE, --osc [HOST:]PORT, --no-keys

    # cli.py, cmd_listen(args): open before the session, close (context exit) after it
    import time
    from .control import control_options, open_controls
    t0 = time.perf_counter()                  # the session's time origin (the band's "now")
    with display, open_controls(control_options(args),
                                on_command=band_inbox.put,              # any non-blocking hand-over
                                now=lambda: time.perf_counter() - t0,   # session seconds
                                log=lambda line: console.print(line, markup=False)) as controls:
        result = run_listen(opts, ...)        # the band takes commands from band_inbox

Or inside ``session.run_listen``, right after ``commands = CommandLog(...)``, with
``opts.controls`` a :class:`ControlOptions` (``control_options(args)``)::

    controls = open_controls(opts.controls, on_command=lambda c: commands.add(c.time, c.target, c.command, c.value),
                             now=session_now, log=log)
    try:
        ...  # the block loop
    finally:
        controls.close()

``on_command(cmd)`` runs in the controls' own dispatcher thread, one command at a time
in arrival order; it should hand the command over (a queue, or a lock-protected update
of the band's state) and return. ``controls.opened`` lists what is listening (also sent
to ``log`` at start); ``controls.submit(cmd)`` feeds a command in from elsewhere.

:func:`open_controls` raises an :class:`~improv.errors.ImprovError` (one line) for a
controller port that is not there, a bad mapping file or an OSC port in use; once
open, nothing an input receives can raise: bad messages and a lost controller are
reported through ``log``.
"""

from .controls import ControlOptions, Controls, add_control_options, control_options, open_controls

_LAZY = dict.fromkeys(("DEFAULT_MAPPING_TOML", "Mapping", "default_mapping_path", "load_mapping", "parse_mapping"),
                      "mapping")


def __getattr__(name: str):
    # The mapping needs the command vocabulary and the recorder: loaded on first use, so that
    # `improv listen --help` builds its parser without them.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ControlOptions", "Controls", "add_control_options", "control_options", "open_controls",
           "Mapping", "DEFAULT_MAPPING_TOML", "default_mapping_path", "load_mapping", "parse_mapping"]
