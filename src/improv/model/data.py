"""Training corpora mapped onto the four voices, parsed once and cached.

Voice mapping (the reasoning is in models/MODEL_CARD.md):

* Bach chorales (music21): soprano -> lead, alto -> high, tenor -> mid, bass -> bass.
* String quartets (music21: Beethoven, Mozart, Haydn): violin 1 -> lead, violin 2 -> high,
  viola -> mid, cello -> bass (double stops: top note; cello: bottom note).
* Folk and fiddle tunes (music21: Essen, O'Neill's 1850, Ryan's Mammoth): the tune -> lead,
  the bands rest.
* POP909: MELODY -> lead; PIANO split by ``split_polyphony`` (chord bottom -> bass, middle
  -> mid, top -> high, lone notes to the nearest voice); BRIDGE is left out.
* Nottingham: the melody track -> lead; the chord track split like POP909's piano.
* Weimar Jazz Database: the solo -> lead, unmetered (seconds), the bands rest.

Each piece is kept as notes in beats (metered) and in seconds, and rendered to frames
both ways (``encoding``): metered pieces are also played at a tempo drawn from the
piece's name (POP909 at its real timing), so the model learns the unmetered grid too.
Splits are by piece group (a song, a tune, a quartet), from a hash of its name.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import pickle
import zipfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from ..timing.tempomap import tempo_changes
from .encoding import (CHORD_UNKNOWN, CONTROL_BLOCK, FRAME_SECONDS, FRAMES_PER_BEAT, LEAD, POS_UNKNOWN, Grid,
                       chord_class_of, chords_to_frames, notes_to_frames, split_polyphony, triad_spans)

CACHE_VERSION = 2  # 2: POP909 pieces carry their chord annotations
SOURCES = ("chorales", "quartets", "folk", "pop909", "nottingham", "wjd")
MUSIC21_SOURCES = ("chorales", "quartets", "folk")
SHARED_SOURCES = {"pop909": ("symbolic", "pop909"), "nottingham": ("symbolic", "nottingham"),
                  "wjd": ("symbolic", "wjd")}
SPLITS = ("train", "val", "test")
# Corpora without chord symbols whose chords are found in the notes (``encoding.triad_spans``):
# the voices analysed (Nottingham: its chord track, split over the bands; chorales: all four).
ANALYSED_SOURCES = {"nottingham": (0, 1, 2), "chorales": (0, 1, 2, 3)}

Progress = Callable[[str, int, int], None]
log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    if os.environ.get("IMPROV_CACHE"):
        return Path(os.environ["IMPROV_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "improv"


def default_shared_data() -> Path:
    if os.environ.get("IMPROV_SHARED_DATA"):
        return Path(os.environ["IMPROV_SHARED_DATA"])
    return Path(__file__).resolve().parents[4] / "shared" / "data"


@dataclass
class Piece:
    """One piece's notes: rows (voice, pitch, start, end); beats if metered, else seconds."""

    id: str
    source: str
    group: str
    metered: bool
    beats_per_bar: float
    bar_phase: float
    notes: np.ndarray
    seconds_per_beat: float | None = None  # real tempo when known (POP909)
    seconds: np.ndarray | None = None       # real timing in seconds when known
    # Chords annotated in the corpus (POP909): rows (start, end, chord class) in beats and in
    # seconds, class = root + 12 if minor (``encoding.chord_class_of``); None where not known.
    chords: np.ndarray | None = None
    chords_seconds: np.ndarray | None = None

    @property
    def split(self) -> str:
        return split_of(self.group)


def split_of(group: str) -> str:
    h = int(hashlib.md5(group.encode()).hexdigest()[:8], 16) % 100
    return "test" if h < 5 else "val" if h < 10 else "train"


