"""Integer ONNX export of a quantised spiking FireNet: 8-bit convolutions, integer state, the fixed-point LIF.

One time step with explicit state, as :mod:`eventflow.export.onnx` (same input, output and state names:
``event_cnt``, ``flow``, ``<layer>_<field>_in`` / ``_out``), with the arithmetic of the quantised PyTorch model
(:mod:`eventflow.quantize.layers`, :mod:`eventflow.quantize.lif`):

- the input counts: ``QuantizeLinear`` onto the head's input grid (uint8, saturated at the format's maximum);
- every LIF layer: ``QLinearConv`` (uint8 spikes or counts, int8 per-channel weights; a recurrent layer
  convolves ``Concat(x, z_in)`` with ``[W_ff, W_rec]``) giving the current on its grid (uint8 with zero point
  128, i.e. the signed integers plus 128), ``DequantizeLinear`` of the current and of the int8 potential
  ``v_in``, ONE ``eventflow.LIF`` node (the custom operator of the float export, defined by its model-local
  function: the float LIF core, exact on these grid values), ``QuantizeLinear`` of the new potential (round half
  to even, saturate) and ``Cast`` of the spikes to uint8;
- the prediction layer: ``ConvInteger`` (int32 accumulator) plus the int32 bias, times ``s_in s_w,c``, then
  ``Tanh`` (or ``QLinearConv`` and ``DequantizeLinear`` when its output is requantised);
- widths below 8 bits add a ``Clip`` to their range.

Activations are unsigned because onnxruntime's x86 kernels for uint8 activations with int8 weights are
far faster than those for int8 activations (benchmarks/RESULTS.md). State tensors: ``<layer>_v`` int8 holds
``v_q`` (``v = v_q 2^-frac``; the formats are in the metadata ``eventflow.quantization``), ``<layer>_z`` uint8
the spikes 0/1.

Parity (tests/test_quantize.py): spikes and states equal the PyTorch model's bit for bit (every intermediate is
an integer below 2^24, so float32 and integer arithmetic agree; onnxruntime's ``QLinearConv`` rounds its float
multiplier half to even as :func:`~eventflow.quantize.layers.quantized_conv` does), and the flow agrees to
:data:`FLOW_TOLERANCE` (only ``Tanh`` may differ, in the last bit).

>>> from eventflow.models import build_model
>>> from eventflow.quantize.config import QuantConfig
>>> from eventflow.quantize.model import default_model_formats, quantize_model
>>> model = build_model("LIFFireNet_short", base_num_channels=4)
>>> qmodel = quantize_model(model, default_model_formats(model, QuantConfig()))
>>> proto = export_int8_onnx(qmodel, height=8, width=8)
>>> sorted({n.op_type for n in proto.graph.node})
['Add', 'Cast', 'Clip', 'Concat', 'ConvInteger', 'DequantizeLinear', 'Identity', 'LIF', 'Mul', 'QLinearConv', \
'QuantizeLinear', 'Tanh']
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

import eventflow
from eventflow.config import to_dict
from eventflow.export.functions import DOMAIN, DOMAIN_VERSION, neuron_function
from eventflow.export.onnx import (
    INPUT_NAME,
    IR_VERSION,
    OPSET,
    OUTPUT_NAME,
    STATE_IN_SUFFIX,
    STATE_OUT_SUFFIX,
    UnsupportedModelError,
    save_onnx,
)
from eventflow.models.base import FlowModel
from eventflow.models.firenet import FireNetModel
from eventflow.quantize.fixed_point import FixedPoint, quantize_weight, to_integer
from eventflow.quantize.layers import ConvInput, QuantizedConvLayer, QuantizedLIF, conv_weight_scale, formats_to_dict
from eventflow.quantize.lif import quantized_lif_parameters
from eventflow.quantize.model import is_quantized, model_formats
from eventflow.windows import WindowSpec

#: Largest difference between the flow of onnxruntime and of PyTorch (tanh units): ``Tanh`` implementations
#: may differ in the last bits; everything before it is bit-exact.
FLOW_TOLERANCE = 1e-6

State = dict[str, np.ndarray]


class _Graph:
    """Nodes and initialisers of the graph being built."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str, domain: str = "", outputs: list[str] | None = None,
           **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, outputs or [output], name=f"{output}/{op_type}",
                                           domain=domain, **attrs))
        return output

    def grid(self, prefix: str, fmt: FixedPoint, storage: type = np.int8) -> tuple[str, str]:
        """Scale ``2^-frac`` (float32 scalar) and zero point of ``fmt`` stored as ``storage``: int8 with zero
        point 0, or uint8 with zero point 128 (signed values) or 0 (``fmt`` unsigned or non-negative data)."""
        zero = 128 if storage is np.uint8 and fmt.signed else 0
        return (self.const(f"{prefix}.scale", np.array(fmt.scale, np.float32)),
                self.const(f"{prefix}.zero_point", np.array(zero, storage)))

    def clip(self, x: str, lo: int, hi: int, storage: type, out: str, named: bool = False) -> str:
        """``x`` clipped to the stored integers ``[lo, hi]``; nothing to clip when that is the storage type's
        whole range (``named``: still give the result the name ``out``)."""
        info = np.iinfo(storage)
        if (lo, hi) == (info.min, info.max):
            return self.op("Identity", [x], out) if named else x
        return self.op("Clip", [x, self.const(f"{out}.min", np.array(lo, storage)),
                                self.const(f"{out}.max", np.array(hi, storage))], out)


