"""Activity, synaptic operations and an energy estimate of the flow models (spiking vs analog).

Synaptic operations follow NeuroBench (Yik et al., "The neurobench framework for benchmarking neuromorphic
computing algorithms and systems", Nature Communications 2025; arXiv:2304.04640), counted per convolution
(the synapses; neuron updates, gates' element-wise products and upsampling are not synaptic operations):

- dense MACs of a convolution, as if every input were non-zero:
  ``MACs = H_out * W_out * C_out * (C_in / groups) * k_h * k_w``;
- effective operations, from the fraction ``rho`` of non-zero entries of the convolution's input in each
  forward pass: ``MACs * rho`` accumulates (ACs) when the input is binary (spikes: a spike adds a weight) and
  ``MACs * rho`` multiply-accumulates (effective MACs) when it is analog (event counts, ReLU outputs, GRU
  states, upsampled decoder inputs); averaged over the passes.

The energy estimate multiplies operation counts by per-operation energies, by default Horowitz
("Computing's energy problem (and what we can do about it)", ISSCC 2014) for 32-bit floating point in a
45 nm process: 3.7 pJ multiply + 0.9 pJ add = 4.6 pJ per MAC and 0.9 pJ per accumulate
(:class:`EnergyConstants`, configurable). It ignores memory traffic, which dominates on real hardware, so read
it as a comparison of compute, not a prediction of a chip's power.

>>> from eventflow.models import build_model
>>> ops = conv_operations(build_model("LIFFireNet"), 128, 128)
>>> [(op.name, op.macs) for op in ops][:3]
[('head.ff', 9437184), ('G1.ff', 150994944), ('G1.rec', 150994944)]
>>> sum(op.macs for op in ops)
1218445312
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from eventflow.inference import (
    HotFilter,
    ModelRunner,
    check_model_resolution,
    hot_filtered,
    iter_batches,
    model_encodings,
    plan_recording,
)
from eventflow.models import FlowModel
from eventflow.windows import WindowSpec


@dataclass(frozen=True)
class EnergyConstants:
    """Energy per operation [pJ]: ``mac_pj`` per multiply-accumulate, ``ac_pj`` per accumulate. Defaults:
    Horowitz, ISSCC 2014, 45 nm, 32-bit float (3.7 pJ FP multiply + 0.9 pJ FP add)."""

    mac_pj: float = 4.6
    ac_pj: float = 0.9
    source: str = "Horowitz, ISSCC 2014: 45 nm, 32-bit float (MAC 4.6 pJ, add 0.9 pJ)"


class ConvOp(NamedTuple):
    """One convolution of a model for an input of a given size: module ``name`` (e.g. ``"G1.rec"``), the model
    ``layer`` it belongs to (``"G1"``), channels, kernel ``(k_h, k_w)``, output grid ``(H_out, W_out)`` and
    dense ``macs`` per forward pass (batch 1)."""

    name: str
    layer: str
    in_channels: int
    out_channels: int
    kernel: tuple[int, int]
    groups: int
    out_hw: tuple[int, int]
    macs: int


def conv_macs(conv: nn.Conv2d, out_hw: tuple[int, int]) -> int:
    """Dense MACs of ``conv`` producing an ``out_hw`` grid: ``H_out W_out C_out (C_in / groups) k_h k_w``."""
    kh, kw = conv.kernel_size
    return int(out_hw[0] * out_hw[1] * conv.out_channels * (conv.in_channels // conv.groups) * kh * kw)


def _convs(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _layer_of(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


def conv_operations(model: FlowModel, height: int, width: int) -> list[ConvOp]:
    """Every convolution of ``model`` (feed-forward, recurrent, GRU gates, predictions) with its dense MACs for
    one forward pass of a ``height x width`` input, in call order. Runs the model once on the ``meta`` device
    (shapes only: no data, no arithmetic), so the counts follow the model's actual structure, padding included.
    """
    meta = copy.deepcopy(model).to("meta")
    shapes: dict[str, tuple[int, int]] = {}
    order: list[str] = []

    def hook(name: str):
        def record(_module, _inputs, output):
            order.append(name)
            shapes[name] = (int(output.shape[-2]), int(output.shape[-1]))
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in _convs(meta)]
    try:
        with torch.no_grad():
            meta(torch.zeros(1, model.config.num_bins, height, width, device="meta"))
    finally:
        for h in handles:
            h.remove()
    convs = dict(_convs(model))
    return [ConvOp(n, _layer_of(n), convs[n].in_channels, convs[n].out_channels, tuple(convs[n].kernel_size),
                   convs[n].groups, shapes[n], conv_macs(convs[n], shapes[n])) for n in order]


def dense_macs(model: FlowModel, height: int, width: int) -> int:
    """Dense MACs of one forward pass (batch 1) of a ``height x width`` input: the sum of
    :func:`conv_operations`."""
    return sum(op.macs for op in conv_operations(model, height, width))


def macs_by_layer(ops: Iterable[ConvOp]) -> dict[str, int]:
    """Dense MACs summed per model layer, in order."""
    out: dict[str, int] = {}
    for op in ops:
        out[op.layer] = out.get(op.layer, 0) + op.macs
    return out


# ------------------------------------------------------------------------------------------------ activity


class ConvInputStats(NamedTuple):
    """Inputs of one convolution over the measured passes: mean ``density`` (fraction of non-zero entries),
    ``binary_fraction`` (share of passes whose input held only 0 and 1), and the effective operations per pass:
    ``eff_macs`` (analog inputs) and ``eff_acs`` (binary inputs)."""

    density: float
    binary_fraction: float
    eff_macs: float
    eff_acs: float


class LayerStats(NamedTuple):
    """Output activity of one layer over the measured passes: ``density`` (mean fraction of non-zero outputs;
    activation sparsity is ``1 - density``) and, for spiking layers, ``spike_rate`` (spikes per neuron per
    forward pass, mean over neurons) and ``spike_rate_per_channel`` ``(C,)``; None for analog layers."""

    density: float
    spike_rate: float | None
    spike_rate_per_channel: Tensor | None


class ActivityReport(NamedTuple):
    """What :func:`measure_activity` measured over ``passes`` forward passes at ``resolution`` ``(H, W)``:
    per-layer output statistics (``layers``, ``"input"`` first), per-convolution input statistics
    (``conv_inputs``) and the dense operations (``ops``)."""

    passes: int
    resolution: tuple[int, int]
    layers: dict[str, LayerStats]
    conv_inputs: dict[str, ConvInputStats]
    ops: list[ConvOp]


def layer_sizes(model: FlowModel, height: int, width: int) -> dict[str, tuple[int, int, int]]:
    """``(C, h, w)`` of the output of every stateful layer for a ``height x width`` input (from the state
    layout; no computation)."""
    state = model.init_state(1, height, width, device="meta")
    return {name: tuple(int(s) for s in layer_state[0].shape[1:]) for name, layer_state in zip(model.state_names,
                                                                                               state)}


@contextlib.contextmanager
def _conv_input_probe(model: nn.Module, sink: dict[str, list[tuple[float, bool]]]) -> Iterator[None]:
    """Record ``(non-zero fraction, binary)`` of every convolution's input while the context is open."""

    def hook(name: str):
        def record(_module, inputs):
            x = inputs[0].detach()
            nonzero = x.ne(0)
            binary = bool((nonzero.logical_not() | x.eq(1)).all())
            sink.setdefault(name, []).append((float(nonzero.float().mean()), binary))
        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in _convs(model)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def measure_activity(
    model: FlowModel,
    batches: Iterable[dict[str, Tensor]],
    *,
    hot_filter: HotFilter | None = None,
    device: torch.device | str = "cpu",
    max_passes: int | None = None,
) -> ActivityReport:
    """Run ``model`` over ``batches`` (:func:`eventflow.inference.iter_batches`, batch 1, state carried) and
    measure per-layer activity (``forward_all(record_activity=True)``) and the input density of every
    convolution, from which the effective synaptic operations follow (see the module docstring)."""
    runner = ModelRunner(model, device, record_activity=True)
    probes: dict[str, list[tuple[float, bool]]] = {}
    fractions: dict[str, list[float]] = {}
    spikes: dict[str, Tensor] = {}
    passes = 0
    resolution = None
    with _conv_input_probe(model, probes):
        for batch, _ in hot_filtered(batches, hot_filter):
            if batch["event_mask"].shape[0] != 1:
                raise ValueError("measure_activity counts operations per sample: use batches of one lane")
            resolution = tuple(batch["event_mask"].shape[-2:])
            _, _, activity = runner.step(batch)
            for name, act in activity.items():
                fractions.setdefault(name, []).append(act.fraction)
                if act.spike_count is not None:
                    spikes[name] = spikes.get(name, 0) + act.spike_count.to(torch.float64)
            passes += 1
            if max_passes is not None and passes >= max_passes:
                break
    if passes == 0:
        raise ValueError("measure_activity got no batches")
    sizes = layer_sizes(model, *resolution)
    layers = {}
    for name, values in fractions.items():
        rate = per_channel = None
        if name in spikes:
            _, h, w = sizes[name]
            per_channel = spikes[name] / (passes * h * w)  # (C,) spikes per neuron per pass
            rate = float(per_channel.mean())
        layers[name] = LayerStats(sum(values) / len(values), rate, per_channel)
    ops = conv_operations(model, *resolution)
    conv_inputs = {}
    for op in ops:
        samples = probes[op.name]
        eff_macs = sum(op.macs * d for d, binary in samples if not binary) / passes
        eff_acs = sum(op.macs * d for d, binary in samples if binary) / passes
        conv_inputs[op.name] = ConvInputStats(sum(d for d, _ in samples) / len(samples),
                                              sum(b for _, b in samples) / len(samples), eff_macs, eff_acs)
    return ActivityReport(passes, resolution, layers, conv_inputs, ops)


