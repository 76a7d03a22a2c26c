"""The band model on whole pieces: continue or generate one, and embed one as a vector.

One implementation for ``improv continue`` / ``improv generate`` and the HTTP service
(``improv.serve.http``): :func:`generate_notes` runs a :class:`~improv.model.session.Session`
a beat at a time, as the live band does. Notes are ``(voice, pitch, start, end)`` rows in
the session's units (beats metered, seconds not); :func:`notes_to_json` and
:func:`notes_from_json` turn them into the public form, one object per note with
``onset``, ``duration`` (seconds), ``pitch``, ``velocity`` and ``voice`` (player, bass,
mid, high; drums for channel 10 notes carried through).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from .encoding import CHORD_UNKNOWN, FRAMES_PER_BEAT, LEAD, MAX_BAR_FRAMES, N_VOICES, UNKNOWN, VOICES, Grid, notes_to_frames
from .net import FrameNet, input_indices
from .session import VoiceControl

# The public names of the voices (the model's "lead" is the player), and "drums" for notes
# on channel 10 that a piece carries through untouched.
PUBLIC_VOICES = ("player", "bass", "mid", "high")
VOICE_OF_NAME = {"player": LEAD, "lead": LEAD, "bass": 0, "mid": 1, "high": 2}
DRUMS = "drums"
DEFAULT_VELOCITY = 80
# Notes per beat (per half second unmetered) the bands are asked for when they accompany a
# piece: the live band's default rungs (improv.band.players DEFAULT_RUNG on DENSITY_LADDER).
BAND_DENSITY = {"bass": 1.0, "mid": 1.0, "high": 0.5}


def public_name(voice: int) -> str:
    return "player" if voice == LEAD else VOICES[voice]


def parse_voices(text: str | Iterable[str]) -> tuple[str, ...]:
    """``all`` or a comma list (or a list) of player, bass, mid, high -> the model's voice names.
    ValueError naming the voices to use."""
    names = [v.strip() for v in (text.split(",") if isinstance(text, str) else text)]
    names = [v for v in names if v]
    if names == ["all"]:
        return VOICES
    bad = [v for v in names if v not in VOICE_OF_NAME]
    if bad or not names:
        what = f"unknown voice {bad[0]!r}" if bad else "no voice given"
        raise ValueError(f"{what}; use all or a comma list of player,bass,mid,high")
    return tuple(dict.fromkeys(VOICES[VOICE_OF_NAME[v]] for v in names))


def generate_notes(model, prompt: np.ndarray, *, metered: bool, beats_per_bar: float, seconds_per_beat: float,
                   seconds: float, voices: tuple[str, ...], seed: int, temperature: float | None = None,
                   top_p: float | None = None, start: float | None = None) -> np.ndarray:
    """Observe the prompt's notes, then let the model play ``voices`` a beat at a time for
    ``seconds`` from ``start`` (units; default: the first beat after the prompt's last note).
    All notes, prompt included, as ``[N, 4]`` rows. Band voices asked for accompany at the
    live band's default density (so they come in over a melody alone); the others rest
    (in the prompt they stay as they were)."""
    sess = model.session(metered=metered, beats_per_bar=beats_per_bar, seed=seed, temperature=temperature,
                         top_p=top_p, lead_guess="hold")
    prompt = np.asarray(prompt, dtype=np.float64).reshape(-1, 4)
    end = float(prompt[:, 3].max()) if len(prompt) else 0.0
    for v, p, s, e in prompt[np.argsort(prompt[:, 2], kind="stable")]:
        sess.observe(VOICES[int(v)], int(p), float(s), float(e))
    unit_per_second = 1 / seconds_per_beat if metered else 1.0
    beat = 1.0 if metered else 0.5
    first = end if start is None else max(0.0, start)
    now = np.ceil(first / beat - 1e-9) * beat
    stop = now + seconds * unit_per_second
    controls = {}
    for v in VOICES:
        if v not in voices:
            controls[v] = VoiceControl(role="silent")
        elif v == "lead":
            controls[v] = VoiceControl(role="lead")
        else:
            controls[v] = VoiceControl(role="accompany", density=BAND_DENSITY[v])
    while now < stop - 1e-9:
        sess.accept(sess.propose(now, voices=voices, controls=controls, horizon=beat))
        now += beat
    rows = []
    for v in VOICES:
        for p, s, e in sess.notes(v):
            rows.append((VOICES.index(v), p, s, min(e if e is not None else stop, stop)))
    out = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return out[np.lexsort((out[:, 0], out[:, 2]))] if len(out) else out


def carry_velocities(notes: np.ndarray, prompt: np.ndarray, velocities: np.ndarray | None,
                     unit: float = 1 / FRAMES_PER_BEAT, default: int = DEFAULT_VELOCITY) -> np.ndarray:
    """Per note of ``notes``, the velocity of the prompt note it came from (same voice, pitch
    and onset frame), else ``default``."""
    out = np.full(len(notes), default, dtype=np.int64)
    if velocities is None or not len(prompt):
        return out
    key = {(int(v), int(p), int(np.floor(s / unit + 0.5))): int(vel)
           for (v, p, s, _), vel in zip(prompt, velocities)}
    for i, (v, p, s, _) in enumerate(notes):
        out[i] = key.get((int(v), int(p), int(np.floor(s / unit + 0.5))), default)
    return out


def clip_prompt(notes: np.ndarray, until: float, velocities: np.ndarray | None = None):
    """The notes that start before ``until`` (units), ended there at the latest; and their
    velocities (None stays None)."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    keep = notes[:, 2] < until - 1e-9
    out = notes[keep].copy()
    out[:, 3] = np.minimum(out[:, 3], until)
    return out, (None if velocities is None else np.asarray(velocities)[keep])


def notes_to_json(notes: np.ndarray, velocities: np.ndarray | int = DEFAULT_VELOCITY, seconds_per_unit: float = 1.0,
                  drums: np.ndarray | None = None) -> list[dict]:
    """Rows (voice, pitch, start, end) -> ``[{onset, duration, pitch, velocity, voice}]``, times in
    seconds (rounded to 0.1 ms), by onset; ``drums`` rows (pitch, start, end, velocity) too."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    vel = np.broadcast_to(np.asarray(velocities, dtype=np.int64), (len(notes),))
    out = [{"onset": round(float(s) * seconds_per_unit, 4), "duration": round(float(e - s) * seconds_per_unit, 4),
            "pitch": int(p), "velocity": int(v), "voice": public_name(int(voice))}
           for (voice, p, s, e), v in zip(notes, vel)]
    if drums is not None:
        out += [{"onset": round(float(s) * seconds_per_unit, 4), "duration": round(float(e - s) * seconds_per_unit, 4),
                 "pitch": int(p), "velocity": int(v), "voice": DRUMS}
                for p, s, e, v in np.asarray(drums, dtype=np.float64).reshape(-1, 4)]
    order = {name: k for k, name in enumerate(("bass", "mid", "high", "player", DRUMS))}
    out.sort(key=lambda n: (n["onset"], order[n["voice"]], n["pitch"]))
    return out


@dataclass(frozen=True)
class JsonPiece:
    """Notes read from the public form: rows in units, their velocities, and drums apart."""

    notes: np.ndarray       # [N, 4] (voice, pitch, start, end)
    velocities: np.ndarray  # [N]
    drums: np.ndarray       # [M, 4] (pitch, start, end, velocity)


def notes_from_json(items: Iterable[Mapping], seconds_per_unit: float = 1.0) -> JsonPiece:
    """``[{onset, duration, pitch, velocity?, voice?}]`` (seconds; voice default player) -> rows in
    units. The fields are expected checked already (the HTTP layer's schema); a voice not known
    raises ValueError."""
    rows, vels, drums = [], [], []
    for n in items:
        voice = n.get("voice", "player") or "player"
        s = float(n["onset"]) / seconds_per_unit
        e = s + float(n["duration"]) / seconds_per_unit
        vel = int(n.get("velocity", DEFAULT_VELOCITY) or DEFAULT_VELOCITY)
        if voice == DRUMS:
            drums.append((int(n["pitch"]), s, e, vel))
        elif voice in VOICE_OF_NAME:
            rows.append((VOICE_OF_NAME[voice], int(n["pitch"]), s, e))
            vels.append(vel)
        else:
            raise ValueError(f"unknown voice {voice!r}; use player, bass, mid, high or drums")
    return JsonPiece(np.array(rows, dtype=np.float64).reshape(-1, 4), np.array(vels, dtype=np.int64),
                     np.array(drums, dtype=np.float64).reshape(-1, 4))


@torch.inference_mode()
def embed_notes(net: FrameNet, notes: np.ndarray, beats_per_bar: float = 4.0, layer: int | None = None) -> np.ndarray:
    """A piece as one vector ``[d_model]``: the model's hidden state after ``layer`` blocks
    (1..n_layers, default the last, with the final norm the heads read), averaged over the
    piece's frames. ``notes`` rows are in beats (metered, on the sixteenth grid). The piece
    is led by a silent bar, as in training, and read in windows of the model's context
    (each frame once); controls are unknown. Deterministic: no sampling."""
    n_layers = len(net.blocks)
    layer = n_layers if layer is None else int(layer)
    if not 1 <= layer <= n_layers:
        raise ValueError(f"layer {layer}: between 1 and {n_layers}")
    grid = Grid(True, beats_per_bar)
    lead_in = grid.bar_frames if 0 < grid.bar_frames <= MAX_BAR_FRAMES else 4 * FRAMES_PER_BEAT
    body = notes_to_frames(notes, unit=grid.unit)
    tokens = np.concatenate([np.zeros((lead_in, N_VOICES), dtype=np.uint8), body]).astype(np.int64)
    barpos = grid.bar_positions(-lead_in, len(tokens))
    T, L = len(tokens), net.cfg.context
    starts = [0] if T <= L else list(range(0, T - L, L)) + [T - L]
    n = min(T, L)
    tok = np.stack([tokens[s:s + n] for s in starts])
    pos = np.stack([barpos[s:s + n] for s in starts])
    ctrl = torch.full((len(starts), n, N_VOICES, 3), UNKNOWN, dtype=torch.long)
    chords = torch.full((len(starts), n), CHORD_UNKNOWN, dtype=torch.long) if net.cfg.chords else None
    idx = input_indices(torch.from_numpy(tok), torch.from_numpy(pos), ctrl, chords)
    states = net.hidden(idx, layer).numpy()  # [windows, n, D]
    total = np.zeros(states.shape[-1], dtype=np.float64)
    done = 0  # frames pooled so far (each frame once, the lead-in left out)
    for w, s in enumerate(starts):
        lo = max(done, lead_in, s)
        if s + n > lo:
            total += states[w, lo - s:].sum(0, dtype=np.float64)
            done = s + n
    frames = max(1, T - lead_in)
    return (total / frames).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (0 when either is all zeros)."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(np.dot(a, b) / (na * nb)) if na > 0 and nb > 0 else 0.0