def piece_tempo(piece_id: str) -> float:
    """The seconds per beat a metered piece is played at for its unmetered rendering."""
    h = int(hashlib.md5(("tempo:" + piece_id).encode()).hexdigest()[:8], 16)
    bpm = 70.0 + (h % 1000) / 1000.0 * 80.0
    return 60.0 / bpm


# ------------------------------------------------------------------ music21


def _m21_part_notes(part, voice: int, lowest: bool) -> list[tuple[int, int, float, float]]:
    rows = []
    for n in part.stripTies().flatten().notes:
        if n.duration.quarterLength <= 0:
            continue
        pitches = [p.midi for p in n.pitches]
        if not pitches:
            continue
        p = min(pitches) if lowest else max(pitches)
        s = float(n.offset)
        rows.append((voice, p, s, s + float(n.duration.quarterLength)))
    return rows


def _m21_meter(part) -> tuple[float, float]:
    ts = part.recurse().getElementsByClass("TimeSignature")
    bar = float(ts[0].barDuration.quarterLength) if ts else 4.0
    ms = part.getElementsByClass("Measure")
    phase = float(ms[1].offset) % bar if len(ms) > 1 else 0.0
    return bar, phase


def _m21_file(item: tuple[str, str]) -> list[Piece]:
    source, rel = item
    from music21 import corpus

    try:
        parsed = corpus.parse(rel)
    except Exception as e:  # noqa: BLE001 - music21 raises many kinds; one unreadable file is skipped
        log.warning("music21 could not parse %s (%s: %s); skipped", rel, type(e).__name__, e)
        return []
    scores = list(parsed.scores) if hasattr(parsed, "scores") else [parsed]
    out = []
    for k, score in enumerate(scores):
        parts = list(score.parts)
        if not parts:
            continue
        if source == "folk":
            mapping = [(parts[0], LEAD, False)]
        elif source == "chorales":
            named = {}
            for p in parts:
                name = (p.partName or p.id or "").lower()
                for key in ("soprano", "alto", "tenor", "bass"):
                    if key in name and key not in named:
                        named[key] = p
            if len(named) != 4:
                continue
            mapping = [(named["soprano"], LEAD, False), (named["alto"], 2, False),
                       (named["tenor"], 1, False), (named["bass"], 0, True)]
        else:  # quartets
            if len(parts) != 4:
                continue
            mapping = [(parts[0], LEAD, False), (parts[1], 2, False), (parts[2], 1, False), (parts[3], 0, True)]
        rows = []
        for part, voice, lowest in mapping:
            rows.extend(_m21_part_notes(part, voice, lowest))
        if len(rows) < 8:
            continue
        bar, phase = _m21_meter(mapping[0][0])
        title = getattr(score.metadata, "title", None) if score.metadata else None
        pid = f"{source}/{rel}#{k}"
        group = f"{source}/{rel.split('/')[0]}/{title}" if source == "folk" and title else \
            f"{source}/{rel.rsplit('/', 1)[0]}" if source == "quartets" else pid
        out.append(Piece(id=pid, source=source, group=group, metered=True, beats_per_bar=bar, bar_phase=phase,
                         notes=np.array(rows, dtype=np.float64)))
    return out


def _m21_items(source: str) -> list[tuple[str, str]]:
    import music21

    root = Path(music21.__file__).parent / "corpus"
    if source == "chorales":
        files = sorted((root / "bach").glob("*.mxl")) + sorted((root / "bach").glob("*.xml"))
    elif source == "quartets":
        # Works stored one movement per file; whole-work files take minutes each to parse.
        files = [f for d in ("beethoven", "mozart", "haydn") for f in sorted((root / d).glob("*/movement*.mxl"))
                 if "k545" not in str(f)]
    else:
        files = [f for d in ("essenFolksong", "oneills1850", "ryansMammoth") for f in sorted((root / d).glob("*.abc"))
                 if not f.name.startswith("test")]
    return [(source, str(f.relative_to(root))) for f in files]


# ------------------------------------------------------------------ MIDI corpora


