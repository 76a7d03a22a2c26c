"""What improv hears and what the band does, on the terminal.

A display is fed from the analysis thread (``on_event``, ``on_command``) and by the
band (its :class:`BandState` objects, ``set_clock``); those calls only store values
or put into a queue, so the display never holds the analysis thread up. Drawing
happens in a thread of the display's own:

* :class:`LiveDisplay` (a terminal): a rich ``Live`` panel redrawn ~12 times a second
  with the input level, the pitch heard and its cents, the note sounding, each band's
  state, tempo and beat, latency figures and dropped blocks, and the last events.
* :class:`PlainDisplay` (a pipe or a file): one log line per event and command.
* :class:`NullDisplay` (``--quiet``): nothing.

:func:`make_display` picks one for a console.
"""

from __future__ import annotations

import math
import queue
import statistics
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from .band.commands import spoken
from .events import BANDS, PLAYER, Event, NoteOff, NoteOn, note_name
from .events import Command

REFRESH_PER_SECOND = 12
METER_FLOOR_DB = -60.0
METER_WIDTH = 30


@dataclass
class BandState:
    """One band player as the display shows it; the band updates the fields in place."""

    name: str
    command: str | None = None      # the command in force, e.g. "follow" or "density 0.7"
    last_note: int | None = None    # MIDI key of the last note played
    density: float | None = None    # notes per beat (or the band's own measure)
    active: bool = False            # False until a band player exists: shown as "-"


@dataclass(frozen=True)
class Snapshot:
    """Everything drawn in one frame, read from the live objects in the drawing thread."""

    elapsed: float = 0.0
    source: str = ""
    level_db: float = -120.0
    heard: tuple[str, float, float] | None = None   # (note name, cents from A440 12-TET, Hz)
    tuning: float = 0.0
    sounding: tuple[str, int] | None = None         # (note name, velocity) of the player's note
    bands: tuple[BandState, ...] = ()
    tempo: float | None = None
    beat: str | None = None
    latency_ms: tuple[float, float, float] | None = None  # last, median, 95th percentile
    latency_count: int = 0
    dropped: int = 0
    notes: int = 0
    lines: tuple[str, ...] = ()
    harmony: str | None = None                      # chord now -> next, key, bar of the form


def event_line(ev: Event) -> str:
    """One log line for an event."""
    if isinstance(ev, NoteOn):
        lat = f" decided {1000 * (ev.time - ev.onset):+.0f} ms after onset" if ev.onset is not None else ""
        return f"{ev.time:8.3f}  {ev.source:6s} on  {note_name(ev.pitch):4s} vel {ev.velocity:3d} {ev.cents:+4.0f}c{lat}"
    if isinstance(ev, NoteOff):
        return f"{ev.time:8.3f}  {ev.source:6s} off {note_name(ev.pitch):4s}"
    return f"{ev.time:8.3f}  {ev.source:6s} bend {ev.cents:+.0f}c"


def show_band(view, band, now: float) -> None:
    """The band's state at ``now`` into a display's ``bands`` and clock."""
    for name, d in band.describe(now).items():
        state = view.bands.get(name)
        if state is not None:
            state.command, state.density, state.active = d.command, d.density, True
    view.set_clock(*band.clock_text(now))
    if hasattr(view, "set_harmony"):
        from .harmony.source import harmony_line

        view.set_harmony(harmony_line(band.harmony_text()))


def command_line(cmd: Command) -> str:
    value = "" if cmd.value is None else f" {cmd.value}"
    return f"{cmd.time:8.3f}  {cmd.target:6s} cmd {spoken(cmd.command)}{value}"


