"""Quantised models: formats from calibration, post-training quantisation, checkpoints and sizes.

A quantised model is a copy of a :class:`~eventflow.models.FlowModel` whose layers are replaced by their twins
(:mod:`eventflow.quantize.layers`): same class, same interface (``init_state``, ``forward``, ``forward_all``,
``state_spec``), same parameter names. Everything that takes a model (training, evaluation) takes it too.

>>> import torch
>>> from eventflow.models import build_model
>>> model = build_model("LIFFireNet_short", base_num_channels=4)
>>> qmodel = quantize_model(model, default_model_formats(model, QuantConfig(bits=8)))  # uncalibrated
>>> flow, state = qmodel(torch.zeros(1, 2, 8, 8))
>>> is_quantized(qmodel), is_quantized(model), flow.shape
(True, False, torch.Size([1, 2, 8, 8]))
"""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from eventflow.config import from_dict, to_dict
from eventflow.models.base import FlowModel
from eventflow.models.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from eventflow.neurons.analog import ConvGRU, ConvLayer
from eventflow.neurons.functional import MIN_THRESH
from eventflow.neurons.modules import ConvLIF
from eventflow.quantize.bn import fold_batchnorm
from eventflow.quantize.calibrate import Calibration
from eventflow.quantize.config import QuantConfig
from eventflow.quantize.fixed_point import FixedPoint, choose_format, mse_format, quantize_weight, to_integer
from eventflow.quantize.layers import (
    QUANTIZED_LAYERS,
    ConvFormats,
    ConvInput,
    GRUFormats,
    LayerFormats,
    LIFLayerFormats,
    QuantizedConvLayer,
    QuantizedGRU,
    QuantizedLIF,
    check_quantizable,
    conv_weight_scale,
    formats_from_dict,
    formats_to_dict,
    make_twin,
)
from eventflow.quantize.lif import lif_formats, quantized_lif_parameters

#: Activations whose layers are prediction layers (their output is the flow, not the next layer's input).
PREDICTION_ACTIVATIONS = ("tanh", "sigmoid")


# ------------------------------------------------------------------------------------------- formats


def _input_format(calibration: Calibration, name: str, config: QuantConfig) -> FixedPoint:
    """Whole-number inputs (event counts, spikes) keep unit steps (larger counts saturate); others get a
    calibrated grid."""
    stats = calibration.get(f"{name}.input")
    bits = config.widths().activation
    if stats.integer:
        return FixedPoint(bits, 0)
    return _format(calibration, f"{name}.input", bits, config)


def _format(calibration: Calibration, key: str, bits: int, config: QuantConfig) -> FixedPoint:
    """The signed grid of ``bits`` for the calibrated tensor ``key``: minimising the squared error on its samples
    (``method="mse"``) or holding its max or percentile range."""
    stats = calibration.get(key)
    if config.method == "mse":
        return mse_format(stats.samples, bits)
    return choose_format(stats.range(config.method, config.percentile), bits)


@torch.no_grad()
def layer_formats(name: str, layer: nn.Module, calibration: Calibration, config: QuantConfig) -> LayerFormats:
    """The formats of float ``layer`` from its calibrated ranges (:mod:`eventflow.quantize.calibrate`):

    - inputs: :func:`_input_format`; currents and pre-activations: the finest grid that holds their range;
    - LIF: the potential's grid from the potentials of silent neurons (with a hard reset), the current on the
      same range (larger currents only make a neuron fire), then
      :func:`~eventflow.quantize.lif.lif_formats` with the layer's largest ``beta`` and threshold;
    - GRU: the hidden state in ``(-1, 1)`` (``frac = bits - 1``), sigmoid outputs unsigned in ``[0, 1)``,
      tanh outputs signed in ``[-1, 1)``;
    - prediction layers (tanh, sigmoid): no output grid unless ``config.requantize_output``.
    """
    check_quantizable(name, layer)
    w = config.widths()
    if isinstance(layer, ConvLayer):
        output = None
        if layer.activation not in PREDICTION_ACTIVATIONS or config.requantize_output:
            output = _format(calibration, f"{name}.current", w.activation, config)
        return ConvFormats(_input_format(calibration, name, config), output, w.weight)
    if isinstance(layer, ConvLIF):
        beta_max = float(torch.sigmoid(layer.leak).max())
        theta_max = float(layer.thresh.clamp_min(MIN_THRESH).max())
        v = _format(calibration, f"{name}.v", w.state, config)
        # Hard reset: a current beyond the potentials' range only decides that the neuron fires (positive) or
        # gives a potential that saturates anyway (negative), so the current shares the potentials' range.
        if layer.hard_reset:
            current = FixedPoint(w.activation, v.frac + w.activation - w.state)
        else:
            current = _format(calibration, f"{name}.current", w.activation, config)
        lif = lif_formats(current, v, beta_max, theta_max, w.leak, w.state, layer.hard_reset)
        return LIFLayerFormats(_input_format(calibration, name, config), *lif, w.weight)
    if isinstance(layer, ConvGRU):
        def pre(gate: str) -> FixedPoint:
            return _format(calibration, f"{name}.{gate}", w.activation, config)

        return GRUFormats(_input_format(calibration, name, config), FixedPoint(w.state, w.state - 1), pre("update"),
                          pre("reset"), pre("out"), FixedPoint(w.activation, w.activation, signed=False),
                          FixedPoint(w.activation, w.activation - 1), w.weight)
    raise AssertionError("unreachable: check_quantizable accepted an unknown layer")


