"""The simulator's typed configuration.

>>> cfg = SimConfig(resolution=(64, 96), duration=0.5, image=("camera",), motion="rotation")
>>> cfg.resolution, cfg.gt_rate_hz, cfg.contrast_pos
((64, 96), 30.0, 0.2)
>>> SimConfig(motion="shake")
Traceback (most recent call last):
...
ValueError: SimConfig.motion must be one of translation, rotation, zoom, perspective, mixed, got 'shake'
>>> from eventflow.config import from_dict
>>> from_dict(SimConfig, {"resolution": [32, 48], "noise_rate_hz": 0.5}).resolution
(32, 48)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from eventflow.simulate.images import DEFAULT_PHOTOS, check_photo_name

MotionKind = Literal["translation", "rotation", "zoom", "perspective", "mixed"]
MOTION_KINDS: tuple[str, ...] = ("translation", "rotation", "zoom", "perspective", "mixed")


@dataclass(frozen=True)
class SimConfig:
    """Everything that defines a simulated sequence, besides the seed.

    Units: pixels, seconds, Hz; contrast thresholds in log-intensity units (natural log).

    - ``resolution``: sensor ``(H, W)`` in pixels.
    - ``duration``: seconds of events, starting at t = 0.
    - ``gt_rate_hz``: ground-truth rate; flow_dt1 maps and frames every ``1 / gt_rate_hz`` s, flow_dt4 every
      fourth GT timestamp (MVSEC: about 30 Hz).
    - ``image``: photo name(s) from :data:`eventflow.simulate.images.PHOTOS`; the seed picks one of them
      (default :data:`~eventflow.simulate.images.DEFAULT_PHOTOS`).
    - ``motion``: camera motion kind (``translation``, ``rotation``, ``zoom``, ``perspective`` or ``mixed``).
    - ``speed``: scale on the mean image speed, which is drawn log-uniformly from ``speed_range`` [px/s]
      (the default 110-330 px/s is about 4-11 px per 1/30 s GT interval on average, like MVSEC's driving and
      flying sequences). 0 = static scene.
    - ``contrast_pos``, ``contrast_neg``: nominal thresholds C+ and C- (log units).
    - ``contrast_mismatch``: standard deviation of the per-pixel threshold mismatch (normal, log units).
    - ``refractory``: seconds after an event during which a pixel emits none (0 disables).
    - ``noise_rate_hz``: background-activity noise, Poisson events per pixel per second, random polarity.
    - ``hot_pixels``: number of hot pixels; each fires Poisson events at about ``hot_pixel_rate_hz``.
    - ``log_eps``: offset in ``L = log(I + eps)``.
    - ``max_px_per_render``: the largest motion of any pixel between two internal renders (adaptive rate).
    """

    resolution: tuple[int, int] = (128, 128)
    duration: float = 2.0
    gt_rate_hz: float = 30.0
    image: tuple[str, ...] = DEFAULT_PHOTOS
    motion: MotionKind = "mixed"
    speed: float = 1.0
    speed_range: tuple[float, float] = (110.0, 330.0)
    contrast_pos: float = 0.2
    contrast_neg: float = 0.2
    contrast_mismatch: float = 0.03
    refractory: float = 1e-4
    noise_rate_hz: float = 0.0
    hot_pixels: int = 0
    hot_pixel_rate_hz: float = 100.0
    log_eps: float = 0.03
    max_px_per_render: float = 0.5

    def __post_init__(self) -> None:
        h, w = self.resolution
        if not (4 <= h <= 4096 and 4 <= w <= 4096):
            raise ValueError(f"SimConfig.resolution must be (H, W) with 4 <= H, W <= 4096, got {self.resolution}")
        positive = {
            "duration": self.duration,
            "gt_rate_hz": self.gt_rate_hz,
            "contrast_pos": self.contrast_pos,
            "contrast_neg": self.contrast_neg,
            "log_eps": self.log_eps,
            "max_px_per_render": self.max_px_per_render,
        }
        for name, value in positive.items():
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"SimConfig.{name} must be a positive number, got {value!r}")
        non_negative = {
            "speed": self.speed,
            "contrast_mismatch": self.contrast_mismatch,
            "refractory": self.refractory,
            "noise_rate_hz": self.noise_rate_hz,
            "hot_pixel_rate_hz": self.hot_pixel_rate_hz,
        }
        for name, value in non_negative.items():
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"SimConfig.{name} must be a number >= 0, got {value!r}")
        lo, hi = self.speed_range
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise ValueError(f"SimConfig.speed_range must be (low, high) px/s with 0 < low <= high, got {lo}, {hi}")
        if not 0 <= self.hot_pixels <= h * w:
            raise ValueError(f"SimConfig.hot_pixels must be between 0 and H*W = {h * w}, got {self.hot_pixels}")
        if self.motion not in MOTION_KINDS:
            raise ValueError(f"SimConfig.motion must be one of {', '.join(MOTION_KINDS)}, got {self.motion!r}")
        if not self.image:
            raise ValueError("SimConfig.image must name at least one photo")
        for name in self.image:
            check_photo_name(name)

    @property
    def gt_dt(self) -> float:
        """Seconds between ground-truth timestamps."""
        return 1.0 / self.gt_rate_hz
