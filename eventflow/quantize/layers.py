"""Quantised twins of the model zoo's layers: same parameters, same call convention, integer arithmetic.

A twin adopts the float layer's parameters and buffers under the same names (so the state_dict of a quantised
model is that of its float model, and training it trains them) and keeps the fixed-point formats as plain
attributes (:class:`ConvFormats`, :class:`LIFLayerFormats`, :class:`GRUFormats`).

Every convolution goes through :func:`quantized_conv`, the integer convolution of an int8 device (ONNX
``QLinearConv``): inputs on power-of-two grids, weights on per-output-channel symmetric grids
(:func:`~eventflow.quantize.fixed_point.weight_scale`), an integer accumulator (plus an integer bias of scale
``s_in s_w``), requantised onto the output grid with the multiplier ``M_c = s_in s_w,c / s_out``:

    I_q = sat(round_half_even(M_c * (sum_k W_q x_q + b_q)))

The accumulator is exact in float32 while it stays below ``2^24`` (always for spike inputs), so this matches
onnxruntime's ``QLinearConv`` bit for bit. Layers with several inputs (a recurrent layer's ``x`` and ``z``, the
GRU's ``[x, h]``) share the per-channel weight scale and align their inputs to the finest input grid, i.e. one
convolution over the concatenated input.

>>> import torch
>>> from eventflow.neurons import ConvLIFRecurrent
>>> from eventflow.quantize.fixed_point import FixedPoint
>>> layer = ConvLIFRecurrent(2, 4)
>>> twin = QuantizedLIF(layer, LIFLayerFormats(FixedPoint(8, 0), FixedPoint(8, 4), FixedPoint(8, 5),
...                                            FixedPoint(8, 7, False), FixedPoint(8, 12, False), weight_bits=8))
>>> z, state = twin(torch.ones(1, 2, 5, 5), twin.init_state(1, 5, 5))
>>> sorted(twin.state_dict()) == sorted(layer.state_dict()), bool(torch.all(state.v * 32 == (state.v * 32).round()))
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eventflow.neurons.analog import ConvGRU, ConvLayer, GRUState, get_activation
from eventflow.neurons.functional import LIFParameters, LIFState, get_lif_backend
from eventflow.neurons.modules import ConvLIF, ConvLIFRecurrent, zero_state
from eventflow.quantize.fixed_point import (
    FixedPoint,
    fake_quantize,
    quantize_integer,
    quantize_weight,
    to_integer,
    weight_scale,
)
from eventflow.quantize.lif import LIFFormats, fixed_point_lif_step

INT32_MAX = 2**31 - 1


# ------------------------------------------------------------------------------------------------- formats


class ConvFormats(NamedTuple):
    """A plain convolution layer (:class:`~eventflow.neurons.ConvLayer`): ``input`` grid, ``output`` grid of the
    pre-activation (None: the integer accumulator is dequantised without rounding, e.g. a prediction layer),
    ``weight_bits``."""

    input: FixedPoint
    output: FixedPoint | None
    weight_bits: int


class LIFLayerFormats(NamedTuple):
    """A LIF layer: ``input`` grid, the neuron's ``current``, ``v``, ``theta`` and ``beta`` grids
    (:class:`~eventflow.quantize.lif.LIFFormats`), ``weight_bits``."""

    input: FixedPoint
    current: FixedPoint
    v: FixedPoint
    theta: FixedPoint
    beta: FixedPoint
    weight_bits: int

    @property
    def lif(self) -> LIFFormats:
        return LIFFormats(self.current, self.v, self.theta, self.beta)


class GRUFormats(NamedTuple):
    """A ConvGRU layer: ``input`` and ``hidden`` (state) grids, the gate pre-activations ``update``, ``reset``,
    ``out``, the sigmoid outputs ``gate`` (unsigned) and the tanh output ``candidate``, ``weight_bits``."""

    input: FixedPoint
    hidden: FixedPoint
    update: FixedPoint
    reset: FixedPoint
    out: FixedPoint
    gate: FixedPoint
    candidate: FixedPoint
    weight_bits: int


LayerFormats = ConvFormats | LIFLayerFormats | GRUFormats

_FORMAT_KINDS: dict[str, type] = {"conv": ConvFormats, "lif": LIFLayerFormats, "gru": GRUFormats}


def formats_to_dict(formats: LayerFormats) -> dict:
    """JSON-ready description of a layer's formats, tagged with its ``kind``."""
    kind = next(k for k, cls in _FORMAT_KINDS.items() if isinstance(formats, cls))
    out: dict = {"kind": kind}
    for field, value in formats._asdict().items():
        out[field] = value.to_dict() if isinstance(value, FixedPoint) else value
    return out


