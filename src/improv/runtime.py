"""Process-wide settings for real-time work, set once (never inside a step).

* torch: one thread. The band model's and the trackers' per-frame matrices are tiny;
  several threads spin against each other and against listening (10x slower on a
  loaded 2-core machine, ``benchmarks/bench_model.py``).
* the GIL switch interval: 0.5 ms. The default 5 ms would let a busy thread (the model,
  the tracker) hold back a scheduled MIDI message by up to 5 ms.

:func:`configure_process` is called by the session once its parts exist (torch is set
only if a part imported it: a session that needs no torch never loads it) and by the
scheduler when it starts; later calls change nothing that was already set.
"""

from __future__ import annotations

import sys

SWITCH_INTERVAL = 0.0005
TORCH_THREADS = 1

_done: set[str] = set()


def configure_process(torch_threads: int = TORCH_THREADS, switch_interval: float = SWITCH_INTERVAL) -> None:
    """Set the process-wide settings that are not set yet (see the module doc)."""
    if "switch" not in _done:
        sys.setswitchinterval(min(switch_interval, sys.getswitchinterval()))
        _done.add("switch")
    if "torch" not in _done and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(torch_threads)
        _done.add("torch")


__all__ = ["configure_process"]
