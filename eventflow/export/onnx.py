"""Stateful ONNX export: a graph of ONE time step of a flow model, its state as explicit inputs and outputs.

The graph is built with :mod:`onnx.helper` from the model's structure (its layers, their convolution weights and
neuron parameters), not traced, so it is deterministic and reads like the model:

- inputs: ``event_cnt`` ``(B, num_bins, H, W)`` float32 and one ``<name>_in`` per state tensor of
  :meth:`~eventflow.models.FlowModel.state_spec` (e.g. ``G1_v_in``, ``G1_z_in``);
- outputs: ``flow`` ``(B, 2, H, W)`` (tanh units, channel 0 = x, as :meth:`FlowModel.forward`) and the new
  states ``<name>_out``. Zeros are the initial state; feed each ``*_out`` back as ``*_in`` for the next window;
- every spiking layer is ONE node ``eventflow.LIF`` (``PLIF``, ``ALIF``, ``XLIF``) whose inputs are the layer's
  input current, its state and its per-channel parameters, defined by a model-local function
  (:mod:`eventflow.export.functions`) so that stock onnxruntime runs it; ``custom_ops=False`` inlines these
  functions into plain standard operators instead;
- batch, height and width are symbolic (``dynamic=True``): dimensions ``batch``, ``height``, ``width``; the
  EV-FlowNet family's coarser grids are ``height_div2`` ... (``padded_height_div2`` ... where the model pads its
  input to multiples of 16: ``padded_height = 16 ceil(height / 16)``, metadata ``eventflow.pad_multiple``).

Folded at export (computed once by PyTorch in float32, stored as ``(C, 1, 1)`` initialisers ``<layer>.beta`` ...):
the leaks ``beta = sigmoid(leak)``, the thresholds ``theta = max(thresh, 0.01)`` (``t0 = max(t0, 0.01)``,
``t1 = max(t1, 0)``) and PLIF's gain ``sigmoid(add_pt)``: they are the values PyTorch computes on every step, so the
neuron updates agree bit for bit. Surrogate gradients, ``detach`` and ``act_width`` only matter for training and are
not exported.

Supported: every model of :data:`eventflow.models.MODEL_REGISTRY` (the FireNet family: LIF/PLIF/ALIF/XLIF, leaky,
GRU, RNN and plain layers; the EV-FlowNet family, with ``pad_input``), float32, ``norm_input=False``.

>>> from eventflow.models import build_model
>>> proto = export_onnx(build_model("LIFFireNet_short", base_num_channels=4), height=16, width=16)
>>> [i.name for i in proto.graph.input][:3], [o.name for o in proto.graph.output][:2]
(['event_cnt', 'head_v_in', 'head_z_in'], ['flow', 'head_v_out'])
>>> sorted({n.op_type for n in proto.graph.node if n.domain == "eventflow"}), len(proto.functions)
(['LIF'], 1)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnx.inliner
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import Tensor, nn

import eventflow
from eventflow.atomic import atomic_path
from eventflow.config import to_dict
from eventflow.export.functions import DOMAIN, DOMAIN_VERSION, neuron_function
from eventflow.models.base import FlowModel
from eventflow.models.evflownet import MULTIPLE, NUM_ENCODERS, NUM_RESIDUAL_BLOCKS, EVFlowNetModel
from eventflow.models.firenet import FireNetModel
from eventflow.neurons.analog import ConvGRU, ConvLayer, ConvLeaky, ConvLeakyRecurrent, ConvRNN
from eventflow.neurons.functional import MIN_T0, MIN_T1, MIN_THRESH
from eventflow.neurons.modules import ConvALIF, ConvLIF, ConvPLIF, ConvXLIF, SpikingConv

#: Standard opset of the exported graphs and of the neuron functions (onnxruntime 1.32 runs opsets up to 23).
OPSET = 20
#: IR version written (onnx 1.16+, onnxruntime 1.17+ read it).
IR_VERSION = 10
INPUT_NAME = "event_cnt"
OUTPUT_NAME = "flow"
STATE_IN_SUFFIX = "_in"
STATE_OUT_SUFFIX = "_out"

_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}


class UnsupportedModelError(ValueError):
    """The model, one of its layers or one of its settings has no ONNX export; the message lists what has."""


# ------------------------------------------------------------------------------------------------- the graph


class _Graph:
    """Nodes and initialisers of the graph being built, with readable unique value names."""

    def __init__(self, reserved: tuple[str, ...] = ()):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.custom_ops: set[str] = set()
        self._names: set[str] = set(reserved)  # names given elsewhere (graph inputs and outputs)

    def _unique(self, name: str) -> str:
        out, k = name, 1
        while out in self._names:
            k += 1
            out = f"{name}_{k}"
        self._names.add(out)
        return out

    def tensor(self, name: str, value: Tensor | np.ndarray) -> str:
        """An initialiser (float32 for tensors, the array's dtype for arrays)."""
        array = value.detach().cpu().float().numpy() if isinstance(value, Tensor) else np.asarray(value)
        name = self._unique(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, outputs: list[str] | None = None, domain: str = "",
           **attrs) -> str:
        """Add a node; returns its (first) output, named ``name`` unless ``outputs`` are given."""
        outputs = outputs or [self._unique(name)]
        for out in outputs:
            self._names.add(out)
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self._unique(f"{name}/{op_type}"),
                                           domain=domain, **attrs))
        if domain == DOMAIN:
            self.custom_ops.add(op_type)
        return outputs[0]

    def conv(self, x: str, conv: nn.Conv2d, prefix: str) -> str:
        """``Conv`` with the module's weight (and bias), stride and padding."""
        if conv.groups != 1 or conv.dilation != (1, 1) or not isinstance(conv.padding, tuple):
            raise UnsupportedModelError(f"{prefix}: only plain convolutions (groups 1, dilation 1, integer "
                                        "padding) are exported")
        inputs = [x, self.tensor(f"{prefix}.weight", conv.weight)]
        if conv.bias is not None:
            inputs.append(self.tensor(f"{prefix}.bias", conv.bias))
        ph, pw = conv.padding
        return self.op("Conv", inputs, prefix, kernel_shape=list(conv.kernel_size), strides=list(conv.stride),
                       pads=[ph, pw, ph, pw])

    def activation(self, x: str, name: str | None, prefix: str) -> str:
        return x if name is None else self.op(_ACTIVATIONS[name], [x], f"{prefix}.{name}")

    def leaky(self, v_in: str, beta: str, drive: str, prefix: str, out: str | None = None) -> str:
        """``(v_in * beta) + ((1 - beta) * drive)`` (:func:`eventflow.neurons.functional.leaky_integrate`)."""
        one = self.tensor(f"{prefix}.one", np.ones((), np.float32))
        decayed = self.op("Mul", [v_in, beta], f"{prefix}.decayed")
        scaled = self.op("Mul", [self.op("Sub", [one, beta], f"{prefix}.one_minus_beta"), drive], f"{prefix}.drive")
        return self.op("Add", [decayed, scaled], f"{prefix}.v", outputs=None if out is None else [out])


