"""The ``improv`` command: parse, build, run, and turn errors into one line.

Each command lives in a function ``cmd_<name>(args) -> int``. Commands of other
areas register themselves through ``add_commands(subparsers)`` in their own module;
:data:`COMMANDS` names the module of each command and its one-line help, so that
``improv --help`` imports none of them and ``improv X`` imports only X's module
(torch, scipy and the trackers load when a command runs, not to build its parser).
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys

from .errors import ConfigError, ImprovError

# name: (module whose add_commands(sub) registers it, the help shown by `improv --help`).
# A new command: add_parser(name, ...) in its module's add_commands, and a line here.
COMMANDS: dict[str, tuple[str, str]] = {
    "listen": ("improv.cli", "hear the microphone (or --input FILE) and play with the band over MIDI"),
    "jam": ("improv.cli", "the band plays by itself, endlessly (--listen: the microphone joins)"),
    "devices": ("improv.cli", "list audio inputs"),
    "ports": ("improv.cli", "list MIDI ports"),
    "render": ("improv.rendercli", "mix a recorded session to WAV and draw its piano roll"),
    "recover": ("improv.rendercli", "write session.mid of a session that crashed, from its journal"),
    "learn": ("improv.control.learn", "MIDI learn: press a switch for each command, write the mapping file"),
    "mapping": ("improv.control.learn", "show (and check) the command mapping, or write the default one"),
    "clock": ("improv.timing.cli", "send MIDI clock (fixed, tapped or Link tempo) or follow one"),
    "bench": ("improv.cli", "score recordings through the live pipeline"),
    "transcribe": ("improv.transcribecli", "write recordings' notes as MIDI transcripts (offline)"),
    "train": ("improv.model.cli", "train the band model on the symbolic corpora, or on your sessions"),
    "keep": ("improv.model.cli", "mark recorded sessions you liked: `train --sessions` learns their band parts"),
    "eval-model": ("improv.model.cli", "score the band model on held-out pieces"),
    "continue": ("improv.model.cli", "continue MIDI files with the band model"),
    "generate": ("improv.model.cli", "generate music from nothing with the band model"),
    "serve": ("improv.serve.cli", "a long-running band for other programs: sessions, notes and commands over OSC"),
}
COMMAND_MODULES: list[str] = list(dict.fromkeys(m for m, _ in COMMANDS.values()))

# The pitch trackers' names, without importing them (improv.listen.trackers.TRACKERS; a test
# checks that the two agree).
TRACKER_NAMES: tuple[str, ...] = ("yin", "crepe-tiny", "crepe-full", "pesto")
DEFAULT_TRACKER = "yin"


# When a heard note is sent (improv.listen.segmenter.DECIDE_PRESETS; a test checks they agree).
DECIDE_NAMES: tuple[str, ...] = ("early", "balanced", "settled")
DEFAULT_DECIDE = "balanced"


def add_decide(p) -> None:
    p.add_argument("--decide", choices=list(DECIDE_NAMES), default=DEFAULT_DECIDE,
                   help="when a note is sent: early (the first confident frame, corrected by bends and "
                        "retakes), settled (once its pitch holds, up to 70 ms), or balanced "
                        f"(default {DEFAULT_DECIDE})")


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``improv listen: ...``) and exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def finite(text: str) -> float:
    """argparse type: a finite number (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:  # a pipe or a file: wide enough that tables are not cut
        console = Console(stderr=stderr, highlight=False, width=200)
    return console


# ------------------------------------------------------------------ listen


# Settings of `improv listen` that a settings file does not hold.
_NOT_SETTINGS = ("config", "save_config", "func", "command", "parser")


def add_listen(sub) -> None:
    p = sub.add_parser("listen", help=COMMANDS["listen"][1],
                       description="Hear a monophonic player and play with them: the notes heard, and the band's "
                                   "answer, go out over MIDI and through the built-in synth.")
    _session_options(p)
    p.set_defaults(func=cmd_listen, parser=p)


def add_jam(sub) -> None:
    p = sub.add_parser("jam", help=COMMANDS["jam"][1],
                       description="The band plays by itself, from the first beat, on a tempo (default 110 BPM) "
                                   "and its own changes (default --changes auto), until Ctrl-C or --seconds. "
                                   "--listen turns the microphone on: a player can join at any time and the "
                                   "band answers. Commands, recording and output work as in `listen`.")
    _session_options(p, jam=True)
    p.set_defaults(func=cmd_jam, parser=p, tempo=110.0, changes="auto")


def _session_options(p, jam: bool = False) -> None:
    """The options of a session (listen, jam)."""
    src = p.add_argument_group("audio in")
    if jam:
        src.add_argument("--listen", action="store_true", help="the microphone on: a player may join the band")
        src.add_argument("--seconds", type=finite, metavar="S", help="stop after this many seconds "
                         "(default: until Ctrl-C)")
        src.add_argument("--fast", action="store_true", help="with --seconds, no --listen: as fast as possible, "
                         "not in real time (to record or render a jam)")
        p.set_defaults(input=None)
    else:
        src.add_argument("--input", "-i", metavar="FILE", help="a recording (WAV/FLAC/OGG) instead of the "
                         "microphone")
        src.add_argument("--fast", action="store_true", help="with --input: as fast as possible, not in real time")
    src.add_argument("--device", "-d", help="audio input: number or part of its name (see `improv devices`)")
    src.add_argument("--samplerate", "-r", type=int, help="audio input sample rate (default: the device's)")
    src.add_argument("--blocksize", "-b", type=int, default=256,
                     help=f"samples per audio block, {BLOCKSIZE[0]}-{BLOCKSIZE[1]} (default 256; match your JACK "
                          "period)")
    lis = p.add_argument_group("hearing")
    lis.add_argument("--tracker", "-t", default=DEFAULT_TRACKER, choices=list(TRACKER_NAMES),
                     help=f"pitch tracker (default {DEFAULT_TRACKER})")
    lis.add_argument("--fmin", type=finite,
                     help="lowest pitch to hear in Hz (yin; default 40, below a bass guitar's low E)")
    lis.add_argument("--tuning", type=finite, metavar="CENTS",
                     help="fix the player's tuning offset in cents (-100 to 100) instead of following it")
    lis.add_argument("--no-bends", dest="bends", action="store_false",
                     help="quantise to keys instead of sending pitch bend")
    lis.add_argument("--bend-range", type=finite, default=2.0, help="pitch-bend range in semitones (default 2)")
    add_decide(lis)
    _output_options(p)
    _band_arguments(p)
    from .control import add_control_options

    add_control_options(p)  # --controller, --mapping, --osc, --no-keys
    cfg = p.add_argument_group("settings file")
    cfg.add_argument("--config", metavar="FILE", help="read settings from a TOML file (keys are the long option "
                     "names, e.g. tempo = 96, bands = \"bass,mid\", program = [\"bass=33\"]); options given on "
                     "the command line win")
    cfg.add_argument("--save-config", metavar="FILE", help="write the settings in force to FILE (TOML) and go on")
    add_log_options(p)


def add_log_options(p) -> None:
    log = p.add_argument_group("log")
    log.add_argument("--quiet", "-q", action="store_true", help="no note log")
    log.add_argument("--verbose", "-v", action="store_true", help="log pitch bends too")


def _output_options(p) -> None:
    """MIDI out and the built-in sound (listen, jam, serve)."""
    out = p.add_argument_group("MIDI out")
    out.add_argument("--midi-out", "-o", metavar="PORT", help="existing MIDI output port (part of its name); "
                     "default: a virtual port improv:improv")
    out.add_argument("--midi-api", choices=["auto", "alsa", "jack"], default="auto",
                     help="MIDI system (default: JACK if a server runs, else ALSA)")
    out.add_argument("--no-midi", dest="midi", action="store_false", help="open no MIDI port")
    out.add_argument("--cc-map", metavar="FILE", help="send the band's state as MIDI CC macros (intensity, "
                     "density, chaos... -> CC numbers and channels) on its beats: a TOML map, see "
                     "examples/cc-map.toml")
    out.add_argument("--record", metavar="DIR", help="write the session (input.wav, session.mid, commands.jsonl) "
                     "into DIR/<date-time>/")
    snd = p.add_argument_group("sound")
    snd.add_argument("--synth", choices=["auto", "fluidsynth", "sampler", "none"], default="auto",
                     help="play the band through FluidSynth (default auto: when no --midi-out is given and "
                          "FluidSynth and a SoundFont are there); sampler: with your own notes, recorded as you "
                          "play (JACK; FluidSynth until it has them); none: MIDI only")
    snd.add_argument("--voice", action="append", default=[], metavar="BAND=SOUND",
                     help="one band's sound: sampler (your notes) or gm (General MIDI), e.g. mid=sampler")
    snd.add_argument("--sampler-bank", metavar="DIR", help="load the sampler's notes from DIR (if it holds a "
                     "bank) and save them there at the end")
    snd.add_argument("--sampler-seconds", type=finite, default=60.0, metavar="S",
                     help="the sampler keeps at most S seconds of your notes (default 60)")
    snd.add_argument("--sampler-phrases", action="store_true",
                     help="take over starts by replaying your last phrase (moved by octaves into the band's "
                          "range, on the band's grid), then the model goes on")
    snd.add_argument("--soundfont", metavar="FILE", help="General MIDI SoundFont for --synth "
                     "(default: the first found in /usr/share/sounds/sf2, sf3)")


def _band_arguments(p) -> None:
    """The band's options (listen, jam, serve): read by :func:`_band_options`."""
    band = p.add_argument_group("band")
    band.add_argument("--bands", default="all",
                      help="band players: all (default: bass, mid, high and drums), none, or a comma list of "
                      "bass,mid,high,drums")
    band.add_argument("--tempo", type=finite, metavar="BPM", help="play on this tempo (beat 1 on the player's "
                      "first note); default: follow the player's pulse when it is steady, else free mode")
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
    band.add_argument("--output-latency-ms", type=finite, default=0.0, metavar="MS",
                      help="send band notes this much early (your synth's delay; default 0)")
    band.add_argument("--range", action="append", default=[], metavar="BAND=LOW-HIGH",
                      help="a band's range, e.g. bass=E1-C3 or mid=48-72 (default bass E1-C3, mid C3-C5, high C5-C7)")
    band.add_argument("--program", action="append", default=[], metavar="BAND=PROGRAM",
                      help="a band's General MIDI program, 0-127 or its name (optionally :VOLUME), e.g. bass=33 "
                           "or bass='fretless bass' (default bass 33, mid 4, high 65)")
    band.add_argument("--channel", action="append", default=[], metavar="BAND=N",
                      help="a band's MIDI channel 2-16 but not 10, the drums' (default bass 2, mid 3, high 4)")
    band.add_argument("--player-register", default="auto", metavar="WHERE",
                      help="where the player plays, so the band leaves room: auto (heard), bass, mid, high, "
                           "or LOW-HIGH")
    band.add_argument("--context-bars", type=finite, default=8.0,
                      help=f"bars the band remembers, up to {CONTEXT_BARS_MAX} (default 8)")
    band.add_argument("--context-seconds", type=finite, default=16.0,
                      help=f"seconds the band remembers in free mode, up to {CONTEXT_SECONDS_MAX} (default 16)")
    band.add_argument("--model", default=None, metavar="FILE",
                      help="the band's model (default models/band.pt; e.g. models/you.pt from `improv train "
                           "--sessions`)")
    band.add_argument("--band-generator", default="model", metavar="NAME",
                      help="what plays the band: model (the trained band model, default)")
    band.add_argument("--commands", metavar="FILE", help="scripted commands, one a line: 'SECONDS COMMAND' "
                      "(e.g. '2.0 bass: make room'), given when the session reaches them")
    band.add_argument("--seed", type=int, default=None,
                      help="seed for the band's choices, 0 to 2^32-1 (default: random)")
    # drums and the studio's clock
    band.add_argument("--style", default=None, metavar="NAME", help="the drummer's style: swing, straight, funk, "
                      "bossa, ballad, rock, waltz or free (default straight; sets --meter and --swing when not given)")
    band.add_argument("--kit", default=None, metavar="NAME", help="GM drum kit: standard, room, power, electronic, "
                      "tr808, jazz, brush, orchestra (default standard)")
    band.add_argument("--count-in", type=int, default=0, metavar="BARS",
                      help="count in this many bars (sticks; with --changes also the first chord's root on each "
                      "beat) before the band and the form start; needs --tempo")
    band.add_argument("--click", action="store_true", help="a metronome click on every beat (drum channel)")
    band.add_argument("--clock-in", metavar="PORT", help="follow the MIDI clock (start/stop, tempo) arriving on "
                      "this MIDI input port (part of its name)")
    band.add_argument("--link", action="store_true", help="play to an Ableton Link session's tempo and phase "
                      "(--tempo: the tempo it starts with when alone)")
    band.add_argument("--clock-out", action="store_true", help="send MIDI clock (24 PPQN, start/stop) from the "
                      "band's tempo on the MIDI port")


BLOCKSIZE = (16, 8192)          # samples per block: 8192 is 170 ms at 48 kHz, already far too late to answer
CONTEXT_BARS_MAX = 64
CONTEXT_SECONDS_MAX = 300
GM_DRUM_CHANNEL = 10            # as musicians count channels, 1-16


def _parse_bands(text: str) -> tuple[str, ...]:
    from .events import ALL_BANDS as BANDS

    if text.strip().lower() in ("", "none"):
        return ()
    if text.strip().lower() == "all":
        return BANDS
    names = tuple(b.strip().lower() for b in text.split(",") if b.strip())
    unknown = [b for b in names if b not in BANDS]
    if unknown:
        raise ConfigError(f"--bands {text!r}: unknown band {unknown[0]!r}; use none, all or a comma list of "
                          f"{','.join(BANDS)}")
    twice = sorted({b for b in names if names.count(b) > 1})
    if twice:
        raise ConfigError(f"--bands {text!r}: {twice[0]} is named twice; each band plays once")
    return names


def _assignments(items: list[str], option: str) -> dict[str, str]:
    """``["bass=33", "mid=4"]`` -> {"bass": "33", "mid": "4"} (commas also separate)."""
    from .events import ALL_BANDS as BANDS

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
            out[name] = value.strip().strip("'\"")
    return out


def _check_listen(args) -> None:
    """Refuse values out of range and options that contradict each other (one line each)."""
    jam = args.func is cmd_jam
    if jam and args.fast and (args.seconds is None or args.listen):
        raise ConfigError("jam --fast needs --seconds and no --listen: the microphone can only be heard in real time")
    if jam and args.seconds is not None and not 0 < args.seconds <= 24 * 3600:
        raise ConfigError(f"--seconds {args.seconds:g}: give more than 0, at most a day")
    if jam and args.tempo is None and not args.free:
        raise ConfigError("jam needs a tempo (--tempo BPM): the band starts on the first beat, with no player")
    if args.fast and not args.input and not jam:
        raise ConfigError("--fast needs --input FILE: the microphone can only be heard in real time")
    if not BLOCKSIZE[0] <= args.blocksize <= BLOCKSIZE[1]:
        raise ConfigError(f"--blocksize {args.blocksize}: give {BLOCKSIZE[0]} to {BLOCKSIZE[1]} samples "
                          "(256 is 5.3 ms at 48 kHz)")
    if args.samplerate is not None and not 8000 <= args.samplerate <= 384000:
        raise ConfigError(f"--samplerate {args.samplerate}: give 8000 to 384000 Hz")
    if not 0 < args.bend_range <= 24:
        raise ConfigError(f"--bend-range {args.bend_range:g}: give 0 < semitones <= 24")
    if args.tuning is not None and not -100 <= args.tuning <= 100:
        raise ConfigError(f"--tuning {args.tuning:g}: give an offset from -100 to 100 cents")
    check_band_arguments(args)


def check_band_arguments(args) -> None:
    """The checks of the band's own options (seed, tempo or free, context), shared by every
    command that plays the band (listen, jam, serve)."""
    if args.seed is not None and not 0 <= args.seed < 2 ** 32:
        raise ConfigError(f"--seed {args.seed}: give a whole number from 0 to {2 ** 32 - 1}")
    if args.tempo is not None and args.free:
        raise ConfigError(f"--tempo {args.tempo:g} and --free contradict each other: a tempo puts the band on "
                          "a beat grid, --free keeps it off one; give one of them")
    if not 0 < args.context_bars <= CONTEXT_BARS_MAX:
        raise ConfigError(f"--context-bars {args.context_bars:g}: give more than 0 and at most {CONTEXT_BARS_MAX}")
    if not 0 < args.context_seconds <= CONTEXT_SECONDS_MAX:
        raise ConfigError(f"--context-seconds {args.context_seconds:g}: give more than 0 and at most "
                          f"{CONTEXT_SECONDS_MAX}")


def _band_options(args, bands: tuple[str, ...]) -> dict:
    """The band's ListenOptions fields from the band options (validated here, at the edge)."""
    from .gm import program_number
    from .output import CHANNELS
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
        prog, _, vol = v.rpartition(":") if ":" in v else (v, "", "")
        try:
            number = program_number(prog.strip().strip("'\""))
            voices[b] = Voice(number, int(vol) if vol else 100)
        except ConfigError as e:
            raise ConfigError(f"--program {b}={v}: {e}") from None
        except ValueError:
            raise ConfigError(f"--program {b}={v}: give a program 0-127 or a General MIDI name "
                              "(optionally :VOLUME 0 to 127)") from None
    channels = {}
    for b, v in _assignments(args.channel, "--channel").items():
        if not v.isdigit() or not 1 <= int(v) <= 16:
            raise ConfigError(f"--channel {b}={v}: give a MIDI channel from 1 to 16")
        if int(v) == GM_DRUM_CHANNEL and b != "drums":
            raise ConfigError(f"--channel {b}={v}: channel {GM_DRUM_CHANNEL} is General MIDI's drum channel and "
                              "would play the band as drums; give another")
        channels[b] = int(v) - 1
    player_ch = CHANNELS["player"]
    used = {**{b: CHANNELS[b] for b in ("bass", "mid", "high", "drums") if b != "drums" or b in bands},
            **channels}
    if player_ch in used.values() or len(set(used.values())) < len(used):
        raise ConfigError(f"--channel: each band needs a channel of its own, not the player's ({player_ch + 1})")
    style = None
    if args.style is not None:  # [drums]
        from .band.drums import check_style

        style = check_style(args.style)
    if args.kit is not None:
        from .band.drums import check_kit

        voices["drums"] = Voice(check_kit(args.kit), voices["drums"].volume if "drums" in voices else 100)
    commands = []
    if args.commands:
        from .band.live import read_command_script

        commands = read_command_script(args.commands)
    if args.band_generator != "model":
        from .band.generators import GENERATORS

        if args.band_generator not in GENERATORS:
            raise ConfigError(f"--band-generator {args.band_generator!r}: unknown; use {', '.join(GENERATORS)}")
    if args.clock_out and (not bands or args.fast or not args.midi):
        raise ConfigError("--clock-out needs a band (--bands), real time (no --fast) and a MIDI port (no --no-midi)")
    if args.clock_in and (not bands or args.fast):
        raise ConfigError("--clock-in needs a band (--bands) and real time (no --fast)")
    if args.link and (not bands or args.fast or args.clock_in):
        raise ConfigError("--link needs a band (--bands), real time (no --fast) and no --clock-in")
    cc_map = None
    if getattr(args, "cc_map", None):
        if not bands:
            raise ConfigError("--cc-map needs a band (--bands): the macros follow the band's state")
        from .band.macros import load_cc_map

        cc_map = load_cc_map(args.cc_map, channels)
    out: dict = {"commands": commands, "channels": channels, "output_latency_ms": args.output_latency_ms,
                 "cc_map": cc_map,
                 "voices": voices or None, "clock_out": args.clock_out, "clock_in": args.clock_in,
                 "link": args.link, **_sampler_options(args, bands)}
    if bands:
        from .band.band import BandSettings, player_register_setting
        from .output import RANGES

        full_ranges = {**{b: r for b, r in ranges.items()}}
        out["band"] = BandSettings(
            bands=bands, ranges=full_ranges, tempo=args.tempo, meter=args.meter, swing=args.swing, free=args.free,
            context_bars=args.context_bars, context_seconds=args.context_seconds,
            player_register=player_register_setting(args.player_register, {
                **RANGES, **ranges}),
            seed=args.seed, generator=args.band_generator, model=args.model, style=style, count_in=args.count_in,
            click=args.click, changes=args.changes, key=args.key, phrases=args.sampler_phrases).check()
    return out


def _sampler_options(args, bands: tuple[str, ...]) -> dict:
    """``--synth sampler``, ``--voice BAND=sampler|gm``, ``--sampler-bank``, ``--sampler-seconds``."""
    from .events import BANDS

    sampled = {b for b in BANDS if b in bands} if args.synth == "sampler" else set()
    for b, v in _assignments(args.voice, "--voice").items():
        if b not in BANDS:
            raise ConfigError(f"--voice {b}={v}: the sampler plays {', '.join(BANDS)} only; give one of them")
        sound = v.strip().lower()
        if sound not in ("sampler", "gm"):
            raise ConfigError(f"--voice {b}={v}: give sampler (your own notes) or gm (General MIDI)")
        if sound == "sampler":
            sampled.add(b)
        else:
            sampled.discard(b)
    if not 1.0 <= args.sampler_seconds <= 3600.0:
        raise ConfigError(f"--sampler-seconds {args.sampler_seconds:g}: give 1 to 3600 seconds")
    if sampled and args.fast:
        raise ConfigError("the sampler plays in real time through JACK: leave out --fast")
    if sampled and args.synth == "none":
        raise ConfigError("--voice BAND=sampler with --synth none: choose one (--synth auto plays the other bands)")
    if args.sampler_bank is not None:
        if not sampled:
            raise ConfigError("--sampler-bank: give --synth sampler or --voice BAND=sampler too")
        from .sampler.bank import check_bank_folder

        check_bank_folder(args.sampler_bank)
    return {"sampler": tuple(b for b in BANDS if b in sampled), "sampler_bank": args.sampler_bank,
            "sampler_seconds": args.sampler_seconds}


# ------------------------------------------------------------ settings file


def listen_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict:
    """The settings of ``args`` as a settings file holds them: {long option name: value}."""
    out = {}
    for action in parser._actions:
        if not action.option_strings or action.dest in _NOT_SETTINGS or action.dest == "help":
            continue
        value = getattr(args, action.dest, None)
        if value is None or value == []:
            continue
        out[action.dest.replace("_", "-")] = list(value) if isinstance(value, list) else value
    return out


def settings_argv(parser: argparse.ArgumentParser, settings: dict, source: str) -> list[str]:
    """A settings file's {name: value} as command-line arguments of ``parser``; a bad key or value
    raises a :class:`ConfigError` naming it and ``source``."""
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in _NOT_SETTINGS
               and a.dest != "help"}
    argv: list[str] = []
    for key, value in settings.items():
        action = actions.get(str(key).replace("-", "_"))
        if action is None:
            known = ", ".join(sorted(d.replace("_", "-") for d in actions))
            raise ConfigError(f"{source}: unknown setting {key!r}; settings are {known}")
        flag = max(action.option_strings, key=len)
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if not isinstance(value, bool):
                raise ConfigError(f"{source}: {key} = {value!r}: give true or false")
            if value != action.default:
                argv.append(flag)
            continue
        values = value if isinstance(value, list) else [value]
        if not isinstance(value, list) or isinstance(action, argparse._AppendAction):
            for v in values:
                if isinstance(v, (dict, list, bool)) or v is None:
                    raise ConfigError(f"{source}: {key} = {value!r}: give a number or a string")
                argv.append(f"{flag}={v}")
        else:
            raise ConfigError(f"{source}: {key} = {value!r}: give one value, not a list")
    return argv


