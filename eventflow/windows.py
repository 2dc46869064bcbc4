"""Input windows over a recording, with the reference loader's semantics (Hagenaars et al. 2021, Sec. 4).

A window is a slice ``[i0, i1)`` of a recording's events that the network sees in one forward pass. Three modes
(:class:`WindowSpec`), each reproducing the reference H5 loader (tudelft/event_flow ``dataloader/h5.py``):

- ``events``: ``N`` consecutive events, window ``k`` = ``[k N, (k + 1) N)``; a trailing partial window ends the
  sequence and is dropped (1000 events in training, 15000 for the ECD/HQF evaluation).
- ``time``: windows of ``size`` seconds. With ``row_0 = 0`` and ``row_{k+1} = row_k + size`` (accumulated in
  float64, as the reference does), window ``k`` holds the events from ``find(row_k + t0)`` to
  ``find(row_k + t0 + size)``; the sequence ends before the first ``k`` with ``row_k + size >= ts[-1] - t0``.
- ``gt``: windows aligned with the ground-truth maps ``flow_dt{dt}`` with timestamps ``g_0 < g_1 < ...``.
  With rows accumulated as above (``size`` = fraction of a GT interval), ``a = floor(row)``,
  ``b = ceil(row + size)`` (and ``a = b - 1`` when ``size < 1`` and ``b - a > 1``), the window spans the events
  of ``[find(g_a), find(g_b))``; for ``size < 1`` it is the sub-range ``[int(e_a + (row - a) d),
  int(e_a + (row + size - a) d))`` with ``d = e_b - e_a``: sub-windows split the GT interval BY EVENT COUNT, not
  time (the dt=4 protocol: ``size = 0.25``). The window is paired with GT map ``b`` and
  ``dt_gt = g_b - g_{b-1}``; the sequence ends before the first row with ``ceil(row + size) >= #maps``.

``find(t)`` is :meth:`eventflow.io.h5.Recording.find_times`: the first event with ``ts >= t`` by default; with
``compat="hagenaars2021"`` the index the reference's bisection returns (on exact equality it returns the probed
index, not necessarily the first).

Empty-window rule (reference): a window with at most :data:`EMPTY_WINDOW_MAX` = 10 events is treated as having
none; :func:`load_window` applies it.

>>> import tempfile, pathlib
>>> from eventflow.events import make_events
>>> from eventflow.io.h5 import Recording
>>> from eventflow.io.h5write import write_recording
>>> path = pathlib.Path(tempfile.mkdtemp()) / "w.h5"
>>> n = 25
>>> _ = write_recording(path, make_events([0] * n, [0] * n, [0.01 * i for i in range(n)], [1] * n), (1, 1))
>>> [(w.i0, w.i1) for w in plan_windows(Recording(path), WindowSpec("events", 10))]
[(0, 10), (10, 20)]
>>> [(w.i0, w.i1, round(w.t_start, 3)) for w in plan_windows(Recording(path), WindowSpec("time", 0.1))]
[(0, 10, 0.0), (10, 20, 0.1)]
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from eventflow.events import empty_events
from eventflow.io.h5 import Recording

EMPTY_WINDOW_MAX = 10
"""A window with at most this many events counts as empty (the reference loader drops its events)."""

MODES = ("events", "time", "gt")


@dataclass(frozen=True)
class WindowSpec:
    """How a recording is cut into windows.

    - ``mode="events"``: ``size`` = number of events per window (an integer);
    - ``mode="time"``: ``size`` = window length in seconds;
    - ``mode="gt"``: ``size`` = fraction of a GT interval (1.0 for the dt=1 evaluation, 0.25 for the dt=4
      protocol); it must be a whole number or 1/n so that sub-windows tile the intervals;
      ``dt`` selects the maps ``flow_dt1`` or ``flow_dt4``.
    """

    mode: Literal["events", "time", "gt"]
    size: float
    dt: int = 1

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"window mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not (isinstance(self.size, int | float) and math.isfinite(self.size) and self.size > 0):
            raise ValueError(f"window size must be a positive number, got {self.size!r}")
        if self.mode == "events" and self.size != int(self.size):
            raise ValueError(f"events windows need a whole number of events, got {self.size!r}")
        if self.mode == "gt":
            inv = 1.0 / self.size
            if self.size != int(self.size) and abs(inv - round(inv)) > 1e-9:
                raise ValueError(f"gt window size must be a whole number or 1/n of the GT interval, got {self.size!r}")
        if not isinstance(self.dt, int) or self.dt <= 0:
            raise ValueError(f"dt must be a positive integer (1 for flow_dt1, 4 for flow_dt4), got {self.dt!r}")


class Window(NamedTuple):
    """One window of a recording.

    ``[i0, i1)`` event indices; ``gt_index`` the paired map of ``flow_dt{dt}`` (-1 if none); ``t_start``,
    ``t_end`` [s, relative to t0]: the first and last event times for ``events`` windows, the window bounds
    ``row``, ``row + size`` for ``time`` windows, the bounds of the GT interval ``g_a - t0``, ``g_b - t0``
    for ``gt`` windows (of the whole interval for sub-windows); ``dt_gt`` [s] ``g_b - g_{b-1}`` (0 when none).
    """

    index: int
    i0: int
    i1: int
    gt_index: int
    t_start: float
    t_end: float
    dt_gt: float = 0.0


@functools.lru_cache(maxsize=64)
def _rows(size: float, stop: float, mode: str) -> np.ndarray:
    """The reference's window starts ``row_k`` (float64 sums ``((0 + s) + s) + ...``) of the emitted windows.

    ``time``: emitted while ``row + size < stop`` (stop = ``ts[-1] - t0``); ``gt``: while
    ``ceil(row + size) < stop`` (stop = number of maps). Read-only, cached.
    """
    n = max(int(stop / size) + 2, 2) if stop > 0 else 2
    while True:
        steps = np.full(n, size, dtype=np.float64)
        steps[0] = 0.0
        rows = np.add.accumulate(steps)  # sequential sums, as repeated `row += size`
        end = rows + size
        done = (end >= stop) if mode == "time" else (np.ceil(end) >= stop)
        if done.any():
            rows = rows[: int(np.argmax(done))].copy()
            rows.flags.writeable = False
            return rows
        if rows[-1] == rows[-2]:
            raise ValueError(f"window size {size!r} is too small to advance over {stop!r}")
        n *= 2


def count_windows(recording: Recording, spec: WindowSpec) -> int:
    """Number of windows :func:`plan_windows` returns, without reading any events (metadata only).

    Raises ValueError for ``gt`` windows on a recording without ``flow_dt{dt}`` maps."""
    if spec.mode == "gt" and not recording.has_gt(spec.dt):
        raise ValueError(f"{recording.path}: no flow_dt{spec.dt} ground truth, needed by gt windows")
    if spec.mode == "events":
        return recording.num_events // int(spec.size)
    if spec.mode == "time":
        return _rows(float(spec.size), recording.last_time, "time").size
    return _rows(float(spec.size), float(recording.gt_timestamps(spec.dt).size), "gt").size


def _gt_bounds(rows: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
    """GT map indices ``(a, b)`` bounding each row, with the reference's adjustment for sub-windows."""
    a = np.floor(rows).astype(np.int64)
    b = np.ceil(rows + size).astype(np.int64)
    if size < 1.0:
        a = np.where(b - a > 1, b - 1, a)
    return a, b


