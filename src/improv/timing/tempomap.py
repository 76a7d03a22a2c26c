"""session.mid's tempo map: the band's bars on the MIDI file's bar lines.

The band notes the time of every downbeat it plans (:class:`BarTiming`). From those,
:meth:`TempoMap.from_bars` makes a MIDI tempo map in which every one of them falls on
a bar line: one tempo per bar (written only when it changes), the session's time
signature, and before the first downbeat a pickup bar (its own short time signature
and a tempo that makes it last exactly as long; less than a sixteenth is added to the
first bar instead); a stretch without a beat between two
metered ones becomes one irregular bar the same way. A session that never had a beat
gets 120 BPM and a marker saying that its bars mean nothing.

Session seconds and ticks convert through the map as any MIDI reader converts them
(:meth:`TempoMap.tick`, :meth:`TempoMap.seconds`, :meth:`TempoMap.from_midi`), so a
session read back gives the times it was written with (to a tick).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import mido

from .meter import Meter

DEFAULT_US = 500_000   # 120 BPM
FREE_TEXT = "free time: improv played without a beat here; tempo and bars mean nothing"
METERED_TEXT = "metered from here: the band's bars"


@dataclass(frozen=True)
class BarTiming:
    """The band's downbeats (session seconds, increasing) and its time maps (from, metered?)."""

    meter: Meter
    bars: tuple[float, ...] = ()
    timeline: tuple[tuple[float, bool], ...] = ()


def _irregular(quarters: float) -> tuple[int, int, float]:
    """A bar of about ``quarters`` quarter notes as a time signature: (numerator,
    denominator, its length in quarters), the closest of 1/4 .. 1/32 resolutions."""
    best = None
    for den in (4, 8, 16, 32):
        n = max(1, round(quarters * den / 4))
        if n > 255:
            continue
        length = n * 4 / den
        err = abs(length - quarters) / max(quarters, 1e-9)
        if best is None or err < best[3] - 0.005:
            best = (n, den, length, err)
    if best is None:  # (longer than 255 quarters: several 4/4 bars' worth in one)
        n = min(255, max(1, round(quarters)))
        return n, 4, float(n)
    return best[0], best[1], best[2]


def tempo_changes(mid: mido.MidiFile) -> list[tuple[int, int]]:
    """(tick, microseconds a beat) of every set_tempo on any track, in order, starting at
    tick 0 (120 BPM until the first change, as MIDI readers take it)."""
    changes = []
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                changes.append((tick, msg.tempo))
    changes.sort()
    if not changes or changes[0][0] > 0:
        changes.insert(0, (0, DEFAULT_US))
    return changes


