"""The spiking neurons as custom ONNX operators in the ``eventflow`` domain, each defined by a model-local function.

An exported model holds one node per spiking layer, ``eventflow.LIF`` (or ``PLIF``, ``ALIF``, ``XLIF``), that a
deployment toolchain can map onto its own neuron kernel. Stock onnxruntime knows no such operator, so the model also
carries a :class:`onnx.FunctionProto` per operator that defines it with standard operators (onnxruntime inlines
it). The function bodies do the floating-point operations of :mod:`eventflow.neurons.functional` in the same order,
so the neuron update agrees with PyTorch bit for bit (only the convolutions around it round differently).

The per-channel parameters are inputs of shape ``(C, 1, 1)``, computed once by PyTorch at export
(:mod:`eventflow.export.onnx` stores them as initialisers): ``beta = sigmoid(leak)`` and ``theta = max(thresh, 0.01)``
(``t0 = max(t0, 0.01)``, ``t1 = max(t1, 0)`` for the adaptive thresholds, ``gain = sigmoid(add_pt)``). Tensors
``(B, C, H, W)`` float; spikes are 0/1 in the same dtype. ``H(x) = 1 if x > 0 else 0`` is ``Greater(x, 0)``.

========  ================================================================  ==========================  =============
operator  inputs                                                            outputs                     hard_reset
========  ================================================================  ==========================  =============
LIF       current, v_in, z_in, beta, theta                                  v_out, z_out                1 (default)
PLIF      current, presyn, v_in, z_in, pt_in, beta, beta_pt, gain, theta   v_out, z_out, pt_out        1
ALIF      current, v_in, z_in, a_in, beta, beta_t, t0, t1                   v_out, z_out, a_out         0
XLIF      current, presyn, v_in, z_in, pt_in, beta, beta_pt, t0, t1         v_out, z_out, pt_out        0
========  ================================================================  ==========================  =============

The outputs are the layer's new state in the order of its NamedTuple (:class:`~eventflow.neurons.LIFState` ...);
``z_out`` is also the layer's output. ``presyn`` ``(B, 1, H, W)`` is the presynaptic activity
``AvgPool_k(mean_c |x|)``, computed in the graph from the layer input. With ``hard_reset = 1``::

    v_out = ((v_in * beta) * (1 - z_in)) + ((1 - beta) * current)

and with ``hard_reset = 0`` (``theta_reset`` = LIF: ``theta``; ALIF/XLIF: ``t0 + t1 * a_in`` / ``t0 + t1 * pt_in``)::

    v_out = ((v_in * beta) + ((1 - beta) * current)) - (z_in * theta_reset)

then ``z_out = H(v_out - theta_t)`` with ``theta_t = theta`` (LIF, PLIF) or ``t0 + t1 * a_out`` (ALIF),
``t0 + t1 * pt_out`` (XLIF). The traces: ``pt_out = (pt_in * beta_pt) + ((1 - beta_pt) * presyn)``,
``a_out = (a_in * beta_t) + ((1 - beta_t) * z_in)``; PLIF integrates ``current - gain * pt_out``.
The function holds both reset forms as the branches of an ``If`` on the attribute: only the chosen one runs, each
with its exact operation order.

>>> fn = neuron_function("LIF", opset=20)
>>> fn.domain, fn.name, list(fn.input), list(fn.output)
('eventflow', 'LIF', ['current', 'v_in', 'z_in', 'beta', 'theta'], ['v_out', 'z_out'])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from onnx import (
    AttributeProto,
    FunctionProto,
    GraphProto,
    NodeProto,
    OperatorSetIdProto,
    TensorProto,
    TypeProto,
    helper,
)

#: Domain and version of the custom operators.
DOMAIN = "eventflow"
DOMAIN_VERSION = 1


class OperatorSignature(NamedTuple):
    """Inputs, outputs and the default of ``hard_reset`` of one custom operator."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    hard_reset: int


SIGNATURES: dict[str, OperatorSignature] = {
    "LIF": OperatorSignature(("current", "v_in", "z_in", "beta", "theta"), ("v_out", "z_out"), 1),
    "PLIF": OperatorSignature(("current", "presyn", "v_in", "z_in", "pt_in", "beta", "beta_pt", "gain", "theta"),
                              ("v_out", "z_out", "pt_out"), 1),
    "ALIF": OperatorSignature(("current", "v_in", "z_in", "a_in", "beta", "beta_t", "t0", "t1"),
                              ("v_out", "z_out", "a_out"), 0),
    "XLIF": OperatorSignature(("current", "presyn", "v_in", "z_in", "pt_in", "beta", "beta_pt", "t0", "t1"),
                              ("v_out", "z_out", "pt_out"), 0),
}


