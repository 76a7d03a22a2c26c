"""Built-in General MIDI sound: the band through FluidSynth, live or offline.

:class:`BandSynth` wraps one FluidSynth instance (pyfluidsynth over Debian's
libfluidsynth). It takes the same events as the MIDI port — each source on its
channel from :data:`improv.output.CHANNELS` — or raw mido messages, so a live
session and ``improv render`` play the band through exactly the same code. Each
band has a :class:`Voice` (General MIDI program and channel volume).

Live: :meth:`BandSynth.start` opens FluidSynth's own audio driver (JACK when a JACK
server runs, else FluidSynth's default device); FluidSynth's thread-safe API lets
the analysis thread call :meth:`BandSynth.send` directly. Offline:
:func:`render_messages` pulls samples between messages, sample-accurately.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import sys
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from .errors import ConfigError, ImprovError
from .events import ALL_BANDS as BANDS, DRUMS, Event
from .output import CHANNELS, BandLayout, encode
from .record import bend_range_messages

# Looked for in this order: Debian's "best installed GM font" alternative first, then
# the big fonts (FluidR3, MuseScore), then the small TimGM6mb; other distributions' paths last.
SOUNDFONT_PATHS: tuple[str, ...] = (
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf3/default-GM.sf3",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "/usr/share/sounds/sf2/MuseScore_General.sf2",
    "/usr/share/sounds/sf3/FluidR3Mono_GM.sf3",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/mscore*/sound/MuseScore_General.sf[23]",
    "/usr/share/mscore*/sound/FluidR3Mono_GM.sf[23]",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM2-2.sf2",
)

SYNTH_MODES = ("auto", "fluidsynth", "none")


class SynthError(ImprovError):
    """The built-in synthesiser cannot run: FluidSynth or a SoundFont is missing, or no audio out.

    ``short`` names the cause in a few words, for the summary of a quiet fallback.
    """

    def __init__(self, message: str, short: str):
        super().__init__(message)
        self.short = short


@contextlib.contextmanager
def _c_stderr_captured() -> Iterator[list[str]]:
    """Capture what C libraries (libjack, ALSA) write to file descriptor 2 meanwhile.

    Probing for a JACK server or opening an audio device makes them print several lines
    of diagnostics; improv says what went wrong in one line of its own instead. The
    redirection is process-wide, so keep the block short (it covers an open call).
    """
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())


@dataclass(frozen=True, slots=True)
class Voice:
    """A band's sound: General MIDI program (0-127, 0 = Acoustic Grand Piano) and volume (CC 7)."""

    program: int
    volume: int = 100
    bank: int = 0

    def __post_init__(self) -> None:
        for name, value, top in (("program", self.program, 127), ("volume", self.volume, 127),
                                 ("bank", self.bank, 16383)):
            if not isinstance(value, int) or not 0 <= value <= top:
                raise ConfigError(f"voice {name} {value!r}: give a whole number from 0 to {top}")


# Fingered electric bass, electric piano 1, alto sax (GM programs counted from 0).
DEFAULT_VOICES: dict[str, Voice] = {"bass": Voice(33, 110), "mid": Voice(4, 90), "high": Voice(65, 90),
                                     DRUMS: Voice(0, 100)}  # drums: the program is the GM kit (0 standard)
DRUM_BANK = 128  # FluidSynth's (and SoundFonts') bank of drum kits


def as_voices(voices: Mapping[str, Voice | tuple[int, int]] | None) -> dict[str, Voice]:
    """Normalise ``{source: Voice or (program, volume)}``; missing bands get their default."""
    out = dict(DEFAULT_VOICES)
    for source, v in (voices or {}).items():
        if source not in CHANNELS:
            raise ConfigError(f"voice for {source!r}: unknown source; use one of {', '.join(CHANNELS)}")
        out[source] = v if isinstance(v, Voice) else Voice(*v)
    return out


