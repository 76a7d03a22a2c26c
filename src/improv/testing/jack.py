"""A real JACK server for the tests, and JACK clients that play audio and capture MIDI.

The server runs the dummy driver (no sound card needed) under a name of its own, so
it never meets a server a developer already runs. ``sounddevice`` (PortAudio) is
re-initialised once the server is up, since PortAudio only sees JACK if it was there
when PortAudio started, and terminated again before the server stops.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

import numpy as np

RATE = 48000
PERIOD = 256


@dataclass
class JackServer:
    name: str
    rate: int
    period: int
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_until(predicate, timeout: float = 5.0, what: str = "the condition") -> None:
    """Poll ``predicate()`` until true; AssertionError naming ``what`` after ``timeout`` s."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.005)


def wait_cycles(client, seconds: float, timeout: float = 10.0) -> None:
    """Wait until the JACK server's clock has moved ``seconds`` on (whole process cycles,
    however slowly the machine runs them): what a test waits for when it lets JACK pass
    on what is in flight, instead of a wall-clock sleep."""
    start = client.frame_time
    frames = int(round(seconds * client.samplerate))
    wait_until(lambda: (client.frame_time - start) % (1 << 32) >= frames, timeout,
               f"{seconds:g} s of JACK cycles")


def start_jack(name: str, rate: int = RATE, period: int = PERIOD) -> JackServer:
    """Start ``jackd -S -d dummy`` and wait until it answers; raise RuntimeError if not."""
    if shutil.which("jackd") is None:
        raise FileNotFoundError("jackd is not installed (apt install jackd2)")
    os.environ["JACK_NO_START_SERVER"] = "1"
    os.environ["JACK_DEFAULT_SERVER"] = name
    proc = subprocess.Popen(
        ["jackd", "-n", name, "-S", "-d", "dummy", "-r", str(rate), "-p", str(period)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    ok = subprocess.run(["jack_wait", "-s", name, "-w", "-t", "10"], capture_output=True, text=True)
    if ok.returncode != 0 or proc.poll() is not None:
        proc.kill()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise RuntimeError(f"jackd did not start: {err.strip()[-500:]}")
    return JackServer(name, rate, period, proc)


class JackPlayer:
    """An in-process JACK client that plays a mono float array into ``destination``.

    Playback starts at the first process cycle after ``start()``; ``start_frame`` is the
    JACK frame time of the first sample and ``frame_of(seconds)`` that of any sample, so
    tests can align what they sent with what came back.
    """

    def __init__(self, samples: np.ndarray, destination: str, name: str = "player"):
        import jack

        self.client = jack.Client(name, no_start_server=True)
        self.port = self.client.outports.register("out")
        self.samples = np.asarray(samples, dtype=np.float32)
        self.pos = 0
        self.playing = False
        self.start_frame: int | None = None
        self.cycles: list[tuple[int, int]] = []  # (first sample, JACK frame) of every cycle played
        self.done = threading.Event()
        self.client.set_process_callback(self._process)
        self.destination = destination

    def frame_of(self, seconds: float) -> float:
        """The JACK frame at which the sample at ``seconds`` into the signal was played
        (cycles the server skipped under load, xruns, shift what follows)."""
        pos = seconds * self.client.samplerate
        i = max(0, next((k for k, (p, _) in enumerate(self.cycles) if p > pos), len(self.cycles)) - 1)
        p, f = self.cycles[i]
        return f + (pos - p)

    def _process(self, frames: int) -> None:
        buf = self.port.get_array()
        if not self.playing:
            buf[:] = 0.0
            return
        if self.start_frame is None:
            self.start_frame = self.client.last_frame_time
        self.cycles.append((self.pos, self.client.last_frame_time))
        chunk = self.samples[self.pos:self.pos + frames]
        buf[: len(chunk)] = chunk
        buf[len(chunk):] = 0.0
        self.pos += len(chunk)
        if self.pos >= len(self.samples):
            self.done.set()

    def activate(self) -> None:
        self.client.activate()
        self.client.connect(self.port, self.destination)

    def start(self) -> None:
        self.playing = True

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


class JackMidiCapture:
    """An in-process JACK client that records every MIDI message reaching its input.

    ``events`` holds (jack frame time, bytes) pairs.
    """

    def __init__(self, name: str = "capture"):
        import jack

        self.client = jack.Client(name, no_start_server=True)
        self.port = self.client.midi_inports.register("in")
        self.events: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        base = self.client.last_frame_time
        for offset, data in self.port.incoming_midi_events():
            with self._lock:
                self.events.append((base + offset, bytes(data)))

    def connect_from(self, source: str) -> None:
        self.client.connect(source, self.port)

    def snapshot(self) -> list[tuple[int, bytes]]:
        with self._lock:
            return list(self.events)

    def wait_for(self, predicate, timeout: float = 5.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate(self.snapshot()):
                return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


class JackAudioCapture:
    """An in-process JACK client that records what reaches its audio input.

    The samples go into a buffer allocated up front (``seconds`` long); ``cycles`` holds
    (first sample index, JACK frame time, ``time.perf_counter()`` at wake-up) of every
    cycle, so a test can find the JACK frame of any captured sample and map session time
    (``perf_counter`` based) to frames: :meth:`frame_of_time`.
    """

    def __init__(self, name: str = "audiocapture", seconds: float = 30.0):
        import jack

        self.client = jack.Client(name, no_start_server=True)
        self.port = self.client.inports.register("in")
        self.audio = np.zeros(int(seconds * self.client.samplerate), dtype=np.float32)
        self.pos = 0
        self.cycles: list[tuple[int, int, float]] = []
        self.recording = False
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        if not self.recording or self.pos + frames > len(self.audio):
            return
        self.cycles.append((self.pos, self.client.last_frame_time, time.perf_counter()))
        self.audio[self.pos:self.pos + frames] = self.port.get_array()
        self.pos += frames

    def connect_from(self, source: str) -> None:
        self.client.connect(source, self.port)

    def frame_of_sample(self, i: int) -> int:
        k = max(0, next((n for n, (p, _, _) in enumerate(self.cycles) if p > i), len(self.cycles)) - 1)
        p, f, _ = self.cycles[k]
        return f + (i - p)

    def frame_of_time(self, t: float, origin: float = 0.0) -> float:
        """The JACK frame of session time ``t`` (``perf_counter() - origin``): the frame count
        against the lower envelope of the wake-ups of the cycles just after ``t`` (a cycle
        never wakes before it starts; a stall of the dummy server moves its frame count
        against the wall clock for good, so only the cycles of that moment count)."""
        rate = self.client.samplerate
        near = [woke - origin - f / rate for _, f, woke in self.cycles if -0.02 < woke - origin - t < 0.25]
        offset = min(near or [woke - origin - f / rate for _, f, woke in self.cycles])
        return (t - offset) * rate

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


class JackMidiSource:
    """An in-process JACK client that sends scripted MIDI at exact frames (a clock, a foot switch).

    ``events`` are (frame offset from the start, bytes) in order. ``start()`` begins at
    the next cycle; ``start_frame`` is then the JACK frame time of offset 0,
    ``sent`` holds (frame, bytes) of what went out and ``sent_at`` the
    ``time.monotonic()`` of the cycle each went out in. ``stop()`` sends nothing more.
    """

    def __init__(self, events: list[tuple[int, bytes]], name: str = "midisource"):
        import jack

        self.client = jack.Client(name, no_start_server=True)
        self.port = self.client.midi_outports.register("out")
        self.events = sorted(events, key=lambda e: e[0])
        self.index = 0
        self.playing = False
        self.start_frame: int | None = None
        self.sent: list[tuple[int, bytes]] = []
        self.sent_at: list[float] = []  # time.monotonic() of the cycle each message went out in
        self.done = threading.Event()
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        self.port.clear_buffer()
        if not self.playing:
            return
        base = self.client.last_frame_time
        if self.start_frame is None:
            self.start_frame = base
        end = base + frames
        now = time.monotonic()
        while self.index < len(self.events) and self.start_frame + self.events[self.index][0] < end:
            offset, data = self.events[self.index]
            frame = self.start_frame + offset
            self.port.write_midi_event(max(0, frame - base), data)
            self.sent.append((frame, data))
            self.sent_at.append(now)
            self.index += 1
        if self.index >= len(self.events):
            self.done.set()

    def connect_to(self, destination: str) -> None:
        self.client.connect(self.port, destination)

    def start(self) -> None:
        self.playing = True

    def stop(self) -> None:
        self.playing = False

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def wire_improv(capture: JackMidiCapture, audio: np.ndarray, name: str, ready=lambda: True,
                timeout: float = 20.0) -> JackPlayer:
    """Once improv's MIDI port and PortAudio's input exist (and ``ready()``): capture
    improv's MIDI, and return an activated player wired to PortAudio's input in place of
    whatever fed it (call ``start()`` on it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = [p.name for p in capture.client.get_ports()]
        if ready() and "improv:improv" in names and any(n.startswith("PortAudio") for n in names):
            break
        time.sleep(0.05)
    pa_in = next(p.name for p in capture.client.get_ports(is_input=True, is_audio=True)
                 if p.name.startswith("PortAudio"))
    for src in capture.client.get_all_connections(pa_in):
        capture.client.disconnect(src, pa_in)
    capture.connect_from("improv:improv")
    player = JackPlayer(audio, pa_in, name)
    player.activate()
    wait_until(lambda: capture.client.get_all_connections(pa_in), what=f"{name} connected to {pa_in}")
    wait_cycles(player.client, 0.05)
    return player


def registered_servers() -> list[str]:
    """Names in JACK's server registry (/dev/shm/jack-shm-registry): at most 8 servers."""
    try:
        data = open("/dev/shm/jack-shm-registry", "rb").read()
    except OSError:
        return []
    import re

    return sorted({m.decode() for m in re.findall(rb"jack-\d+:([\w.\-]+):", data)})


def release_slot(name: str) -> None:
    """After a server was killed with SIGKILL: free its entry in JACK's server registry.

    jackd reclaims a dead server's entry only when a server of the same name starts, and
    the registry holds 8: each SIGKILLed server with a name of its own would otherwise
    keep a slot until no JACK server can start on the machine ("Too many servers
    already active"). Starting one under the dead server's name and stopping it
    cleanly frees the slot.
    """
    before = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    try:
        start_jack(name).stop()
    except RuntimeError:
        pass
    finally:  # start_jack made the released server this process's default: the one before stays so
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