def _windows(recording: Recording, spec: WindowSpec, ks: np.ndarray, compat: str | None) -> list[Window]:
    """Windows ``ks`` (sorted indices below :func:`count_windows`)."""
    if ks.size == 0:
        return []
    t0 = recording.t0
    size = float(spec.size)
    if spec.mode == "events":
        n = int(spec.size)
        i0 = ks * n
        i1 = i0 + n
        ends = np.concatenate([i0, i1 - 1])
        times = _times_at(recording, ends)
        t_start, t_end = times[: ks.size], times[ks.size :]
        return [
            Window(int(k), int(a), int(b), -1, float(ts), float(te), 0.0)
            for k, a, b, ts, te in zip(ks, i0, i1, t_start, t_end)
        ]
    if spec.mode == "time":
        rows = _rows(size, recording.last_time, "time")[ks]
        lo = rows + t0  # absolute query times, evaluated as the reference: (row + t0) + size
        hi = lo + size
        idx = recording.find_times(np.concatenate([lo, hi]), compat=compat)
        i0, i1 = idx[: ks.size], idx[ks.size :]
        return [
            Window(int(k), int(a), int(b), -1, float(r), float(r + size), 0.0)
            for k, a, b, r in zip(ks, i0, i1, rows)
        ]
    g = recording.gt_timestamps(spec.dt)
    rows = _rows(size, float(g.size), "gt")[ks]
    a, b = _gt_bounds(rows, size)
    maps = np.unique(np.concatenate([a, b]))
    found = dict(zip(maps.tolist(), recording.find_times(g[maps], compat=compat).tolist()))
    out = []
    for k, row, ga, gb in zip(ks.tolist(), rows.tolist(), a.tolist(), b.tolist()):
        e0, e1 = found[ga], found[gb]
        if size < 1.0:
            # Sub-window split by event count, truncated with int() as the reference (Python floats, same order).
            delta = e1 - e0
            e0, e1 = int(e0 + (row - ga) * delta), int(e0 + (row + size - ga) * delta)
        dt_gt = float(g[gb] - g[gb - 1]) if gb > 0 else 0.0
        out.append(Window(k, e0, e1, gb, float(g[ga] - t0), float(g[gb] - t0), dt_gt))
    return out


