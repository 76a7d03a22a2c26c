"""Process-wide settings for real-time work, set once (never inside a step).

* torch: one thread. The band model's and the trackers' per-frame matrices are tiny;
  several threads spin against each other and against listening (10x slower on a
  loaded 2-core machine, ``benchmarks/bench_model.py``).
* the GIL switch interval: 0.5 ms. The default 5 ms would let a busy thread (the model,
  the tracker) hold back a scheduled MIDI message by up to 5 ms.
* :func:`freeze_heap`: what start-up loaded (the model, librosa, numba) is taken out of
  the garbage collector's full scans (``gc.freeze``). One full collection over it held
  the GIL for 188 ms in ``benchmarks/bench_sampler.py``: every thread stopped, a
  sampled note 223 ms late.
* the band's thread and the scheduler's ask for round-robin real-time priority
  (:func:`realtime_thread`), below JACK's own threads: on a loaded machine a thread at normal
  priority waited seconds for a core and the band's plan ran out
  (``benchmarks/bench_jam_soak.py``). Where the user may not (no root, no rtprio limit) they
  stay as they are.

:func:`configure_process` is called by the session once its parts exist (torch is set
only if a part imported it: a session that needs no torch never loads it) and by the
scheduler when it starts; later calls change nothing that was already set.
"""

from __future__ import annotations

import os
import sys

SWITCH_INTERVAL = 0.0005
TORCH_THREADS = 1
REALTIME_PRIORITY = 5   # SCHED_RR, under JACK's default 10 (its process thread goes first)

_done: set[str] = set()


def configure_process(torch_threads: int = TORCH_THREADS, switch_interval: float = SWITCH_INTERVAL) -> None:
    """Set the process-wide settings that are not set yet (see the module doc)."""
    if "switch" not in _done:
        sys.setswitchinterval(min(switch_interval, sys.getswitchinterval()))
        _done.add("switch")
    if "torch" not in _done and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(torch_threads)
        _done.add("torch")


def freeze_heap() -> None:
    """Move every object alive now out of the collector's scans (call once start-up is done;
    again after a late load, such as the sampler's librosa warm-up); :func:`thaw_heap`
    when the real-time work is over."""
    import gc

    gc.freeze()  # no collection first: that would be the very pause this avoids, with the band running


def thaw_heap() -> None:
    """The frozen objects back under the collector (their cycles collectable again, at exit too)."""
    import gc

    gc.unfreeze()


def realtime_thread(priority: int = REALTIME_PRIORITY) -> bool:
    """Round-robin real-time priority for the calling thread (Linux); False where the system
    does not allow it. For threads that mostly sleep and do little when they wake."""
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
    except (AttributeError, OSError):  # not Linux, or not allowed (PermissionError)
        return False
    return True


__all__ = ["configure_process", "freeze_heap", "realtime_thread", "thaw_heap"]