def _state_names(path: str, layer: nn.Module) -> tuple[list[str], list[str]]:
    """Graph input and output names of a layer's state fields (``G1_v_in``, ...; as ``state_spec``)."""
    base = path.replace(".", "_")
    return ([f"{base}_{f}{STATE_IN_SUFFIX}" for f in layer.State._fields],
            [f"{base}_{f}{STATE_OUT_SUFFIX}" for f in layer.State._fields])


# -------------------------------------------------------------------------------------------------- layers

Emit = Callable[[_Graph, str, nn.Module, str, "str | None"], str]


def _presyn(g: _Graph, x: str, layer: SpikingConv, path: str) -> str:
    """``AvgPool_k(mean_c |x|)`` (:func:`eventflow.neurons.functional.presynaptic_activity`), ``(B, 1, H', W')``."""
    k, s, p = layer.kernel_size, layer.stride, layer.kernel_size // 2
    mean = g.op("ReduceMean", [g.op("Abs", [x], f"{path}.abs"), g.tensor(f"{path}.channel_axis", np.array([1]))],
                f"{path}.mean_abs", keepdims=1)
    return g.op("AveragePool", [mean], f"{path}.presyn", kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p],
                count_include_pad=1)


def _neuron_params(layer: SpikingConv) -> dict[str, Tensor]:
    """The folded per-channel parameters, in the operator's input order (see :mod:`.functions`)."""
    with torch.no_grad():
        if isinstance(layer, ConvLIF):
            return {"beta": torch.sigmoid(layer.leak), "theta": layer.thresh.clamp_min(MIN_THRESH)}
        if isinstance(layer, ConvPLIF):
            return {"beta": torch.sigmoid(layer.leak_v), "beta_pt": torch.sigmoid(layer.leak_pt),
                    "gain": torch.sigmoid(layer.add_pt), "theta": layer.thresh.clamp_min(MIN_THRESH)}
        thresholds = {"t0": layer.t0.clamp_min(MIN_T0), "t1": layer.t1.clamp_min(MIN_T1)}
        if isinstance(layer, ConvALIF):
            return {"beta": torch.sigmoid(layer.leak_v), "beta_t": torch.sigmoid(layer.leak_t), **thresholds}
        return {"beta": torch.sigmoid(layer.leak_v), "beta_pt": torch.sigmoid(layer.leak_pt), **thresholds}