def default_formats(name: str, layer: nn.Module, config: QuantConfig) -> LayerFormats:
    """Formats without calibration, for tests and examples: unit-step inputs, currents and potentials in
    ``[-4, 4)``, the leak grid for ``beta <= 0.1``."""
    w = config.widths()
    unit = FixedPoint(w.activation, 0)
    wide = FixedPoint(w.activation, w.activation - 3)
    check_quantizable(name, layer)
    if isinstance(layer, ConvLayer):
        return ConvFormats(unit, None if layer.activation in PREDICTION_ACTIVATIONS else wide, w.weight)
    if isinstance(layer, ConvLIF):
        return LIFLayerFormats(unit, wide, FixedPoint(w.state, w.state - 3), choose_format(2.0, w.state, signed=False),
                               choose_format(0.1, w.leak, signed=False), w.weight)
    return GRUFormats(wide, FixedPoint(w.state, w.state - 1), wide, wide, wide,
                      FixedPoint(w.activation, w.activation, signed=False), FixedPoint(w.activation, w.activation - 1),
                      w.weight)


def default_model_formats(model: FlowModel, config: QuantConfig) -> dict[str, LayerFormats]:
    """:func:`default_formats` of every layer of float ``model`` (no calibration)."""
    return {name: default_formats(name, layer, config) for name, layer in model.layers().items()}


def formats_from_calibration(model: FlowModel, calibration: Calibration,
                             config: QuantConfig) -> dict[str, LayerFormats]:
    """:func:`layer_formats` of every layer of float ``model``."""
    return {name: layer_formats(name, layer, calibration, config) for name, layer in model.layers().items()}


# --------------------------------------------------------------------------------------------- models


def is_quantized(model: FlowModel) -> bool:
    """Whether ``model``'s layers are quantised twins."""
    return any(isinstance(layer, QUANTIZED_LAYERS) for layer in model.layers().values())


def model_formats(qmodel: FlowModel) -> dict[str, LayerFormats]:
    """The formats of every layer of a quantised model (ValueError for a float model)."""
    if not is_quantized(qmodel):
        raise ValueError(f"{qmodel.config.name} is not quantised")
    return {name: layer.formats for name, layer in qmodel.layers().items()}


def quantize_model(model: FlowModel, formats: dict[str, LayerFormats]) -> FlowModel:
    """A copy of float ``model``, BatchNorms folded (:func:`~eventflow.quantize.bn.fold_batchnorm`), with every
    layer replaced by its quantised twin with ``formats[name]``. ``model`` is left unchanged."""
    if is_quantized(model):
        raise ValueError(f"{model.config.name} is quantised already")
    missing = [name for name in model.layers() if name not in formats]
    if missing:
        raise ValueError(f"no formats for layer(s) {', '.join(missing)} of {model.config.name}")
    qmodel = copy.deepcopy(model)
    fold_batchnorm(qmodel)
    for name, layer in qmodel.layers().items():
        qmodel.replace_layer(name, make_twin(name, layer, formats[name]))
    return qmodel


