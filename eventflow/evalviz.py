"""Looking at evaluation runs: per-window arrays of several models over one recording, and the figures of the
evaluation notebook (endpoint-error maps, flow arrows over the events).

:func:`record_run` runs models side by side over the first windows of a recording (state carried, hot-pixel
filter as in the evaluation) and keeps, per window, the event counts, every model's flow in pixels, the ground
truth, the images of warped events and the spike rates; :func:`eventflow.widgets.explorer_data_from_run`
turns it into the data of the flow explorer widget.

Flows are pixels of displacement over the input window for ``events`` windows, and over the paired GT interval
(``flow * flow_scaling * dt_gt / dt_input``) for ``gt`` windows, so that they compare with the ground truth.

>>> import tempfile, pathlib, numpy as np
>>> from eventflow.events import make_events
>>> from eventflow.io.h5write import write_recording
>>> from eventflow.models import build_model
>>> from eventflow.windows import WindowSpec
>>> path = pathlib.Path(tempfile.mkdtemp()) / "run.h5"
>>> _ = write_recording(path, make_events([1, 2, 3] * 10, [1] * 30, np.linspace(0, 1, 30), [1] * 30), (4, 5))
>>> run = record_run({"net": build_model("LIFFireNet_short", base_num_channels=4)}, path, WindowSpec("events", 12),
...                  progress=False)
>>> run.counts.shape, sorted(run.flows_px), sorted(run.spike_rates["net"])[:2]
((2, 2, 4, 5), ['net', 'zero flow'], ['G1', 'G2'])
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from eventflow import viz
from eventflow.energy import layer_sizes
from eventflow.evaluate import ZERO_FLOW
from eventflow.inference import (
    FLOW_SCALING,
    REFERENCE_HOT_FILTER,
    HotFilter,
    ModelRunner,
    check_model_resolution,
    hot_filtered,
    iter_batches,
    plan_recording,
)
from eventflow.metrics import evaluation_mask, iwe_for_visualisation
from eventflow.models import FlowModel
from eventflow.windows import WindowSpec


class RunRecord(NamedTuple):
    """Per-window arrays of models run side by side over one recording (``T`` windows, ``H x W``):

    - ``counts`` ``(T, 2, H, W)``: the model input counts (hot-pixel filter applied); ``times`` ``(T,)``: window
      end [s]; ``event_mask`` ``(T, H, W)`` bool;
    - ``flows_px``: label -> ``(T, 2, H, W)`` px (see the module docstring; 0 for an empty window);
    - ``gt_px``: ``(T, 2, H, W)`` px over the GT interval, or None (``events`` windows);
    - ``iwe_before`` ``(T, 2, H, W)``: the events unwarped; ``iwe_after``: label -> ``(T, 2, H, W)`` warped to the
      end of the window with that flow (rounded to pixels);
    - ``spike_rates``: label -> layer -> ``(T, C)`` spikes per neuron in the window (spiking layers only).
    """

    path: Path
    spec: WindowSpec
    counts: np.ndarray
    times: np.ndarray
    event_mask: np.ndarray
    flows_px: dict[str, np.ndarray]
    gt_px: np.ndarray | None
    iwe_before: np.ndarray
    iwe_after: dict[str, np.ndarray]
    spike_rates: dict[str, dict[str, np.ndarray]]


def record_run(
    models: Mapping[str, FlowModel],
    path: str | os.PathLike,
    spec: WindowSpec,
    *,
    max_windows: int | None = 32,
    zero_flow: bool = True,
    hot_filter: HotFilter | None = REFERENCE_HOT_FILTER,
    flow_scaling: float = FLOW_SCALING,
    resolution: tuple[int, int] | None = None,
    crop: bool = False,
    compat: str | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> RunRecord:
    """Run ``models`` (label -> model) side by side over the first ``max_windows`` windows of ``path`` and keep
    the arrays of :class:`RunRecord` (memory grows with ``T x H x W x models``: keep ``max_windows`` small).
    ``zero_flow`` adds a ``zero flow`` entry."""
    if not models and not zero_flow:
        raise ValueError("record_run needs at least one model (or zero_flow=True)")
    plan = plan_recording(path, spec, resolution=resolution, crop=crop, compat=compat, max_windows=max_windows)
    for model in models.values():
        check_model_resolution(model, plan)
    runners = {label: ModelRunner(m, device, record_activity=True) for label, m in models.items()}
    encodings = ["cnt", "mask", "list"]
    voxel = [m for m in models.values() if m.config.encoding == "voxel"]
    if voxel:
        encodings.append("voxel")
    batches = iter_batches([plan], 1, encodings=encodings, num_bins=voxel[0].config.num_bins if voxel else None,
                           round_ts=voxel[0].config.round_encoding if voxel else False)
    h, w = plan.resolution
    sizes = {label: layer_sizes(m, h, w) for label, m in models.items()}
    labels = list(models) + ([ZERO_FLOW] if zero_flow else [])
    counts, times, masks, gts, before = [], [], [], [], []
    flows: dict[str, list[np.ndarray]] = {k: [] for k in labels}
    after: dict[str, list[np.ndarray]] = {k: [] for k in labels}
    rates: dict[str, dict[str, list[np.ndarray]]] = {k: {} for k in models}
    gt_mode = spec.mode == "gt"
    for batch, _ in tqdm(hot_filtered(batches, hot_filter), total=len(plan.windows), desc=plan.path.name,
                         unit="win", disable=not progress):
        raw = {label: runner.step(batch) for label, runner in runners.items()}
        step_flows = {label: out[0] for label, out in raw.items()}
        if zero_flow:
            step_flows[ZERO_FLOW] = torch.zeros(1, 2, h, w)
        dt_in, dt_gt = float(batch["dt_input"][0]), float(batch["dt_gt"][0])
        scale = flow_scaling * (dt_gt / dt_in if gt_mode and dt_in > 0 else 1.0)
        if gt_mode and dt_in <= 0:
            scale = 0.0
        for label, flow in step_flows.items():
            flows[label].append((flow[0] * scale).numpy())
            pair = iwe_for_visualisation(flow, batch["event_list"], batch["pol_mask"], batch["event_valid"],
                                         flow_scaling=flow_scaling)
            after[label].append(pair.after[0].numpy())
        before.append(pair.before[0].numpy())
        for label, (_, _, activity) in raw.items():
            for layer, act in activity.items():
                if act.spike_count is not None:
                    _, lh, lw = sizes[label][layer]
                    rates[label].setdefault(layer, []).append((act.spike_count.double() / (lh * lw)).numpy())
        counts.append(batch["event_cnt"][0].numpy())
        times.append(float(batch["t_end"][0]))
        masks.append(batch["event_mask"][0, 0].numpy() > 0)
        if gt_mode:
            gts.append(batch["gt_flow"][0].numpy())
    return RunRecord(
        path=plan.path,
        spec=spec,
        counts=np.stack(counts).astype(np.float32),
        times=np.asarray(times),
        event_mask=np.stack(masks),
        flows_px={k: np.stack(v).astype(np.float32) for k, v in flows.items()},
        gt_px=np.stack(gts).astype(np.float32) if gt_mode else None,
        iwe_before=np.stack(before).astype(np.float32),
        iwe_after={k: np.stack(v).astype(np.float32) for k, v in after.items()},
        spike_rates={k: {layer: np.stack(r) for layer, r in v.items()} for k, v in rates.items() if v},
    )


def _methods(run: RunRecord, methods: Sequence[str] | None) -> list[str]:
    methods = list(run.flows_px) if methods is None else list(methods)
    unknown = [m for m in methods if m not in run.flows_px]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; the run has {list(run.flows_px)}")
    return methods


def _window(run: RunRecord, window: int) -> int:
    t = int(window)
    if not -len(run.times) <= t < len(run.times):
        raise IndexError(f"window {window} out of range; the run has {len(run.times)} windows")
    return t % len(run.times)


def plot_error_maps(run: RunRecord, window: int = -1, methods: Sequence[str] | None = None) -> Figure:
    """Endpoint-error maps [px] of each method at ``window``, on the pixels the AEE counts (an event and GT
    other than (0, 0); the rest grey), on one colour scale, with the ground truth's colour-coded flow first."""
    if run.gt_px is None:
        raise ValueError(f"{run.path}: error maps need ground truth (a run over gt windows)")
    t = _window(run, window)
    methods = _methods(run, methods)
    gt = run.gt_px[t]
    mask = evaluation_mask(torch.from_numpy(run.event_mask[t][None, None].astype(np.float32)),
                           torch.from_numpy(gt[None]))[0].numpy()
    errors = [np.where(mask, viz.endpoint_error_map(run.flows_px[m][t], gt), np.nan) for m in methods]
    finite = np.concatenate([e[np.isfinite(e)] for e in errors]) if errors else np.zeros(0)
    vmax = viz.robust_max(finite) if finite.size else 1.0
    fig = viz.new_figure(1, len(methods) + 1, panel_size=(3.4, 3.0 * gt.shape[1] / gt.shape[2] + 0.4))
    viz.plot_flow(gt, ax=fig.axes[0], title="ground truth")
    for ax, m in zip(fig.axes[1:len(methods) + 1], methods):
        viz.plot_error_map(run.flows_px[m][t], gt, ax=ax, mask=mask, vmax=vmax, title=m)
    fig.suptitle(f"{run.path.stem}, window {t} (t = {run.times[t]:.3f} s): endpoint error", fontsize=9)
    return fig


def plot_flow_over_events(run: RunRecord, window: int = -1, methods: Sequence[str] | None = None,
                          step: int | None = None) -> Figure:
    """Each method's flow [px] as arrows over the window's events (and the ground truth where present), all
    with one arrow gain so that lengths compare across panels."""
    t = _window(run, window)
    methods = _methods(run, methods)
    panels = [(m, run.flows_px[m][t]) for m in methods]
    if run.gt_px is not None:
        panels.insert(0, ("ground truth", run.gt_px[t]))
    h, w = run.counts.shape[-2:]
    rows, cols, step = viz.arrow_grid((h, w), step)
    speeds = np.concatenate([np.hypot(*viz.sample_arrows(f, rows, cols)).ravel() for _, f in panels])
    gain = step / viz.robust_max(speeds, floor=1e-3)
    fig = viz.new_figure(1, len(panels), panel_size=(3.2, 3.2 * h / w + 0.3))
    for ax, (name, flow) in zip(fig.axes, panels):
        viz.plot_flow_arrows(flow, background=run.counts[t], ax=ax, step=step, gain=gain, title=name)
    fig.suptitle(f"{run.path.stem}, window {t} (t = {run.times[t]:.3f} s): flow over events", fontsize=9)
    return fig
