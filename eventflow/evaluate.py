"""The evaluation protocols of Hagenaars et al. (NeurIPS 2021, Sec. 4.1) on any data in the reference layout.

Protocols (:data:`PROTOCOLS`), after the reference's ``configs/eval_*.yml``:

- ``mvsec-dt1``: one window per ground-truth interval (the events between ``flow_dt1`` maps ``k - 1`` and ``k``);
  AEE, outliers and AAE on the pixels with events and valid GT (:mod:`eventflow.metrics`), plus FWL and RSAT of
  the interval's events;
- ``mvsec-dt4``: each ``flow_dt4`` interval split into 4 windows by event count; the model runs on every
  quarter (its state carried), and the GT metrics are computed once per interval from the LAST quarter's flow
  scaled to the interval, ``flow * flow_scaling * dt_gt / dt_quarter``, with the last quarter's event mask (the
  reference's ``idx_AEE`` counter); FWL and RSAT over the 4 quarters as one window of 4 passes;
- ``events``: windows of ``N`` events (15000 for ECD and HQF), FWL and RSAT per window.

``splits`` (an extension, not in the paper) cuts each GT interval of ``mvsec-dt1``/``mvsec-dt4`` into that many
windows by event count instead of 1 or 4, with the GT metrics from the last one as in dt=4
(:func:`with_splits`). It matches the evaluation passes to the passes a model was trained on: a network
trained on passes of a few milliseconds predicts the motion over a few milliseconds, and one GT interval of
1/30 s in a single pass is then far outside what it has seen (``benchmarks/RESULTS.md``, "Why the quick
LIF-FireNet does not beat zero flow").

The hot-pixel filter of the reference evaluation is on by default. Every sequence starts from a zero state
and a fresh filter. Simulated data in the reference layout (``flow_dt1``/``flow_dt4``) works the same way.

Sanity rows come with every run: ``zero flow`` (AEE = mean GT magnitude on the evaluated pixels, FWL = RSAT =
1) and, with ground truth, ``GT flow`` (the GT used as the prediction, converted to network units with
:func:`gt_as_network_output`: AEE ~ 0, and the FWL and RSAT that the true motion reaches).

Means: ``per_sequence`` averages the evaluation windows of a sequence (NaN windows, e.g. no evaluated pixel,
left out); ``mean`` averages the sequences (each counts once, as the paper's per-sequence tables).

``compat="hagenaars2021"`` selects the reference definitions: AEE outliers judged against the predicted
magnitude (reported here in percent as well), an empty mask scoring 0, the event list of FWL and RSAT keeping
the hot pixels' events, the reference's time search, and one ``idx_AEE`` counter across sequences. By default
the hot pixels' events are also dropped from the event list.

>>> sorted(PROTOCOLS)
['events', 'mvsec-dt1', 'mvsec-dt4']
>>> protocol_spec("mvsec-dt4")
WindowSpec(mode='gt', size=0.25, dt=4)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

import eventflow
from eventflow.atomic import atomic_path
from eventflow.inference import (
    FLOW_SCALING,
    HotFilter,
    ModelRunner,
    check_model_resolution,
    hot_filtered,
    iter_batches,
    model_encodings,
    plan_recording,
    prepare_model,
    recordings_in,
)
from eventflow.loss import LossBuffer, empty_loss_buffer, loss_buffer_append
from eventflow.metrics import (
    average_angular_error,
    average_endpoint_error,
    flow_warp_loss,
    ratio_squared_average_timestamps,
)
from eventflow.models import FlowModel
from eventflow.warping import HAGENAARS2021, check_compat
from eventflow.windows import WindowSpec

ZERO_FLOW = "zero flow"
GT_FLOW = "GT flow"
GT_METRICS = ("AEE", "outliers_pct", "AAE")
EVENT_METRICS = ("FWL", "RSAT")


class Protocol(NamedTuple):
    """An evaluation protocol: ``mode`` ``"gt"`` (windows of ``window`` GT intervals of ``flow_dt{dt}``, GT
    metrics every ``round(1 / window)`` windows) or ``"events"`` (``window`` events by default); the
    ``metrics`` it reports."""

    name: str
    mode: str
    window: float
    dt: int
    metrics: tuple[str, ...]
    description: str

    @property
    def windows_per_interval(self) -> int:
        """Windows per evaluation: 4 for dt=4 (metrics on the last quarter), else 1."""
        return int(round(1.0 / self.window)) if self.mode == "gt" else 1


PROTOCOLS: dict[str, Protocol] = {
    "mvsec-dt1": Protocol("mvsec-dt1", "gt", 1.0, 1, GT_METRICS + EVENT_METRICS,
                          "MVSEC dt=1: windows between consecutive flow_dt1 maps"),
    "mvsec-dt4": Protocol("mvsec-dt4", "gt", 0.25, 4, GT_METRICS + EVENT_METRICS,
                          "MVSEC dt=4: quarters of the flow_dt4 intervals, metrics on the last quarter"),
    "events": Protocol("events", "events", 15000, 1, EVENT_METRICS,
                       "ECD/HQF: windows of N events (15000 by default), FWL and RSAT per window"),
}


def get_protocol(name: str) -> Protocol:
    """The protocol ``name``; ValueError listing the valid ones otherwise."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def with_splits(protocol: str | Protocol, splits: int | None) -> Protocol:
    """``protocol`` with each GT interval cut into ``splits`` windows by event count (``None``: unchanged).

    >>> with_splits("mvsec-dt1", 8).window, with_splits("mvsec-dt1", 8).windows_per_interval
    (0.125, 8)
    >>> with_splits("mvsec-dt1", 8).name
    'mvsec-dt1/8'
    """
    proto = get_protocol(protocol) if isinstance(protocol, str) else protocol
    if splits is None:
        return proto
    if proto.mode != "gt":
        raise ValueError(f"splits applies to the GT protocols only, not {proto.name!r}")
    if isinstance(splits, bool) or not isinstance(splits, int) or splits < 1:
        raise ValueError(f"splits must be a positive integer, got {splits!r}")
    if splits == proto.windows_per_interval:
        return proto
    return proto._replace(name=f"{proto.name}/{splits}", window=1.0 / splits,
                          description=f"{proto.description}; every GT interval cut into {splits} windows by event "
                                      f"count, metrics on the last one")


