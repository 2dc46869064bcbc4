"""Smooth random camera motions as time-varying homographies between a reference photo and the sensor.

The camera looks at a planar photo (the *reference image*, in reference pixels). At time ``t`` the homography
``G(t)`` maps a sensor pixel ``p = (x, y)`` (homogeneous) to the reference pixel it sees:

    G(t) = T(c(t)) · R(theta(t)) · S(exp(z(t))) · P(g(t), h(t)) · T(-o)

with ``o`` the sensor centre, ``P = [[1, 0, 0], [0, 1, 0], [g, h, 1]]`` the perspective (keystone) terms,
``S`` an isotropic zoom, ``R`` an in-plane rotation and ``T(c)`` the position of the view in the photo.
``H(t) = G(t)^-1`` maps the reference image onto the sensor. Each parameter is a bounded sum of three waves
(elliptical orbits for the translation and keystone pairs, smoothed triangle waves for rotation and zoom) of a
path variable ``s = time_scale · t``, so the motion is smooth, moves at a fairly steady speed, is defined for
every ``t`` (also before 0) and never leaves a box that :func:`sample_motion` fits inside the photo: every
rendered pixel, at every time, samples the photo itself (no padding), so the ground truth is valid everywhere.

Ground-truth flow follows exactly: a pixel ``p`` at ``t_a`` sees reference point ``G(t_a) p``, which the
sensor shows at ``H(t_b) G(t_a) p`` at ``t_b`` (see :func:`eventflow.simulate.render.flow_map`).

>>> rng = np.random.default_rng(0)
>>> m = sample_motion(rng, "rotation", (32, 48), photo_shape=(512, 512), speed_px_s=100.0)
>>> G = reference_from_sensor(m, np.array([0.0, 0.1]))
>>> G.shape
(2, 3, 3)
>>> bool(footprint_inside(m, np.linspace(-5.0, 5.0, 101)))
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

# Reference pixels kept free around the view, so bilinear sampling (which reads one pixel further) stays inside.
MARGIN_PX = 2.0
# Angular frequencies of the waves, per unit of the path variable s.
FREQ_RANGE = (0.5, 1.5)
# A smoothed triangle wave (three odd harmonics of the triangle's Fourier series), normalised to peak 1: the
# parameter moves at a nearly steady rate and turns round smoothly, instead of dwelling like a sine.
_TRI_NORM = 1.0 + 1.0 / 9.0 + 1.0 / 25.0


def _triangle(x: np.ndarray) -> np.ndarray:
    return (np.sin(x) - np.sin(3 * x) / 9.0 + np.sin(5 * x) / 25.0) / _TRI_NORM


class Wave(NamedTuple):
    """``q(s) = sum_k amp[k] * shape(freq[k] * s + phase[k])`` per dimension; arrays (K, D) for a D-dimensional
    parameter; ``shape`` is ``sin`` or, with ``triangle``, a smoothed triangle wave (both peak at 1)."""

    amp: np.ndarray
    freq: np.ndarray
    phase: np.ndarray
    triangle: bool

    def __call__(self, s: np.ndarray) -> np.ndarray:
        """Values at path positions ``s`` (T,) -> (T, D)."""
        arg = s[:, None, None] * self.freq[None] + self.phase[None]  # (T, K, D)
        return (self.amp[None] * (_triangle(arg) if self.triangle else np.sin(arg))).sum(axis=1)

    @property
    def bound(self) -> np.ndarray:
        """``max |q|`` over all s, per dimension (D,)."""
        return np.abs(self.amp).sum(axis=0)


class Amplitudes(NamedTuple):
    """Bounds of each motion component: translation (ax, ay) px, rotation rad, log-zoom, perspective (fraction
    by which the keystone terms may shrink the sensor's half-width, ``|g| (W-1)/2 + |h| (H-1)/2``, < 1)."""

    translation: tuple[float, float]
    rotation: float
    zoom: float
    perspective: float


class Motion(NamedTuple):
    """One camera trajectory. Lengths in reference pixels (about one sensor pixel at zoom 1), angles in rad.

    ``sensor_center`` is ``o = ((W-1)/2, (H-1)/2)``; ``center`` is the mean view position ``c0`` in the photo;
    ``translation`` (D=2), ``rotation`` (D=1), ``zoom`` (D=1, log scale) and ``perspective`` (D=2: g, h in
    1/px) are waves of ``s = time_scale · t``; ``reference_shape`` is the photo's ``(H, W)`` after resizing.
    """

    sensor_center: tuple[float, float]
    center: tuple[float, float]
    translation: Wave
    rotation: Wave
    zoom: Wave
    perspective: Wave
    time_scale: float
    reference_shape: tuple[int, int]


def _translation(rng: np.random.Generator, size: float) -> Amplitudes:
    return Amplitudes(tuple(rng.uniform(0.25, 0.5, 2) * size), 0.0, 0.0, 0.0)


def _rotation(rng: np.random.Generator, size: float) -> Amplitudes:
    # Beyond about 45 degrees the view's bounding disc no longer grows, so wide swings cost no photo area.
    return Amplitudes((0.0, 0.0), rng.uniform(0.8, 2.0), 0.0, 0.0)


def _zoom(rng: np.random.Generator, size: float) -> Amplitudes:
    # At most about 1.5 reference pixels per sensor pixel when zoomed out: bilinear sampling does not alias.
    return Amplitudes((0.0, 0.0), 0.0, rng.uniform(0.25, 0.45), 0.0)


def _perspective(rng: np.random.Generator, size: float) -> Amplitudes:
    # Keystone changes (as from panning and tilting) with a gentle drift of the view.
    return Amplitudes(tuple(rng.uniform(0.1, 0.2, 2) * size), 0.0, 0.0, rng.uniform(0.2, 0.35))


def _mixed(rng: np.random.Generator, size: float) -> Amplitudes:
    return Amplitudes(
        tuple(rng.uniform(0.15, 0.35, 2) * size), rng.uniform(0.2, 0.6), rng.uniform(0.1, 0.25), rng.uniform(0.05, 0.15)
    )


# motion kind -> bounds of its components, drawn from rng; size = max(H, W) of the sensor in pixels.
MOTIONS: dict[str, Callable[[np.random.Generator, float], Amplitudes]] = {
    "translation": _translation,
    "rotation": _rotation,
    "zoom": _zoom,
    "perspective": _perspective,
    "mixed": _mixed,
}


def _weights(rng: np.random.Generator) -> np.ndarray:
    """Three amplitude weights summing to 1, the first dominant, so the motion rarely stalls."""
    w = np.array([1.0, rng.uniform(0.1, 0.35), rng.uniform(0.05, 0.2)])
    return w / w.sum()


def _scalar_wave(rng: np.random.Generator, bound: float) -> Wave:
    """A 1-D parameter within ``[-bound, bound]``: three smoothed triangle waves, the first dominant."""
    amp = (_weights(rng) * bound)[:, None]
    return Wave(amp, rng.uniform(*FREQ_RANGE, (3, 1)), rng.uniform(0.0, 2 * np.pi, (3, 1)), True)


def _planar_wave(rng: np.random.Generator, bound: np.ndarray) -> Wave:
    """A 2-D parameter within ``[-bound, bound]`` per axis: three elliptical orbits (x and y a quarter period
    apart, random direction), the first dominant, so the point keeps moving at a fairly steady speed."""
    amp = _weights(rng)[:, None] * bound[None]  # (3, 2)
    freq = np.repeat(rng.uniform(*FREQ_RANGE, (3, 1)), 2, axis=1)
    phase_x = rng.uniform(0.0, 2 * np.pi, 3)
    turn = np.where(rng.random(3) < 0.5, -np.pi / 2, np.pi / 2)
    return Wave(amp, freq, np.stack([phase_x, phase_x + turn], axis=1), False)


def _half_extent(a: float, b: float, max_angle: float) -> float:
    """``max |a cos(theta)| + |b sin(theta)|`` over ``|theta| <= max_angle``: half-width of a rotated box."""
    if max_angle >= np.arctan2(b, a):
        return float(np.hypot(a, b))
    return float(a * np.cos(max_angle) + b * np.sin(max_angle))


def sample_motion(
    rng: np.random.Generator,
    kind: str,
    resolution: tuple[int, int],
    photo_shape: tuple[int, int],
    speed_px_s: float,
) -> Motion:
    """Draw a trajectory of ``kind`` for a sensor of ``resolution = (H, W)`` over a photo of ``photo_shape``.

    The photo is to be resized to ``Motion.reference_shape``: at least large enough for the view plus its whole
    range of motion, larger by a random factor up to 1.5 while that still shrinks the photo; ``time_scale`` is set so
    that the mean speed of the image over the sensor, averaged over a long stretch of the path, is
    ``speed_px_s`` pixels per second.
    """
    if kind not in MOTIONS:
        raise ValueError(f"unknown motion kind {kind!r}; choose from {', '.join(MOTIONS)}")
    h, w = resolution
    a, b = (w - 1) / 2.0, (h - 1) / 2.0
    amps = MOTIONS[kind](rng, float(max(h, w)))
    split = rng.uniform(0.3, 0.7)
    persp_bound = np.array([amps.perspective * split / max(a, 1.0), amps.perspective * (1 - split) / max(b, 1.0)])
    translation = _planar_wave(rng, np.asarray(amps.translation, dtype=np.float64))
    rotation = _scalar_wave(rng, amps.rotation)
    zoom = _scalar_wave(rng, amps.zoom)
    perspective = _planar_wave(rng, persp_bound)

    # Half-extent of the view around its centre for the worst rotation, zoom and keystone within their bounds.
    grow = np.exp(amps.zoom) / (1.0 - amps.perspective)
    ex = grow * _half_extent(a, b, amps.rotation)
    ey = grow * _half_extent(b, a, amps.rotation)
    need_w = 2 * (ex + amps.translation[0] + MARGIN_PX) + 2
    need_h = 2 * (ey + amps.translation[1] + MARGIN_PX) + 2
    need = max(need_w / photo_shape[1], need_h / photo_shape[0])
    # Large photos are shrunk by a random amount (views of one photo differ); small ones are enlarged no more
    # than needed, as enlarging blurs.
    factor = max(need, min(need * rng.uniform(1.0, 1.5), 1.0))
    ref_h = int(np.ceil(photo_shape[0] * factor))
    ref_w = int(np.ceil(photo_shape[1] * factor))
    lo_x, hi_x = ex + amps.translation[0] + MARGIN_PX, ref_w - 1 - ex - amps.translation[0] - MARGIN_PX
    lo_y, hi_y = ey + amps.translation[1] + MARGIN_PX, ref_h - 1 - ey - amps.translation[1] - MARGIN_PX
    center = (float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y)))

    motion = Motion((a, b), center, translation, rotation, zoom, perspective, 1.0, (ref_h, ref_w))
    mean_speed = mean_image_speed(motion, resolution)
    scale = speed_px_s / mean_speed if mean_speed > 0 else 0.0
    return motion._replace(time_scale=float(scale))


