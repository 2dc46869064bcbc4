"""Looking at training runs (notebook 02): loss curves from the metrics log, spike rates per layer, and images
of warped events before and after motion compensation with a trained model's flow.

The networks of Hagenaars, Paredes-Vallés & de Croon (NeurIPS 2021) learn flow self-supervised, by contrast
maximisation: the loss (their Sec. 3.2) is the average-timestamp contrast of the events warped with the
predicted flow, so a falling loss means sharper images of warped events (IWE). This module reads what a run
of :func:`eventflow.train.train` left in its folder and draws it:

- :func:`read_metrics`: the ``metrics.jsonl`` log of a run as :class:`TrainingCurves` (arrays per step);
- :func:`loss_summary` and :func:`plot_loss_curves`: first against last losses, and the curves of loss and
  RSAT (the ratio of squared average timestamps, paper appendix C: below 1 the flow sharpens the events);
- :func:`run_spike_rates`, :func:`spike_rate_table` and :func:`plot_spike_rates`: spikes per neuron per
  forward pass of every spiking layer, measured on test windows (an :class:`eventflow.evalviz.RunRecord`)
  and logged during training;
- :func:`iwe_sharpness` and :func:`plot_iwe_before_after`: the IWE of a window without warping and warped with
  each model's flow, with its flow warp loss (FWL, Stoffregen et al., ECCV 2020: ``var(IWE(flow)) /
  var(IWE(0))``, above 1 the flow sharpens the events).

Units: ``loss`` is the training loss (dimensionless), ``rsat`` and FWL are ratios, ``elapsed`` is seconds of
training wall time, spike rates are spikes per neuron per forward pass (in [0, 1]: a neuron spikes at most once
per pass), IWEs are events per pixel.

>>> import tempfile, pathlib, json
>>> run = pathlib.Path(tempfile.mkdtemp())
>>> lines = [{"step": s, "epoch": 0, "loss": 1.0 / s, "rsat": 1.0 - 0.01 * s} for s in (1, 2, 3, 4)]
>>> _ = (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in lines))
>>> curves = read_metrics(run)
>>> curves.step.tolist(), float(curves.loss[-1])
([1, 2, 3, 4], 0.25)
>>> row = loss_summary({"net": curves}, windows=2)[0]
>>> row["loss first"], row["loss last"], row["loss change %"]
(0.75, 0.291..., -61.1...)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from matplotlib.figure import Figure

from eventflow import viz
from eventflow.evaluate import ZERO_FLOW
from eventflow.evalviz import RunRecord
from eventflow.train.loop import SUMMARY_WINDOWS
from eventflow.train.metrics_log import JSONL

SPIKE_RATE_PREFIX = "spike_rate/"


class TrainingCurves(NamedTuple):
    """The metrics log of one run as arrays, one entry per optimisation step (``N`` steps):

    - ``run``: the run folder;
    - ``step``, ``epoch``: ``(N,)`` int64;
    - ``loss``: ``(N,)`` float64, the loss of each loss window; ``rsat``, ``grad_norm``: ``(N,)`` float64, NaN
      where the log has no value (logs written before RSAT was logged);
    - ``elapsed``: ``(N,)`` float64 seconds of training since the start of the run (resumptions included);
    - ``spike_step``: ``(M,)`` int64, the steps whose record holds spike rates (every ``run.log_every`` steps,
      spiking models only; ``M = 0`` otherwise);
    - ``spike_rates``: layer -> ``(M,)`` float64, the fraction of the layer's neurons that spiked in the last
      pass of the window (spikes per neuron per pass), in forward order.
    """

    run: Path
    step: np.ndarray
    epoch: np.ndarray
    loss: np.ndarray
    rsat: np.ndarray
    grad_norm: np.ndarray
    elapsed: np.ndarray
    spike_step: np.ndarray
    spike_rates: dict[str, np.ndarray]


def metrics_path(run: str | os.PathLike) -> Path:
    """The ``metrics.jsonl`` of a run: ``run`` is the run folder or a file in it (e.g. the ``model.pt`` that
    :func:`eventflow.train.ensure_trained` returns)."""
    path = Path(run)
    folder = path.parent if path.is_file() else path
    log = folder / JSONL
    if not log.is_file():
        raise FileNotFoundError(f"{log}: no metrics log (is {folder} the folder of a training run?)")
    return log


def _number(record: Mapping[str, Any], key: str) -> float:
    value = record.get(key)
    return math.nan if value is None else float(value)


def read_metrics(run: str | os.PathLike) -> TrainingCurves:
    """Read the metrics log of a run (see :mod:`eventflow.train.metrics_log` for its fields) into
    :class:`TrainingCurves`.

    Args:
        run: the run folder, or a file in it (the checkpoint returned by :func:`eventflow.train.ensure_trained`).

    Raises:
        FileNotFoundError: no ``metrics.jsonl`` there.
        ValueError: an empty log, a line that is not a JSON record with ``step`` and a finite ``loss``, or steps
            that do not increase (two runs written into one log).
    """
    log = metrics_path(run)
    records: list[dict[str, Any]] = []
    for number, line in enumerate(log.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"{log}: line {number} is not JSON") from None
        if not isinstance(record, dict) or "step" not in record or "loss" not in record:
            raise ValueError(f"{log}: line {number} is not a metrics record (needs 'step' and 'loss')")
        if not math.isfinite(_number(record, "loss")):
            raise ValueError(f"{log}: line {number} has a non-finite loss ({record['loss']})")
        records.append(record)
    if not records:
        raise ValueError(f"{log}: the metrics log is empty (no optimisation step finished yet)")
    step = np.array([int(r["step"]) for r in records], dtype=np.int64)
    if np.any(np.diff(step) <= 0):
        bad = int(np.argmax(np.diff(step) <= 0)) + 1
        raise ValueError(f"{log}: steps do not increase (step {step[bad]} follows step {step[bad - 1]})")
    layers = list(dict.fromkeys(k[len(SPIKE_RATE_PREFIX):] for r in records for k in r
                                if k.startswith(SPIKE_RATE_PREFIX)))
    spiking = [r for r in records if any(SPIKE_RATE_PREFIX + name in r for name in layers)]
    return TrainingCurves(
        run=log.parent,
        step=step,
        epoch=np.array([int(r.get("epoch", 0)) for r in records], dtype=np.int64),
        loss=np.array([_number(r, "loss") for r in records]),
        rsat=np.array([_number(r, "rsat") for r in records]),
        grad_norm=np.array([_number(r, "grad_norm") for r in records]),
        elapsed=np.array([_number(r, "elapsed") for r in records]),
        spike_step=np.array([int(r["step"]) for r in spiking], dtype=np.int64),
        spike_rates={name: np.array([_number(r, SPIKE_RATE_PREFIX + name) for r in spiking]) for name in layers},
    )


def running_mean(values, window: int) -> np.ndarray:
    """Trailing running mean of ``values`` ``(N,)`` over ``window`` entries: entry ``i`` is the mean of the
    finite values among ``values[max(0, i - window + 1) : i + 1]`` (NaN where there are none). Smooths a noisy
    per-window loss without shifting where it starts.

    >>> running_mean([1.0, 3.0, 5.0, float("nan"), 9.0], 2).tolist()
    [1.0, 2.0, 4.0, 5.0, 9.0]
    """
    if window < 1:
        raise ValueError(f"running_mean: window must be >= 1, got {window}")
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"running_mean: expected shape (N,), got {v.shape}")
    finite = np.isfinite(v)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, v, 0.0))])  # (N + 1,)
    counts = np.concatenate([[0], np.cumsum(finite)])  # (N + 1,)
    stop = np.arange(1, v.size + 1)
    start = np.maximum(stop - window, 0)
    n = counts[stop] - counts[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums[stop] - sums[start]) / n, np.nan)


def _mean_of(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def loss_summary(curves: Mapping[str, TrainingCurves], windows: int = SUMMARY_WINDOWS) -> list[dict[str, Any]]:
    """One row per run (label -> curves): ``steps``, the mean loss over the first and over the last ``windows``
    steps (they overlap in runs shorter than ``2 * windows``; the default is the loop's, so the numbers match
    :attr:`eventflow.train.TrainResult.final`), its relative change [%], the same means of RSAT, and the
    training wall time [min]. Format with :func:`eventflow.evaluate.format_table`."""
    if windows < 1:
        raise ValueError(f"loss_summary: windows must be >= 1, got {windows}")
    rows = []
    for label, c in curves.items():
        first, last = _mean_of(c.loss[:windows]), _mean_of(c.loss[-windows:])
        rows.append({
            "model": label,
            "steps": int(c.step[-1]),
            "loss first": first,
            "loss last": last,
            "loss change %": 100.0 * (last - first) / abs(first) if first else math.nan,
            "RSAT first": _mean_of(c.rsat[:windows]),
            "RSAT last": _mean_of(c.rsat[-windows:]),
            "train min": float(c.elapsed[-1]) / 60.0,
        })
    return rows


def plot_loss_curves(curves: Mapping[str, TrainingCurves], smooth: int = 5) -> Figure:
    """Loss (left) and RSAT (right) against the optimisation step for each run (label -> curves): every
    window's value thin, its :func:`running_mean` over ``smooth`` steps bold, in one colour per run. RSAT has a
    dashed line at 1 (zero flow); a panel says so where no run logged RSAT."""
    if not curves:
        raise ValueError("plot_loss_curves: no runs given")
    fig = viz.new_figure(1, 2, panel_size=(4.6, 3.2))
    for ax, field, ylabel in zip(fig.axes, ("loss", "rsat"), ("training loss", "RSAT (< 1: sharper)")):
        drawn = False
        for i, (label, c) in enumerate(curves.items()):
            values = getattr(c, field)
            if not np.isfinite(values).any():
                continue
            colour = f"C{i}"
            ax.plot(c.step, values, color=colour, alpha=0.3, linewidth=0.8)
            ax.plot(c.step, running_mean(values, smooth), color=colour, linewidth=1.8, label=label)
            drawn = True
        if not drawn:
            ax.text(0.5, 0.5, f"no {field.upper()} in the logs", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        if field == "rsat":
            ax.axhline(1.0, color="0.4", linestyle="--", linewidth=0.8)
        ax.set_xlabel("optimisation step (loss window)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"training curves (thin: every window; bold: running mean over {smooth})", fontsize=9)
    return fig


# ------------------------------------------------------------------------------------------------ spike rates


def run_spike_rates(run: RunRecord) -> dict[str, dict[str, np.ndarray]]:
    """Per spiking model of ``run`` and per spiking layer (forward order), the spikes per neuron per forward
    pass of each channel, averaged over the run's windows: label -> layer -> ``(C,)`` float64. Models without
    spiking layers are left out. Draw with :func:`plot_spike_rates` or :func:`eventflow.viz.plot_spike_rates`.
    """
    return {label: {layer: np.asarray(r, dtype=np.float64).mean(axis=0) for layer, r in layers.items()}
            for label, layers in run.spike_rates.items()}


def spike_rate_table(rates: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per layer with each series' spike rate (mean over channels of a ``(C,)`` array, or a scalar)
    in spikes per neuron per pass; None where a series lacks the layer. Format with
    :func:`eventflow.evaluate.format_table`.

    >>> spike_rate_table({"a": {"G1": [0.1, 0.3]}, "b": {"G1": 0.5, "G2": 0.0}})
    [{'layer': 'G1', 'a': 0.2, 'b': 0.5}, {'layer': 'G2', 'a': None, 'b': 0.0}]
    """
    layers = list(dict.fromkeys(layer for per_layer in rates.values() for layer in per_layer))
    return [{"layer": layer, **{label: (float(np.mean(per_layer[layer])) if layer in per_layer else None)
                                for label, per_layer in rates.items()}} for layer in layers]


