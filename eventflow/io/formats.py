"""Reading events from exchange formats and converting them to the reference HDF5 layout.

Formats (``format="auto"`` picks by file suffix):

- ``txt`` / ``csv``: one event per line, columns ``t x y p`` by default (``columns`` gives another order, ``_``
  skips a column), separated by whitespace or commas. Lines starting with ``#`` or ``%`` are comments. The first
  line may be a header of column names (``t,x,y,p``, ``timestamp x y polarity``, ...: the columns are then
  taken by name) or the two integers ``W H`` (the sensor size, the convention of the event text files of the
  Event Camera Dataset family, e.g. rpg_e2vid; a first line with exactly two integers is read this way).
  Read in blocks: memory stays bounded for any file size.
- ``npy``: a structured array with fields for t, x, y, p (names below), or an ``(N, 4)`` numeric array in
  ``columns`` order; memory-mapped and read in chunks.
- ``npz``: one structured array, one ``(N, 4)`` array, or separate arrays for t, x, y, p.
- ``mat``: MATLAB v5 (``scipy.io.loadmat``) or v7.3 (HDF5, read with h5py in chunks): separate vectors, a struct
  with fields for t, x, y, p, or an ``N x 4`` matrix in ``columns`` order.
- ``aedat4``: iniVation AEDAT4 through the optional ``aedat`` package (``pip install eventflow[aedat]``); the
  first event stream; timestamps in microseconds, resolution from the stream.

Accepted names (case-insensitive): t: ``t ts timestamp timestamps time times``; x: ``x xs``; y: ``y ys``;
p: ``p ps pol polarity polarities on``. Polarity may be bool, 0/1 or -1/+1. Timestamps are converted to
seconds with ``time_unit`` (s, ms, us, ns; AEDAT4 is always us).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "ev.txt").write_text("240 180\\n0.5 3 4 1\\n0.75 5 6 0\\n")
>>> info = convert(d / "ev.txt", d / "ev.h5")
>>> info.num_events, info.resolution, info.resolution_inferred
(2, (180, 240), False)
"""

from __future__ import annotations

import io
import itertools
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from eventflow.events import EVENT_DTYPE, EventDataError, validate_events
from eventflow.io.h5write import write_recording

FORMATS = ("txt", "csv", "npy", "npz", "mat", "aedat4")
SUFFIXES = {".txt": "txt", ".dat": "txt", ".csv": "csv", ".npy": "npy", ".npz": "npz", ".mat": "mat",
            ".aedat4": "aedat4", ".aedat": "aedat4"}
TIME_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}  # divisor from the unit to seconds
ALIASES = {
    "t": ("t", "ts", "timestamp", "timestamps", "time", "times"),
    "x": ("x", "xs"),
    "y": ("y", "ys"),
    "p": ("p", "ps", "pol", "polarity", "polarities", "on"),
}
_MATRIX_NAMES = ("events", "event", "ev", "evs", "data", "td")
_TEXT_BLOCK_BYTES = 16 << 20


class FormatError(EventDataError):
    """An input file cannot be read as events. The message is one line naming the file and the problem."""


class Columns(NamedTuple):
    """Raw columns of a chunk in the source's units."""

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    p: np.ndarray


class EventSource(NamedTuple):
    """An opened input: ``chunks`` yields :class:`Columns` in order; ``resolution`` (H, W) if the file tells it;
    ``time_unit`` the unit the format fixes (None: the caller's choice)."""

    chunks: Iterator[Columns]
    resolution: tuple[int, int] | None
    time_unit: str | None


class ConvertResult(NamedTuple):
    """What :func:`convert` wrote."""

    path: Path
    num_events: int
    resolution: tuple[int, int]
    resolution_inferred: bool
    format: str