class SessionDisplay:
    """The state every display keeps; this base class draws nothing (``--quiet``)."""

    def __init__(self, bands: tuple[str, ...] = BANDS, log_lines: int = 6):
        self.bands: dict[str, BandState] = {b: BandState(b) for b in bands}
        self.tempo: float | None = None
        self.beat: str | None = None
        self._listener = None
        self._source = None
        self._source_name = ""
        self._sounding: NoteOn | None = None
        self._latencies: deque[float] = deque(maxlen=200)
        self._recent: deque[Event | Command] = deque(maxlen=log_lines)
        self._notes = 0

    # ---------------------------------------------- fed by the session (cheap)

    def attach(self, listener: Any, source: Any, name: str = "") -> None:
        """The listener and audio source whose figures (level, pitch, overflows) are shown."""
        self._listener = listener
        self._source = source
        self._source_name = name or str(getattr(source, "device_name", "") or getattr(source, "path", ""))

    def on_event(self, ev: Event) -> None:
        if ev.source == PLAYER:
            if isinstance(ev, NoteOn):
                self._sounding = ev
                self._notes += 1
                if ev.onset is not None:
                    self._latencies.append(1000.0 * (ev.time - ev.onset))
            elif isinstance(ev, NoteOff) and self._sounding is not None and self._sounding.pitch == ev.pitch:
                self._sounding = None
        elif isinstance(ev, NoteOn) and ev.source in self.bands:
            band = self.bands[ev.source]
            band.last_note = ev.pitch
            band.active = True
        self._recent.append(ev)

    def on_command(self, cmd: Command) -> None:
        band = self.bands.get(cmd.target)
        if band is not None:
            name = spoken(cmd.command)
            band.command = name if cmd.value is None else f"{name} {cmd.value}"
            band.active = True
        self._recent.append(cmd)

    def set_clock(self, tempo: float | None, beat: str | None) -> None:
        """Tempo in BPM and the beat as shown (e.g. "3/4"), from the band's clock."""
        self.tempo, self.beat = tempo, beat

    def set_harmony(self, text: str | None) -> None:
        """The harmony line (``improv.harmony.harmony_line``): chord, next chord, key, bar."""
        self.harmony = text

    # ------------------------------------------------------------- reading

    def snapshot(self) -> Snapshot:
        """Read the figures now (any thread); values may be a block old, never torn."""
        lst, src = self._listener, self._source
        level, heard, tuning, elapsed = -120.0, None, 0.0, 0.0
        if lst is not None:
            stats = lst.stats
            level, f0 = stats.last_level_db, stats.last_f0
            if stats.last_voiced and f0 > 0:
                midi = 69.0 + 12.0 * math.log2(f0 / 440.0)
                key = int(round(midi))
                heard = (note_name(key), 100.0 * (midi - key), f0)
            tuning = stats.tuning_cents
            elapsed = stats.seconds
        sounding = self._sounding
        lat = list(self._latencies)
        latency = None
        if lat:
            ordered = sorted(lat)
            p95 = ordered[min(len(ordered) - 1, int(math.ceil(0.95 * len(ordered))) - 1)]
            latency = (lat[-1], statistics.median(ordered), p95)
        lines = tuple(event_line(x) if not isinstance(x, Command) else command_line(x) for x in list(self._recent))
        return Snapshot(
            elapsed=elapsed, source=self._source_name, level_db=level, heard=heard, tuning=tuning,
            sounding=(note_name(sounding.pitch), sounding.velocity) if sounding is not None else None,
            bands=tuple(BandState(**vars(b)) for b in self.bands.values()),
            tempo=self.tempo, beat=self.beat, latency_ms=latency, latency_count=len(lat),
            dropped=int(getattr(src, "overflows", 0) or 0) if src is not None else 0,
            notes=self._notes, lines=lines, harmony=getattr(self, "harmony", None),
        )

    # ------------------------------------------------------------ lifetime

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def __enter__(self) -> "SessionDisplay":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


NullDisplay = SessionDisplay


def meter(level_db: float, width: int = METER_WIDTH, floor: float = METER_FLOOR_DB) -> tuple[int, str]:
    """Cells lit for ``level_db`` on a ``floor``..0 dBFS scale, and their colour."""
    frac = min(1.0, max(0.0, (level_db - floor) / -floor))
    lit = int(round(frac * width))
    colour = "red" if level_db >= -3.0 else "yellow" if level_db >= -12.0 else "green"
    return lit, colour


