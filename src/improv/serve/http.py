"""An HTTP JSON API for the band model: ``GET /health`` and ``POST /predict``.

Tasks, in the style of the Anticipatory Music Transformer's service:

* ``generate``: ``length_seconds`` of music from nothing,
* ``continue``: a piece (``midi``: a base64 standard MIDI file, or ``notes``) continued
  from its first ``prime_seconds`` (default: all of it) for ``length_seconds``,
* ``embed``: the model's hidden state after ``layer`` blocks, averaged over the piece, as
  one vector (for similarity: cosine).

Sampling: ``top_p``, ``temperature`` (default: the model's recommended), ``seed`` (default:
drawn, and said in the response), ``num_variations`` 1-5 (seeds seed, seed+1, ...),
``voices`` (player, bass, mid, high), ``bpm``. Each variation comes back both as a base64
MIDI file and as ``notes``: ``{onset, duration, pitch, velocity, voice}``, seconds. One
implementation with ``improv continue``/``generate``: :mod:`improv.model.offline`.

FastAPI on uvicorn: the request schema is pydantic's, so a bad field is a 422 whose JSON
names it (``{"error": "top_p: ...", "field": "top_p", "errors": [...]}``); FastAPI also
serves the schema at ``/openapi.json`` (``/docs`` shows it, with Swagger UI from its CDN).
Why FastAPI: the schema checks and field-naming errors come from a declared model instead
of hand-written checks, and uvicorn serves it from a thread of its own. The model runs on
one worker thread; at most ``max_queue`` requests wait or run, the next gets 503 with
``Retry-After`` (never a pile-up). The event loop only validates and hands on.

``HttpService(...).start()`` serves from a background thread (``improv serve --http``);
standalone: ``python3 -m improv.serve.http --port 8100``.
"""

import asyncio
import base64
import binascii
import io
import logging
import secrets
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from ..errors import ConfigError, ImprovError

log = logging.getLogger(__name__)

MAX_VARIATIONS = 5
MAX_LENGTH_SECONDS = 120.0   # one variation's new music
MAX_PIECE_SECONDS = 1800.0   # an input piece (continue, embed)
MAX_NOTES = 20_000
MAX_BODY_BYTES = 4 << 20     # a request body (a base64 MIDI file of ~3 MB)
GENERATE_BPM = 100.0         # as `improv generate`
NOTES_BPM = 120.0            # the grid for `notes` given in seconds with no bpm (MIDI's default tempo)