def find_soundfont(explicit: str | Path | None = None,
                   candidates: Iterable[str] = SOUNDFONT_PATHS) -> Path:
    """The SoundFont to use: ``explicit`` (``--soundfont``) if given, else the first found."""
    if explicit is not None:
        p = Path(explicit).expanduser()
        if not p.is_file():
            what = "is a folder" if p.is_dir() else "no such file"
            raise SynthError(f"--soundfont {p}: {what}; give a General MIDI SoundFont (.sf2 or .sf3)",
                             "SoundFont not found")
        return p
    for pattern in candidates:
        for name in sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]:
            p = Path(name)
            if p.is_file():
                return p
    raise SynthError("no General MIDI SoundFont found in /usr/share/sounds/sf2 or sf3; install one "
                     "(Debian: apt install fluid-soundfont-gm) or give --soundfont FILE, or use --synth none",
                     "no SoundFont found")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


class _FluidLog:
    """Routes FluidSynth's warnings and errors into a buffer instead of stderr.

    FluidSynth's log handlers are process-wide; this installs one collector per process
    so failures (no JACK server, a broken SoundFont) can be put into one-line messages.
    Debug and info messages are dropped.
    """

    _installed: "_FluidLog | None" = None

    def __init__(self, lib) -> None:
        self.messages: deque[str] = deque(maxlen=20)
        proto = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
        self._callback = proto(self._collect)  # kept referenced: FluidSynth calls it from its threads
        self._null = ctypes.cast(None, proto)
        lib.fluid_set_log_function.argtypes = [ctypes.c_int, proto, ctypes.c_void_p]
        lib.fluid_set_log_function.restype = None
        for level in (0, 1, 2):  # PANIC, ERR, WARN
            lib.fluid_set_log_function(level, self._callback, None)
        for level in (3, 4):  # INFO, DBG
            lib.fluid_set_log_function(level, self._null, None)

    def _collect(self, level: int, message: bytes, _data) -> None:
        self.messages.append(message.decode(errors="replace"))

    def last(self) -> str:
        return self.messages[-1] if self.messages else "no reason given"

    @classmethod
    def install(cls, lib) -> "_FluidLog":
        if cls._installed is None:
            cls._installed = cls(lib)
        return cls._installed


def load_fluidsynth():
    """Import pyfluidsynth, or raise a one-line :class:`SynthError` saying what to install."""
    try:
        import fluidsynth
    except (ImportError, OSError) as e:
        raise SynthError(f"FluidSynth is not available ({_first_line(e)}); install it (Debian: apt install "
                         "libfluidsynth3, and pip install pyfluidsynth) or use --synth none",
                         "FluidSynth not installed") from None
    _FluidLog.install(fluidsynth._fl)
    return fluidsynth


