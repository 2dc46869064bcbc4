"""Batches of event windows for training and evaluation: a ``torch.utils.data`` pipeline with per-lane resets.

Training follows the reference loader (Hagenaars et al. 2021, tudelft/event_flow): a batch is ``B`` parallel
*lanes*, each walking through whole recordings window by window, so that a recurrent (spiking) network can carry
its state from one window to the next of the same recording.

:class:`SequenceDataset` precomputes a deterministic plan from the seed: which recording each lane reads at each
step and which flips it applies. Recordings are assigned as the reference does: lane ``b`` starts with recording
``b`` of the epoch's order and, when it finishes a recording, takes the next one not yet assigned (lanes that
finish at the same step take them in lane order), so lanes read disjoint recordings. ``dataset[step]`` returns
the whole batch of that step, independently of every other step, so a ``DataLoader(dataset, batch_size=None,
num_workers=k)`` yields the same tensors for any ``k``. Recordings without a single window are skipped.

- ``reset[b]`` is True at the step where lane ``b`` starts a recording (step 0 included) and only there: a lane
  that changes recording never resets the others. Consumers reset that lane's state (network, loss buffer,
  hot-pixel filter).
- The epoch ends when the longest lane finishes: ``len(dataset) == dataset.steps_per_epoch``. A lane that runs
  out of recordings earlier is inactive for the remaining steps: ``active[b]`` is False, its tensors are zeros
  and its indices -1. Change epochs with :meth:`SequenceDataset.set_epoch` (reshuffles when ``shuffle``)
  before creating the epoch's DataLoader iterator (persistent workers keep the plan they were started with).
- Augmentation: each of ``augment`` (``"horizontal"``, ``"vertical"``, ``"polarity"``) is drawn with probability
  0.5 once per recording per lane (as the reference draws once per sequence), and applied consistently to the
  events and the GT flow.

The hot-pixel filter is NOT applied here: it is stateful along a sequence, and DataLoader workers produce steps
out of order. Consumers run :func:`eventflow.encodings.hot_pixel_step` with explicit state in their loop and
apply the mask with :func:`eventflow.encodings.apply_hot_pixel_mask`.

Batch dict (``B`` lanes, ``N`` the largest number of events in the batch, padding marked by ``event_valid``):

=================  =====================  ======================================================================
key                shape, dtype           meaning
=================  =====================  ======================================================================
``event_cnt``      (B, 2, H, W) float32   counts, channel 0 positive, 1 negative (encoding ``cnt``)
``event_voxel``    (B, bins, H, W) f32    voxel grid (encoding ``voxel``)
``event_mask``     (B, 1, H, W) float32   1 where any event (encoding ``mask``)
``event_list``     (B, N, 4) float32      rows (t_norm, y, x, p), zeros on padding (encoding ``list``)
``pol_mask``       (B, N, 2) float32      one-hot polarity, zeros on padding (encoding ``list``)
``event_valid``    (B, N) bool            True for real events (encoding ``list``)
``num_events``     (B,) int64             events in the window (0 for an empty window, <= 10 events)
``dt_input``       (B,) float64           ts[-1] - ts[0] of the window [s], 0 for an empty window
``dt_gt``          (B,) float64           time between the paired GT map and the previous one [s], 0 if none
``gt_flow``        (B, 2, H, W) float32   paired GT flow [px], flipped like the events (``gt`` windows only)
``reset``          (B,) bool              the lane starts a recording at this step
``active``         (B,) bool              the lane has a window at this step
``file_index``     (B,) int64             index of the recording in ``paths`` (-1 if inactive)
``window_index``   (B,) int64             index of the window in its recording (-1 if inactive)
``t_start``        (B,) float64           window start [s, relative to t0] (see :class:`eventflow.windows.Window`)
``t_end``          (B,) float64           window end [s]
=================  =====================  ======================================================================

Memory is bounded: a step reads only its windows (one slice per dataset) and the paired GT maps.
"""

from __future__ import annotations

import bisect
import heapq
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from eventflow.encodings import (
    event_count,
    event_list,
    event_mask,
    event_voxel,
    flip_events,
    flip_flow,
    normalize_timestamps,
    polarity_mask,
)
from eventflow.events import empty_events
from eventflow.io.h5 import Recording
from eventflow.windows import Window, WindowSpec, count_windows, load_window, plan_windows, read_window