def read_settings(path: str) -> dict:
    import tomllib

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"--config {path}: cannot read it ({e.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"--config {path}: not a TOML file ({e})") from None


def write_settings(path: str, settings: dict) -> None:
    import tomli_w

    text = "# improv listen settings: improv listen --config " + path + "\n" + tomli_w.dumps(settings)
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise ConfigError(f"--save-config {path}: cannot write it ({e.strerror})") from None


# ------------------------------------------------------------------ run it


def _without_bends(on_event):
    def log(ev) -> None:
        if type(ev).__name__ != "PitchBend":
            on_event(ev)

    return log


def _midi_available(api: str) -> bool:
    """Whether a MIDI system is there for the virtual port (ALSA's sequencer device, or a JACK server)."""
    import os

    from .midi import jack_running

    from .synth import _c_stderr_captured

    if api in ("auto", "alsa") and os.path.exists("/dev/snd/seq"):
        return True
    if api not in ("auto", "jack"):
        return False
    with _c_stderr_captured():  # libjack's diagnostics when no server answers: improv says it in one line
        return jack_running()


def cmd_jam(args) -> int:
    """The band alone (a session whose source is silence, or the microphone with --listen),
    its clock running from the first beat."""
    if args.free:
        raise ConfigError("jam plays on a tempo; --free needs a player to answer (use listen --free)")
    return cmd_listen(args, jam=True)