def _spiking(g: _Graph, path: str, layer: SpikingConv, x: str, residual: str | None) -> str:
    """Current ``W_ff * x (+ W_rec * z_in)``, then ONE ``eventflow.<NEURON>`` node; output its spikes
    (``+ residual``)."""
    state_in, state_out = _state_names(path, layer)
    current = g.conv(x, layer.ff, f"{path}.ff")
    if layer.recurrent:
        current = g.op("Add", [current, g.conv(state_in[1], layer.rec, f"{path}.rec")], f"{path}.current")
    presyn = [_presyn(g, x, layer, path)] if isinstance(layer, ConvPLIF | ConvXLIF) else []
    params = [g.tensor(f"{path}.{name}", value) for name, value in _neuron_params(layer).items()]
    op_type = layer.neuron.upper()
    g.op(op_type, [current, *presyn, *state_in, *params], path, outputs=state_out, domain=DOMAIN,
         hard_reset=int(layer.hard_reset))
    z = state_out[1]
    return z if residual is None else g.op("Add", [z, residual], f"{path}.residual")


def _conv_layer(g: _Graph, path: str, layer: ConvLayer, x: str, residual: str | None) -> str:
    out = g.conv(x, layer.conv, f"{path}.conv")
    if residual is not None:
        out = g.op("Add", [out, residual], f"{path}.residual")
    return g.activation(out, layer.activation, path)


def _gru(g: _Graph, path: str, layer: ConvGRU, x: str, residual: str | None) -> str:
    """``h_t = h (1 - u) + tanh(W_o * [x, r h]) u``, ``u``, ``r`` sigmoid gates of ``[x, h]``."""
    (h,), (h_out,) = _state_names(path, layer)
    stacked = g.op("Concat", [x, h], f"{path}.stacked", axis=1)  # (B, C_in + C_h, H, W)
    update = g.op("Sigmoid", [g.conv(stacked, layer.update_gate, f"{path}.update_gate")], f"{path}.update")
    reset = g.op("Sigmoid", [g.conv(stacked, layer.reset_gate, f"{path}.reset_gate")], f"{path}.reset")
    gated = g.op("Concat", [x, g.op("Mul", [h, reset], f"{path}.h_reset")], f"{path}.gated", axis=1)
    candidate = g.op("Tanh", [g.conv(gated, layer.out_gate, f"{path}.out_gate")], f"{path}.candidate")
    one = g.tensor(f"{path}.one", np.ones((), np.float32))
    keep = g.op("Mul", [h, g.op("Sub", [one, update], f"{path}.one_minus_update")], f"{path}.keep")
    return g.op("Add", [keep, g.op("Mul", [candidate, update], f"{path}.new")], path, outputs=[h_out])


def _rnn(g: _Graph, path: str, layer: ConvRNN, x: str, residual: str | None) -> str:
    """``h_t = tanh(W_ff * x + W_rec * h)``, output ``relu(W_out * h_t)``."""
    (h,), (h_out,) = _state_names(path, layer)
    pre = g.op("Add", [g.conv(x, layer.ff, f"{path}.ff"), g.conv(h, layer.rec, f"{path}.rec")], f"{path}.pre")
    g.op("Tanh", [pre], path, outputs=[h_out])
    return g.op("Relu", [g.conv(h_out, layer.out, f"{path}.out")], f"{path}.relu")


