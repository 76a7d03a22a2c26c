"""``improv render``: a recorded session as a mix (WAV) and a piano roll (PNG).

The mix is the player's recorded audio (``input.wav``) plus the band's tracks of
``session.mid`` played through FluidSynth (:mod:`improv.synth`, the same code as the
live synth) at the times they were played, so it sounds as the session did. It is
rendered in chunks, so an hour-long session needs little memory.

The piano roll draws the notes of the player and of each band in their colours,
and each command of ``commands.jsonl`` as a labelled vertical line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import mido
import numpy as np
import soundfile

from .errors import ConfigError
from .events import ALL_BANDS as BANDS, PLAYER, Event, Note, notes_from_events, note_name
from .record import (AUDIO_FILE, COMMANDS_FILE, JOURNAL_FILE, MIDI_FILE, Command, events_to_midifile,
                     read_commands, read_journal, read_midi_events)
from .synth import find_soundfont, iter_render

MIX_FILE = "mix.wav"
PIANOROLL_FILE = "pianoroll.png"
COLOURS = {PLAYER: "#202020", "bass": "#1f5fbf", "mid": "#2a9d3a", "high": "#d9412b", "drums": "#b8860b"}
# the drums get lanes of their own under the pitches: (name, GM notes)
DRUM_LANES = (("kick", {35, 36}), ("snare", {37, 38, 39, 40}), ("hi-hat", {42, 44, 46}),
              ("ride/crash", {49, 51, 52, 53, 55, 57}), ("toms", {41, 43, 45, 47, 48, 50}))
LANE = 2.5          # a drum lane's height, in semitones of the pitch axis
COMMAND_COLOUR = "#8e44ad"
TAIL = 1.5          # seconds of band release after the last note
CHUNK = 1 << 16     # frames rendered and mixed at a time
MIX_RATE = 44100    # when the session has no input audio


@dataclass
class Session:
    """A session folder as read back."""

    folder: Path
    audio_frames: int = 0
    sample_rate: int | None = None
    midi: mido.MidiFile | None = None
    events: list[Event] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)

    @property
    def audio_path(self) -> Path:
        return self.folder / AUDIO_FILE

    @property
    def has_audio(self) -> bool:
        return self.audio_frames > 0

    @property
    def duration(self) -> float:
        """The input audio, the player's last event, or the band's last plus its release tail."""
        audio = self.audio_frames / self.sample_rate if self.has_audio else 0.0
        player = max((e.time for e in self.events if e.source == PLAYER), default=0.0)
        band = max((e.time + TAIL for e in self.events if e.source != PLAYER), default=0.0)
        return max(audio, player, band)

    def notes(self, source: str) -> list[Note]:
        return notes_from_events(self.events, source, until=self.duration)


def load_session(folder: str | Path) -> Session:
    """Read a session folder, or raise a one-line :class:`ConfigError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such session folder; give a folder made by `improv listen --record`")
    s = Session(folder)
    midi_path, audio_path, journal_path = folder / MIDI_FILE, folder / AUDIO_FILE, folder / JOURNAL_FILE
    if not midi_path.exists() and not audio_path.exists() and not journal_path.exists():
        raise ConfigError(f"{folder}: not an improv session (no {MIDI_FILE}, {JOURNAL_FILE} or {AUDIO_FILE} in it)")
    if audio_path.exists():
        try:
            info = soundfile.info(str(audio_path))
        except (soundfile.LibsndfileError, RuntimeError) as e:
            raise ConfigError(f"{audio_path}: cannot read the recorded audio ({e}); "
                              f"move it away to render the notes only") from None
        s.audio_frames, s.sample_rate = info.frames, info.samplerate
    s.commands = read_commands(folder / COMMANDS_FILE)
    if midi_path.exists():
        s.events = read_midi_events(midi_path)
        s.midi = mido.MidiFile(str(midi_path))
    elif journal_path.exists():  # a session that crashed: its notes are in the journal
        journal = read_journal(journal_path)
        s.midi = events_to_midifile(journal.events, journal.bend_range, voices=journal.voices, commands=s.commands)
        s.events = read_midi_events(s.midi)
    return s


def band_messages(mid: mido.MidiFile | None, sources: tuple[str, ...] = BANDS) -> list[tuple[float, mido.Message]]:
    """The channel messages of the tracks named after ``sources``, with absolute seconds, in time order."""
    if mid is None:
        return []
    from .timing.tempomap import TempoMap

    tmap = TempoMap.from_midi(mid)
    out: list[tuple[float, int, mido.Message]] = []
    for track in mid.tracks:
        if next((m.name for m in track if m.type == "track_name"), None) not in sources:
            continue
        tick = 0
        for msg in track:
            tick += msg.time
            if not msg.is_meta:
                out.append((tmap.seconds(tick), len(out), msg))
    out.sort(key=lambda x: (x[0], x[1]))
    return [(t, m) for t, _, m in out]


def write_mix(session: Session, out: Path | None = None, soundfont: str | Path | None = None,
              band_gain: float = 1.0) -> Path:
    """Mix the recorded input (both channels) and the synthesised band into a 16-bit stereo WAV.

    The mix is rendered in chunks into a float file first; if it peaks above full scale
    it is scaled down to -0.1 dBFS when converted, never clipped.
    """
    out = Path(out or session.folder / MIX_FILE)
    rate = session.sample_rate or MIX_RATE
    duration = session.duration
    messages = band_messages(session.midi)
    font = find_soundfont(soundfont) if messages else None
    tmp = out.with_suffix(".tmp.wav")
    peak = 0.0
    try:
        with soundfile.SoundFile(str(tmp), "w", rate, 2, "FLOAT", format="WAV") as dst:
            band = iter_render(messages, font, rate, duration, chunk=CHUNK) if font else None
            src = soundfile.SoundFile(str(session.audio_path)) if session.has_audio else None
            try:
                done, total = 0, int(round(duration * rate))
                while done < total:
                    n = min(CHUNK, total - done)
                    mix = np.zeros((n, 2), dtype=np.float32)
                    if band is not None:
                        mix += band_gain * next(band)
                    if src is not None:
                        x = src.read(n, dtype="float32", always_2d=True).mean(axis=1)
                        mix[: len(x)] += x[:, None]
                    peak = max(peak, float(np.abs(mix).max(initial=0.0)))
                    dst.write(mix)
                    done += n
            finally:
                if src is not None:
                    src.close()
        scale = 1.0 if peak <= 1.0 else 0.989 / peak
        with soundfile.SoundFile(str(tmp)) as f, \
                soundfile.SoundFile(str(out), "w", rate, 2, "PCM_16", format="WAV") as dst:
            for block in f.blocks(CHUNK, dtype="float32"):
                dst.write(block * scale)
    finally:
        if tmp.exists():
            os.unlink(tmp)
    return out


def pianoroll_figure(session: Session, width: float | None = None, height: float = 5.0,
                     pitch_range: tuple[int, int] | None = None, time_range: tuple[float, float] | None = None):
    """A matplotlib Figure (no pyplot) with the session's notes and commands; returns (figure, axes)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    notes = {src: session.notes(src) for src in (PLAYER, *BANDS)}
    pitches = [n.pitch for src, ns in notes.items() if src != "drums" for n in ns]
    if pitch_range is None:
        lo, hi = (int(np.floor(min(pitches))) - 2, int(np.ceil(max(pitches))) + 3) if pitches else (48, 84)
    else:
        lo, hi = pitch_range
    duration = max(session.duration, 1.0)
    t0, t1 = time_range or (0.0, duration)
    width = width or min(40.0, max(10.0, (t1 - t0) / 4.0))
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    lanes = len(DRUM_LANES) + 1 if notes.get("drums") else 0
    for src, ns in notes.items():
        for n in ns:
            if src == "drums":  # a stroke in its lane under the pitches, darker when louder
                lane = next((i for i, (_, keys) in enumerate(DRUM_LANES) if round(n.pitch) in keys), len(DRUM_LANES))
                ax.add_patch(Rectangle((n.onset, lo - LANE * (lanes - lane) - 0.8), 0.04, 1.6, facecolor=COLOURS[src],
                                       alpha=0.35 + 0.65 * n.velocity / 127, edgecolor="none", gid=src, zorder=3))
                continue
            ax.add_patch(Rectangle((n.onset, n.pitch - 0.4), n.offset - n.onset, 0.8, facecolor=COLOURS[src],
                                   edgecolor="none", gid=src, zorder=3))
    for cmd in session.commands:
        ax.axvline(cmd.time, color=COMMAND_COLOUR, linestyle="--", linewidth=1.0, gid="command",
                   zorder=2)
        ax.text(cmd.time, hi - 0.3, " " + cmd.label(), rotation=90, va="top", ha="right", fontsize=8,
                color=COMMAND_COLOUR)
    ax.set_xlim(t0, t1)
    ax.set_ylim(lo - LANE * lanes - 1.5, hi)
    ticks = [p for p in range(lo, hi + 1) if p % 12 == 0]
    names = [note_name(p) for p in ticks]
    if lanes:
        ticks = [lo - LANE * (lanes - i) for i in range(lanes)] + ticks
        names = [name for name, _ in DRUM_LANES] + ["other"] + names
    ax.set_yticks(ticks)
    ax.set_yticklabels(names)
    ax.set_yticks(range(lo, hi + 1), minor=True)
    ax.grid(axis="y", which="major", color="#cccccc", linewidth=0.6)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("pitch")
    ax.set_title(session.folder.name)
    present = [src for src, ns in notes.items() if ns]
    handles = [Patch(color=COLOURS[s], label=s) for s in present]
    if session.commands:
        handles.append(Patch(color=COMMAND_COLOUR, label="command"))
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize=8)
    return fig, ax


def write_pianoroll(session: Session, out: Path | None = None, **options) -> Path:
    out = Path(out or session.folder / PIANOROLL_FILE)
    fig, _ = pianoroll_figure(session, **options)
    fig.savefig(str(out), dpi=100, facecolor="white")
    return out


@dataclass
class RenderResult:
    mix: Path | None
    pianoroll: Path | None
    duration: float
    notes: dict[str, int]


def render_session(folder: str | Path, soundfont: str | Path | None = None, mix: bool = True,
                   pianoroll: bool = True) -> RenderResult:
    """``improv render``: mix.wav and pianoroll.png into the session folder."""
    session = load_session(folder)
    return RenderResult(
        mix=write_mix(session, soundfont=soundfont) if mix else None,
        pianoroll=write_pianoroll(session) if pianoroll else None,
        duration=session.duration,
        notes={src: len(session.notes(src)) for src in (PLAYER, *BANDS) if session.notes(src)},
    )