def reference_from_sensor(motion: Motion, t: np.ndarray) -> np.ndarray:
    """``G(t)``: homographies (T, 3, 3) mapping sensor pixels to reference pixels at times ``t`` (T,) [s]."""
    s = np.asarray(t, dtype=np.float64).reshape(-1) * motion.time_scale
    n = s.shape[0]
    c = motion.translation(s) + np.asarray(motion.center)  # (T, 2)
    theta = motion.rotation(s)[:, 0]
    k = np.exp(motion.zoom(s)[:, 0])
    gh = motion.perspective(s)  # (T, 2)
    ox, oy = motion.sensor_center

    rs = np.zeros((n, 3, 3))  # T(c) R S
    rs[:, 0, 0] = k * np.cos(theta)
    rs[:, 0, 1] = -k * np.sin(theta)
    rs[:, 1, 0] = k * np.sin(theta)
    rs[:, 1, 1] = k * np.cos(theta)
    rs[:, :2, 2] = c
    rs[:, 2, 2] = 1.0
    pt = np.zeros((n, 3, 3))  # P(g, h) T(-o)
    pt[:, 0, 0] = pt[:, 1, 1] = 1.0
    pt[:, 0, 2] = -ox
    pt[:, 1, 2] = -oy
    pt[:, 2, 0] = gh[:, 0]
    pt[:, 2, 1] = gh[:, 1]
    pt[:, 2, 2] = 1.0 - gh[:, 0] * ox - gh[:, 1] * oy
    return rs @ pt


