"""The model registry: every model of the paper (and the derivative's compact variants) by its reference name.

>>> from eventflow.models import build_model
>>> model = build_model("LIFFireNet")
>>> model.num_parameters(), model.config.activations
(74818, ('arctanspike', 'arctanspike'))
>>> build_model("LIFFirenet")
Traceback (most recent call last):
...
ValueError: unknown model 'LIFFirenet'; valid names: FireNet, RNNFireNet, FireFlowNet, LeakyFireNet, ...
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from eventflow.models.base import FlowModel
from eventflow.models.config import ModelConfig, model_config
from eventflow.models.evflownet import EVFlowNetModel
from eventflow.models.firenet import FireNetModel

ANN_ACTIVATIONS = ("relu", None)
SNN_ACTIVATIONS = ("arctanspike", "arctanspike")


@dataclass(frozen=True)
class ModelSpec:
    """How to build one registered model.

    - ``family``: ``"firenet"`` (:class:`~eventflow.models.firenet.FireNetModel`) or ``"evflownet"``
      (:class:`~eventflow.models.evflownet.EVFlowNetModel`);
    - ``ff``: layer kind of the feed-forward layers; ``rec``: of the recurrent ones (FireNet's G layers; None:
      EV-FlowNet without recurrence); ``rec_kernel``: fixed kernel of the recurrent layers (None: kernel_size);
    - ``w_scale_pred``: uniform bound of the prediction weights (None: PyTorch's default initialisation);
    - ``activations``: default ``[feed-forward, recurrent]`` activations; ``short``: FireNet without R1b, R2b;
    - ``label``: the name used in the paper's tables.
    """

    family: Literal["firenet", "evflownet"]
    ff: str
    rec: str | None
    w_scale_pred: float | None
    activations: tuple[str | None, str | None]
    label: str
    short: bool = False
    rec_kernel: int | None = None


def _firenet(ff: str, rec: str, w: float | None, label: str, short: bool = False) -> ModelSpec:
    acts = SNN_ACTIVATIONS if ff.endswith("lif") else ANN_ACTIVATIONS
    return ModelSpec("firenet", ff, rec, w, acts, label, short=short)


def _evflownet(ff: str, rec: str | None, w: float | None, label: str, rec_kernel: int | None = None) -> ModelSpec:
    acts = SNN_ACTIVATIONS if ff.endswith("lif") else ANN_ACTIVATIONS
    return ModelSpec("evflownet", ff, rec, w, acts, label, rec_kernel=rec_kernel)


#: Reference class name -> :class:`ModelSpec`.
MODEL_REGISTRY: dict[str, ModelSpec] = {
    "FireNet": _firenet("conv", "gru", None, "FireNet"),
    "RNNFireNet": _firenet("conv", "rnn", None, "RNN-FireNet"),
    "FireFlowNet": _firenet("conv", "conv", 0.01, "FireFlowNet"),
    "LeakyFireNet": _firenet("leaky", "leaky_rec", None, "Leaky-FireNet"),
    "LeakyFireFlowNet": _firenet("leaky", "leaky", None, "Leaky-FireFlowNet"),
    "LIFFireNet": _firenet("lif", "lif_rec", 0.01, "LIF-FireNet"),
    "PLIFFireNet": _firenet("plif", "plif_rec", 0.01, "PLIF-FireNet"),
    "ALIFFireNet": _firenet("alif", "alif_rec", 0.01, "ALIF-FireNet"),
    "XLIFFireNet": _firenet("xlif", "xlif_rec", 0.01, "XLIF-FireNet"),
    "LIFFireFlowNet": _firenet("lif", "lif", 0.01, "LIF-FireFlowNet"),
    "LIFFireNet_short": _firenet("lif", "lif_rec", 0.01, "LIF-FireNet-short", short=True),
    "LIFFireFlowNet_short": _firenet("lif", "lif", 0.01, "LIF-FireFlowNet-short", short=True),
    "EVFlowNet": _evflownet("conv", None, None, "EV-FlowNet"),
    "RecEVFlowNet": _evflownet("conv", "gru", None, "GRU-EV-FlowNet", rec_kernel=3),
    "RNNRecEVFlowNet": _evflownet("conv", "rnn", None, "RNN-EV-FlowNet", rec_kernel=3),
    "LeakyRecEVFlowNet": _evflownet("leaky", "leaky_rec", 0.01, "Leaky-EV-FlowNet"),
    "SpikingRecEVFlowNet": _evflownet("lif", "lif_rec", 0.01, "LIF-EV-FlowNet"),
    "PLIFRecEVFlowNet": _evflownet("plif", "plif_rec", 0.01, "PLIF-EV-FlowNet"),
    "ALIFRecEVFlowNet": _evflownet("alif", "alif_rec", 0.01, "ALIF-EV-FlowNet"),
    "XLIFRecEVFlowNet": _evflownet("xlif", "xlif_rec", 0.01, "XLIF-EV-FlowNet"),
}


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; ValueError listing the valid names otherwise."""
    if name not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_REGISTRY)}")
    return MODEL_REGISTRY[name]


def build_model(name_or_config: str | ModelConfig | dict[str, Any], **overrides: Any) -> FlowModel:
    """Build a registered model with fresh (reference-initialised) weights.

    Args:
        name_or_config: a name of :data:`MODEL_REGISTRY`, a :class:`~eventflow.models.config.ModelConfig` or a
            dict of its fields (e.g. a YAML ``model`` section).
        overrides: config fields to set, e.g. ``base_num_channels=8``, ``spiking_neuron={"thresh": (0.8, 0.1)}``.

    Returns:
        The model; ``model.config`` is the config with the default activations filled in.
    """
    config = model_config(name_or_config, **overrides)
    spec = get_spec(config.name)
    if config.activations is None:
        config = dataclasses.replace(config, activations=spec.activations)
    if spec.family == "firenet":
        return FireNetModel(config, spec.ff, spec.rec, spec.w_scale_pred, short=spec.short)
    return EVFlowNetModel(config, spec.ff, spec.rec, spec.w_scale_pred, rec_kernel=spec.rec_kernel)