def ptq(model: FlowModel, calibration: Calibration, config: QuantConfig | None = None) -> FlowModel:
    """Post-training quantisation: the formats of ``calibration`` (ranges seen on training data,
    :func:`~eventflow.quantize.calibrate.calibrate_on_training_split`) applied to a copy of ``model``, with
    ``config`` (default :class:`~eventflow.quantize.config.QuantConfig`: 8 bits)."""
    config = QuantConfig() if config is None else config
    return quantize_model(model, formats_from_calibration(model, calibration, config))


def float_model(qmodel: FlowModel) -> FlowModel:
    """The float model with the (possibly fine-tuned) parameters of quantised ``qmodel``."""
    from eventflow.models.registry import build_model

    model = build_model(qmodel.config)
    model.load_state_dict(qmodel.state_dict(), strict=True)
    return model.to(next(qmodel.parameters()).device)


def describe_format(fmt: FixedPoint | None) -> str:
    """``fmt`` as text: ``"s8 x 2^-5"`` (signed, 8 bits, step 2^-5); ``"int32"`` for None (an unrounded
    accumulator).

    >>> describe_format(FixedPoint(8, 5)), describe_format(FixedPoint(4, -1, signed=False))
    ('s8 x 2^-5', 'u4 x 2^1')
    """
    if fmt is None:
        return "int32"
    return f"{'s' if fmt.signed else 'u'}{fmt.bits} x 2^{-fmt.frac}"


def formats_table(qmodel: FlowModel) -> list[dict[str, Any]]:
    """One row per layer of quantised ``qmodel``: its kind, weight bits and every format
    (:func:`describe_format`), for display."""
    rows = []
    for name, fmt in model_formats(qmodel).items():
        row: dict[str, Any] = {"layer": name, "kind": type(fmt).__name__.removesuffix("Formats").removesuffix("Layer"),
                               "weights": f"s{fmt.weight_bits} per channel"}
        for field, value in fmt._asdict().items():
            if field != "weight_bits":
                row[field] = describe_format(value)
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------- checkpoints


class QuantInfo(NamedTuple):
    """What a quantised checkpoint records besides the weights: ``mode`` (``"ptq"`` or ``"qat"``), the
    :class:`~eventflow.quantize.config.QuantConfig`, the calibration ``files`` and free-form ``extra``."""

    mode: str
    config: QuantConfig
    files: tuple[str, ...]
    extra: dict[str, Any]


def save_quantized(path: str | Path, qmodel: FlowModel, info: QuantInfo) -> Path:
    """Write quantised ``qmodel`` as an eventflow checkpoint (``.pt`` + ``.json``, atomically): the float
    parameters and, in the metadata, the formats of every layer and ``info``. :func:`load_quantized` rebuilds it;
    :func:`~eventflow.models.load_model` reads it as the float model."""
    meta = {
        "quantization": {
            "mode": info.mode,
            "config": to_dict(info.config),
            "calibration_files": list(info.files),
            "formats": {name: formats_to_dict(f) for name, f in model_formats(qmodel).items()},
            "extra": info.extra,
        }
    }
    return save_checkpoint(path, qmodel, extra=meta)


def load_quantized(path: str | Path, device: torch.device | str = "cpu") -> tuple[FlowModel, QuantInfo]:
    """The quantised model of a checkpoint written by :func:`save_quantized`, and its :class:`QuantInfo`."""
    meta = read_checkpoint_info(path).get("metadata", {})
    if "quantization" not in meta:
        raise ValueError(f"{path}: not a quantised checkpoint (its metadata has no 'quantization' entry)")
    q = meta["quantization"]
    try:
        formats = {name: formats_from_dict(f) for name, f in q["formats"].items()}
        info = QuantInfo(q["mode"], from_dict(QuantConfig, q["config"], source=str(path)),
                         tuple(q["calibration_files"]), dict(q.get("extra", {})))
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: damaged quantisation metadata ({err})") from None
    model, _ = load_checkpoint(path, device)
    return quantize_model(model, formats), info


# --------------------------------------------------------------------------------------- integer form


def _conv_integers(prefix: str, inputs: list[ConvInput], bits: int, bias: Tensor | None) -> dict[str, Tensor]:
    scale = conv_weight_scale(inputs, bits)
    out = {f"{prefix}.weight_scale": scale}
    names = ["weight"] if len(inputs) == 1 else [f"weight{i}" for i in range(len(inputs))]
    for name, i in zip(names, inputs):
        out[f"{prefix}.{name}"] = quantize_weight(i.weight, scale, bits).to(torch.int8)
    if bias is not None:
        frac = max(i.fmt.frac for i in inputs)
        out[f"{prefix}.bias"] = torch.round(bias / (2.0**-frac * scale)).to(torch.int32)
    return out