def _check(qmodel: FlowModel) -> None:
    if not isinstance(qmodel, FireNetModel) or not is_quantized(qmodel):
        raise UnsupportedModelError("integer ONNX export takes a quantised FireNet-family model "
                                    "(eventflow.quantize.ptq / qat of e.g. LIFFireNet)")
    if qmodel.config.norm_input or qmodel.config.encoding != "cnt":
        raise UnsupportedModelError(f"{qmodel.config.name}: the integer export takes event counts (encoding 'cnt', "
                                    "norm_input=False)")
    layers = qmodel.layers()
    for name in qmodel.chain:
        if not isinstance(layers[name], QuantizedLIF):
            raise UnsupportedModelError(f"{qmodel.config.name}: layer {name!r} is a {type(layers[name]).__name__}; "
                                        "the integer export covers spiking LIF layers and a convolutional "
                                        "prediction layer (LIFFireNet, LIFFireNet_short, LIFFireFlowNet...)")
    for name, layer in layers.items():
        fmt = layer.formats
        stored = [getattr(fmt, f) for f in ("input", "current", "v", "output") if f in fmt._fields]
        wide = [f for f in stored if f is not None and f.bits > 8]  # beta, theta: float constants of the graph
        if wide:
            raise UnsupportedModelError(f"{name}: the integer export stores int8 tensors; {wide[0].bits}-bit "
                                        "inputs, currents or potentials have none (use at most 8 bits)")
        if fmt.input.frac != 0 and name != qmodel.chain[0]:
            raise UnsupportedModelError(f"{name}: its input (spikes) must be on the unit grid, got frac "
                                        f"{fmt.input.frac}")


def _weights(g: _Graph, prefix: str, inputs: list[ConvInput], bits: int, with_scale: bool = True) -> list[str]:
    """int8 weights (inputs concatenated along C_in) and, ``with_scale``, their float32 per-channel scales and
    int8 zero points (``QLinearConv``'s ``w, w_scale, w_zero_point``)."""
    scale = conv_weight_scale(inputs, bits)
    w_q = torch.cat([quantize_weight(i.weight, scale, bits) for i in inputs], dim=1)
    out = [g.const(f"{prefix}.weight", w_q.detach().numpy().astype(np.int8))]
    if with_scale:
        out += [g.const(f"{prefix}.weight_scale", scale.numpy().astype(np.float32)),
                g.const(f"{prefix}.weight_zero_point", np.zeros(scale.numel(), np.int8))]
    return out