def _leaky(g: _Graph, path: str, layer: ConvLeaky, x: str, residual: str | None) -> str:
    """``v_t = beta v + (1 - beta) (W * x + b [+ residual])``, output ``act(v_t)``."""
    (v,), (v_out,) = _state_names(path, layer)
    current = g.conv(x, layer.ff, f"{path}.ff")
    if residual is not None:
        current = g.op("Add", [current, residual], f"{path}.residual")
    beta = g.tensor(f"{path}.beta", torch.sigmoid(layer.leak))
    g.leaky(v, beta, current, path, out=v_out)
    return g.activation(v_out, layer.activation, path)


def _leaky_rec(g: _Graph, path: str, layer: ConvLeakyRecurrent, x: str, residual: str | None) -> str:
    """``v_t = tanh(beta v + (1 - beta) (W_ff * x + W_rec * v))``, output ``relu(W_out * v_t)``."""
    (v,), (v_out,) = _state_names(path, layer)
    pre = g.op("Add", [g.conv(x, layer.ff, f"{path}.ff"), g.conv(v, layer.rec, f"{path}.rec")], f"{path}.pre")
    beta = g.tensor(f"{path}.beta", torch.sigmoid(layer.leak))
    g.op("Tanh", [g.leaky(v, beta, pre, f"{path}.leaky")], path, outputs=[v_out])
    return g.op("Relu", [g.conv(v_out, layer.out, f"{path}.out")], f"{path}.relu")


#: Layer class -> emitter (subclasses included: the recurrent spiking layers derive from the feed-forward ones).
LAYER_EMITTERS: dict[type[nn.Module], Emit] = {
    SpikingConv: _spiking,
    ConvLayer: _conv_layer,
    ConvGRU: _gru,
    ConvRNN: _rnn,
    ConvLeaky: _leaky,
    ConvLeakyRecurrent: _leaky_rec,
}


def _emit(g: _Graph, model: FlowModel, path: str, x: str, residual: str | None = None) -> str:
    layer = model.get_submodule(path)
    for cls, emit in LAYER_EMITTERS.items():
        if isinstance(layer, cls):
            if residual is not None and emit in (_gru, _rnn, _leaky_rec):
                raise UnsupportedModelError(f"{model.config.name}: {path}: {cls.__name__} takes no residual")
            return emit(g, path, layer, x, residual)
    raise UnsupportedModelError(
        f"{model.config.name}: layer {path!r} is a {type(layer).__name__}, which has no ONNX export; supported "
        f"layers: {', '.join(c.__name__ for c in LAYER_EMITTERS)} (and their subclasses)")


# ---------------------------------------------------------------------------------------------- topologies


def _firenet(g: _Graph, model: FireNetModel, x: str) -> str:
    for name in model.chain:
        x = _emit(g, model, name, x)  # (B, C, H, W)
    return _emit(g, model, "pred", x)  # (B, 2, H, W)


def _centred_padding(g: _Graph, x: str) -> tuple[str, str, str]:
    """``(before, after, size)`` int64 ``[2]`` values: the padding of ``x``'s ``(H, W)`` to multiples of 16, odd
    pixel before (:func:`eventflow.models.evflownet.centred_padding`), and ``(H, W)`` itself."""
    size = g.op("Slice", [g.op("Shape", [x], "input_shape"), g.tensor("hw_start", np.array([2])),
                          g.tensor("hw_end", np.array([4]))], "input_hw")
    multiple = g.tensor("pad_multiple", np.array(MULTIPLE))
    remainder = g.op("Mod", [size, multiple], "pad_remainder")
    diff = g.op("Mod", [g.op("Sub", [multiple, remainder], "pad_to_next"), multiple], "pad_total")
    before = g.op("Div", [g.op("Add", [diff, g.tensor("one_i64", np.array(1))], "pad_total_plus_one"),
                          g.tensor("two_i64", np.array(2))], "pad_before")
    return before, g.op("Sub", [diff, before], "pad_after"), size