# ------------------------------------------------------------------------------------------------- energy


class EnergyEstimate(NamedTuple):
    """Operations and energy of one forward pass (means over the measured passes): ``dense_macs``,
    ``eff_macs``, ``eff_acs``; ``dense_energy_uj`` (every MAC executed) and ``effective_energy_uj``
    (``eff_macs * mac_pj + eff_acs * ac_pj``), in microjoules."""

    dense_macs: int
    eff_macs: float
    eff_acs: float
    dense_energy_uj: float
    effective_energy_uj: float


def energy_estimate(report: ActivityReport, constants: EnergyConstants = EnergyConstants()) -> EnergyEstimate:
    """Operation counts and energy per forward pass from :func:`measure_activity` (see the module docstring).

    >>> ops = [ConvOp("a", "a", 2, 4, (3, 3), 1, (8, 8), 4608)]
    >>> rep = ActivityReport(1, (8, 8), {}, {"a": ConvInputStats(0.5, 1.0, 0.0, 2304.0)}, ops)
    >>> est = energy_estimate(rep)
    >>> round(est.dense_energy_uj * 1e6, 1), round(est.effective_energy_uj * 1e6, 1)  # pJ
    (21196.8, 2073.6)
    """
    dense = sum(op.macs for op in report.ops)
    eff_macs = sum(s.eff_macs for s in report.conv_inputs.values())
    eff_acs = sum(s.eff_acs for s in report.conv_inputs.values())
    return EnergyEstimate(dense, eff_macs, eff_acs, dense * constants.mac_pj * 1e-6,
                          (eff_macs * constants.mac_pj + eff_acs * constants.ac_pj) * 1e-6)


