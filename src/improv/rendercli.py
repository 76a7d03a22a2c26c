"""``improv render SESSION``: registered in :data:`improv.cli.COMMAND_MODULES`."""

from __future__ import annotations


def add_commands(sub) -> None:
    p = sub.add_parser("render", help="mix a recorded session to WAV and draw its piano roll",
                       description="Mix a session recorded with `improv listen --record` (the player's audio "
                                   "plus the band through FluidSynth) into SESSION/mix.wav and draw "
                                   "SESSION/pianoroll.png.")
    p.add_argument("session", metavar="SESSION", help="a session folder, e.g. recordings/2024-05-01_20-15-00")
    p.add_argument("--soundfont", metavar="FILE", help="General MIDI SoundFont for the band "
                                                        "(default: the first found in /usr/share/sounds)")
    p.add_argument("--no-mix", dest="mix", action="store_false", help="only draw the piano roll")
    p.add_argument("--no-pianoroll", dest="pianoroll", action="store_false", help="only mix")
    p.set_defaults(func=cmd_render)
    add_recover(sub)


def cmd_render(args) -> int:
    from rich.console import Console

    from .render import render_session

    result = render_session(args.session, soundfont=args.soundfont, mix=args.mix, pianoroll=args.pianoroll)
    console = Console(highlight=False)
    notes = ", ".join(f"{n} {src}" for src, n in result.notes.items()) or "no notes"
    console.print(f"{result.duration:.1f} s, {notes}", markup=False)
    if result.mix:
        console.print(f"mix: {result.mix}", markup=False)
    if result.pianoroll:
        console.print(f"piano roll: {result.pianoroll}", markup=False)
    return 0


def add_recover(sub) -> None:
    p = sub.add_parser("recover", help="write session.mid of a session that crashed, from its journal",
                       description="A session that ended without closing (a crash, kill -9, power) has its "
                                   "notes in SESSION/events.jsonl up to a second before the end; this writes "
                                   "SESSION/session.mid from it (notes left sounding end at the last event). "
                                   "`improv render` reads the journal by itself.")
    p.add_argument("session", metavar="SESSION", help="a session folder")
    p.set_defaults(func=cmd_recover)


def cmd_recover(args) -> int:
    from rich.console import Console

    from .record import recover_session

    path, journal = recover_session(args.session)
    ended = f"; {journal.closed} note(s) left sounding ended at {journal.events[-1].time:.3f} s" \
        if journal.closed else ""
    Console(highlight=False).print(f"{path}: {len(journal.events)} events{ended}", markup=False)
    return 0