def cmd_listen(args, jam: bool = False) -> int:
    import threading
    import time

    from .control import control_options
    from .display import make_display
    from .session import ListenOptions, run_listen

    _check_listen(args)
    bands = _parse_bands(args.bands)
    if jam and not bands:
        raise ConfigError("jam --bands none: nothing would play; give the bands, e.g. --bands all")
    band_opts = _band_options(args, bands)
    source = None
    if jam:
        from dataclasses import replace

        band_opts["band"] = replace(band_opts["band"], start_clock=True)
        if not args.listen:
            from .audio import SilentSource

            source = SilentSource(48000, args.blocksize, fast=args.fast, seconds=args.seconds)
    if args.save_config:
        write_settings(args.save_config, listen_settings(args.parser, args))
    err = _console(stderr=True)
    midi = args.midi
    if midi and not args.midi_out and not _midi_available(args.midi_api):
        err.print("improv: no MIDI system (no ALSA sequencer, no JACK server): going on without a MIDI port; "
                  "--no-midi says this is meant", markup=False)
        midi = False
    opts = ListenOptions(
        input=args.input, device=args.device, samplerate=args.samplerate, blocksize=args.blocksize,
        fast=args.fast, tracker=args.tracker, bends=args.bends, bend_range=args.bend_range,
        decide=args.decide, midi_out=args.midi_out, midi_api=args.midi_api, midi=midi, record=args.record, bands=bands,
        fmin=args.fmin, tuning=args.tuning, synth=args.synth, soundfont=args.soundfont, **band_opts,
        controls=control_options(args), keep_events=False,
    )
    console = _console()  # the notes (stdout); status lines and the summary go to stderr
    from .events import BANDS

    display = make_display(console, quiet=args.quiet, bands=BANDS + (("drums",) if "drums" in bands else ()))
    seen: dict = {}

    def started(listener, source) -> None:
        seen["source"] = source
        display.attach(listener, source)

    on_event = display.on_event if args.verbose else _without_bends(display.on_event)
    t0 = time.monotonic()
    stop = threading.Event()
    if jam and args.listen and args.seconds is not None:  # the microphone has no end of its own
        timer = threading.Timer(args.seconds, stop.set)
        timer.daemon = True
        timer.start()
    try:
        with display:
            result = run_listen(opts, stop=stop, source=source, on_event=on_event, on_start=started,
                                on_command=display.on_command, view=display,
                                on_warning=lambda text: err.print(f"improv: {text}", markup=False))
    except KeyboardInterrupt:  # before the session's loop ran: nothing was recorded
        err.print(_stopped_line(seen.get("source"), time.monotonic() - t0, None), markup=False)
        return 0
    if getattr(result, "interrupted", False):
        err.print(_stopped_line(seen.get("source"), result.seconds, str(result.recording or "") or None),
                  markup=False)
        return 0
    notes = result.notes["player"]
    parts = [f"{notes} notes"]
    if bands:
        played = sum(result.notes[b] for b in bands)
        parts.append(f"the band ({','.join(bands)}) played {played}")
    if result.midi_port:
        parts.append(f"MIDI to {result.midi_port}")
    if result.synth and args.synth != "none":
        sound = result.synth
        if not result.midi_port and sound.startswith("MIDI only"):  # no port either: say so
            sound = "none live" + sound[len("MIDI only"):]
        parts.append(f"sound: {sound}")
    if getattr(result, "sampler", None):
        parts.append(f"sampler: {result.sampler}")
    if result.recording:
        parts.append(f"recorded to {result.recording}")
    parts.append(f"{result.overflows} dropped blocks")
    if getattr(result, "band_lead", None) is not None:  # the band's plan ahead of the output (real time)
        parts.append(f"band plan ahead >= {1000 * result.band_lead:.0f} ms, "
                     f"{result.band_late_frames} frames late")
    if getattr(result, "controls", 0):
        parts.append(f"{result.controls} CC macro messages")
    if result.recording_error:
        parts.append(result.recording_error)
    if result.midi_errors:
        parts.append(f"{result.midi_errors} MIDI messages could not be sent")
    err.print("; ".join(parts), markup=False, soft_wrap=True)  # one line, for scripts and logs too
    return 0