def sensor_from_reference(motion: Motion, t: np.ndarray) -> np.ndarray:
    """``H(t) = G(t)^-1``: homographies (T, 3, 3) mapping reference pixels onto the sensor at times ``t`` [s]."""
    return np.linalg.inv(reference_from_sensor(motion, t))


def apply_homography(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map ``points`` (N, 2) as (x, y) by homographies ``m`` (..., 3, 3) -> (..., N, 2).

    >>> apply_homography(np.diag([2.0, 3.0, 1.0]), np.array([[1.0, 1.0]])).tolist()
    [[2.0, 3.0]]
    """
    num = points @ m[..., :2, :2].swapaxes(-1, -2) + m[..., None, :2, 2]  # (..., N, 2)
    den = points @ m[..., 2, :2][..., :, None] + m[..., None, 2, 2:3]  # (..., N, 1)
    return num / den


def probe_points(resolution: tuple[int, int], n: int = 5) -> np.ndarray:
    """An ``n x n`` grid of sensor points (n*n, 2) spanning the sensor corner to corner."""
    h, w = resolution
    gx, gy = np.meshgrid(np.linspace(0, w - 1, n), np.linspace(0, h - 1, n))
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def mean_image_speed(motion: Motion, resolution: tuple[int, int], span: float = 40.0, n: int = 801) -> float:
    """Mean speed [px per unit of t] of the image over a 5x5 grid of pixels, at ``n`` times in [0, span / time_scale].

    With ``time_scale = 1`` this is the speed per unit of the path variable, which :func:`sample_motion` scales.
    """
    if motion.time_scale == 0:
        return 0.0
    t = np.linspace(0.0, span / motion.time_scale, n)
    dt = 1e-4 / motion.time_scale
    pts = probe_points(resolution)
    step = sensor_from_reference(motion, t + dt) @ reference_from_sensor(motion, t)  # (T, 3, 3)
    moved = apply_homography(step, pts)  # (T, P, 2)
    return float(np.linalg.norm(moved - pts[None], axis=-1).mean() / dt)


def footprint_inside(motion: Motion, t: np.ndarray, margin: float = MARGIN_PX - 1.0) -> bool:
    """True when the view at every time ``t`` (T,) [s] lies at least ``margin`` reference pixels inside the photo."""
    return views_inside(reference_from_sensor(motion, t), motion, margin)


def views_inside(g: np.ndarray, motion: Motion, margin: float = MARGIN_PX - 1.0) -> bool:
    """True when every sensor -> reference homography in ``g`` (T, 3, 3) keeps the view ``margin`` reference
    pixels inside the photo. The view of a rectangle under a homography with positive denominator is a convex
    quadrilateral, so its four corners decide."""
    h, w = motion.reference_shape
    right, bottom = 2 * motion.sensor_center[0], 2 * motion.sensor_center[1]
    corners = np.array([[0.0, 0.0], [right, 0.0], [0.0, bottom], [right, bottom]])
    q = apply_homography(g, corners)  # (T, 4, 2)
    return bool(
        q[..., 0].min() >= margin
        and q[..., 0].max() <= w - 1 - margin
        and q[..., 1].min() >= margin
        and q[..., 1].max() <= h - 1 - margin
    )
