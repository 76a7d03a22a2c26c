"""The small immutable events every stage of improv exchanges.

Times are seconds on the session clock: 0.0 is the first sample of the input
(microphone or file). Inside the listening side time is counted in samples and
converted to seconds only when an event is made (see ``improv.listen``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

PLAYER = "player"
BANDS = ("bass", "mid", "high")     # the melodic band players (the model's voices)
DRUMS = "drums"                      # the drummer (grooves from data, not the model)
ALL_BANDS = (*BANDS, DRUMS)          # every band player: what ``--bands all`` means
_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(pitch: int) -> str:
    """Scientific pitch name of a MIDI key: 60 -> C4."""
    return f"{_NAMES[pitch % 12]}{pitch // 12 - 1}"


@dataclass(frozen=True, slots=True)
class NoteOn:
    """A note starts.

    ``time`` is when the event was decided (for the player: when the listening
    pipeline emitted it, so ``time - onset`` is the decision latency).
    ``onset`` is the estimated start of the note in the audio.
    ``cents`` is the heard pitch's deviation from ``pitch`` in 12-TET at A4=440 Hz,
    which is sent as pitch bend when bends are on. ``tuning`` is the player's
    estimated tuning offset in cents when the note was decided. ``retake`` marks a
    correction: the note that ended just before was a wrong first guess of this one
    (decided during its attack), and this one has the same onset.
    """

    time: float
    pitch: int
    velocity: int
    source: str = PLAYER
    onset: float | None = None
    cents: float = 0.0
    tuning: float = 0.0
    retake: bool = False


@dataclass(frozen=True, slots=True)
class NoteOff:
    """A note ends. ``end`` is the estimated end in the audio (player notes)."""

    time: float
    pitch: int
    source: str = PLAYER
    end: float | None = None


@dataclass(frozen=True, slots=True)
class PitchBend:
    """The sounding pitch of ``source``'s current note moves to ``cents`` from its key."""

    time: float
    cents: float
    source: str = PLAYER


Event = NoteOn | NoteOff | PitchBend


@dataclass(frozen=True, slots=True)
class Note:
    """A finished note, as the bench and the recorder see it (seconds)."""

    onset: float
    offset: float
    pitch: float  # fractional MIDI number of the sounding pitch
    velocity: int = 64
    decided: float | None = None  # when the NoteOn was emitted


@dataclass(frozen=True, slots=True)
class ControlChange:
    """A controller value sent at ``time`` (a CC macro: ``source``'s ``quantity`` drives
    controller ``control`` on ``channel``, 0-based as sent). Not a note event: it goes to
    the ports, the synth and the recording by its own path (:mod:`improv.band.macros`)."""

    time: float
    control: int
    value: int
    channel: int
    source: str = "all"
    quantity: str = ""

    def message(self):
        import mido

        return mido.Message("control_change", channel=self.channel, control=self.control, value=self.value)


@dataclass(frozen=True, slots=True)
class Command:
    """A meta-command in force from ``time`` (session seconds) for ``target`` (a band or "all")."""

    time: float
    target: str
    command: str
    value: Any = None

    def label(self) -> str:
        return f"{self.target} {self.command}" + ("" if self.value is None else f" {self.value}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)


def notes_from_events(events: list[Event], source: str = PLAYER, until: float | None = None) -> list[Note]:
    """Pair NoteOn/NoteOff events of one source into notes.

    The note's pitch is the key plus the bend that was in force longest while it
    sounded (a weighted median over time), which is what a synth receiving the stream
    plays. A retake replaces the wrong first guess it
    corrects, and the note counts as decided when the right pitch was sent. A note still
    sounding at the end is closed at ``until`` (or at the last event's time).
    """
    notes: list[Note] = []
    current: NoteOn | None = None
    bends: list[tuple[float, float]] = []  # (time sent, cents)
    last_time = 0.0
    for ev in events:
        if ev.source != source:
            continue
        last_time = max(last_time, ev.time)
        if isinstance(ev, NoteOn):
            if current is not None:
                notes.append(_close(current, bends, ev.onset if ev.onset is not None else ev.time))
            if ev.retake and notes:
                notes.pop()
            current, bends = ev, [(ev.time, ev.cents)]
        elif isinstance(ev, PitchBend):
            if current is not None:
                bends.append((ev.time, ev.cents))
        elif isinstance(ev, NoteOff):
            if current is not None and ev.pitch == current.pitch:
                notes.append(_close(current, bends, ev.end if ev.end is not None else ev.time))
                current, bends = None, []
    if current is not None:
        notes.append(_close(current, bends, until if until is not None else last_time))
    return notes


def sent_notes_from_events(events: list[Event], source: str = PLAYER, until: float | None = None,
                           bends: bool = False) -> list[Note]:
    """Every NoteOn of one source as it went out on the wire, retakes included.

    A note starts at the time it was *sent* (``NoteOn.time``, not the back-dated onset) and
    ends at its NoteOff or the next NoteOn, whichever is sent first. Its pitch is the bare
    key, or with ``bends`` the key plus the bend sent with it (``NoteOn.cents``): what the
    band and the player's gear heard when the note was decided, right or wrong.
    """
    notes: list[Note] = []
    current: NoteOn | None = None
    last_time = 0.0

    def close(end: float) -> None:
        pitch = current.pitch + (current.cents / 100.0 if bends else 0.0)
        notes.append(Note(onset=current.time, offset=max(end, current.time + 1e-3), pitch=pitch,
                          velocity=current.velocity, decided=current.time))

    for ev in events:
        if ev.source != source:
            continue
        last_time = max(last_time, ev.time)
        if isinstance(ev, NoteOn):
            if current is not None:
                close(ev.time)
            current = ev
        elif isinstance(ev, NoteOff) and current is not None and ev.pitch == current.pitch:
            close(ev.time)
            current = None
    if current is not None:
        close(until if until is not None else last_time)
    return notes


def _close(on: NoteOn, bends: list[tuple[float, float]], end: float) -> Note:
    start = on.onset if on.onset is not None else on.time
    # each bend holds until the next one (the last until the note's end, at least 1 ms)
    held = [(cents, max(nxt - t, 1e-3)) for (t, cents), (nxt, _) in zip(bends, [*bends[1:], (max(end, bends[-1][0]), 0.0)])]
    held.sort()
    total, acc, median_bend = sum(w for _, w in held), 0.0, held[-1][0]
    for cents, w in held:
        acc += w
        if acc >= total / 2:
            median_bend = cents
            break
    return Note(
        onset=start,
        offset=max(end, start + 1e-3),
        pitch=on.pitch + median_bend / 100.0,
        velocity=on.velocity,
        decided=on.time,
    )
