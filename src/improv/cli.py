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
    p.add_argument("--bands", default="none", help="band players: none, or a comma list of bass,mid,high")
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


def cmd_listen(args) -> int:
    from .display import make_display
    from .session import ListenOptions, run_listen

    bands = _parse_bands(args.bands)
    if bands:
        raise ConfigError("--bands: the band players are not part of this version yet; use --bands none")
    opts = ListenOptions(
        input=args.input, device=args.device, samplerate=args.samplerate, blocksize=args.blocksize,
        fast=args.fast, tracker=args.tracker, bends=args.bends, bend_range=args.bend_range,
        midi_out=args.midi_out, midi_api=args.midi_api, midi=args.midi, record=args.record, bands=bands,
        fmin=args.fmin, tuning=args.tuning, synth=args.synth, soundfont=args.soundfont,
    )
    console = _console()
    # [output] live panel on a terminal, log lines otherwise, nothing with --quiet
    display = make_display(console, quiet=args.quiet)
    try:
        with display:
            result = run_listen(opts, on_event=display.on_event, on_start=display.attach,
                                on_command=display.on_command)
    except KeyboardInterrupt:
        console.print("stopped; all notes off sent")
        return 0
    notes = sum(1 for e in result.events if type(e).__name__ == "NoteOn")
    parts = [f"{notes} notes"]
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

