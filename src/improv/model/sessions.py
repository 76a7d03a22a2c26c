"""Recorded sessions as training material: ``improv train --sessions DIR`` and ``improv keep``.

A session folder is what ``improv listen --record DIR`` writes; ``session.mid`` holds the
player on its own track (channel 1, what was sent: the band heard it) and each band on
its track (channels 2-4), on the band's bars when it played on a beat. Read back:

* the player's notes (retakes resolved, ``events.notes_from_events``) become the **lead**
  voice; they are always learnt from;
* the band's notes are in the input (the player answered them), and learnt from only in
  takes marked with ``improv keep SESSION`` (all bands, or ``--bands``), which writes
  ``keep.json`` into the folder;
* metered sessions (a ``METERED_TEXT`` marker: the band had a beat) are read in quarter
  notes from the file's ticks (its bars are the band's), and also rendered in seconds like
  the corpora; free sessions in seconds only.

Bad input is said in one line (:class:`ConfigError`): an empty folder, a folder that holds
no session, a session.mid that cannot be read, too little playing to learn from.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import mido
import numpy as np

from ..errors import ConfigError
from ..events import BANDS, PLAYER, notes_from_events
from ..record import JOURNAL_FILE, MIDI_FILE, read_midi_events
from ..timing.tempomap import METERED_TEXT, TempoMap
from .data import Piece, Rendering, render
from .encoding import LEAD, N_VOICES, VOICES

KEEP_FILE = "keep.json"
SOURCE = "session"
MIN_MINUTES = 3.0    # of the player's playing (first to last note of each session, summed)
MIN_NOTES = 150      # and player notes


@dataclass(frozen=True)
class SessionTake:
    """One recorded session read for training."""

    name: str
    folder: Path
    piece: Piece
    kept: tuple[str, ...]     # bands whose notes are learnt from (``improv keep``)
    minutes: float            # the player's playing: first to last note
    player_notes: int
    band_notes: int


def keep(folder: str | Path, bands: tuple[str, ...] = BANDS, undo: bool = False) -> Path:
    """Mark a recorded take as liked: its band parts ``bands`` are learnt from (``keep.json``)."""
    folder = Path(folder)
    if not (folder / MIDI_FILE).is_file():
        hint = f"run `improv recover {folder}` first" if (folder / JOURNAL_FILE).is_file() else \
            "give a folder made by `improv listen --record DIR`"
        raise ConfigError(f"{folder}: no {MIDI_FILE} in it; {hint}")
    path = folder / KEEP_FILE
    if undo:
        path.unlink(missing_ok=True)
        return path
    bad = [b for b in bands if b not in BANDS]
    if bad:
        raise ConfigError(f"--bands: unknown band {bad[0]!r}; use a comma list of {','.join(BANDS)}")
    path.write_text(json.dumps({"bands": list(bands),
                                "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}) + "\n")
    return path


def kept_bands(folder: Path) -> tuple[str, ...]:
    path = folder / KEEP_FILE
    if not path.exists():
        return ()
    try:
        bands = json.loads(path.read_text())["bands"]
        return tuple(b for b in BANDS if b in bands)
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: not a keep file; run `improv keep {folder}` again") from None


def session_folders(root: str | Path) -> list[Path]:
    """The session folders in ``root`` (or ``root`` itself when it is one), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"--sessions {root}: no such folder; give the folder `improv listen --record` wrote into")
    if (root / MIDI_FILE).exists() or (root / JOURNAL_FILE).exists():
        found = [root]
    else:
        found = sorted(p for p in root.iterdir() if p.is_dir() and ((p / MIDI_FILE).exists()
                                                                    or (p / JOURNAL_FILE).exists()))
    if not found:
        raise ConfigError(f"--sessions {root}: no recorded session in it (folders with {MIDI_FILE}, as "
                          f"`improv listen --record {root}` writes them)")
    return found


def _meter(mid: mido.MidiFile) -> tuple[bool, float, float]:
    """(metered?, quarters per bar, quarter of the first downbeat) of a session.mid."""
    metas, last = [], 0
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type in ("time_signature", "marker"):
                metas.append((tick, msg))
        last = max(last, tick)
    metas.sort(key=lambda x: x[0])
    metered = any(m.type == "marker" and m.text == METERED_TEXT for _, m in metas) or \
        (any(m.type == "time_signature" for _, m in metas) and not any(m.type == "marker" for _, m in metas))
    sigs = [(t, m.numerator * 4.0 / m.denominator) for t, m in metas if m.type == "time_signature"]
    if not sigs:
        return metered, 4.0, 0.0
    # the regular bar: the signature in force longest; the first bar line is where it first starts
    held: dict[float, int] = {}
    for (t, q), (t_next, _) in zip(sigs, [*sigs[1:], (max(last, sigs[-1][0]), 0.0)]):
        held[q] = held.get(q, 0) + t_next - t
    bar = max(held, key=held.get)
    first = next(t for t, q in sigs if q == bar) / mid.ticks_per_beat
    return metered, bar, first % bar


