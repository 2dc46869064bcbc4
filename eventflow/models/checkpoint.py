"""Checkpoints: the reference implementation's state_dicts and our own (state_dict + config JSON).

- Reference format: a plain state_dict with the reference's keys (``head.ff.weight``, ``G1.rec.weight``,
  ``pred.conv2d.weight``, ``multires_unetrec.encoders.0.conv.ff.weight``, ...). It is mapped onto our parameters
  through the model's explicit key map (:meth:`~eventflow.models.base.FlowModel.reference_key_map`), strictly:
  a missing or unexpected key or a shape mismatch is an error naming the key and the file.
- Our format: ``NAME.pt`` (our state_dict, read with ``torch.load(weights_only=True)``) and ``NAME.json`` beside it
  (the :class:`~eventflow.models.config.ModelConfig` and metadata), both written atomically.

Whole pickled modules (the reference's mlflow ``model.pth``) are refused with instructions to convert them:
unpickling them would run arbitrary code.

>>> import tempfile, pathlib
>>> from eventflow.models import build_model
>>> path = pathlib.Path(tempfile.mkdtemp()) / "lif.pt"
>>> _ = save_checkpoint(path, build_model("LIFFireNet_short", base_num_channels=4), extra={"epoch": 3})
>>> model, config = load_checkpoint(path)
>>> config.name, config.base_num_channels, read_checkpoint_info(path)["metadata"]
('LIFFireNet_short', 4, {'epoch': 3})
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import eventflow
from eventflow.atomic import atomic_path
from eventflow.config import to_dict
from eventflow.models.base import FlowModel
from eventflow.models.config import ModelConfig, model_config
from eventflow.models.registry import build_model

CHECKPOINT_FORMAT = "eventflow-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the one-line message names the file and the problem."""


def config_path(path: str | Path) -> Path:
    """The config JSON that sits beside checkpoint ``path`` (``model.pt`` -> ``model.json``)."""
    return Path(path).with_suffix(".json")


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A state_dict file read safely (``weights_only=True``) onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if found:
            raise CheckpointError(
                f"{path}: holds pickled Python objects ({found.group(1)}; e.g. a whole module, as the reference's "
                "mlflow model.pth), which are not loaded because unpickling runs arbitrary code; convert it once, in "
                "an environment that has the code and that you trust: "
                "torch.save(torch.load(path, weights_only=False).state_dict(), 'model_state_dict.pt')"
            ) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (unreadable by the weights-only loader)") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint, or truncated "
                              f"({str(err).strip().splitlines()[0]})") from None
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise CheckpointError(f"{path}: expected a state_dict (a mapping of names to tensors), got "
                              f"{type(obj).__name__}")
    return dict(obj)


def _load_mapped(model: FlowModel, state_dict: Mapping[str, Tensor], key_map: dict[str, str], source: str,
                 fmt: str) -> None:
    """Load ``state_dict`` (keys = those of ``key_map``) into ``model`` (keys = its values), strictly."""
    name = model.config.name
    for key in state_dict:
        if key not in key_map:
            raise CheckpointError(f"{source}: unexpected key {key!r} for {name} ({fmt} format)")
    for key in key_map:
        if key not in state_dict:
            raise CheckpointError(f"{source}: missing key {key!r} for {name} ({fmt} format)")
    ours = model.state_dict()
    mapped = {}
    for key, our_key in key_map.items():
        tensor = state_dict[key]
        if tensor.shape != ours[our_key].shape:
            raise CheckpointError(
                f"{source}: {key!r} has shape {tuple(tensor.shape)} but {name} needs {tuple(ours[our_key].shape)} "
                "(check base_num_channels, num_bins and kernel_size)")
        mapped[our_key] = tensor
    model.load_state_dict(mapped, strict=True)


def load_reference_state_dict(model: FlowModel, state_dict: Mapping[str, Tensor],
                              source: str = "<state_dict>") -> None:
    """Load a state_dict with the reference implementation's keys into ``model`` through its key map."""
    _load_mapped(model, state_dict, model.reference_key_map(), source, "reference")


