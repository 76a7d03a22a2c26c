"""The band's musical brain: a small symbolic model trained here, shipped in ``models/``.

Representation (``encoding``): four monophonic voices - bass, mid, high and lead (the
player) - on a grid of frames (a sixteenth of a beat when metered, 125 ms when not).
Per frame each voice holds REST, HOLD or the pitch of a new note. A causal transformer
(``net``) reads the frames up to *t* and predicts frame *t+1* voice by voice: bass, mid,
high, then lead, so the bands decide from everything heard up to "now" and never wait
for the player. Controls (density, register, role per voice) enter every frame.

Live use, the API the band players call::

    from improv.model import load_model, VoiceControl, make_room, fight

    model = load_model()                      # models/band.pt; ModelError if missing/corrupt
    s = model.session(metered=True, beats_per_bar=4, seed=7)   # times in beats
    # (metered=False: times in seconds on a 125 ms grid)

    s.note_on("lead", 62, time=0.02)          # the player's notes as they arrive
    s.note_off("lead", time=0.9)              # ("player" is accepted for "lead")
    p = s.propose(now=1.0, voices=("bass", "mid", "high"),
                  controls={"bass": VoiceControl(density=1, low=28, high=52),
                            "mid": VoiceControl(role="silent"),
                            "high": VoiceControl(register=74, density=2)},
                  horizon=1.0,                # one beat (default); one frame = 0.25
                  hooks={"high": make_room(4)})   # or one hook for all voices
    for n in p.notes: ...                     # ProposedNote(voice, pitch, start, end|None)
    p.releases                                # {voice: time its held note stops}
    s.accept(p)                               # as played (or observe() what really was)

* ``propose`` can include "lead" to let the model play the player's part ("take over";
  give it ``VoiceControl(role="lead")``).
* Hooks edit one voice's logits per frame in place: ``hook(ctx: StepContext, logits)``;
  ``bias_pitches``, ``forbid_pitches``, ``make_room``, ``fight``, ``keep_key``, ``harmonize``,
  ``register_limits``, ``chain`` build them. Range, role and monophony masks are applied after hooks.
* Deterministic: the same seed and the same calls give the same notes.
* Sampling: ``temperature`` and ``top_p`` per session, overridable per voice.

Offline: ``improv train``, ``improv eval-model``, ``improv continue IN.mid``,
``improv generate``; whole pieces (continue, generate, embed as a vector, the notes' JSON
form) in ``offline``, which the HTTP API (``improv.serve.http``) serves too. The model card
is models/MODEL_CARD.md.
"""

# Everything here needs torch (or numpy at least): imported on first use, so that importing
# ``improv.model.cli`` to build the command line costs nothing (``improv --help``).
_LAZY = {
    **dict.fromkeys(("BANDS", "FRAME_SECONDS", "FRAMES_PER_BEAT", "ROLES", "VOICES", "Grid", "read_midi",
                     "write_midi"), "encoding"),
    **dict.fromkeys(("StepContext", "bias_pitches", "chain", "fight", "forbid_pitches", "harmonize", "heard_key",
                     "keep_key", "make_room", "pitch_indices", "register_limits"), "sampling"),
    **dict.fromkeys(("DEFAULT_RANGES", "Proposal", "ProposedNote", "Session", "VoiceControl"), "session"),
    **dict.fromkeys(("BandModel", "default_model_path", "load_model", "save_model"), "store"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BANDS", "FRAME_SECONDS", "FRAMES_PER_BEAT", "ROLES", "VOICES", "Grid", "read_midi", "write_midi",
    "StepContext", "bias_pitches", "chain", "fight", "forbid_pitches", "harmonize", "heard_key", "keep_key",
    "make_room",
    "pitch_indices",
    "register_limits", "DEFAULT_RANGES", "Proposal", "ProposedNote", "Session", "VoiceControl",
    "BandModel", "default_model_path", "load_model", "save_model",
]