def _lif(g: _Graph, name: str, layer: QuantizedLIF, x: str) -> str:
    """The LIF layer on uint8 input ``x`` (spikes or counts); returns its uint8 spikes."""
    fmt = layer.formats
    base = name.replace(".", "_")
    v_in, z_in = f"{base}_v{STATE_IN_SUFFIX}", f"{base}_z{STATE_IN_SUFFIX}"
    v_out, z_out = f"{base}_v{STATE_OUT_SUFFIX}", f"{base}_z{STATE_OUT_SUFFIX}"
    inputs = layer.conv_inputs(torch.empty(0), torch.empty(0))
    conv_in = g.op("Concat", [x, z_in], f"{name}.conv_input", axis=1) if layer.recurrent else x
    weights = _weights(g, name, inputs, fmt.weight_bits)
    x_scale, x_zero = g.grid(f"{name}.input", fmt.input._replace(signed=False), np.uint8)
    i_scale, i_zero = g.grid(f"{name}.current", fmt.current, np.uint8)  # zero point 128: signed values
    k, pad = layer.kernel_size, layer.kernel_size // 2
    current = g.op("QLinearConv", [conv_in, x_scale, x_zero, *weights, i_scale, i_zero], f"{name}.current.uint8",
                   kernel_shape=[k, k], pads=[pad] * 4, strides=[layer.stride] * 2)
    current = g.clip(current, 128 + fmt.current.qmin, 128 + fmt.current.qmax, np.uint8, f"{name}.current.clipped")
    current = g.op("DequantizeLinear", [current, i_scale, i_zero], f"{name}.current")
    v_scale, v_zero = g.grid(f"{name}.v", fmt.v)
    v = g.op("DequantizeLinear", [v_in, v_scale, v_zero], f"{name}.v_in")
    z = g.op("Cast", [z_in], f"{name}.z_in", to=TensorProto.FLOAT)
    with torch.no_grad():
        beta, theta = quantized_lif_parameters(layer.neuron_params(), fmt.lif)
    beta = g.const(f"{name}.beta", beta.numpy().astype(np.float32))
    theta = g.const(f"{name}.theta", theta.numpy().astype(np.float32))
    u, spikes = f"{name}.u", f"{name}.z"
    g.op("LIF", [current, v, z, beta, theta], u, domain=DOMAIN, outputs=[u, spikes], hard_reset=int(layer.hard_reset))
    v_q = g.op("QuantizeLinear", [u, v_scale, v_zero], f"{name}.v.int8")
    g.clip(v_q, fmt.v.qmin, fmt.v.qmax, np.int8, v_out, named=True)
    return g.op("Cast", [spikes], z_out, to=TensorProto.UINT8)


def _prediction(g: _Graph, name: str, layer: QuantizedConvLayer, x: str) -> str:
    fmt, conv = layer.formats, layer.conv
    inputs = [ConvInput(torch.empty(0), fmt.input, conv.weight, 1, 0)]
    weights = _weights(g, name, inputs, fmt.weight_bits, with_scale=fmt.output is not None)
    k, pad = conv.kernel_size[0], conv.padding[0]
    attrs = dict(kernel_shape=[k, k], pads=[pad] * 4, strides=list(conv.stride))
    acc_scale = (2.0**-fmt.input.frac * conv_weight_scale(inputs, fmt.weight_bits)).float()  # (C_out,)
    bias = None
    if conv.bias is not None:
        bias = torch.round(conv.bias.detach() / acc_scale).numpy().astype(np.int32)
    if fmt.output is None:
        acc = g.op("ConvInteger", [x, weights[0]], f"{name}.acc", **attrs)
        if bias is not None:
            acc = g.op("Add", [acc, g.const(f"{name}.bias", bias.reshape(1, -1, 1, 1))], f"{name}.acc_bias")
        acc = g.op("Cast", [acc], f"{name}.acc_float", to=TensorProto.FLOAT)
        scale = g.const(f"{name}.acc_scale", acc_scale.numpy().reshape(1, -1, 1, 1))
        pre = g.op("Mul", [acc, scale], f"{name}.pre")
    else:
        x_scale, x_zero = g.grid(f"{name}.input", fmt.input._replace(signed=False), np.uint8)
        o_scale, o_zero = g.grid(f"{name}.output", fmt.output, np.uint8)
        args = [x, x_scale, x_zero, *weights, o_scale, o_zero]
        if bias is not None:
            args.append(g.const(f"{name}.bias", bias))
        out = g.op("QLinearConv", args, f"{name}.out.uint8", **attrs)
        out = g.clip(out, 128 + fmt.output.qmin, 128 + fmt.output.qmax, np.uint8, f"{name}.out.clipped")
        pre = g.op("DequantizeLinear", [out, o_scale, o_zero], f"{name}.pre")
    if layer.activation is None:
        return pre
    return g.op({"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu"}[layer.activation], [pre], f"{name}.out")