class BandSynth:
    """One FluidSynth playing the band: events or mido messages in, audio out.

    ``sources`` are the event sources it plays (the band by default: the player's own
    instrument is heard acoustically). ``bend_range`` must match the one the pitch-bend
    values were computed with; it is set on every channel with RPN 0.
    """

    def __init__(self, soundfont: str | Path, sample_rate: int = 48000,
                 voices: Mapping[str, Voice | tuple[int, int]] | None = None, bend_range: float = 2.0,
                 gain: float = 1.0, sources: Iterable[str] = BANDS):
        fs = load_fluidsynth()
        self._fs = fs
        self._log = _FluidLog.install(fs._fl)
        self.soundfont = Path(soundfont)
        self.sample_rate = int(sample_rate)
        self.bend_range = float(bend_range)
        self.layout = BandLayout(bend_range=self.bend_range)  # the synth plays each source on its own channel
        self.sources = frozenset(sources)
        self.synth = fs.Synth(gain=float(gain), samplerate=float(self.sample_rate))
        self.sfid = self.synth.sfload(str(self.soundfont))
        if self.sfid < 0:
            self.synth.delete()
            raise SynthError(f"{self.soundfont}: FluidSynth cannot load it as a SoundFont ({self._log.last()}); "
                             "give a .sf2 or .sf3 file with --soundfont", "SoundFont unreadable")
        self._driver = None
        self.driver_name: str | None = None
        self.voices = as_voices(voices)
        for channel in range(16):
            for msg in bend_range_messages(channel, self.bend_range):
                self.send(msg)
        for source, voice in self.voices.items():
            self.set_voice(source, voice)

    # -------------------------------------------------------------- settings

    def set_voice(self, source: str, voice: Voice | tuple[int, int]) -> None:
        """Give ``source``'s channel a General MIDI program and volume."""
        voice = voice if isinstance(voice, Voice) else Voice(*voice)
        self.voices[source] = voice
        channel = CHANNELS[source]
        if source == DRUMS:  # a kit the SoundFont lacks: its standard kit
            if self.synth.program_select(channel, self.sfid, DRUM_BANK, voice.program) != 0:
                self.synth.program_select(channel, self.sfid, DRUM_BANK, 0)
        else:
            self.synth.program_select(channel, self.sfid, voice.bank, voice.program)
        self.synth.cc(channel, 7, voice.volume)

    # ---------------------------------------------------------------- input

    def __call__(self, ev: Event) -> None:
        """An event sink: plays the events of ``sources``, ignores the rest."""
        if ev.source not in self.sources:
            return
        for msg in encode(ev, self.layout):
            self.send(msg)

    def send(self, msg: mido.Message) -> None:
        """Play one channel message (notes, bends, programs, controllers)."""
        s, t = self.synth, msg.type
        if t == "note_on":
            if msg.velocity:
                s.noteon(msg.channel, msg.note, msg.velocity)
            else:
                s.noteoff(msg.channel, msg.note)
        elif t == "note_off":
            s.noteoff(msg.channel, msg.note)
        elif t == "pitchwheel":
            s.pitch_bend(msg.channel, msg.pitch)
        elif t == "program_change":
            s.program_change(msg.channel, msg.program)
        elif t == "control_change":
            s.cc(msg.channel, msg.control, msg.value)

    def all_notes_off(self) -> None:
        for channel in range(16):
            self.synth.cc(channel, 123, 0)
            self.synth.pitch_bend(channel, 0)

    # --------------------------------------------------------------- output

    def samples(self, frames: int) -> np.ndarray:
        """Render the next ``frames`` samples offline: float32, shape (frames, 2)."""
        if frames <= 0:
            return np.zeros((0, 2), dtype=np.float32)
        raw = self.synth.get_samples(int(frames))
        return (np.asarray(raw, dtype=np.float32) / 32768.0).reshape(-1, 2)

    def start(self, driver: str | None = None, client_name: str = "improv-synth",
              autoconnect: bool = True) -> str:
        """Play live through an audio driver: ``jack``, another FluidSynth driver, or None (auto).

        Auto means JACK when a JACK server is running, else FluidSynth's default driver.
        Returns the driver's name; raises :class:`SynthError` if it cannot start.
        """
        from .midi import jack_running

        os.environ.setdefault("JACK_NO_START_SERVER", "1")
        s = self.synth
        with _c_stderr_captured():
            if driver is None:
                driver = "jack" if jack_running() else s.get_setting("audio.driver")
            if isinstance(driver, bytes):
                driver = driver.decode()
            s.setting("audio.driver", driver)
            if driver == "jack":
                s.setting("audio.jack.id", client_name)
                s.setting("audio.jack.autoconnect", 1 if autoconnect else 0)
            self._driver = self._fs.new_fluid_audio_driver(s.settings, s.synth)
        if not self._driver:
            self._driver = None
            hint = ("no JACK server is running; start one or" if driver == "jack"
                    else f"the {driver} audio output cannot be opened; check your sound setup or")
            raise SynthError(f"the built-in synth has no audio out ({self._log.last()}); {hint} use --synth none",
                             f"no {driver} audio out")
        self.driver_name = driver
        return driver

    @property
    def live(self) -> bool:
        return self._driver is not None

    def close(self) -> None:
        """Silence and release FluidSynth (and its audio driver)."""
        if self.synth is None:
            return
        self.all_notes_off()
        if self._driver is not None:
            self._fs.delete_fluid_audio_driver(self._driver)
            self._driver = None
        self.synth.delete()
        self.synth = None

    def __enter__(self) -> "BandSynth":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_synth(mode: str, soundfont: str | Path | None = None, *, midi_out: str | None = None,
               voices: Mapping[str, Voice | tuple[int, int]] | None = None, bend_range: float = 2.0,
               sample_rate: int = 48000, driver: str | None = None) -> tuple[BandSynth | None, str]:
    """The live synth ``improv listen`` asked for, started; or None and the reason.

    ``mode`` is ``--synth``: ``fluidsynth`` (errors are raised), ``none``, or ``auto`` —
    FluidSynth when no ``--midi-out`` was given and FluidSynth, a SoundFont and an audio
    out are there; otherwise quietly MIDI only (the reason is returned for the summary).
    """
    if mode not in SYNTH_MODES:
        raise ConfigError(f"--synth {mode!r}: unknown; choose {', '.join(SYNTH_MODES)}")
    if mode == "none":
        return None, "--synth none"
    if mode == "auto" and midi_out:
        return None, "MIDI goes to --midi-out"
    try:
        synth = BandSynth(find_soundfont(soundfont), sample_rate, voices, bend_range)
        try:
            synth.start(driver)
        except SynthError:
            synth.close()
            raise
    except SynthError as e:
        if mode == "fluidsynth" or soundfont is not None:
            raise
        return None, f"MIDI only (built-in synth: {e.short})"
    return synth, f"FluidSynth ({synth.soundfont.name}) via {synth.driver_name}"


