"""Rhythm: the band's sense of time.

Everything here works in seconds on the session clock (the ``time`` of
:mod:`improv.events`) and in beats of a :class:`Meter`; nothing reads the wall
clock except the threads that must (the :class:`Scheduler`, the JACK client), so
tests drive every piece with a fake clock.

Pieces, and how a session uses them
-----------------------------------

``parse_meter("6/8") -> Meter``
    ``--meter``: 2/4, 3/4, 4/4, 5/4, 6/8, 9/8, 12/8; anything else raises
    :class:`~improv.errors.ConfigError`. A beat is the counted beat (dotted quarter
    in 6/8); tempos count these beats.

``parse_swing(60) -> Swing``; ``swing.apply(beat, meter)``
    ``--swing``: 50 (straight) to 75 percent; maps a straight beat position (the
    band's plan) to the swung one, to be turned into time by a clock.

Clocks (:class:`BeatClock`): ``beat_at(t)``, ``time_of(beat)``, ``state(now)`` ->
:class:`ClockState` (``locked``, ``bpm``, ``beat``, ``confidence``, ``source``,
``message``), ``next_beat(now, subdivision)``, ``next_downbeat(now)``. The band
plays on the grid while ``state(now).locked``, and in free mode (phrase and gap)
otherwise.

* :class:`FixedClock` — ``--tempo BPM`` (``check_tempo`` rejects absurd tempos).
* :class:`TapTempo` — ``tap(now)`` on each foot-switch or key press; its ``clock``
  is a FixedClock with a beat on the last tap once ``min_taps`` taps are in.
* :class:`BeatTracker` — follows the player: ``add_event(note_on)`` (or
  ``add_onset(onset, now, velocity)``) for every player NoteOn; locks when
  confident, goes free when the playing is loose or stops. Give it the meter when
  known (``BeatTracker(meter="6/8")``): it tells binary from ternary subdivision.
* :class:`MidiClockIn` — ``feed(status, t, spp)``, ``feed_bytes(data, t)`` or
  ``on_message(mido_msg, t)`` for each MIDI clock message and its arrival time;
  Start/Stop/Continue/SPP; silence, jumps and absurd tempos unlock it with a
  message. On JACK feed it from a :class:`JackMidi` input with frame stamps::

      follower = MidiClockIn(meter)
      jm = JackMidi("improv-timing", inputs={"clock": follower.feed_bytes}, frame_stamps=True)
      follower.follow_frames(jm.frame_offset)

  Through rtmidi (:class:`improv.midi.MidiIn`, stamped with ``time.perf_counter``)
  on JACK, pass ``arrival_offset=period / rate / 2``: rtmidi stamps a message when
  the JACK cycle starts, before its frame.
* :class:`LinkClock` — Ableton Link (LinkPython-extern), optional.

Output
------

:class:`Scheduler` (``schedule(t, msg, tag)``, ``clear(tag)``, ``panic()``,
``start()``/``stop()``) sends each message at ``t - output_latency_ms``; its sink
is an :class:`improv.midi.MidiOut` (rtmidi: on JACK a message lands at the next
cycle boundary, 0..1 period late) or a :class:`JackMidi` client (frame-accurate on
JACK, also stamps MIDI input with frame times for MidiClockIn). With a JackMidi
sink the scheduler hands messages over ``lead`` (30 ms) early, so the band plans at
least ``lead + output latency`` ahead. While it runs, the Scheduler lowers Python's
GIL switch interval to 0.5 ms (process-wide; restored by ``stop()``): with the
default 5 ms a busy analysis thread delays sends by up to 5 ms.

``improv clock`` (:mod:`improv.timing.cli`) sends MIDI clock from ``--tempo``,
keyboard taps (``--tap``) or Link (``--link``), or follows one (``--follow PORT``).

:class:`MidiClockOut` (``pump(now)`` or ``run(now_fn, stop_event)``) sends 24 PPQN
clock, Start and Stop from any BeatClock through a Scheduler.
"""

from .clock import TEMPO_MAX, TEMPO_MIN, BeatClock, ClockState, FixedClock, TapTempo, check_tempo
from .meter import METERS, Meter, Swing, parse_meter, parse_swing
from .midiclock import PPQN, MidiClockIn, MidiClockOut
from .scheduler import Scheduler, check_output_latency
from .tracker import BeatTracker, TrackerSettings


def __getattr__(name: str):
    # Optional pieces with dependencies of their own, imported on first use.
    if name == "JackMidi":
        from .jackmidi import JackMidi

        return JackMidi
    if name == "LinkClock":
        from .link import LinkClock

        return LinkClock
    raise AttributeError(name)


__all__ = [
    "BeatClock", "BeatTracker", "ClockState", "FixedClock", "JackMidi", "LinkClock", "METERS", "Meter",
    "MidiClockIn", "MidiClockOut", "PPQN", "Scheduler", "Swing", "TEMPO_MAX", "TEMPO_MIN", "TapTempo",
    "TrackerSettings", "check_output_latency", "check_tempo", "parse_meter", "parse_swing",
]