def export_int8_onnx(qmodel: FlowModel, path: str | os.PathLike | None = None, *, height: int = 180,
                     width: int = 240, opset: int = OPSET) -> onnx.ModelProto:
    """Export one time step of quantised ``qmodel`` (a spiking FireNet, at most 8-bit tensors) as an integer
    ONNX graph (module docstring); batch, height and width are symbolic, checked at ``height x width``.
    Written atomically to ``path`` when given. Raises :class:`~eventflow.export.onnx.UnsupportedModelError`
    for other models."""
    _check(qmodel)
    qmodel = copy.deepcopy(qmodel).cpu()
    spec = qmodel.state_spec(1, height, width)
    g = _Graph()
    layers = qmodel.layers()
    head = layers[qmodel.chain[0]].formats.input  # counts >= 0: uint8 with zero point 0, saturated at qmax
    scale, zero = g.grid("input", head._replace(signed=False), np.uint8)
    x = g.op("QuantizeLinear", [INPUT_NAME, scale, zero], "input.uint8")
    x = g.clip(x, 0, head.qmax, np.uint8, "input.clipped")
    with torch.no_grad():
        for name in qmodel.chain:
            x = _lif(g, name, layers[name], x)
        flow = _prediction(g, "pred", layers["pred"], x)
    g.op("Identity", [flow], OUTPUT_NAME)

    def info(name: str, dtype: int, channels: int) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, dtype, ["batch", channels, "height", "width"])

    inputs = [info(INPUT_NAME, TensorProto.FLOAT, qmodel.config.num_bins)]
    outputs = [info(OUTPUT_NAME, TensorProto.FLOAT, 2)]
    for s in spec:
        dtype = TensorProto.UINT8 if s.name.endswith("_z") else TensorProto.INT8
        inputs.append(info(s.name + STATE_IN_SUFFIX, dtype, s.shape[1]))
        outputs.append(info(s.name + STATE_OUT_SUFFIX, dtype, s.shape[1]))
    graph = helper.make_graph(g.nodes, f"{qmodel.config.name}_int8_step", inputs, outputs, g.initializers,
                              doc_string="One time step of the quantised model: event_cnt and the integer state "
                                         "*_in -> flow and the integer state *_out; zeros are the initial state.")
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                    helper.make_opsetid(DOMAIN, DOMAIN_VERSION)],
                              ir_version=IR_VERSION, producer_name="eventflow", producer_version=eventflow.__version__,
                              functions=[neuron_function("LIF", opset)])
    helper.set_model_props(proto, {
        "eventflow.model": qmodel.config.name,
        "eventflow.config": json.dumps(to_dict(qmodel.config)),
        "eventflow.state": json.dumps([s.name for s in spec]),
        "eventflow.quantization": json.dumps({n: formats_to_dict(f) for n, f in model_formats(qmodel).items()}),
    })
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        save_onnx(proto, path)
    return proto


# ------------------------------------------------------------------------------------------------ running


def state_to_integers(qmodel: FlowModel, state: tuple) -> State:
    """The PyTorch state of quantised ``qmodel`` (grid values) as the integer arrays of the ONNX graph, by name:
    ``<layer>_v`` int8 (``v_q``), ``<layer>_z`` uint8 (spikes)."""
    formats = model_formats(qmodel)
    out: State = {}
    for name, layer_state in zip(qmodel.state_names, state):
        base = name.replace(".", "_")
        out[f"{base}_v"] = to_integer(layer_state.v.detach(), formats[name].v).numpy().astype(np.int8)
        out[f"{base}_z"] = layer_state.z.detach().numpy().astype(np.uint8)
    return out


def state_from_integers(qmodel: FlowModel, state: State) -> tuple:
    """Inverse of :func:`state_to_integers`: the PyTorch state (float32 grid values)."""
    formats = model_formats(qmodel)
    out = []
    layers = qmodel.layers()
    for name in qmodel.state_names:
        base = name.replace(".", "_")
        v = torch.from_numpy(state[f"{base}_v"].astype(np.float32)) * formats[name].v.scale
        out.append(layers[name].State(v, torch.from_numpy(state[f"{base}_z"].astype(np.float32))))
    return tuple(out)


