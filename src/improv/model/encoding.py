"""Frame-per-step encoding of four monophonic voices (the model's event representation).

Time is cut into frames: a sixteenth note (a quarter of a beat) when the music is
metered, 125 ms when it is not. At every frame each voice holds one token:

* ``REST`` - silent,
* ``HOLD`` - the note sounding in the previous frame goes on,
* a pitch - a new note starts at this frame (MIDI 21-108, the piano's range).

A frame is the four tokens in the order of ``VOICES`` = bass, mid, high, lead. The model
reads frames up to *t* and predicts frame *t+1* voice by voice in that order, so the
three bands decide their next frame from everything heard so far (the player's notes
up to *t* included) and the lead comes last: the band never waits for the player.
Monophony holds by construction; a voice's second note in one frame replaces the
first (bass keeps the lowest pitch, the other voices the highest).

Notes are ``(voice, pitch, start, end)`` rows in *units*: beats (quarter notes) when
metered, seconds when not. ``notes_to_frames`` and ``frames_to_notes`` are exact
inverses for notes on the grid; off the grid a note moves by at most half a frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import mido
import numpy as np

VOICES = ("bass", "mid", "high", "lead")
BANDS = ("bass", "mid", "high")
LEAD = VOICES.index("lead")
N_VOICES = len(VOICES)

REST, HOLD = 0, 1
PITCH_LO, PITCH_HI = 21, 108
N_PITCHES = PITCH_HI - PITCH_LO + 1
VOCAB = 2 + N_PITCHES

FRAMES_PER_BEAT = 4
FRAME_SECONDS = 0.125
MAX_BAR_FRAMES = 48  # 12 quarter notes
POS_UNKNOWN = MAX_BAR_FRAMES  # bar position of unmetered frames

# Control conditioning, computed per block of CONTROL_BLOCK frames (4 beats metered, 2 s not).
CONTROL_BLOCK = 16
DENSITY_EDGES = (0, 1, 2, 4, 8)  # onsets per block: 0 | 1 | 2 | 3-4 | 5-8 | 9+
N_DENSITY = len(DENSITY_EDGES) + 1
REGISTER_LO, REGISTER_STEP, N_REGISTER = 24, 6, 12  # mean pitch buckets of 6 semitones
ROLES = ("accompany", "lead", "silent")
N_ROLES = len(ROLES)
UNKNOWN = -1  # a control not given (the model was trained with controls dropped)

# The chord control: 24 triads by root pitch class (class = root + 12 if minor) and "unknown".
N_CHORDS = 24
CHORD_UNKNOWN = N_CHORDS
CHORD_NAMES = tuple(n + q for q in ("", "m") for n in ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"))


def chord_class_of(chord) -> int:
    """The chord control of an ``improv.harmony.Chord`` (its root and triad colour; dim counts as
    minor, sus and aug as major); ``CHORD_UNKNOWN`` for None (no chord)."""
    if chord is None:
        return CHORD_UNKNOWN
    return chord.root % 12 + (12 if chord.minor else 0)


def transpose_chords(classes: np.ndarray, shift: int) -> np.ndarray:
    """Chord classes moved by ``shift`` semitones (unknown stays unknown)."""
    classes = np.asarray(classes)
    moved = (classes % 12 + shift) % 12 + 12 * (classes // 12)
    return np.where(classes == CHORD_UNKNOWN, CHORD_UNKNOWN, moved).astype(classes.dtype)


_TRIADS = np.zeros((N_CHORDS, 12))
for _k in range(N_CHORDS):
    _TRIADS[_k, [_k % 12, (_k % 12 + (3 if _k >= 12 else 4)) % 12, (_k % 12 + 7) % 12]] = 1.0


def triad_spans(notes: np.ndarray, voices: tuple[int, ...], step: float = 1.0, min_share: float = 0.6
                ) -> np.ndarray:
    """Chord spans ``[K, 3]`` (start, end, class) found in ``voices`` of notes ``[N, 4]`` (voice,
    pitch, start, end): in each ``step`` the triad holding most of the sounding time (its
    root in the bass breaking ties), kept where its tones fill ``min_share`` of that time;
    equal neighbours merged. For corpora without chord symbols (chorales, Nottingham)."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    notes = notes[np.isin(notes[:, 0], voices) & (notes[:, 3] > notes[:, 2])]
    if not len(notes):
        return np.zeros((0, 3))
    t0 = np.floor(notes[:, 2].min() / step) * step
    n = int(np.ceil((notes[:, 3].max() - t0) / step))
    weight = np.zeros((n, 12))
    low = np.full(n, 999.0)
    low_pc = np.zeros(n, dtype=np.int64)
    for _, p, a, b in notes:
        j0, j1 = int((a - t0) // step), min(n, int(np.ceil((b - t0) / step)))
        for j in range(j0, j1):
            w = min(b, t0 + (j + 1) * step) - max(a, t0 + j * step)
            if w > 0:
                weight[j, int(p) % 12] += w
                if p < low[j]:
                    low[j], low_pc[j] = p, int(p) % 12
    total = weight.sum(1)
    inside = weight @ _TRIADS.T                                     # [n, 24]
    score = inside + 0.1 * total[:, None] * (np.arange(N_CHORDS)[None, :] % 12 == low_pc[:, None])
    best = score.argmax(1)
    ok = (total > 0) & (inside[np.arange(n), best] >= min_share * np.maximum(total, 1e-9))
    cls = np.where(ok, best, CHORD_UNKNOWN)
    out = []
    for j in range(n):
        if out and out[-1][2] == cls[j] and abs(out[-1][1] - (t0 + j * step)) < 1e-9:
            out[-1][1] = t0 + (j + 1) * step
        else:
            out.append([t0 + j * step, t0 + (j + 1) * step, cls[j]])
    return np.array([r for r in out if r[2] != CHORD_UNKNOWN], dtype=np.float64).reshape(-1, 3)


def chords_to_frames(spans: np.ndarray, n_frames: int, unit: float) -> np.ndarray:
    """Chord spans ``[K, 3]`` (start, end, class) in units -> the class at each frame (uint8),
    frames rounded like note starts; frames outside every span are ``CHORD_UNKNOWN``."""
    out = np.full(n_frames, CHORD_UNKNOWN, dtype=np.uint8)
    for s, e, k in np.asarray(spans, dtype=np.float64).reshape(-1, 3):
        a = max(0, int(np.floor(s / unit + 0.5)))
        b = min(n_frames, int(np.floor(e / unit + 0.5)))
        if b > a:
            out[a:b] = int(k)
    return out


def pitch_token(pitch: int) -> int:
    return 2 + int(pitch) - PITCH_LO


def token_pitch(token: int) -> int:
    return int(token) - 2 + PITCH_LO


def fold_pitch(pitch: int) -> int:
    """Octave-fold a MIDI pitch into the model's range."""
    while pitch < PITCH_LO:
        pitch += 12
    while pitch > PITCH_HI:
        pitch -= 12
    return pitch


@dataclass(frozen=True, slots=True)
class Grid:
    """How times map onto frames: beats (metered) or seconds (unmetered)."""

    metered: bool = True
    beats_per_bar: float = 4.0
    bar_phase: float = 0.0  # time of a downbeat, in units (beats)

    @property
    def unit(self) -> float:
        """Frame length in units (beats or seconds)."""
        return 1.0 / FRAMES_PER_BEAT if self.metered else FRAME_SECONDS

    @property
    def bar_frames(self) -> int:
        return int(round(self.beats_per_bar * FRAMES_PER_BEAT))

    def frame(self, time: float) -> int:
        """The frame whose start is nearest to ``time``."""
        return int(np.floor(time / self.unit + 0.5))

    def time(self, frame: int) -> float:
        return frame * self.unit

    def bar_positions(self, start: int, count: int) -> np.ndarray:
        if not self.metered or not 0 < self.bar_frames <= MAX_BAR_FRAMES:
            return np.full(count, POS_UNKNOWN, dtype=np.int64)
        phase = self.frame(self.bar_phase)
        return (np.arange(start, start + count) - phase) % self.bar_frames


def notes_to_frames(notes: np.ndarray, n_frames: int | None = None, unit: float = 0.25) -> np.ndarray:
    """Notes ``[N, 4]`` rows (voice, pitch, start, end) in units -> tokens ``[T, 4]`` (uint8).

    Starts and ends are rounded to the nearest frame; a note lasts at least one frame and
    ends where the next note of its voice starts.
    """
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    starts = np.floor(notes[:, 2] / unit + 0.5).astype(np.int64)
    ends = np.maximum(np.floor(notes[:, 3] / unit + 0.5).astype(np.int64), starts + 1)
    if n_frames is None:
        n_frames = int(ends.max()) if len(notes) else 0
    tokens = np.zeros((n_frames, N_VOICES), dtype=np.uint8)
    for v in range(N_VOICES):
        sel = np.flatnonzero(notes[:, 0] == v)
        if not len(sel):
            continue
        pitch = np.array([fold_pitch(int(p)) for p in notes[sel, 1]], dtype=np.int64)
        # Order by start; within a frame the kept note comes last (bass: lowest, others: highest).
        key_pitch = -pitch if VOICES[v] == "bass" else pitch
        order = np.lexsort((key_pitch, starts[sel]))
        s, e, p = starts[sel][order], ends[sel][order], pitch[order]
        keep = np.ones(len(s), dtype=bool)
        keep[:-1] = s[:-1] != s[1:]
        s, e, p = s[keep], e[keep], p[keep]
        nxt = np.append(s[1:], np.iinfo(np.int64).max)
        e = np.minimum(e, nxt)
        col = tokens[:, v]
        for si, ei, pi in zip(s, e, p):
            if si >= n_frames or si < 0:
                continue
            col[si] = pitch_token(pi)
            col[si + 1:min(ei, n_frames)] = HOLD
    return tokens


def frames_to_notes(tokens: np.ndarray, unit: float = 0.25, offset: int = 0) -> np.ndarray:
    """Tokens ``[T, 4]`` -> notes ``[N, 4]`` (voice, pitch, start, end) in units, by start.

    ``offset`` is the frame index of the first row. A HOLD with no note before it is a rest.
    """
    rows: list[tuple[int, int, int, int]] = []
    tokens = np.asarray(tokens)
    for v in range(tokens.shape[1]):
        start, pitch = -1, 0
        for t, tok in enumerate(tokens[:, v]):
            tok = int(tok)
            if tok == HOLD and start >= 0:
                continue
            if start >= 0:
                rows.append((v, pitch, start, t))
                start = -1
            if tok >= 2:
                start, pitch = t, token_pitch(tok)
        if start >= 0:
            rows.append((v, pitch, start, len(tokens)))
    out = np.array(rows, dtype=np.float64).reshape(-1, 4)
    out[:, 2:] = (out[:, 2:] + offset) * unit
    return out[np.lexsort((out[:, 0], out[:, 2]))] if len(out) else out


def sounding_pitch(tokens: np.ndarray) -> np.ndarray:
    """Per frame and voice, the pitch sounding (onset or held), or -1 when silent."""
    tokens = np.asarray(tokens, dtype=np.int64)
    out = np.full(tokens.shape, -1, dtype=np.int64)
    for v in range(tokens.shape[1]):
        col = tokens[:, v]
        onset = col >= 2
        idx = np.where(onset, np.arange(len(col)), -1)
        last = np.maximum.accumulate(idx) if len(col) else idx
        # A frame sounds if it is an onset, or a HOLD with only HOLDs back to an onset.
        silent = col == REST
        run_break = np.where(silent, np.arange(len(col)), -1)
        last_break = np.maximum.accumulate(run_break) if len(col) else run_break
        sounding = (last >= 0) & (last > last_break)
        out[sounding, v] = col[last[sounding]] - 2 + PITCH_LO
    return out


def density_bucket(onsets: np.ndarray | int) -> np.ndarray:
    return np.searchsorted(np.array(DENSITY_EDGES), np.asarray(onsets), side="left")


def register_bucket(pitch: np.ndarray | float) -> np.ndarray:
    return np.clip((np.asarray(pitch, dtype=np.float64) - REGISTER_LO) // REGISTER_STEP, 0, N_REGISTER - 1
                   ).astype(np.int64)


def block_controls(tokens: np.ndarray, melody_voice: int = LEAD) -> np.ndarray:
    """Controls per frame ``[T, 4 voices, 3]`` (density, register, role) describing what each
    voice plays in the CONTROL_BLOCK-frame block containing the *next* frame.

    Blocks are aligned to frame 0 of ``tokens``. A block where a voice never sounds gives
    role silent and register UNKNOWN; ``melody_voice`` gets role lead, the others accompany.
    """
    tokens = np.asarray(tokens)
    T = len(tokens)
    n_blocks = (T + CONTROL_BLOCK) // CONTROL_BLOCK + 1
    pad = np.zeros((n_blocks * CONTROL_BLOCK, N_VOICES), dtype=np.int64)
    pad[:T] = tokens
    pitch = sounding_pitch(pad)
    onsets = (pad >= 2).reshape(n_blocks, CONTROL_BLOCK, N_VOICES)
    sounding = (pitch >= 0).reshape(n_blocks, CONTROL_BLOCK, N_VOICES)
    pitchb = pitch.reshape(n_blocks, CONTROL_BLOCK, N_VOICES)
    n_on = onsets.sum(1)
    n_snd = sounding.sum(1)
    mean_pitch = np.where(n_snd > 0, np.where(sounding, pitchb, 0).sum(1) / np.maximum(n_snd, 1), 0)
    dens = density_bucket(n_on)
    reg = np.where(n_snd > 0, register_bucket(mean_pitch), UNKNOWN)
    role = np.where(n_snd > 0, 0, 2)
    role[:, melody_voice] = np.where(n_snd[:, melody_voice] > 0, 1, 2)
    ctrl = np.stack([dens, reg, role], axis=-1)  # [blocks, V, 3]
    nxt = np.minimum(np.arange(T) + 1, n_blocks * CONTROL_BLOCK - 1) // CONTROL_BLOCK
    return ctrl[nxt]


# ----------------------------------------------------------------- MIDI files

TRACK_NAMES = {"player": "lead", "lead": "lead", "melody": "lead", "bass": "bass", "mid": "mid", "high": "high"}


def split_polyphony(notes: list[tuple[float, float, int]], voices: tuple[int, ...] = (0, 1, 2)
                    ) -> list[tuple[int, int, float, float]]:
    """Spread polyphonic notes (start, end, pitch) over monophonic voices bass/mid/high.

    Notes starting together (a chord) go lowest -> bass, highest -> high, the middle one
    -> mid; a lone note goes to the voice whose last pitch is nearest. Voices stay
    monophonic later, in ``notes_to_frames``.
    """
    out: list[tuple[int, int, float, float]] = []
    if not notes:
        return out
    notes = sorted(notes)
    last = {voices[0]: 40.0, voices[1]: 55.0, voices[2]: 67.0}
    i = 0
    while i < len(notes):
        j = i
        while j < len(notes) and notes[j][0] - notes[i][0] < 1e-3:
            j += 1
        chord = sorted(notes[i:j], key=lambda n: n[2])
        if len(chord) == 1:
            p = chord[0][2]
            v = min(last, key=lambda k: abs(last[k] - p))
            picks = [(v, chord[0])]
        elif len(chord) == 2:
            picks = [(voices[0], chord[0]), (voices[2], chord[-1])]
        else:
            picks = [(voices[0], chord[0]), (voices[1], chord[len(chord) // 2]), (voices[2], chord[-1])]
        for v, (s, e, p) in picks:
            out.append((v, p, s, e))
            last[v] = p
        i = j
    return out


GM_DRUM_CHANNEL = 9  # MIDI channel 10: General MIDI's drums, never a pitched voice


@dataclass
class MidiPiece:
    """Notes of a MIDI file mapped onto the four voices, in beats and seconds.

    ``velocities`` runs beside ``notes_beats``. Notes on channel 10 (General MIDI drums) are
    no voice's: they are kept apart in ``drums`` (pitch, start, end, velocity; beats).
    """

    notes_beats: np.ndarray   # [N, 4] (voice, pitch, start, end) in quarter notes
    seconds_per_beat: float   # the file's first tempo
    beats_per_bar: float
    tempo_changes: bool
    velocities: np.ndarray | None = None  # [N] beside notes_beats
    drums: np.ndarray | None = None       # [M, 4] (pitch, start, end, velocity) in quarter notes

    def notes(self, metered: bool) -> np.ndarray:
        if metered:
            return self.notes_beats.copy()
        out = self.notes_beats.copy()
        out[:, 2:] *= self.seconds_per_beat
        return out


def read_midi(path) -> MidiPiece:
    """A MIDI file's notes on the four voices (``path``: a file name or a binary file object).

    Tracks named player/lead/melody, bass, mid, high (as ``improv`` writes them) keep
    their voice. Otherwise the first track with notes is the lead (its top line) and
    the notes of all other tracks are split over bass/mid/high; a file with a single
    polyphonic track gives its top line to the lead and the rest to the bands. Notes on
    channel 10 go to ``drums``, never to a voice. Raises ``mido``/``OSError`` errors for
    unreadable files (the CLI turns them into ConfigError).
    """
    mid = mido.MidiFile(str(path)) if isinstance(path, str) or hasattr(path, "__fspath__") \
        else mido.MidiFile(file=path)
    tpb = mid.ticks_per_beat
    tempo, beats_per_bar, tempo_changes = None, 4.0, False
    tracks: list[tuple[str, list[tuple[float, float, int, int]]]] = []
    drums: list[tuple[int, float, float, int]] = []
    for track in mid.tracks:
        tick, name = 0, ""
        open_: dict[tuple[int, int], tuple[float, int]] = {}
        notes: list[tuple[float, float, int, int]] = []

        def close(key, end):
            start, vel = open_.pop(key)
            if key[0] == GM_DRUM_CHANNEL:
                drums.append((key[1], start, end, vel))
            else:
                notes.append((start, end, key[1], vel))

        for msg in track:
            tick += msg.time
            if msg.type == "track_name":
                name = msg.name.strip().lower()
            elif msg.type == "set_tempo":
                if tempo is None:
                    tempo = msg.tempo
                elif msg.tempo != tempo:
                    tempo_changes = True
            elif msg.type == "time_signature" and tick == 0:
                beats_per_bar = msg.numerator * 4.0 / msg.denominator
            elif msg.type == "note_on" and msg.velocity > 0:
                key = (msg.channel, msg.note)
                if key in open_:
                    close(key, tick / tpb)
                open_[key] = (tick / tpb, msg.velocity)
            elif msg.type in ("note_off", "note_on"):
                key = (msg.channel, msg.note)
                if key in open_:
                    close(key, tick / tpb)
        for key in list(open_):
            close(key, tick / tpb)
        if notes:
            tracks.append((name, notes))
    seconds_per_beat = (tempo or 500_000) / 1e6
    rows: list[tuple[int, int, float, float, int]] = []
    named = [t for t in tracks if t[0] in TRACK_NAMES]
    if named and len(named) == len(tracks):
        for name, notes in tracks:
            v = VOICES.index(TRACK_NAMES[name])
            rows.extend((v, p, s, e, vel) for s, e, p, vel in notes)
    elif tracks:
        lead_notes = tracks[0][1]
        rest = [n for _, notes in tracks[1:] for n in notes]
        if len(tracks) == 1:
            lead_notes, rest = _top_line(lead_notes)
        rows.extend((LEAD, p, s, e, vel) for s, e, p, vel in lead_notes)
        vel_of = {(s, p): vel for s, e, p, vel in rest}
        rows.extend((v, p, s, e, vel_of[(s, p)]) for v, p, s, e in split_polyphony([n[:3] for n in rest]))
    arr = np.array(rows, dtype=np.float64).reshape(-1, 5)
    drum_arr = np.array(sorted(drums, key=lambda d: (d[1], d[0])), dtype=np.float64).reshape(-1, 4)
    return MidiPiece(arr[:, :4].copy(), seconds_per_beat, beats_per_bar, tempo_changes,
                     velocities=arr[:, 4].astype(np.int64), drums=drum_arr)


def _top_line(notes):
    """The highest note of each onset group, and the others."""
    groups: dict[float, list] = {}
    for n in notes:
        groups.setdefault(round(n[0], 3), []).append(n)
    top, rest = [], []
    for _, g in sorted(groups.items()):
        g.sort(key=lambda n: n[2])
        top.append(g[-1])
        rest.extend(g[:-1])
    return top, rest


def write_midi(path, notes: np.ndarray, metered: bool, seconds_per_beat: float = 0.5,
               beats_per_bar: float = 4.0, velocity: int | np.ndarray = 80, drums: np.ndarray | None = None) -> None:
    """Write notes ``[N, 4]`` (voice, pitch, start, end; beats or seconds) as a type-1 file,
    one named track per voice (player, bass, mid, high) on improv's channels. ``path``: a
    file name or a binary file object; ``velocity``: one for all or one per note; ``drums``
    (pitch, start, end, velocity rows, same units) go on a "drums" track on channel 10."""
    from ..output import CHANNELS

    tpb = 480
    mid = mido.MidiFile(type=1, ticks_per_beat=tpb)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=int(round(seconds_per_beat * 1e6)), time=0)])
    num = int(round(beats_per_bar)) if metered else 4
    meta.append(mido.MetaMessage("time_signature", numerator=max(1, num), denominator=4, time=0))
    mid.tracks.append(meta)
    scale = tpb if metered else tpb / seconds_per_beat
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    vel = np.broadcast_to(np.asarray(velocity, dtype=np.int64), (len(notes),))
    parts = [(name, CHANNELS[name], notes[notes[:, 0] == v][:, 1:], vel[notes[:, 0] == v])
             for v, name in ((LEAD, "player"), (0, "bass"), (1, "mid"), (2, "high"))]
    if drums is not None and len(drums):
        d = np.asarray(drums, dtype=np.float64).reshape(-1, 4)
        parts.append(("drums", GM_DRUM_CHANNEL, d[:, :3], d[:, 3].astype(np.int64)))
    for name, ch, sel, vels in parts:
        if not len(sel):
            continue
        evs = []
        for (p, s, e), v in zip(sel, vels):
            evs.append((int(round(s * scale)), 1, int(p), int(np.clip(v, 1, 127))))
            evs.append((int(round(e * scale)), 0, int(p), 0))
        evs.sort()
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
        last = 0
        for tick, on, p, v in evs:
            kind = "note_on" if on else "note_off"
            track.append(mido.Message(kind, channel=ch, note=p, velocity=v, time=tick - last))
            last = tick
        mid.tracks.append(track)
    if isinstance(path, str) or hasattr(path, "__fspath__"):
        mid.save(str(path))
    else:
        mid.save(file=path)