def _stopped_line(source, seconds: float | None, recording) -> str:
    """Ctrl-C's summary: what was lost, where the session is, how long it ran."""
    parts = ["stopped; all notes off sent"]
    if seconds is not None:
        parts.append(f"{seconds:.1f} s played" if seconds < 120 else f"{seconds / 60:.1f} min played")
    dropped = getattr(source, "dropped_blocks", getattr(source, "overflows", 0)) if source is not None else 0
    overflows = getattr(source, "input_overflows", 0) if source is not None else 0
    parts.append(f"{dropped} dropped blocks")
    parts.append(f"{overflows} input overflows")
    parts.append(f"recorded to {recording}" if recording else "not recorded (--record DIR keeps a session)")
    return "; ".join(parts)


# ------------------------------------------------------------------- bench


def add_bench(sub) -> None:
    p = sub.add_parser("bench", help=COMMANDS["bench"][1],
                       description="Run recordings block by block through the live pipeline and score the "
                                   "notes against the annotations beside them.")
    p.add_argument("files", nargs="+", metavar="FILE", help="recordings (a folder: all audio files in it)")
    p.add_argument("--tracker", "-t", default=DEFAULT_TRACKER, choices=[*TRACKER_NAMES, "all"],
                   help=f"pitch tracker, or all (default {DEFAULT_TRACKER})")
    p.add_argument("--blocksize", "-b", type=int, default=256, help="samples per block (default 256)")
    p.add_argument("--jobs", "-j", type=int, default=1, help="files in parallel (default 1)")
    p.add_argument("--json", metavar="FILE", help="write all figures to FILE as JSON")
    p.add_argument("--per-file", action="store_true", help="a row per file")
    add_decide(p)
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from .benchcli import run_bench

    return run_bench(args, _console())


