"""Reading recordings in the reference HDF5 layout (Hagenaars et al. 2021, tudelft/event_flow), in bounded memory.

Layout (see :mod:`eventflow.io.h5write` for the writer)::

    /events/xs, /events/ys  [N] integer pixels (column, row)
    /events/ts              [N] seconds on the recording's clock; readers subtract the root attribute t0
    /events/ps              [N] polarity stored as bool, 0/1 or -1/+1; read as 2 p - 1 (or p itself for -1/+1)
    /flow_dt1/*, /flow_dt4/*  [2, H, W] ground-truth displacement over (t_{k-1}, t_k]; attribute ``timestamp``
    /images/*                 [H, W] frames; attribute ``timestamp``

:class:`Recording` opens a file lazily: nothing but the metadata is read when it is made, and every operation
reads a bounded slice (the authors' datasets hold 94 GB, so no dataset is ever read whole). It pickles by path,
so DataLoader workers reopen it in their own process; an HDF5 handle is never used across a fork.

Timestamps returned by :meth:`Recording.read` are relative: ``t = ts - t0`` in float64, as the reference loader
computes them; GT and frame timestamps and :meth:`Recording.find_time` use the absolute clock of ``events/ts``.

>>> import tempfile, pathlib
>>> from eventflow.events import make_events
>>> from eventflow.io.h5write import write_recording
>>> path = pathlib.Path(tempfile.mkdtemp()) / "demo.h5"
>>> ev = make_events([0, 1, 2, 2, 0], [0, 0, 1, 1, 0], [0.5, 0.75, 0.75, 0.75, 1.0], [1, 0, 1, 1, 0])
>>> _ = write_recording(path, ev, (2, 3), t0=0.5)
>>> with Recording(path) as rec:
...     rec.resolution, rec.num_events, rec.read(0, 3)["t"].tolist(), rec.read(0, 3)["p"].tolist()
((2, 3), 5, [0.0, 0.25, 0.25], [1, -1, 1])
>>> with Recording(path) as rec:
...     rec.find_time(0.75), rec.find_time(0.75, compat="hagenaars2021")
(1, 2)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from eventflow.events import EVENT_DTYPE, EventDataError, validate_events

EVENT_FIELDS = ("xs", "ys", "ts", "ps")
# Below this many events a time search reads the block whole instead of bisecting further.
SEARCH_BLOCK = 1 << 16
# HDF5 chunk cache per dataset: enough for the bisection probes and a window to share decompressed chunks.
_CHUNK_CACHE_BYTES = 4 << 20
# Names of the common HDF5 filter plugins, for error messages when a file does not store the name.
_KNOWN_FILTERS = {
    307: "bzip2",
    32001: "blosc",
    32004: "lz4",
    32008: "bitshuffle",
    32013: "zfp",
    32015: "zstd",
    32017: "sz",
    32018: "fcidecomp",
    32024: "sz3",
    32026: "blosc2",
}
COMPAT_CHOICES = (None, "hagenaars2021")


class RecordingError(EventDataError):
    """A recording cannot be read. The message is one line naming the file and the problem."""


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _check_compat(compat: str | None) -> None:
    if compat not in COMPAT_CHOICES:
        raise ValueError(f"compat must be one of {COMPAT_CHOICES}, got {compat!r}")


_plugins_loaded = False


def load_filter_plugins() -> bool:
    """Register the HDF5 compression filters of ``hdf5plugin`` (Blosc, LZ4, Zstd, bitshuffle, ...) with h5py.

    ``hdf5plugin`` is a pinned dependency; where it is not installed, files that need a plugin filter fail with
    a :class:`RecordingError` naming the filter. Returns whether the plugins are available.
    """
    global _plugins_loaded
    if not _plugins_loaded:
        try:
            import hdf5plugin  # noqa: F401  (importing registers the filters with HDF5)
        except ImportError:
            return False
        _plugins_loaded = True
    return True


def dataset_filters(ds: h5py.Dataset) -> list[tuple[int, str, bool]]:
    """The filter pipeline of a dataset as ``(filter id, name, available)`` triples, in pipeline order."""
    plist = ds.id.get_create_plist()
    out = []
    for i in range(plist.get_nfilters()):
        code, _flags, _values, name = plist.get_filter(i)
        name = name.decode("ascii", "replace").split(";")[0].strip() if isinstance(name, bytes) else str(name)
        name = _KNOWN_FILTERS.get(int(code)) or name or "unknown"
        out.append((int(code), name, bool(h5py.h5z.filter_avail(code))))
    return out


def reference_bisection(n: int, left: np.ndarray | int, right: np.ndarray | int) -> np.ndarray:
    """The index the reference loader's recursive binary search returns, from where the value sits.

    For a sorted array of length ``n`` and a query ``x`` with ``left = #(a < x)`` and ``right = #(a <= x)``, the
    reference bisects ``[0, n - 1]`` with ``mid = lo + (hi - lo) // 2`` and returns ``mid`` as soon as
    ``a[mid] == x``, else the insertion point ``lo``. With duplicates the probed index need not be the first
    (``left``). The comparisons are fully determined by ``left`` and ``right``, so this needs no data.
    Vectorised over queries.

    >>> reference_bisection(5, 1, 4).tolist()  # a = [0, 1, 1, 1, 2], x = 1: the first probe, index 2, matches
    [2]
    >>> reference_bisection(5, 4, 4).tolist()  # x absent: the insertion point
    [4]
    """
    left = np.atleast_1d(np.asarray(left, dtype=np.int64))
    right = np.atleast_1d(np.asarray(right, dtype=np.int64))
    lo = np.zeros_like(left)
    hi = np.full_like(left, n - 1)
    found = np.full_like(left, -1)
    active = lo <= hi
    while active.any():
        mid = lo + (hi - lo) // 2
        below = active & (mid < left)  # a[mid] < x: search the upper half
        above = active & (mid >= right)  # a[mid] > x: search the lower half
        hit = active & ~below & ~above
        found[hit] = mid[hit]
        lo[below] = mid[below] + 1
        hi[above] = mid[above] - 1
        active = active & ~hit & (lo <= hi)
    return np.where(found >= 0, found, lo)


class Recording:
    """A recording in the reference HDF5 layout, opened lazily and read in bounded slices.

    ``resolution=(H, W)`` overrides the file's ``sensor_resolution`` attribute (otherwise taken from it, or from
    the shape of the GT flow maps or frames). The handle is opened per process; use as a context manager or
    call :meth:`close`. Raises :class:`RecordingError` (one line, naming the file) for a file that is not
    HDF5, is truncated, lacks ``events/{xs,ys,ts,ps}``, has wrong dtypes or lengths, has no events, or needs a
    compression filter that cannot be loaded; and :class:`FileNotFoundError` for a missing file.
    """

    def __init__(self, path: str | os.PathLike, resolution: tuple[int, int] | None = None):
        self.path = Path(path)
        self._resolution_override = None if resolution is None else self._check_resolution(resolution, "argument")
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._gt_cache: dict[str, tuple[list[str], np.ndarray]] = {}
        self._datasets: dict[str, h5py.Dataset] = {}
        self._open()
        try:
            self._read_metadata()
        except BaseException:
            self.close()
            raise

    # -- opening, pickling, closing ------------------------------------------------------------------------------

    def _open(self) -> h5py.File:
        if self._file is not None and self._pid == os.getpid():
            return self._file
        # A handle inherited through fork is dropped (never closed or used here): the parent still owns it.
        self._file = None
        self._datasets = {}
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such file")
        load_filter_plugins()
        try:
            self._file = h5py.File(self.path, "r", rdcc_nbytes=_CHUNK_CACHE_BYTES)
        except OSError as err:
            raise RecordingError(f"{self.path}: not a readable HDF5 file ({_one_line(err)})") from None
        self._pid = os.getpid()
        return self._file

    @property
    def file(self) -> h5py.File:
        """The h5py handle of this process (reopened after a fork or unpickling)."""
        return self._open()

    def close(self) -> None:
        """Close the handle (a later read reopens the file)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
        self._datasets = {}

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        state["_datasets"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        h, w = self.resolution
        return f"Recording({str(self.path)!r}, {self.num_events} events, {h}x{w}, {self.duration:.6g} s)"

    # -- metadata ------------------------------------------------------------------------------------------------

    def _error(self, message: str) -> RecordingError:
        return RecordingError(f"{self.path}: {message}")

    def _check_resolution(self, resolution, origin: str) -> tuple[int, int]:
        try:
            h, w = (int(v) for v in np.asarray(resolution).reshape(-1))
        except (TypeError, ValueError):
            raise self._error(f"resolution ({origin}) must be two integers (H, W), got {resolution!r}") from None
        if h <= 0 or w <= 0:
            raise self._error(f"resolution ({origin}) must be positive, got ({h}, {w})")
        return h, w

    def _dataset(self, name: str) -> h5py.Dataset:
        """A dataset handle, cached per process and checked once for filters that cannot be loaded."""
        f = self.file
        ds = self._datasets.get(name)
        if ds is not None:
            return ds
        try:
            ds = f[name]
        except KeyError:
            raise self._error(f"missing dataset '{name}'") from None
        if not isinstance(ds, h5py.Dataset):
            raise self._error(f"'{name}' is a {type(ds).__name__}, expected a dataset")
        for code, fname, available in dataset_filters(ds):
            if not available:
                hint = "install hdf5plugin" if not load_filter_plugins() else "the filter is not in hdf5plugin"
                raise self._error(f"dataset '{name}' needs HDF5 filter '{fname}' (id {code}), which cannot be "
                                  f"loaded ({hint})")
        self._datasets[name] = ds
        return ds

    def _read_metadata(self) -> None:
        f = self.file
        if "events" not in f or not isinstance(f["events"], h5py.Group):
            raise self._error("missing group 'events' (expected events/xs, events/ys, events/ts, events/ps)")
        missing = [k for k in EVENT_FIELDS if k not in f["events"]]
        if missing:
            raise self._error(f"missing dataset(s) {', '.join('events/' + k for k in missing)}")
        lengths = {}
        expected = {"xs": "iuf", "ys": "iuf", "ts": "iuf", "ps": "biuf"}
        for key in EVENT_FIELDS:
            ds = self._dataset(f"events/{key}")
            if ds.dtype.kind not in expected[key]:
                what = "bool, integer or float" if key == "ps" else "integer or float"
                raise self._error(f"events/{key} has dtype {ds.dtype}, expected {what}")
            if ds.ndim != 1:
                raise self._error(f"events/{key} has shape {ds.shape}, expected one dimension")
            lengths[key] = ds.shape[0]
        if len(set(lengths.values())) != 1:
            raise self._error("events datasets differ in length: " + ", ".join(f"{k}={v}" for k, v in lengths.items()))
        self.num_events = int(lengths["xs"])
        if self.num_events == 0:
            raise self._error("contains no events")
        self.t0 = float(f.attrs.get("t0", 0.0))
        ts = self._dataset("events/ts")
        self._ts_first = float(self._read_raw(ts, 0, 1)[0])
        self._ts_last = float(self._read_raw(ts, self.num_events - 1, self.num_events)[0])
        for value, i in ((self._ts_first, 0), (self._ts_last, self.num_events - 1)):
            if not np.isfinite(value):
                raise self._error(f"non-finite timestamp {value} at event {i}")
        if self._ts_last < self._ts_first:
            raise self._error(f"timestamps are not sorted: the last ({self._ts_last:.9g} s) precedes the first "
                              f"({self._ts_first:.9g} s)")
        if self._resolution_override is not None:
            self.resolution = self._resolution_override
        elif "sensor_resolution" in f.attrs:
            self.resolution = self._check_resolution(f.attrs["sensor_resolution"], "attribute sensor_resolution")
        else:
            self.resolution = self._resolution_from_maps()

    def _resolution_from_maps(self) -> tuple[int, int]:
        for group, dims in (("flow_dt1", 3), ("flow_dt4", 3), ("images", 2)):
            if group in self.file and isinstance(self.file[group], h5py.Group):
                for item in self.file[group].values():
                    if isinstance(item, h5py.Dataset) and item.ndim >= dims:
                        return self._check_resolution(item.shape[dims - 2 : dims], f"shape of {item.name}")
        raise self._error("no sensor_resolution attribute and no GT flow or frames to infer it from; pass "
                          "resolution=(H, W)")

    @property
    def duration(self) -> float:
        """``ts[-1] - ts[0]`` in seconds (from the data, not the ``duration`` attribute)."""
        return self._ts_last - self._ts_first

    @property
    def time_range(self) -> tuple[float, float]:
        """First and last event time relative to t0, in seconds."""
        return self._ts_first - self.t0, self._ts_last - self.t0

    @property
    def last_time(self) -> float:
        """``ts[-1] - t0`` in seconds: the reference loader's end-of-sequence time."""
        return self._ts_last - self.t0

    # -- events --------------------------------------------------------------------------------------------------

    def _read_raw(self, ds: h5py.Dataset, i0: int, i1: int) -> np.ndarray:
        try:
            return ds[i0:i1]
        except OSError as err:
            raise self._error(f"cannot read {ds.name.lstrip('/')}[{i0}:{i1}] ({_one_line(err)}); the file may be "
                              f"truncated or corrupt") from None

    def _coordinates(self, raw: np.ndarray, name: str, limit: int, i0: int) -> np.ndarray:
        if raw.dtype.kind == "f":
            bad = ~np.isfinite(raw) | (raw != np.floor(raw))
            if bad.any():
                i = int(np.argmax(bad))
                raise self._error(f"{name} holds the non-integer coordinate {raw[i]} at event {i + i0}")
        out = (raw < 0) | (raw >= limit)
        if out.any():
            i = int(np.argmax(out))
            raise self._error(f"{name} coordinate {raw[i]} out of range [0, {limit}) at event {i + i0}")
        return raw

    def _polarity(self, raw: np.ndarray, i0: int) -> np.ndarray:
        if raw.dtype.kind == "b":
            return np.where(raw, 1, -1).astype(np.int8)
        bad = (raw != 0) & (raw != 1) & (raw != -1)
        if bad.any():
            i = int(np.argmax(bad))
            raise self._error(f"polarity {raw[i]} at event {i + i0} is not 0/1 or -1/+1")
        if (raw == 0).any() and (raw == -1).any():
            raise self._error(f"polarities mix 0 and -1 in events [{i0}, {i0 + raw.size}); expected 0/1 or -1/+1")
        return np.where(raw > 0, 1, -1).astype(np.int8)

    def read(self, i0: int, i1: int) -> np.ndarray:
        """Events ``[i0, i1)`` as an ``EVENT_DTYPE`` array with ``t = ts - t0`` [s, float64] and ``p`` in {-1, +1}.

        ``i0`` and ``i1`` are clipped to ``num_events``. The slice is validated (finite, non-decreasing
        timestamps; integer coordinates inside the resolution; polarity values); errors name the file and the
        event index.
        """
        i0, i1 = min(int(i0), self.num_events), min(int(i1), self.num_events)
        if i0 < 0 or i1 < i0:
            raise ValueError(f"{self.path}: invalid event range [{i0}, {i1})")
        h, w = self.resolution
        out = np.empty(i1 - i0, dtype=EVENT_DTYPE)
        if i1 == i0:
            return out
        xs = self._coordinates(self._read_raw(self._dataset("events/xs"), i0, i1), "x", w, i0)
        ys = self._coordinates(self._read_raw(self._dataset("events/ys"), i0, i1), "y", h, i0)
        ts = self._read_raw(self._dataset("events/ts"), i0, i1)
        ps = self._polarity(self._read_raw(self._dataset("events/ps"), i0, i1), i0)
        out["x"] = xs
        out["y"] = ys
        out["t"] = ts.astype(np.float64, copy=False) - np.float64(self.t0)
        out["p"] = ps
        try:
            validate_events(out, source=str(self.path), offset=i0)
        except EventDataError as err:
            raise RecordingError(str(err)) from None
        return out

    def timestamps(self, i0: int, i1: int) -> np.ndarray:
        """Relative times ``ts - t0`` [s, float64] of events ``[i0, i1)`` (``i1`` clipped), checked finite."""
        i0, i1 = int(i0), min(int(i1), self.num_events)
        if i0 < 0 or i1 < i0:
            raise ValueError(f"{self.path}: invalid event range [{i0}, {i1})")
        ts = self._read_raw(self._dataset("events/ts"), i0, i1).astype(np.float64, copy=False)
        bad = ~np.isfinite(ts)
        if bad.any():
            i = int(np.argmax(bad))
            raise self._error(f"non-finite timestamp {ts[i]} at event {i + i0}")
        return ts - np.float64(self.t0)

    def iter_chunks(self, chunk_events: int = 1 << 20) -> Iterator[np.ndarray]:
        """All events in order, ``chunk_events`` at a time (bounded memory), checking order across chunks."""
        if chunk_events <= 0:
            raise ValueError(f"chunk_events must be positive, got {chunk_events}")
        last = -np.inf
        for i0 in range(0, self.num_events, chunk_events):
            chunk = self.read(i0, i0 + chunk_events)
            if chunk["t"][0] < last:
                raise self._error(f"timestamps are not sorted: t[{i0}] precedes t[{i0 - 1}]")
            last = chunk["t"][-1]
            yield chunk

    def iter_timestamps(self, chunk_events: int = 1 << 20, i0: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """``(offset, ts)`` chunks of the absolute timestamps [s, float64] from event ``i0``, checked as they
        are read (finite and sorted)."""
        ds = self._dataset("events/ts")
        last = -np.inf
        for start in range(i0, self.num_events, chunk_events):
            ts = self._read_raw(ds, start, start + chunk_events).astype(np.float64, copy=False)
            bad = ~np.isfinite(ts)
            if bad.any():
                i = int(np.argmax(bad))
                raise self._error(f"non-finite timestamp {ts[i]} at event {i + start}")
            dec = np.diff(ts, prepend=last) < 0
            if dec.any():
                i = int(np.argmax(dec))
                raise self._error(f"timestamps are not sorted at event {i + start}")
            last = ts[-1]
            yield start, ts

    # -- time search ---------------------------------------------------------------------------------------------

    def _bisect(self, q: float, side: str) -> int:
        """``searchsorted(ts, q, side)`` by bisection on single-element reads, then one block read."""
        ds = self._dataset("events/ts")
        lo, hi = 0, self.num_events
        while hi - lo > SEARCH_BLOCK:
            mid = (lo + hi) // 2
            v = float(self._read_raw(ds, mid, mid + 1)[0])
            go_right = v < q if side == "left" else v <= q
            lo, hi = (mid + 1, hi) if go_right else (lo, mid)
        block = self._read_raw(ds, lo, hi).astype(np.float64, copy=False)
        return lo + int(np.searchsorted(block, q, side=side))

    def _stream_counts(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``#(ts < q)`` and ``#(ts <= q)`` for many queries in one chunked pass over ``events/ts``."""
        order = np.argsort(q, kind="stable")
        qs = q[order]
        left = np.full(q.size, self.num_events, dtype=np.int64)
        right = np.full(q.size, self.num_events, dtype=np.int64)
        prev = -np.inf
        for off, ts in self.iter_timestamps():
            last = ts[-1]
            # The first index with ts >= q lies in this chunk iff prev < q <= last; with ts > q iff prev <= q < last.
            a, b = np.searchsorted(qs, prev, "right"), np.searchsorted(qs, last, "right")
            left[a:b] = off + np.searchsorted(ts, qs[a:b], "left")
            a, b = np.searchsorted(qs, prev, "left"), np.searchsorted(qs, last, "left")
            right[a:b] = off + np.searchsorted(ts, qs[a:b], "right")
            prev = last
            if qs[-1] < last:
                break
        out_l, out_r = np.empty_like(left), np.empty_like(right)
        out_l[order], out_r[order] = left, right
        return out_l, out_r

    def find_times(self, t_abs, compat: str | None = None, method: str = "auto") -> np.ndarray:
        """Event indices for absolute times ``t_abs`` [s] (an array; same clock as GT and frame timestamps).

        Default: the first index with ``ts >= t`` (``searchsorted`` left). ``compat="hagenaars2021"``: the index
        the reference's recursive bisection returns, which on exact equality is the probed index, not
        necessarily the first (see :func:`reference_bisection`). ``method`` picks bisection per query
        (``"bisect"``), one chunked pass for all queries (``"stream"``) or the cheaper of the two (``"auto"``);
        all give the same result.
        """
        _check_compat(compat)
        q = np.atleast_1d(np.asarray(t_abs, dtype=np.float64))
        if np.isnan(q).any():
            raise ValueError(f"{self.path}: cannot search for a NaN time")
        if q.size == 0:
            return np.zeros(0, dtype=np.int64)
        if method == "auto":
            method = "bisect" if q.size * 4 * SEARCH_BLOCK < self.num_events or q.size <= 2 else "stream"
        if method == "bisect":
            left = np.array([self._bisect(v, "left") for v in q], dtype=np.int64)
            right = (np.array([self._bisect(v, "right") for v in q], dtype=np.int64) if compat else left)
        elif method == "stream":
            left, right = self._stream_counts(q)
        else:
            raise ValueError(f"method must be 'auto', 'bisect' or 'stream', got {method!r}")
        if compat is None:
            return left
        return reference_bisection(self.num_events, left, right)

    def find_time(self, t_abs: float, compat: str | None = None) -> int:
        """Event index for one absolute time ``t_abs`` [s]; see :meth:`find_times`."""
        return int(self.find_times([t_abs], compat=compat)[0])

    # -- ground truth and frames ---------------------------------------------------------------------------------

    def _maps(self, group: str) -> tuple[list[str], np.ndarray]:
        """Dataset names in ``group`` and their absolute timestamps, in the order the reference visits them
        (``visititems``: names in increasing order, recursively). Cached."""
        if group not in self._gt_cache:
            names: list[str] = []
            stamps: list[float] = []
            if group in self.file:

                def visit(name, obj):
                    if isinstance(obj, h5py.Dataset) and name not in names:
                        if "timestamp" not in obj.attrs:
                            raise self._error(f"{group}/{name} has no 'timestamp' attribute")
                        names.append(name)
                        stamps.append(float(obj.attrs["timestamp"]))

                self.file[group].visititems(visit)
            ts = np.asarray(stamps, dtype=np.float64)
            if ts.size and not np.isfinite(ts).all():
                raise self._error(f"{group} has a non-finite timestamp")
            ts.flags.writeable = False
            self._gt_cache[group] = (names, ts)
        return self._gt_cache[group]

    def has_gt(self, dt: int) -> bool:
        """Whether ``flow_dt{dt}`` holds at least one flow map."""
        return len(self._maps(f"flow_dt{int(dt)}")[0]) > 0

    def gt_timestamps(self, dt: int) -> np.ndarray:
        """Absolute timestamps [s] of the ``flow_dt{dt}`` maps, in name order (empty if the group is absent)."""
        return self._maps(f"flow_dt{int(dt)}")[1]

    def read_gt(self, dt: int, k: int) -> np.ndarray:
        """GT flow map ``k`` of ``flow_dt{dt}``: ``(2, H, W)`` float32 pixels of displacement over
        ``(t_{k-1}, t_k]``, channel 0 = x."""
        names, _ = self._maps(f"flow_dt{int(dt)}")
        if not 0 <= k < len(names):
            raise IndexError(f"{self.path}: flow_dt{dt} has {len(names)} maps, asked for map {k}")
        ds = self._dataset(f"flow_dt{int(dt)}/{names[k]}")
        h, w = self.resolution
        if ds.shape != (2, h, w):
            raise self._error(f"{ds.name} has shape {ds.shape}, expected (2, {h}, {w})")
        return self._read_raw(ds, 0, 2).astype(np.float32, copy=False)

    def image_timestamps(self) -> np.ndarray:
        """Absolute timestamps [s] of the frames in ``images``, in name order (empty if absent)."""
        return self._maps("images")[1]

    def read_image(self, k: int) -> np.ndarray:
        """Frame ``k`` as stored, ``(H, W)``."""
        names, _ = self._maps("images")
        if not 0 <= k < len(names):
            raise IndexError(f"{self.path}: images has {len(names)} frames, asked for frame {k}")
        ds = self._dataset(f"images/{names[k]}")
        return self._read_raw(ds, 0, ds.shape[0])