def protocol_spec(protocol: str | Protocol, window_events: int | None = None) -> WindowSpec:
    """The windows of ``protocol``; ``window_events`` sets ``N`` of the ``events`` protocol (an error for the
    GT protocols, whose windows are fixed by the ground truth)."""
    proto = get_protocol(protocol) if isinstance(protocol, str) else protocol
    if proto.mode == "gt":
        if window_events is not None:
            raise ValueError(f"protocol {proto.name} cuts windows at the GT maps; window_events applies to the "
                             "'events' protocol only")
        return WindowSpec("gt", proto.window, dt=proto.dt)
    n = int(proto.window if window_events is None else window_events)
    if n <= 0:
        raise ValueError(f"window_events must be positive, got {n}")
    return WindowSpec("events", n)


def gt_interval_step(count: int, dt_gt: float, windows_per_interval: int) -> tuple[bool, int]:
    """The reference's ``idx_AEE`` counter: whether to evaluate after this window, and the new count.

    Windows with ``dt_gt <= 0`` (no GT interval) are skipped; the others are counted, and every
    ``windows_per_interval``-th one (the last quarter for dt=4) is evaluated, which resets the count.

    >>> count, out = 0, []
    >>> for dt in [0.1, 0.1, 0.1, 0.1, 0.1]:
    ...     now, count = gt_interval_step(count, dt, 4); out.append(now)
    >>> out
    [False, False, False, True, False]
    """
    if dt_gt <= 0:
        return False, count
    count += 1
    if count != windows_per_interval:
        return False, count
    return True, 0