def formats_from_dict(data: dict) -> LayerFormats:
    """Inverse of :func:`formats_to_dict`; ValueError on an unknown kind or missing fields."""
    kind = data.get("kind")
    if kind not in _FORMAT_KINDS:
        raise ValueError(f"unknown layer format kind {kind!r}; valid kinds: {', '.join(_FORMAT_KINDS)}")
    cls = _FORMAT_KINDS[kind]
    missing = [f for f in cls._fields if f not in data]
    if missing:
        raise ValueError(f"{kind} formats lack {', '.join(missing)}")
    values = {}
    for field in cls._fields:
        value = data[field]
        values[field] = FixedPoint.from_dict(value) if isinstance(value, dict) else value
    return cls(**values)


# ----------------------------------------------------------------------------------------- the integer conv


class ConvInput(NamedTuple):
    """One input of :func:`quantized_conv`: values ``x`` ``(B, C_i, H, W)`` (quantised onto ``fmt``), the
    weights ``(C_out, C_i, k, k)`` that act on it, the convolution's stride and padding."""

    x: Tensor
    fmt: FixedPoint
    weight: Tensor
    stride: int
    padding: int


def conv_weight_scale(inputs: Sequence[ConvInput], bits: int) -> Tensor:
    """The per-output-channel weight scale ``(C_out,)`` shared by all ``inputs`` of one convolution."""
    return weight_scale(torch.cat([i.weight.flatten(1) for i in inputs], dim=1), bits)


def quantized_conv(inputs: Sequence[ConvInput], weight_bits: int, output: FixedPoint | None,
                   bias: Tensor | None = None) -> Tensor:
    """The integer convolution of the module docstring, returned as values ``(B, C_out, H', W')``: on the grid
    of ``output``, or (``output`` None) the exact accumulator times ``s_in s_w,c``. Straight-through gradients to
    the inputs, the weights and the bias."""
    frac = max(i.fmt.frac for i in inputs)  # the finest input grid, 2^-frac
    scale_w = conv_weight_scale(inputs, weight_bits)  # (C_out,)
    acc = None
    for i in inputs:
        x_q = to_integer(i.x, i.fmt) * 2.0 ** (frac - i.fmt.frac)  # integers on the common grid
        w_q = quantize_weight(i.weight, scale_w, weight_bits)
        part = F.conv2d(x_q, w_q.to(x_q.dtype), None, i.stride, i.padding)
        acc = part if acc is None else acc + part
    acc_scale = 2.0**-frac * scale_w  # (C_out,) float32, the value of one accumulator unit
    if bias is not None:
        bias_q = quantize_integer(bias / acc_scale.to(bias.dtype), -INT32_MAX, INT32_MAX)
        acc = acc + bias_q.view(1, -1, 1, 1)
    if output is None:
        return acc * acc_scale.to(acc.dtype).view(1, -1, 1, 1)
    multiplier = (acc_scale / output.scale).to(acc.dtype).view(1, -1, 1, 1)  # M_c, as QLinearConv forms it
    return quantize_integer(acc * multiplier, output.qmin, output.qmax) * output.scale


# ------------------------------------------------------------------------------------------------- twins


def _adopt(twin: nn.Module, layer: nn.Module) -> None:
    """Register ``layer``'s direct parameters, buffers and children on ``twin`` under the same names."""
    for name, child in layer.named_children():
        twin.add_module(name, child)
    for name, param in layer.named_parameters(recurse=False):
        twin.register_parameter(name, param)
    for name, buf in layer.named_buffers(recurse=False):
        twin.register_buffer(name, buf)


