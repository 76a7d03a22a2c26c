"""The band over a recording on audio time, with the listening done once.

``improv listen --fast`` runs listening and the band block by block. For comparing
many command sequences on the same recording (the benchmark), :func:`hear_blocks`
keeps what the listener emitted at each block end, and :func:`play` steps a band
through those blocks with the session's :class:`~improv.session.AudioTimeDriver` (same
events, same step times), so each replay gives the events ``improv listen --fast`` would give.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..audio import FileSource
from ..events import Event
from ..listen.pipeline import Listener
from ..listen.segmenter import SegmenterSettings
from ..listen.trackers import DEFAULT_TRACKER, make_tracker
from ..events import Command
from .band import Band


@dataclass(frozen=True)
class Heard:
    """The player's events of one recording, grouped by the audio block they came out of."""

    ends: tuple[float, ...]                 # each block's end (session seconds)
    events: tuple[tuple[Event, ...], ...]   # what the listener emitted for that block
    tail: tuple[Event, ...]                 # what it emitted when the input ended
    duration: float


def hear_blocks(path: str, blocksize: int = 256, tracker: str = DEFAULT_TRACKER) -> Heard:
    """Listen to a recording once (as ``improv listen --fast`` with default settings)."""
    source = FileSource(path, blocksize=blocksize, fast=True)
    listener = Listener(make_tracker(tracker), source.sample_rate, SegmenterSettings())
    ends, events = [], []
    end = 0.0
    for block in source.blocks():
        end = block.end / block.sample_rate
        ends.append(end)
        events.append(tuple(listener.process(block)))
    return Heard(tuple(ends), tuple(events), tuple(listener.finish(end)), end)


def play(band: Band, heard: Heard, commands: list[Command] = ()) -> list[Event]:
    """The band's events over ``heard`` with scripted ``commands`` (given when audio time
    passes them), stepped at every block end by the session's own audio-time driver;
    every note ends with the input."""
    from ..session import play_offline

    return play_offline(band, heard.ends, heard.events, heard.tail, commands)
