"""Inspecting recordings before training on them (notebook 01): statistics per file, windows for the event
scrubber and the figures, and a check that a recording's ground-truth flow is right.

- :func:`stats_rows` / :func:`stats_table`: one row per recording (resolution, duration, events, event rate,
  polarity balance, GT maps and frames present), from :func:`eventflow.cli.inspect.summarize`, for several
  data sets at once (:func:`default_datasets`: the simulated splits and the shared real recordings);
- :func:`scrubber_data`: the first windows of a recording as :class:`eventflow.widgets.ExplorerData` (event
  counts, voxel grids, ground truth where the file has it), for :func:`eventflow.widgets.display_scrubber`
  (:func:`display_samples`) and the figures :func:`events_voxels_figure`, :func:`gt_flow_figure`;
  :func:`load_samples` does it for several recordings (:func:`first_recordings`, :func:`recordings_of`);
- :func:`check_ground_truth`: contrast maximisation as a test of the ground truth. Within each GT interval,
  events warped to the interval's end by the right flow line up on the edges that caused them, so the image of
  warped events (IWE) gets sharper: the Flow Warp Loss (Stoffregen et al., ECCV 2020; used by Hagenaars et al.,
  NeurIPS 2021, Sec. 4)

      FWL = var(IWE(flow)) / var(IWE(0))

  (:func:`eventflow.metrics.flow_warp_loss`) is well above 1 for the ground truth, exactly 1 for zero flow,
  and lower for a wrong flow: the ground truth scaled by 0.5 or 1.5, or turned by 90 degrees
  (:data:`FLOW_VARIANTS`). :func:`warped_event_images` draws those images for one window.

>>> sorted(FLOW_VARIANTS)
['0.5 x GT', '1.5 x GT', 'GT', 'GT turned 90 deg', 'zero']
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from matplotlib.figure import Figure

from eventflow import viz
from eventflow.cli.inspect import summarize
from eventflow.datasets import encode_batch
from eventflow.evaluate import format_table, gt_as_network_output
from eventflow.io.h5 import Recording
from eventflow.loss import empty_loss_buffer, loss_buffer_append
from eventflow.metrics import flow_warp_loss, iwe_for_visualisation
from eventflow.widgets import EventScrubber, ExplorerData, display_scrubber
from eventflow.windows import WindowSpec, load_window, plan_windows

#: Windows of recordings without ground truth: 15,000 events, as the ECD and HQF evaluation of the paper.
EVENT_WINDOW = 15000

#: Wrong flows the ground truth must beat, as functions of the GT flow ``(B, 2, H, W)``; ``zero`` is the
#: reference (FWL = 1).
FLOW_VARIANTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "GT": lambda f: f,
    "zero": torch.zeros_like,
    "0.5 x GT": lambda f: 0.5 * f,
    "1.5 x GT": lambda f: 1.5 * f,
    "GT turned 90 deg": lambda f: torch.stack([-f[:, 1], f[:, 0]], dim=1),  # (u, v) -> (-v, u)
}


# ------------------------------------------------------------------------------------------------- statistics


def default_datasets(profile: str = "quick") -> dict[str, list[Path]]:
    """The recordings notebook 01 inspects: ``sim train`` and ``sim test``, the simulated splits of ``profile``
    (:func:`eventflow.simulate.ensure_default_dataset`, generated on first use), and ``real (shared)``, the
    shared folder's real recordings (left out where the folder is absent)."""
    from eventflow.simulate import ensure_default_dataset
    from eventflow.study import shared_recordings

    sim = ensure_default_dataset(profile, progress=True)
    datasets = {"sim train": list(sim.train), "sim test": list(sim.test)}
    real = shared_recordings()
    if real:
        datasets["real (shared)"] = real
    return datasets


def recording_row(path: str | os.PathLike, dataset: str = "") -> dict[str, Any]:
    """Statistics of one recording as a table row: resolution, duration [s], events, event rate [Mev/s],
    positive events [%], and the number of ``flow_dt1`` and ``flow_dt4`` maps and frames (0: absent)."""
    s = summarize(path)
    h, w = s["resolution"]
    groups = s["groups"]
    rate = s["event_rate_hz"]
    return {
        "data set": dataset,
        "recording": Path(path).stem,
        "H x W": f"{h}x{w}",
        "duration s": s["duration_s"],
        "events": s["num_events"],
        "Mev/s": None if rate is None else rate / 1e6,
        "positive %": 100.0 * s["positive_fraction"],
        "flow_dt1": groups.get("flow_dt1", {}).get("count", 0),
        "flow_dt4": groups.get("flow_dt4", {}).get("count", 0),
        "frames": groups.get("images", {}).get("count", 0),
    }


