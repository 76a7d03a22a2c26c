"""The band: three monophonic players (bass, mid, high) that listen and answer.

How it fits together
--------------------

``improv listen --bands bass,mid,high`` builds one :class:`Band` (``band.py``) that
holds the players, their shared memory and the model, and is driven from outside
with the time passed in (session seconds: audio time, sample 0 of the input = 0.0)::

    player events ──> Band.hear ─┐
    commands ───────> Band.command (the only way in; validated, logged, queued)
                                 └─> Band.step(now) ──> plan (heap of band NoteOn/NoteOff)
                                                          └─> Band.due(until) ──> out

* ``context.py`` — the rolling memory (the player's notes and the band's own, planned
  ones included), forgetting what is older than ``--context-bars`` (metered) or
  ``--context-seconds`` (free); the player's register, silences, last phrase.
* ``timebase.py`` — which clock the band plays to: tap tempo, then ``--tempo``, then
  the beat tracker while it is locked on the player's pulse; otherwise free mode
  (``--free`` always). A :class:`~improv.band.timebase.TimeMap` maps seconds to the
  model's units (beats, swing removed; or seconds); when the mode or the tempo
  changes, plans after the next frame are withdrawn and the model is rebuilt from
  the context (the same happens every couple of context lengths, so the model forgets
  too).
* ``players.py`` — one :class:`~improv.band.players.BandPlayer` per band: range,
  velocity, its :class:`~improv.band.orders.Orders` (``orders.py``: what its last
  commands left it doing), and for each frame a request to the generator: which model
  voice, the model's controls (role, density, register, range), a hook that shapes
  *which* pitch (key, consonance or dissonance with the player, contrary motion,
  repetition, the player's register left free) separately from *whether* a note
  starts (a chance steered toward the density asked for), and a velocity.
* ``generators.py`` — what turns requests into notes, chosen by name
  (``--band-generator``): ``model``, the trained band model (:mod:`improv.model`), one
  live session for all voices, asked one frame (a sixteenth; 125 ms free) at a time.
* ``live.py`` — real time: :class:`LiveBand` runs ``step`` in a thread of its own
  every 10 ms and hands events due within ``handoff`` (60 ms + output latency) to the
  :class:`~improv.timing.Scheduler`, which sends each at its time through
  :class:`BandOutput` (MIDI port on the band's channel, the built-in synth, and the
  recorder/display). :class:`SessionClock` keeps wall-clock session time on the audio
  blocks. A vanished ``--midi-out`` port is said and picked up again when it returns.
* ``offline.py`` — the same band over a recording's listened events, block by block as
  ``improv listen --fast`` does (``--fast`` steps the band on audio time itself and
  emits events in time order); the benchmark replays command sequences with it.
* ``commands.py`` — the command vocabulary shared by the foot controller, keyboard
  and OSC; ``read_command_script`` reads ``--commands FILE`` ("2.0 bass: make room").
* ``measure.py`` — figures about what was played (benchmark and tests only).

Timing of commands: stop and panic silence at once (notes off at the command's time;
in real time the scheduler's pending notes for the band are dropped and its sounding
ones ended before the command returns). The others take effect at the next beat
(metered) or the next 125 ms frame (free), at least ``handoff`` + 20 ms ahead; plans
already made past that point are withdrawn and made again. Each band follows its
last command until told otherwise; panic leaves the orders as they were.
"""

from .commands import COMMANDS, check_command, command_text, parse_command

_LAZY = {"Band": "band", "BandSettings": "band", "BandOutput": "live", "LiveBand": "live",
         "SessionClock": "live", "read_command_script": "live"}


def __getattr__(name: str):
    # Everything but the command vocabulary needs torch (the model): imported on first use.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)


__all__ = ["Band", "BandSettings", "BandOutput", "LiveBand", "SessionClock", "COMMANDS", "check_command",
           "command_text", "parse_command", "read_command_script"]