def _times_at(recording: Recording, indices: np.ndarray) -> np.ndarray:
    """Relative event times [s] at ``indices``: point reads for a few, one chunked pass for many."""
    if indices.size <= 64:
        return np.array([recording.timestamps(int(i), int(i) + 1)[0] for i in indices], dtype=np.float64)
    order = np.argsort(indices, kind="stable")
    sorted_idx = indices[order]
    out = np.empty(indices.size, dtype=np.float64)
    first = int(sorted_idx[0])
    for off, ts in recording.iter_timestamps(i0=first):
        a, b = np.searchsorted(sorted_idx, [off, off + ts.size])
        out[order[a:b]] = ts[sorted_idx[a:b] - off] - np.float64(recording.t0)
        if b == sorted_idx.size:
            break
    return out


def plan_windows(recording: Recording, spec: WindowSpec, compat: str | None = None) -> list[Window]:
    """All windows of ``recording`` in order, with the reference semantics (see the module docstring).

    Bounded memory: event times are found in one chunked pass over ``events/ts`` (or by bisection when there
    are few windows). ``compat="hagenaars2021"`` uses the reference's bisection for the time searches.
    """
    return _windows(recording, spec, np.arange(count_windows(recording, spec), dtype=np.int64), compat)


def window_at(recording: Recording, spec: WindowSpec, k: int, compat: str | None = None) -> Window:
    """Window ``k`` alone (the same as ``plan_windows(...)[k]``), by bisection: for random access."""
    n = count_windows(recording, spec)
    if not 0 <= k < n:
        raise IndexError(f"{recording.path}: window {k} out of range; the recording has {n} windows of {spec}")
    return _windows(recording, spec, np.array([k], dtype=np.int64), compat)[0]


def read_window(recording: Recording, spec: WindowSpec, k: int,
                compat: str | None = None) -> tuple[Window, np.ndarray]:
    """Window ``k`` and its events (empty-window rule applied): :func:`window_at` then :func:`load_window`, with
    ``events`` windows read in a single slice read (their times come from the events themselves)."""
    if spec.mode != "events":
        win = window_at(recording, spec, k, compat)
        return win, load_window(recording, win)
    n = int(spec.size)
    if not 0 <= k < count_windows(recording, spec):
        raise IndexError(f"{recording.path}: window {k} out of range; the recording has "
                         f"{count_windows(recording, spec)} windows of {spec}")
    events = recording.read(k * n, (k + 1) * n)
    win = Window(k, k * n, (k + 1) * n, -1, float(events["t"][0]), float(events["t"][-1]), 0.0)
    return win, (events if n > EMPTY_WINDOW_MAX else empty_events())


def load_window(recording: Recording, window: Window) -> np.ndarray:
    """The events of ``window`` (``EVENT_DTYPE``, ``t`` relative to t0 [s]), in one slice read.

    Empty-window rule (reference): a window with ``<= EMPTY_WINDOW_MAX`` (10) events returns no events.
    """
    if window.i1 - window.i0 <= EMPTY_WINDOW_MAX:
        return empty_events()
    return recording.read(window.i0, window.i1)