def _ticks_to_seconds(ticks: np.ndarray, tempo_map, tpb: int) -> np.ndarray:
    starts = np.array([t for t, _ in tempo_map], dtype=np.float64)
    tempos = np.array([tp for _, tp in tempo_map], dtype=np.float64)
    secs_at = np.concatenate([[0.0], np.cumsum(np.diff(starts) * tempos[:-1] / 1e6 / tpb)])
    idx = np.searchsorted(starts, ticks, side="right") - 1
    return secs_at[idx] + (ticks - starts[idx]) * tempos[idx] / 1e6 / tpb


def _midi_tracks(path: Path):
    import mido

    mid = mido.MidiFile(str(path))
    tracks = []
    for track in mid.tracks:
        tick, name, open_, notes = 0, "", {}, []
        for msg in track:
            tick += msg.time
            if msg.type == "track_name":
                name = msg.name
            elif msg.type == "note_on" and msg.velocity > 0:
                if msg.note in open_:
                    notes.append((open_.pop(msg.note), tick, msg.note))
                open_[msg.note] = tick
            elif msg.type in ("note_off", "note_on") and msg.note in open_:
                notes.append((open_.pop(msg.note), tick, msg.note))
        tracks.append((name, notes))
    ts = [m for t in mid.tracks for m in t if m.type == "time_signature"]
    bar = ts[0].numerator * 4.0 / ts[0].denominator if ts else 4.0
    return mid, tracks, bar


def _pop909_song(path: Path) -> list[Piece]:
    mid, tracks, _ = _midi_tracks(path)
    tpb = mid.ticks_per_beat
    tmap = tempo_changes(mid)
    byname = {n.strip().upper(): notes for n, notes in tracks}
    if "MELODY" not in byname or "PIANO" not in byname:
        return []
    beat_file = path.parent / "beat_midi.txt"
    beats = np.loadtxt(beat_file, ndmin=2)
    beat_t = beats[:, 0]
    if len(beat_t) < 8:
        return []
    down = np.flatnonzero(beats[:, 2] > 0.5)
    bar = float(np.median(np.diff(down))) if len(down) > 2 else 4.0
    phase = float(down[0] % bar) if len(down) else 0.0

    def to_sec(notes):
        arr = np.array(notes, dtype=np.float64).reshape(-1, 3)
        return _ticks_to_seconds(arr[:, 0], tmap, tpb), _ticks_to_seconds(arr[:, 1], tmap, tpb), arr[:, 2]

    # Seconds -> beats through the annotated beats, extrapolated linearly at both ends.
    spb = float(np.median(np.diff(beat_t)))

    def to_beats(t):
        inside = np.interp(t, beat_t, np.arange(len(beat_t), dtype=np.float64))
        before = (t - beat_t[0]) / spb
        after = len(beat_t) - 1 + (t - beat_t[-1]) / spb
        return np.where(t < beat_t[0], before, np.where(t > beat_t[-1], after, inside))

    rows_s = []
    ms, me, mp = to_sec(byname["MELODY"])
    rows_s.extend((LEAD, int(p), s, e) for s, e, p in zip(ms, me, mp))
    ps, pe, pp = to_sec(byname["PIANO"])
    rows_s.extend(split_polyphony([(s, e, int(p)) for s, e, p in zip(ps, pe, pp)]))
    sec = np.array(rows_s, dtype=np.float64)
    beats_rows = sec.copy()
    beats_rows[:, 2] = to_beats(sec[:, 2])
    beats_rows[:, 3] = to_beats(sec[:, 3])
    # Start the piece at its first bar line before the first note, in both timings.
    first = np.floor((beats_rows[:, 2].min() - phase) / bar) * bar + phase
    first_s = float(np.interp(first, np.arange(len(beat_t)), beat_t, left=beat_t[0] + first * spb))
    beats_rows[:, 2:] -= first
    sec[:, 2:] -= first_s
    song = path.parent.name
    chords = chords_s = None
    if (path.parent / "chord_midi.txt").exists():
        from ..harmony.chords import parse_chord

        spans = []
        for line in (path.parent / "chord_midi.txt").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3:
                spans.append((float(parts[0]), float(parts[1]), chord_class_of(parse_chord(parts[2]))))
        if spans:
            chords_s = np.array(spans, dtype=np.float64)
            chords = chords_s.copy()
            chords[:, 0] = to_beats(chords_s[:, 0]) - first
            chords[:, 1] = to_beats(chords_s[:, 1]) - first
            chords_s[:, :2] -= first_s
    return [Piece(id=f"pop909/{song}", source="pop909", group=f"pop909/{song}", metered=True, beats_per_bar=bar,
                  bar_phase=0.0, notes=beats_rows, seconds_per_beat=spb, seconds=sec, chords=chords,
                  chords_seconds=chords_s)]