class QuantizedConvLayer(nn.Module):
    """Twin of :class:`~eventflow.neurons.ConvLayer`: ``act(I)`` with ``I`` the integer convolution (with bias)
    on the ``output`` grid; ReLU keeps the grid, tanh/sigmoid outputs are float (a lookup table on a device)."""

    stateful = False
    spiking = False
    neuron = None

    def __init__(self, layer: ConvLayer, formats: ConvFormats):
        super().__init__()
        _adopt(self, layer)
        self.activation = layer.activation
        self._act = get_activation(layer.activation)
        self.formats = formats

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        conv = self.conv
        out = quantized_conv([ConvInput(x, self.formats.input, conv.weight, conv.stride[0], conv.padding[0])],
                             self.formats.weight_bits, self.formats.output, conv.bias)
        if residual is not None:
            out = out + residual
        return out if self._act is None else self._act(out)

    def extra_repr(self) -> str:
        return f"activation={self.activation}, formats={self.formats}"


class QuantizedLIF(nn.Module):
    """Twin of :class:`~eventflow.neurons.ConvLIF` / ``ConvLIFRecurrent``: the integer convolution of ``x`` (and
    of the previous spikes ``z``, on the unit grid) gives the current; :func:`~eventflow.quantize.lif.
    fixed_point_lif_step` updates the neuron. State :class:`~eventflow.neurons.LIFState` with ``v`` on its grid."""

    stateful = True
    spiking = True
    neuron = "lif"
    uses_lif_core = True
    State = LIFState

    def __init__(self, layer: ConvLIF, formats: LIFLayerFormats):
        super().__init__()
        _adopt(self, layer)
        self.recurrent = layer.recurrent
        self.in_channels, self.out_channels = layer.in_channels, layer.out_channels
        self.kernel_size, self.stride = layer.kernel_size, layer.stride
        self.surrogate, self.hard_reset, self.detach = layer.surrogate, layer.hard_reset, layer.detach
        self.backend = layer.backend
        self.formats = formats

    def set_backend(self, backend: str) -> None:
        """Select the LIF core (a name in :data:`~eventflow.neurons.functional.LIF_BACKENDS`)."""
        get_lif_backend(backend)
        self.backend = backend

    def neuron_params(self) -> LIFParameters:
        return LIFParameters(self.leak, self.thresh, self.act_width, self.hard_reset, self.detach, self.surrogate)

    def conv_inputs(self, x: Tensor, z_prev: Tensor) -> list[ConvInput]:
        """The convolution inputs: ``x`` on the input grid and, in recurrent layers, ``z_prev`` on the unit grid."""
        pad = self.kernel_size // 2
        inputs = [ConvInput(x, self.formats.input, self.ff.weight, self.stride, pad)]
        if self.recurrent:
            spikes = FixedPoint(self.formats.input.bits, 0)
            inputs.append(ConvInput(z_prev, spikes, self.rec.weight, 1, pad))
        return inputs

    def current(self, x: Tensor, z_prev: Tensor) -> Tensor:
        """``I = W_ff * x (+ W_rec * z_prev)`` on the current grid, ``(B, C_out, H', W')``."""
        return quantized_conv(self.conv_inputs(x, z_prev), self.formats.weight_bits, self.formats.current)

    def init_state(self, batch: int, height: int, width: int, device=None, dtype=None) -> LIFState:
        """The zero state on the layer's output grid ``(batch, C_out, height, width)``."""
        return zero_state(LIFState, self.ff.weight, batch, self.out_channels, height, width, device, dtype)

    def forward(self, x: Tensor, state: LIFState, residual: Tensor | None = None) -> tuple[Tensor, LIFState]:
        current = self.current(x, state.z)
        z, state = fixed_point_lif_step(current, state, self.neuron_params(), self.formats.lif, self.backend)
        return (z if residual is None else z + residual), state

    def extra_repr(self) -> str:
        return f"recurrent={self.recurrent}, formats={self.formats}"