def read_take(folder: Path) -> SessionTake:
    """A session folder as a training piece (ConfigError when it cannot be read)."""
    path = folder / MIDI_FILE
    if not path.exists():
        raise ConfigError(f"{folder}: no {MIDI_FILE} (the session did not close); run `improv recover {folder}`")
    try:
        mid = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as e:
        raise ConfigError(f"{path}: not a readable MIDI file ({type(e).__name__}); delete that session or record "
                          f"it again") from None
    events = read_midi_events(mid)
    tmap = TempoMap.from_midi(mid)
    metered, bar, phase = _meter(mid)
    kept = kept_bands(folder)
    rows_s, rows_q = [], []
    counts = {}
    end = events[-1].time if events else 0.0
    for source, voice in ((PLAYER, LEAD), *((b, VOICES.index(b)) for b in BANDS)):
        notes = notes_from_events(events, source, until=end)
        counts[source] = len(notes)
        for n in notes:
            if n.offset <= n.onset:
                continue
            p = int(round(n.pitch))
            rows_s.append((voice, p, n.onset, n.offset))
            rows_q.append((voice, p, tmap.tick(n.onset) / mid.ticks_per_beat,
                           tmap.tick(n.offset) / mid.ticks_per_beat))
    lead = [r for r in rows_s if r[0] == LEAD]
    minutes = (max(r[3] for r in lead) - min(r[2] for r in lead)) / 60.0 if lead else 0.0
    secs = np.array(rows_s, dtype=np.float64).reshape(-1, 4)
    quarters = np.array(rows_q, dtype=np.float64).reshape(-1, 4)
    name = folder.name
    piece = Piece(id=f"{SOURCE}/{name}", source=SOURCE, group=f"{SOURCE}/{name}", metered=metered,
                  beats_per_bar=bar, bar_phase=phase, notes=quarters if metered else secs,
                  seconds=secs if metered else None)
    return SessionTake(name, folder, piece, kept, minutes, counts[PLAYER], sum(counts[b] for b in BANDS))


@dataclass(frozen=True)
class Material:
    """What ``improv train --sessions`` learns from, split by session into train and validation."""

    takes: tuple[SessionTake, ...]
    train: Rendering
    val: Rendering
    val_names: tuple[str, ...]

    @property
    def minutes(self) -> float:
        return sum(t.minutes for t in self.takes)

    @property
    def fingerprint(self) -> str:
        """Changes when the sessions or what is kept change (a checkpoint is for one material)."""
        h = hashlib.md5()
        for t in self.takes:
            h.update(f"{t.name}:{','.join(t.kept)}:{t.player_notes}:{t.band_notes};".encode())
        return h.hexdigest()[:12]

    def summary(self) -> dict:
        return {"sessions": len(self.takes), "minutes": round(self.minutes, 2),
                "player_notes": sum(t.player_notes for t in self.takes),
                "band_notes": sum(t.band_notes for t in self.takes),
                "kept": {t.name: list(t.kept) for t in self.takes if t.kept},
                "validation_sessions": list(self.val_names), "fingerprint": self.fingerprint,
                "names": [t.name for t in self.takes]}


def targets_of(rendering: Rendering, takes: list[SessionTake]) -> np.ndarray:
    """``[P, 4]``: which voices of each rendered piece are learnt from (the lead, and the kept bands)."""
    by_id = {t.piece.id: t for t in takes}
    out = np.zeros((len(rendering.start), N_VOICES), dtype=bool)
    for k, p in enumerate(rendering.piece):
        take = by_id[rendering.ids[p]]
        out[k, LEAD] = True
        for b in take.kept:
            out[k, VOICES.index(b)] = True
    return out


def load_material(root: str | Path, val_share: float = 0.15, min_minutes: float = MIN_MINUTES,
                  min_notes: int = MIN_NOTES) -> Material:
    """Read every session in ``root``; ConfigError with how much is needed when it is too little.

    Validation: every session whose name hashes into the last ``val_share`` (at least one
    when there are three or more, none with ``val_share`` 0); with none, the training sessions
    themselves."""
    takes = [read_take(f) for f in session_folders(root)]
    minutes = sum(t.minutes for t in takes)
    notes = sum(t.player_notes for t in takes)
    if minutes < min_minutes or notes < min_notes:
        raise ConfigError(f"--sessions {root}: {minutes:.1f} minutes and {notes} notes of your playing in "
                          f"{len(takes)} session(s); fine-tuning needs at least {min_minutes:g} minutes and "
                          f"{min_notes} notes (record more with `improv listen --record {root}`)")
    score = {t.name: int(hashlib.md5(t.name.encode()).hexdigest()[:8], 16) % 1000 / 1000 for t in takes}
    val = [t for t in takes if score[t.name] >= 1 - val_share]
    if len(takes) >= 3 and not val and val_share > 0:
        val = [max(takes, key=lambda t: score[t.name])]
    if len(val) == len(takes):
        val = []
    train_takes = [t for t in takes if t not in val]
    train = _render(train_takes)
    valr = _render(val) if val else train
    return Material(tuple(takes), train, valr, tuple(t.name for t in val))


def _render(takes: list[SessionTake]) -> Rendering:
    r = render([t.piece for t in takes])
    r.targets = targets_of(r, takes)
    return r


__all__ = ["KEEP_FILE", "MIN_MINUTES", "MIN_NOTES", "Material", "SessionTake", "keep", "kept_bands",
           "load_material", "read_take", "session_folders", "targets_of"]
