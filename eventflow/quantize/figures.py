"""Figures of the quantisation study (notebook 04): the bit-width sweep and fixed-point neuron traces.

>>> import torch
>>> from eventflow.quantize.lif import lif_traces
>>> fig = plot_lif_traces(lif_traces(torch.linspace(0.0, 1.5, 20), leak=-2.0, thresh=0.8, bits=(8, 4)))
>>> len(fig.axes)
2
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from eventflow.quantize.lif import LIFTrace

FP32 = "fp32"


def plot_sweep(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """AEE, outliers, FWL (mean over the real recordings) and size against the bit width
    (:func:`eventflow.quantize.sweep.sweep_rows`), one line per model and mode; fp32 as dashed lines, baseline
    rows (zero flow) dotted grey."""
    panels = [("AEE", "AEE [px] (simulated test)"), ("outliers %", "outliers [%] (simulated test)"),
              ("FWL", "FWL (real recordings, mean)"), ("size B", "model size [bytes]")]
    fig = Figure(figsize=(13, 3.4), layout="constrained")
    axes = fig.subplots(1, len(panels))
    colors: dict[str, str] = {}
    baselines = [r for r in rows if r["mode"] not in (FP32, "ptq", "qat")]  # e.g. the zero-flow row
    rows = [r for r in rows if r["mode"] in (FP32, "ptq", "qat")]
    for ax, (key, title) in zip(axes, panels):
        for base in baselines:
            if _metric(base, key) is not None:
                ax.axhline(_metric(base, key), color="0.6", linestyle=":", linewidth=1, label=base["model"])
        for model in dict.fromkeys(r["model"] for r in rows):
            color = colors.setdefault(model, f"C{len(colors)}")
            for mode, marker, style in (("ptq", "o", "-"), ("qat", "s", ":")):
                pts = sorted((r["bits"], _metric(r, key)) for r in rows if r["model"] == model and r["mode"] == mode)
                pts = [(b, y) for b, y in pts if y is not None]
                if pts:
                    ax.plot(*zip(*pts), marker=marker, color=color, linestyle=style, label=f"{model} {mode}")
            ref = [_metric(r, key) for r in rows if r["model"] == model and r["mode"] == FP32]
            if ref and ref[0] is not None:
                ax.axhline(ref[0], color=color, linestyle="--", linewidth=1, label=f"{model} fp32")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("bits")
        ax.set_xticks(sorted({r["bits"] for r in rows if r["mode"] != FP32}))
        if key == "size B":
            ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    return fig


def _metric(row: Mapping[str, Any], key: str) -> float | None:
    if key != "FWL":
        value = row.get(key)
    else:
        values = [v for k, v in row.items() if k.endswith(" FWL") and v is not None and math.isfinite(v)]
        value = sum(values) / len(values) if values else None
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def plot_lif_traces(traces: Mapping[str, LIFTrace]) -> Figure:
    """Membrane potential (top, with the threshold) and spikes (bottom) of one neuron per trace
    (:func:`eventflow.quantize.lif.lif_traces`), float first."""
    fig = Figure(figsize=(8, 4.2), layout="constrained")
    ax_v, ax_z = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    for k, (label, trace) in enumerate(traces.items()):
        steps = range(len(trace.v))
        ax_v.step(steps, trace.v.tolist(), where="post", label=label, color=f"C{k}")
        ax_v.axhline(trace.theta, color=f"C{k}", linestyle=":", linewidth=1)
        spikes = [t for t in steps if trace.z[t] > 0]
        ax_z.scatter(spikes, [k] * len(spikes), marker="|", s=120, color=f"C{k}")
    ax_v.set_ylabel("membrane potential v")
    ax_v.legend(fontsize=8)
    ax_z.set_yticks(range(len(traces)), list(traces))
    ax_z.set_xlabel("time step")
    ax_z.set_ylim(-0.5, len(traces) - 0.5)
    return fig