def gt_as_network_output(gt_flow: Tensor, dt_gt: Tensor, dt_input: Tensor, flow_scaling: float = FLOW_SCALING
                         ) -> Tensor:
    """The network output that :func:`eventflow.metrics.predicted_displacement` turns into ``gt_flow``:
    ``gt * dt_input / (dt_gt * flow_scaling)`` (constant velocity over the interval; not clipped to the tanh
    range). ``gt_flow`` ``(B, 2, H, W)`` px over ``dt_gt``; ``dt_gt``, ``dt_input`` ``(B,)`` s. Zero where
    either interval is empty."""
    valid = (dt_gt > 0) & (dt_input > 0)
    ratio = torch.where(valid, dt_input / torch.where(valid, dt_gt, 1.0), 0.0)  # (B,)
    return (gt_flow.to(torch.float64) * ratio.view(-1, 1, 1, 1) / flow_scaling).to(torch.float32)


# ------------------------------------------------------------------------------------------------ results


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


@dataclass
class EvalResult:
    """Results of one evaluation run. ``methods``: the evaluated models (by label) then the baselines;
    ``per_window[method]``: one dict per evaluation window (``sequence``, ``window``, ``t_start``, ``t_end``
    [s], then the metrics); ``per_sequence[method][sequence]``: metric means and ``n_windows``;
    ``means[method]``: metric means over the sequences; ``settings``: what was run."""

    settings: dict[str, Any]
    metrics: tuple[str, ...]
    methods: list[str]
    per_window: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    per_sequence: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    means: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def mean(self) -> dict[str, float]:
        """Metric means of the first evaluated model."""
        return self.means[self.methods[0]]

    def summarise(self) -> None:
        """Fill ``per_sequence`` and ``means`` from ``per_window``."""
        for method in self.methods:
            per_seq: dict[str, dict[str, float]] = {}
            sequences = list(dict.fromkeys(r["sequence"] for r in self.per_window[method]))
            for seq in sequences:
                rows = [r for r in self.per_window[method] if r["sequence"] == seq]
                per_seq[seq] = {m: _nanmean([r[m] for r in rows]) for m in self.metrics}
                per_seq[seq]["n_windows"] = len(rows)
            self.per_sequence[method] = per_seq
            self.means[method] = {m: _nanmean([s[m] for s in per_seq.values()]) for m in self.metrics}

    def to_json(self, method: str | None = None) -> dict[str, Any]:
        """The ``metrics.json`` content: ``mean``, ``per_sequence``, ``per_window`` of ``method`` (default the
        first model), the other methods under ``baselines`` (``mean``, ``per_sequence``), and ``settings``.
        NaN is written as null."""
        method = method or self.methods[0]
        if method not in self.methods:
            raise ValueError(f"unknown method {method!r}; evaluated: {', '.join(self.methods)}")
        return _jsonable({
            "method": method,
            "mean": self.means[method],
            "per_sequence": self.per_sequence[method],
            "per_window": self.per_window[method],
            "baselines": {m: {"mean": self.means[m], "per_sequence": self.per_sequence[m]}
                          for m in self.methods if m != method},
            "settings": self.settings,
        })

    def write_json(self, path: str | os.PathLike, method: str | None = None) -> Path:
        """Write :meth:`to_json` to ``path`` atomically."""
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_json(method), indent=2, allow_nan=False) + "\n")
        return Path(path)

    def table(self, digits: int = 3) -> str:
        """Per-sequence and mean values of every method as aligned text."""
        rows = []
        for method in self.methods:
            for seq, values in self.per_sequence[method].items():
                rows.append({"method": method, "sequence": seq, **{m: values[m] for m in self.metrics},
                             "windows": values["n_windows"]})
            rows.append({"method": method, "sequence": "mean", **self.means[method]})
        return format_table(rows, digits=digits)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ------------------------------------------------------------------------------------------------ running


def _window_metrics(flow: Tensor, batch: Mapping[str, Tensor], buffer: LossBuffer, proto: Protocol,
                    flow_scaling: float, compat: str | None) -> dict[str, float]:
    """Metrics of one evaluation window: GT metrics from this (last) window, FWL and RSAT from ``buffer``."""
    out: dict[str, float] = {}
    if proto.mode == "gt":
        args = (flow, batch["gt_flow"], batch["event_mask"], batch["dt_gt"], batch["dt_input"], flow_scaling)
        err = average_endpoint_error(*args, compat=compat)
        out["AEE"] = float(err.aee[0])
        out["outliers_pct"] = float(err.outliers[0]) * (100.0 if compat == HAGENAARS2021 else 1.0)
        out["AAE"] = float(average_angular_error(*args)[0])
    if sum(int(v.sum()) for v in buffer.event_valid) == 0:
        out["FWL"] = out["RSAT"] = math.nan  # no events in the evaluation window
    else:
        out["FWL"] = float(flow_warp_loss(buffer, flow_scaling, compat=compat)[0])
        out["RSAT"] = float(ratio_squared_average_timestamps(buffer, flow_scaling, compat=compat)[0])
    return out