ENCODINGS = ("cnt", "voxel", "mask", "list")
AUGMENTATIONS = ("horizontal", "vertical", "polarity")
DEFAULT_ENCODINGS = ("cnt", "mask", "list")


class Flips(NamedTuple):
    """Flips applied to one recording in one lane."""

    horizontal: bool = False
    vertical: bool = False
    polarity: bool = False


class Segment(NamedTuple):
    """One recording in a lane's plan: it occupies steps ``[start_step, start_step + num_windows)``."""

    file_index: int
    start_step: int
    num_windows: int
    flips: Flips


def _check_encodings(encodings: Iterable[str], num_bins: int | None) -> tuple[str, ...]:
    encodings = tuple(encodings)
    unknown = [e for e in encodings if e not in ENCODINGS]
    if unknown:
        raise ValueError(f"unknown encoding(s) {', '.join(map(repr, unknown))}; choose from {', '.join(ENCODINGS)}")
    if "voxel" in encodings and (num_bins is None or num_bins < 1):
        raise ValueError(f"the voxel encoding needs num_bins >= 1, got {num_bins!r}")
    return encodings


def encode_batch(
    events: Sequence[np.ndarray],
    windows: Sequence[Window | None],
    resolution: tuple[int, int],
    *,
    flips: Sequence[Flips] | None = None,
    gt: Sequence[np.ndarray | None] | None = None,
    reset: Sequence[bool] | None = None,
    file_index: Sequence[int] | None = None,
    encodings: Iterable[str] = DEFAULT_ENCODINGS,
    num_bins: int | None = None,
    round_ts: bool = False,
    compat: str | None = None,
) -> dict[str, torch.Tensor]:
    """The batch dict (see the module docstring) of ``B`` windows: ``events[b]`` (``EVENT_DTYPE``, empty-window
    rule already applied), ``windows[b]`` (None for an inactive lane), optional per-lane ``flips``, GT maps
    ``(2, H, W)`` (``gt`` is None outside gt mode), ``reset`` flags and ``file_index``."""
    encodings = _check_encodings(encodings, num_bins)
    nb = len(events)
    h, w = int(resolution[0]), int(resolution[1])
    flips = list(flips) if flips is not None else [Flips()] * nb
    n_max = max((e.size for e in events), default=0)
    xs = torch.zeros(nb, n_max, dtype=torch.int64)
    ys = torch.zeros(nb, n_max, dtype=torch.int64)
    ts = torch.zeros(nb, n_max, dtype=torch.float32)
    ps = torch.zeros(nb, n_max, dtype=torch.float32)
    valid = torch.zeros(nb, n_max, dtype=torch.bool)
    dt_input = torch.zeros(nb, dtype=torch.float64)
    for b, (ev, fl) in enumerate(zip(events, flips)):
        n = ev.size
        if n == 0:
            continue
        x, y, p = flip_events(ev["x"].astype(np.int64), ev["y"].astype(np.int64), ev["p"].astype(np.float32),
                              (h, w), fl.horizontal, fl.vertical, fl.polarity)
        xs[b, :n] = torch.from_numpy(x)
        ys[b, :n] = torch.from_numpy(y)
        ps[b, :n] = torch.from_numpy(p)
        ts[b, :n] = normalize_timestamps(ev["t"], compat=compat)
        valid[b, :n] = True
        dt_input[b] = float(ev["t"][-1] - ev["t"][0])
    out: dict[str, torch.Tensor] = {}
    if "cnt" in encodings:
        out["event_cnt"] = event_count(xs, ys, ps, (h, w), valid)
    if "voxel" in encodings:
        out["event_voxel"] = event_voxel(xs, ys, ts, ps, int(num_bins), (h, w), round_ts=round_ts, valid=valid)
    if "mask" in encodings:
        out["event_mask"] = event_mask(xs, ys, (h, w), valid)
    if "list" in encodings:
        out["event_list"] = event_list(xs, ys, ts, ps)  # padding rows are zero
        out["pol_mask"] = polarity_mask(ps, compat=compat)  # p = 0 on padding gives zero rows
        out["event_valid"] = valid
    out["num_events"] = valid.sum(dim=1).to(torch.int64)
    out["dt_input"] = dt_input
    out["dt_gt"] = torch.tensor([win.dt_gt if win is not None else 0.0 for win in windows], dtype=torch.float64)
    if gt is not None:
        flow = torch.zeros(nb, 2, h, w, dtype=torch.float32)
        for b, (g, fl) in enumerate(zip(gt, flips)):
            if g is not None:
                flow[b] = torch.from_numpy(flip_flow(g, fl.horizontal, fl.vertical))
        out["gt_flow"] = flow
    out["reset"] = torch.tensor(list(reset) if reset is not None else [False] * nb, dtype=torch.bool)
    out["active"] = torch.tensor([win is not None for win in windows], dtype=torch.bool)
    fi = list(file_index) if file_index is not None else [0] * nb
    out["file_index"] = torch.tensor([f if win is not None else -1 for f, win in zip(fi, windows)],
                                     dtype=torch.int64)
    out["window_index"] = torch.tensor([win.index if win is not None else -1 for win in windows], dtype=torch.int64)
    out["t_start"] = torch.tensor([win.t_start if win is not None else 0.0 for win in windows], dtype=torch.float64)
    out["t_end"] = torch.tensor([win.t_end if win is not None else 0.0 for win in windows], dtype=torch.float64)
    return out


