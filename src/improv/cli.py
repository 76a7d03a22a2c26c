"""The ``improv`` command: parse, build, run, and turn errors into one line.

Each command lives in a function ``cmd_<name>(args) -> int``. Commands of other
areas register themselves through ``add_commands(subparsers)`` in their own module,
listed in ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import ConfigError, ImprovError

COMMAND_MODULES: list[str] = ["improv.timing.cli", "improv.rendercli", "improv.model.cli", "improv.control.learn"]


def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:  # a pipe or a file: wide enough that tables are not cut
        console = Console(stderr=stderr, highlight=False, width=200)
    return console


# ------------------------------------------------------------------ listen


def add_listen(sub) -> None:
    from .listen.trackers import DEFAULT_TRACKER, TRACKERS

    p = sub.add_parser("listen", help="hear the microphone (or --input FILE) and play MIDI",
                       description="Hear a monophonic player and send the notes (and the band) over MIDI.")
    src = p.add_argument_group("audio in")
    src.add_argument("--input", "-i", metavar="FILE", help="a recording (WAV/FLAC/OGG) instead of the microphone")
    src.add_argument("--fast", action="store_true", help="with --input: as fast as possible, not in real time")
    src.add_argument("--device", "-d", help="audio input: number or part of its name (see `improv devices`)")
    src.add_argument("--samplerate", "-r", type=int, help="audio input sample rate (default: the device's)")
    src.add_argument("--blocksize", "-b", type=int, default=256, help="samples per audio block (default 256)")
    lis = p.add_argument_group("hearing")
    lis.add_argument("--tracker", "-t", default=DEFAULT_TRACKER, choices=list(TRACKERS),
                     help=f"pitch tracker (default {DEFAULT_TRACKER})")
    lis.add_argument("--fmin", type=float, help="lowest pitch to hear in Hz (yin; default 40, below a bass guitar's low E)")
    lis.add_argument("--tuning", type=float, metavar="CENTS",
                     help="fix the player's tuning offset in cents instead of following it")
    lis.add_argument("--no-bends", dest="bends", action="store_false",
                     help="quantise to keys instead of sending pitch bend")
    lis.add_argument("--bend-range", type=float, default=2.0, help="pitch-bend range in semitones (default 2)")
    out = p.add_argument_group("MIDI out")
    out.add_argument("--midi-out", "-o", metavar="NAME", help="existing MIDI output port (part of its name); "
                     "default: a virtual port named improv")
    out.add_argument("--midi-api", choices=["auto", "alsa", "jack"], default="auto",
                     help="MIDI system (default: JACK if a server runs, else ALSA)")
    out.add_argument("--no-midi", dest="midi", action="store_false", help="open no MIDI port")
    out.add_argument("--record", metavar="DIR", help="write the session (input.wav, session.mid, commands.jsonl) "
                     "into DIR/<date-time>/")
    # [output] built-in sound
    snd = p.add_argument_group("sound")
    snd.add_argument("--synth", choices=["auto", "fluidsynth", "none"], default="auto",
                     help="play the band through FluidSynth (default auto: when no --midi-out is given and "
                          "FluidSynth and a SoundFont are there); none: MIDI only")
    snd.add_argument("--soundfont", metavar="FILE", help="General MIDI SoundFont for --synth "
                     "(default: the first found in /usr/share/sounds/sf2, sf3)")
    band = p.add_argument_group("band")
    band.add_argument("--bands", default="none", help="band players: none, all, or a comma list of bass,mid,high")
    band.add_argument("--tempo", type=float, metavar="BPM", help="play on this tempo (beat 1 on the player's first "
                      "note); default: follow the player's pulse when it is steady, else free mode")
    band.add_argument("--meter", default=None, help="2/4, 3/4, 4/4, 5/4, 6/8, 9/8 or 12/8 (default 4/4)")
    band.add_argument("--swing", default=None, metavar="PERCENT", help="swing of the band's off-beats, 50 "
                      "(straight, default) to 75")
    band.add_argument("--free", action="store_true", help="never play on a beat grid: answer phrases and gaps")
    band.add_argument("--changes", default=None, metavar="BARS|FILE|auto",
                      help="the chord changes the band plays, looped: inline bars '| Dm7 G7 | Cmaj7 | %% |' (%% repeats a bar), a file "
                           "(the same, or ChordPro [Am] one bar per line), or auto (the band proposes them); "
                           "default: follow the player's harmony. A lead sheet needs --tempo")
    band.add_argument("--key", default=None, help="the key of the changes, e.g. C, Am, 'Bb minor' (shown; "
                      "with --changes auto, the key the band proposes in)")
    band.add_argument("--count-in", type=int, default=0, metavar="BARS",
                      help="with --changes: bars counted in (the first chord's root on each beat) before the form")
    band.add_argument("--output-latency-ms", type=float, default=0.0, metavar="MS",
                      help="send band notes this much early (your synth's delay; default 0)")
    band.add_argument("--range", action="append", default=[], metavar="BAND=LOW-HIGH",
                      help="a band's range, e.g. bass=E1-C3 or mid=48-72 (default bass E1-C3, mid C3-C5, high C5-C7)")
    band.add_argument("--program", action="append", default=[], metavar="BAND=N",
                      help="a band's General MIDI program 0-127 (or N:VOLUME), e.g. bass=33 "
                           "(default bass 33, mid 4, high 65)")
    band.add_argument("--channel", action="append", default=[], metavar="BAND=N",
                      help="a band's MIDI channel 2-16 on the MIDI port (default bass 2, mid 3, high 4)")
    band.add_argument("--player-register", default="auto", metavar="WHERE",
                      help="where the player plays, so the band leaves room: auto (heard), bass, mid, high, "
                           "or LOW-HIGH")
    band.add_argument("--context-bars", type=float, default=8.0, help="bars the band remembers (default 8)")
    band.add_argument("--context-seconds", type=float, default=16.0,
                      help="seconds the band remembers in free mode (default 16)")
    band.add_argument("--band-generator", default="model", metavar="NAME",
                      help="what plays the band: model (the trained band model, default)")
    band.add_argument("--commands", metavar="FILE", help="scripted commands, one a line: 'SECONDS COMMAND' "
                      "(e.g. '2.0 bass: make room'), given when the session reaches them")
    band.add_argument("--seed", type=int, default=None, help="seed for the band's choices (default: random)")
    from .control import add_control_options

    add_control_options(p)  # --controller, --mapping, --osc, --no-keys
    p.add_argument("--quiet", "-q", action="store_true", help="no note log")
    p.set_defaults(func=cmd_listen)


def _parse_bands(text: str) -> tuple[str, ...]:
    from .events import BANDS

    if text.strip().lower() in ("", "none"):
        return ()
    names = tuple(b.strip().lower() for b in text.split(",") if b.strip())
    if text.strip().lower() == "all":
        return BANDS
    unknown = [b for b in names if b not in BANDS]
    if unknown:
        raise ConfigError(f"--bands {text!r}: unknown band {unknown[0]!r}; use none or a comma list of "
                          f"{','.join(BANDS)}")
    return names


def _assignments(items: list[str], option: str) -> dict[str, str]:
    """``["bass=33", "mid=4"]`` -> {"bass": "33", "mid": "4"} (commas also separate)."""
    from .events import BANDS

    out: dict[str, str] = {}
    for item in items:
        for part in item.split(","):
            if not part.strip():
                continue
            name, eq, value = part.partition("=")
            name = name.strip().lower()
            if not eq or not value.strip():
                raise ConfigError(f"{option} {part!r}: write BAND=VALUE, e.g. {option} bass=...")
            if name not in BANDS:
                raise ConfigError(f"{option} {part!r}: unknown band {name!r}; use {', '.join(BANDS)}")
            out[name] = value.strip()
    return out


def _band_options(args, bands: tuple[str, ...]) -> dict:
    """[band] ListenOptions fields from the band options (validated here, at the edge)."""
    from .record import CHANNELS
    from .synth import Voice
    from .timing import check_output_latency, check_tempo, parse_meter, parse_swing

    if args.tempo is not None:
        check_tempo(args.tempo)
    parse_meter(args.meter)
    parse_swing(args.swing)
    check_output_latency(args.output_latency_ms)
    if not bands and (args.changes is not None or args.count_in or args.key is not None):
        raise ConfigError("--changes/--key/--count-in: give --bands too (the band plays the changes)")
    ranges = {}
    if args.range:
        from .band.players import parse_range

        ranges = {b: parse_range(v) for b, v in _assignments(args.range, "--range").items()}
    voices = {}
    for b, v in _assignments(args.program, "--program").items():
        prog, _, vol = v.partition(":")
        try:
            voices[b] = Voice(int(prog), int(vol) if vol else 100)
        except ValueError:
            raise ConfigError(f"--program {b}={v}: give a program number 0-127 (optionally :VOLUME)") from None
    channels = {}
    for b, v in _assignments(args.channel, "--channel").items():
        if not v.isdigit() or not 1 <= int(v) <= 16:
            raise ConfigError(f"--channel {b}={v}: give a MIDI channel from 1 to 16")
        channels[b] = int(v) - 1
    player_ch = CHANNELS["player"]
    used = {**{b: CHANNELS[b] for b in ("bass", "mid", "high")}, **channels}
    if player_ch in used.values() or len(set(used.values())) < len(used):
        raise ConfigError(f"--channel: each band needs a channel of its own, not the player's ({player_ch + 1})")
    commands = []
    if args.commands:
        from .band.live import read_command_script

        commands = read_command_script(args.commands)
    if args.band_generator != "model":
        from .band.generators import GENERATORS

        if args.band_generator not in GENERATORS:
            raise ConfigError(f"--band-generator {args.band_generator!r}: unknown; use {', '.join(GENERATORS)}")
    out: dict = {"commands": commands, "channels": channels, "output_latency_ms": args.output_latency_ms,
                 "voices": voices or None}
    if bands:
        from .band.band import BandSettings, player_register_setting

        full_ranges = {**{b: r for b, r in ranges.items()}}
        out["band"] = BandSettings(
            bands=bands, ranges=full_ranges, tempo=args.tempo, meter=args.meter, swing=args.swing, free=args.free,
            context_bars=args.context_bars, context_seconds=args.context_seconds,
            player_register=player_register_setting(args.player_register, {
                **{"bass": (28, 48), "mid": (48, 72), "high": (72, 96)}, **ranges}),
            seed=args.seed, generator=args.band_generator, changes=args.changes, count_in=args.count_in,
            key=args.key).check()
    return out


def cmd_listen(args) -> int:
    from .control import control_options
    from .display import make_display
    from .session import ListenOptions, run_listen

    bands = _parse_bands(args.bands)
    band_opts = _band_options(args, bands)
    opts = ListenOptions(
        input=args.input, device=args.device, samplerate=args.samplerate, blocksize=args.blocksize,
        fast=args.fast, tracker=args.tracker, bends=args.bends, bend_range=args.bend_range,
        midi_out=args.midi_out, midi_api=args.midi_api, midi=args.midi, record=args.record, bands=bands,
        fmin=args.fmin, tuning=args.tuning, synth=args.synth, soundfont=args.soundfont, **band_opts,
        controls=control_options(args),
    )
    console = _console()
    # [output] live panel on a terminal, log lines otherwise, nothing with --quiet
    display = make_display(console, quiet=args.quiet)
    try:
        with display:
            result = run_listen(opts, on_event=display.on_event, on_start=display.attach,
                                on_command=display.on_command, view=display,
                                on_warning=lambda text: console.print(f"improv: {text}"))
    except KeyboardInterrupt:
        console.print("stopped; all notes off sent")
        return 0
    notes = sum(1 for e in result.events if type(e).__name__ == "NoteOn" and e.source == "player")
    parts = [f"{notes} notes"]
    if bands:  # [band]
        played = sum(1 for e in result.events if type(e).__name__ == "NoteOn" and e.source in bands)
        parts.append(f"the band ({','.join(bands)}) played {played}")
    if result.midi_port:
        parts.append(f"MIDI to {result.midi_port}")
    if result.synth and args.synth != "none":
        parts.append(f"sound: {result.synth}")
    if result.recording:
        parts.append(f"recorded to {result.recording}")
    parts.append(f"{result.overflows} dropped blocks")
    if result.recording_error:
        parts.append(result.recording_error)
    if result.midi_errors:
        parts.append(f"{result.midi_errors} MIDI messages could not be sent")
    console.print("; ".join(parts))
    return 0


# ------------------------------------------------------------------- bench


def add_bench(sub) -> None:
    from .listen.trackers import DEFAULT_TRACKER, TRACKERS

    p = sub.add_parser("bench", help="score recordings through the live pipeline",
                       description="Run recordings block by block through the live pipeline and score the "
                                   "notes against the annotations beside them.")
    p.add_argument("files", nargs="+", metavar="FILE", help="recordings (a folder: all audio files in it)")
    p.add_argument("--tracker", "-t", default=DEFAULT_TRACKER, choices=[*TRACKERS, "all"],
                   help=f"pitch tracker, or all (default {DEFAULT_TRACKER})")
    p.add_argument("--blocksize", "-b", type=int, default=256, help="samples per block (default 256)")
    p.add_argument("--jobs", "-j", type=int, default=1, help="files in parallel (default 1)")
    p.add_argument("--json", metavar="FILE", help="write all figures to FILE as JSON")
    p.add_argument("--per-file", action="store_true", help="a row per file")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from .benchcli import run_bench

    return run_bench(args, _console())


# ---------------------------------------------------------- devices, ports


def add_devices(sub) -> None:
    p = sub.add_parser("devices", help="list audio inputs")
    p.set_defaults(func=cmd_devices)


def cmd_devices(args) -> int:
    from .audio import list_input_devices

    console = _console()
    devices = list_input_devices()
    if not devices:
        console.print("no audio inputs found; connect one, start your audio server, or use --input FILE")
        return 1
    for d in devices:
        console.print(f"{d['index']:3d}  {d['name']}  ({d['hostapi_name']}, {d['max_input_channels']} in, "
                      f"{d['default_samplerate']:.0f} Hz)")
    return 0


def add_ports(sub) -> None:
    p = sub.add_parser("ports", help="list MIDI ports")
    p.add_argument("--midi-api", choices=["auto", "alsa", "jack"], default=None)
    p.set_defaults(func=cmd_ports)


def cmd_ports(args) -> int:
    from .errors import MidiError
    from .midi import list_ports

    console = _console()
    ports = list_ports(args.midi_api)
    if not ports:
        raise MidiError("no MIDI system: neither the ALSA sequencer nor a JACK server is available; "
                        "load snd-seq or start JACK")
    for api, d in ports.items():
        console.print(f"[bold]{api}[/bold]")
        for kind in ("outputs", "inputs"):
            console.print(f"  {kind}:")
            for name in d[kind] or ["(none)"]:
                console.print(f"    {name}")
    return 0


# -------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="improv", description="A real-time improvisation partner.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (add_listen, add_bench, add_devices, add_ports):
        add(sub)
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(sub)
    return parser


def _version() -> str:
    from . import __version__

    return f"improv {__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ImprovError as e:
        print(f"improv: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