def _shared_encoding(models: Mapping[str, FlowModel]) -> tuple[tuple[str, ...], int | None, bool]:
    encodings: list[str] = ["cnt", "mask", "list"]
    voxel = {(m.config.num_bins, m.config.round_encoding) for m in models.values() if m.config.encoding == "voxel"}
    if len(voxel) > 1:
        raise ValueError(f"the models need different voxel grids {sorted(voxel)}; evaluate them separately")
    for m in models.values():
        encodings += [e for e in model_encodings(m, need_list=True) if e not in encodings]
    num_bins, round_ts = next(iter(voxel)) if voxel else (None, False)
    return tuple(encodings), num_bins, round_ts


def evaluate_models(
    models: Mapping[str, FlowModel],
    data: str | os.PathLike | Sequence[str | os.PathLike],
    protocol: str,
    *,
    window_events: int | None = None,
    splits: int | None = None,
    compat: str | None = None,
    hot_filter: bool = True,
    device: torch.device | str = "cpu",
    flow_scaling: float = FLOW_SCALING,
    max_windows: int | None = None,
    max_sequences: int | None = None,
    resolution: tuple[int, int] | None = None,
    crop: bool = False,
    baselines: bool = True,
    progress: bool = True,
    settings: Mapping[str, Any] | None = None,
) -> EvalResult:
    """Evaluate several models in one pass over the data (shared reading, hot-pixel filter and baselines).

    Args:
        models: label -> model (eval mode is set; each keeps its own state, reset per sequence).
        data: a recording, a folder of ``*.h5`` recordings (sorted) or a list of recordings.
        protocol: a key of :data:`PROTOCOLS`.
        window_events: ``N`` of the ``events`` protocol (default 15000).
        splits: windows per GT interval of a GT protocol (:func:`with_splits`; default 1 for dt=1, 4 for dt=4).
        compat: ``None`` or ``"hagenaars2021"`` (see the module docstring).
        hot_filter: the reference evaluation's hot-pixel filter (on in every reference evaluation config).
        flow_scaling: pixels per window per unit of network output (128).
        max_windows: evaluation windows per sequence (GT intervals for the GT protocols); ``max_sequences``:
            the first sequences only (both for quick runs).
        resolution, crop: as :func:`eventflow.inference.plan_recording`.
        baselines: add the ``zero flow`` and (GT protocols) ``GT flow`` rows.
        settings: extra entries for ``EvalResult.settings`` (e.g. checkpoints).

    Raises:
        ValueError (one line, naming the file): a GT protocol on data without GT, a resolution mismatch, all
        windows empty (see :func:`eventflow.inference.plan_recording`).
    """
    check_compat(compat)
    proto = with_splits(protocol, splits)
    spec = protocol_spec(proto, window_events)
    if not models:
        raise ValueError("evaluate_models needs at least one model")
    reserved = {ZERO_FLOW, GT_FLOW} & set(models)
    if reserved:
        raise ValueError(f"model labels {sorted(reserved)} are reserved for the baselines")
    files = [Path(p) for p in data] if isinstance(data, list | tuple) else recordings_in(data)
    if max_sequences is not None:
        files = files[:max_sequences]
    per_eval = proto.windows_per_interval
    limit = None if max_windows is None else max_windows * per_eval
    plans = [plan_recording(p, spec, resolution=resolution, crop=crop, compat=compat, max_windows=limit)
             for p in files]
    for plan in plans:
        for model in models.values():
            check_model_resolution(model, plan)
    methods = list(models) + ([ZERO_FLOW] + ([GT_FLOW] if proto.mode == "gt" else []) if baselines else [])
    filt = HotFilter(drop_listed_events=compat != HAGENAARS2021) if hot_filter else None
    encodings, num_bins, round_ts = _shared_encoding(models)
    result = EvalResult(
        settings=_jsonable({
            "models": {label: m.config.name for label, m in models.items()},
            "protocol": proto.name,
            "window": {"mode": spec.mode, "size": spec.size, "dt": spec.dt},
            "compat": compat,
            "hot_filter": None if filt is None else dataclasses.asdict(filt),
            "flow_scaling": flow_scaling,
            "resolution": list(plans[0].resolution) if len({p.resolution for p in plans}) == 1 else None,
            "crop": crop,
            "max_windows": max_windows,
            "files": [str(p) for p in files],
            "versions": {"eventflow": eventflow.__version__, "torch": torch.__version__, "numpy": np.__version__},
            **dict(settings or {}),
        }),
        metrics=proto.metrics,
        methods=methods,
        per_window={m: [] for m in methods},
    )
    count = 0
    for plan in plans:
        runners = {label: ModelRunner(m, device) for label, m in models.items()}
        buffers = {m: empty_loss_buffer() for m in methods}
        if compat != HAGENAARS2021:
            count = 0  # the reference's counter runs on across sequences
        batches = iter_batches([plan], 1, encodings=encodings, num_bins=num_bins, round_ts=round_ts)
        stream = tqdm(hot_filtered(batches, filt), total=len(plan.windows), desc=f"{proto.name} {plan.path.name}",
                      unit="win", disable=not progress)
        for batch, _ in stream:
            flows = {label: runner.step(batch)[0] for label, runner in runners.items()}
            if baselines:
                flows[ZERO_FLOW] = torch.zeros_like(next(iter(flows.values())))
                if proto.mode == "gt":
                    flows[GT_FLOW] = gt_as_network_output(batch["gt_flow"], batch["dt_gt"], batch["dt_input"],
                                                          flow_scaling)
            for m in methods:
                buffers[m] = loss_buffer_append(buffers[m], [flows[m]], batch["event_list"], batch["pol_mask"],
                                                batch["event_valid"], batch["event_mask"])
            if proto.mode == "gt":
                now, count = gt_interval_step(count, float(batch["dt_gt"][0]), per_eval)
            else:
                now = True
            if not now:
                continue
            where = {"sequence": plan.path.stem, "window": int(batch["window_index"][0]),
                     "t_start": float(batch["t_start"][0]), "t_end": float(batch["t_end"][0])}
            for m in methods:
                values = _window_metrics(flows[m], batch, buffers[m], proto, flow_scaling, compat)
                result.per_window[m].append({**where, **values})
                buffers[m] = empty_loss_buffer()
    result.summarise()
    return result