def _evflownet(g: _Graph, model: EVFlowNetModel, x: str) -> str:
    pad = model.config.pad_input
    if pad:
        before, after, size = _centred_padding(g, x)
        zeros = g.tensor("pad_zeros", np.zeros(2, np.int64))
        pads = g.op("Concat", [zeros, before, zeros, after], "pads", axis=0)  # (0, 0, top, left, 0, 0, bottom, right)
        x = g.op("Pad", [x, pads], "padded_input", mode="constant")
    skips = []
    for i in range(NUM_ENCODERS):
        x = _emit(g, model, f"encoders.{i}", x)  # (B, 2^(i+1) C, H / 2^(i+1), W / 2^(i+1))
        if len(model.recurrent):
            x = _emit(g, model, f"recurrent.{i}", x)
        skips.append(x)
    for i in range(NUM_RESIDUAL_BLOCKS):
        y = _emit(g, model, f"resblocks.{i}.conv1", x)
        x = _emit(g, model, f"resblocks.{i}.conv2", y, residual=x)  # (B, 16C, H/16, W/16)
    scales = g.tensor("upsample_scales", np.array([1, 1, 2, 2], np.float32))
    pred = None
    for i in range(NUM_ENCODERS):
        parts = ([] if pred is None else [pred]) + [x, skips[NUM_ENCODERS - 1 - i]]
        x = g.op("Concat", parts, f"decoders.{i}.input", axis=1)
        # bilinear x2, align_corners=False (torch's F.interpolate(scale_factor=2, mode="bilinear"))
        x = g.op("Resize", [x, "", scales], f"decoders.{i}.upsampled", mode="linear",
                 coordinate_transformation_mode="half_pixel")
        x = _emit(g, model, f"decoders.{i}", x)  # (B, 2^(3-i) C, H / 2^(3-i), W / 2^(3-i))
        pred = _emit(g, model, f"preds.{i}", x)  # (B, 2, H / 2^(3-i), W / 2^(3-i))
    if pad:
        end = g.op("Add", [before, size], "crop_end")
        pred = g.op("Slice", [pred, before, end, g.tensor("crop_axes", np.array([2, 3]))], "cropped_flow")
    return pred


#: Model class -> graph of its topology (returns the flow value).
TOPOLOGIES: dict[type[FlowModel], Callable[[_Graph, FlowModel, str], str]] = {
    FireNetModel: _firenet,
    EVFlowNetModel: _evflownet,
}


# -------------------------------------------------------------------------------------------------- export


def _check_model(model: FlowModel) -> Callable[[_Graph, FlowModel, str], str]:
    if not isinstance(model, FlowModel):
        raise UnsupportedModelError(f"export_onnx needs an eventflow FlowModel (eventflow.models.build_model), got "
                                    f"{type(model).__name__}")
    topology = TOPOLOGIES.get(type(model))
    if topology is None:
        raise UnsupportedModelError(f"{type(model).__name__} has no ONNX export; supported model classes: "
                                    f"{', '.join(c.__name__ for c in TOPOLOGIES)} (every name of MODEL_REGISTRY)")
    if model.config.norm_input:
        raise UnsupportedModelError(f"{model.config.name}: norm_input=True (per-batch statistics of the non-zero "
                                    "inputs) has no ONNX export; normalise the input outside the graph and export "
                                    "with norm_input=False")
    dtypes = {p.dtype for p in model.state_dict().values() if p.is_floating_point()}
    if dtypes != {torch.float32}:
        raise UnsupportedModelError(f"{model.config.name}: export needs float32 parameters, got "
                                    f"{', '.join(sorted(str(d) for d in dtypes))}; call model.float() first")
    return topology


def _symbolic_dims(model: FlowModel, height: int, width: int, shape: tuple[int, ...], state: bool) -> list:
    """Dimensions of a graph input/output of ``shape`` at the export resolution: batch ``"batch"``, the spatial
    axes named by their ratio to the network's grid (``height``, ``height_div4``; ``padded_height_div4`` for
    the states of a model that pads its input: ``padded_height = 16 ceil(height / 16)``)."""
    padding = state and isinstance(model, EVFlowNetModel) and model.config.pad_input
    grid = model.padded_size(height, width) if isinstance(model, EVFlowNetModel) else (height, width)
    dims: list[int | str] = ["batch", shape[1]]
    for size, full, label in ((shape[2], grid[0], "height"), (shape[3], grid[1], "width")):
        ratio = full // size
        dims.append(("padded_" if padding else "") + label + (f"_div{ratio}" if ratio > 1 else ""))
    return dims