# ---------------------------------------------------------- devices, ports


def add_devices(sub) -> None:
    p = sub.add_parser("devices", help=COMMANDS["devices"][1])
    p.set_defaults(func=cmd_devices)


def cmd_devices(args) -> int:
    from .audio import list_input_devices

    from .errors import AudioInputError

    console = _console()
    devices = list_input_devices()
    if not devices:  # the same failure as `improv ports` without a MIDI system: one line, exit 2
        raise AudioInputError("no audio inputs found; connect one, start your audio server (JACK, PulseAudio), "
                              "or use --input FILE")
    for d in devices:
        console.print(f"{d['index']:3d}  {d['name']}  ({d['hostapi_name']}, {d['max_input_channels']} in, "
                      f"{d['default_samplerate']:.0f} Hz)")
    return 0


def add_ports(sub) -> None:
    p = sub.add_parser("ports", help=COMMANDS["ports"][1])
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


def add_commands(sub) -> None:
    for add in (add_listen, add_jam, add_bench, add_devices, add_ports):
        add(sub)


class _Only:
    """Stands in for the subparsers action given to a module's ``add_commands``: only the
    command asked for is added (with its help from :data:`COMMANDS`), the others go nowhere."""

    def __init__(self, sub, name: str):
        self.sub, self.name = sub, name

    def add_parser(self, name: str, **kwargs):
        if name not in COMMANDS:  # a command added to a module must be listed, or it would vanish
            raise RuntimeError(f"command {name!r} is not in improv.cli.COMMANDS; add it there with its module")
        if name != self.name:
            return Parser(prog=f"improv {name}", add_help=False)
        kwargs["help"] = COMMANDS[name][1]
        return self.sub.add_parser(name, **kwargs)


