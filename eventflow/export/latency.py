"""Latency per window of an exported step graph in onnxruntime (CPU) against PyTorch eager.

:func:`measure_latency` runs the same windows, state fed back, through

- ``torch``: the PyTorch model (``torch.no_grad``, ``torch.set_num_threads(threads)``, restored afterwards);
- ``ort``: the export with ``eventflow`` neuron nodes and model-local functions (onnxruntime inlines them);
- ``ort-plain``: the export with standard operators only (``custom_ops=False``);
- ``ort-native``: the export with the native custom-op library registered, where one is given
  (:func:`eventflow.export.ort_library.build`).

The backends are timed in turns, one window each per round, so load from other processes on a shared machine falls
on all of them alike; after ``warmup`` rounds, ``repeats`` rounds give the median and the minimum in milliseconds.
``benchmarks/bench_onnx.py`` records the figures in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from eventflow.export.onnx import export_onnx
from eventflow.export.runtime import OnnxStepper
from eventflow.models.base import FlowModel


def measure_latency(model: FlowModel, windows: Sequence[Tensor], threads: int = 1, repeats: int = 20,
                    warmup: int = 3, custom_op_library: str | os.PathLike | None = None) -> dict:
    """Per-window latency of each backend (see the module docstring) on ``windows`` ``(1, num_bins, H, W)``.

    Returns a dict: ``model``, ``resolution`` ``[H, W]``, ``threads``, ``repeats``, ``median_ms`` and ``min_ms``
    (backend -> milliseconds), ``load`` (the 1-minute load average before and after).
    """
    if not windows or repeats < 1:
        raise ValueError("measure_latency needs at least one window and one repeat")
    _, _, height, width = windows[0].shape
    custom = export_onnx(model, height=height, width=width)
    steppers = {"ort": OnnxStepper(custom, threads=threads),
                "ort-plain": OnnxStepper(export_onnx(model, height=height, width=width, custom_ops=False),
                                         threads=threads)}
    if custom_op_library is not None:
        steppers["ort-native"] = OnnxStepper(custom, threads=threads, custom_op_library=custom_op_library)
    states: dict[str, object] = {"torch": None, **{k: s.zero_state(1, height, width) for k, s in steppers.items()}}
    times: dict[str, list[float]] = {"torch": [], **{k: [] for k in steppers}}
    before_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    try:
        with torch.no_grad():
            for k in range(warmup + repeats):
                x = windows[k % len(windows)]
                for backend in times:
                    t0 = time.perf_counter()
                    if backend == "torch":
                        _, states[backend] = model(x, states[backend])
                    else:
                        _, states[backend] = steppers[backend](x.numpy(), states[backend])
                    if k >= warmup:
                        times[backend].append((time.perf_counter() - t0) * 1e3)
    finally:
        torch.set_num_threads(before_threads)
    return {
        "model": model.config.name, "resolution": [height, width], "threads": threads, "repeats": repeats,
        "median_ms": {b: float(np.median(t)) for b, t in times.items()},
        "min_ms": {b: float(np.min(t)) for b, t in times.items()},
        "load": [load_before, os.getloadavg()[0]],
    }


def latency_table(results: Sequence[dict]) -> str:
    """A Markdown table of :func:`measure_latency` results: median (minimum) milliseconds per window."""
    backends = list(results[0]["median_ms"])
    lines = ["| model | H x W | threads | " + " | ".join(f"{b} [ms]" for b in backends) + " | load avg |",
             "|" + "---|" * (4 + len(backends))]
    for r in results:
        cells = " | ".join(f"{r['median_ms'][b]:.1f} ({r['min_ms'][b]:.1f})" for b in backends)
        lines.append(f"| {r['model']} | {r['resolution'][0]} x {r['resolution'][1]} | {r['threads']} | {cells} | "
                     f"{r['load'][0]:.1f} / {r['load'][1]:.1f} |")
    return "\n".join(lines)
