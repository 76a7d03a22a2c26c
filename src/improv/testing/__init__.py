"""Support for the tests and the benchmarks: synthetic signals, a real JACK server and
its clients, instrument renderings with exact truth, the peer transcribers, tempo data.

Tests and benchmarks import these from here (nothing imports the tests or a benchmark
by path); the shared recordings and corpora are found through :data:`SHARED_DATA`.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SHARED_DATA = Path(os.environ.get("IMPROV_SHARED_DATA", REPO.parent / "shared" / "data"))


def load_benchmark(name: str):
    """A module of ``benchmarks/`` by name (the tests that check a benchmark's analysis)."""
    path = REPO / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


__all__ = ["REPO", "SHARED_DATA", "load_benchmark"]