def stats_rows(datasets: Mapping[str, Sequence[str | os.PathLike]]) -> list[dict[str, Any]]:
    """:func:`recording_row` of every recording of every data set (``{name: [paths]}``), each data set followed
    by a total row (durations and events summed, the rate over the summed duration, the positive share over all
    events)."""
    rows: list[dict[str, Any]] = []
    for name, files in datasets.items():
        per_file = [recording_row(p, name) for p in files]
        if not per_file:
            continue
        duration = sum(r["duration s"] for r in per_file)
        events = sum(r["events"] for r in per_file)
        positive = sum(r["positive %"] * r["events"] for r in per_file) / events
        total = {
            "data set": name,
            "recording": f"(all {len(per_file)})",
            "H x W": ", ".join(dict.fromkeys(r["H x W"] for r in per_file)),
            "duration s": duration,
            "events": events,
            "Mev/s": events / duration / 1e6 if duration > 0 else None,
            "positive %": positive,
            **{k: sum(r[k] for r in per_file) for k in ("flow_dt1", "flow_dt4", "frames")},
        }
        rows += per_file + [total]
    return rows


def stats_table(datasets: Mapping[str, Sequence[str | os.PathLike]], digits: int = 3) -> str:
    """:func:`stats_rows` as aligned text (:func:`eventflow.evaluate.format_table`)."""
    return format_table(stats_rows(datasets), digits=digits)


# ------------------------------------------------------------------------------------------------- windows


def default_spec(path: str | os.PathLike) -> WindowSpec:
    """GT windows of one ``flow_dt1`` interval where the recording has them, else :data:`EVENT_WINDOW` events."""
    with Recording(path) as rec:
        return WindowSpec("gt", 1.0) if rec.has_gt(1) else WindowSpec("events", EVENT_WINDOW)


def _read_windows(path: str | os.PathLike, spec: WindowSpec, max_windows: int | None, first: int,
                  encodings: tuple[str, ...], num_bins: int | None) -> tuple[list, dict[str, torch.Tensor]]:
    """Windows ``first .. first + max_windows`` of ``path`` and their batch dict (one lane per window)."""
    with Recording(path) as rec:
        windows = plan_windows(rec, spec)
        stop = len(windows) if max_windows is None else first + max_windows
        windows = windows[first:stop]
        if not windows:
            raise ValueError(f"{path}: no window from index {first} ({spec}; the recording has {rec.num_events} "
                             f"events)")
        events = [load_window(rec, w) for w in windows]
        gts = [rec.read_gt(spec.dt, w.gt_index) for w in windows] if spec.mode == "gt" else None
        batch = encode_batch(events, windows, rec.resolution, gt=gts, encodings=encodings, num_bins=num_bins)
    return windows, batch


def scrubber_data(path: str | os.PathLike, spec: WindowSpec | None = None, max_windows: int | None = 20,
                  num_bins: int = 5, first: int = 0) -> ExplorerData:
    """Windows ``first .. first + max_windows`` of a recording as :class:`~eventflow.widgets.ExplorerData`:
    event counts ``(T, 2, H, W)``, voxel grids ``(T, num_bins, H, W)``, window end times [s], and for ``gt``
    windows the ground truth ``(T, 2, H, W)`` [px over the GT interval]. ``spec`` defaults to
    :func:`default_spec`. Raises ValueError (naming the file) when there is no such window."""
    spec = default_spec(path) if spec is None else spec
    windows, batch = _read_windows(path, spec, max_windows, first, ("cnt", "voxel"), num_bins)
    return ExplorerData.from_arrays(batch["event_cnt"], [w.t_end for w in windows], gt_flow=batch.get("gt_flow"),
                                    voxels=batch["event_voxel"])


def first_recordings(datasets: Mapping[str, Sequence[str | os.PathLike]], every: Sequence[str] = ()
                     ) -> dict[str, Path]:
    """The first recording of each data set, labelled by the data set; for the data sets named in ``every``,
    all their recordings, labelled ``"<data set>: <file name>"``. Empty data sets are left out."""
    out: dict[str, Path] = {}
    for name, files in datasets.items():
        if name in every:
            out.update({f"{name}: {Path(p).stem}": Path(p) for p in files})
        elif files:
            out[name] = Path(files[0])
    return out