class QuantizedGRU(nn.Module):
    """Twin of :class:`~eventflow.neurons.ConvGRU`: its update with every intermediate on a grid,

    - ``u = Q_g(sigmoid(I_u))``, ``r = Q_g(sigmoid(I_r))`` with ``I_u``, ``I_r`` integer convolutions of
      ``[x, h_{t-1}]``;
    - ``c = Q_c(tanh(I_o))``, ``I_o`` the integer convolution of ``[x, Q_h(r h_{t-1})]``;
    - ``h_t = Q_h(h_{t-1} (1 - u) + c u)``; the output is ``h_t``.

    tests/test_quantize.py checks that fine grids reproduce the float ConvGRU.
    """

    stateful = True
    spiking = False
    neuron = None
    recurrent = True
    State = GRUState

    def __init__(self, layer: ConvGRU, formats: GRUFormats):
        super().__init__()
        _adopt(self, layer)
        self.hidden_channels = layer.hidden_channels
        self.formats = formats

    def init_state(self, batch: int, height: int, width: int, device=None, dtype=None) -> GRUState:
        """Zero state ``(batch, C_hidden, height, width)``."""
        return zero_state(GRUState, self.out_gate.weight, batch, self.hidden_channels, height, width, device, dtype)

    def _gate(self, conv: nn.Conv2d, x: Tensor, h: Tensor, output: FixedPoint) -> Tensor:
        fmt, cx = self.formats, x.shape[1]
        pad = conv.padding[0]
        inputs = [ConvInput(x, fmt.input, conv.weight[:, :cx], 1, pad),  # [x, h] split along C_in
                  ConvInput(h, fmt.hidden, conv.weight[:, cx:], 1, pad)]
        return quantized_conv(inputs, fmt.weight_bits, output, conv.bias)

    def forward(self, x: Tensor, state: GRUState) -> tuple[Tensor, GRUState]:
        fmt = self.formats
        h = fake_quantize(state.h, fmt.hidden)
        update = fake_quantize(torch.sigmoid(self._gate(self.update_gate, x, h, fmt.update)), fmt.gate)
        reset = fake_quantize(torch.sigmoid(self._gate(self.reset_gate, x, h, fmt.reset)), fmt.gate)
        candidate = torch.tanh(self._gate(self.out_gate, x, fake_quantize(h * reset, fmt.hidden), fmt.out))
        candidate = fake_quantize(candidate, fmt.candidate)
        h = fake_quantize(h * (1 - update) + candidate * update, fmt.hidden)
        return h, GRUState(h)

    def extra_repr(self) -> str:
        return f"formats={self.formats}"


#: Float layer class -> (its twin, the formats it takes). Other layer kinds cannot be quantised (yet).
TWINS: dict[type, tuple[type, type]] = {
    ConvLayer: (QuantizedConvLayer, ConvFormats),
    ConvLIF: (QuantizedLIF, LIFLayerFormats),
    ConvLIFRecurrent: (QuantizedLIF, LIFLayerFormats),
    ConvGRU: (QuantizedGRU, GRUFormats),
}

QUANTIZED_LAYERS = (QuantizedConvLayer, QuantizedLIF, QuantizedGRU)


def check_quantizable(name: str, layer: nn.Module) -> None:
    """ValueError naming the layer when there is no quantised twin for its class."""
    if type(layer) not in TWINS:
        valid = ", ".join(cls.__name__ for cls in TWINS)
        raise ValueError(f"layer {name!r} is a {type(layer).__name__}, which cannot be quantised; "
                         f"quantisable layers: {valid}")


def make_twin(name: str, layer: nn.Module, formats: LayerFormats) -> nn.Module:
    """The quantised twin of ``layer`` with ``formats`` (ValueError for a wrong formats kind)."""
    check_quantizable(name, layer)
    twin_cls, formats_cls = TWINS[type(layer)]
    if not isinstance(formats, formats_cls):
        raise ValueError(f"layer {name!r} ({type(layer).__name__}) needs {formats_cls.__name__}, "
                         f"got {type(formats).__name__}")
    return twin_cls(layer, formats)