class _Body:
    """Nodes of a function body with generated intermediate names."""

    def __init__(self, like: str):
        self.nodes: list[NodeProto] = []
        self._count = 0
        # the constants 0 and 1 in the dtype of ``like`` (float32, float16, ...)
        self.one = self.op("CastLike", self.op("Constant", value_float=1.0), like)
        self.zero = self.op("CastLike", self.op("Constant", value_float=0.0), like)

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs) -> str:
        if out is None:
            self._count += 1
            out = f"tmp{self._count}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def trace(self, trace_in: str, beta: str, drive: str, out: str | None = None) -> str:
        """``(trace_in * beta) + ((1 - beta) * drive)``: the leaky traces and :func:`leaky_integrate`."""
        return self.op("Add", self.op("Mul", trace_in, beta), self.op("Mul", self.op("Sub", self.one, beta), drive),
                       out=out)

    def membrane(self, current: str, v_in: str, z_in: str, beta: str, reset_theta: Callable[[], str],
                 out: str) -> None:
        """``v_out`` of :func:`eventflow.neurons.functional.membrane_update`: an ``If`` on ``hard_reset`` whose
        branches hold the hard and the soft reset; ``reset_theta`` emits the soft reset's threshold (in its
        branch, so a hard reset does not compute it)."""

        def hard() -> str:
            decayed = self.op("Mul", v_in, beta)
            kept = self.op("Mul", decayed, self.op("Sub", self.one, z_in))
            return self.op("Add", kept, self.op("Mul", self.op("Sub", self.one, beta), current))

        def soft() -> str:
            return self.op("Sub", self.trace(v_in, beta, current), self.op("Mul", z_in, reset_theta()))

        is_hard = self.op("Cast", self._hard_reset_attr(), to=TensorProto.BOOL)
        self.nodes.append(helper.make_node("If", [is_hard], [out], then_branch=self._branch("hard_reset", hard),
                                           else_branch=self._branch("soft_reset", soft)))

    def _branch(self, name: str, build: Callable[[], str]) -> GraphProto:
        """A subgraph of the nodes ``build`` emits (reading the function's values from the outer scope)."""
        outer, self.nodes = self.nodes, []
        try:
            result = build()
            return helper.make_graph(self.nodes, name, [], [helper.make_value_info(result, TypeProto())])
        finally:
            self.nodes = outer

    def spikes(self, v_out: str, theta: str, out: str) -> None:
        """``z_out = H(v_out - theta)`` in the dtype of ``v_out``."""
        self.op("CastLike", self.op("Greater", self.op("Sub", v_out, theta), self.zero), v_out, out=out)

    def threshold(self, t0: str, t1: str, adapt: str) -> str:
        """``t0 + t1 * adapt``: the adaptive threshold."""
        return self.op("Add", t0, self.op("Mul", t1, adapt))

    def _hard_reset_attr(self) -> str:
        self._count += 1
        out = f"tmp{self._count}"
        # Constant(value_int = <the function's attribute hard_reset>)
        ref = AttributeProto(name="value_int", ref_attr_name="hard_reset", type=AttributeProto.INT)
        node = helper.make_node("Constant", [], [out])
        node.attribute.append(ref)
        self.nodes.append(node)
        return out


def _lif_body(b: _Body) -> None:
    b.membrane("current", "v_in", "z_in", "beta", lambda: "theta", out="v_out")
    b.spikes("v_out", "theta", out="z_out")


def _plif_body(b: _Body) -> None:
    b.trace("pt_in", "beta_pt", "presyn", out="pt_out")
    current = b.op("Sub", "current", b.op("Mul", "gain", "pt_out"))
    b.membrane(current, "v_in", "z_in", "beta", lambda: "theta", out="v_out")
    b.spikes("v_out", "theta", out="z_out")


def _alif_body(b: _Body) -> None:
    b.trace("a_in", "beta_t", "z_in", out="a_out")
    b.membrane("current", "v_in", "z_in", "beta", lambda: b.threshold("t0", "t1", "a_in"), out="v_out")
    b.spikes("v_out", b.threshold("t0", "t1", "a_out"), out="z_out")


def _xlif_body(b: _Body) -> None:
    b.trace("pt_in", "beta_pt", "presyn", out="pt_out")
    b.membrane("current", "v_in", "z_in", "beta", lambda: b.threshold("t0", "t1", "pt_in"), out="v_out")
    b.spikes("v_out", b.threshold("t0", "t1", "pt_out"), out="z_out")


_BODIES: dict[str, Callable[[_Body], None]] = {"LIF": _lif_body, "PLIF": _plif_body, "ALIF": _alif_body,
                                                "XLIF": _xlif_body}


def neuron_function(op_type: str, opset: int) -> FunctionProto:
    """The :class:`onnx.FunctionProto` defining ``eventflow.<op_type>`` with standard operators of ``opset``
    (``op_type`` a key of :data:`SIGNATURES`)."""
    if op_type not in SIGNATURES:
        raise ValueError(f"no eventflow operator {op_type!r}; valid choices: {', '.join(SIGNATURES)}")
    sig = SIGNATURES[op_type]
    body = _Body(like="v_in")
    _BODIES[op_type](body)
    default = helper.make_attribute("hard_reset", sig.hard_reset)
    return helper.make_function(
        DOMAIN, op_type, list(sig.inputs), list(sig.outputs), body.nodes,
        [OperatorSetIdProto(domain="", version=opset)], attribute_protos=[default],
        doc_string=f"eventflow {op_type} neuron step (see eventflow.export.functions)")