def render_snapshot(snap: Snapshot):
    """The rich renderable of one frame."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    dash = "-"
    top = Text.assemble(("improv ", "bold"), f"{snap.elapsed:7.1f} s", ("  " + snap.source, "dim"))
    lit, colour = meter(snap.level_db)
    level = Text.assemble(("input   ", "bold"), ("█" * lit, colour), ("·" * (METER_WIDTH - lit), "dim"),
                          f" {snap.level_db:6.1f} dB" if snap.level_db > -120 else "   -inf dB")
    if snap.heard is not None:
        name, cents, hz = snap.heard
        heard = Text.assemble(("heard   ", "bold"), (f"{name:4s}", "cyan bold"), f" {cents:+4.0f}c",
                              (f"  {hz:7.1f} Hz", "dim"), f"   tuning {snap.tuning:+.0f}c")
    else:
        heard = Text.assemble(("heard   ", "bold"), dash, f"   tuning {snap.tuning:+.0f}c")
    if snap.sounding is not None:
        playing = Text.assemble(("note    ", "bold"), (f"{snap.sounding[0]:4s}", "green bold"),
                                f" vel {snap.sounding[1]:3d}", f"   {snap.notes} notes")
    else:
        playing = Text.assemble(("note    ", "bold"), dash, f"   {snap.notes} notes")
    tempo = f"{snap.tempo:.0f} BPM" if snap.tempo else dash
    clock = Text.assemble(("tempo   ", "bold"), tempo, "   beat ", snap.beat or dash)
    if snap.latency_ms is not None:
        last, med, p95 = snap.latency_ms
        lat = f"decided {last:3.0f} ms after onset (median {med:.0f}, p95 {p95:.0f}, n={snap.latency_count})"
    else:
        lat = f"decided {dash}"
    drop_style = "red bold" if snap.dropped else ""
    figures = Text.assemble(("latency ", "bold"), lat, "   dropped blocks ", (str(snap.dropped), drop_style))
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for col in ("band", "command", "last note", "density"):
        table.add_column(col)
    for b in snap.bands:
        if not b.active:
            table.add_row(b.name, dash, dash, dash, style="dim")
            continue
        table.add_row(b.name, b.command or dash, note_name(b.last_note) if b.last_note is not None else dash,
                      f"{b.density:.2f}" if b.density is not None else dash)
    log = Text("\n".join(snap.lines), style="dim") if snap.lines else Text("")
    chords = Text.assemble(("chord   ", "bold"), (snap.harmony or dash, "yellow bold" if snap.harmony else ""))
    return Group(top, level, heard, playing, clock, chords, figures, table, log)


class LiveDisplay(SessionDisplay):
    """A rich ``Live`` panel, redrawn from its own thread ~12 times a second.

    Drawing starts when the session attaches its listener (or on ``start()``).
    """

    def __init__(self, console, bands: tuple[str, ...] = BANDS, refresh_per_second: float = REFRESH_PER_SECOND):
        super().__init__(bands)
        from rich.live import Live

        self.console = console
        self._live = Live(console=console, refresh_per_second=refresh_per_second, transient=False,
                          get_renderable=lambda: render_snapshot(self.snapshot()), redirect_stderr=False)
        self._started = False

    def __enter__(self) -> "LiveDisplay":
        return self  # drawing starts in attach()

    def attach(self, listener: Any, source: Any, name: str = "") -> None:
        """Attach and start drawing: an input that fails to open leaves no empty panel behind."""
        super().attach(listener, source, name)
        self.start()

    def start(self) -> None:
        if not self._started:
            self._live.start()
            self._started = True

    def stop(self) -> None:
        if self._started:
            self._live.stop()
            self._started = False


class PlainDisplay(SessionDisplay):
    """Log lines, one per event and command, written by a thread of its own."""

    def __init__(self, console, bands: tuple[str, ...] = BANDS):
        super().__init__(bands)
        self.console = console
        self._queue: queue.SimpleQueue[Event | Command | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def on_event(self, ev: Event) -> None:
        super().on_event(ev)
        self._queue.put(ev)

    def on_command(self, cmd: Command) -> None:
        super().on_command(cmd)
        self._queue.put(cmd)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            line = command_line(item) if isinstance(item, Command) else event_line(item)
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="improv-log", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None


def make_display(console, quiet: bool = False, bands: tuple[str, ...] = BANDS) -> SessionDisplay:
    """Live panel on a terminal, log lines elsewhere, nothing when ``quiet``."""
    if quiet:
        return NullDisplay(bands)
    if console.is_terminal and not console.is_dumb_terminal:
        return LiveDisplay(console, bands)
    return PlainDisplay(console, bands)


__all__ = ["BandState", "Snapshot", "SessionDisplay", "NullDisplay", "LiveDisplay", "PlainDisplay",
           "make_display", "render_snapshot", "event_line", "command_line"]