def evaluate(
    model_or_name: FlowModel | str,
    checkpoint: str | os.PathLike | None,
    data: str | os.PathLike | Sequence[str | os.PathLike],
    protocol: str,
    *,
    label: str | None = None,
    device: torch.device | str = "cpu",
    pad: bool = False,
    **kwargs: Any,
) -> EvalResult:
    """Evaluate one model under ``protocol`` (see :func:`evaluate_models` for the keyword arguments).

    ``model_or_name``: a model, or a registry name loaded from ``checkpoint`` (our checkpoint or a reference
    state_dict; ``None``: random weights, with a warning). ``label`` names it in the results (default: the
    model's class name).

    >>> import tempfile, pathlib, numpy as np
    >>> from eventflow.events import make_events
    >>> from eventflow.io.h5write import write_recording
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "gt.h5"
    >>> ev = make_events([1, 2, 3, 4] * 10, [2] * 40, np.linspace(0.0, 0.99, 40), [1] * 40)
    >>> gt = np.zeros((2, 6, 6), np.float32); gt[0] = 3.0          # 3 px to the right per interval
    >>> _ = write_recording(path, ev, (6, 6), flow_dt1=[(0.0, gt), (0.5, gt), (1.0, gt)])
    >>> from eventflow.models import build_model
    >>> res = evaluate(build_model("LIFFireNet_short", base_num_channels=4), None, path, "mvsec-dt1",
    ...                hot_filter=False, progress=False)
    >>> res.methods, round(res.means["zero flow"]["AEE"], 6), round(res.means["GT flow"]["AEE"], 6)
    (['LIFFireNet_short', 'zero flow', 'GT flow'], 3.0, 0.0)
    """
    if isinstance(model_or_name, str):
        model = prepare_model(model_or_name, checkpoint, device=device, pad=pad)
    else:
        model = model_or_name
    label = label or model.config.name
    settings = dict(kwargs.pop("settings", None) or {})
    settings.setdefault("checkpoint", None if checkpoint is None else str(checkpoint))
    return evaluate_models({label: model}, data, protocol, device=device, settings=settings, **kwargs)


