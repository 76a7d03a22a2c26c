"""Live sampling: the band plays the player's own recorded notes.

``--synth sampler`` (every melodic band) or ``--voice mid=sampler`` (one band): the
player's clean notes go into a bounded bank (:mod:`.bank`), and the band's notes are
made from the nearest one, pitch-shifted, looped and faded (:mod:`.voice`), through a
JACK client whose callback only copies (:mod:`.jackout`). Until the bank has a note near
a band note, FluidSynth plays it (General MIDI).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .bank import NoteCatcher, SampleBank, SampledNote, check_bank_folder, load_bank
from .voice import Mixer, Prepared, prepare, shift_pitch

DEFAULT_BANK_SECONDS = 60.0


def open_sampler(bands: Iterable[str], input_rate: int, fallback=None, bank_dir: str | None = None,
                 bank_seconds: float = DEFAULT_BANK_SECONDS, origin: Callable[[], float] = lambda: 0.0,
                 autoconnect: bool = True):
    """The live sampler for ``bands`` (a :class:`~.jackout.SamplerSynth`), its bank loaded
    from ``bank_dir`` when given; FluidSynth ``fallback`` plays what it cannot."""
    from .jackout import SamplerOut, SamplerSynth

    if bank_dir is not None:
        check_bank_folder(bank_dir)
    out = SamplerOut(origin=origin, autoconnect=autoconnect)
    try:
        bank = load_bank(bank_dir, out.sample_rate, bank_seconds) if bank_dir else \
            SampleBank(out.sample_rate, bank_seconds)
    except BaseException:
        out.close()
        raise
    return SamplerSynth(bank, out, fallback, bands, NoteCatcher(bank, input_rate))


__all__ = ["Mixer", "NoteCatcher", "Prepared", "SampleBank", "SampledNote", "check_bank_folder", "load_bank",
           "open_sampler", "prepare", "shift_pitch"]
