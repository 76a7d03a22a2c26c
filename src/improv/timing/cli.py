"""``improv clock``: send MIDI clock at a tempo (fixed, tapped on the keyboard, or an
Ableton Link session's), or follow an incoming MIDI clock and show its tempo.

Registered in :data:`improv.cli.COMMAND_MODULES` through :func:`add_commands`.
"""

from __future__ import annotations

import sys
import threading
import time

from ..cli import finite  # argparse type: nan and inf refused
from ..errors import ConfigError


def add_commands(sub) -> None:
    p = sub.add_parser("clock", help="send MIDI clock (fixed, tapped or Link tempo) or follow one",
                       description="Drive other gear with MIDI clock from a tempo, keyboard taps or an "
                                   "Ableton Link session; or follow an incoming MIDI clock and show its tempo.")
    p.add_argument("--tempo", type=finite, default=120.0, help="beats per minute (default 120)")
    p.add_argument("--meter", default="4/4", help="2/4, 3/4, 4/4, 5/4, 6/8, 9/8 or 12/8 (default 4/4)")
    p.add_argument("--tap", action="store_true", help="tap the tempo with the Enter key")
    p.add_argument("--link", action="store_true", help="join an Ableton Link session (LinkPython-extern)")
    p.add_argument("--follow", metavar="PORT", help="follow the MIDI clock arriving on PORT (part of its name)")
    p.add_argument("--midi-out", "-o", metavar="PORT", help="existing MIDI output port (part of its name); default: "
                   "a virtual port improv-clock:clock (with --jack: improv-clock:out)")
    p.add_argument("--midi-api", choices=["auto", "alsa", "jack"], default="auto")
    p.add_argument("--jack", action="store_true", help="frame-accurate output through improv's own JACK client")
    p.add_argument("--output-latency-ms", type=finite, default=0.0, help="send this much early (default 0)")
    p.add_argument("--seconds", type=finite, help="stop after this long (default: until Ctrl-C)")
    p.set_defaults(func=cmd_clock)


def cmd_clock(args) -> int:
    from rich.console import Console

    from . import FixedClock, MidiClockIn, MidiClockOut, Scheduler, check_tempo, parse_meter

    console = Console(highlight=False)
    err = Console(stderr=True, highlight=False)  # status lines; the bars and taps go to stdout
    meter = parse_meter(args.meter)
    check_tempo(args.tempo)
    stop = threading.Event()
    if args.seconds is not None:
        if args.seconds <= 0:
            raise ConfigError(f"--seconds {args.seconds:g}: give a positive duration")
        timer = threading.Timer(args.seconds, stop.set)
        timer.daemon = True
        timer.start()
    if args.follow:
        return _follow(args, console, meter, stop, MidiClockIn)
    sink = sched = pump = clock = None
    try:
        if args.link:
            from .link import LinkClock

            clock = LinkClock(args.tempo, meter)
        else:
            clock = FixedClock(args.tempo, t0=time.perf_counter() + 0.1, meter=meter)
        if args.jack:
            from .jackmidi import JackMidi

            sink = JackMidi("improv-clock")
            if args.midi_out:
                sink.connect_out(args.midi_out)
            where = sink.out_name
        else:
            from ..midi import MidiOut

            sink = MidiOut(args.midi_out, None if args.midi_api == "auto" else args.midi_api,
                           client="improv-clock", virtual_name="clock")
            where = f"{sink.info.name} ({sink.info.api})"
        sched = Scheduler(sink, output_latency_ms=args.output_latency_ms).start()
        out = MidiClockOut(clock, sched.schedule, meter=meter)
        pump = threading.Thread(target=out.run, args=(time.perf_counter, stop), daemon=True)
        pump.start()
        err.print(f"MIDI clock to {where} at {clock.bpm:.1f} BPM ({meter.name}); Ctrl-C stops")
        if args.tap:
            _taps(clock, meter, console, stop)
        last_bar = None
        while not stop.wait(0.05):
            st = clock.state(time.perf_counter())
            bar = None if st.beat is None else int(st.beat // meter.beats_per_bar)
            if bar != last_bar and bar is not None and bar >= 0:
                console.print(f"bar {bar + 1:4d}  {st.bpm:6.1f} BPM  {st.message}")
                last_bar = bar
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if pump is not None:
            pump.join(1.0)
            time.sleep(0.05)
        if sched is not None:
            sched.stop()
        if sink is not None:
            sink.close()
        if args.link and clock is not None:
            clock.close()
    return 0


def _taps(clock, meter, console, stop) -> None:
    from . import TapTempo

    tap = TapTempo(meter=meter)

    def read() -> None:
        for _line in sys.stdin:
            now = time.perf_counter()
            bpm = tap.tap(now)
            if bpm is not None:
                clock.set_tempo(bpm, now)
                console.print(f"tapped {bpm:.1f} BPM")
            if stop.is_set():
                return

    threading.Thread(target=read, daemon=True).start()
    console.print("tap Enter on the beat (3 taps set the tempo)")


def _follow(args, console, meter, stop, MidiClockIn) -> int:
    from ..midi import MidiIn

    clock = MidiClockIn(meter)
    port = MidiIn(lambda msg, _d: clock.on_message(msg, time.perf_counter()), args.follow,
                  None if args.midi_api == "auto" else args.midi_api, client="improv-clock-in")
    console.print(f"following MIDI clock on {port.info.name} ({port.info.api}); Ctrl-C stops")
    last = None
    try:
        while not stop.wait(0.05):
            st = clock.state(time.perf_counter())
            beat = None if st.beat is None else int(st.beat)
            key = (beat, st.message)
            if key != last:
                bpm = f"{st.bpm:6.1f} BPM" if st.bpm else "   ? BPM"
                where = f"beat {beat + 1}" if beat is not None else "free"
                console.print(f"{where:10s} {bpm}  {st.message}")
                last = key
    finally:
        port.close()
    return 0