# ------------------------------------------------------------------------------------------------ tables


def comparison_table(
    results: Mapping[str, EvalResult | None],
    metrics: Mapping[str, Sequence[str]] | None = None,
    methods: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per method, one column per ``(data set, metric)``: ``results`` maps a column-group name (e.g.
    ``"sim dt=1"``) to its :class:`EvalResult`; ``metrics`` picks the metrics per group (default all of that
    protocol); ``methods`` the rows and their order (default: every method in first-seen order). A method
    absent from a group gets None; a group whose result is None (data that was not present) is left out.
    Format with :func:`format_table`.

    >>> r = EvalResult({}, ("FWL",), ["net", "zero flow"], means={"net": {"FWL": 1.2}, "zero flow": {"FWL": 1.0}})
    >>> print(format_table(comparison_table({"ECD": r})))
    method     ECD FWL
    ---------  -------
    net          1.200
    zero flow    1.000
    """
    results = {group: res for group, res in results.items() if res is not None}
    if methods is None:
        methods = list(dict.fromkeys(m for r in results.values() for m in r.methods))
    rows = []
    for method in methods:
        row: dict[str, Any] = {"method": method}
        for group, res in results.items():
            for metric in (metrics or {}).get(group, res.metrics):
                row[f"{group} {metric}"] = res.means.get(method, {}).get(metric)
        rows.append(row)
    return rows


def format_value(v: Any, digits: int = 3) -> str:
    """One table cell: None and NaN as ``-``, text and booleans as they are, whole numbers without decimals,
    other numbers with ``digits`` decimals (shared by :func:`format_table` and the markdown tables)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool | str):
        return str(v)
    if isinstance(v, int | np.integer):
        return str(int(v))
    return f"{float(v):.{digits}f}"


def format_table(rows: Sequence[Mapping[str, Any]], digits: int = 3) -> str:
    """Rows of dicts as aligned text: text left-aligned, numbers right-aligned with ``digits`` decimals, None and
    NaN as ``-``. Columns in first-seen order."""
    columns = list(dict.fromkeys(k for row in rows for k in row))

    cells = [[format_value(row.get(c), digits) for c in columns] for row in rows]
    numeric = [all(isinstance(row.get(c), int | float | np.number) or row.get(c) is None for row in rows)
               and not all(row.get(c) is None for row in rows) for c in columns]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(columns), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    return "\n".join(out)


def metric_vs_window_size(
    models: Mapping[str, FlowModel],
    data: str | os.PathLike | Sequence[str | os.PathLike],
    sizes: Sequence[int],
    metric: str = "FWL",
    **kwargs: Any,
) -> dict[str, dict[int, float]]:
    """``{method: {events per window: mean metric}}`` of the ``events`` protocol for each window size in
    ``sizes`` (FWL and RSAT depend on the number of events per window; Stoffregen et al., ECCV 2020). Keyword
    arguments as :func:`evaluate_models`. For :func:`eventflow.viz.plot_metric_vs_window`."""
    if metric not in EVENT_METRICS:
        raise ValueError(f"metric must be one of {', '.join(EVENT_METRICS)} (the events protocol), got {metric!r}")
    curves: dict[str, dict[int, float]] = {}
    for n in sizes:
        res = evaluate_models(models, data, "events", window_events=int(n), **kwargs)
        for method in res.methods:
            curves.setdefault(method, {})[int(n)] = res.means[method][metric]
    return curves
