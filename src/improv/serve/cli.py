"""``improv serve``: the band as a long-running server (OSC; HTTP with ``--http``).

The band's options, MIDI out and sound are ``improv listen``'s (the same parser groups
and checks); each ``/improv/session/start`` plays a session with them.
"""

from __future__ import annotations

import threading
import time

from ..errors import ConfigError


def add_commands(sub) -> None:
    from ..cli import COMMANDS, _band_arguments, _output_options, finite
    from .osc import DEFAULT_PORT

    p = sub.add_parser("serve", help=COMMANDS["serve"][1],
                       description="One long-running improv for other programs (a DAW, a sequencer, a live-coding "
                                   "setup): sessions start and end on request, notes arrive over OSC in place of "
                                   "the microphone, and the band's notes, features and state go back. The band "
                                   "plays through the MIDI port and the built-in synth as in `improv listen` "
                                   f"(--no-midi, --synth none for OSC only). OSC on 127.0.0.1:{DEFAULT_PORT} by "
                                   "default; see src/improv/serve/osc.py for the addresses.")
    net = p.add_argument_group("server")
    net.add_argument("--osc", metavar="[HOST:]PORT", default=str(DEFAULT_PORT),
                     help=f"the OSC server's UDP port (default {DEFAULT_PORT}); this machine only (127.0.0.1) "
                          "unless HOST is given: anyone who can reach the port can command the band")
    net.add_argument("--http", metavar="[HOST:]PORT", help="also serve HTTP on this port (default: off)")
    net.add_argument("--reply", metavar="HOST:PORT", help="send every reply and the band's notes, features and "
                     "state here (default: to each client that sent /improv/session/init or start)")
    net.add_argument("--seconds", type=finite, metavar="S", help="stop after this many seconds (default: until "
                     "Ctrl-C)")
    net.add_argument("--start", action="store_true", help="start a session at once (as /improv/session/start)")
    _output_options(p)
    _band_arguments(p)
    p.set_defaults(func=cmd_serve, parser=p, fast=False, input=None)


def _check_serve(args) -> None:
    from ..cli import check_band_arguments

    if args.seconds is not None and not 0 < args.seconds <= 7 * 24 * 3600:
        raise ConfigError(f"--seconds {args.seconds:g}: give more than 0, at most a week")
    check_band_arguments(args)
    if args.commands:
        raise ConfigError("serve --commands: a script runs on a session's clock; send the commands over OSC")


def _host_port(text: str, option: str) -> tuple[str, int]:
    from ..control.osc import parse_osc_address

    try:
        return parse_osc_address(text)
    except ConfigError:
        raise ConfigError(f"{option} {text!r}: give a port number (e.g. 9100) or HOST:PORT") from None


def cmd_serve(args) -> int:
    from ..cli import _band_options, _console, _midi_available, _parse_bands
    from ..session import ListenOptions
    from .osc import OscServer, parse_reply
    from .service import ServeService

    _check_serve(args)
    bands = _parse_bands(args.bands)
    if not bands:
        raise ConfigError("serve --bands none: nothing would answer; give the bands, e.g. --bands all")
    osc_at = _host_port(args.osc, "--osc")
    http_at = _host_port(args.http, "--http") if args.http else None
    reply = parse_reply(args.reply) if args.reply else None
    band_opts = _band_options(args, bands)
    err = _console(stderr=True)

    def say(text: str) -> None:
        err.print(f"improv: {text}", markup=False)

    midi = args.midi
    if midi and not args.midi_out and not _midi_available(args.midi_api):
        say("no MIDI system (no ALSA sequencer, no JACK server): going on without a MIDI port; "
            "--no-midi says this is meant")
        midi = False
    opts = ListenOptions(midi_out=args.midi_out, midi_api=args.midi_api, midi=midi, record=args.record,
                         bands=bands, synth=args.synth, soundfont=args.soundfont, keep_events=False, **band_opts)
    service = ServeService(opts, log=say)
    http = None
    osc = OscServer(service, *osc_at, log=say, reply=reply)
    try:
        if http_at is not None:
            try:
                from .http import HttpService
            except ImportError as e:
                raise ConfigError(f"--http: the HTTP server is not part of this improv ({e}); "
                                  "leave --http out") from None
            http = HttpService(*http_at)
            http.start()
        say(f"serving OSC on udp {osc.host}:{osc.port}" + (f", HTTP on {http_at[0]}:{http_at[1]}" if http else "")
            + f"; bands {','.join(bands)}; send /improv/session/init, then /improv/session/start")
        if args.start:
            service.start()
        stop = threading.Event()
        t0 = time.monotonic()
        try:
            while not stop.wait(0.2):
                if args.seconds is not None and time.monotonic() - t0 >= args.seconds:
                    break
        except KeyboardInterrupt:
            pass
    finally:
        service.close()
        osc.close()
        if http is not None:
            http.stop()
    last = service.last_result or {}
    notes = last.get("notes", {})
    say(f"served {service.sessions} session(s); OSC: {osc.received} messages in, {osc.errors} refused, "
        f"{osc.sent} sent" + (f"; last session: {sum(v for k, v in notes.items() if k != 'player')} band notes "
                              f"to {notes.get('player', 0)} heard" if last else ""))
    return 0