def _nottingham_tune(path: Path) -> list[Piece]:
    mid, tracks, bar = _midi_tracks(path)
    tpb = mid.ticks_per_beat
    with_notes = [n for _, n in tracks if n]
    if len(with_notes) < 2:
        return []
    rows = [(LEAD, p, s / tpb, e / tpb) for s, e, p in with_notes[0]]
    rows.extend(split_polyphony([(s / tpb, e / tpb, p) for s, e, p in with_notes[1]]))
    return [Piece(id=f"nottingham/{path.stem}", source="nottingham", group=f"nottingham/{path.stem}", metered=True,
                  beats_per_bar=bar, bar_phase=0.0, notes=np.array(rows, dtype=np.float64))]


def _wjd_solos(zip_path: Path) -> list[Piece]:
    out = []
    with zipfile.ZipFile(zip_path) as z:
        for name in sorted(z.namelist()):
            if not name.endswith(".csv"):
                continue
            text = z.read(name).decode("utf-8", "replace")
            rows = []
            for r in csv.reader(io.StringIO(text)):
                if len(r) < 3:
                    continue
                try:
                    p, s, d = float(r[0]), float(r[1]), float(r[2])
                except ValueError:
                    continue
                rows.append((LEAD, int(round(p)), s, s + max(d, 0.01)))
            if len(rows) < 8:
                continue
            arr = np.array(rows, dtype=np.float64)
            arr[:, 2:] -= max(0.0, arr[:, 2].min() - 0.5)
            stem = Path(name).stem
            out.append(Piece(id=f"wjd/{stem}", source="wjd", group=f"wjd/{stem}", metered=False, beats_per_bar=4.0,
                             bar_phase=0.0, notes=arr))
    return out


def _midi_items(source: str, shared: Path) -> list[tuple[str, str]]:
    root = shared.joinpath(*SHARED_SOURCES[source])
    if source == "pop909":
        return [(source, str(p)) for p in sorted(root.glob("*/[0-9]*.mid"))]
    if source == "nottingham":
        return [(source, str(p)) for p in sorted((root / "MIDI").glob("*.mid"))]
    return [(source, str(root / "score_csv.zip"))]


def _midi_file(item: tuple[str, str]) -> list[Piece]:
    source, path = item
    if source == "pop909":
        return _pop909_song(Path(path))
    if source == "nottingham":
        return _nottingham_tune(Path(path))
    return _wjd_solos(Path(path))


def _parse_item(item: tuple[str, str]) -> list[Piece]:
    return _m21_file(item) if item[0] in MUSIC21_SOURCES else _midi_file(item)


# ------------------------------------------------------------------ cache


def available_sources(shared: Path | None = None) -> list[str]:
    shared = shared or default_shared_data()
    out = list(MUSIC21_SOURCES)
    for s, parts in SHARED_SOURCES.items():
        if shared.joinpath(*parts).exists():
            out.append(s)
    return out