class FieldError(Exception):
    """A request field the schema accepted but the task cannot use (-> 422 naming it)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _schema():
    """The request's pydantic models (built on first use: pydantic is not imported by
    ``improv --help``)."""
    from pydantic import BaseModel, ConfigDict, Field, field_validator

    from ..model.offline import parse_voices

    class Note(BaseModel):
        model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
        onset: float = Field(ge=0, le=MAX_PIECE_SECONDS, description="seconds from the start")
        duration: float = Field(gt=0, le=MAX_PIECE_SECONDS, description="seconds")
        pitch: int = Field(ge=0, le=127)
        velocity: int = Field(80, ge=1, le=127)
        voice: Literal["player", "lead", "bass", "mid", "high", "drums"] = "player"

    class Predict(BaseModel):
        model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
        task: Literal["generate", "continue", "embed"]
        length_seconds: float = Field(20.0, gt=0, le=MAX_LENGTH_SECONDS)
        prime_seconds: float | None = Field(None, gt=0, le=MAX_PIECE_SECONDS)
        top_p: float | None = Field(None, gt=0, le=1)
        temperature: float | None = Field(None, ge=0, le=10)
        num_variations: int = Field(1, ge=1, le=MAX_VARIATIONS)
        seed: int | None = Field(None, ge=0, le=2**31 - 1)
        voices: str | list[str] = Field("all", validate_default=True,
                                        description="all, or player, bass, mid, high (comma list or list)")
        bpm: float | None = Field(None, ge=20, le=400)
        midi: str | None = Field(None, max_length=MAX_BODY_BYTES, description="a standard MIDI file, base64")
        notes: list[Note] | None = Field(None, max_length=MAX_NOTES)
        layer: int | None = Field(None, ge=1, description="embed: the block whose state is read (default the last)")

        @field_validator("voices")
        @classmethod
        def _voices(cls, v):
            return parse_voices(v)

    return Predict


class HttpService:
    """The band model over HTTP on ``host:port`` (port 0: any free one, see ``url``).

    ``model``: a loaded :class:`~improv.model.store.BandModel`, a weights file, or None for
    the default (``models/band.pt``). ``max_queue``: requests running or waiting at once.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8100, *, model=None, max_queue: int = 8):
        if not 0 <= int(port) <= 65535:
            raise ConfigError(f"port {port}: between 0 and 65535 (0: any free port)")
        if int(max_queue) < 1:
            raise ConfigError(f"max_queue {max_queue}: at least 1")
        self.host = host
        self.port = int(port)
        self.max_queue = int(max_queue)
        self._model_arg = model
        self.model = None
        self._pending = 0  # requests admitted and not answered; touched on the event loop only
        self.served = 0
        self.refused = 0
        self._server = None
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._sock: socket.socket | None = None

    # ------------------------------------------------------------------ life

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Load the model, bind, and serve from a background thread; returns once listening.
        ConfigError when the address cannot be bound, ModelError when the model is unusable."""
        import uvicorn

        from .. import runtime
        from ..model.store import BandModel, load_model

        if self._thread is not None:
            return
        m = self._model_arg
        self.model = m if isinstance(m, BandModel) else load_model(m)
        runtime.configure_process()  # torch on one thread (the model's frames are tiny)
        self._sock = _bind(self.host, self.port)
        self.port = self._sock.getsockname()[1]
        if not _is_loopback(self.host):
            log.warning("HTTP API open to the network on %s: it has no authentication, anyone who can reach "
                        "the port can use it; do it only on a network you trust", self.url)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="improv-http-model")
        config = uvicorn.Config(self._app(), log_config=None, access_log=False, log_level="warning",
                                limit_concurrency=max(64, 4 * self.max_queue), timeout_keep_alive=30)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="improv-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"the HTTP API did not start on {self.url}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop serving (requests in progress are answered first), free the port."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._executor = self._sock = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ the app

    def _app(self):
        from fastapi import FastAPI, Request
        from fastapi.encoders import jsonable_encoder
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import JSONResponse
        from starlette.exceptions import HTTPException as StarletteHTTPException

        Predict = _schema()
        app = FastAPI(title="improv band model", version="1",
                      description="generate, continue and embed music with improv's band model")

        @app.middleware("http")
        async def body_limit(request: Request, call_next):
            if request.method in ("POST", "PUT", "PATCH"):
                length = request.headers.get("content-length")
                if length is None:
                    return _error(411, "body", "send a Content-Length header")
                if not length.isdigit():
                    return _error(400, "body", "Content-Length is not a number")
                if int(length) > MAX_BODY_BYTES:
                    return _error(413, "body", f"{int(length):,} bytes; at most {MAX_BODY_BYTES:,}")
            return await call_next(request)

        @app.exception_handler(RequestValidationError)
        async def invalid(request: Request, exc: RequestValidationError):
            errors = [{"field": "body", "message": f"not valid JSON ({e.get('ctx', {}).get('error', 'unreadable')}, "
                                                  f"at character {e['loc'][-1]})"}
                      if e.get("type") == "json_invalid" else
                      {"field": _field(e.get("loc", ())), "message": str(e.get("msg", "invalid")).removeprefix("Value error, ")}
                      for e in exc.errors()]
            first = errors[0] if errors else {"field": "body", "message": "invalid"}
            return JSONResponse(status_code=422, content=jsonable_encoder({
                "error": f"{first['field']}: {first['message']}", "field": first["field"], "errors": errors}))

        @app.exception_handler(FieldError)
        async def bad_field(request: Request, exc: FieldError):
            return _error(422, exc.field, exc.message)

        @app.exception_handler(StarletteHTTPException)
        async def http_error(request: Request, exc: StarletteHTTPException):  # 404, 405: where to go instead
            return _error(exc.status_code, None, f"{request.method} {request.url.path}: {exc.detail}; "
                                                 "use GET /health or POST /predict (schema: /openapi.json)")

        @app.exception_handler(ImprovError)
        async def refused(request: Request, exc: ImprovError):  # a value the model's own checks refused
            return _error(422, None, str(exc))

        @app.exception_handler(Exception)
        async def failed(request: Request, exc: Exception):
            log.error("HTTP API: %s failed", request.url.path, exc_info=exc)
            return _error(500, None, f"internal error ({type(exc).__name__}); the server's log has the details")

        @app.get("/health")
        async def health():
            m = self.model
            return {"status": "ok", "model": m.path.name if m.path else None,
                    "parameters": sum(p.numel() for p in m.net.parameters()), "layers": m.config.n_layers,
                    "dim": m.config.d_model, "queue": self._pending, "max_queue": self.max_queue,
                    "served": self.served, "refused": self.refused, "tasks": ["generate", "continue", "embed"]}

        @app.post("/predict")
        async def predict(req: Predict):  # type: ignore[valid-type]
            if self._pending >= self.max_queue:
                self.refused += 1
                return _error(503, None, f"busy: {self._pending} requests queued, the most is {self.max_queue}; "
                                         "retry in a moment", headers={"Retry-After": "1"})
            self._pending += 1
            t0 = time.perf_counter()
            try:
                out = await asyncio.get_running_loop().run_in_executor(self._executor, self._predict, req, t0)
            finally:
                self._pending -= 1
            self.served += 1
            return out

        return app

    # ------------------------------------------------------------------ the model's side

    def _predict(self, req, t0: float) -> dict:
        """Runs on the model's thread."""
        started = time.perf_counter()
        seed = req.seed if req.seed is not None else secrets.randbelow(2**31)
        if req.task == "generate":
            if req.midi is not None or req.notes is not None:
                raise FieldError("midi" if req.midi is not None else "notes",
                                 "generate starts from nothing; use task continue to continue a piece")
            out = self._generate(req, seed)
        elif req.task == "continue":
            out = self._continue(req, seed)
        else:
            out = self._embed(req)
        done = time.perf_counter()
        return {"task": req.task, "seed": seed, **out, "queued_ms": round(1000 * (started - t0), 1),
                "elapsed_ms": round(1000 * (done - started), 1)}

    def _variations(self, req, seed: int, prompt, velocities, drums, spb: float, beats_per_bar: float,
                    start: float | None) -> list[dict]:
        import numpy as np

        from ..model.encoding import write_midi
        from ..model.offline import carry_velocities, generate_notes, notes_to_json

        out = []
        for k in range(req.num_variations):
            notes = generate_notes(self.model, prompt, metered=True, beats_per_bar=beats_per_bar,
                                   seconds_per_beat=spb, seconds=req.length_seconds, voices=req.voices,
                                   seed=seed + k, temperature=req.temperature, top_p=req.top_p, start=start)
            vel = carry_velocities(notes, prompt, velocities)
            buf = io.BytesIO()
            write_midi(buf, notes, True, spb, beats_per_bar, velocity=vel, drums=drums)
            new = int(np.sum(notes[:, 2] >= (start if start is not None else _end(prompt)) - 1e-9)) if len(notes) else 0
            out.append({"seed": seed + k, "new_notes": new, "midi": base64.b64encode(buf.getvalue()).decode("ascii"),
                        "notes": notes_to_json(notes, vel, spb, drums)})
        return out

    def _generate(self, req, seed: int) -> dict:
        import numpy as np

        bpm = req.bpm or GENERATE_BPM
        spb = 60.0 / bpm
        return {"bpm": bpm, "variations": self._variations(req, seed, np.zeros((0, 4)), None, None, spb, 4.0, None)}

    def _continue(self, req, seed: int) -> dict:
        from ..model.offline import clip_prompt

        piece = self._piece(req)
        spb = piece["spb"]
        notes, vel, drums = piece["notes"], piece["velocities"], piece["drums"]
        start = None
        if req.prime_seconds is not None:
            start = req.prime_seconds / spb
            notes, vel = clip_prompt(notes, start, vel)
            keep = drums[:, 1] < start - 1e-9
            drums = drums[keep].copy()
            drums[:, 2] = drums[:, 2].clip(max=start)
        return {"bpm": 60.0 / spb, "prime_seconds": req.prime_seconds,
                "variations": self._variations(req, seed, notes, vel, drums, spb, piece["beats_per_bar"], start)}

    def _embed(self, req) -> dict:
        from ..model.offline import embed_notes

        n_layers = self.model.config.n_layers
        if req.layer is not None and req.layer > n_layers:
            raise FieldError("layer", f"{req.layer} is past this model's {n_layers} layers; use 1..{n_layers}")
        piece = self._piece(req)
        if not len(piece["notes"]):
            raise FieldError("midi" if req.midi is not None else "notes", "the piece has no pitched notes to embed")
        vec = embed_notes(self.model.net, piece["notes"], piece["beats_per_bar"], req.layer)
        return {"layer": req.layer or n_layers, "dim": len(vec), "embedding": [float(x) for x in vec]}

    def _piece(self, req) -> dict:
        """The request's input piece in beats: notes, velocities, drums, seconds per beat, meter."""
        from ..model.encoding import read_midi
        from ..model.offline import notes_from_json

        if req.midi is not None and req.notes is not None:
            raise FieldError("notes", "give midi or notes, not both")
        if req.midi is None and req.notes is None:
            raise FieldError("midi", f"{req.task} needs a piece: midi (a base64 MIDI file) or notes")
        if req.notes is not None:
            spb = 60.0 / (req.bpm or NOTES_BPM)
            p = notes_from_json([n.model_dump() for n in req.notes], spb)
            return {"notes": p.notes, "velocities": p.velocities, "drums": p.drums, "spb": spb, "beats_per_bar": 4.0}
        try:
            data = base64.b64decode(req.midi, validate=True)
        except (binascii.Error, ValueError):
            raise FieldError("midi", "not base64; send the MIDI file's bytes base64-encoded") from None
        try:
            piece = read_midi(io.BytesIO(data))
        except Exception as e:  # noqa: BLE001 - any parse failure of untrusted bytes is the client's error
            why = f"{type(e).__name__}: {str(e)[:80]}" if str(e) else type(e).__name__
            raise FieldError("midi", f"not a readable MIDI file ({why}); send a standard MIDI file") from None
        spb = 60.0 / req.bpm if req.bpm else piece.seconds_per_beat
        end = max(_end(piece.notes_beats), float(piece.drums[:, 2].max()) if len(piece.drums) else 0.0)
        if end * spb > MAX_PIECE_SECONDS or len(piece.notes_beats) + len(piece.drums) > MAX_NOTES:
            raise FieldError("midi", f"the piece is too long ({end * spb:.0f} s, {len(piece.notes_beats)} notes); "
                                     f"at most {MAX_PIECE_SECONDS:.0f} s and {MAX_NOTES} notes")
        return {"notes": piece.notes_beats, "velocities": piece.velocities, "drums": piece.drums, "spb": spb,
                "beats_per_bar": piece.beats_per_bar if 0 < piece.beats_per_bar <= 12 else 4.0}


