"""Event encodings, the hot-pixel filter and flip augmentations (Hagenaars et al. 2021, Sec. 3 and 4).

Inputs are torch tensors: ``x``, ``y`` pixel coordinates (integer or integral float), ``t_norm`` timestamps
normalised to [0, 1] within the window (float32, :func:`normalize_timestamps`), ``p`` polarity in {-1, +1}
(float). Every encoding accepts one window (``x`` of shape ``(N,)``) or a padded batch (``(B, N)`` with a
``valid`` mask ``(B, N)``) and returns ``(C, H, W)`` or ``(B, C, H, W)``. Everything is vectorised: no Python
loop over events.

- :func:`event_count` ``(2, H, W)``: channel 0 counts positive events, channel 1 negative events (as positive
  numbers): ``cnt[c, y, x] = #{k : (y_k, x_k) = (y, x), p_k = +1 (c = 0) or -1 (c = 1)}``.
- :func:`event_voxel` ``(num_bins, H, W)``: ``V[b, y, x] = sum_k p_k max(0, 1 - |t*_k - b|)`` with
  ``t*_k = (num_bins - 1) t_norm_k`` (Zhu et al., CVPR 2019): bilinear in time, signed.
- :func:`event_mask` ``(1, H, W)``: 1 where the window has at least one event.
- :func:`event_list` ``(N, 4)`` columns ``(t_norm, y, x, p)`` (the reference column order) and
  :func:`polarity_mask` ``(N, 2)`` one-hot polarity (column 0 positive, column 1 negative).

The hot-pixel filter (:func:`hot_pixel_step`) is a step function with explicit state; flips
(:func:`flip_events`, :func:`flip_flow`) keep events and ground-truth flow consistent.

>>> x = torch.tensor([0, 1, 1]); y = torch.tensor([0, 0, 0]); p = torch.tensor([1.0, -1.0, -1.0])
>>> event_count(x, y, p, (1, 2)).tolist()
[[[1.0, 0.0]], [[0.0, 2.0]]]
>>> event_voxel(x, y, torch.tensor([0.0, 0.5, 1.0]), p, 2, (1, 2)).tolist()
[[[1.0, -0.5]], [[0.0, -1.5]]]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import torch

COMPAT_CHOICES = (None, "hagenaars2021")


def _check_compat(compat: str | None) -> None:
    if compat not in COMPAT_CHOICES:
        raise ValueError(f"compat must be one of {COMPAT_CHOICES}, got {compat!r}")


# -- timestamps --------------------------------------------------------------------------------------------------


def normalize_timestamps(t_seconds, compat: str | None = None) -> torch.Tensor:
    """Window timestamps normalised to [0, 1]: ``(t - t_0) / (t_{N-1} - t_0)``, computed in float32.

    ``t_seconds`` ``(N,)`` [s] (float64, already relative to the recording's t0) is cast to float32 FIRST and
    then normalised in float32, exactly as the reference loader; the result matches it bit for bit.
    When all timestamps are equal the denominator is 0: by default every event gets 0 (they all sit at the
    start of the window); ``compat="hagenaars2021"`` divides by zero like the reference (NaN).
    Returns a float32 tensor ``(N,)`` (empty for no events).

    >>> normalize_timestamps(np.array([2.0, 2.5, 3.0])).tolist()
    [0.0, 0.5, 1.0]
    >>> normalize_timestamps(np.array([1.0, 1.0])).tolist()
    [0.0, 0.0]
    """
    _check_compat(compat)
    t = torch.as_tensor(np.asarray(t_seconds, dtype=np.float32))
    if t.numel() == 0:
        return t
    span = t[-1] - t[0]
    if compat is None and span == 0:
        return torch.zeros_like(t)
    return (t - t[0]) / span


# -- encodings ---------------------------------------------------------------------------------------------------


def _flat_pixels(x, y, resolution, valid):
    """Batch index, flat pixel index ``y W + x`` and the keep-mask, all flattened; shapes ``(M,)``."""
    h, w = int(resolution[0]), int(resolution[1])
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    batched = x.dim() == 2
    if not batched and x.dim() != 1:
        raise ValueError(f"x must have shape (N,) or (B, N), got {tuple(x.shape)}")
    if valid is None:
        valid = torch.ones(x.shape, dtype=torch.bool, device=x.device)
    b = torch.arange(x.shape[0], device=x.device)[:, None].expand(x.shape) if batched else torch.zeros_like(x)
    pix = y.long() * w + x.long()
    return b.reshape(-1).long(), pix.reshape(-1), valid.reshape(-1).bool(), batched, (h, w)


def event_count(x, y, p, resolution, valid=None) -> torch.Tensor:
    """Per-pixel event counts ``(2, H, W)`` float32 (or ``(B, 2, H, W)`` for ``(B, N)`` inputs): channel 0
    positive events, channel 1 negative events, both as positive counts."""
    b, pix, keep, batched, (h, w) = _flat_pixels(x, y, resolution, valid)
    neg = (torch.as_tensor(p).reshape(-1) < 0).long()
    nb = torch.as_tensor(x).shape[0] if batched else 1
    idx = ((b * 2 + neg) * (h * w) + pix)[keep]  # (M,) into (B, 2, H, W)
    cnt = torch.zeros(nb * 2 * h * w, dtype=torch.float32)
    cnt.index_put_((idx,), torch.ones(idx.shape, dtype=torch.float32), accumulate=True)  # exact below 2^24
    cnt = cnt.view(nb, 2, h, w)  # (B, 2, H, W)
    return cnt if batched else cnt[0]


def event_mask(x, y, resolution, valid=None) -> torch.Tensor:
    """``(1, H, W)`` float32 (or ``(B, 1, H, W)``): 1 where at least one event fell, else 0."""
    b, pix, keep, batched, (h, w) = _flat_pixels(x, y, resolution, valid)
    nb = torch.as_tensor(x).shape[0] if batched else 1
    mask = torch.zeros(nb * h * w, dtype=torch.float32)
    mask.index_fill_(0, (b * (h * w) + pix)[keep], 1.0)
    mask = mask.view(nb, 1, h, w)  # (B, 1, H, W)
    return mask if batched else mask[0]


def event_voxel(x, y, t_norm, p, num_bins: int, resolution, round_ts: bool = False, valid=None) -> torch.Tensor:
    """Voxel grid ``(num_bins, H, W)`` float32 (or ``(B, num_bins, H, W)``), bilinear in time and signed.

    ``V[b, y, x] = sum_k p_k max(0, 1 - |t*_k - b|)``, ``t*_k = (num_bins - 1) t_norm_k`` (rounded to the
    nearest bin when ``round_ts``). Each event adds to its two neighbouring bins, in event order, so sums are
    accumulated in the same order as the reference's per-bin accumulation.
    """
    if num_bins < 1:
        raise ValueError(f"num_bins must be at least 1, got {num_bins}")
    b, pix, keep, batched, (h, w) = _flat_pixels(x, y, resolution, valid)
    nb = torch.as_tensor(x).shape[0] if batched else 1
    ts = torch.as_tensor(t_norm, dtype=torch.float32).reshape(-1) * (num_bins - 1)
    if round_ts:
        ts = torch.round(ts)
    pol = torch.as_tensor(p, dtype=torch.float32).reshape(-1)
    lower = torch.floor(ts).clamp(0, num_bins - 1)
    bins = torch.stack([lower, lower + 1], dim=1)  # (M, 2): the two bins an event can touch
    weights = torch.clamp(1.0 - torch.abs(ts[:, None] - bins), min=0.0)
    weights = torch.where(bins < num_bins, weights, torch.zeros_like(weights))
    bins = bins.clamp(max=num_bins - 1).long()
    idx = (b[:, None] * num_bins + bins) * (h * w) + pix[:, None]  # (M, 2) into (B, num_bins, H, W)
    values = pol[:, None] * weights
    voxel = torch.zeros(nb * num_bins * h * w, dtype=torch.float32)
    voxel.index_put_((idx[keep].reshape(-1),), values[keep].reshape(-1), accumulate=True)
    voxel = voxel.view(nb, num_bins, h, w)  # (B, num_bins, H, W)
    return voxel if batched else voxel[0]


def event_list(x, y, t_norm, p) -> torch.Tensor:
    """Events as rows ``(t_norm, y, x, p)`` float32: ``(N, 4)``, or ``(B, N, 4)`` for ``(B, N)`` inputs."""
    cols = [torch.as_tensor(c).to(torch.float32) for c in (t_norm, y, x, p)]
    return torch.stack(cols, dim=-1)


def polarity_mask(p, compat: str | None = None) -> torch.Tensor:
    """One-hot polarity ``(N, 2)`` float32 (or ``(B, N, 2)``): column 0 is 1 for positive events, column 1 for
    negative events.

    ``compat="hagenaars2021"``: column 1 holds -0.0 (not +0.0) for positive events, as the reference builds it
    by negating a zeroed copy of ``p``.

    >>> polarity_mask(torch.tensor([1.0, -1.0]), compat="hagenaars2021").tolist()
    [[1.0, -0.0], [0.0, 1.0]]
    """
    _check_compat(compat)
    p = torch.as_tensor(p, dtype=torch.float32)
    pos = (p > 0).to(torch.float32)
    neg = (p < 0).to(torch.float32)
    if compat == "hagenaars2021":
        neg = torch.where(p > 0, torch.tensor(-0.0), neg)
    return torch.stack([pos, neg], dim=-1)


# -- hot-pixel filter --------------------------------------------------------------------------------------------


class HotPixelState(NamedTuple):
    """State of the hot-pixel filter along a sequence.

    ``active``: ``(H, W)`` or ``(B, H, W)`` float32, the number of windows in which each pixel had an event;
    ``num_windows``: ``()`` or ``(B,)`` int64, the number of windows observed.
    """

    active: torch.Tensor
    num_windows: torch.Tensor


def hot_pixel_init(resolution, batch_size: int | None = None) -> HotPixelState:
    """A fresh filter state for one sequence (``batch_size=None``) or ``batch_size`` lanes."""
    h, w = int(resolution[0]), int(resolution[1])
    if batch_size is None:
        return HotPixelState(torch.zeros(h, w), torch.zeros((), dtype=torch.int64))
    return HotPixelState(torch.zeros(batch_size, h, w), torch.zeros(batch_size, dtype=torch.int64))


def hot_pixel_reset(state: HotPixelState, reset) -> HotPixelState:
    """Zero the lanes where ``reset`` ``(B,)`` bool is True (a lane that starts a new sequence)."""
    reset = torch.as_tensor(reset, dtype=torch.bool)
    keep = (~reset).to(state.active.dtype)
    return HotPixelState(state.active * keep.view(-1, *([1] * (state.active.dim() - 1))),
                         torch.where(reset, torch.zeros_like(state.num_windows), state.num_windows))


def hot_pixel_step(event_cnt: torch.Tensor, state: HotPixelState, max_px: int = 100, min_obvs: int = 5,
                   max_rate: float = 0.8) -> tuple[torch.Tensor, HotPixelState]:
    """One window of the hot-pixel filter: update the per-pixel activity, return the mask and the new state.

    ``event_cnt`` ``(2, H, W)`` or ``(B, 2, H, W)``. The rate of a pixel is the fraction of observed windows in
    which it had any event, ``r = active / num_windows`` (float32). Once more than ``min_obvs`` windows have been
    observed, up to ``max_px`` pixels with ``r > max_rate`` are masked, the highest rates first and, between
    equal rates, the lowest flat index first: the same pixels as the reference's greedy loop of ``argmax``
    (found here with one stable sort). Returns ``mask`` ``(H, W)`` or ``(B, H, W)`` float32 (0 = hot pixel)
    and the new state.

    The reference applies the mask to the count, voxel and mask encodings but not to the event list; see
    :func:`apply_hot_pixel_mask`.
    """
    if max_px < 0 or min_obvs < 0 or not 0 <= max_rate:
        raise ValueError(f"hot-pixel filter needs max_px >= 0, min_obvs >= 0, max_rate >= 0; got {max_px}, "
                         f"{min_obvs}, {max_rate}")
    batched = event_cnt.dim() == 4
    cnt = event_cnt if batched else event_cnt[None]
    active = state.active if batched else state.active[None]
    num = state.num_windows.reshape(-1)
    nb, _, h, w = cnt.shape
    active = active + (cnt.sum(dim=1) > 0).to(active.dtype)  # (B, H, W)
    num = num + 1
    rate = (active / num.view(-1, 1, 1)).reshape(nb, h * w)  # float32, as the reference
    over = (rate > max_rate) & (num > min_obvs)[:, None]  # (B, H*W) candidates
    if bool((over.sum(dim=1) > max_px).any()):
        # More candidates than max_px: keep the max_px highest rates, ties to the lowest index (stable sort).
        values, order = torch.sort(rate, dim=1, descending=True, stable=True)
        rank = torch.arange(h * w, device=rate.device)
        hot = (rank < max_px) & (values > max_rate) & (num > min_obvs)[:, None]  # (B, H*W) in sorted order
        over = torch.zeros_like(over).scatter_(1, order, hot)
    mask = (~over).to(torch.float32).view(nb, h, w)  # (B, H, W)
    if batched:
        return mask, HotPixelState(active, num)
    return mask[0], HotPixelState(active[0], num[0])


def apply_hot_pixel_mask(batch: Mapping[str, torch.Tensor], mask: torch.Tensor,
                         drop_listed_events: bool = False) -> dict[str, torch.Tensor]:
    """Apply a hot-pixel ``mask`` ``(B, H, W)`` to a batch dict of :mod:`eventflow.datasets` (a new dict).

    ``event_cnt``, ``event_voxel`` and ``event_mask`` are multiplied by the mask, as the reference does. The
    reference leaves the event list alone (the paper's evaluation warps the hot pixels' events too);
    ``drop_listed_events=True`` also drops the listed events that fall on masked pixels: their ``event_valid``
    becomes False, their ``event_list`` and ``pol_mask`` rows zero, and ``num_events`` counts the rest.
    """
    out = dict(batch)
    m = mask[:, None].to(torch.float32)  # (B, 1, H, W)
    for key in ("event_cnt", "event_voxel", "event_mask"):
        if key in out:
            out[key] = out[key] * m
    if drop_listed_events and "event_list" in out:
        ev = out["event_list"]  # (B, N, 4): t, y, x, p
        nb, _, w = mask.shape
        flat = mask.reshape(nb, -1)  # (B, H*W)
        pix = (ev[..., 1].long() * w + ev[..., 2].long()).clamp(0, flat.shape[1] - 1)  # (B, N)
        keep = out["event_valid"] & (torch.gather(flat, 1, pix) > 0)
        out["event_valid"] = keep
        out["event_list"] = ev * keep[..., None]
        out["pol_mask"] = out["pol_mask"] * keep[..., None]
        out["num_events"] = keep.sum(dim=1).to(torch.int64)
    return out


# -- flips -------------------------------------------------------------------------------------------------------


def flip_events(x, y, p, resolution, horizontal: bool = False, vertical: bool = False, polarity: bool = False):
    """Flip events: ``x -> W - 1 - x`` (horizontal), ``y -> H - 1 - y`` (vertical), ``p -> -p`` (polarity).

    Works on NumPy arrays and tensors of any shape; returns ``(x, y, p)``. Flip the GT with :func:`flip_flow`.

    >>> flip_events(np.array([0, 3]), np.array([1, 1]), np.array([1, -1]), (2, 4), horizontal=True, polarity=True)
    (array([3, 0]), array([1, 1]), array([-1,  1]))
    """
    h, w = int(resolution[0]), int(resolution[1])
    if horizontal:
        x = (w - 1) - x
    if vertical:
        y = (h - 1) - y
    if polarity:
        p = -p
    return x, y, p


def flip_flow(flow, horizontal: bool = False, vertical: bool = False):
    """Flip a flow map ``(2, H, W)`` or ``(B, 2, H, W)`` (tensor or array) consistently with :func:`flip_events`:
    a horizontal flip mirrors the columns and negates channel 0 (x), a vertical flip mirrors the rows and
    negates channel 1 (y)."""
    is_tensor = isinstance(flow, torch.Tensor)
    out = flow.clone() if is_tensor else np.array(flow, copy=True)
    flip = (lambda a, d: torch.flip(a, dims=(d,))) if is_tensor else (lambda a, d: np.flip(a, axis=d).copy())
    if horizontal:
        out = flip(out, -1)
        out[..., 0, :, :] = -out[..., 0, :, :]
    if vertical:
        out = flip(out, -2)
        out[..., 1, :, :] = -out[..., 1, :, :]
    return out
