"""LIF-FireNet as a NIR graph (Neuromorphic Intermediate Representation, Pedersen et al., Nat. Commun. 2024).

:func:`export_nir` maps a spiking FireNet with LIF neurons (``LIFFireNet``, ``LIFFireFlowNet`` and their ``_short``
variants; Hagenaars et al., NeurIPS 2021) onto NIR nodes: per layer a ``Conv2d`` ``<layer>.ff`` (bias 0), a ``LIF``
``<layer>.lif`` and, for the recurrent G layers, a ``Conv2d`` ``<layer>.rec`` from the layer's spikes back to its
own neurons (a recurrent edge: NIR sums every edge into a node, and a cycle reads the previous time step); then
the prediction ``Conv2d`` ``pred`` (1x1, with bias) to the output. Shapes are ``(C, H, W)``, batch-free.

The neuron, time step ``dt = 1`` (one event window), forward Euler, which is how NIR simulators discretise
``tau dv/dt = (v_leak - v) + r I``: ``v_t = v_{t-1} + (dt / tau) (v_leak - v_{t-1} + r I_t)``. With

- ``tau = dt / (1 - beta)``, ``beta = sigmoid(leak)``: the leak, and the ``(1 - beta)`` input scaling of the paper's
  update ``v_t = beta v_{t-1} + (1 - beta) I_t``; ``r = 1``, ``v_leak = 0``;
- ``v_threshold = max(thresh, 0.01)`` (the clamp folded in), spikes ``v > v_threshold``;
- ``v_reset = 0``: NIR resets right after a spike, the paper's hard reset multiplies the next step's decayed
  membrane by ``1 - z_{t-1}``; both give the same spikes and the same next membrane.

Parameters are per channel, broadcast to every neuron ``(C, H, W)`` (NIR wants one shape per node). What does not
map, and is left to the consumer or to training:

- the ``tanh`` of the prediction layer: NIR has no tanh node, so the graph's output is the pre-activation
  ``W_pred * x + b``; apply ``tanh`` to get the model's flow (tanh units);
- the ``(1 - beta)`` scaling is exact only under forward Euler with ``dt = 1``; a simulator that integrates
  exactly (``v decays by exp(-dt / tau)``) needs ``tau = -dt / ln(beta)`` and ``r = (1 - beta) / (1 - exp(-dt/tau))``
  instead (graph metadata ``discretisation``);
- soft reset, the PLIF/ALIF/XLIF neurons (presynaptic traces, adaptive thresholds), and the EV-FlowNet family
  (bilinear upsampling, concatenation) have no NIR primitives: :class:`UnsupportedModelError`;
- the surrogate gradient, its width and ``detach`` (training only); the membrane value itself after a spike (ours
  keeps it one step, NIR resets it at once).

:func:`check_round_trip` writes a graph, reads it back and compares structure and every parameter;
:func:`run_nir_graph` simulates a graph (these node types only) with forward Euler, to check the mapping against
PyTorch.

>>> from eventflow.models import build_model
>>> graph = export_nir(build_model("LIFFireNet_short", base_num_channels=4), height=8, width=8)
>>> sorted(graph.nodes)[:4], ("G1.rec", "G1.lif") in graph.edges
(['G1.ff', 'G1.lif', 'G1.rec', 'G2.ff'], True)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import nir
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from eventflow.atomic import atomic_path
from eventflow.export.onnx import UnsupportedModelError
from eventflow.models.base import FlowModel
from eventflow.models.firenet import FireNetModel
from eventflow.neurons.analog import ConvLayer
from eventflow.neurons.functional import MIN_THRESH
from eventflow.neurons.modules import ConvLIF

DT = 1.0


def _conv(conv: torch.nn.Conv2d, height: int, width: int) -> nir.Conv2d:
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
    return nir.Conv2d(input_shape=(height, width), weight=conv.weight.detach().numpy().astype(np.float32),
                      stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                      bias=bias.detach().numpy().astype(np.float32))


def _lif(layer: ConvLIF, height: int, width: int) -> nir.LIF:
    with torch.no_grad():
        beta = torch.sigmoid(layer.leak).double()  # (C, 1, 1)
        theta = layer.thresh.clamp_min(MIN_THRESH)
    shape = (layer.out_channels, height, width)

    def full(values: Tensor | float) -> np.ndarray:
        return np.ascontiguousarray(np.broadcast_to(np.asarray(values, np.float32), shape))

    return nir.LIF(tau=full((DT / (1 - beta)).numpy()), r=full(1.0), v_leak=full(0.0),
                   v_threshold=full(theta.numpy()), v_reset=full(0.0))


def export_nir(model: FlowModel, path: str | os.PathLike | None = None, *, height: int = 180,
               width: int = 240) -> nir.NIRGraph:
    """The NIR graph of a LIF FireNet for inputs ``(2, height, width)`` (see the module docstring); written to
    ``path`` (``.nir``, HDF5, atomically) where given. Raises :class:`UnsupportedModelError` for other models."""
    supported = "LIFFireNet, LIFFireFlowNet and their _short variants with hard reset"
    if not isinstance(model, FireNetModel):
        raise UnsupportedModelError(f"NIR export: {type(model).__name__} is not supported; supported: {supported}")
    layers = [(name, model.get_submodule(name)) for name in model.chain]
    for name, layer in layers:
        if type(layer).__name__ not in ("ConvLIF", "ConvLIFRecurrent") or not layer.hard_reset:
            kind = type(layer).__name__ + ("" if getattr(layer, "hard_reset", True) else " with soft reset")
            raise UnsupportedModelError(f"NIR export: {model.config.name} layer {name} is a {kind}, which has no "
                                        f"NIR mapping; supported: {supported}")
    pred = model.get_submodule("pred")
    if not isinstance(pred, ConvLayer):
        raise UnsupportedModelError(f"NIR export: {model.config.name}: unexpected prediction layer")

    nodes: dict[str, nir.NIRNode] = {"input": nir.Input({"input": np.array([model.config.num_bins, height, width])})}
    edges: list[tuple[str, str]] = []
    previous = "input"
    for name, layer in layers:
        nodes[f"{name}.ff"] = _conv(layer.ff, height, width)
        nodes[f"{name}.lif"] = _lif(layer, height, width)
        edges += [(previous, f"{name}.ff"), (f"{name}.ff", f"{name}.lif")]
        if layer.recurrent:
            nodes[f"{name}.rec"] = _conv(layer.rec, height, width)
            edges += [(f"{name}.lif", f"{name}.rec"), (f"{name}.rec", f"{name}.lif")]
        previous = f"{name}.lif"
    nodes["pred"] = _conv(pred.conv, height, width)
    nodes["output"] = nir.Output({"output": np.array([2, height, width])})
    edges += [(previous, "pred"), ("pred", "output")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata={
        "model": model.config.name, "dt": DT, "discretisation": "forward Euler",
        "output": "pre-activation of the tanh prediction layer: flow = tanh(output)"})
    if path is not None:
        path = Path(path)
        with atomic_path(path) as tmp:
            nir.write(tmp, graph)
    return graph


def _params(node: nir.NIRNode) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in vars(node).items()
            if k not in ("metadata", "input_type", "output_type") and v is not None}


def compare_graphs(a: nir.NIRGraph, b: nir.NIRGraph) -> list[str]:
    """Differences between two graphs: node names and types, edges, and every parameter (exact); empty if equal."""
    problems = []
    if set(a.nodes) != set(b.nodes):
        problems.append(f"nodes differ: {sorted(set(a.nodes) ^ set(b.nodes))}")
    if sorted(map(tuple, a.edges)) != sorted(map(tuple, b.edges)):
        problems.append("edges differ")
    for name in sorted(set(a.nodes) & set(b.nodes)):
        na, nb = a.nodes[name], b.nodes[name]
        if type(na) is not type(nb):
            problems.append(f"{name}: {type(na).__name__} became {type(nb).__name__}")
            continue
        pa, pb = _params(na), _params(nb)
        for key in sorted(set(pa) | set(pb)):
            if key not in pa or key not in pb:
                problems.append(f"{name}.{key}: present in only one graph")
            elif pa[key].shape != pb[key].shape or not np.array_equal(pa[key], pb[key]):
                problems.append(f"{name}.{key}: values differ")
    return problems


def check_round_trip(graph: nir.NIRGraph, path: str | os.PathLike | None = None) -> nir.NIRGraph:
    """Write ``graph`` (to ``path``, or a temporary file), read it back with :func:`nir.read` and compare them;
    returns the graph read. Raises ValueError listing the differences."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(path) if path is not None else Path(tmp) / "graph.nir"
        nir.write(target, graph)
        back = nir.read(target)
    problems = compare_graphs(graph, back)
    if problems:
        raise ValueError(f"NIR round trip of {target}: {'; '.join(problems)}")
    return back


