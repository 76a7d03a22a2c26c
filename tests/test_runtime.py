"""Process-wide real-time settings: a thread asking for real-time priority gets it where the
system allows, and says truly whether it did."""

from __future__ import annotations

import threading

from improv.runtime import realtime_thread

SCHED_OTHER, SCHED_RR = 0, 2


def _policy(tid: int) -> int:
    with open(f"/proc/self/task/{tid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[38])  # field 41: the scheduling policy


def test_a_thread_asks_for_realtime_priority_and_says_what_it_got():
    box: dict = {}

    def run() -> None:
        tid = threading.get_native_id()
        box["before"] = _policy(tid)
        box["granted"] = realtime_thread()
        box["after"] = _policy(tid)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert box["before"] == SCHED_OTHER
    assert box["after"] == (SCHED_RR if box["granted"] else SCHED_OTHER)
    assert _policy(threading.get_native_id()) == SCHED_OTHER, "only the calling thread changes"