def recordings_of(datasets: Mapping[str, Sequence[str | os.PathLike]], name: str) -> dict[str, Path]:
    """Every recording of data set ``name``, labelled by file name; ``{}`` where the data set is absent (e.g.
    the shared real recordings without the shared folder)."""
    return {Path(p).stem: Path(p) for p in datasets.get(name, ())}


def load_samples(recordings: Mapping[str, str | os.PathLike], max_windows: int | None = 20,
                 num_bins: int = 5) -> dict[str, ExplorerData]:
    """:func:`scrubber_data` (default windows) of each recording of ``{label: path}``, keeping the labels."""
    return {label: scrubber_data(p, max_windows=max_windows, num_bins=num_bins) for label, p in recordings.items()}


def display_samples(samples: Mapping[str, ExplorerData]) -> dict[str, EventScrubber]:
    """Show an :class:`~eventflow.widgets.EventScrubber` (widget and static summary) per sample, under its
    label; prints that there is nothing to show for an empty mapping. Returns the scrubbers."""
    if not samples:
        print("no recordings to show")
        return {}
    scrubbers = {}
    for label, data in samples.items():
        print(label)
        scrubbers[label] = display_scrubber(data)
    return scrubbers


# ------------------------------------------------------------------------------------------------- ground truth


class GTCheck(NamedTuple):
    """Result of :func:`check_ground_truth`: ``rows`` (one per recording: the median FWL of every flow of
    :data:`FLOW_VARIANTS`, the number of windows and the verdict), ``fwl`` (recording -> variant -> ``(K,)``
    FWL per window) and ``passed`` (every recording passed)."""

    rows: list[dict[str, Any]]
    fwl: dict[str, dict[str, np.ndarray]]
    passed: bool

    def table(self) -> str:
        """The rows as aligned text (median FWL per flow)."""
        return format_table(self.rows, digits=2)

    def require(self) -> None:
        """Raise ValueError (one line) naming the recordings whose ground truth failed the check."""
        failed = [r["recording"] for r in self.rows if not r["passed"]]
        if failed:
            raise ValueError(f"the ground truth failed the contrast check in {', '.join(failed)}")


def _variant_buffers(batch: Mapping[str, torch.Tensor], variants: Sequence[str]):
    gt = gt_as_network_output(batch["gt_flow"], batch["dt_gt"], batch["dt_input"])  # (B, 2, H, W) network units
    for name in variants:
        buffer = loss_buffer_append(empty_loss_buffer(), [FLOW_VARIANTS[name](gt)], batch["event_list"],
                                    batch["pol_mask"], batch["event_valid"], batch["event_mask"])
        yield name, buffer


def _fwl_per_variant(path: Path, max_windows: int | None, min_events: int) -> dict[str, np.ndarray]:
    _, batch = _read_windows(path, WindowSpec("gt", 1.0), max_windows, 0, ("list", "mask"), None)
    keep = batch["num_events"] >= min_events
    if not bool(keep.any()):
        raise ValueError(f"{path}: no GT interval with at least {min_events} events among the first "
                         f"{keep.numel()}")
    batch = {k: v[keep] for k, v in batch.items()}
    return {name: flow_warp_loss(buffer).numpy() for name, buffer in _variant_buffers(batch, list(FLOW_VARIANTS))}


def check_ground_truth(paths: str | os.PathLike | Sequence[str | os.PathLike], max_windows: int | None = 30,
                       min_events: int = 200, min_fwl: float = 1.2) -> GTCheck:
    """Test the ``flow_dt1`` ground truth of one or more recordings by contrast maximisation (see the module
    docstring).

    Each of the first ``max_windows`` GT intervals with at least ``min_events`` events is one window: its
    events, timestamps normalised over the window, are warped to its end by each flow of
    :data:`FLOW_VARIANTS` (the GT displacement scaled to the window's duration,
    :func:`eventflow.evaluate.gt_as_network_output`) and scored with :func:`eventflow.metrics.flow_warp_loss`.
    A recording passes when the median FWL with the ground truth is at least ``min_fwl`` and above the median
    of every other flow. Raises ValueError (naming the file) without ``flow_dt1`` maps or without such windows.
    """
    paths = [Path(paths)] if isinstance(paths, str | os.PathLike) else [Path(p) for p in paths]
    rows, fwl = [], {}
    for path in paths:
        fwl[path.stem] = per_variant = _fwl_per_variant(path, max_windows, min_events)
        medians = {name: float(np.median(v)) for name, v in per_variant.items()}
        best_wrong = max(m for name, m in medians.items() if name != "GT")
        passed = medians["GT"] >= min_fwl and medians["GT"] > best_wrong
        rows.append({"recording": path.stem, **medians, "windows": int(per_variant["GT"].size), "passed": passed})
    return GTCheck(rows, fwl, all(r["passed"] for r in rows))