def plot_spike_rates(rates: Mapping[str, Mapping[str, Any]], curves: TrainingCurves | None = None) -> Figure:
    """Spike rates per layer [spikes per neuron per pass]: bars per series (``rates`` = label -> layer ->
    ``(C,)`` or scalar, e.g. :func:`run_spike_rates`; whiskers: plus and minus the standard deviation over
    channels) and, where ``curves`` holds logged spike rates, a second panel with each layer's rate against the
    optimisation step of that training run."""
    logged = curves is not None and len(curves.spike_step) > 0
    fig = viz.new_figure(1, 2 if logged else 1, panel_size=(4.6, 3.2))
    viz.draw_spike_rates(fig.axes[0], rates, ylabel="spikes per neuron per pass")
    fig.axes[0].set_title("measured on the test windows", fontsize=9)
    if logged:
        ax = fig.axes[1]
        for layer, values in curves.spike_rates.items():
            ax.plot(curves.spike_step, values, marker=".", label=layer)
        ax.set_xlabel("optimisation step")
        ax.set_ylabel("spikes per neuron per pass")
        ax.set_title("during training (last pass of a window)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    return fig


# --------------------------------------------------------------------------------------- images of warped events


def iwe_sharpness(iwe_after, iwe_before) -> float:
    """The flow warp loss of one window (Stoffregen et al., ECCV 2020), ``var(IWE(flow)) / var(IWE(0))`` over
    all ``H * W`` pixels of the polarity-summed images (each ``(H, W)`` or ``(2, H, W)``, events per pixel);
    above 1 the flow sharpens the events. NaN where the unwarped image is constant (no events). Same
    definition as :func:`eventflow.metrics.flow_warp_loss` (unbiased variances; the bias cancels).

    >>> before = np.zeros((4, 4)); before[1, 1:3] = 1.0   # one event smeared over two pixels
    >>> after = np.zeros((4, 4)); after[1, 2] = 2.0       # both warped onto one pixel
    >>> round(iwe_sharpness(after, before), 3)       # (4 - 16 m^2) / (2 - 16 m^2), m = 1/8 the mean
    2.143
    """
    a, b = viz.iwe_2d(iwe_after), viz.iwe_2d(iwe_before)
    if a.shape != b.shape:
        raise ValueError(f"iwe_sharpness: warped image {a.shape} and unwarped image {b.shape} differ in shape")
    var_b = float(b.var(ddof=1)) if b.size > 1 else 0.0
    return float(a.var(ddof=1)) / var_b if var_b > 0 else math.nan


def _models_of(run: RunRecord, methods: Sequence[str] | None) -> list[str]:
    labels = [m for m in run.iwe_after if m != ZERO_FLOW] if methods is None else list(methods)
    unknown = [m for m in labels if m not in run.iwe_after]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; the run has {list(run.iwe_after)}")
    return labels


def _window_index(run: RunRecord, window: int) -> int:
    n = len(run.times)
    if not -n <= int(window) < n:
        raise IndexError(f"window {window} out of range; the run has {n} windows")
    return int(window) % n


def sharpness_table(run: RunRecord, methods: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Per model of ``run`` (default: all but zero flow): the :func:`iwe_sharpness` (FWL) of its flow in each
    window, mean, min and max over the windows (the IWEs of :func:`eventflow.evalviz.record_run` are rounded
    to pixels and warped to the end of the window). Format with :func:`eventflow.evaluate.format_table`."""
    rows = []
    for label in _models_of(run, methods):
        values = np.array([iwe_sharpness(after, before) for after, before in zip(run.iwe_after[label],
                                                                                  run.iwe_before)])
        finite = values[np.isfinite(values)]
        rows.append({"model": label, "windows": int(finite.size),
                     "FWL mean": float(finite.mean()) if finite.size else None,
                     "FWL min": float(finite.min()) if finite.size else None,
                     "FWL max": float(finite.max()) if finite.size else None})
    return rows


def plot_iwe_before_after(run: RunRecord, window: int = -1, methods: Sequence[str] | None = None) -> Figure:
    """The image of the events of ``window`` of ``run`` unwarped, then warped with each model's flow (top row,
    one grey scale: darker = more events, titled with the window's FWL), and each model's flow colour-coded
    (bottom row, :func:`eventflow.viz.flow_to_rgb`; the first panel shows the events). Each flow panel has its
    own scale, the 99th percentile of its speed [px] on the pixels with events (where the loss sees the flow;
    elsewhere the flow is unconstrained), written under its colour wheel.
    ``methods`` defaults to every model of the run but zero flow (whose IWE is the unwarped one)."""
    t = _window_index(run, window)
    labels = _models_of(run, methods)
    before = run.iwe_before[t]
    images = {"no warping": before, **{f"{label}: FWL {iwe_sharpness(run.iwe_after[label][t], before):.3f}":
                                       run.iwe_after[label][t] for label in labels}}
    h, w = before.shape[-2:]
    fig = viz.new_figure(2, len(images), panel_size=(3.0, 3.0 * h / w + 0.3))
    scale = viz.robust_max(np.concatenate([viz.iwe_2d(m).ravel() for m in images.values()]))
    for ax, (name, image) in zip(fig.axes[:len(images)], images.items()):
        ax.imshow(viz.iwe_2d(image), cmap="gray_r", vmin=0.0, vmax=scale, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(name, fontsize=8)
    bottom = fig.axes[len(images):]
    viz.plot_events(run.counts[t], ax=bottom[0], title="input events")
    events = run.event_mask[t]  # (H, W) where the loss sees the flow
    for ax, label in zip(bottom[1:], labels):
        flow = run.flows_px[label][t]  # (2, H, W) px
        scale = viz.robust_max(np.hypot(flow[0], flow[1])[events], floor=1e-3)
        viz.plot_flow(flow, ax=ax, max_magnitude=scale, title=f"{label}: flow [px]")
    fig.suptitle(f"{run.path.stem}, window {t} (t = {run.times[t]:.3f} s): images of warped events", fontsize=9)
    return fig