def _smallest_int(bits: int, signed: bool) -> torch.dtype:
    if bits <= 8:
        return torch.int8 if signed else torch.uint8
    return torch.int16 if bits <= 16 and signed else torch.int32


@torch.no_grad()
def integer_state_dict(qmodel: FlowModel) -> dict[str, Tensor]:
    """The integers a device stores for quantised ``qmodel``: int8 weights, float32 per-channel weight scales,
    int32 biases, LIF ``beta`` and ``theta`` in their formats' integer types. Power-of-two formats are not
    tensors (see :func:`model_formats`)."""
    out: dict[str, Tensor] = {}
    for name, layer in qmodel.layers().items():
        fmt = layer.formats
        if isinstance(layer, QuantizedConvLayer):
            conv = layer.conv
            out.update(_conv_integers(name, [ConvInput(torch.empty(0), fmt.input, conv.weight, 1, 0)],
                                      fmt.weight_bits, conv.bias))
        elif isinstance(layer, QuantizedLIF):
            inputs = layer.conv_inputs(torch.empty(0), torch.empty(0))
            out.update(_conv_integers(name, inputs, fmt.weight_bits, None))
            beta, theta = quantized_lif_parameters(layer.neuron_params(), fmt.lif)
            out[f"{name}.beta"] = to_integer(beta, fmt.beta).to(_smallest_int(fmt.beta.bits, False))
            out[f"{name}.theta"] = to_integer(theta, fmt.theta).to(_smallest_int(fmt.theta.bits, False))
        elif isinstance(layer, QuantizedGRU):
            for gate in ("reset_gate", "update_gate", "out_gate"):
                conv = getattr(layer, gate)
                cx = conv.weight.shape[1] - layer.hidden_channels
                inputs = [ConvInput(torch.empty(0), fmt.input, conv.weight[:, :cx], 1, 0),
                          ConvInput(torch.empty(0), fmt.hidden, conv.weight[:, cx:], 1, 0)]
                out.update(_conv_integers(f"{name}.{gate}", inputs, fmt.weight_bits, conv.bias))
        else:
            raise ValueError(f"layer {name!r} of {qmodel.config.name} is not quantised")
    return out


class ModelSize(NamedTuple):
    """Sizes in bytes: ``packed`` (every integer at its bit width, scales float32, one byte per fixed-point
    format: what a device stores),
    ``serialized`` (:func:`integer_state_dict` saved with ``torch.save``, integers in whole bytes), and the float
    model's ``fp32_packed`` (4 bytes per parameter) and ``fp32_serialized`` (its state_dict saved)."""

    packed: int
    serialized: int
    fp32_packed: int
    fp32_serialized: int


def _serialized_bytes(state: dict[str, Tensor]) -> int:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.tell()


def fp32_size(model: FlowModel) -> int:
    """Bytes of ``model``'s floating-point tensors at 4 bytes each (parameters and buffers)."""
    return 4 * sum(v.numel() for v in model.state_dict().values() if v.is_floating_point())


def model_size(qmodel: FlowModel) -> ModelSize:
    """:class:`ModelSize` of quantised ``qmodel`` and of its float model."""
    ints = integer_state_dict(qmodel)
    formats = model_formats(qmodel)
    bits = 0
    for key, tensor in ints.items():
        layer = next(name for name in formats if key.startswith(f"{name}."))
        fmt = formats[layer]
        field = key.rsplit(".", 1)[-1]
        if field.startswith("weight") and field != "weight_scale":
            bits += tensor.numel() * fmt.weight_bits
        elif field == "beta":
            bits += tensor.numel() * fmt.beta.bits
        elif field == "theta":
            bits += tensor.numel() * fmt.theta.bits
        else:  # weight scales (float32) and biases (int32)
            bits += tensor.numel() * 32
    # a format costs one byte on a device (its fractional bits; the widths are those of the build)
    format_bytes = sum(isinstance(v, FixedPoint) for f in formats.values() for v in f)
    float_state = {k: v for k, v in qmodel.state_dict().items() if v.is_floating_point()}
    return ModelSize(-(-bits // 8) + format_bytes, _serialized_bytes(ints), fp32_size(qmodel),
                     _serialized_bytes(float_state))
