"""Events that do not come from the scene: background activity and hot pixels.

- Background activity: every pixel fires Poisson events at ``rate_hz`` with a random polarity (shot and leak
  noise lumped together).
- Hot pixels: a few pixels fire Poisson events at a high rate, each with one fixed polarity.

Both are independent of the pixels' reference levels and refractory periods (they model defects of the
readout, not crossings). Functions return ``(pixel, t, p)``: flat pixel index (intp), time float64 [s] and
polarity int8, sorted by time.

>>> rng = np.random.default_rng(0)
>>> pix, t, p = background_noise(rng, 0.0, 1.0, n_pixels=100, rate_hz=2.0)
>>> bool(np.all(np.diff(t) >= 0)), 150 < pix.size < 250
(True, True)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class HotPixels(NamedTuple):
    """Hot pixels: flat indices (K,) intp, rates (K,) Hz and polarities (K,) int8."""

    pixels: np.ndarray
    rates: np.ndarray
    polarities: np.ndarray


def sample_hot_pixels(rng: np.random.Generator, n_pixels: int, count: int, rate_hz: float) -> HotPixels:
    """Pick ``count`` distinct pixels out of ``n_pixels``, with rates ``rate_hz * U(0.5, 1.5)`` and random fixed
    polarities."""
    pixels = np.sort(rng.choice(n_pixels, size=count, replace=False)).astype(np.intp)
    rates = rate_hz * rng.uniform(0.5, 1.5, count)
    polarities = np.where(rng.random(count) < 0.5, -1, 1).astype(np.int8)
    return HotPixels(pixels, rates, polarities)


def _sorted(pix: np.ndarray, t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(t, kind="stable")
    return pix[order], t[order], p[order]


def background_noise(
    rng: np.random.Generator, t0: float, t1: float, n_pixels: int, rate_hz: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson background events over (t0, t1] at ``rate_hz`` per pixel, uniform over pixels and time."""
    count = int(rng.poisson(rate_hz * n_pixels * (t1 - t0))) if rate_hz > 0 else 0
    pix = rng.integers(0, n_pixels, count).astype(np.intp)
    t = t1 - rng.random(count) * (t1 - t0)  # in (t0, t1]
    p = np.where(rng.random(count) < 0.5, -1, 1).astype(np.int8)
    return _sorted(pix, t, p)


def hot_pixel_events(
    rng: np.random.Generator, t0: float, t1: float, hot: HotPixels
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson events of the hot pixels over (t0, t1]."""
    counts = rng.poisson(hot.rates * (t1 - t0))
    pix = np.repeat(hot.pixels, counts)
    t = t1 - rng.random(pix.size) * (t1 - t0)
    p = np.repeat(hot.polarities, counts)
    return _sorted(pix, t, p)
