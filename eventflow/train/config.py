"""Typed training configuration: the reference's ``train_SNN.yml`` / ``train_ANN.yml`` sections as dataclasses.

Sections and keys follow tudelft/event_flow (Hagenaars et al., NeurIPS 2021) where they exist (``data``,
``model`` with ``spiking_neuron`` nested, ``loss.flow_regul_weight``, ``optimizer``, ``loader``); ``run`` holds
what the reference hard-codes or leaves to mlflow (device, output folder, checkpoint interval, step limit).
Unknown keys are errors that name the file (:func:`eventflow.config.from_dict`).

Shipped configs (``eventflow/configs/``): ``train_snn`` and ``train_ann`` (the paper's schedule: LIF-FireNet and
FireNet, 100 epochs, batch 8, 128x128, Adam 2e-4, reference loss) and ``quick_snn``, ``quick_ann`` (minutes on a
laptop CPU).

>>> config = load_train_config("quick_snn", overrides={"run.max_steps": 3})
>>> config.model.name, config.run.max_steps, config.passes_per_loss
('LIFFireNet', 3, 10)
>>> load_train_config("quick_snn", overrides={"loader.batch": 2})
Traceback (most recent call last):
...
ValueError: quick_snn.yaml: unknown key 'batch' in TrainConfig.loader; valid keys: n_epochs, batch_size, \
resolution, augment, augment_prob, num_workers, seed, shuffle
"""

from __future__ import annotations

import copy
import hashlib
import importlib.resources
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from eventflow.config import from_dict, to_dict
from eventflow.models.config import ModelConfig
from eventflow.warping import HAGENAARS2021

AUGMENTATIONS = ("horizontal", "vertical", "polarity")
SIM_PROFILES = ("quick", "full")


@dataclass(frozen=True)
class DataConfig:
    """Where the training recordings are and how they are cut.

    - ``path``: a folder searched recursively for ``*.h5`` files (reference layout, sorted by path), one file, or
      a list of files/folders; ``None`` = the embedded simulated training split of profile ``sim_profile``
      (:func:`eventflow.simulate.ensure_default_dataset`, generated on first use). Relative paths are relative
      to the current directory.
    - ``mode``: ``"events"`` (windows of ``window`` consecutive events, the reference's training mode) or
      ``"time"`` (windows of ``window`` seconds, the reference loader's other mode).
    - ``window``: events (``events``) or seconds (``time``) per forward pass (1000 events in the paper);
      ``window_loss``: the same unit per loss window (10000 events): the loss, backward and optimiser step
      happen every ``ceil(window_loss / window)`` passes.

    Time windows keep the motion per pass in a known range (speed x ``window``) whatever the scene's texture;
    event windows do not: the embedded simulated training split has 50 to 4800 events per pixel of motion, so
    1000 events span from 0.2 to 20 pixels depending on the sequence (``benchmarks/RESULTS.md``, "Why the quick
    LIF-FireNet does not beat zero flow").
    """

    path: str | list[str] | None = None
    sim_profile: Literal["quick", "full"] = "quick"
    mode: Literal["events", "time"] = "events"
    window: int | float = 1000
    window_loss: int | float = 10000

    def __post_init__(self):
        unit = "events" if self.mode == "events" else "s"
        finite = math.isfinite(self.window) and math.isfinite(self.window_loss)
        if self.mode == "events" and finite and (self.window != int(self.window)
                                                 or self.window_loss != int(self.window_loss)):
            raise ValueError(f"mode events counts events: window and window_loss must be integers, got "
                             f"{self.window} and {self.window_loss}")
        lowest_ok = self.window >= 1 if self.mode == "events" else self.window > 0
        if not (finite and lowest_ok and self.window_loss >= self.window):
            bound = "1 <=" if self.mode == "events" else "0 <"
            raise ValueError(f"need {bound} window <= window_loss ({unit}), got window {self.window}, "
                             f"window_loss {self.window_loss}")


