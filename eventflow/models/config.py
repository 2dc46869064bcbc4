"""Typed model configuration: the reference YAML's ``model`` and ``spiking_neuron`` sections as dataclasses.

Field names and meanings follow tudelft/event_flow's configs (``configs/train_SNN.yml``, ``train_ANN.yml``), with
the ``spiking_neuron`` section nested inside the model config. Unknown keys are rejected
(:func:`eventflow.config.from_dict`).

>>> cfg = model_config({"name": "LIFFireNet", "spiking_neuron": {"leak": [-4.0, 0.1], "thresh": [0.8, 0.1]}})
>>> cfg.spiking_neuron.thresh
(0.8, 0.1)
>>> model_config("LIFFireNet", num_bins=5)
Traceback (most recent call last):
...
ValueError: <config>: ModelConfig: encoding 'cnt' needs num_bins 2 (positive and negative counts), got 5
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from eventflow.config import from_dict, to_dict

MeanStd = tuple[float, float]


@dataclass(frozen=True)
class NeuronConfig:
    """The ``spiking_neuron`` section: initialisation and mechanics of the neurons of every layer.

    ``None`` leaves the neuron's own default (that of the reference cell). ``(mean, std)`` pairs are the normal
    distributions per-channel parameters are drawn from. Which keys apply depends on the neuron:

    - LIF: ``leak`` (default ``(-4, 0.1)``), ``thresh`` (``(0.8, 0.0)``; the paper's ``train_SNN.yml`` uses
      ``(0.8, 0.1)``), ``learn_leak``, ``learn_thresh`` (True), ``hard_reset`` (True), ``detach``, ``act_width``;
    - PLIF: ``leak_v``, ``leak_pt`` (``(-4, 0.1)``), ``add_pt`` (``(-2, 0.1)``), ``thresh`` and the switches;
    - ALIF: ``leak_v``, ``leak_t`` (``(-4, 0.1)``), ``t0`` (``(0.01, 0)``), ``t1`` (``(1.8, 0)``),
      ``learn_thresh`` (False), ``hard_reset`` (False), ...; XLIF: ``leak_v``, ``leak_pt``, ``t0``, ``t1``, ...;
    - the non-spiking leaky cells: ``leak``, ``learn_leak``.

    ``detach`` (True) detaches the spikes in the reset term; ``act_width`` (10) is the surrogate width ``w``.
    A key that a model's neurons do not take is an error when the model is built (as in the reference).
    """

    leak: MeanStd | None = None
    thresh: MeanStd | None = None
    leak_v: MeanStd | None = None
    leak_pt: MeanStd | None = None
    leak_t: MeanStd | None = None
    add_pt: MeanStd | None = None
    t0: MeanStd | None = None
    t1: MeanStd | None = None
    learn_leak: bool | None = None
    learn_thresh: bool | None = None
    hard_reset: bool | None = None
    detach: bool | None = None
    act_width: float | None = None

    def overrides(self) -> dict[str, Any]:
        """The keys that are set, as constructor keyword arguments of the neuron layers."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class ModelConfig:
    """Configuration of a flow model (the reference YAML ``model`` section plus ``spiking_neuron``).

    - ``name``: a key of :data:`eventflow.models.MODEL_REGISTRY` (the reference class names, e.g. ``LIFFireNet``).
    - ``encoding``: ``"cnt"`` (per-polarity event counts, needs ``num_bins == 2``) or ``"voxel"``
      (``num_bins`` temporal bins); the input is ``(B, num_bins, H, W)``.
    - ``round_encoding``: round timestamps in the voxel grid (used by the input encoding, not by the network).
    - ``norm_input``: normalise the non-zero input entries to zero mean and unit (unbiased) standard deviation,
      statistics over the whole batch, as the reference does (but without modifying the caller's tensor).
    - ``base_num_channels``: C (FireNet width; EV-FlowNet's first encoder has 2C); ``kernel_size``: k.
    - ``activations``: ``[feed-forward, recurrent]`` activation names; for spiking models the surrogate names
      (``arctanspike``, ...), for ANNs ``relu``/``tanh``/``sigmoid``/``None``. ``None`` takes the model's default
      (``[arctanspike, arctanspike]`` for SNNs, ``[relu, None]`` for ANNs), filled in when the model is built.
    - ``mask_output``: mask the flow with the event mask in the loss and evaluation (not used by the network).
    - ``spiking_neuron``: :class:`NeuronConfig` (``None``: every neuron's defaults).
    - ``pad_input``: EV-FlowNet family only: zero-pad ``H``, ``W`` to the next multiple of 16 (centred, as the
      reference ``CropParameters``) and crop the flow back; without it such sizes are an error.
    """

    name: str = "LIFFireNet"
    encoding: Literal["cnt", "voxel"] = "cnt"
    round_encoding: bool = False
    norm_input: bool = False
    num_bins: int = 2
    base_num_channels: int = 32
    kernel_size: int = 3
    activations: tuple[str | None, str | None] | None = None
    mask_output: bool = True
    spiking_neuron: NeuronConfig | None = None
    pad_input: bool = False

    def __post_init__(self):
        if self.encoding == "cnt" and self.num_bins != 2:
            raise ValueError(f"encoding 'cnt' needs num_bins 2 (positive and negative counts), got {self.num_bins}")
        for key in ("num_bins", "base_num_channels", "kernel_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be positive, got {getattr(self, key)}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd ('same' padding), got {self.kernel_size}")

    def neuron_overrides(self) -> dict[str, Any]:
        """The ``spiking_neuron`` keys that are set (empty for ``None``)."""
        return {} if self.spiking_neuron is None else self.spiking_neuron.overrides()


def model_config(name_or_config: "str | ModelConfig | dict[str, Any]", source: str = "<config>",
                 **overrides: Any) -> ModelConfig:
    """A validated :class:`ModelConfig` from a model name, a config or a dict (e.g. a YAML ``model`` section),
    with ``overrides`` applied on top (nested ``spiking_neuron`` given as a dict or a :class:`NeuronConfig`)."""
    if isinstance(name_or_config, str):
        data: dict[str, Any] = {"name": name_or_config}
    elif isinstance(name_or_config, ModelConfig):
        data = to_dict(name_or_config)
    elif isinstance(name_or_config, dict):
        data = dict(name_or_config)
    else:
        raise ValueError(f"expected a model name, a ModelConfig or a dict, got {type(name_or_config).__name__}")
    for key, value in overrides.items():
        data[key] = to_dict(value) if dataclasses.is_dataclass(value) else value
    try:
        return from_dict(ModelConfig, data, source=source)
    except ValueError as err:
        if str(err).startswith(source):
            raise
        raise ValueError(f"{source}: ModelConfig: {err}") from None