def load_pieces(sources: list[str], cache_dir: Path | None = None, shared: Path | None = None, jobs: int = 1,
                progress: Progress | None = None, limit: int | None = None) -> list[Piece]:
    """Parsed pieces of ``sources``, from the cache or parsed now and cached (one file per source,
    and one per corpus file as it is parsed, so that an interrupted first parse resumes).

    ``limit`` (for tests) parses only the first items of each source and caches nothing.
    """
    cache_dir = Path(cache_dir or default_cache_dir())
    shared = shared or default_shared_data()
    pieces: list[Piece] = []
    for source in sources:
        path = cache_dir / f"pieces-v{CACHE_VERSION}-{source}.pkl"
        if limit is None and path.exists():
            with open(path, "rb") as f:
                pieces.extend(pickle.load(f))
            continue
        items = _m21_items(source) if source in MUSIC21_SOURCES else _midi_items(source, shared)
        if limit is not None:
            items = items[:limit]
        got: list[Piece] = []
        if jobs > 1 and len(items) > 1:
            parse = _parse_item if limit is not None else partial(parse_item_cached, cache_dir=cache_dir)
            with ProcessPoolExecutor(jobs) as ex:
                for k, res in enumerate(ex.map(parse, items, chunksize=1)):
                    got.extend(res)
                    if progress:
                        progress(f"parsing {source}", k + 1, len(items))
        else:
            for k, item in enumerate(items):
                got.extend(_parse_item(item) if limit is not None else parse_item_cached(item, cache_dir))
                if progress:
                    progress(f"parsing {source}", k + 1, len(items))
        if limit is None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as f:
                pickle.dump(got, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        pieces.extend(got)
    return pieces


def item_group(item: tuple[str, str]) -> str | None:
    """The split group of a corpus item known from its path alone; None where only parsing tells
    (folk tunes are grouped by their title, the Weimar solos come in one zip)."""
    source, where = item
    if source == "chorales":
        return f"chorales/{where}#0"  # one score a file (a file of several is checked once parsed)
    if source == "quartets":
        return f"quartets/{where.rsplit('/', 1)[0]}"
    if source == "pop909":
        return f"pop909/{Path(where).parent.name}"
    if source == "nottingham":
        return f"nottingham/{Path(where).stem}"
    return None


def parse_item_cached(item: tuple[str, str], cache_dir: Path) -> list[Piece]:
    """The pieces of one corpus file, parsed once and kept in ``cache_dir/items-v*/``."""
    source, where = item
    path = cache_dir / f"items-v{CACHE_VERSION}" / source / (hashlib.md5(where.encode()).hexdigest() + ".pkl")
    if path.exists():
        with open(path, "rb") as f:
            return pickle.load(f)
    got = _parse_item(item)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(got, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return got


def load_split_pieces(sources: list[str], split: str, count: int, cache_dir: Path | None = None,
                      shared: Path | None = None, progress: Progress | None = None) -> list[Piece]:
    """The first ``count`` metered pieces of ``split`` in each source, parsing only the files that
    can hold them (a whole source already cached is read from its cache instead).

    ``improv eval-model --skip-nll --pieces 1`` needs a handful of files, not every corpus.
    """
    cache_dir = Path(cache_dir or default_cache_dir())
    shared = shared or default_shared_data()
    out: list[Piece] = []
    for source in sources:
        whole = cache_dir / f"pieces-v{CACHE_VERSION}-{source}.pkl"
        if whole.exists():
            with open(whole, "rb") as f:
                out.extend([p for p in pickle.load(f) if p.split == split and p.metered][:count])
            continue
        items = _m21_items(source) if source in MUSIC21_SOURCES else _midi_items(source, shared)
        got: list[Piece] = []
        for k, item in enumerate(items):
            group = item_group(item)
            if group is not None and split_of(group) != split:
                continue
            got.extend(p for p in parse_item_cached(item, cache_dir) if p.split == split and p.metered)
            if progress:
                progress(f"finding {split} pieces of {source}", min(len(got), count), count)
            if len(got) >= count:
                break
        out.extend(got[:count])
    return out


# ------------------------------------------------------------------ frames


@dataclass
class Rendering:
    """Pieces rendered to frames and concatenated: piece k is rows start[k]:start[k]+length[k]."""

    tokens: np.ndarray      # [N, 4] uint8
    barpos: np.ndarray      # [N] uint8
    start: np.ndarray       # [P] int64
    length: np.ndarray      # [P] int64
    metered: np.ndarray     # [P] bool
    piece: np.ndarray       # [P] index into ``ids``
    ids: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    targets: np.ndarray | None = None  # [P, 4] bool: the voices learnt from (None: all; sessions: the lead
    # and the kept bands, ``improv.model.sessions``)
    chords: np.ndarray | None = None  # [N] uint8: the chord class in force at each frame (CHORD_UNKNOWN: none)

    def select(self, keep: np.ndarray) -> "Rendering":
        keep = np.asarray(keep, dtype=bool)
        return Rendering(self.tokens, self.barpos, self.start[keep], self.length[keep], self.metered[keep],
                         self.piece[keep], self.ids, self.sources, self.splits,
                         targets=None if self.targets is None else self.targets[keep], chords=self.chords)

    def where(self, split: str | None = None, metered: bool | None = None, source: str | None = None
              ) -> "Rendering":
        keep = np.ones(len(self.start), dtype=bool)
        if split is not None:
            keep &= np.array([self.splits[p] == split for p in self.piece], dtype=bool)
        if metered is not None:
            keep &= self.metered == metered
        if source is not None:
            keep &= np.array([self.sources[p] == source for p in self.piece], dtype=bool)
        return self.select(keep)

    def frames(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        s, n = self.start[k], self.length[k]
        return self.tokens[s:s + n], self.barpos[s:s + n]

    def frame_chords(self, k: int) -> np.ndarray:
        """The chord class at each frame of rendering k (CHORD_UNKNOWN everywhere when not known)."""
        s, n = self.start[k], self.length[k]
        if self.chords is None:
            return np.full(n, CHORD_UNKNOWN, dtype=np.uint8)
        return self.chords[s:s + n]

    @property
    def n_frames(self) -> int:
        return int(self.length.sum())


def _layout(piece: Piece, metered: bool) -> tuple[Grid, int]:
    """The grid a piece is rendered on and its lead-in in frames (a bar, or 2 s of silence)."""
    if metered:
        grid = Grid(True, piece.beats_per_bar, piece.bar_phase)
        return grid, grid.bar_frames if 0 < grid.bar_frames <= 48 else 4 * FRAMES_PER_BEAT
    return Grid(False), CONTROL_BLOCK


def render_piece(piece: Piece, metered: bool) -> tuple[np.ndarray, np.ndarray]:
    """Tokens and bar positions of a piece, led by a bar (metered) or 2 s of silence."""
    grid, lead_in = _layout(piece, metered)
    if metered:
        notes = piece.notes
    else:
        if not piece.metered:
            notes = piece.notes
        elif piece.seconds is not None:
            notes = piece.seconds
        else:
            notes = piece.notes.copy()
            notes[:, 2:] *= piece_tempo(piece.id)
    body = notes_to_frames(notes, unit=grid.unit)
    tokens = np.concatenate([np.zeros((lead_in, 4), dtype=np.uint8), body])
    barpos = grid.bar_positions(-lead_in, len(tokens))
    return tokens, barpos.astype(np.uint8)


def render_chords(piece: Piece, metered: bool, n: int) -> np.ndarray:
    """The chord class at each of the ``n`` frames of ``render_piece(piece, metered)``."""
    grid, lead_in = _layout(piece, metered)
    if metered:
        spans = piece.chords
    else:
        spans = piece.chords_seconds if piece.seconds is not None else None
        if spans is None and piece.chords is not None and piece.metered:
            spans = piece.chords.copy()
            spans[:, :2] *= piece_tempo(piece.id)
    if spans is None and piece.source in ANALYSED_SOURCES:
        spans = triad_spans(piece.notes, ANALYSED_SOURCES[piece.source])
        if not metered:
            spans[:, :2] *= piece_tempo(piece.id)
    out = np.full(n, CHORD_UNKNOWN, dtype=np.uint8)
    if spans is not None and n > lead_in:
        out[lead_in:] = chords_to_frames(spans, n - lead_in, grid.unit)
    return out


def render(pieces: list[Piece], progress: Progress | None = None) -> Rendering:
    toks, poss, starts, lengths, metered, which, chords = [], [], [], [], [], [], []
    n = 0
    for k, piece in enumerate(pieces):
        for m in ((True, False) if piece.metered else (False,)):
            t, b = render_piece(piece, m)
            chords.append(render_chords(piece, m, len(t)))
            toks.append(t)
            poss.append(b)
            starts.append(n)
            lengths.append(len(t))
            metered.append(m)
            which.append(k)
            n += len(t)
        if progress and (k % 200 == 0 or k == len(pieces) - 1):
            progress("rendering frames", k + 1, len(pieces))
    return Rendering(
        tokens=np.concatenate(toks) if toks else np.zeros((0, 4), np.uint8),
        barpos=np.concatenate(poss) if poss else np.zeros(0, np.uint8),
        start=np.array(starts, dtype=np.int64), length=np.array(lengths, dtype=np.int64),
        metered=np.array(metered, dtype=bool), piece=np.array(which, dtype=np.int64),
        ids=[p.id for p in pieces], sources=[p.source for p in pieces], splits=[p.split for p in pieces],
        chords=np.concatenate(chords) if chords else np.zeros(0, np.uint8))


def _frames_path(sources: list[str], cache_dir: Path) -> Path:
    key = hashlib.md5(",".join(sorted(sources)).encode()).hexdigest()[:8]
    return cache_dir / f"frames-v{CACHE_VERSION}-{key}.npz"


def load_rendering_cached(sources: list[str], cache_dir: Path | None = None) -> Rendering | None:
    """The frames of ``sources`` if a run before left them in the cache, else None (nothing is parsed)."""
    path = _frames_path(sources, Path(cache_dir or default_cache_dir()))
    if not path.exists():
        return None
    z = np.load(path, allow_pickle=False)
    return Rendering(z["tokens"], z["barpos"], z["start"], z["length"], z["metered"], z["piece"],
                     list(z["ids"]), list(z["sources"]), list(z["splits"]),
                     chords=z["chords"] if "chords" in z.files else None)


def load_rendering(sources: list[str], cache_dir: Path | None = None, shared: Path | None = None, jobs: int = 1,
                   progress: Progress | None = None) -> Rendering:
    """All pieces of ``sources`` as frames; cached beside the parsed pieces."""
    cache_dir = Path(cache_dir or default_cache_dir())
    path = _frames_path(sources, cache_dir)
    cached = load_rendering_cached(sources, cache_dir)
    if cached is not None:
        return cached
    pieces = load_pieces(sources, cache_dir, shared, jobs, progress)
    r = render(pieces, progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, tokens=r.tokens, barpos=r.barpos, start=r.start, length=r.length, metered=r.metered,
             piece=r.piece, ids=np.array(r.ids), sources=np.array(r.sources), splits=np.array(r.splits),
             chords=r.chords)
    os.replace(tmp, path)
    return r


__all__ = ["Piece", "Rendering", "SOURCES", "available_sources", "load_pieces", "load_rendering", "render",
           "load_split_pieces", "parse_item_cached", "item_group",
           "render_piece", "split_of", "default_cache_dir", "default_shared_data", "POS_UNKNOWN", "FRAME_SECONDS"]