def detect_format(path: str | os.PathLike) -> str:
    """The format of ``path`` from its suffix; FormatError when the suffix is not known."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise FormatError(f"{path}: cannot tell the format from the suffix {suffix!r}; pass format= one of "
                          f"{', '.join(FORMATS)}")
    return SUFFIXES[suffix]


def _field_of(name: str) -> str | None:
    low = name.strip().lower()
    for field, names in ALIASES.items():
        if low in names:
            return field
    return None


def _check_columns(columns: str, source) -> str:
    if sorted(c for c in columns if c != "_") != ["p", "t", "x", "y"] or set(columns) - set("txyp_"):
        raise FormatError(f"{source}: columns must name each of t, x, y, p once (and _ for a skipped column), got "
                          f"{columns!r}")
    return columns


def _by_name(items: Mapping[str, object], source, what: str) -> dict[str, object] | None:
    """Pick the t, x, y, p entries of a mapping by their accepted names; None if none match."""
    found: dict[str, object] = {}
    for key, value in items.items():
        field = _field_of(str(key))
        if field is not None:
            if field in found:
                raise FormatError(f"{source}: {what} has two candidates for {field} (e.g. {key!r})")
            found[field] = value
    if not found:
        return None
    missing = [f for f in "txyp" if f not in found]
    if missing:
        raise FormatError(f"{source}: {what} lacks {', '.join(missing)} (accepted names: "
                          + "; ".join(f"{f}: {' '.join(ALIASES[f])}" for f in missing) + ")")
    return found


def _table_chunks(n: int, take: Callable[[int, int], Columns], chunk_events: int) -> Iterator[Columns]:
    for i0 in range(0, n, chunk_events):
        yield take(i0, min(i0 + chunk_events, n))


def _matrix_source(arr, columns: str, source, chunk_events: int, events_axis: int = 0) -> Iterator[Columns]:
    """Chunks of a 2-D array whose axis ``events_axis`` runs over events and the other over ``columns``."""
    columns = _check_columns(columns, source)
    if arr.ndim != 2 or arr.shape[1 - events_axis] != len(columns):
        raise FormatError(f"{source}: expected an N x {len(columns)} array for columns {columns!r}, got shape "
                          f"{arr.shape}")
    pos = {c: i for i, c in enumerate(columns) if c != "_"}
    n = arr.shape[events_axis]

    def take(i0: int, i1: int) -> Columns:
        block = np.asarray(arr[i0:i1] if events_axis == 0 else arr[:, i0:i1].T)
        return Columns(*(block[:, pos[f]] for f in "txyp"))

    return _table_chunks(n, take, chunk_events)


# -- text ----------------------------------------------------------------------------------------------------------


_INT_TOKEN = re.compile(r"^[+-]?\d+$")


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _read_text(path: Path, columns: str, chunk_events: int) -> EventSource:
    fh = open(path, encoding="utf-8")  # closed by the chunk generator, or here on error
    resolution = None
    names = None
    line_no = 0
    first_data: str | None = None
    try:
        for line in fh:
            line_no += 1
            stripped = line.strip()
            if not stripped or stripped[0] in "#%":
                continue
            tokens = stripped.replace(",", " ").split()
            if not all(_is_number(t) for t in tokens):
                if names is not None or first_data is not None:
                    raise FormatError(f"{path}: line {line_no} is not numeric: {stripped[:60]!r}")
                names = [_field_of(t) or "_" for t in tokens]
                continue
            if len(tokens) == 2 and all(_INT_TOKEN.match(t) for t in tokens) and resolution is None and names is None:
                w, h = int(tokens[0]), int(tokens[1])
                if w <= 0 or h <= 0:
                    raise FormatError(f"{path}: line {line_no} gives a sensor size {w} x {h}; expected positive W H")
                resolution = (h, w)
                continue
            first_data = line
            break
    except UnicodeDecodeError as err:
        fh.close()
        raise FormatError(f"{path}: not a text file ({err.reason} at byte {err.start})") from None
    if names is not None:
        named = "".join(names)
        if sorted(c for c in named if c != "_") != ["p", "t", "x", "y"]:
            fh.close()
            raise FormatError(f"{path}: header names {names} do not identify t, x, y and p; accepted names: "
                              + "; ".join(f"{f}: {' '.join(a)}" for f, a in ALIASES.items()))
        columns = named
    columns = _check_columns(columns, path)
    if first_data is None:
        fh.close()
        return EventSource(iter(()), resolution, None)
    delimiter = "," if "," in first_data else None
    tokens = first_data.strip().replace(",", " ").split()
    if len(tokens) != len(columns):
        fh.close()
        raise FormatError(f"{path}: line {line_no} has {len(tokens)} columns, expected {len(columns)} ({columns})")
    # Integer timestamps (e.g. microseconds) are parsed as int64 so that no precision is lost; a block that
    # turns out to hold fractional timestamps is parsed again as float64 (and so are all later blocks).
    t_col = columns.index("t")
    dtypes = [[(f"c{i}", np.float64) for i in range(len(columns))]]
    if _INT_TOKEN.match(tokens[t_col]):
        dtypes.insert(0, [(f"c{i}", np.int64 if c == "t" else np.float64) for i, c in enumerate(columns)])

    def parse(text: str, start_line: int) -> np.ndarray:
        while True:
            try:
                return np.loadtxt(io.StringIO(text), dtype=dtypes[0], delimiter=delimiter, comments=("#", "%"),
                                  ndmin=1)
            except ValueError as err:
                if len(dtypes) == 1:
                    raise FormatError(f"{path}: in the lines from {start_line}: {_one_line(err)}") from None
                dtypes.pop(0)

    def chunks() -> Iterator[Columns]:
        pending = first_data
        start_line = line_no
        try:
            while True:
                block = fh.read(_TEXT_BLOCK_BYTES)
                if block:
                    cut = block.rfind("\n")
                    if cut < 0:
                        pending += block
                        continue
                    text, rest = pending + block[: cut + 1], block[cut + 1 :]
                else:
                    text, rest = pending, ""
                if text.strip():
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", UserWarning)  # a block of comments only holds no data
                        table = parse(text, start_line)
                    for i0 in range(0, table.size, chunk_events):
                        part = table[i0 : i0 + chunk_events]
                        yield Columns(*(part[f"c{columns.index(f)}"] for f in "txyp"))
                start_line += text.count("\n")
                pending = rest
                if not block:
                    return
        finally:
            fh.close()

    return EventSource(chunks(), resolution, None)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


# -- NumPy -----------------------------------------------------------------------------------------------------------


def _structured_source(arr: np.ndarray, source, chunk_events: int) -> Iterator[Columns]:
    found = _by_name({name: name for name in arr.dtype.names}, source, "the structured array")
    if found is None:
        raise FormatError(f"{source}: structured array fields {arr.dtype.names} do not name t, x, y, p")
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    return _table_chunks(arr.shape[0], lambda i0, i1: Columns(*(np.asarray(arr[found[f]][i0:i1]) for f in "txyp")),
                         chunk_events)


def _read_npy(path: Path, columns: str, chunk_events: int) -> EventSource:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise FormatError(f"{path}: not a readable .npy file ({_one_line(err)})") from None
    if arr.dtype.names:
        return EventSource(_structured_source(arr, path, chunk_events), None, None)
    return EventSource(_matrix_source(arr, columns, path, chunk_events), None, None)


def _vectors_source(vectors: Mapping[str, np.ndarray], source, chunk_events: int) -> Iterator[Columns]:
    arrays = {f: np.asarray(v).reshape(-1) if not isinstance(v, h5py.Dataset) else v for f, v in vectors.items()}
    lengths = {f: (a.size if isinstance(a, np.ndarray) else int(np.prod(a.shape))) for f, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise FormatError(f"{source}: t, x, y, p differ in length: "
                          + ", ".join(f"{f}={n}" for f, n in lengths.items()))

    def take(i0: int, i1: int) -> Columns:
        out = []
        for f in "txyp":
            a = arrays[f]
            if isinstance(a, h5py.Dataset):  # MATLAB v7.3 vector: shape (1, N) or (N, 1)
                a = a[0, i0:i1] if a.shape[0] == 1 and a.ndim == 2 else a[i0:i1].reshape(-1)
            else:
                a = a[i0:i1]
            out.append(np.asarray(a).reshape(-1))
        return Columns(*out)

    return _table_chunks(lengths["t"], take, chunk_events)


def _read_npz(path: Path, columns: str, chunk_events: int) -> EventSource:
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise FormatError(f"{path}: not a readable .npz file ({_one_line(err)})") from None
    with npz:
        arrays = {k: npz[k] for k in npz.files}
    return EventSource(_mapping_source(arrays, columns, path, chunk_events), None, None)


def _mapping_source(arrays: Mapping[str, np.ndarray], columns: str, source, chunk_events: int) -> Iterator[Columns]:
    """Events from named arrays: separate t/x/y/p vectors, or one structured array or matrix."""
    vectors = _by_name(arrays, source, "the file")
    if vectors is not None:
        return _vectors_source(vectors, source, chunk_events)
    candidates = [k for k in arrays if k.lower() in _MATRIX_NAMES] or list(arrays)
    if len(candidates) != 1:
        raise FormatError(f"{source}: cannot tell which of {', '.join(arrays)} holds the events; name the vectors "
                          f"t, x, y, p or the matrix 'events'")
    arr = arrays[candidates[0]]
    if isinstance(arr, np.ndarray) and arr.dtype.names:
        return _structured_source(arr, source, chunk_events)
    n_cols = len(columns)
    if arr.ndim == 2 and arr.shape[1] != n_cols and arr.shape[0] == n_cols:
        return _matrix_source(arr, columns, source, chunk_events, events_axis=1)
    return _matrix_source(arr, columns, source, chunk_events)


# -- MATLAB ----------------------------------------------------------------------------------------------------------


def _read_mat(path: Path, columns: str, chunk_events: int) -> EventSource:
    if h5py.is_hdf5(path):
        return EventSource(_mat73_source(path, columns, chunk_events), None, None)
    import scipy.io

    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=True)
    except (ValueError, OSError, TypeError) as err:
        raise FormatError(f"{path}: not a readable MATLAB file ({_one_line(err)})") from None
    arrays = {k: v for k, v in mat.items() if not k.startswith("__")}
    # A struct (e.g. TD.x, TD.ts, ...) is a record array with fields for t, x, y, p.
    structs = {k: v for k, v in arrays.items() if isinstance(v, np.ndarray) and v.dtype.names}
    if len(arrays) == 1 and structs:
        rec = next(iter(structs.values()))
        fields = {name: rec[name].item() if rec[name].ndim == 0 else rec[name] for name in rec.dtype.names}
        fields = {k: np.asarray(v) for k, v in fields.items()}
        found = _by_name(fields, path, "the struct")
        if found is not None:
            return EventSource(_vectors_source(found, path, chunk_events), None, None)
    return EventSource(_mapping_source(arrays, columns, path, chunk_events), None, None)


def _mat73_source(path: Path, columns: str, chunk_events: int) -> Iterator[Columns]:
    with h5py.File(path, "r") as f:
        items = {k: v for k, v in f.items() if not k.startswith("#")}
        groups = {k: v for k, v in items.items() if isinstance(v, h5py.Group)}
        if len(items) == 1 and groups:  # a struct: a group of field datasets
            items = dict(next(iter(groups.values())).items())
        found = _by_name(items, path, "the file")
        if found is not None:
            yield from _vectors_source(found, path, chunk_events)
            return
        candidates = [k for k in items if k.lower() in _MATRIX_NAMES] or list(items)
        if len(candidates) != 1 or not isinstance(items[candidates[0]], h5py.Dataset):
            raise FormatError(f"{path}: cannot tell which of {', '.join(items)} holds the events; name the vectors "
                              f"t, x, y, p or the matrix 'events'")
        ds = items[candidates[0]]
        # MATLAB stores column-major: an N x 4 matrix appears here as (4, N).
        axis = 1 if ds.ndim == 2 and ds.shape[0] == len(columns) else 0
        yield from _matrix_source(ds, columns, path, chunk_events, events_axis=axis)


# -- AEDAT4 ----------------------------------------------------------------------------------------------------------


def _read_aedat4(path: Path, columns: str, chunk_events: int) -> EventSource:
    try:
        import aedat
    except ImportError:
        raise FormatError(f"{path}: reading AEDAT4 needs the optional package 'aedat': pip install "
                          f"eventflow[aedat]") from None
    try:
        decoder = aedat.Decoder(path)
        streams = decoder.id_to_stream()
    except (OSError, RuntimeError, ValueError) as err:
        raise FormatError(f"{path}: not a readable AEDAT4 file ({_one_line(err)})") from None
    ids = sorted(i for i, s in streams.items() if s.get("type") == "events")
    if not ids:
        raise FormatError(f"{path}: the AEDAT4 file has no event stream")
    sid = ids[0]
    resolution = (int(streams[sid]["height"]), int(streams[sid]["width"]))

    def chunks() -> Iterator[Columns]:
        parts, n = [], 0
        try:
            for packet in decoder:
                if packet.get("stream_id") != sid or "events" not in packet:
                    continue
                parts.append(packet["events"])
                n += packet["events"].size
                if n >= chunk_events:
                    ev = np.concatenate(parts)
                    parts, n = [], 0
                    yield Columns(ev["t"], ev["x"], ev["y"], ev["on"])
        except (OSError, RuntimeError, ValueError) as err:
            raise FormatError(f"{path}: corrupt AEDAT4 data ({_one_line(err)})") from None
        if parts:
            ev = np.concatenate(parts)
            yield Columns(ev["t"], ev["x"], ev["y"], ev["on"])

    return EventSource(chunks(), resolution, "us")


READERS: dict[str, Callable[[Path, str, int], EventSource]] = {
    "txt": _read_text,
    "csv": _read_text,
    "npy": _read_npy,
    "npz": _read_npz,
    "mat": _read_mat,
    "aedat4": _read_aedat4,
}


# -- conversion ------------------------------------------------------------------------------------------------------


def open_events(path: str | os.PathLike, format: str = "auto", columns: str = "txyp",
                chunk_events: int = 1 << 20) -> EventSource:
    """Open ``path`` as raw event columns (source units); see the module docstring for the formats."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in READERS:
        raise FormatError(f"{path}: unknown format {format!r}; choose from auto, {', '.join(FORMATS)}")
    return READERS[fmt](path, columns, chunk_events)