def export_onnx(model: FlowModel, path: str | os.PathLike | None = None, *, height: int = 180, width: int = 240,
                custom_ops: bool = True, dynamic: bool = True, opset: int = OPSET) -> onnx.ModelProto:
    """Export one time step of ``model`` with explicit state (see the module docstring).

    Args:
        model: a float32 :class:`~eventflow.models.FlowModel` (weights as they are; eval/train mode is irrelevant).
        path: where to write the ``.onnx`` file (atomically); None: only return the model.
        height, width: the sensor resolution the graph is checked at (and fixed to with ``dynamic=False``);
            the EV-FlowNet family needs multiples of 16 unless the model pads its input.
        custom_ops: one ``eventflow.LIF``/``PLIF``/``ALIF``/``XLIF`` node per spiking layer with model-local
            functions (True), or those functions inlined into standard operators (False).
        dynamic: symbolic batch, height and width (True) or the fixed shapes ``(1, C, height, width)``.
        opset: the standard opset (18 or newer: ``ReduceMean`` takes its axes as an input).

    Returns:
        The checked :class:`onnx.ModelProto` (``onnx.checker`` with full shape inference).

    Raises:
        UnsupportedModelError: a model, layer or setting without an export (the message lists what is supported).
        ValueError: a resolution the model cannot run at.
    """
    topology = _check_model(model)
    if opset < 18:
        raise ValueError(f"export_onnx: opset {opset} is too old; use 18 or newer (ReduceMean with axes input)")
    spec = model.state_spec(1, height, width)  # validates the resolution
    num_bins = model.config.num_bins

    def value_info(name: str, shape: tuple[int, ...], state: bool = False) -> onnx.ValueInfoProto:
        dims = _symbolic_dims(model, height, width, shape, state) if dynamic else list(shape)
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)

    g = _Graph(reserved=(INPUT_NAME, OUTPUT_NAME))
    flow = topology(g, model, INPUT_NAME)
    g.nodes.append(helper.make_node("Identity", [flow], [OUTPUT_NAME], name="flow/Identity"))

    inputs = [value_info(INPUT_NAME, (1, num_bins, height, width))]
    outputs = [value_info(OUTPUT_NAME, (1, 2, height, width))]
    for s in spec:
        inputs.append(value_info(s.name + STATE_IN_SUFFIX, s.shape, state=True))
        outputs.append(value_info(s.name + STATE_OUT_SUFFIX, s.shape, state=True))
    graph = helper.make_graph(g.nodes, f"{model.config.name}_step", inputs, outputs, g.initializers,
                              doc_string=f"One time step of {model.config.name}: event_cnt and the state *_in -> "
                                         "flow and the state *_out; zeros are the initial state.")
    opsets = [helper.make_opsetid("", opset)]
    if g.custom_ops:
        opsets.append(helper.make_opsetid(DOMAIN, DOMAIN_VERSION))
    proto = helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION, producer_name="eventflow",
                              producer_version=eventflow.__version__,
                              functions=[neuron_function(op, opset) for op in sorted(g.custom_ops)])
    pad_multiple = MULTIPLE if isinstance(model, EVFlowNetModel) and model.config.pad_input else 1
    helper.set_model_props(proto, {
        "eventflow.model": model.config.name,
        "eventflow.config": json.dumps(to_dict(model.config)),
        "eventflow.state": json.dumps([s.name for s in spec]),
        "eventflow.pad_multiple": str(pad_multiple),
        "eventflow.custom_ops": str(int(custom_ops)),
    })
    if not custom_ops and g.custom_ops:
        proto = plain_operators(proto)
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        save_onnx(proto, path)
    return proto


