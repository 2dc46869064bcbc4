"""Rendering the sensor's view of the reference photo, and the exact ground-truth flow between two times.

A render samples the log-intensity reference image at ``G(t) p`` for every sensor pixel ``p`` (bilinear
interpolation of the log image). The flow of pixel ``p`` from ``t_a`` to ``t_b`` is

    f(p) = H(t_b) G(t_a) p - p,   H = G^-1

(homogeneous coordinates, divided by the third component): the displacement of the scene point that the
pixel sees at ``t_a``. Pixel ``(x, y)`` has its centre at integer coordinates; channel 0 of a flow map is x.

>>> import numpy as np
>>> scene = make_scene(np.tile(np.linspace(0.1, 1.0, 8, dtype=np.float32), (6, 1)), eps=0.01)
>>> shift = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
>>> view = render_log(scene, shift, (2, 3))
>>> bool(np.allclose(np.exp(view) - 0.01, 0.1 + 0.9 * (np.arange(3) + 2) / 7, atol=1e-5))
True
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from eventflow.simulate.images import log_intensity
from eventflow.simulate.motion import Motion, reference_from_sensor, sensor_from_reference


class Scene(NamedTuple):
    """A reference image ready for bilinear sampling.

    ``cells`` (Hr*Wr,) complex128 packs, for each reference pixel (i, j), the four float32 coefficients of the
    bilinear patch to its lower right, ``L(i + fv, j + fu) = a + fu*b + fv*(c + fu*d)``: ``a = L[i, j]``,
    ``b = L[i, j+1] - a``, ``c = L[i+1, j] - a``, ``d = L[i+1, j+1] - L[i+1, j] - b`` (rows and columns past the
    border count as copies of the last), so one 16-byte gather fetches a whole cell. ``shape = (Hr, Wr)``;
    ``eps`` is the offset of the log.
    """

    cells: np.ndarray
    shape: tuple[int, int]
    eps: float


def make_scene(intensity: np.ndarray, eps: float) -> Scene:
    """Prepare intensity ``I`` (Hr, Wr) in [0, 1] for rendering ``L = log(I + eps)``."""
    log = log_intensity(intensity, eps)
    hr, wr = log.shape
    if hr * wr >= 2**24:
        raise ValueError(f"reference image of {hr}x{wr} pixels is too large to render (limit 2**24 pixels)")
    padded = np.pad(log, ((0, 1), (0, 1)), mode="edge")  # (Hr + 1, Wr + 1)
    b = padded[:-1, 1:] - padded[:-1, :-1]
    c = padded[1:, :-1] - padded[:-1, :-1]
    d = padded[1:, 1:] - padded[1:, :-1] - b
    cells = np.stack([log, b, c, d], axis=-1)  # (Hr, Wr, 4) float32
    return Scene(cells.reshape(-1).view(np.complex128), (int(hr), int(wr)), float(eps))


def render_log(
    scene: Scene,
    g: np.ndarray,
    resolution: tuple[int, int],
    out: np.ndarray | None = None,
    rows: tuple[int, int] | None = None,
) -> np.ndarray:
    """Log intensity (H, W) float32 seen through ``g`` (3, 3), the sensor -> reference homography.

    ``rows = (r0, r1)`` renders sensor rows ``r0 .. r1`` only, (r1 - r0, W); ``out`` receives the result when
    given. Every sample must fall inside the reference image with a one-pixel margin (the motion model
    guarantees it); coordinates are not clamped, so a violation would read wrong pixels rather than fail, and
    :func:`eventflow.simulate.motion.views_inside` is checked before each batch of renders.
    """
    h, w = resolution
    r0, r1 = (0, h) if rows is None else rows
    if not 0 <= r0 < r1 <= h:
        raise ValueError(f"render_log: rows must satisfy 0 <= r0 < r1 <= H = {h}, got {rows}")
    g = g.tolist()  # python floats keep the float32 arithmetic below in float32
    x = np.arange(w, dtype=np.float32)
    y = np.arange(r0, r1, dtype=np.float32)
    u = (g[0][0] * x + g[0][2])[None, :] + (g[0][1] * y)[:, None]  # (rows, W) numerators
    v = (g[1][0] * x + g[1][2])[None, :] + (g[1][1] * y)[:, None]
    if g[2][0] != 0.0 or g[2][1] != 0.0 or g[2][2] != 1.0:
        inv = (g[2][0] * x + g[2][2])[None, :] + (g[2][1] * y)[:, None]
        np.reciprocal(inv, out=inv)  # one division, two products
        u *= inv
        v *= inv
    return _bilinear(scene, u, v, out)


def _bilinear(scene: Scene, u: np.ndarray, v: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """Sample at reference coordinates ``u`` (x) and ``v`` (y), both (H, W) float32; returns (H, W) float32
    (into ``out`` when given)."""
    h, w = u.shape
    fu = np.floor(u)
    fv = np.floor(v)
    idx = fv * np.float32(scene.shape[1])  # exact in float32 below 2**24 reference pixels
    idx += fu
    cell = np.take(scene.cells, idx.astype(np.intp)).view(np.float32).reshape(h, w, 4)  # one gather per pixel
    np.subtract(u, fu, out=fu)  # fractional parts, in place
    np.subtract(v, fv, out=fv)
    out = np.multiply(cell[..., 3], fu, out=out)  # a + fu*b + fv*(c + fu*d)
    out += cell[..., 2]
    out *= fv
    fu *= cell[..., 1]
    out += fu
    out += cell[..., 0]
    return out


def frame_from_log(log: np.ndarray, eps: float) -> np.ndarray:
    """An APS-like uint8 frame from log intensity: ``round(255 * (exp(L) - eps))`` clipped to [0, 255]."""
    return np.clip(np.rint(255.0 * (np.exp(log.astype(np.float64)) - eps)), 0, 255).astype(np.uint8)


def flow_map(motion: Motion, t_a: float, t_b: float, resolution: tuple[int, int]) -> np.ndarray:
    """Exact flow (2, H, W) float32 in pixels: displacement over (t_a, t_b] of the scene point at each pixel at
    ``t_a``; channel 0 = x (columns), 1 = y (rows)."""
    h, w = resolution
    m = (sensor_from_reference(motion, np.array([t_b])) @ reference_from_sensor(motion, np.array([t_a])))[0]
    x = np.arange(w, dtype=np.float64)[None, :]
    y = np.arange(h, dtype=np.float64)[:, None]
    den = m[2, 0] * x + m[2, 1] * y + m[2, 2]  # (H, W)
    fx = (m[0, 0] * x + m[0, 1] * y + m[0, 2]) / den - x
    fy = (m[1, 0] * x + m[1, 1] * y + m[1, 2]) / den - y
    return np.stack([fx, fy]).astype(np.float32)  # (2, H, W)
