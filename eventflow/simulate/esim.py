"""Events from log-intensity threshold crossings over a run of renders (ESIM-style, vectorised).

Each pixel remembers the log-intensity level ``ref`` of its last crossing. Between two renders at ``t0`` and
``t1`` the log intensity ``L`` is taken as linear in time, so pixel ``i`` crosses the levels

    ref + k * C+   (k = 1, 2, ...)  while they are <= L(t1)   -> positive events, or
    ref - k * C-                    while they are >= L(t1)   -> negative events,

at ``t = t0 + (level - L(t0)) / (L(t1) - L(t0)) * (t1 - t0)``. Several crossings per step are allowed and
every crossing moves ``ref``. A crossing less than ``refractory`` seconds (plus a 1 ps guard against float
rounding) after the pixel's previous *emitted* event is dropped; its level still moves ``ref``, as the pixel
keeps tracking the signal while it is held in reset. Crossings of one pixel within one step are equally spaced
in time, so the surviving ones are found in closed form: the first at index ``k0`` (the first outside the
refractory window) and then every ``m``-th, with ``m = ceil(refractory / spacing)``.

Precision: renders, references and thresholds are float32; the crossing arithmetic and times are float64.

API: :func:`esim_step` and :func:`esim_steps` are pure (state in, new state out). The simulator instead keeps
one :class:`Workspace` for a whole recording and lets :func:`advance` update it in place, tile by tile
(:func:`workspace_slice`), which saves a copy of the state per step; :func:`esim_steps` is built on the same
kernel, so both give the same events bit for bit.

The thresholds carry per-pixel mismatch (Gallego et al., "Event-based vision: a survey", 2020; ESIM, Rebecq
et al. 2018): ``C+_i = C+ + N(0, sigma)`` and likewise ``C-_i``, floored at a quarter of the nominal value.

>>> th = make_thresholds(np.full(2, 0.2), np.full(2, 0.2), refractory=0.0)
>>> state = init_state(np.zeros(2, np.float32))
>>> (pix, t, p), state = esim_step(np.zeros(2, np.float32), np.array([0.5, -0.3], np.float32), 0.0, 1.0,
...                                state, th)
>>> pix.tolist(), t.round(3).tolist(), p.tolist()
([0, 0, 1], [0.4, 0.8, 0.667], [1, 1, -1])
>>> state.ref.astype(float).round(3).tolist()
[0.4, -0.2]
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# Added to the refractory period in the arithmetic [s], far above float64 rounding of timestamps (1e-14 s at
# 100 s), so rounding never lets an emitted event fall short of the period.
_GUARD_S = 1e-12
_TINY = 1e-12

Events = tuple[np.ndarray, np.ndarray, np.ndarray]


class PixelState(NamedTuple):
    """Per-pixel memory, (N,) for N = H*W pixels (row-major): ``ref`` float32, the log level of the last
    crossing; ``last_t`` float64, the time [s] of the last emitted event (-inf before the first)."""

    ref: np.ndarray
    last_t: np.ndarray


class Thresholds(NamedTuple):
    """Per-pixel contrast thresholds ``pos`` (C+) and ``neg`` (C-), (N,) float32 log units, ``least`` their
    per-pixel minimum (a first screen for crossings), and the refractory period [s] shared by all pixels."""

    pos: np.ndarray
    neg: np.ndarray
    least: np.ndarray
    refractory: float


def make_thresholds(pos: np.ndarray, neg: np.ndarray, refractory: float) -> Thresholds:
    """Bundle per-pixel thresholds ``pos`` and ``neg`` (N,) [log units] with the refractory period [s]."""
    pos = np.asarray(pos, dtype=np.float32)
    neg = np.asarray(neg, dtype=np.float32)
    if pos.shape != neg.shape or not (np.all(pos > 0) and np.all(neg > 0)):
        raise ValueError("contrast thresholds must be positive arrays of equal shape")
    if refractory < 0:
        raise ValueError(f"refractory period must be >= 0 s, got {refractory}")
    return Thresholds(pos, neg, np.minimum(pos, neg), float(refractory))


def init_state(log0: np.ndarray) -> PixelState:
    """Start every pixel with its reference at the first render ``log0`` (N,) and no event yet."""
    return PixelState(log0.astype(np.float32), np.full(log0.shape, -np.inf))


def sample_thresholds(
    rng: np.random.Generator, n: int, c_pos: float, c_neg: float, mismatch: float, refractory: float
) -> Thresholds:
    """Draw per-pixel thresholds ``C + N(0, mismatch)`` for ``n`` pixels, floored at ``C / 4``."""
    pos = np.maximum(c_pos + mismatch * rng.standard_normal(n), c_pos / 4)
    neg = np.maximum(c_neg + mismatch * rng.standard_normal(n), c_neg / 4)
    return make_thresholds(pos, neg, refractory)


def _empty_events() -> Events:
    return np.empty(0, np.intp), np.empty(0, np.float64), np.empty(0, np.int8)


def esim_step(
    log0: np.ndarray,
    log1: np.ndarray,
    t0: float,
    t1: float,
    state: PixelState,
    thresholds: Thresholds,
) -> tuple[Events, PixelState]:
    """Events between renders ``log0`` at ``t0`` and ``log1`` at ``t1`` (both (N,) log intensity, seconds): one
    step of :func:`esim_steps`, which it calls."""
    return esim_steps(np.stack([log0, log1]), np.array([t0, t1], dtype=np.float64), state, thresholds)


def esim_steps(
    logs: np.ndarray, times: np.ndarray, state: PixelState, thresholds: Thresholds
) -> tuple[Events, PixelState]:
    """Events over consecutive renders ``logs`` (S+1, N) float32 log intensity at ``times`` (S+1,) [s], ascending;
    ``logs[0]`` is the render the state was last advanced to.

    Returns ``((pixel, t, p), new_state)``: flat pixel index (intp), timestamp float64 and polarity int8 (+1/-1)
    of each event, grouped by step, then by pixel (ascending), in time order within a pixel; sort by ``t`` to
    merge pixels (the caller sorts a whole GT interval at once). The input state is not modified: a
    :func:`workspace` copy of it is advanced by :func:`advance`.
    """
    logs = np.asarray(logs)
    times = np.asarray(times, dtype=np.float64)
    steps = logs.shape[0] - 1
    n_pix = state.ref.shape[0]
    if logs.ndim != 2 or steps < 1 or logs.shape[1] != n_pix or times.shape != (steps + 1,):
        raise ValueError(f"esim_steps needs logs (S+1, N) and times (S+1,) with S >= 1 and N = {n_pix}, got "
                         f"{logs.shape} and {times.shape}")
    ws = workspace(state, thresholds)
    parts = [advance(logs[j], logs[j + 1], float(times[j]), float(times[j + 1]), ws) for j in range(steps)]
    return concat_events(parts), workspace_state(ws)


def concat_events(parts: list[Events]) -> Events:
    """Concatenate ``(pixel, t, p)`` parts in order."""
    parts = [p for p in parts if p[0].size]
    if not parts:
        return _empty_events()
    if len(parts) == 1:
        return parts[0]
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))


class Workspace(NamedTuple):
    """Pixels ``offset .. offset + n`` advanced in place by :func:`advance`: ``ref`` (n,) float32 and ``last_t``
    (n,) float64 as in :class:`PixelState`, thresholds ``least`` (float32), ``neg`` and ``dpn = pos - neg``
    (float64, exact), the refractory period [s], and scratch ``dist`` (float32) and ``mask`` (bool).

    The simulator advances one workspace through a whole recording instead of building a new state per step,
    and works on row tiles of it (:func:`workspace_slice`) so that each tile's arrays stay in cache.
    """

    offset: int
    ref: np.ndarray
    last_t: np.ndarray
    least: np.ndarray
    neg: np.ndarray
    dpn: np.ndarray
    refractory: float
    dist: np.ndarray
    mask: np.ndarray


def workspace(state: PixelState, thresholds: Thresholds) -> Workspace:
    """A workspace holding a copy of ``state`` (N pixels) and ``thresholds``."""
    neg = thresholds.neg.astype(np.float64)
    return Workspace(0, state.ref.copy(), state.last_t.copy(), thresholds.least, neg, thresholds.pos - neg,
                     thresholds.refractory, np.empty(state.ref.shape, np.float32), np.empty(state.ref.shape, bool))


def workspace_slice(ws: Workspace, start: int, stop: int) -> Workspace:
    """Pixels ``start .. stop`` (flat, relative to ``ws``) of ``ws`` as views: advancing them advances ``ws``."""
    view = [a[start:stop] if isinstance(a, np.ndarray) else a for a in ws[1:]]
    return Workspace(ws.offset + start, *view)


def workspace_state(ws: Workspace) -> PixelState:
    """The state held by ``ws`` (its arrays, not a copy)."""
    return PixelState(ws.ref, ws.last_t)


def advance(log0: np.ndarray, log1: np.ndarray, t0: float, t1: float, w: Workspace) -> Events:
    """Events of one step from ``log0`` at ``t0`` to ``log1`` at ``t1`` (both (n,) float32 log intensity of the
    workspace's pixels, seconds), advancing ``w.ref`` and ``w.last_t`` in place. Events as in :func:`esim_steps`,
    pixel indices including ``w.offset``.

    The screen runs in float32 (any pixel with a crossing passes it, as rounding is monotonic); the crossing
    arithmetic on the pixels that pass runs in float64. ``np.where`` is avoided: selects are written as
    arithmetic that is exact for these operands (``neg + up * (pos - neg)`` is exactly ``pos`` or ``neg``).
    """
    np.subtract(log1, w.ref, out=w.dist)  # float32 distance from the last crossing level
    np.abs(w.dist, out=w.dist)
    np.greater_equal(w.dist, w.least, out=w.mask)
    active = np.flatnonzero(w.mask)  # (A,)
    if active.size == 0:
        return _empty_events()
    ref_a = w.ref[active]  # float32
    l1 = log1[active]
    d = np.subtract(l1, ref_a, dtype=np.float64)  # exact; never 0 for a pixel that passed the screen
    up = d > 0
    sgn = np.copysign(1.0, d)
    c = w.dpn[active] * up
    c += w.neg[active]  # C+ where up, else C-
    n = np.abs(d)
    n /= c
    np.floor(n, out=n)  # crossings (0 where only the other-polarity threshold was met)
    moved = sgn * n
    moved *= c
    moved += ref_a
    w.ref[active] = moved  # rounded to float32: far below any threshold

    # L is linear in t between the renders: crossing k (0-based) is at first + k * spacing.
    l0 = log0[active]
    per_log = np.subtract(l1, l0, dtype=np.float64)
    per_log *= sgn
    np.maximum(per_log, _TINY, out=per_log)
    np.divide(t1 - t0, per_log, out=per_log)  # seconds per log unit
    first = np.subtract(ref_a, l0, dtype=np.float64)
    first *= sgn
    first += c
    first *= per_log
    np.clip(first, 0.0, t1 - t0, out=first)
    first += t0
    spacing = c * per_log

    last_a = w.last_t[active]
    r = w.refractory
    if r > 0:
        # Emitted crossings are k0, k0 + m, k0 + 2m, ... < n; the guard keeps float rounding on the safe side.
        k0 = last_a + (r + _GUARD_S)
        k0 -= first
        k0 /= spacing
        np.ceil(k0, out=k0)
        np.maximum(k0, 0.0, out=k0)
        m = np.divide(r + _GUARD_S, spacing)
        np.ceil(m, out=m)
        count = n - 1
        count -= k0
        count /= m
        np.floor(count, out=count)
        count += 1
        np.maximum(count, 0.0, out=count)
        k0 *= spacing
        first += k0
        spacing *= m
    else:
        count = n
    # Each pixel's last emitted event, by the same arithmetic as the event itself below (so bit for bit equal).
    last = count - 1
    last *= spacing
    last += first
    np.minimum(last, t1, out=last)
    np.copyto(last, last_a, where=count == 0)
    w.last_t[active] = last

    count = count.astype(np.intp)
    ends = np.cumsum(count)
    if ends[-1] == 0:
        return _empty_events()
    pair = np.repeat(np.arange(active.size), count)  # (E,) the pair of each event
    local = np.arange(ends[-1])
    local -= (ends - count)[pair]  # index of each event within its pair
    t = spacing[pair]
    t *= local
    t += first[pair]
    np.minimum(t, t1, out=t)
    pix = active[pair]
    if w.offset:
        pix += w.offset
    return pix, t, up.view(np.int8)[pair] * np.int8(2) - np.int8(1)