def warped_event_images(path: str | os.PathLike, window: int = 0,
                        variants: Sequence[str] = ("zero", "GT", "0.5 x GT", "GT turned 90 deg")
                        ) -> dict[str, np.ndarray]:
    """Images of the events of GT window ``window`` of ``path`` warped to the window's end by each flow of
    ``variants`` (:data:`FLOW_VARIANTS`), ``{"<variant>: FWL <value>": (H, W) events per pixel}`` (both
    polarities), for :func:`eventflow.viz.plot_iwe`. The zero-flow image is the events as recorded."""
    unknown = [v for v in variants if v not in FLOW_VARIANTS]
    if unknown:
        raise ValueError(f"unknown flow variant(s) {unknown}; choose from {', '.join(FLOW_VARIANTS)}")
    _, batch = _read_windows(path, WindowSpec("gt", 1.0), 1, window, ("list", "mask"), None)
    images = {}
    for name, buffer in _variant_buffers(batch, variants):
        value = float(flow_warp_loss(buffer)[0])
        pair = iwe_for_visualisation(buffer.flow[0][0], batch["event_list"], batch["pol_mask"], batch["event_valid"])
        label = f"{name}: FWL {value:.2f}" if math.isfinite(value) else f"{name}: no events"
        images[label] = pair.after[0].sum(dim=0).numpy()  # (H, W)
    return images


# ------------------------------------------------------------------------------------------------- figures


def _window_index(data: ExplorerData, window: int) -> int:
    if not -data.num_windows <= window < data.num_windows:
        raise IndexError(f"window {window} out of range for {data.num_windows} windows")
    return window % data.num_windows


def events_voxels_figure(samples: Mapping[str, ExplorerData], window: int = 0) -> Figure:
    """One row per data set of ``samples`` (``{label: ExplorerData}`` with voxel grids): the event frame of
    ``window`` (red positive, blue negative) and the bins of its voxel grid (signed, red positive, blue
    negative, one colour scale per row)."""
    if not samples or any(d.voxels is None for d in samples.values()):
        raise ValueError("events_voxels_figure needs at least one sample, each with voxel grids")
    bins = max(d.voxels.shape[1] for d in samples.values())
    fig = viz.new_figure(len(samples), 1 + bins, panel_size=(2.2, 2.0))
    axes = np.asarray(fig.axes).reshape(len(samples), 1 + bins)
    for row, (label, d) in zip(axes, samples.items()):
        t = _window_index(d, window)
        viz.plot_events(d.counts[t], ax=row[0], title=f"{label}\n{int(d.counts[t].sum()):,} events")
        voxel = d.voxels[t]
        scale = viz.robust_max(np.abs(voxel))
        for b, ax in enumerate(row[1:]):
            if b < voxel.shape[0]:
                ax.imshow(voxel[b], cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="nearest")
                ax.set_title(f"voxel bin {b}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    return fig


def gt_flow_figure(samples: Mapping[str, ExplorerData], window: int = 0) -> Figure:
    """One row per sample of ``samples`` (``{label: ExplorerData}``) that has ground truth (the others are left
    out): the events of ``window``, its ground-truth flow colour-coded with a colour-wheel legend (rim = the
    row's 99th-percentile magnitude [px over the GT interval]), and the flow as arrows over the events."""
    samples = {label: d for label, d in samples.items() if d.gt_flow is not None}
    if not samples:
        raise ValueError("gt_flow_figure needs at least one sample with ground-truth flow")
    fig = viz.new_figure(len(samples), 3, panel_size=(3.0, 2.9))
    axes = np.asarray(fig.axes).reshape(len(samples), 3)
    for row, (label, d) in zip(axes, samples.items()):
        t = _window_index(d, window)
        viz.plot_events(d.counts[t], ax=row[0], title=f"{label}\nevents")
        viz.plot_flow(d.gt_flow[t], ax=row[1], title="GT flow (colour)")
        viz.plot_flow_arrows(d.gt_flow[t], background=d.counts[t], ax=row[2], title="GT flow")
    return fig