def _as_int(values: np.ndarray, name: str, source, offset: int) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind == "b":
        return values.astype(np.int64)
    if values.dtype.kind not in "iuf":
        raise FormatError(f"{source}: {name} has non-numeric dtype {values.dtype}")
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            i = int(np.argmax(bad))
            raise FormatError(f"{source}: {name} value {values[i]} at event {offset + i} is not an integer")
    return values.astype(np.int64)


def columns_to_events(cols: Columns, time_unit: str, source, offset: int = 0, t_offset=0) -> np.ndarray:
    """Convert raw columns to ``EVENT_DTYPE``: ``t = (t_raw - t_offset) / unit`` [s], polarity to {-1, +1}.

    Coordinates must be integers in ``[0, 32767]``; polarity bool, 0/1 or -1/+1. Errors name ``source`` and the
    event index (``offset`` added)."""
    n = cols.t.shape[0]
    if any(np.shape(c) != (n,) for c in cols):
        raise FormatError(f"{source}: t, x, y, p columns differ in length at event {offset}")
    x = _as_int(cols.x, "x", source, offset)
    y = _as_int(cols.y, "y", source, offset)
    p = _as_int(cols.p, "polarity", source, offset)
    badp = (p != 0) & (p != 1) & (p != -1)
    if badp.any():
        i = int(np.argmax(badp))
        raise FormatError(f"{source}: polarity {p[i]} at event {offset + i} is not 0/1 or -1/+1")
    for name, c in (("x", x), ("y", y)):
        out = (c < 0) | (c > np.iinfo(np.int16).max)
        if out.any():
            i = int(np.argmax(out))
            raise FormatError(f"{source}: {name} coordinate {c[i]} at event {offset + i} is negative or too large")
    t = np.asarray(cols.t)
    if t.dtype.kind not in "iuf":
        raise FormatError(f"{source}: timestamps have non-numeric dtype {t.dtype}")
    if t.dtype.kind in "iu":
        t = (t.astype(np.int64) - np.int64(t_offset)).astype(np.float64)  # exact integer difference first
    else:
        t = t.astype(np.float64) - np.float64(t_offset)
    divisor = TIME_UNITS[time_unit]
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["x"], ev["y"] = x, y
    ev["t"] = t / divisor if divisor != 1.0 else t
    ev["p"] = np.where(p > 0, 1, -1)
    return ev