def _end(notes) -> float:
    return float(notes[:, 3].max()) if len(notes) else 0.0


def _field(loc) -> str:
    """pydantic's error location -> ``notes[3].pitch``."""
    parts = [p for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def _error(status: int, field: str | None, message: str, headers: dict | None = None):
    from fastapi.responses import JSONResponse

    text = f"{field}: {message}" if field else message
    return JSONResponse(status_code=status, content={"error": text, "field": field}, headers=headers)


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ConfigError(f"HTTP host {host!r}: not an address here ({e.strerror}); use 127.0.0.1") from None
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise ConfigError(f"HTTP port {port} on {host}: {e.strerror}; choose another (0: any free port)") from None
    sock.set_inheritable(True)
    return sock


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    """``python3 -m improv.serve.http``: serve until Ctrl-C."""
    import signal

    from ..cli import Parser

    p = Parser(prog="python3 -m improv.serve.http", description="Serve the band model's HTTP JSON API "
               "(GET /health, POST /predict; the schema at /docs).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8100, help="port (default 8100; 0: any free port)")
    p.add_argument("--model", default=None, help="weights (default models/band.pt)")
    p.add_argument("--max-queue", type=int, default=8, help="requests running or waiting at once (default 8)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    stop = threading.Event()
    try:
        service = HttpService(args.host, args.port, model=Path(args.model) if args.model else None,
                              max_queue=args.max_queue)
        service.start()
    except ImprovError as e:
        print(f"improv.serve.http: {e}", file=sys.stderr)
        return e.exit_code
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"serving the band model on {service.url} (POST /predict, GET /health, /openapi.json); Ctrl-C stops", flush=True)
    try:
        stop.wait()
    finally:
        service.stop()
    print(f"stopped: {service.served} requests answered, {service.refused} refused (busy)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