def mean_spike_rate(report: ActivityReport) -> float | None:
    """Spikes per neuron per pass over all spiking layers (weighted by their neuron counts); None for ANNs."""
    sizes = layer_sizes_from_ops(report)
    total = neurons = 0.0
    for name, stats in report.layers.items():
        if stats.spike_rate is not None:
            n = sizes.get(name, 0)
            total += stats.spike_rate * n
            neurons += n
    return total / neurons if neurons else None


def layer_sizes_from_ops(report: ActivityReport) -> dict[str, int]:
    """Neurons (``C_out * H_out * W_out`` of the layer's first convolution) per layer."""
    out: dict[str, int] = {}
    for op in report.ops:
        out.setdefault(op.layer, op.out_channels * op.out_hw[0] * op.out_hw[1])
    return out


def energy_table(reports: Mapping[str, tuple[FlowModel, ActivityReport]],
                 constants: EnergyConstants = EnergyConstants()) -> list[dict[str, object]]:
    """One row per model (e.g. ``{"LIF-FireNet": (model, report), "FireNet": ...}``): parameters, dense GMACs,
    effective GMACs and GACs per forward pass, mean output density of the hidden layers, mean spike rate
    (SNNs), dense and effective energy [uJ]. Format with :func:`eventflow.evaluate.format_table`."""
    rows = []
    for label, (model, report) in reports.items():
        est = energy_estimate(report, constants)
        hidden = [s.density for n, s in report.layers.items() if n != "input"]
        rows.append({
            "model": label,
            "params": model.num_parameters(),
            "dense GMAC": est.dense_macs / 1e9,
            "eff. GMAC": est.eff_macs / 1e9,
            "eff. GAC": est.eff_acs / 1e9,
            "density": sum(hidden) / len(hidden) if hidden else None,
            "spikes/neuron": mean_spike_rate(report),
            "dense uJ": est.dense_energy_uj,
            "eff. uJ": est.effective_energy_uj,
        })
    return rows