@dataclass(frozen=True)
class LossConfig:
    """The self-supervised loss (:func:`eventflow.loss.event_warping_loss`) and gradient clipping.

    - ``flow_regul_weight``: weight ``lambda`` of the flow smoothness term.
    - ``clip_grad``: max global L2 norm of the gradients (``None``: no clipping); 100 in the paper.
    - ``overwrite_intermediate``: warp every event of the window with the last pass's flow (reference option).
    - ``flow_scaling``: pixels per window per unit of (tanh) flow; ``None`` = ``max(loader.resolution)``, as the
      reference's training loss (128 at 128x128).
    - ``compat``: ``None`` (the corrected loss: mean over lanes, per-component Charbonnier normalised by the
      number of pixel pairs) or ``"hagenaars2021"``, the reference's training as the paper ran it: batch-SUM
      loss with its smoothness form (see :mod:`eventflow.loss`), the loader's quirks
      (:class:`eventflow.datasets.SequenceDataset`), and, when any lane starts a new recording, the states and
      the in-flight loss window of ALL lanes are reset (the reference resets everything on ``new_seq``; the
      default resets only that lane).

    Which default: the paper's configs (``train_snn``, ``train_ann``) set ``compat: hagenaars2021`` with
    ``flow_regul_weight: 0.001`` because that is the loss the published models were trained with. The class
    default and the quick configs use the corrected loss (the project's rule: the correct form unless a
    quirk is asked for). The corrected smoothness term is an average per pixel pair, about 200 times smaller
    than the reference's sum at the same weight (1.07 against 0.0052 on the ECD recording, see
    :mod:`eventflow.loss`), so the default weight is 0.2 = 200 x 0.001: the same regularisation strength as
    the paper's. The batch reduction hardly matters to Adam (invariant to the loss scale) but the mean keeps
    the clipping threshold independent of the batch size.
    """

    flow_regul_weight: float = 0.2
    clip_grad: float | None = 100.0
    overwrite_intermediate: bool = False
    flow_scaling: float | None = None
    compat: Literal["hagenaars2021"] | None = None

    def __post_init__(self):
        if not (math.isfinite(self.flow_regul_weight) and self.flow_regul_weight >= 0):
            raise ValueError(f"flow_regul_weight must be a number >= 0, got {self.flow_regul_weight}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise ValueError(f"clip_grad must be positive or null, got {self.clip_grad}")
        if self.flow_scaling is not None and not self.flow_scaling > 0:
            raise ValueError(f"flow_scaling must be positive or null, got {self.flow_scaling}")
        if self.compat not in (None, HAGENAARS2021):
            raise ValueError(f"compat must be null or {HAGENAARS2021!r}, got {self.compat!r}")


@dataclass(frozen=True)
class OptimizerConfig:
    """``name``: a key of :data:`eventflow.train.optim.OPTIMIZERS` (``Adam`` in the paper); ``lr``: learning
    rate (2e-4 in the paper)."""

    name: str = "Adam"
    lr: float = 2e-4

    def __post_init__(self):
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be positive, got {self.lr}")


@dataclass(frozen=True)
class LoaderConfig:
    """Batching and the schedule.

    - ``n_epochs``: passes over the recordings; ``batch_size``: lanes ``B`` (8 in the paper).
    - ``resolution``: ``(H, W)`` of the recordings (events must lie inside).
    - ``augment``: flips drawn once per recording per lane, from ``horizontal``, ``vertical``, ``polarity``
      (the reference's ``Horizontal``, ...); ``augment_prob``: their probabilities (0.5 each, as the paper;
      :class:`eventflow.datasets.SequenceDataset` implements 0.5 only).
    - ``num_workers``: DataLoader worker processes (0 = load in the training process).
    - ``seed``: seeds the model initialisation, the order of recordings and the flips.
    - ``shuffle``: a new order of recordings every epoch.
    """

    n_epochs: int = 100
    batch_size: int = 8
    resolution: tuple[int, int] = (128, 128)
    augment: tuple[str, ...] = AUGMENTATIONS
    augment_prob: tuple[float, ...] = (0.5, 0.5, 0.5)
    num_workers: int = 0
    seed: int = 0
    shuffle: bool = True

    def __post_init__(self):
        if self.n_epochs < 1 or self.batch_size < 1:
            raise ValueError(f"n_epochs and batch_size must be >= 1, got {self.n_epochs}, {self.batch_size}")
        if min(self.resolution) < 1:
            raise ValueError(f"resolution must be positive (H, W), got {self.resolution}")
        unknown = [a for a in self.augment if a not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"unknown augmentation {unknown[0]!r}; choose from {', '.join(AUGMENTATIONS)}")
        if len(self.augment_prob) != len(self.augment):
            raise ValueError(f"augment_prob needs one probability per augmentation ({len(self.augment)}), got "
                             f"{len(self.augment_prob)}")
        if any(p != 0.5 for p in self.augment_prob):
            raise ValueError(f"augment_prob: only 0.5 is implemented (eventflow.datasets draws each flip with "
                             f"p = 0.5, as the paper), got {list(self.augment_prob)}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")


@dataclass(frozen=True)
class RunConfig:
    """How and where the run executes (none of it changes what is computed, except ``max_steps``; the LIF backend
    and the memory format change float rounding only).

    - ``device``: ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    - ``out_dir``: output folder (checkpoints, metrics); ``None`` = ``runs/<experiment>`` in the current
      directory.
    - ``max_steps``: stop after this many optimisation steps (loss windows) in total; ``None`` = the epochs.
    - ``checkpoint_every``: optimisation steps between checkpoints (also at every epoch end and at the end).
    - ``log_every``: optimisation steps between records of spike rates (the loss is logged every step).
    - ``lif_backend``: ``"torch"``, ``"cpp"`` (the fused operator :mod:`eventflow.lif_op`: the same forward values,
      faster) or ``"auto"`` (``cpp`` where it builds, else ``torch`` with a warning; see
      :mod:`eventflow.train.backend`).
    - ``channels_last``: NHWC memory format for the convolutions (faster on CPUs with oneDNN; rounding may
      differ in the last bits).
    - ``tensorboard``: also write TensorBoard scalars (needs the ``tensorboard`` package; an error without).
    """

    device: str = "auto"
    out_dir: str | None = None
    max_steps: int | None = None
    checkpoint_every: int = 100
    log_every: int = 10
    lif_backend: Literal["torch", "cpp", "auto"] = "auto"
    channels_last: bool = False
    tensorboard: bool = False

    def __post_init__(self):
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or null, got {self.max_steps}")
        if self.checkpoint_every < 1 or self.log_every < 1:
            raise ValueError("checkpoint_every and log_every must be >= 1")


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run (see the section classes). ``experiment`` names the run; ``init_weights``: a
    checkpoint to start from instead of the seeded initialisation (ours, or a plain state_dict such as the
    authors' weights), for fine-tuning; its architecture must match ``model``."""

    experiment: str = "default"
    init_weights: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @property
    def passes_per_loss(self) -> int:
        """Forward passes per loss window: ``ceil(window_loss / window)`` (10 in the paper); a ratio within 1e-9
        of an integer counts as that integer (``0.05 / 0.005`` is 10.000000000000002 in floating point)."""
        return max(1, math.ceil(self.data.window_loss / self.data.window - 1e-9))

    @property
    def flow_scaling(self) -> float:
        """Pixels per window per unit of flow used by the loss."""
        if self.loss.flow_scaling is not None:
            return float(self.loss.flow_scaling)
        return float(max(self.loader.resolution))


# ------------------------------------------------------------------------------------------- files and names


def config_dir() -> Path:
    """The folder of the shipped configs (``eventflow/configs``)."""
    return Path(str(importlib.resources.files("eventflow") / "configs"))


def packaged_configs() -> list[str]:
    """Names of the shipped configs (``quick_snn``, ``train_snn``, ...)."""
    return sorted(p.stem for p in config_dir().glob("*.yaml"))


def resolve_config_path(source: str | Path) -> Path:
    """A config file: ``source`` itself if it exists, else the shipped config of that name (with or without
    ``.yaml``). FileNotFoundError listing the shipped names otherwise."""
    path = Path(source)
    if path.is_file():
        return path
    shipped = config_dir() / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    raise FileNotFoundError(f"{source}: config file not found (shipped configs: {', '.join(packaged_configs())})")


def _set_dotted(data: dict[str, Any], key: str, value: Any, source: str) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"{source}: override {key!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def load_train_config(source: str | Path | dict[str, Any] | TrainConfig,
                      overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A validated :class:`TrainConfig` from a YAML file, a shipped config name, a dict or a config.

    ``overrides`` maps dotted keys to values applied before validation, e.g. ``{"loader.n_epochs": 2,
    "run.max_steps": 5, "model.base_num_channels": 8}``. Errors are one-line ``ValueError``\\ s naming the file
    (or ``<config>``) and the key.
    """
    if isinstance(source, TrainConfig):
        data, name = to_dict(source), "<config>"
    elif isinstance(source, dict):
        data, name = copy.deepcopy(source), "<config>"
    else:
        path = resolve_config_path(source)
        name = path.name if path.parent == config_dir() else str(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{name}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{name}: top level must be a mapping of sections")
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value, name)
    try:
        return from_dict(TrainConfig, data, source=name)
    except ValueError as err:
        if str(err).startswith(name):
            raise
        raise ValueError(f"{name}: {err}") from None


# ---------------------------------------------------------------------------------------------------- hashes

# Settings that change how a run executes but not what it computes (run.max_steps and the epochs do: they are
# part of the config hash, but a run may be resumed with a longer schedule).
_EXECUTION_KEYS = {"run": ("device", "out_dir", "checkpoint_every", "log_every", "lif_backend", "channels_last",
                           "tensorboard"),
                   "loader": ("num_workers",)}
_SCHEDULE_KEYS = {"run": ("max_steps",), "loader": ("n_epochs",)}


def _digest(data: dict[str, Any], drop: dict[str, tuple[str, ...]]) -> str:
    data = copy.deepcopy(data)
    for section, keys in drop.items():
        for key in keys:
            data[section].pop(key, None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_hash(config: TrainConfig) -> str:
    """16 hex digits identifying what a run computes (everything but the execution settings)."""
    return _digest(to_dict(config), _EXECUTION_KEYS)


def resume_key(config: TrainConfig) -> str:
    """As :func:`config_hash` but ignoring the schedule length, so a run can be resumed to more steps."""
    return _digest(to_dict(config), {k: _EXECUTION_KEYS.get(k, ()) + _SCHEDULE_KEYS.get(k, ())
                                     for k in {*_EXECUTION_KEYS, *_SCHEDULE_KEYS}})


def dump_config(config: TrainConfig) -> str:
    """The config as YAML text (loadable with :func:`load_train_config`)."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)
