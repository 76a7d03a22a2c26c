"""The sampler live: a JACK client whose process callback only copies, and the routing
between the sampler and the General MIDI synth.

:class:`SamplerOut` is a JACK client (``improv-sampler:out``, connected to the system
outputs) with a ring buffer allocated up front. A worker thread mixes the sounding notes
(:class:`~improv.sampler.voice.Mixer`) a few periods ahead into the ring; the process
callback copies one period out of it (zeros when it runs dry, counted) and stamps the
cycle (its JACK frame, wake-up time and ring position) into a preallocated array. From
those stamps the worker maps session time to ring frames (the lower envelope of the
wake-ups, :class:`~improv.timing.jackmidi.FrameClock`, as the frame-accurate MIDI client
does), so a note handed over ahead of its time starts at its exact frame.

:class:`SamplerSynth` stands where the built-in synth stands in a session. The band's
notes reach it twice: ``lead`` seconds early with their time (``send_at``, a timed sink
for a scheduler of its own, see :class:`~improv.band.live.LiveBand`), where a note of a
sampled band that the bank can serve is prepared and placed; and at their time
(``send``, from :class:`~improv.band.live.BandOutput`), where every other note goes to
FluidSynth. Player events on the session's bus go to the :class:`NoteCatcher`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

import mido
import numpy as np

from ..events import BANDS, PLAYER, Command, Event, NoteOff, NoteOn
from ..output import DEFAULT_LAYOUT
from ..runtime import freeze_heap
from ..timing.jackmidi import FrameClock
from .bank import NoteCatcher, SampleBank
from .voice import RESAMPLE_SEMITONES, Mixer, PreparedCache, warm_vocoder

LEAD = 0.07          # seconds a band note reaches the sampler before its time
STAMPS = 64          # cycle stamps kept (the worker reads them every few ms)


class SamplerOut:
    """The sampler's JACK client (see the module doc). ``origin()`` gives the session
    clock's origin (session time = ``time.perf_counter() - origin()``)."""

    def __init__(self, name: str = "improv-sampler", origin: Callable[[], float] = lambda: 0.0,
                 ahead_periods: int = 3, ring_seconds: float = 0.5, autoconnect: bool = True,
                 max_voices: int = 24):
        import jack

        from ..synth import SynthError, _c_stderr_captured

        try:
            with _c_stderr_captured():  # libjack's own lines when no server answers: ours is one line
                self.client = jack.Client(name, no_start_server=True)
        except jack.JackError:
            raise SynthError("the sampler plays through JACK and no JACK server is running; start one "
                             "(jackd, or your JACK setup) or use --synth fluidsynth", "no JACK server") from None
        self.port = self.client.outports.register("out")
        self.sample_rate = int(self.client.samplerate)
        self.period = int(self.client.blocksize)
        self.origin = origin
        size = 1 << int(np.ceil(np.log2(max(ring_seconds * self.sample_rate, 8 * self.period))))
        self._ring = np.zeros(size, np.float32)
        self._mask = size - 1
        self._written = 0          # frames the worker wrote (worker only)
        self._read = 0             # frames the callback read (callback only)
        self._stamps = np.zeros((STAMPS, 3), np.float64)  # (JACK frame, wake-up, ring frame) per cycle
        self._cycles = 0
        self.underruns = 0         # cycles the ring had less than a period for
        self.xruns = 0
        self.ahead = max(1, int(ahead_periods)) * self.period
        self.mixer = Mixer(self.sample_rate, max_voices)
        self.frames = FrameClock()
        self._seen = 0
        self._last_f = 0.0
        self._wraps = 0
        self._map: tuple[float, float] | None = None   # (JACK frame incl. wraps, ring frame) of the latest cycle
        self._inbox: deque = deque()                   # (session time, tag, Prepared or None) from other threads
        self._due: list = []                           # (session time, seq, tag, Prepared or None), worker only
        self._seq = 0
        self.placed: deque[tuple[float, float, int]] = deque(maxlen=10_000)  # (time, JACK frame asked, frames late)
        self.late = 0
        self.render_seconds: deque[float] = deque(maxlen=10_000)  # worker time per block mixed
        self._block = np.zeros(self.period, np.float32)
        self._stop = threading.Event()
        self.client.set_xrun_callback(self._on_xrun)
        self.client.set_process_callback(self._process)
        self.client.activate()
        if autoconnect:
            for dest in self.client.get_ports(is_physical=True, is_input=True, is_audio=True)[:2]:
                self.client.connect(self.port, dest)
        self._thread = threading.Thread(target=self._run, name="improv-sampler", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ JACK thread: copies only

    def _process(self, frames: int) -> None:
        out = self.port.get_array()
        r = self._read
        n = self._written - r
        if n > frames:
            n = frames
        i = r & self._mask
        k = len(self._ring) - i
        if k > n:
            k = n
        out[:k] = self._ring[i:i + k]
        out[k:n] = self._ring[:n - k]
        out[n:] = 0.0
        if n < frames:
            self.underruns += 1
        st = self._stamps[self._cycles % STAMPS]
        st[0] = self.client.last_frame_time
        st[1] = time.perf_counter()
        st[2] = r
        self._read = r + n
        self._cycles += 1

    def _on_xrun(self, delay) -> None:
        self.xruns += 1

    # ------------------------------------------------------------------ any thread

    @property
    def name(self) -> str:
        return self.port.name

    def note_on(self, t: float, sound, tag) -> None:
        self._inbox.append((t, tag, sound))

    def note_off(self, t: float, tag) -> None:
        self._inbox.append((t, tag, None))

    def silence(self) -> None:
        self._inbox.append((-1e9, None, None))

    def jack_frame(self, t: float) -> float | None:
        """The JACK frame (incl. wraps) at session time ``t``, from the latest cycle; None before the first."""
        if self.frames.offset is None:
            return None
        return (t - self.frames.offset) * self.sample_rate

    # ------------------------------------------------------------------ worker thread

    def _follow(self) -> None:
        """Take in the cycles stamped since the last call: the frame clock and the latest mapping."""
        cycles = self._cycles
        first = max(self._seen, cycles - STAMPS + 1)
        origin = self.origin()
        for c in range(first, cycles):
            f, woke, r = self._stamps[c % STAMPS]
            if f < self._last_f:
                self._wraps += 1
            self._last_f = f
            fa = f + self._wraps * 2.0**32
            self.frames.follow(woke - origin - fa / self.sample_rate)
            self._map = (fa, r)
        self._seen = cycles

    def _ring_frame(self, t: float) -> float | None:
        if self._map is None or self.frames.offset is None:
            return None
        fa, r = self._map
        return r + (t - self.frames.offset) * self.sample_rate - fa

    def _take_inbox(self) -> None:
        while self._inbox:
            t, tag, sound = self._inbox.popleft()
            if t < -1e8:  # silence: every note released now, nothing pending
                self._due.clear()
                self.mixer.silence()
                continue
            self._seq += 1
            self._due.append((t, self._seq, tag, sound))
        self._due.sort(key=lambda d: (d[0], d[1]))

    def _render(self) -> None:
        t0 = time.perf_counter()
        f0 = self.mixer.frame
        f1 = f0 + self.period
        # each note's frame from the latest cycle (a stall of the server since it came in moves it)
        while self._due:
            t, _, tag, sound = self._due[0]
            w = self._ring_frame(t)
            w = f0 if w is None else int(round(w))
            if w >= f1:
                break
            self._due.pop(0)
            if sound is None:
                self.mixer.stop(w, tag)
                continue
            late = max(0, f0 - w)
            if late:
                self.late += 1
            self.mixer.start(w, sound, tag)
            if self._map is not None:
                fa, r = self._map
                self.placed.append((t, w - r + fa, late))
        block = self.mixer.render(self.period, self._block)
        i = self._written & self._mask
        k = min(self.period, len(self._ring) - i)
        self._ring[i:i + k] = block[:k]
        self._ring[:self.period - k] = block[k:]
        self._written += self.period
        self.render_seconds.append(time.perf_counter() - t0)

    def _run(self) -> None:
        nap = self.period / self.sample_rate / 3.0
        while not self._stop.is_set():
            self._follow()
            self._take_inbox()
            while self._written - self._read < self.ahead:
                self._render()
            time.sleep(nap)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.client.deactivate()
        self.client.close()


class SamplerSynth:
    """The sampler and the General MIDI synth as one built-in sound (see the module doc).

    ``bands`` are the sampled bands; ``fallback`` (a :class:`~improv.synth.BandSynth`, or
    None) plays the others, and a sampled band's notes while the bank has none within
    ``reach`` semitones of them.
    """

    timed = True
    lead = LEAD

    def __init__(self, bank: SampleBank, out: SamplerOut, fallback=None, bands: Iterable[str] = BANDS,
                 catcher: NoteCatcher | None = None, reach: float = 24.0):
        self.bank = bank
        self.out = out
        self.fallback = fallback
        self.bands = frozenset(bands)
        self.catcher = catcher
        self.reach = reach
        self.cache = PreparedCache()
        self.sampled = 0           # notes the sampler played
        self.general = 0           # notes of sampled bands that FluidSynth played (no note near in the bank)
        self.prepare_seconds: deque[float] = deque(maxlen=10_000)
        self._costs: deque[float] = deque([0.03], maxlen=20)  # phase vocoder: seconds per second of note
        self._cost = 0.03
        self.quick = 0             # notes resampled for lack of time for the phase vocoder
        self._lock = threading.Lock()
        self._claimed: dict[tuple[int, int], int] = {}
        self._sounding: set[tuple[int, int]] = set()
        self._closed = False
        threading.Thread(target=self._warm, name="improv-sampler-warm", daemon=True).start()

    def _warm(self) -> None:
        warm_vocoder(self.bank.sample_rate)
        if not self._closed:  # what librosa and numba loaded, out of the collector's full scans (runtime)
            freeze_heap()

    # ------------------------------------------------------------------ timed: ahead of time

    def send_at(self, t: float, data: bytes) -> None:
        if len(data) != 3 or data[0] & 0xF0 not in (0x80, 0x90):
            return
        ch, key = data[0] & 0x0F, data[1]
        if DEFAULT_LAYOUT.source_of(ch) not in self.bands:
            return
        if data[0] & 0xF0 == 0x90 and data[2] > 0:
            note = self.bank.nearest(key, self.reach)
            if note is None:
                return  # FluidSynth plays it at its time
            t0 = time.perf_counter()
            # the time left before the worker mixes the note's frame: too little for the phase
            # vocoder (at its recent cost for a note this long), and the note is resampled this once
            left = t - (t0 - self.out.origin()) - (self.out.ahead + self.out.period) / self.out.sample_rate
            quick = abs(key - note.pitch) > RESAMPLE_SEMITONES and left < 1.5 * self._cost * note.seconds
            sound = self.cache.get(note, float(key), data[2], quick=quick)
            dt = time.perf_counter() - t0
            self.prepare_seconds.append(dt)
            if sound.semitones and abs(sound.semitones) > RESAMPLE_SEMITONES and not quick and dt > 0.002:
                self._costs.append(dt / note.seconds)
                self._cost = max(self._costs)
            self.quick += quick
            with self._lock:
                self._claimed[(ch, key)] = self._claimed.get((ch, key), 0) + 1
            self.out.note_on(t, sound, (ch, key))
        else:
            self.out.note_off(t, (ch, key))

    def panic(self) -> None:
        self.out.silence()

    # ------------------------------------------------------------------ plain: at the note's time

    def send(self, msg: mido.Message) -> None:
        if msg.type in ("note_on", "note_off"):
            k = (msg.channel, msg.note)
            with self._lock:
                if msg.type == "note_on" and msg.velocity:
                    n = self._claimed.get(k, 0)
                    if n:
                        if n == 1:
                            del self._claimed[k]
                        else:
                            self._claimed[k] = n - 1
                        self._sounding.add(k)
                        self.sampled += 1
                        return
                    if DEFAULT_LAYOUT.source_of(msg.channel) in self.bands:
                        self.general += 1
                elif k in self._sounding:
                    self._sounding.discard(k)
                    return
        if self.fallback is not None:
            self.fallback.send(msg)

    def all_notes_off(self) -> None:
        self.out.silence()
        with self._lock:
            self._claimed.clear()
            self._sounding.clear()
        if self.fallback is not None:
            self.fallback.all_notes_off()

    # ------------------------------------------------------------------ the session's bus

    def __call__(self, ev: Event) -> None:
        """Player events feed the bank; band events (``--fast``: no scheduler) play now."""
        if ev.source == PLAYER:
            if self.catcher is not None:
                self.catcher(ev)
            return
        if isinstance(ev, (NoteOn, NoteOff)):
            from ..output import encode

            for msg in encode(ev, DEFAULT_LAYOUT, bends=False):
                self.send_at(ev.time, bytes(msg.bytes()))
                self.send(msg)

    def add_audio(self, block) -> None:
        if self.catcher is not None:
            self.catcher.add_audio(block)

    def command(self, cmd: Command) -> None:
        if cmd.command == "freeze":
            self.bank.freeze(cmd.value != "off")
        elif cmd.command == "forget":
            self.bank.forget()

    def close(self) -> None:
        self._closed = True
        self.out.close()
        if self.fallback is not None:
            self.fallback.close()
