"""``improv transcribe``: recordings to clean MIDI transcripts, offline.

Monophonic (default): the recording goes through the live listening pipeline, block by
block, and its corrected transcript (retakes resolved, onsets back-dated, pitch from the
held bend: ``events.notes_from_events``) is written as one track named "transcript" —
the same track ``session.mid`` carries beside what was sent live. ``--polyphonic`` runs
Basic Pitch (ONNX, offline) instead, for chords (guitar, piano).
"""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError

SUFFIX = ".transcript.mid"


def add_commands(sub) -> None:
    from .cli import DECIDE_NAMES, DEFAULT_DECIDE, DEFAULT_TRACKER, TRACKER_NAMES

    p = sub.add_parser("transcribe", help="write recordings' notes as MIDI transcripts (offline)",
                       description="Transcribe recordings to MIDI: NAME.wav -> NAME.transcript.mid (one "
                                   "track, \"transcript\"), beside each recording or in --out-dir.")
    p.add_argument("files", nargs="+", metavar="FILE", help="recordings (a folder: all audio files in it)")
    p.add_argument("--out-dir", metavar="DIR", help="write the transcripts here (default: beside each recording)")
    p.add_argument("--polyphonic", action="store_true",
                   help="chords too (guitar, piano): Basic Pitch, offline, instead of improv's monophonic hearing")
    p.add_argument("--tracker", "-t", default=DEFAULT_TRACKER, choices=list(TRACKER_NAMES),
                   help=f"pitch tracker, monophonic (default {DEFAULT_TRACKER})")
    p.add_argument("--decide", choices=list(DECIDE_NAMES), default=DEFAULT_DECIDE,
                   help=f"segmenter preset, monophonic (default {DEFAULT_DECIDE})")
    p.set_defaults(func=cmd_transcribe)


def transcribe_notes(path: str | Path, tracker: str = "yin", decide: str = "balanced", polyphonic: bool = False):
    """The transcript of one recording: a list of :class:`improv.events.Note`."""
    if polyphonic:
        from .testing.peers import make_peer, missing

        why = missing("basic-pitch")
        if why:
            raise ConfigError(f"--polyphonic needs Basic Pitch: {why}")
        return make_peer("basic-pitch").transcribe(path).notes
    from .audio import FileSource
    from .events import notes_from_events
    from .listen.pipeline import Listener
    from .listen.segmenter import decide_settings

    source = FileSource(path, blocksize=4096, fast=True)
    listener = Listener(tracker, source.sample_rate, decide_settings(decide))
    events = []
    for block in source.blocks():
        events.extend(listener.process(block))
    events.extend(listener.finish(source.duration))
    return notes_from_events(events, until=source.duration)


def write_transcript(notes, path: str | Path) -> Path:
    """A type-1 MIDI file: the tempo track and the "transcript" track (channel 1)."""
    import mido

    from .record import TEMPO, TICKS_PER_BEAT, transcript_track

    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=TEMPO, time=0)]))
    mid.tracks.append(transcript_track(
        notes, lambda seconds: int(round(mido.second2tick(max(seconds, 0.0), TICKS_PER_BEAT, TEMPO))), channel=0))
    path = Path(path)
    mid.save(str(path))
    return path


def cmd_transcribe(args) -> int:
    from .benchcli import collect
    from .cli import _console

    files = collect(args.files)
    if not files:
        raise ConfigError("no recordings found in " + ", ".join(args.files))
    out_dir = Path(args.out_dir) if args.out_dir else None
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"--out-dir {out_dir}: cannot create the folder ({e.strerror})") from None
    console = _console()
    for f in files:
        notes = transcribe_notes(f, args.tracker, args.decide, args.polyphonic)
        target = (out_dir or f.parent) / (f.stem + SUFFIX)
        write_transcript(notes, target)
        console.print(f"{f}: {len(notes)} notes -> {target}")
    return 0