class TempoMap:
    """Piecewise-constant tempo: segments of (first tick, its seconds, microseconds per quarter)."""

    def __init__(self, segments: list[tuple[int, float, int]], ticks_per_beat: int,
                 meta: list[tuple[int, mido.MetaMessage]] | None = None):
        self.segments = segments or [(0, 0.0, DEFAULT_US)]
        self.ticks_per_beat = ticks_per_beat
        self.meta = meta or []   # (tick, message): tempo, time signatures, markers
        self._ticks = [s[0] for s in self.segments]
        self._secs = [s[1] for s in self.segments]

    def tick(self, seconds: float) -> int:
        seconds = max(seconds, 0.0)
        i = max(0, bisect.bisect_right(self._secs, seconds) - 1)
        t0, s0, us = self.segments[i]
        return int(round(t0 + (seconds - s0) * 1e6 / us * self.ticks_per_beat))

    def seconds(self, tick: int) -> float:
        i = max(0, bisect.bisect_right(self._ticks, tick) - 1)
        t0, s0, us = self.segments[i]
        return s0 + (tick - t0) * us / 1e6 / self.ticks_per_beat

    # ------------------------------------------------------------ making one

    @classmethod
    def constant(cls, ticks_per_beat: int, us: int = DEFAULT_US, free: bool = False) -> "TempoMap":
        meta = [(0, mido.MetaMessage("set_tempo", tempo=us))]
        if free:
            meta.append((0, mido.MetaMessage("marker", text=FREE_TEXT)))
        return cls([(0, 0.0, us)], ticks_per_beat, meta)

    @classmethod
    def from_bars(cls, timing: BarTiming | None, ticks_per_beat: int) -> "TempoMap":
        if timing is None:
            return cls.constant(ticks_per_beat)
        bars = []
        for b in timing.bars:
            if b >= 0.0 and (not bars or b - bars[-1] > 0.05):
                bars.append(float(b))
        if len(bars) < 2:
            return cls.constant(ticks_per_beat, free=True)
        meter = timing.meter
        per_bar = meter.beats_per_bar * meter.quarters_per_beat   # quarters in a bar
        bar_ticks = int(round(per_bar * ticks_per_beat))
        segs: list[tuple[int, float, int]] = []
        meta: list[tuple[int, mido.MetaMessage]] = []
        tick, sec = 0, 0.0

        def tempo(us: int) -> None:
            if not segs or segs[-1][2] != us:
                if segs and segs[-1][0] == tick:
                    segs.pop()
                    meta.pop(max(i for i, (t, m) in enumerate(meta) if m.type == "set_tempo"))
                segs.append((tick, sec, us))
                meta.append((tick, mido.MetaMessage("set_tempo", tempo=us)))

        def signature(num: int, den: int) -> None:
            last = next((m for _, m in reversed(meta) if m.type == "time_signature"), None)
            if last is not None and (last.numerator, last.denominator) == (num, den):
                return
            meta.append((tick, mido.MetaMessage("time_signature", numerator=num, denominator=den)))

        def irregular(length: float, us_near: int) -> None:
            nonlocal tick, sec
            num, den, quarters = _irregular(length * 1e6 / us_near)
            us = max(1, min(16_777_215, int(round(length / quarters * 1e6))))
            signature(num, den)
            tempo(us)
            tick += int(round(quarters * ticks_per_beat))
            sec += quarters * us / 1e6

        first_us = int(round((bars[1] - bars[0]) / per_bar * 1e6))
        if bars[0] * 1e6 / first_us >= 0.25:   # a pickup bar before the first downbeat
            irregular(bars[0], first_us)
        else:  # less than a sixteenth: the first bar starts the file (a little longer), no sliver bar
            bars[0] = 0.0
        signature(meter.numerator, meter.denominator)
        regular = True
        last_us = first_us
        for a, b in zip(bars, bars[1:]):
            us = int(round((b - a) / per_bar * 1e6))
            if abs(us - last_us) / last_us > 0.35:   # not one bar: a stretch without the beat
                irregular(b - a, last_us)
                regular = False
                continue
            if not regular:
                signature(meter.numerator, meter.denominator)
                regular = True
            tempo(us)
            tick += bar_ticks
            sec += per_bar * us / 1e6
            last_us = us
        for t, metered in timing.timeline:
            if t > 1e-3:
                m = cls(segs, ticks_per_beat)
                meta.append((m.tick(t), mido.MetaMessage("marker", text=METERED_TEXT if metered else FREE_TEXT)))
        meta.sort(key=lambda x: x[0])
        return cls(segs, ticks_per_beat, meta)

    @classmethod
    def from_midi(cls, mid: mido.MidiFile) -> "TempoMap":
        """The tempo map a MIDI reader sees (set_tempo events on any track)."""
        changes = tempo_changes(mid)
        segs: list[tuple[int, float, int]] = []
        tick, sec, us = 0, 0.0, DEFAULT_US
        for t, new in changes:
            sec += (t - tick) * us / 1e6 / mid.ticks_per_beat
            tick, us = t, new
            if segs and segs[-1][0] == tick:
                segs[-1] = (tick, sec, us)
            else:
                segs.append((tick, sec, us))
        if not segs or segs[0][0] != 0:
            segs.insert(0, (0, 0.0, DEFAULT_US))
        return cls(segs, mid.ticks_per_beat)

    def track(self) -> mido.MidiTrack:
        """The meta events as a track (delta times)."""
        out = mido.MidiTrack()
        last = 0
        for tick, msg in self.meta:
            out.append(msg.copy(time=tick - last))
            last = tick
        return out


__all__ = ["BarTiming", "TempoMap", "FREE_TEXT", "METERED_TEXT"]
