"""One long-running improv: sessions started and ended on request, notes from elsewhere.

:class:`ServeService` is what ``improv serve`` runs behind its network front ends (OSC,
:mod:`improv.serve.osc`). It holds the band model (loaded once), the client's tracks,
the parameters, and at most one :class:`~improv.session.Session` at a time — the same
session, band, timing and output code as ``improv listen``, whose source is silence
paced in real time and whose player notes arrive through :meth:`note`::

    svc = ServeService(opts, log=print)
    svc.listeners.append(sink)          # sink.note(...), sink.features(dict), sink.state(dict), sink.error(str)
    svc.capabilities()                  # bands, commands, parameters and their ranges
    svc.create_track("keys", 0, "melodic")
    svc.set_param("temperature", 0.8)   # before or during a session
    svc.start(); svc.note("keys", 60, 100, -1, 0.5); svc.bar_end("keys", 0, 4, 4); svc.end()

Every method is quick and never waits on the model: it checks its arguments (raising
:class:`~improv.errors.ConfigError`, one line naming the problem) and hands over to the
session's threads. Starting (loading the model, opening the ports) runs on a thread of
its own.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ..errors import ConfigError, ImprovError
from ..events import ALL_BANDS, DRUMS, PLAYER, Command, Event, NoteOff, NoteOn
from .features import BarFeatures

TRACK_TYPES = ("melodic", "drum")
FREE_BAR_SECONDS = 2.0      # features in free mode: every 2 s
WATCH_INTERVAL = 0.01       # the features/state watcher's tick (s)
OFF_EARLY = 0.015           # a note's end is handed to the session this long before it is due


class Subscriber(Protocol):
    """What the service tells its front ends (each call from one of the service's threads)."""

    def note(self, band: str, pitch: int, velocity: int, onset: float, duration: float) -> None: ...
    def features(self, data: dict) -> None: ...
    def state(self, data: dict) -> None: ...
    def error(self, text: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Track:
    """A client's track: notes in (melodic: heard as the player; drum: counted), or a band's
    (its instrument is that band's program)."""

    track_id: str
    instrument: int
    kind: str            # melodic | drum
    band: str | None     # the band whose track it is, or None: the client's


class ServeService:
    """Sessions on request (see the module doc)."""

    def __init__(self, opts, log: Callable[[str], None], blocksize: int = 256, model=None):
        from ..session import ListenOptions

        if not opts.bands:
            raise ConfigError("serve --bands none: nothing would answer; give the bands, e.g. --bands all")
        self.opts: ListenOptions = opts
        self.log = log
        self.blocksize = blocksize
        self.listeners: list[Subscriber] = []
        self.tracks: dict[str, Track] = {}
        self.params: list[tuple[str, Any]] = []      # set before a session: applied when it starts
        self.status = "idle"                         # idle | starting | running | ending | failed
        self.sessions = 0
        self.last_result: dict | None = None
        self._model = model
        self._lock = threading.RLock()
        self._session = None
        self._band = None
        self._barclock = None
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._features = BarFeatures()
        self._pending_offs: list[tuple[float, int, str, int]] = []    # (time, seq, track, pitch)
        self._sounding: tuple[str, int] | None = None                 # (track, pitch) heard as the player's
        self._seq = itertools.count()
        self._starts: dict[tuple[str, int], float] = {}              # (band, pitch) -> onset sent
        self.notes_in = 0
        self.drum_notes_in = 0
        self.notes_out = 0

    # ------------------------------------------------------------ what it offers

    def capabilities(self) -> dict[str, Any]:
        from ..band.commands import COMMANDS, TARGETS
        from ..band.params import PARAMS
        from ..output import BandLayout, RANGES

        layout = BandLayout.make(self.opts.channels)
        bands = []
        for b in self.opts.bands:
            entry: dict[str, Any] = {"name": b, "kind": "drum" if b == DRUMS else "melodic",
                                     "channel": layout.channel(b) + 1, "program": self._program(b)}
            if b != DRUMS:
                settings = self.opts.band
                entry["range"] = list((settings.ranges if settings else {}).get(b, RANGES[b]))
            bands.append(entry)
        commands = {name: {"help": spec.help, "value": spec.kind, **({"choices": list(spec.choices)}
                                                                     if spec.choices else {}),
                           **({"default": spec.default} if spec.default is not None else {}),
                           "targets": ["all"] if spec.global_only else list(TARGETS)}
                    for name, spec in COMMANDS.items()}
        return {
            "name": "improv", "version": _version(), "bands": bands, "track_types": list(TRACK_TYPES),
            "controls": {"address": "/improv/<band>/<command> [value]",
                         "targets": [t for t in TARGETS if t == "all" or t in self.opts.bands]},
            "commands": commands,
            "parameters": {name: spec.describe() for name, spec in PARAMS.items()},
            "session": self.status,
        }

    def _program(self, band: str) -> int:
        from ..synth import as_voices

        return as_voices(self.opts.voices)[band].program

    # ------------------------------------------------------------ tracks, parameters

    def create_track(self, track_id: str, instrument, kind: str) -> Track:
        from ..gm import program_number

        tid = str(track_id).strip()
        if not tid:
            raise ConfigError("track/create: give a track id (a name or a number)")
        kind = str(kind).strip().lower()
        if kind not in TRACK_TYPES:
            raise ConfigError(f"track/create {tid}: track type {kind!r}: use melodic or drum")
        try:
            program = program_number(str(instrument).strip())
        except ConfigError as e:
            raise ConfigError(f"track/create {tid}: instrument {instrument!r}: {e}") from None
        band = tid.lower() if tid.lower() in ALL_BANDS else None
        if band is not None:
            if band not in self.opts.bands:
                raise ConfigError(f"track/create {tid}: the band {band} is not playing (the bands are "
                                  f"{', '.join(self.opts.bands)}); name your own tracks otherwise")
            if (band == DRUMS) != (kind == "drum"):
                raise ConfigError(f"track/create {tid}: the {band} band's track is "
                                  f"{'drum' if band == DRUMS else 'melodic'}, not {kind}")
            self._set_program(band, program)
        track = Track(tid, program, kind, band)
        with self._lock:
            self.tracks[tid] = track
        return track

    def _set_program(self, band: str, program: int) -> None:
        from ..synth import Voice, as_voices

        voices = dict(as_voices(self.opts.voices))
        voices[band] = Voice(program, voices[band].volume)
        self.opts = replace(self.opts, voices=voices)   # from the next session start

    def set_param(self, name: str, value) -> dict[str, Any]:
        from ..band.params import check_param

        param, band, v = check_param(name, value, tuple(self.opts.bands))
        with self._lock:
            live = self._band if self.status == "running" else None
            if live is None:
                self.params.append((name, v))
        if live is not None:
            live.set_param(name, v, now=self.now())
        return {"name": param, "band": band, "value": v, "applied": "now" if live is not None else "at start"}

    def command(self, cmd: Command) -> None:
        session = self._running("a command")
        session.command(cmd)

    # ------------------------------------------------------------ notes and bars in

    def note(self, track_id: str, pitch: int, velocity: int, onset: float, duration: float) -> None:
        """A note of a client's track: ``onset`` in session seconds (< 0: now), ``duration``
        in seconds (<= 0: until the track's next note, or a note of velocity 0)."""
        session = self._running("notes")
        track = self._track(track_id, "note")
        if not isinstance(pitch, int) or isinstance(pitch, bool) or not 0 <= pitch <= 127:
            raise ConfigError(f"note {track_id}: pitch {pitch!r}: give a MIDI key 0 to 127")
        if not isinstance(velocity, int) or isinstance(velocity, bool) or not 0 <= velocity <= 127:
            raise ConfigError(f"note {track_id}: velocity {velocity!r}: give 0 (the note ends) to 127")
        for what, x in (("onset", onset), ("duration", duration)):
            if not isinstance(x, (int, float)) or isinstance(x, bool) or x != x or abs(x) == float("inf"):
                raise ConfigError(f"note {track_id}: {what} {x!r}: give seconds (onset -1: now)")
        if duration > 600:
            raise ConfigError(f"note {track_id}: duration {duration:g} s: give at most 600 s (0: until the next "
                              "note)")
        now = session.now()
        t = now if onset < 0 else float(onset)
        if t > now + 60:
            raise ConfigError(f"note {track_id}: onset {onset:g} s is more than a minute ahead of the session "
                              f"({now:.2f} s); give session seconds, or -1 for now")
        if track.kind == "drum":
            if velocity > 0:             # a drum track marks the pulse; the melodic tracks are the line
                self.drum_notes_in += 1
                self._band.hear_pulse(t, int(velocity))
            return
        key = (track.track_id, int(pitch))
        with self._lock:
            if velocity == 0:
                if self._sounding == key:
                    self._sounding = None
                    session.play(NoteOff(t, int(pitch), PLAYER, end=t))
                return
            self.notes_in += 1
            self._pending_offs = [o for o in self._pending_offs if o[2] != track.track_id]
            heapq.heapify(self._pending_offs)
            self._sounding = key
            session.play(NoteOn(t, int(pitch), int(velocity), PLAYER, onset=t))
            if duration > 0:
                heapq.heappush(self._pending_offs, (t + float(duration), next(self._seq), track.track_id, int(pitch)))

    def bar_end(self, track_id: str, bar_index: int, num: int, den: int) -> None:
        """Bar ``bar_index`` of a metered client ended now: the band plays to these bars."""
        self._running("bar ends")
        self._track(track_id, "bar/end")
        if not isinstance(bar_index, int) or isinstance(bar_index, bool) or bar_index < 0:
            raise ConfigError(f"bar/end {track_id}: bar index {bar_index!r}: give a whole number from 0")
        meter = self._barclock.meter
        if (num, den) != (meter.numerator, meter.denominator):
            raise ConfigError(f"bar/end {track_id}: time signature {num}/{den} is not the band's "
                              f"{meter.name}; start improv serve with --meter {num}/{den}")
        self._barclock.bar_end(bar_index, self.now())

    def _track(self, track_id, what: str) -> Track:
        track = self.tracks.get(str(track_id).strip())
        if track is None:
            raise ConfigError(f"{what}: unknown track {track_id!r}; create it first with "
                              "/improv/track/create TRACK_ID INSTRUMENT melodic|drum")
        if track.band is not None:
            raise ConfigError(f"{what}: track {track_id!r} is the {track.band} band's; send your notes on a "
                              "track of your own")
        return track

    def _running(self, what: str):
        session = self._session
        if session is None or self.status != "running":
            raise ConfigError(f"{what}: no session is running ({self.status}); send /improv/session/start first")
        return session

    # ------------------------------------------------------------ lifecycle

    @property
    def band(self):
        """The running session's :class:`~improv.band.Band` (None between sessions)."""
        return self._band if self.status == "running" else None

    def now(self) -> float:
        session = self._session
        return session.now() if session is not None else 0.0

    def start(self) -> None:
        """Start a session (on a thread of its own: the model loads, the ports open)."""
        with self._lock:
            if self._thread is not None:
                raise ConfigError(f"a session is already {self.status}; send /improv/session/end first")
            self.status = "starting"
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stop,), name="improv-serve-session",
                                            daemon=True)
            self._thread.start()

    def end(self) -> None:
        """End the session (it closes on its own thread: every note off, the recording saved)."""
        with self._lock:
            if self._thread is None:
                raise ConfigError("session/end: no session is running; send /improv/session/start first")
            if self.status == "running" or self.status == "starting":
                self.status = "ending"
            self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no session runs; whether none does."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self._thread is None

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self.wait(10.0)

    def _run(self, stop: threading.Event) -> None:
        from ..audio import SilentSource
        from ..session import Session

        watcher = None
        try:
            band = self._make_band()
            self._features = BarFeatures()
            session = Session(self.opts, source=SilentSource(48000, self.blocksize), band=band,
                              on_event=self._on_event, on_warning=self._warn)
            with self._lock:
                self._session, self._band = session, band
                self._pending_offs, self._sounding, self._starts = [], None, {}
                self.notes_in = self.drum_notes_in = self.notes_out = 0
                if not stop.is_set():
                    self.status = "running"
            self.sessions += 1
            watcher = threading.Thread(target=self._watch, args=(stop, session, band), name="improv-serve-watch",
                                       daemon=True)
            watcher.start()
            self._tell_state()
            result = session.run(stop)
            self.last_result = {"seconds": round(result.seconds, 3), "notes": dict(result.notes),
                                "recording": str(result.recording) if result.recording else None,
                                "midi_port": result.midi_port, "sound": result.synth}
            with self._lock:
                self.status = "idle"
        except ImprovError as e:
            with self._lock:
                self.status = "failed"
            self._error(f"session/start: {e}")
        except Exception as e:  # noqa: BLE001 - the server goes on; the fault is said in one line
            with self._lock:
                self.status = "failed"
            self._error(f"session failed: {type(e).__name__}: {e}")
        finally:
            stop.set()
            if watcher is not None:
                watcher.join(2.0)
            with self._lock:
                self._session = None
                self._thread = None
            self._tell_state()

    def _make_band(self):
        from ..band import Band
        from ..band.generators import ModelGenerator
        from ..model import load_model
        from ..timing.barclock import BarClock

        settings = self.opts.band
        if self._model is None and any(b != DRUMS for b in settings.bands):
            self._model = load_model()
        gen = ModelGenerator(self._model, settings.seed) if self._model is not None else None
        band = Band(replace(settings), generator=gen)
        self._barclock = BarClock(band.time.meter, settings.tempo)
        band.time.external = self._barclock   # /improv/bar/end drives the band's bars (after a tap tempo)
        for name, value in self.params:
            band.set_param(name, value, now=0.0)
        self.params = []
        return band

    # ------------------------------------------------------------ out

    def _on_event(self, ev: Event) -> None:
        self._features(ev)
        if ev.source == PLAYER or not isinstance(ev, (NoteOn, NoteOff)):
            return
        if isinstance(ev, NoteOn) and ev.velocity > 0:
            self.notes_out += 1
            self._starts[(ev.source, ev.pitch)] = ev.time
            for sink in list(self.listeners):
                sink.note(ev.source, ev.pitch, ev.velocity, ev.time, 0.0)
        else:
            start = self._starts.pop((ev.source, ev.pitch), ev.time)
            for sink in list(self.listeners):
                sink.note(ev.source, ev.pitch, 0, start, max(0.0, ev.time - start))

    def _watch(self, stop: threading.Event, session, band) -> None:
        """Hands note ends to the session when due; at each bar line (free mode: every 2 s)
        tells the listeners the bar's features and the state."""
        last_bar: float | None = None
        free_from = 0.0
        while not stop.wait(WATCH_INTERVAL):
            now = session.now()
            with self._lock:
                while self._pending_offs and self._pending_offs[0][0] <= now + OFF_EARLY:
                    t, _, track, pitch = heapq.heappop(self._pending_offs)
                    if self._sounding == (track, pitch):
                        self._sounding = None
                        session.play(NoteOff(t, pitch, PLAYER, end=t))
            bars = [b for b in band.bars[-4:] if b <= now]
            metered = band.map is not None and band.map.metered
            if metered and bars:
                if last_bar is None:
                    last_bar = bars[-1]
                elif bars[-1] > last_bar + 1e-6:
                    self._tell_features(last_bar, bars[-1], band.map.beat_seconds, band, now)
                    last_bar = free_from = bars[-1]
            elif not metered and now - free_from >= FREE_BAR_SECONDS:
                if now > FREE_BAR_SECONDS:
                    self._tell_features(free_from, now, 0.5, band, now)
                free_from, last_bar = now, None

    def _tell_features(self, start: float, end: float, beat_seconds: float, band, now: float) -> None:
        data = self._features.span(start, end, beat_seconds)
        bpm, _ = band.clock_text(now)
        data.update(tempo=None if bpm is None else round(bpm, 3), metered=bpm is not None,
                    harmony=band.harmony_text())
        for sink in list(self.listeners):
            sink.features(data)
        self._tell_state()

    def state(self) -> dict[str, Any]:
        with self._lock:
            band, status = self._band, self.status
            out: dict[str, Any] = {"session": status, "sessions": self.sessions,
                                   "tracks": {t.track_id: {"instrument": t.instrument, "type": t.kind,
                                                           "band": t.band} for t in self.tracks.values()},
                                   "notes_in": self.notes_in, "drum_notes_in": self.drum_notes_in,
                                   "notes_out": self.notes_out,
                                   "params_pending": [[n, v] for n, v in self.params]}
        if band is not None and status in ("running", "ending"):
            out.update(band.state(self.now()))
            clock = self._barclock
            if clock is not None:
                out["bar_ends"] = {"received": clock.received, "state": clock.state(self.now()).message or "locked"}
        elif self.last_result is not None:
            out["last_session"] = self.last_result
        return out

    def _tell_state(self) -> None:
        data = self.state()
        for sink in list(self.listeners):
            sink.state(data)

    def _warn(self, text: str) -> None:
        self.log(text)

    def _error(self, text: str) -> None:
        self.log(text)
        for sink in list(self.listeners):
            sink.error(text)


def _version() -> str:
    from .. import __version__

    return __version__


__all__ = ["ServeService", "Subscriber", "Track", "TRACK_TYPES"]