def plan_lanes(counts: Sequence[int], order: Sequence[int], batch_size: int,
               rng: np.random.Generator | None = None, augment: Iterable[str] = ()) -> list[list[Segment]]:
    """Assign recordings to lanes as the reference loader does.

    ``counts[i]`` windows in recording ``i``; ``order`` the epoch's order of recordings. Lane ``b`` starts with
    the ``b``-th recording; a lane that finishes takes the next recording of ``order`` (lanes finishing at the same
    step in lane order). Recordings with no window are skipped. Flips are drawn from ``rng`` (three uniforms per
    assignment, in assignment order) for the mechanisms in ``augment``.
    """
    augment = set(augment)
    queue = [i for i in order if counts[i] > 0]
    lanes: list[list[Segment]] = [[] for _ in range(batch_size)]
    heap: list[tuple[int, int]] = [(0, b) for b in range(batch_size)]  # (step the lane is free, lane)
    for i in queue:
        start, b = heapq.heappop(heap)
        draws = rng.random(3) if rng is not None else np.ones(3)
        flips = Flips(*(bool(d < 0.5) and name in augment for d, name in zip(draws, AUGMENTATIONS)))
        lanes[b].append(Segment(i, start, counts[i], flips))
        heapq.heappush(heap, (start + counts[i], b))
    return lanes