def layer_table(report: ActivityReport) -> list[dict[str, object]]:
    """Per layer, per forward pass: dense MACs, effective MACs (analog inputs) and ACs (binary inputs), in
    millions; output density and spike rate. Format with :func:`eventflow.evaluate.format_table`."""
    rows: dict[str, dict[str, object]] = {}
    for op in report.ops:
        s = report.conv_inputs[op.name]
        row = rows.setdefault(op.layer, {"layer": op.layer, "dense MAC [M]": 0.0, "eff. MAC [M]": 0.0,
                                         "eff. AC [M]": 0.0})
        row["dense MAC [M]"] += op.macs / 1e6
        row["eff. MAC [M]"] += s.eff_macs / 1e6
        row["eff. AC [M]"] += s.eff_acs / 1e6
    for layer, row in rows.items():
        stats = report.layers.get(layer)
        row["output density"] = None if stats is None else stats.density
        row["spikes/neuron"] = None if stats is None else stats.spike_rate
    return list(rows.values())


def analytic_macs_table(models: Mapping[str, FlowModel], resolutions: Sequence[tuple[int, int]]
                        ) -> list[dict[str, object]]:
    """Dense GMACs per forward pass of each model at each ``(H, W)`` (no data needed)."""
    rows = []
    for label, model in models.items():
        row: dict[str, object] = {"model": label}
        for h, w in resolutions:
            row[f"GMAC {h}x{w}"] = dense_macs(model, h, w) / 1e9
        rows.append(row)
    return rows


def measure_models(
    models: Mapping[str, FlowModel],
    path: str | os.PathLike,
    window_events: int = 1000,
    *,
    max_passes: int | None = 100,
    hot_filter: HotFilter | None = None,
    resolution: tuple[int, int] | None = None,
    crop: bool = False,
    device: torch.device | str = "cpu",
) -> dict[str, tuple[FlowModel, ActivityReport]]:
    """:func:`measure_activity` of each model over the first ``max_passes`` windows of ``window_events`` events
    of the recording ``path`` (the input the paper's networks were trained on: 1000 events), for
    :func:`energy_table`."""
    plan = plan_recording(path, WindowSpec("events", int(window_events)), resolution=resolution, crop=crop,
                          max_windows=max_passes)
    out = {}
    for label, model in models.items():
        check_model_resolution(model, plan)
        batches = iter_batches([plan], 1, encodings=model_encodings(model, hot_filter=True),
                               num_bins=model.config.num_bins, round_ts=model.config.round_encoding)
        out[label] = (model, measure_activity(model, batches, hot_filter=hot_filter, device=device))
    return out