def _order(graph: nir.NIRGraph) -> tuple[list[str], set[tuple[str, str]]]:
    """Nodes in evaluation order from ``input`` and the recurrent edges (back edges of the depth-first search),
    which carry the previous step's value."""
    children: dict[str, list[str]] = {}
    for src, dst in graph.edges:
        children.setdefault(src, []).append(dst)
    order, back, state = [], set(), {}

    def visit(node: str) -> None:
        state[node] = "open"
        for child in children.get(node, []):
            if state.get(child) == "open":
                back.add((node, child))
            elif child not in state:
                visit(child)
        state[node] = "done"
        order.append(node)

    visit("input")
    return order[::-1], back


def run_nir_graph(graph: nir.NIRGraph, windows: Sequence[Tensor]) -> list[Tensor]:
    """Simulate ``graph`` (``Input``, ``Conv2d``, ``LIF``, ``Output`` nodes) over ``windows`` ``(B, C, H, W)`` with
    forward Euler, ``dt`` = 1 per window, from zero state; returns the output of every window ``(B, C', H, W)``.

    A node's input is the sum of its incoming edges; a recurrent edge delivers its source's previous output
    (zeros at the first step). ``LIF``: ``v += (dt / tau) (v_leak - v + r I)``, ``z = v > v_threshold``,
    ``v = v_reset`` where ``z``.
    """
    supported = (nir.Input, nir.Output, nir.Conv2d, nir.LIF)
    for name, node in graph.nodes.items():
        if not isinstance(node, supported):
            raise ValueError(f"run_nir_graph: node {name} is a {type(node).__name__}; this simulator runs "
                             f"{', '.join(c.__name__ for c in supported)}")
    order, back = _order(graph)
    incoming: dict[str, list[str]] = {}
    for src, dst in graph.edges:
        incoming.setdefault(dst, []).append(src)
    params = {name: {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in _params(node).items()}
              for name, node in graph.nodes.items() if isinstance(node, nir.LIF)}
    dt = float(graph.metadata.get("dt", DT))
    previous: dict[str, Tensor] = {}
    membrane: dict[str, Tensor] = {}
    outputs = []
    with torch.no_grad():
        for x in windows:
            current: dict[str, Tensor] = {}
            for name in order:
                node = graph.nodes[name]
                if isinstance(node, nir.Input):
                    current[name] = x
                    continue
                total = None
                for src in incoming.get(name, []):
                    value = previous.get(src) if (src, name) in back else current[src]
                    if value is not None:
                        total = value if total is None else total + value
                if isinstance(node, nir.Conv2d):
                    current[name] = F.conv2d(total, torch.from_numpy(np.asarray(node.weight, np.float32)),
                                             torch.from_numpy(np.asarray(node.bias, np.float32)),
                                             tuple(node.stride), tuple(node.padding), tuple(node.dilation),
                                             int(node.groups))
                elif isinstance(node, nir.LIF):
                    p = params[name]
                    v = membrane.get(name, torch.zeros_like(total))
                    v = v + (dt / p["tau"]) * (p["v_leak"] - v + p["r"] * total)
                    z = (v > p["v_threshold"]).to(total.dtype)
                    membrane[name] = torch.where(z.bool(), p["v_reset"], v)
                    current[name] = z
                else:
                    current[name] = total
            previous = current
            outputs.append(current["output"])
    return outputs


def simulation_difference(model: FlowModel, graph: nir.NIRGraph, windows: Sequence[Tensor]) -> float:
    """The largest ``|tanh(graph output) - model flow|`` over ``windows`` ``(B, 2, H, W)``, both run from zero
    state (:func:`run_nir_graph` against ``model``); 0 when the mapping reproduces the model exactly."""
    outputs = run_nir_graph(graph, windows)
    state, worst = None, 0.0
    with torch.no_grad():
        for x, out in zip(windows, outputs):
            flow, state = model(x, state)
            worst = max(worst, float((torch.tanh(out) - flow).abs().max()))
    return worst
