"""Trained models on demand, for the notebooks: :func:`ensure_trained` trains once and then reuses the result.

Checkpoints live under ``data/checkpoints/<model>-<profile>-<hash>/`` (``data_dir()``, ignored by git), keyed by
the hash of the whole training config (:func:`eventflow.train.config.config_hash`), so changing the config
trains a new model and never returns a stale one. An interrupted training is resumed; a file lock serialises
concurrent callers (two notebooks asking for the same model train it once).
"""

from __future__ import annotations

from pathlib import Path

from eventflow.atomic import folder_lock
from eventflow.models.checkpoint import read_checkpoint_info
from eventflow.models.registry import SNN_ACTIVATIONS, get_spec
from eventflow.paths import data_dir
from eventflow.train.checkpointing import MODEL_FILE, TRAIN_STATE
from eventflow.train.config import TrainConfig, config_hash, load_train_config

PROFILES = ("quick", "full")


def profile_config(model_name: str, profile: str = "quick") -> TrainConfig:
    """The shipped training config of ``profile`` (``quick``: ``quick_snn``/``quick_ann``; ``full``:
    ``train_snn``/``train_ann``) for ``model_name``: the SNN config for spiking models, the ANN config
    otherwise, with ``model.name`` set to ``model_name``; another model than the config's gets its default
    activations and its neurons' default settings (``spiking_neuron: null``)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    spec = get_spec(model_name)
    spiking = spec.activations == SNN_ACTIVATIONS
    base = {"quick": "quick", "full": "train"}[profile] + ("_snn" if spiking else "_ann")
    config = load_train_config(base)
    if config.model.name == model_name:
        return config
    return load_train_config(config, overrides={"model.name": model_name, "experiment": f"{base}_{model_name}",
                                                "model.activations": list(spec.activations),
                                                "model.spiking_neuron": None})


def trained_dir(config: TrainConfig, profile: str) -> Path:
    """Where the run of ``config`` lives: ``data_dir()/checkpoints/<model>-<profile>-<config hash>``."""
    return data_dir() / "checkpoints" / f"{config.model.name}-{profile}-{config_hash(config)}"


def is_finished(checkpoint: Path, config: TrainConfig) -> bool:
    """Whether ``checkpoint`` is the finished run of ``config``."""
    if not checkpoint.is_file() or not checkpoint.with_suffix(".json").is_file():
        return False
    metadata = read_checkpoint_info(checkpoint)["metadata"]
    return bool(metadata.get("finished")) and metadata.get("config_hash") == config_hash(config)


def ensure_trained(model_name: str, profile: str = "quick", progress: bool = True,
                   config: TrainConfig | None = None) -> Path:
    """The checkpoint (``model.pt`` with its ``model.json``) of ``model_name`` trained with the ``profile``
    config (or ``config``), training it first if no finished run of that exact config exists (idempotent).

    >>> from eventflow.train import ensure_trained                       # doctest: +SKIP
    >>> path = ensure_trained("LIFFireNet")                              # doctest: +SKIP
    >>> model, _ = eventflow.models.load_checkpoint(path)               # doctest: +SKIP
    """
    from eventflow.train.loop import train  # the loop pulls in the data layer; keep this module light

    config = config if config is not None else profile_config(model_name, profile)
    if config.model.name != model_name:
        raise ValueError(f"config trains {config.model.name}, not {model_name}")
    folder = trained_dir(config, profile)
    checkpoint = folder / MODEL_FILE
    with folder_lock(folder):
        if is_finished(checkpoint, config):
            return checkpoint
        result = train(config, progress=progress, resume=(folder / TRAIN_STATE).is_file(), out_dir=folder)
    return result.checkpoint
