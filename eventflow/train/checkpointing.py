"""Training checkpoints for exact resumption.

A run folder holds ``model.pt`` (+ ``model.json``: an :mod:`eventflow.models.checkpoint` checkpoint, for
inference) and ``train_state.pt``, everything a run needs to continue as if it had never stopped: the weights,
the optimiser state, the position (epoch, next batch of the epoch, optimisation steps done), the network's
hidden state of every lane of the global batch, the random number generators (torch, CUDA, NumPy, Python), and
the running loss statistics. Checkpoints are taken at loss-window boundaries, where the in-flight loss buffer is
empty and the hidden state is detached, so nothing else is in flight. Both files are written atomically
(:func:`eventflow.atomic.atomic_path`): an interrupted write leaves the previous checkpoint intact.

The state file is read with ``torch.load(weights_only=True)``: it holds only tensors and plain containers.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from eventflow.atomic import atomic_path

TRAIN_STATE = "train_state.pt"
MODEL_FILE = "model.pt"
BEST_FILE = "best.pt"
STATE_FORMAT = "eventflow-train-state"
STATE_VERSION = 1


class Position(NamedTuple):
    """Where a run stands: ``epoch``, ``batch`` (the next batch index within the epoch) and ``step``
    (optimisation steps done in total)."""

    epoch: int = 0
    batch: int = 0
    step: int = 0


def capture_rng() -> dict[str, Any]:
    """The states of the torch (and CUDA), NumPy and Python random number generators, as tensors and plain
    values."""
    version, keys, gauss = random.getstate()
    name, np_keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "keys": list(keys), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Set the generators to a state from :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["keys"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_train_state(path: str | Path, *, model_state: dict[str, torch.Tensor], optimizer_state: dict[str, Any],
                     position: Position, hidden: list[torch.Tensor] | None, resume_key: str,
                     stats: dict[str, Any]) -> Path:
    """Write the training state to ``path`` atomically.

    Args:
        model_state: the model's state_dict; ``optimizer_state``: the optimiser's.
        position: where the run stands after this checkpoint.
        hidden: the flattened hidden state of the whole global batch (``FlowModel.flatten_state``; None: zeros).
        resume_key: identifies the config (:func:`eventflow.train.config.resume_key`).
        stats: running statistics (plain numbers and lists).
    """
    payload = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "model": {k: v.detach().cpu() for k, v in model_state.items()},
        "optimizer": optimizer_state,
        "position": list(position),
        "hidden": None if hidden is None else [t.detach().cpu() for t in hidden],
        "rng": capture_rng(),
        "resume_key": resume_key,
        "stats": stats,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_train_state(path: str | Path) -> dict[str, Any]:
    """Read a state written by :func:`save_train_state` (``position`` as a :class:`Position`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: training state not found (nothing to resume)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
        raise ValueError(f"{path}: not a readable training state ({str(err).strip().splitlines()[0]})") from None
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise ValueError(f"{path}: not an eventflow training state")
    if payload.get("version") != STATE_VERSION:
        raise ValueError(f"{path}: training state version {payload.get('version')!r} is not supported "
                         f"(this eventflow reads version {STATE_VERSION})")
    payload["position"] = Position(*payload["position"])
    return payload