class Int8Stepper:
    """An integer step graph in onnxruntime (CPU): ``flow, state = stepper(event_cnt, state)`` with the state a
    dict of integer arrays by name (``head_v`` int8, ``head_z`` uint8, ...; :meth:`zero_state` to start)."""

    def __init__(self, model: onnx.ModelProto | str | os.PathLike, threads: int | None = None):
        if isinstance(model, onnx.ModelProto):
            self.proto, data = model, model.SerializeToString()
        else:
            path = Path(model)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: ONNX model not found")
            self.proto, data = onnx.load(path), path.read_bytes()
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self.state_names = [i.name[: -len(STATE_IN_SUFFIX)] for i in self.proto.graph.input if i.name != INPUT_NAME]
        self._layout = {i.name[: -len(STATE_IN_SUFFIX)]: (i.type.tensor_type.shape.dim[1].dim_value,
                                                          helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type))
                        for i in self.proto.graph.input if i.name != INPUT_NAME}
        self._outputs = [OUTPUT_NAME] + [n + STATE_OUT_SUFFIX for n in self.state_names]

    def zero_state(self, batch: int, height: int, width: int) -> State:
        return {n: np.zeros((batch, c, height, width), dtype) for n, (c, dtype) in self._layout.items()}

    def __call__(self, event_cnt: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        if event_cnt.dtype != np.float32 or event_cnt.ndim != 4:
            raise ValueError(f"{INPUT_NAME} must be a float32 (B, C, H, W) array, got {event_cnt.dtype} "
                             f"{event_cnt.shape}")
        feed = {INPUT_NAME: event_cnt, **{n + STATE_IN_SUFFIX: state[n] for n in self.state_names}}
        flow, *new = self.session.run(self._outputs, feed)
        return flow, dict(zip(self.state_names, new))


class ParityReport(NamedTuple):
    """onnxruntime against PyTorch over ``windows`` windows: the largest flow difference (tanh units), the
    number of state entries that differ (potentials and spikes; 0 = bit-exact), the spikes emitted, and whether
    both are within the documented parity (:data:`FLOW_TOLERANCE`, bit-exact state)."""

    windows: int
    max_flow_difference: float
    state_mismatches: int
    spikes: int

    @property
    def ok(self) -> bool:
        return self.state_mismatches == 0 and self.max_flow_difference <= FLOW_TOLERANCE


def onnx_parity(qmodel: FlowModel, model: onnx.ModelProto | str | os.PathLike, recording: str | os.PathLike,
                windows: int, spec: WindowSpec | None = None) -> ParityReport:
    """Run quantised ``qmodel`` and its integer ONNX graph ``model`` side by side over the first ``windows``
    windows of ``recording`` (``spec``: 15000-event windows by default), each carrying its own state, and
    compare every window's flow and state. The PyTorch model runs on the CPU (a GPU's TF32 convolutions would
    round the integer accumulators)."""
    from eventflow.inference import iter_batches, plan_recording

    spec = spec or WindowSpec("events", 15000)
    qmodel = copy.deepcopy(qmodel).cpu().eval()  # on the CPU: float32 convolutions of integers are exact there
    stepper = Int8Stepper(model)
    plan = plan_recording(recording, spec, max_windows=windows)
    state_torch, state_onnx = None, None
    worst, mismatches, spikes, count = 0.0, 0, 0, 0
    for batch in iter_batches([plan], 1, encodings=("cnt",)):
        x = batch["event_cnt"]
        if state_onnx is None:
            state_onnx = stepper.zero_state(*x.shape[:1], *x.shape[2:])
        with torch.no_grad():
            flow, state_torch = qmodel(x, state_torch)
        flow_onnx, state_onnx = stepper(x.numpy(), state_onnx)
        expected = state_to_integers(qmodel, state_torch)
        mismatches += sum(int((expected[k] != state_onnx[k]).sum()) for k in expected)
        spikes += sum(int(v.sum()) for k, v in expected.items() if k.endswith("_z"))
        worst = max(worst, float(np.abs(flow_onnx - flow.numpy()).max()))
        count += 1
    return ParityReport(count, worst, mismatches, spikes)