def convert(
    input: str | os.PathLike,
    out: str | os.PathLike,
    *,
    format: str = "auto",
    resolution: tuple[int, int] | None = None,
    time_unit: str | None = None,
    columns: str = "txyp",
    rebase_time: bool = False,
    chunk_events: int = 1 << 20,
) -> ConvertResult:
    """Convert an event file to the reference HDF5 layout at ``out`` (written atomically), chunk by chunk.

    ``resolution`` (H, W): given, else the file's (text header ``W H``, AEDAT4 stream), else inferred as
    ``(max y + 1, max x + 1)`` with a warning. ``time_unit`` of the timestamps (default s; AEDAT4 is us).
    ``rebase_time`` subtracts the first timestamp (exactly, in the source's integer units where it has them) and
    stores it as the attribute ``source_time_offset``. Timestamps must be sorted; errors are one line naming the
    input file.
    """
    input = Path(input)
    source = open_events(input, format=format, columns=columns, chunk_events=chunk_events)
    fmt = detect_format(input) if format == "auto" else format
    if source.time_unit is not None and time_unit not in (None, source.time_unit):
        raise FormatError(f"{input}: {fmt} timestamps are in {source.time_unit}; time unit {time_unit} does not apply")
    unit = source.time_unit or time_unit or "s"
    if unit not in TIME_UNITS:
        raise FormatError(f"{input}: unknown time unit {unit!r}; choose from {', '.join(TIME_UNITS)}")
    res = resolution if resolution is not None else source.resolution
    if res is not None:
        res = (int(res[0]), int(res[1]))
        if res[0] <= 0 or res[1] <= 0:
            raise FormatError(f"{input}: resolution must be positive (H, W), got {res}")
    first = next(source.chunks, None)
    while first is not None and first.t.shape[0] == 0:
        first = next(source.chunks, None)
    if first is None:
        raise FormatError(f"{input}: contains no events")
    t_offset = np.asarray(first.t)[0].item() if rebase_time else 0
    state = {"n": 0, "last": -np.inf}

    def events() -> Iterator[np.ndarray]:
        for cols in itertools.chain([first], source.chunks):
            ev = columns_to_events(cols, unit, input, state["n"], t_offset)
            if ev.size == 0:
                continue
            validate_events(ev, res, source=str(input), offset=state["n"])
            if ev["t"][0] < state["last"]:
                raise FormatError(f"{input}: timestamps are not sorted at event {state['n']}")
            state["last"] = ev["t"][-1]
            state["n"] += ev.size
            yield ev

    attrs = {"source_file": input.name, "source_format": fmt, "source_time_unit": unit}
    if rebase_time:
        attrs["source_time_offset"] = t_offset
    path = write_recording(out, events(), res, attrs=attrs, chunk_events=min(chunk_events, 1 << 16))
    inferred = res is None
    if inferred:
        with h5py.File(path, "r") as f:
            res = tuple(int(v) for v in f.attrs["sensor_resolution"])
        warnings.warn(f"{input}: no resolution given or stored; inferred {res[0]}x{res[1]} (H x W) from the largest "
                      f"coordinates; pass --resolution H W if the sensor is larger", stacklevel=2)
    return ConvertResult(Path(path), state["n"], res, inferred, fmt)