def _command_name(argv: list[str]) -> str | None:
    """The command named in ``argv`` (the first word that is not an option), if it is one."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: every command is listed, only the one in ``argv`` is built
    (``argv`` None: all of them, e.g. for documentation)."""
    parser = Parser(prog="improv", description="A real-time improvisation partner: play into a microphone, "
                                               "a band of three answers over MIDI. `improv listen` starts a "
                                               "session; `improv COMMAND --help` tells more.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    wanted = set(COMMANDS) if argv is None else {_command_name(argv)}
    built: set[str] = set()
    for name, (module, helptext) in COMMANDS.items():
        if name in built:
            continue
        if name not in wanted:
            sub.add_parser(name, help=helptext, add_help=False)
            continue
        importlib.import_module(module).add_commands(_Only(sub, name))
        built.add(name)
    return parser


def _version() -> str:
    from . import __version__

    return f"improv {__version__}"


def _with_settings(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``argv`` with the settings of ``--config FILE`` put before the command line's own options."""
    pre, _ = parser.parse_known_args(argv)
    if getattr(pre, "config", None) is None:
        return argv
    command = _command_name(argv)
    at = argv.index(command) + 1
    return [*argv[:at], *settings_argv(pre.parser, read_settings(pre.config), pre.config), *argv[at:]]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        if _command_name(argv) == "listen":
            argv = _with_settings(parser, argv)
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args) or 0)
    except ImprovError as e:
        print(f"improv: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
