"""The event container: a NumPy structured array with named fields, and its validation.

An event camera reports brightness changes as events ``e_k = (x_k, y_k, t_k, p_k)``:

- ``x``: column in pixels, ``0 <= x < W`` (int16);
- ``y``: row in pixels, ``0 <= y < H`` (int16);
- ``t``: timestamp in seconds (float64), non-decreasing;
- ``p``: polarity, +1 for a brightness increase and -1 for a decrease (int8).

Every reader and the simulator return this layout; every function that takes events accepts it.

>>> ev = make_events(x=[1, 2], y=[0, 3], t=[0.0, 0.5], p=[1, -1])
>>> ev["x"].tolist(), ev["p"].tolist()
([1, 2], [1, -1])
>>> validate_events(ev, resolution=(4, 4), source="demo")
>>> validate_events(make_events([5], [0], [0.0], [1]), resolution=(4, 4), source="demo.h5")
Traceback (most recent call last):
...
eventflow.events.EventDataError: demo.h5: x coordinate 5 out of range [0, 4) at event 0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<f8"), ("p", "i1")])


class EventDataError(ValueError):
    """Bad event data. The message is one line that names the source (file) and the problem."""


def make_events(x: Sequence | np.ndarray, y, t, p) -> np.ndarray:
    """Pack coordinate, timestamp [s] and polarity arrays into an ``EVENT_DTYPE`` structured array.

    Polarity may be given as {-1, +1} or {0, 1} (0 is mapped to -1).
    """
    x, y, t, p = (np.asarray(a) for a in (x, y, t, p))
    n = x.shape[0]
    if not (x.shape == y.shape == t.shape == p.shape == (n,)):
        shapes = ", ".join(str(a.shape) for a in (x, y, t, p))
        raise EventDataError(f"<arrays>: x, y, t, p must be 1-D of equal length, got shapes {shapes}")
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["x"] = x
    ev["y"] = y
    ev["t"] = t
    ev["p"] = np.where(p > 0, 1, -1)
    return ev


def empty_events() -> np.ndarray:
    """A zero-length event array."""
    return np.empty(0, dtype=EVENT_DTYPE)


def validate_events(
    events: np.ndarray,
    resolution: tuple[int, int] | None = None,
    source: str = "<array>",
    offset: int = 0,
) -> None:
    """Check events and raise :class:`EventDataError` with a one-line message naming ``source``.

    Checks: the structured dtype, finite timestamps, non-decreasing timestamps, polarity in {-1, +1}, and,
    when ``resolution = (H, W)`` is given, ``0 <= x < W`` and ``0 <= y < H``. ``offset`` is added to
    reported event indices (for chunked reading).
    """
    if not isinstance(events, np.ndarray) or events.dtype.names is None:
        raise EventDataError(f"{source}: events must be a structured array with fields x, y, t, p")
    missing = [f for f in ("x", "y", "t", "p") if f not in events.dtype.names]
    if missing:
        raise EventDataError(f"{source}: event array lacks field(s) {', '.join(missing)}")
    if events.size == 0:
        return
    t = events["t"]
    bad = ~np.isfinite(t)
    if bad.any():
        i = int(np.argmax(bad))
        raise EventDataError(f"{source}: non-finite timestamp {t[i]} at event {i + offset}")
    dec = np.diff(t) < 0
    if dec.any():
        i = int(np.argmax(dec)) + 1
        raise EventDataError(
            f"{source}: timestamps are not sorted: t[{i + offset}]={t[i]:.9g} s < t[{i - 1 + offset}]={t[i - 1]:.9g} s"
        )
    p = events["p"]
    badp = (p != 1) & (p != -1)
    if badp.any():
        i = int(np.argmax(badp))
        raise EventDataError(f"{source}: polarity {p[i]} at event {i + offset} is not -1 or +1")
    if resolution is not None:
        h, w = int(resolution[0]), int(resolution[1])
        for name, lim in (("x", w), ("y", h)):
            c = events[name]
            out = (c < 0) | (c >= lim)
            if out.any():
                i = int(np.argmax(out))
                raise EventDataError(
                    f"{source}: {name} coordinate {c[i]} out of range [0, {lim}) at event {i + offset}"
                )


def events_to_arrays(events: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split into ``(x, y, t, p)`` plain arrays (views where possible)."""
    return events["x"], events["y"], events["t"], events["p"]
