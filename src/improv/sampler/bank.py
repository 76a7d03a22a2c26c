"""The player's own notes, kept for the band to play: a bounded in-memory bank.

:class:`NoteCatcher` follows the session: it keeps the last seconds of input audio
(:meth:`NoteCatcher.add_audio`, a copy into a buffer allocated up front) and hears the
player's events (an event sink). At each player NoteOff it cuts the note from its onset
to its end at zero crossings, keeps it if it is clean (long enough, loud enough, its
pitch steady: the spread of the bends decided while it sounded under :data:`MAX_BEND_SPREAD` cents) and adds it to
the :class:`SampleBank`, with its pitch (key plus the median bend), loudness and length.

The bank holds at most ``max_seconds`` of audio (its memory bound: ``max_seconds *
sample_rate * 4`` bytes of float32). Beyond it the oldest note of the most crowded pitch
goes first, so the bank keeps its spread over the player's range. ``freeze`` stops
adding, ``forget`` empties it. :meth:`SampleBank.save` writes a folder (``bank.json``
and one WAV per note) that :func:`load_bank` reads back.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..events import PLAYER, Event, NoteOff, NoteOn, PitchBend, notes_from_events

BANK_FILE = "bank.json"
BANK_VERSION = 1
MIN_SECONDS = 0.08        # shorter notes are not kept (no sustain to loop)
MAX_SECONDS = 2.0         # longer notes are kept cut to this
MIN_RMS_DB = -50.0        # quieter notes are not kept
MAX_BEND_SPREAD = 60.0    # cents between the lowest and highest bend of a kept note (slides are not kept)
ZERO_SEARCH = 0.006       # seconds searched for a zero crossing at each end


@dataclass(frozen=True, eq=False)
class SampledNote:
    """One note the player played: mono float32 ``audio`` at ``sample_rate``.

    ``pitch`` is the fractional MIDI number heard (key + median bend), ``rms_db`` its
    loudness (dBFS), ``onset`` its start in the session (seconds), ``key`` its number
    in the bank.
    """

    key: int
    pitch: float
    velocity: int
    rms_db: float
    onset: float
    audio: np.ndarray = field(repr=False)
    sample_rate: int = 48000

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def nbytes(self) -> int:
        return int(self.audio.nbytes)


def rms_db(x: np.ndarray) -> float:
    return 10.0 * math.log10(max(float(np.mean(np.square(x, dtype=np.float64))), 1e-12))


def zero_cut(x: np.ndarray, search: int) -> tuple[int, int]:
    """(start, end) of ``x`` moved inwards to the nearest rising/any zero crossings
    within ``search`` samples of each end (the ends themselves when there is none)."""
    n = len(x)
    s = np.signbit(x)
    crossings = np.flatnonzero(s[1:] != s[:-1]) + 1  # x[i-1] and x[i] differ in sign
    if len(crossings) == 0:
        return 0, n
    head = crossings[crossings <= search]
    tail = crossings[crossings >= n - search]
    start = int(head[0]) if len(head) else 0
    end = int(tail[-1]) if len(tail) else n
    if end - start < n // 2:
        return 0, n
    return start, end


class SampleBank:
    """The notes kept, bounded by ``max_seconds`` of audio (see the module doc). Thread-safe:
    the session thread adds, the sampler's threads read :attr:`notes` (a tuple, replaced
    whole on every change)."""

    def __init__(self, sample_rate: int = 48000, max_seconds: float = 60.0):
        if not (max_seconds > 0 and math.isfinite(max_seconds)):
            raise ConfigError(f"sampler bank size {max_seconds!r}: give a positive number of seconds")
        self.sample_rate = int(sample_rate)
        self.max_seconds = float(max_seconds)
        self.max_bytes = int(self.max_seconds * self.sample_rate * 4)
        self.notes: tuple[SampledNote, ...] = ()
        self.frozen = False
        self.added = 0      # notes taken in since the start
        self.evicted = 0    # notes dropped to stay under the bound
        self._keys = itertools.count()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ changing

    def add(self, audio: np.ndarray, pitch: float, velocity: int = 64, onset: float = 0.0,
            sample_rate: int | None = None) -> SampledNote | None:
        """Keep a note (resampled to the bank's rate); None when frozen."""
        if self.frozen:
            return None
        x = np.asarray(audio, dtype=np.float32)
        rate = int(sample_rate or self.sample_rate)
        if rate != self.sample_rate:
            import soxr

            x = soxr.resample(x, rate, self.sample_rate, quality="HQ").astype(np.float32)
        x = x[: int(MAX_SECONDS * self.sample_rate)]
        x = np.ascontiguousarray(x[: self.max_bytes // 4])
        x.setflags(write=False)
        note = SampledNote(next(self._keys), float(pitch), int(velocity), rms_db(x), float(onset), x,
                           self.sample_rate)
        with self._lock:
            notes = [*self.notes, note]
            total = sum(n.nbytes for n in notes)
            while total > self.max_bytes and len(notes) > 1:
                victim = self._victim(notes[:-1])
                notes.remove(victim)
                total -= victim.nbytes
                self.evicted += 1
            self.notes = tuple(notes)
            self.added += 1
        return note

    @staticmethod
    def _victim(notes: list[SampledNote]) -> SampledNote:
        """The oldest note of the pitch (semitone) the bank holds most of."""
        counts = Counter(round(n.pitch) for n in notes)
        crowded = max(counts.values())
        return next(n for n in notes if counts[round(n.pitch)] == crowded)

    def discard(self, note: SampledNote) -> None:
        with self._lock:
            self.notes = tuple(n for n in self.notes if n is not note)

    def freeze(self, frozen: bool = True) -> None:
        self.frozen = bool(frozen)

    def forget(self) -> None:
        with self._lock:
            self.notes = ()

    # ------------------------------------------------------------------ reading

    @property
    def nbytes(self) -> int:
        return sum(n.nbytes for n in self.notes)

    @property
    def seconds(self) -> float:
        return sum(n.seconds for n in self.notes)

    def __len__(self) -> int:
        return len(self.notes)

    def nearest(self, pitch: float, reach: float = 24.0) -> SampledNote | None:
        """The note nearest ``pitch`` (semitones; ties: the louder, then the newer), or None
        when none is within ``reach`` semitones."""
        best, best_key = None, None
        for n in self.notes:
            d = abs(n.pitch - pitch)
            if d > reach:
                continue
            k = (round(d, 3), -n.rms_db, -n.key)
            if best_key is None or k < best_key:
                best, best_key = n, k
        return best

    # ------------------------------------------------------------------ files

    def save(self, folder: str | Path) -> Path:
        """Write the bank into ``folder`` (``bank.json`` and ``notes/N.wav``); returns it."""
        import soundfile

        folder = Path(folder)
        try:
            (folder / "notes").mkdir(parents=True, exist_ok=True)
            entries = []
            for n in self.notes:
                name = f"notes/{n.key:06d}.wav"
                soundfile.write(folder / name, n.audio, n.sample_rate, subtype="FLOAT")
                entries.append({"file": name, "pitch": round(n.pitch, 4), "velocity": n.velocity,
                                "onset": round(n.onset, 4)})
            meta = {"format": "improv sampler bank", "version": BANK_VERSION, "sample_rate": self.sample_rate,
                    "max_seconds": self.max_seconds, "notes": entries}
            (folder / BANK_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"sampler bank {folder}: cannot write it ({e.strerror}); choose another folder") from None
        return folder


def load_bank(folder: str | Path, sample_rate: int = 48000, max_seconds: float = 60.0) -> SampleBank:
    """The bank saved in ``folder``; an empty bank when the folder is new or empty.

    A folder that holds something else, or a broken bank, raises a one-line
    :class:`ConfigError` naming the problem.
    """
    import soundfile

    folder = Path(folder).expanduser()
    bank = SampleBank(sample_rate, max_seconds)
    meta = check_bank_folder(folder)
    if meta is None:
        return bank
    try:
        for i, entry in enumerate(meta["notes"]):
            path = folder / str(entry["file"])
            data, rate = soundfile.read(path, dtype="float32", always_2d=True)
            pitch = float(entry["pitch"])
            if not (0.0 <= pitch <= 127.0):
                raise ValueError(f"note {i}: pitch {pitch} out of range")
            bank.add(data.mean(axis=1), pitch, int(entry.get("velocity", 64)), float(entry.get("onset", 0.0)), rate)
    except (ValueError, KeyError, TypeError, OSError, RuntimeError, soundfile.LibsndfileError) as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"--sampler-bank {folder}: {BANK_FILE} is not a readable sampler bank ({text}); give "
                          "another folder, or remove it to start a new bank") from None
    return bank


def check_bank_folder(folder: str | Path) -> dict | None:
    """``bank.json`` of the bank in ``folder`` (None: a new or empty folder, a new bank);
    a one-line :class:`ConfigError` when the folder is not a bank."""
    folder = Path(folder).expanduser()
    what = f"--sampler-bank {folder}"
    if not folder.exists():
        return None
    if not folder.is_dir():
        raise ConfigError(f"{what}: is a file, not a folder; give a folder (a new one, or one improv saved a bank in)")
    meta_path = folder / BANK_FILE
    if not meta_path.is_file():
        if any(folder.iterdir()):
            raise ConfigError(f"{what}: not a sampler bank (no {BANK_FILE}); give a folder improv saved a bank in, "
                              "or a new or empty one")
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != "improv sampler bank" \
                or not isinstance(meta.get("notes"), list):
            raise ValueError("it was not written by improv")
    except (ValueError, OSError, UnicodeDecodeError) as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{what}: {BANK_FILE} is not a readable sampler bank ({text}); give another folder, "
                          "or remove it to start a new bank") from None
    return meta


class NoteCatcher:
    """Cuts the player's clean notes out of the input audio into a :class:`SampleBank`.

    ``add_audio(block)`` keeps the last ``keep_seconds`` of input (session thread);
    the catcher itself is an event sink for the session's bus.
    """

    def __init__(self, bank: SampleBank, input_rate: int, keep_seconds: float = 6.0):
        self.bank = bank
        self.input_rate = int(input_rate)
        self._ring = np.zeros(int(keep_seconds * self.input_rate), dtype=np.float32)
        self._end = 0                     # absolute index of the sample after the newest kept
        self._on: NoteOn | None = None
        self._bends: list[float] = []
        self._last: SampledNote | None = None
        self._last_onset: float | None = None
        self.rejected: Counter = Counter()   # why notes were not kept

    def add_audio(self, block) -> None:
        x = block.samples
        n, size = len(x), len(self._ring)
        if n >= size:
            x, start = x[-size:], block.end - size
        else:
            start = block.start
        i = start % size
        k = min(len(x), size - i)
        self._ring[i:i + k] = x[:k]
        self._ring[: len(x) - k] = x[k:]
        self._end = max(self._end, block.start + n)

    def audio(self, start: int, end: int) -> np.ndarray | None:
        """Input samples [start, end) if still kept."""
        size = len(self._ring)
        if start < max(0, self._end - size) or end > self._end or end <= start:
            return None
        idx = np.arange(start, end) % size
        return self._ring[idx]

    def __call__(self, ev: Event) -> None:
        if ev.source != PLAYER:
            return
        if isinstance(ev, NoteOn):
            if ev.retake and self._last is not None and ev.onset == self._last_onset:
                self.bank.discard(self._last)  # its first guess was wrong: this note replaces it
                self._last = None
            self._on, self._bends = ev, []
        elif isinstance(ev, PitchBend):
            if self._on is not None:
                self._bends.append(ev)
        elif isinstance(ev, NoteOff) and self._on is not None and ev.pitch == self._on.pitch:
            on, bends = self._on, self._bends
            self._on, self._bends = None, []
            self._catch(on, ev, bends)

    def _catch(self, on: NoteOn, off: NoteOff, bends: list[PitchBend]) -> None:
        if self.bank.frozen:
            self.rejected["frozen"] += 1
            return
        onset = on.onset if on.onset is not None else on.time
        end = off.end if off.end is not None else off.time
        if end - onset < MIN_SECONDS:
            self.rejected["short"] += 1
            return
        # the bends decided while it sounded (a bend decided after its end is its release)
        bends = [b for b in bends if b.time < end]
        cents = [on.cents, *(b.cents for b in bends)]
        if max(cents) - min(cents) > MAX_BEND_SPREAD:
            self.rejected["bent"] += 1
            return
        x = self.audio(int(round(onset * self.input_rate)), int(round(end * self.input_rate)))
        if x is None:
            self.rejected["gone"] += 1
            return
        a, b = zero_cut(x, int(ZERO_SEARCH * self.input_rate))
        x = x[a:b]
        if rms_db(x) < MIN_RMS_DB:
            self.rejected["quiet"] += 1
            return
        pitch = notes_from_events([on, *bends, off])[0].pitch  # key + the bend held longest, as a synth plays it
        self._last = self.bank.add(x, pitch, on.velocity, onset, self.input_rate)
        self._last_onset = on.onset