class SequenceDataset(torch.utils.data.Dataset):
    """``B`` lanes of consecutive windows over a list of recordings; ``dataset[step]`` is one batch dict.

    ``paths``: recordings in the reference HDF5 layout (all with the same resolution, or pass ``resolution``);
    ``spec``: how to cut them into windows; ``batch_size``: lanes ``B``; ``seed``: seeds the shuffle and the
    flips; ``augment``: subset of ``("horizontal", "vertical", "polarity")``; ``encodings``: subset of
    ``("cnt", "voxel", "mask", "list")`` (``num_bins`` for the voxel grid, ``round_ts`` to round its
    timestamps); ``shuffle``: a new order of recordings per epoch; ``epoch``: the epoch to plan;
    ``compat="hagenaars2021"``: the reference's time search, -0.0 in ``pol_mask`` and division by zero in
    the timestamp normalisation. See the module docstring for the batch dict and the lane rules.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        spec: WindowSpec,
        batch_size: int = 1,
        *,
        seed: int = 0,
        augment: Iterable[str] = (),
        encodings: Iterable[str] = DEFAULT_ENCODINGS,
        num_bins: int | None = None,
        round_ts: bool = False,
        shuffle: bool = False,
        epoch: int = 0,
        compat: str | None = None,
        resolution: tuple[int, int] | None = None,
    ):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("SequenceDataset needs at least one recording")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.augment = frozenset(augment)
        unknown = self.augment - set(AUGMENTATIONS)
        if unknown:
            raise ValueError(f"unknown augmentation(s) {sorted(unknown)}; choose from {', '.join(AUGMENTATIONS)}")
        self.spec = spec
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.encodings = _check_encodings(encodings, num_bins)
        self.num_bins = num_bins
        self.round_ts = round_ts
        self.shuffle = shuffle
        self.compat = compat
        self._override = resolution
        self._cache: OrderedDict[int, Recording] = OrderedDict()
        self._pid = os.getpid()
        self._cache_limit = max(4, 2 * self.batch_size)
        counts = []
        res = None
        for path in self.paths:
            with Recording(path, resolution=resolution) as rec:
                if res is not None and rec.resolution != res:
                    raise ValueError(f"{path}: resolution {rec.resolution} differs from {res} of {self.paths[0]}; "
                                     f"pass resolution=(H, W)")
                res = rec.resolution
                counts.append(count_windows(rec, spec))
        self.resolution: tuple[int, int] = res
        self.counts = counts
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Plan ``epoch``: the order of recordings (shuffled with ``(seed, epoch)`` when ``shuffle``) and flips."""
        self.epoch = int(epoch)
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.paths)) if self.shuffle else np.arange(len(self.paths))
        self.lanes = plan_lanes(self.counts, order.tolist(), self.batch_size, rng, self.augment)
        self._starts = [[s.start_step for s in lane] for lane in self.lanes]
        ends = [lane[-1].start_step + lane[-1].num_windows for lane in self.lanes if lane]
        self.steps_per_epoch = max(ends, default=0)

    def __len__(self) -> int:
        return self.steps_per_epoch

    def _recording(self, i: int) -> Recording:
        if self._pid != os.getpid():  # a forked worker: never touch the parent's handles
            self._cache = OrderedDict()
            self._pid = os.getpid()
        rec = self._cache.pop(i, None)
        if rec is None:
            rec = Recording(self.paths[i], resolution=self._override)
        self._cache[i] = rec
        while len(self._cache) > self._cache_limit:
            self._cache.popitem(last=False)[1].close()
        return rec

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        return state

    def lane_segment(self, lane: int, step: int) -> tuple[Segment, int] | None:
        """The recording lane ``lane`` reads at ``step`` and the window index in it, or None if inactive."""
        j = bisect.bisect_right(self._starts[lane], step) - 1
        if j < 0:
            return None
        seg = self.lanes[lane][j]
        k = step - seg.start_step
        return (seg, k) if k < seg.num_windows else None

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        if not 0 <= step < self.steps_per_epoch:
            raise IndexError(f"step {step} out of range for an epoch of {self.steps_per_epoch} steps")
        events, windows, flips, gts, resets, files = [], [], [], [], [], []
        for lane in range(self.batch_size):
            found = self.lane_segment(lane, step)
            if found is None:
                events.append(empty_events())
                windows.append(None)
                flips.append(Flips())
                gts.append(None)
                resets.append(False)
                files.append(-1)
                continue
            seg, k = found
            rec = self._recording(seg.file_index)
            win, ev = read_window(rec, self.spec, k, compat=self.compat)
            events.append(ev)
            windows.append(win)
            flips.append(seg.flips)
            gts.append(rec.read_gt(self.spec.dt, win.gt_index) if self.spec.mode == "gt" else None)
            resets.append(k == 0)
            files.append(seg.file_index)
        return encode_batch(events, windows, self.resolution, flips=flips,
                            gt=gts if self.spec.mode == "gt" else None, reset=resets, file_index=files,
                            encodings=self.encodings, num_bins=self.num_bins, round_ts=self.round_ts,
                            compat=self.compat)


def iter_recording(
    recording: str | os.PathLike | Recording,
    spec: WindowSpec,
    *,
    encodings: Iterable[str] = DEFAULT_ENCODINGS,
    num_bins: int | None = None,
    round_ts: bool = False,
    compat: str | None = None,
    resolution: tuple[int, int] | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Batch dicts (``B = 1``, keys as :class:`SequenceDataset`) of every window of one recording, in order,
    for inference and evaluation; ``reset`` is True for the first window only. No augmentation."""
    encodings = _check_encodings(encodings, num_bins)
    rec = recording if isinstance(recording, Recording) else Recording(recording, resolution=resolution)
    for win in plan_windows(rec, spec, compat=compat):
        gt = [rec.read_gt(spec.dt, win.gt_index)] if spec.mode == "gt" else None
        yield encode_batch([load_window(rec, win)], [win], rec.resolution, gt=gt, reset=[win.index == 0],
                           encodings=encodings, num_bins=num_bins, round_ts=round_ts, compat=compat)
