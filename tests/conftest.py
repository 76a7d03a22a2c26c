"""Shared fixtures: a real JACK server (dummy driver) and PortAudio attached to it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from improv.testing.jack import JackServer, start_jack  # noqa: E402

from improv.testing import SHARED_DATA  # noqa: E402,F401 - the tests find the shared data here


@pytest.fixture(scope="session")
def jack_server():
    """A JACK server of the test session's own; skipped with a reason if jackd is missing."""
    try:
        server = start_jack(f"improv-test-{os.getpid()}")
    except FileNotFoundError as e:
        pytest.skip(f"no JACK: {e}")
    yield server
    _terminate_portaudio()
    server.stop()


@pytest.fixture(scope="session")
def portaudio(jack_server: JackServer):
    """sounddevice re-initialised so that PortAudio sees the test JACK server."""
    import sounddevice as sd

    sd._terminate()
    sd._initialize()
    yield sd


def _terminate_portaudio() -> None:
    if "sounddevice" in sys.modules:
        sd = sys.modules["sounddevice"]
        try:
            sd._terminate()
        except sd.PortAudioError:
            pass


def shared_path(*parts: str) -> Path:
    """A path into ../shared/data; the test is skipped, saying why, when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not found at {p} (set IMPROV_SHARED_DATA)")
    return p
