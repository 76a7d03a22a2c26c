"""The shipped weights: one torch file holding the configuration, fp16 weights and facts."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ModelError
from .encoding import Grid
from .net import FrameNet, ModelConfig
from .session import Session

FORMAT = "improv-band-model"
FORMAT_VERSION = 1
MODEL_FILE = "band.pt"


def default_model_path() -> Path:
    """``$IMPROV_MODEL``, else ``models/band.pt`` of the source tree."""
    env = os.environ.get("IMPROV_MODEL")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "models" / MODEL_FILE


@dataclass
class BandModel:
    """A loaded model: weights in eval mode plus what is known about its training."""

    net: FrameNet
    path: Path | None = None
    meta: dict = field(default_factory=dict)

    @property
    def config(self) -> ModelConfig:
        return self.net.cfg

    @property
    def sampling(self) -> dict:
        """Recommended sampling settings (chosen on the validation split, stored in the file)."""
        rec = self.meta.get("sampling", {})
        return {"temperature": float(rec.get("temperature", 1.0)), "top_p": float(rec.get("top_p", 0.95))}

    def session(self, metered: bool = True, beats_per_bar: float = 4.0, bar_phase: float = 0.0,
                seed: int | None = None, temperature: float | None = None, top_p: float | None = None,
                lead_guess: str = "hold", lead_temperature: float = 0.8) -> Session:
        """A fresh generation state (see ``improv.model.session.Session``); temperature and
        top_p default to the model's recommended ``sampling``."""
        rec = self.sampling
        return Session(self.net, Grid(metered, beats_per_bar, bar_phase), seed=seed,
                       temperature=rec["temperature"] if temperature is None else temperature,
                       top_p=rec["top_p"] if top_p is None else top_p, lead_guess=lead_guess,
                       lead_temperature=lead_temperature)


def _plain(x):
    if hasattr(x, "item"):
        return x.item()
    return str(x)


def save_model(path: str | Path, net: FrameNet, meta: dict | None = None) -> Path:
    """Write weights (fp16) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16) if v.is_floating_point() else v for k, v in net.state_dict().items()}
    # Plain JSON types only, so that the file loads with torch.load(weights_only=True).
    plain_meta = json.loads(json.dumps(meta or {}, default=_plain))
    blob = {"format": FORMAT, "version": FORMAT_VERSION, "config": net.cfg.to_dict(), "state_dict": state,
            "meta": plain_meta}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)
    return path


def update_meta(path: str | Path, changes: dict) -> None:
    """Merge ``changes`` into a model file's facts (e.g. the recommended ``sampling``)."""
    path = Path(path)
    blob = torch.load(path, map_location="cpu", weights_only=True)
    blob["meta"] = {**blob.get("meta", {}), **json.loads(json.dumps(changes, default=_plain))}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def load_model(path: str | Path | None = None) -> BandModel:
    """Load a band model (default: ``default_model_path()``); ModelError if missing or unusable."""
    path = Path(path) if path is not None else default_model_path()
    if not path.exists():
        raise ModelError(f"no band model at {path}; train one with `improv train` "
                         f"(or point IMPROV_MODEL at a model file)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise ModelError(f"{path} is not a readable band model ({type(e).__name__}); "
                         f"retrain it with `improv train`") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelError(f"{path} is not an improv band model; retrain it with `improv train`")
    if blob.get("version") != FORMAT_VERSION:
        raise ModelError(f"{path} has format version {blob.get('version')}, this improv reads "
                         f"{FORMAT_VERSION}; retrain it with `improv train`")
    try:
        net = FrameNet(ModelConfig(**blob["config"]))
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
    except (KeyError, TypeError, RuntimeError) as e:
        raise ModelError(f"{path} does not match this improv's model ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:120]}); retrain it with `improv train`") from None
    net.eval()
    return BandModel(net=net, path=path, meta=dict(blob.get("meta", {})))