def save_checkpoint(path: str | Path, model: FlowModel, config: ModelConfig | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s state_dict to ``path`` (``.pt``) and its config with metadata to the JSON beside it.

    Args:
        config: the model config to record (default ``model.config``; its name must be the model's).
        extra: JSON-serialisable metadata (epoch, training config dataclass, ...), returned by
            :func:`read_checkpoint_info`.

    Returns:
        ``path``. Both files are written atomically.
    """
    path = Path(path)
    if path.suffix != ".pt":
        raise ValueError(f"{path}: checkpoint files end in .pt (the config goes to {path.stem}.json beside it)")
    config = model.config if config is None else config
    if config.name != model.config.name:
        raise ValueError(f"{path}: config is for {config.name} but the model is a {model.config.name}")
    info = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": to_dict(config),
        "num_parameters": model.num_parameters(),
        "eventflow_version": eventflow.__version__,
        "torch_version": torch.__version__,
        "metadata": to_dict(extra or {}),  # dataclasses (e.g. a training config) as plain dicts
    }
    try:
        text = json.dumps(info, indent=2)
    except TypeError as err:
        raise ValueError(f"{path}: checkpoint metadata is not JSON-serialisable ({err})") from None
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
    with atomic_path(config_path(path)) as tmp:
        tmp.write_text(text + "\n")
    return path


def read_checkpoint_info(path: str | Path) -> dict[str, Any]:
    """The JSON beside our checkpoint ``path``: ``model`` (config dict), ``metadata`` (``extra``), versions."""
    json_path = config_path(path)
    if not json_path.is_file():
        raise FileNotFoundError(f"{json_path}: checkpoint config not found (an eventflow checkpoint is a .pt file "
                                "with a .json beside it)")
    try:
        info = json.loads(json_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{json_path}: not valid JSON ({err})") from None
    if not isinstance(info, dict) or info.get("format") != CHECKPOINT_FORMAT or "model" not in info:
        raise CheckpointError(f"{json_path}: not an eventflow checkpoint config (no format {CHECKPOINT_FORMAT!r})")
    if info.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{json_path}: checkpoint version {info.get('version')!r} is not supported "
                              f"(this eventflow reads version {CHECKPOINT_VERSION})")
    return info


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[FlowModel, ModelConfig]:
    """Rebuild the model of our checkpoint ``path`` (``.pt`` with its ``.json``) and load its weights."""
    info = read_checkpoint_info(path)
    config = model_config(info["model"], source=str(config_path(path)))
    model = build_model(config)
    state_dict = read_state_dict(path)
    _load_mapped(model, state_dict, {k: k for k in model.state_dict()}, str(path), "eventflow")
    return model.to(device), config


def load_model(name: str | None, checkpoint_path: str | Path, device: torch.device | str = "cpu",
               **overrides: Any) -> FlowModel:
    """Load a model from either checkpoint format.

    - our checkpoint (a ``.json`` config beside the file): its config is used; ``name``, if given, must match;
    - otherwise a plain state_dict: the model ``name`` is built with ``overrides`` (config fields; the file
      holds no config, e.g. the reference's ``hard_reset`` is not saved) and the weights are loaded from either
      our keys or the reference's keys (detected from the key set).

    >>> from eventflow.paths import shared_file
    >>> path = shared_file("data", "hagenaars2021_liffirenet.pt")
    >>> path is None or load_model("LIFFireNet", path).num_parameters() == 74818
    True
    """
    path = Path(checkpoint_path)
    if config_path(path).is_file():
        if overrides:
            raise ValueError(f"{path}: an eventflow checkpoint carries its own config; overrides "
                             f"({', '.join(overrides)}) apply to plain state_dicts only")
        model, config = load_checkpoint(path, device)
        if name is not None and config.name != name:
            raise CheckpointError(f"{path}: holds a {config.name}, not a {name}")
        return model
    if name is None:
        raise ValueError(f"{path}: a plain state_dict holds no config; give the model name")
    state_dict = read_state_dict(path)
    model = build_model(name, **overrides)
    own_keys = {k: k for k in model.state_dict()}
    if set(state_dict) == set(own_keys):
        _load_mapped(model, state_dict, own_keys, str(path), "eventflow")
    else:
        _load_mapped(model, state_dict, model.reference_key_map(), str(path), "reference")
    return model.to(device)