def iter_render(messages: Iterable[tuple[float, mido.Message]], soundfont: str | Path, sample_rate: int,
                duration: float, voices: Mapping[str, Voice | tuple[int, int]] | None = None,
                bend_range: float = 2.0, gain: float = 1.0, chunk: int = 65536) -> Iterator[np.ndarray]:
    """Render timed MIDI channel messages offline, ``chunk`` frames (float32, stereo) at a time.

    ``messages`` are (seconds, message) pairs in time order; each is applied at its
    own sample. The chunks add up to exactly ``duration`` seconds.
    """
    end = int(round(duration * sample_rate))
    pending: list[np.ndarray] = []
    filled = pos = 0
    with BandSynth(soundfont, sample_rate, voices, bend_range, gain) as synth:
        def advance(to: int) -> Iterator[np.ndarray]:
            nonlocal filled, pos
            while pos < to:
                n = min(to - pos, chunk - filled)
                pending.append(synth.samples(n))
                filled += n
                pos += n
                if filled == chunk:
                    yield np.concatenate(pending)
                    pending.clear()
                    filled = 0

        for t, msg in messages:
            if msg.is_meta or not hasattr(msg, "channel"):
                continue
            yield from advance(min(end, int(round(max(t, 0.0) * sample_rate))))
            synth.send(msg)
        yield from advance(end)
        if pending:
            yield np.concatenate(pending)


def render_messages(messages: Iterable[tuple[float, mido.Message]], soundfont: str | Path,
                    sample_rate: int, duration: float | None = None, tail: float = 1.5,
                    voices: Mapping[str, Voice | tuple[int, int]] | None = None, bend_range: float = 2.0,
                    gain: float = 1.0) -> np.ndarray:
    """Render timed MIDI channel messages offline into one float32 array (frames, 2).

    The audio lasts ``duration`` seconds if given, else until the last message plus ``tail``.
    """
    messages = list(messages)
    if duration is None:
        duration = (messages[-1][0] if messages else 0.0) + tail
    chunks = list(iter_render(messages, soundfont, sample_rate, duration, voices, bend_range, gain))
    return np.concatenate(chunks) if chunks else np.zeros((0, 2), dtype=np.float32)


def render_events(events: Iterable[Event], soundfont: str | Path, sample_rate: int,
                  duration: float | None = None, voices: Mapping[str, Voice | tuple[int, int]] | None = None,
                  bend_range: float = 2.0, sources: Iterable[str] = BANDS, tail: float = 1.5) -> np.ndarray:
    """Render events of ``sources`` offline, as the live synth would play them."""
    keep = frozenset(sources)
    timed = [(ev.time, msg) for ev in sorted((e for e in events if e.source in keep), key=lambda e: e.time)
             for msg in encode(ev, BandLayout(bend_range=bend_range))]
    return render_messages(timed, soundfont, sample_rate, duration, tail, voices, bend_range)