def plain_operators(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` with the ``eventflow`` neuron nodes replaced by the standard operators of their functions."""
    out = onnx.inliner.inline_local_functions(proto)
    del out.functions[:]
    kept = [o for o in out.opset_import if o.domain != DOMAIN]
    del out.opset_import[:]
    out.opset_import.extend(kept)
    return out


def save_onnx(proto: onnx.ModelProto, path: str | os.PathLike) -> Path:
    """Write ``proto`` to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        onnx.save(proto, tmp)
    return path


# ------------------------------------------------------------------------------------------------ shapes


_DIM = re.compile(r"^(padded_)?(height|width)(?:_div(\d+))?$")


def state_shapes(proto: onnx.ModelProto, batch: int, height: int, width: int) -> dict[str, tuple[int, ...]]:
    """Shapes of the state tensors (names without ``_in``) for inputs ``(batch, C, height, width)``, from the graph's
    input shapes: fixed dimensions as they are, symbolic ones (``batch``, ``height``, ``padded_height_div4``, ...)
    resolved with the metadata ``eventflow.pad_multiple``."""
    props = {p.key: p.value for p in proto.metadata_props}
    multiple = int(props.get("eventflow.pad_multiple", "1"))
    sizes = {"height": height, "width": width}
    padded = {k: -(-v // multiple) * multiple for k, v in sizes.items()}
    shapes = {}
    for inp in proto.graph.input:
        if not inp.name.endswith(STATE_IN_SUFFIX):
            continue
        dims = []
        for d in inp.type.tensor_type.shape.dim:
            if d.HasField("dim_value"):
                dims.append(d.dim_value)
            elif d.dim_param == "batch":
                dims.append(batch)
            else:
                m = _DIM.match(d.dim_param)
                if m is None:
                    raise ValueError(f"{inp.name}: unknown symbolic dimension {d.dim_param!r} (not an eventflow "
                                     "export?)")
                size = (padded if m.group(1) else sizes)[m.group(2)]
                dims.append(size // int(m.group(3) or 1))
        shapes[inp.name[: -len(STATE_IN_SUFFIX)]] = tuple(dims)
    return shapes


# ------------------------------------------------------------------------------------------------ inspect


def describe_graph(proto: onnx.ModelProto) -> str:
    """A readable summary of an exported graph: inputs and outputs with their shapes, node counts by operator,
    and every ``eventflow`` neuron node with its inputs, outputs and attributes.

    >>> from eventflow.models import build_model
    >>> print(describe_graph(export_onnx(build_model("LIFFireNet_short", base_num_channels=4), height=8, width=8))
    ...       .splitlines()[0])
    LIFFireNet_short_step: 17 nodes, 5 eventflow neuron nodes, 1 local functions, 11 inputs, 11 outputs
    """

    def shape(value: onnx.ValueInfoProto) -> str:
        return "(" + ", ".join(d.dim_param or str(d.dim_value) for d in value.type.tensor_type.shape.dim) + ")"

    nodes = proto.graph.node
    neurons = [n for n in nodes if n.domain == DOMAIN]
    counts: dict[str, int] = {}
    for n in nodes:
        key = f"{n.domain}.{n.op_type}" if n.domain else n.op_type
        counts[key] = counts.get(key, 0) + 1
    lines = [f"{proto.graph.name}: {len(nodes)} nodes, {len(neurons)} eventflow neuron nodes, "
             f"{len(proto.functions)} local functions, {len(proto.graph.input)} inputs, {len(proto.graph.output)} "
             "outputs",
             "inputs:  " + ", ".join(f"{v.name} {shape(v)}" for v in proto.graph.input[:3]) +
             (", ..." if len(proto.graph.input) > 3 else ""),
             "outputs: " + ", ".join(f"{v.name} {shape(v)}" for v in proto.graph.output[:3]) +
             (", ..." if len(proto.graph.output) > 3 else ""),
             "operators: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))]
    for n in neurons:
        attrs = ", ".join(f"{a.name}={helper.get_attribute_value(a)}" for a in n.attribute)
        lines.append(f"  {n.name}: {n.op_type}({', '.join(n.input)}) -> {', '.join(n.output)} [{attrs}]")
    for f in proto.functions:
        lines.append(f"function {f.domain}.{f.name}: {len(f.node)} standard nodes "
                     f"({', '.join(sorted({n.op_type for n in f.node}))})")
    return "\n".join(lines)
