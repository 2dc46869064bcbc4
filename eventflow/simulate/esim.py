"""Events from log-intensity threshold crossings, one render step at a time (ESIM-style, vectorised).

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

Precision: the per-pixel screen runs in float32 (levels, thresholds), crossing times in float64.

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


def esim_step(
    log0: np.ndarray,
    log1: np.ndarray,
    t0: float,
    t1: float,
    state: PixelState,
    thresholds: Thresholds,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], PixelState]:
    """Events between renders ``log0`` at ``t0`` and ``log1`` at ``t1`` (both (N,) log intensity, seconds).

    Returns ``((pixel, t, p), new_state)``: flat pixel index (intp), timestamp float64 in [t0, t1] and polarity
    int8 (+1/-1) of each event, grouped by pixel (ascending) and in time order within a pixel; sort by ``t``
    to merge pixels (the caller sorts a whole GT interval at once, which is cheaper). The input state is not
    modified. The work is whole-array NumPy: a screen over all pixels, then arithmetic on the pixels that
    cross, then one ``repeat`` per event field.
    """
    q = log1 - state.ref  # (N,) float32 distance from the last crossing level: the screen is single precision
    active = np.flatnonzero(np.abs(q) >= thresholds.least)
    if active.size == 0:
        return (np.empty(0, np.intp), np.empty(0, np.float64), np.empty(0, np.int8)), state
    # Pixels that may cross, (A,), in double precision from here on.
    up = q[active] > 0
    sgn = np.where(up, 1.0, -1.0)
    c = np.where(up, thresholds.pos[active], thresholds.neg[active]).astype(np.float64)
    ref_a = state.ref[active].astype(np.float64)
    l1 = log1[active].astype(np.float64)
    n = np.floor(sgn * (l1 - ref_a) / c)  # crossings (0 where only the other-polarity threshold was met)

    # L is linear in t between the renders: crossing k (0-based) is at first + k * spacing.
    l0 = log0[active]
    per_log = (t1 - t0) / np.maximum(sgn * (l1 - l0), _TINY)  # seconds per log unit
    first = t0 + np.clip((sgn * (ref_a - l0) + c) * per_log, 0.0, t1 - t0)
    spacing = c * per_log

    r = thresholds.refractory
    last_a = state.last_t[active]
    if r > 0:
        # Emitted crossings are k0, k0 + m, k0 + 2m, ... < n; the guard keeps float rounding on the safe side.
        k0 = np.maximum(np.ceil((last_a + (r + _GUARD_S) - first) / spacing), 0.0)
        m = np.ceil((r + _GUARD_S) / spacing)
        count = np.maximum(np.floor((n - 1 - k0) / m) + 1, 0.0).astype(np.intp)
        first += k0 * spacing
        spacing *= m
    else:
        count = n.astype(np.intp)

    ends = np.cumsum(count)
    local = np.arange(ends[-1]) - np.repeat(ends - count, count)  # index of each event within its pixel
    t = np.repeat(first, count) + local * np.repeat(spacing, count)
    np.minimum(t, t1, out=t)
    pix = np.repeat(active, count)
    pol = np.repeat(sgn.astype(np.int8), count)

    ref = state.ref.copy()
    ref[active] = ref_a + sgn * n * c  # rounded to float32: far below any threshold
    last_t = state.last_t.copy()
    # The same arithmetic as the last event of each pixel above, so the stored time equals it bit for bit.
    last_t[active] = np.where(count > 0, np.minimum(first + (count - 1) * spacing, t1), last_a)
    return (pix, t, pol), PixelState(ref, last_t)
