"""Running a flow model over recordings window by window, its state carried from one window to the next.

The models of Hagenaars et al. (NeurIPS 2021, Sec. 3) see one short window of events per forward pass and
integrate over time in their recurrent (spiking) state, so inference walks each recording in order:

1. :func:`plan_recording` cuts a recording into windows with the reference loader's semantics
   (:mod:`eventflow.windows`) and checks it can be evaluated (resolution, ground truth, non-empty windows);
2. :func:`iter_batches` reads the windows of one or more recordings as ``B`` parallel lanes (the batch dicts of
   :mod:`eventflow.datasets`; a lane that finishes a recording takes the next one, ``reset`` marks the switch);
3. :func:`run_model` applies the optional hot-pixel filter (explicit state, reset per recording, as the
   reference evaluation) and the model, resetting the state of a lane where it starts a recording, and yields
   one :class:`Step` per window;
4. :func:`infer` writes the flows of every window to an ``.npz`` file (bounded memory: arrays are streamed to
   disk), which is what ``eventflow infer`` does.

Units: the network output ``flow`` is in tanh units; pixels of displacement over the input window are
``flow * flow_scaling`` (128 in the paper), and over a ground-truth interval ``flow * flow_scaling * dt_gt /
dt_input``.

>>> import tempfile, pathlib
>>> from eventflow.events import make_events
>>> from eventflow.io.h5write import write_recording
>>> from eventflow.models import build_model
>>> from eventflow.windows import WindowSpec
>>> path = pathlib.Path(tempfile.mkdtemp()) / "demo.h5"
>>> n = 60
>>> _ = write_recording(path, make_events([i % 8 for i in range(n)], [2] * n, [0.01 * i for i in range(n)],
...                                      [1] * n), (8, 8))
>>> plan = plan_recording(path, WindowSpec("events", 20))
>>> model = build_model("LIFFireNet_short", base_num_channels=4)
>>> steps = list(run_model(model, iter_batches([plan])))
>>> len(steps), tuple(steps[0].flow.shape), steps[0].batch["reset"].tolist(), steps[1].batch["reset"].tolist()
(3, (1, 2, 8, 8), [True], [False])
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

import eventflow
from eventflow.atomic import atomic_path
from eventflow.datasets import encode_batch, plan_lanes
from eventflow.encodings import apply_hot_pixel_mask, hot_pixel_init, hot_pixel_reset, hot_pixel_step
from eventflow.events import empty_events
from eventflow.io.h5 import Recording
from eventflow.models import FlowModel, build_model, get_spec, load_model
from eventflow.models.base import LayerActivity
from eventflow.windows import EMPTY_WINDOW_MAX, Window, WindowSpec, load_window, plan_windows

FLOW_SCALING = 128.0
"""Pixels per input window per unit of network output (the paper's training and MVSEC evaluation)."""


# ------------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class HotFilter:
    """The reference evaluation's hot-pixel filter (``configs/eval_*.yml``): after ``min_obvs`` windows, up to
    ``max_px`` pixels that had events in more than ``max_rate`` of the windows are masked
    (:func:`eventflow.encodings.hot_pixel_step`). ``drop_listed_events`` also removes their events from the
    event list used by FWL and RSAT; the reference masks only the dense encodings (``False`` reproduces it)."""

    max_px: int = 100
    min_obvs: int = 5
    max_rate: float = 0.8
    drop_listed_events: bool = False


REFERENCE_HOT_FILTER = HotFilter()
"""The filter settings of every reference evaluation config (``max_px`` 100, ``min_obvs`` 5, ``max_rate`` 0.8)."""


@dataclass(frozen=True)
class Crop:
    """A centred crop of an ``(H, W)`` sensor to ``resolution``: pixel ``(y, x)`` of the crop is ``(y + top,
    x + left)`` of the sensor."""

    resolution: tuple[int, int]
    top: int
    left: int

    @staticmethod
    def centred(sensor: tuple[int, int], resolution: tuple[int, int]) -> Crop:
        """The crop of ``resolution`` in the middle of ``sensor`` (the odd pixel on the bottom/right).

        >>> Crop.centred((180, 240), (64, 64))
        Crop(resolution=(64, 64), top=58, left=88)
        """
        (sh, sw), (h, w) = sensor, resolution
        return Crop((int(h), int(w)), (sh - h) // 2, (sw - w) // 2)

    def events(self, events: np.ndarray) -> np.ndarray:
        """The events inside the crop, in crop coordinates."""
        h, w = self.resolution
        y = events["y"].astype(np.int64) - self.top
        x = events["x"].astype(np.int64) - self.left
        keep = (y >= 0) & (y < h) & (x >= 0) & (x < w)
        out = events[keep].copy()
        out["y"] = y[keep]
        out["x"] = x[keep]
        return out

    def flow(self, flow: np.ndarray) -> np.ndarray:
        """``(2, H_sensor, W_sensor)`` -> ``(2, H, W)``."""
        h, w = self.resolution
        return flow[:, self.top:self.top + h, self.left:self.left + w]


class RecordingPlan(NamedTuple):
    """The windows of one recording to run: ``path``, working ``resolution`` ``(H, W)``, ``crop`` (None: the
    whole sensor), ``spec`` and ``windows`` (:class:`eventflow.windows.Window`, in order), ``compat``."""

    path: Path
    resolution: tuple[int, int]
    crop: Crop | None
    spec: WindowSpec
    windows: list[Window]
    compat: str | None


def _describe(spec: WindowSpec) -> str:
    if spec.mode == "events":
        return f"windows of {int(spec.size)} events"
    if spec.mode == "time":
        return f"windows of {spec.size} s"
    return f"GT windows of {spec.size} flow_dt{spec.dt} interval(s)"


def plan_recording(
    path: str | os.PathLike,
    spec: WindowSpec,
    *,
    resolution: tuple[int, int] | None = None,
    crop: bool = False,
    compat: str | None = None,
    max_windows: int | None = None,
) -> RecordingPlan:
    """Plan the windows of recording ``path`` (reference layout) and check that it can be run.

    Args:
        spec: how to cut the recording (:class:`eventflow.windows.WindowSpec`).
        resolution: working ``(H, W)``; default the file's ``sensor_resolution``. A resolution smaller than the
            sensor needs ``crop=True`` (a centred crop that drops the events outside; windows are still cut over
            all events, before cropping); a larger one pads the image on the bottom/right.
        compat: ``"hagenaars2021"`` for the reference's time search (see :func:`eventflow.windows.plan_windows`).
        max_windows: keep only the first windows.

    Raises:
        FileNotFoundError, ValueError (one line, naming the file): an unreadable file, a resolution the events do
        not fit, ``gt`` windows on a file without ``flow_dt{dt}`` maps, no complete window, or windows that are
        all empty (at most 10 events each, the reference's rule).
    """
    path = Path(path)
    with Recording(path) as rec:
        sensor = rec.resolution
    window_crop = None
    if resolution is not None:
        resolution = (int(resolution[0]), int(resolution[1]))
        if resolution[0] <= 0 or resolution[1] <= 0:
            raise ValueError(f"{path}: resolution must be positive, got {resolution[0]}x{resolution[1]}")
        smaller = resolution[0] < sensor[0] or resolution[1] < sensor[1]
        if crop:
            if resolution[0] > sensor[0] or resolution[1] > sensor[1]:
                raise ValueError(f"{path}: cannot crop the {sensor[0]}x{sensor[1]} sensor to a larger "
                                 f"{resolution[0]}x{resolution[1]}")
            window_crop = Crop.centred(sensor, resolution)
        elif smaller:
            raise ValueError(f"{path}: the sensor is {sensor[0]}x{sensor[1]}, larger than the requested resolution "
                             f"{resolution[0]}x{resolution[1]}; events would fall outside (crop to it, or leave the "
                             f"resolution to the file)")
    elif crop:
        raise ValueError(f"{path}: cropping needs a resolution (H, W) to crop to")
    read_resolution = sensor if (window_crop is not None or resolution is None) else resolution
    with Recording(path, resolution=read_resolution) as rec:
        windows = plan_windows(rec, spec, compat=compat)  # ValueError naming the file for gt windows without GT
        total = rec.num_events
    if not windows:
        raise ValueError(f"{path}: no complete window ({_describe(spec)}; the recording has {total} events)")
    if all(w.i1 - w.i0 <= EMPTY_WINDOW_MAX for w in windows):
        raise ValueError(f"{path}: all {len(windows)} windows are empty (at most {EMPTY_WINDOW_MAX} events each, "
                         f"{_describe(spec)})")
    if max_windows is not None:
        if max_windows < 1:
            raise ValueError(f"max_windows must be at least 1, got {max_windows}")
        windows = windows[:max_windows]
    working = window_crop.resolution if window_crop is not None else read_resolution
    return RecordingPlan(path, working, window_crop, spec, windows, compat)


def recordings_in(data: str | os.PathLike) -> list[Path]:
    """``data`` itself if it is a file, else the ``*.h5`` files under the folder ``data`` (recursively, sorted)."""
    data = Path(data)
    if data.is_file():
        return [data]
    if not data.exists():
        raise FileNotFoundError(f"{data}: no such file or folder")
    files = sorted(p for p in data.rglob("*.h5") if p.is_file())
    if not files:
        raise FileNotFoundError(f"{data}: no .h5 recordings in this folder")
    return files


# -------------------------------------------------------------------------------------------------- batches


def model_encodings(model: FlowModel, need_list: bool = False, hot_filter: bool = False) -> tuple[str, ...]:
    """The encodings of :mod:`eventflow.datasets` a model needs: its input (``cnt`` or ``voxel``), the event
    mask, the event list where metrics need it, and the counts where the hot-pixel filter needs them."""
    enc = ["cnt" if model.config.encoding == "cnt" else "voxel", "mask"]
    if hot_filter and "cnt" not in enc:
        enc.append("cnt")
    if need_list:
        enc.append("list")
    return tuple(enc)


def model_input(model: FlowModel, batch: Mapping[str, Tensor]) -> Tensor:
    """The network input of ``batch``: ``event_cnt`` or ``event_voxel`` ``(B, num_bins, H, W)``."""
    return batch["event_cnt"] if model.config.encoding == "cnt" else batch["event_voxel"]


def _schedule(counts: Sequence[int], batch_size: int) -> list[list[tuple[int, int] | None]]:
    """Per step and lane, ``(recording, window)`` or None, with the reference's lane assignment."""
    lanes = plan_lanes(counts, list(range(len(counts))), batch_size)
    steps = max((seg.start_step + seg.num_windows for lane in lanes for seg in lane), default=0)
    table: list[list[tuple[int, int] | None]] = [[None] * batch_size for _ in range(steps)]
    for b, lane in enumerate(lanes):
        for seg in lane:
            for k in range(seg.num_windows):
                table[seg.start_step + k][b] = (seg.file_index, k)
    return table


def iter_batches(
    plans: Sequence[RecordingPlan],
    batch_size: int = 1,
    *,
    encodings: Iterable[str] = ("cnt", "mask"),
    num_bins: int | None = None,
    round_ts: bool = False,
) -> Iterator[dict[str, Tensor]]:
    """Batch dicts (:mod:`eventflow.datasets`) of the planned windows, ``batch_size`` lanes in parallel.

    Lane ``b`` starts with recording ``b`` and takes the next unassigned one when it finishes (the reference's
    assignment); ``reset[b]`` is True where it starts a recording, ``active[b]`` False once it has none left.
    ``file_index`` indexes ``plans``. All plans must share one resolution. ``gt`` windows carry ``gt_flow``.
    """
    plans = list(plans)
    if not plans:
        raise ValueError("iter_batches needs at least one planned recording")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    resolution = plans[0].resolution
    for plan in plans[1:]:
        if plan.resolution != resolution:
            raise ValueError(f"{plan.path}: resolution {plan.resolution[0]}x{plan.resolution[1]} differs from "
                             f"{resolution[0]}x{resolution[1]} of {plans[0].path}; lanes need one resolution")
    gt_mode = plans[0].spec.mode == "gt"
    encodings = tuple(encodings)
    table = _schedule([len(p.windows) for p in plans], batch_size)
    open_recs: dict[int, Recording] = {}
    try:
        for row in table:
            events, windows, gts, resets, files = [], [], [], [], []
            needed = {cell[0] for cell in row if cell is not None}
            for i in [i for i in open_recs if i not in needed]:
                open_recs.pop(i).close()
            for cell in row:
                if cell is None:
                    events.append(empty_events())
                    windows.append(None)
                    gts.append(None)
                    resets.append(False)
                    files.append(-1)
                    continue
                i, k = cell
                plan = plans[i]
                if i not in open_recs:
                    res = None if plan.crop is not None else plan.resolution
                    open_recs[i] = Recording(plan.path, resolution=res)
                rec = open_recs[i]
                win = plan.windows[k]
                ev = load_window(rec, win)
                gt = rec.read_gt(plan.spec.dt, win.gt_index) if gt_mode else None
                if plan.crop is not None:
                    ev = plan.crop.events(ev)
                    gt = None if gt is None else plan.crop.flow(gt)
                events.append(ev)
                windows.append(win)
                gts.append(gt)
                resets.append(k == 0)
                files.append(i)
            yield encode_batch(events, windows, resolution, gt=gts if gt_mode else None, reset=resets,
                               file_index=files, encodings=encodings, num_bins=num_bins, round_ts=round_ts,
                               compat=plans[0].compat)
    finally:
        for rec in open_recs.values():
            rec.close()


def count_steps(plans: Sequence[RecordingPlan], batch_size: int = 1) -> int:
    """Number of batches :func:`iter_batches` yields."""
    return len(_schedule([len(p.windows) for p in plans], batch_size))


# ------------------------------------------------------------------------------------------------ the model


class Step(NamedTuple):
    """One window through the model: the ``batch`` dict (hot-pixel mask applied, on the CPU), the finest
    ``flow`` ``(B, 2, H, W)`` in tanh units, every scale in ``flow_scales`` (see
    :class:`eventflow.models.FlowOutput`), per-layer ``activity`` (where recorded) and the hot-pixel ``hot_mask``
    ``(B, H, W)`` (None without the filter). Tensors are on the CPU."""

    batch: dict[str, Tensor]
    flow: Tensor
    flow_scales: list[Tensor]
    activity: dict[str, LayerActivity] | None
    hot_mask: Tensor | None


def hot_filtered(batches: Iterable[dict[str, Tensor]], hot_filter: HotFilter | None
                 ) -> Iterator[tuple[dict[str, Tensor], Tensor | None]]:
    """Apply the hot-pixel filter to a stream of batch dicts, its state reset per lane where ``reset``; yields
    ``(batch, mask)`` (``mask`` ``(B, H, W)``, None and the batch unchanged without a filter)."""
    state = None
    for batch in batches:
        if hot_filter is None:
            yield batch, None
            continue
        cnt = batch["event_cnt"]
        if state is None:
            state = hot_pixel_init(cnt.shape[-2:], cnt.shape[0])
        state = hot_pixel_reset(state, batch["reset"])
        mask, state = hot_pixel_step(cnt, state, hot_filter.max_px, hot_filter.min_obvs, hot_filter.max_rate)
        yield apply_hot_pixel_mask(batch, mask, drop_listed_events=hot_filter.drop_listed_events), mask


class ModelRunner:
    """One model with its own state over a stream of windows: :meth:`step` takes a batch dict (hot-pixel mask
    already applied), resets the state of the lanes that start a recording, and returns the output."""

    def __init__(self, model: FlowModel, device: torch.device | str = "cpu", record_activity: bool = False):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.record_activity = record_activity
        self.state = None

    def step(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, list[Tensor], dict[str, LayerActivity] | None]:
        """``(flow, flow_scales, activity)`` of one window, on the CPU; the state is carried."""
        x = model_input(self.model, batch).to(self.device)
        with torch.no_grad():
            if self.state is None:
                self.state = self.model.init_state(x.shape[0], x.shape[2], x.shape[3], device=self.device)
            else:
                self.state = self.model.reset_state(self.state, batch["reset"].to(self.device))
            out, self.state = self.model.forward_all(x, self.state, record_activity=self.record_activity)
        return out.flow.cpu(), [f.cpu() for f in out.flow_scales], out.activity


def run_model(
    model: FlowModel,
    batches: Iterable[dict[str, Tensor]],
    *,
    hot_filter: HotFilter | None = None,
    device: torch.device | str = "cpu",
    record_activity: bool = False,
) -> Iterator[Step]:
    """Run ``model`` (eval mode, no gradients) over ``batches`` (:func:`iter_batches`), carrying its state from
    window to window and resetting it per lane where ``reset``; with ``hot_filter`` the filter of the
    reference evaluation runs first. Yields one :class:`Step` per batch."""
    runner = ModelRunner(model, device, record_activity)
    for batch, mask in hot_filtered(batches, hot_filter):
        flow, scales, activity = runner.step(batch)
        yield Step(batch, flow, scales, activity, mask)


# ------------------------------------------------------------------------------------------------ loading


def prepare_model(
    name: str | None,
    checkpoint: str | os.PathLike | None,
    *,
    device: torch.device | str = "cpu",
    pad: bool = False,
    overrides: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> FlowModel:
    """A model ready for inference (eval mode, on ``device``).

    ``checkpoint`` is our checkpoint or a plain (e.g. the reference's) state_dict (:func:`eventflow.models.
    load_model`); ``None`` builds ``name`` with random weights drawn from ``seed`` (a ``UserWarning`` says so:
    its flow is meaningless, but it exercises the whole pipeline). ``overrides`` are config fields for built
    models and plain state_dicts. ``pad`` (EV-FlowNet family) zero-pads the input to multiples of 16 and crops
    the flow back, as the reference's ``CropParameters``.
    """
    overrides = dict(overrides or {})
    if pad:
        if name is not None and get_spec(name).family != "evflownet":
            raise ValueError(f"{name}: padding applies to the EV-FlowNet family only (FireNets run at any size)")
        overrides["pad_input"] = True
    if checkpoint is None:
        if name is None:
            raise ValueError("give a model name or a checkpoint")
        warnings.warn(f"{name}: no checkpoint, so the weights are random (seed {seed}); its flow is meaningless",
                      UserWarning, stacklevel=2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(name, **overrides)
        return model.to(device).eval()
    path = Path(checkpoint)
    if pad and path.with_suffix(".json").is_file():
        # Our checkpoints carry their config; padding changes how the model is run, not its weights.
        overrides.pop("pad_input")
        if overrides:
            raise ValueError(f"{path}: an eventflow checkpoint carries its own config; overrides "
                             f"({', '.join(overrides)}) apply to plain state_dicts only")
        model = load_model(name, path, device)
        if get_spec(model.config.name).family != "evflownet":
            raise ValueError(f"{path}: padding applies to the EV-FlowNet family only, not {model.config.name}")
        model.config = dataclasses.replace(model.config, pad_input=True)
        return model.eval()
    return load_model(name, path, device, **overrides).eval()


def check_model_resolution(model: FlowModel, plan: RecordingPlan) -> None:
    """Raise a one-line ValueError naming the file where ``model`` cannot run at the plan's resolution (the
    EV-FlowNet family needs H and W divisible by 16 unless it pads)."""
    h, w = plan.resolution
    try:
        model.init_state(1, h, w, device="meta")
    except ValueError as err:
        raise ValueError(f"{plan.path}: {err} (command line: --pad, or --resolution H W --crop with multiples "
                         "of 16)") from None


# ---------------------------------------------------------------------------------------------- npz output


class _NpzStream:
    """Arrays of known shape filled window by window in memory-mapped ``.npy`` files beside the target, then
    packed (uncompressed) into one ``.npz`` written atomically. Memory stays bounded however long the run."""

    def __init__(self, target: Path, specs: Mapping[str, tuple[tuple[int, ...], np.dtype]]):
        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", dir=self.target.parent))
        self.arrays = {name: np.lib.format.open_memmap(self._dir / f"{name}.npy", mode="w+", dtype=dtype,
                                                       shape=shape)
                       for name, (shape, dtype) in specs.items()}

    def finish(self, extra: Mapping[str, np.ndarray]) -> Path:
        for array in self.arrays.values():
            array.flush()
        names = list(self.arrays)
        self.arrays.clear()  # drop the memory maps before the files are read back
        with atomic_path(self.target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name in names:
                zf.write(self._dir / f"{name}.npy", arcname=f"{name}.npy")
            for name, value in extra.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asarray(value), allow_pickle=False)
        self.close()
        return self.target

    def close(self) -> None:
        self.arrays.clear()
        shutil.rmtree(self._dir, ignore_errors=True)


class InferResult(NamedTuple):
    """What :func:`infer` wrote: the ``path``, number of ``steps`` (``T``), ``batch_size`` (``B``) and the
    recordings ``files`` (``file_index`` order)."""

    path: Path
    steps: int
    batch_size: int
    files: list[Path]


def infer(
    model: FlowModel,
    data: str | os.PathLike | Sequence[str | os.PathLike],
    spec: WindowSpec,
    out: str | os.PathLike,
    *,
    batch_size: int = 1,
    hot_filter: HotFilter | None = None,
    resolution: tuple[int, int] | None = None,
    crop: bool = False,
    compat: str | None = None,
    device: torch.device | str = "cpu",
    flow_scaling: float = FLOW_SCALING,
    max_windows: int | None = None,
    progress: bool = True,
    metadata: Mapping[str, Any] | None = None,
) -> InferResult:
    """Run ``model`` over a recording (or a folder / list of recordings as ``batch_size`` lanes) and write the
    flow of every window to ``out`` (``.npz``, written atomically).

    Arrays (``T`` steps, ``B`` lanes; a single recording has ``B = 1``):

    - ``flow_raw`` ``[T, B, 2, H, W]`` float32: network output (tanh units, before scaling), channel 0 = x;
    - ``flow_px`` ``[T, B, 2, H, W]`` float32: ``flow_raw * flow_scaling``, pixels per input window;
    - ``gt`` windows only: ``flow_px_gt`` ``[T, B, 2, H, W]`` float32, pixels over the paired GT interval
      ``flow_px * dt_gt / dt_input`` (NaN for an empty window), and ``gt_index`` (the paired ``flow_dt{dt}``
      map);
    - per-window ``t_start``, ``t_end`` [s, relative to t0], ``dt_input``, ``dt_gt`` [s], ``num_events``,
      ``window_index``, ``file_index``: shape ``[T]`` for one recording, ``[T, B]`` for several (one column
      per lane; inactive lanes hold zeros and index -1);
    - ``files``: the recordings; ``metadata``: a JSON string (model, checkpoint, window spec, resolution,
      crop, hot filter, compat, flow_scaling, versions, plus ``metadata``).

    ``max_windows`` limits the windows per recording. Errors (one line, naming the file) as
    :func:`plan_recording` and :func:`check_model_resolution`.
    """
    files = [Path(p) for p in data] if isinstance(data, list | tuple) else recordings_in(data)
    if not files:
        raise ValueError("no recordings to run")
    plans = [plan_recording(p, spec, resolution=resolution, crop=crop, compat=compat, max_windows=max_windows)
             for p in files]
    for plan in plans:
        check_model_resolution(model, plan)
    single = len(plans) == 1
    if single:
        batch_size = 1
    steps = count_steps(plans, batch_size)
    h, w = plans[0].resolution
    gt_mode = spec.mode == "gt"
    shape = (steps,) if single else (steps, batch_size)
    specs: dict[str, tuple[tuple[int, ...], np.dtype]] = {
        "flow_raw": ((steps, batch_size, 2, h, w), np.dtype(np.float32)),
        "flow_px": ((steps, batch_size, 2, h, w), np.dtype(np.float32)),
    }
    if gt_mode:
        specs["flow_px_gt"] = ((steps, batch_size, 2, h, w), np.dtype(np.float32))
        specs["gt_index"] = (shape, np.dtype(np.int64))
    for name in ("t_start", "t_end", "dt_input", "dt_gt"):
        specs[name] = (shape, np.dtype(np.float64))
    for name in ("num_events", "window_index", "file_index"):
        specs[name] = (shape, np.dtype(np.int64))
    sink = _NpzStream(Path(out), specs)
    try:
        arrays = sink.arrays
        encodings = model_encodings(model, hot_filter=hot_filter is not None)
        batches = iter_batches(plans, batch_size, encodings=encodings, num_bins=model.config.num_bins,
                               round_ts=model.config.round_encoding)
        desc = files[0].name if single else f"{len(files)} recordings x {batch_size} lanes"
        steps_iter = run_model(model, batches, hot_filter=hot_filter, device=device)
        for t, step in enumerate(tqdm(steps_iter, total=steps, desc=desc, unit="win", disable=not progress)):
            b = step.batch
            raw = step.flow.numpy()  # (B, 2, H, W)
            arrays["flow_raw"][t] = raw
            arrays["flow_px"][t] = raw * np.float32(flow_scaling)
            per_window = {"t_start": b["t_start"], "t_end": b["t_end"], "dt_input": b["dt_input"],
                          "dt_gt": b["dt_gt"], "num_events": b["num_events"], "window_index": b["window_index"],
                          "file_index": b["file_index"]}
            if gt_mode:
                dt_in = b["dt_input"].numpy()
                ratio = np.where(dt_in > 0, b["dt_gt"].numpy() / np.where(dt_in > 0, dt_in, 1.0), np.nan)
                arrays["flow_px_gt"][t] = (raw * flow_scaling * ratio[:, None, None, None]).astype(np.float32)
                plan_gt = [plans[int(f)].windows[int(k)].gt_index if f >= 0 else -1
                           for f, k in zip(b["file_index"].tolist(), b["window_index"].tolist())]
                per_window["gt_index"] = torch.tensor(plan_gt)
            for name, value in per_window.items():
                arrays[name][t] = value.numpy()[0] if single else value.numpy()
        info = {
            "model": model.config.name,
            "model_config": dataclasses.asdict(model.config),
            "window": {"mode": spec.mode, "size": spec.size, "dt": spec.dt},
            "resolution": [h, w],
            "crop": None if plans[0].crop is None else dataclasses.asdict(plans[0].crop),
            "hot_filter": None if hot_filter is None else dataclasses.asdict(hot_filter),
            "compat": compat,
            "flow_scaling": flow_scaling,
            "batch_size": batch_size,
            "max_windows": max_windows,
            "versions": {"eventflow": eventflow.__version__, "torch": torch.__version__, "numpy": np.__version__},
            **dict(metadata or {}),
        }
        path = sink.finish({"files": np.array([str(p) for p in files]),
                            "metadata": np.array(json.dumps(info, default=str))})
    except BaseException:
        sink.close()
        raise
    return InferResult(path, steps, batch_size, files)
