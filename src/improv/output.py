"""The output layer's one home: where each source plays and what an event becomes on the wire.

* :class:`BandLayout` — each source's MIDI channel, each band's pitch range and the
  pitch-bend range: the session, the band, the ports, the built-in synth and the
  recorder all read the same one.
* :func:`encode` — the MIDI messages an event becomes (a bend goes before its note-on).

Ports (:class:`improv.midi.MidiOut`, the JACK client, the built-in synth) take the
messages; :class:`Port` is their base: ``send`` checks and locks once, backends
implement ``_send`` and ``_panic``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import mido

from .errors import ConfigError
from .events import ALL_BANDS, DRUMS, PLAYER, Event, NoteOff, NoteOn, PitchBend

GM_DRUM_CHANNEL = 9  # MIDI channel 10: General MIDI plays drums there, whatever the program
CHANNELS: Mapping[str, int] = MappingProxyType({PLAYER: 0, "bass": 1, "mid": 2, "high": 3,
                                                "drums": GM_DRUM_CHANNEL})
RANGES: Mapping[str, tuple[int, int]] = MappingProxyType({"bass": (28, 48), "mid": (48, 72), "high": (72, 96)})


def cents_to_bend(cents: float, bend_range: float) -> int:
    """A pitch-bend value (-8192..8191) for ``cents`` with a bend range in semitones."""
    value = int(round(cents / (100.0 * bend_range) * 8192))
    return max(-8192, min(8191, value))


@dataclass(frozen=True)
class BandLayout:
    """Where each source plays: MIDI channel per source, pitch range per band, bend range."""

    channels: Mapping[str, int] = field(default_factory=lambda: CHANNELS)
    ranges: Mapping[str, tuple[int, int]] = field(default_factory=lambda: RANGES)
    bend_range: float = 2.0

    @classmethod
    def make(cls, channels: Mapping[str, int] | None = None, ranges: Mapping[str, tuple[int, int]] | None = None,
             bend_range: float = 2.0) -> "BandLayout":
        """The default layout with some channels and ranges changed (validated)."""
        ch = {**CHANNELS, **(channels or {})}
        rg = {**RANGES, **(ranges or {})}
        for source, c in ch.items():
            if not 0 <= int(c) <= 15:
                raise ConfigError(f"--channel {source}={int(c) + 1}: give a MIDI channel 1-16")
        used: dict[int, str] = {}
        for source, c in ch.items():
            if c in used:
                raise ConfigError(f"--channel: {used[c]} and {source} both on channel {c + 1}; give each its own")
            used[c] = source
        return cls(MappingProxyType(ch), MappingProxyType(rg), float(bend_range))

    def channel(self, source: str) -> int:
        return self.channels[source]

    def range(self, band: str) -> tuple[int, int]:
        return self.ranges[band]

    def source_of(self, channel: int) -> str | None:
        return next((s for s, c in self.channels.items() if c == channel), None)

    def band_channels(self) -> dict[str, int]:
        return {b: c for b, c in self.channels.items() if b in ALL_BANDS}

    def with_bend_range(self, bend_range: float) -> "BandLayout":
        return replace(self, bend_range=float(bend_range))


DEFAULT_LAYOUT = BandLayout()


def encode(ev: Event, layout: BandLayout = DEFAULT_LAYOUT, bends: bool = True) -> list[mido.Message]:
    """The MIDI messages one event becomes on its source's channel (a bend goes before
    its note-on; ``bends`` False sends keys only)."""
    channel = layout.channel(ev.source)
    if isinstance(ev, NoteOn):
        msgs = []
        if bends and ev.source != DRUMS:  # a drum kit has no pitch to bend
            msgs.append(mido.Message("pitchwheel", channel=channel, pitch=cents_to_bend(ev.cents, layout.bend_range)))
        msgs.append(mido.Message("note_on", channel=channel, note=ev.pitch, velocity=ev.velocity))
        return msgs
    if isinstance(ev, NoteOff):
        return [mido.Message("note_off", channel=channel, note=ev.pitch, velocity=0)]
    if isinstance(ev, PitchBend):
        if not bends:
            return []
        return [mido.Message("pitchwheel", channel=channel, pitch=cents_to_bend(ev.cents, layout.bend_range))]
    raise TypeError(f"not a note event: {ev!r}")


class Port:
    """Base of every MIDI output port: ``send`` checks the message and takes the port's
    lock once, and notes what it turned on, so ``panic`` can turn exactly those off and
    then send All Notes Off, All Sound Off and a centred bend on every channel. A backend
    implements ``_write(data)`` (called under the lock) and ``_close``. A closed port
    drops what it is sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False
        self._sounding: set[tuple[int, int]] = set()
        self.sent = 0
        self.errors = 0

    def send(self, msg: mido.Message) -> None:
        if not isinstance(msg, mido.Message):
            raise TypeError(f"not a MIDI message: {msg!r}")
        data = msg.bytes()
        with self._lock:
            if self._closed:
                return
            if msg.type == "note_on" and msg.velocity > 0:
                self._sounding.add((msg.channel, msg.note))
            elif msg.type in ("note_off", "note_on"):
                self._sounding.discard((msg.channel, msg.note))
            self._write(data)

    def panic(self) -> None:
        """Every note this port turned on off, then all notes and sound off on every channel."""
        with self._lock:
            if self._closed:
                return
            sounding, self._sounding = sorted(self._sounding), set()
            for ch, note in sounding:
                self._write([0x80 | ch, note, 0])
            for ch in range(16):
                self._write([0xB0 | ch, 123, 0])    # All Notes Off
                self._write([0xB0 | ch, 120, 0])    # All Sound Off
                self._write([0xE0 | ch, 0x00, 0x40])  # pitch bend to centre

    def close(self) -> None:
        """Every note off (``panic``), then the port closes; safe to call twice."""
        if self._closed:
            return
        self.panic()
        with self._lock:
            self._closed = True
        self._close()

    def _write(self, data) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["BandLayout", "CHANNELS", "DEFAULT_LAYOUT", "GM_DRUM_CHANNEL", "Port", "RANGES", "cents_to_bend",
           "encode"]
