"""Motion compensation of events: per-event flow lookup, warping, splatting and images of warped events.

Each event ``e_k = (x_k, y_k, t_k, p_k)`` is moved along the flow predicted at its own pixel to a reference
time ``t_ref`` (Gallego et al., CVPR'18; Zhu et al., CVPR'19):

    x'_k = x_k + (t_ref - t_k) * u(x_k, y_k) * s
    y'_k = y_k + (t_ref - t_k) * v(x_k, y_k) * s

with ``(u, v)`` the network's flow in tanh units (channel 0 = x, 1 = y), ``t`` in windows (a window spans
``[0, 1]``; pass ``k`` of a loss window spans ``[k, k + 1]``) and ``s = flow_scaling`` pixels per window (128 in
the reference). The warped events are then splatted into an image of warped events (IWE):

- bilinear: each event adds ``k(x' - x_c) * k(y' - y_c)`` to its four neighbours ``(x_c, y_c)``, with
  ``k(d) = max(0, 1 - |d|)``; a neighbour outside the image gets weight 0 (its share is lost);
- rounding: each event adds 1 at ``(round(x'), round(y'))`` if that pixel is inside the image.

Flat pixel indices are row-major, ``y * W + x``, so images are filled with one ``index_add_`` on a flat buffer
(no loop over events, passes, directions or polarities).

>>> import torch
>>> flow = torch.zeros(1, 2, 3, 4)
>>> flow[:, 0] = 0.5 / 128                       # half a pixel to the right per window
>>> events = torch.tensor([[[0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 2.0, -1.0]]])   # (ts, y, x, p)
>>> pol_mask = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])                       # (positive, negative)
>>> iwe = image_of_warped_events(flow, events, pol_mask, t_ref=1.0)          # (B, 2, H, W)
>>> iwe[0, 0, 1].tolist(), iwe[0, 1, 1].tolist()
([0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 1.0, 0.0])
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

HAGENAARS2021 = "hagenaars2021"
COMPAT_MODES = (None, HAGENAARS2021)

# Added to the per-pixel weight sum before dividing by it in average-timestamp images (reference value).
TIMESTAMP_EPS = 1e-9


def check_compat(compat: str | None) -> None:
    """Raise ``ValueError`` unless ``compat`` is ``None`` (the correct form) or ``"hagenaars2021"``."""
    if compat not in COMPAT_MODES:
        raise ValueError(f"compat must be None or {HAGENAARS2021!r}, got {compat!r}")


class Splat(NamedTuple):
    """Where and how much each warped event lands in the image.

    ``index``: ``(K, *L, N)`` int64 flat pixel index ``y * W + x`` (0 where the pixel is outside the image);
    ``weight``: ``(K, *L, N)`` float share of the event at that pixel (0 where outside). ``K`` = 4 for
    bilinear splatting (TL, TR, BL, BR), 1 for rounding. The corner axis comes first so that every elementwise
    operation runs along the long event axis.
    """

    index: Tensor
    weight: Tensor


def pixel_index(y: Tensor, x: Tensor, width: int) -> Tensor:
    """Row-major flat pixel index ``y * W + x`` (int64) of integer-valued coordinates, any shape."""
    return y.long() * width + x.long()


def lookup_event_flow(flow: Tensor, pixel: Tensor, pass_index: Tensor | None = None) -> Tensor:
    """Flow at each event's own pixel.

    Args:
        flow: ``(B, 2, H, W)`` one flow map, or ``(B, T, 2, H, W)`` one map per pass.
        pixel: ``(B, N)`` int64 flat pixel index ``y * W + x`` of every event.
        pass_index: ``(N,)`` or ``(B, N)`` int64 pass of every event; required with ``(B, T, 2, H, W)`` flow.

    Returns:
        ``(B, N, 2)`` per-event flow, ``[..., 0]`` = u (x), ``[..., 1]`` = v (y), in the units of ``flow``.
    """
    if flow.dim() == 4:
        flow = flow.unsqueeze(1)  # (B, 1, 2, H, W)
        pass_index = None
    elif flow.dim() != 5 or pass_index is None:
        raise ValueError(f"flow must be (B, 2, H, W), or (B, T, 2, H, W) with a pass_index; got {tuple(flow.shape)}")
    batch, _, channels, height, width = flow.shape
    if channels != 2:
        raise ValueError(f"flow must have 2 channels (x, y), got {channels}")
    hw = height * width
    index = pixel if pass_index is None else pixel + pass_index * (2 * hw)  # (B, N) offset of channel x
    index = torch.stack((index, index + hw), dim=-1).expand(batch, -1, 2)  # (B, N, 2) channels x, y
    flat = flow.reshape(batch, -1)  # (B, T * 2 * H * W)
    return torch.gather(flat, 1, index.reshape(batch, -1)).view(batch, -1, 2)  # (B, N, 2)


def warp_events(
    y: Tensor, x: Tensor, t: Tensor, event_flow: Tensor, t_ref: float | Tensor, flow_scaling: float
) -> tuple[Tensor, Tensor]:
    """Move events along their flow to ``t_ref``: ``x' = x + (t_ref - t) * u * s``, ``y' = y + (t_ref - t) * v * s``.

    Args:
        y, x: ``(*L, N)`` pixel coordinates (float).
        t: ``(*L, N)`` timestamps in windows.
        event_flow: ``(*L, N, 2)`` per-event flow (u, v) in tanh units (see :func:`lookup_event_flow`).
        t_ref: reference time in windows; a float or a tensor broadcastable to ``(*L, N)``.
        flow_scaling: ``s``, pixels per window per unit of flow.

    Returns:
        ``(y', x')``, each ``(*L, N)`` float pixel coordinates.
    """
    dt = t_ref - t  # (*L, N)
    # (dt * flow) * s: the reference's order of operations, kept so float32 results match bit for bit.
    return y + dt * event_flow[..., 1] * flow_scaling, x + dt * event_flow[..., 0] * flow_scaling


def splat_bilinear(y: Tensor, x: Tensor, resolution: tuple[int, int], compat: str | None = None) -> Splat:
    """Bilinear splat of float positions ``(*L, N)`` to their 4 neighbours: a :class:`Splat` of ``(4, *L, N)``.

    Weight of neighbour ``(y_c, x_c)``: ``max(0, 1 - |y - y_c|) * max(0, 1 - |x - x_c|)``; 0 outside the image.

    ``compat="hagenaars2021"`` takes the lower/right neighbour as ``floor(v + 1)`` as the reference does,
    instead of ``floor(v) + 1``. They differ only where ``v + 1`` rounds up to the next integer in floating point
    (``v`` a hair below an integer near a power of two, or a tiny negative ``v``): the reference then gets
    neighbours two pixels apart and the event's share in that axis is lost.
    """
    check_compat(compat)
    height, width = resolution
    row_index, row_weight = _axis_weights(y, height, compat)  # (2, *L, N): top, bottom
    col_index, col_weight = _axis_weights(x, width, compat)  # (2, *L, N): left, right
    # Outer products over the two axes give the corners in the order TL, TR, BL, BR.
    index = (row_index.unsqueeze(1) * width + col_index.unsqueeze(0)).flatten(0, 1)  # (4, *L, N)
    weight = (row_weight.unsqueeze(1) * col_weight.unsqueeze(0)).flatten(0, 1)  # (4, *L, N)
    return Splat(index, weight)


def _axis_weights(position: Tensor, size: int, compat: str | None) -> tuple[Tensor, Tensor]:
    """The two neighbours of ``position`` ``(*L, N)`` along one axis and their weights ``max(0, 1 - |d|)``,
    both ``(2, *L, N)``; a neighbour outside ``[0, size)`` gets coordinate 0 and weight 0."""
    low = torch.floor(position)
    high = torch.floor(position + 1) if compat == HAGENAARS2021 else low + 1
    neighbours = torch.stack((low, high))  # (2, *L, N)
    zero = torch.zeros((), dtype=position.dtype, device=position.device)
    inside = (neighbours >= 0) & (neighbours < size)
    # maximum() rather than clamp(): at a tie (weight exactly 0) it passes half the gradient, as the reference.
    weight = torch.maximum(1 - torch.abs(position - neighbours), zero)
    return torch.where(inside, neighbours, zero).long(), torch.where(inside, weight, zero)


def splat_round(y: Tensor, x: Tensor, resolution: tuple[int, int]) -> Splat:
    """Splat float positions ``(*L, N)`` to the nearest pixel (round half to even), weight 1: ``(1, *L, N)``."""
    height, width = resolution
    rows, cols = torch.round(y).unsqueeze(0), torch.round(x).unsqueeze(0)  # (1, *L, N)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    index = torch.where(inside, rows.long() * width + cols.long(), 0)
    return Splat(index, inside.to(y.dtype))


def splat_events(
    y: Tensor, x: Tensor, resolution: tuple[int, int], round_idx: bool = False, compat: str | None = None
) -> Splat:
    """:func:`splat_round` if ``round_idx`` else :func:`splat_bilinear`."""
    return splat_round(y, x, resolution) if round_idx else splat_bilinear(y, x, resolution, compat=compat)


def accumulate(
    splat: Splat,
    resolution: tuple[int, int],
    values: Tensor | None = None,
    channel: Tensor | None = None,
    num_channels: int = 1,
) -> Tensor:
    """Sum splat weights, times per-event values, into images with one flat ``index_add_``.

    ``image[l, q, c, pixel] = sum over events n of channel c and their K pixels of weight * values[q, l, n]``.

    Args:
        splat: index and weight ``(K, *L, N)``.
        resolution: ``(H, W)``.
        values: ``(Q, *L, N)`` per-event quantities, ``*L`` broadcast against the splat's (same number of dims);
            ``None`` means one quantity of 1s.
        channel: ``(*L, N)`` int64 channel of every event in ``[0, num_channels)`` (e.g. polarity), or ``None``.
        num_channels: number of channels ``C``.

    Returns:
        ``(*L, Q, C, H, W)`` images.
    """
    height, width = resolution
    hw = height * width
    if values is None:
        values = torch.ones((1,) + (1,) * (splat.index.dim() - 1), dtype=splat.weight.dtype, device=splat.weight.device)
    lead = torch.broadcast_shapes(
        splat.index.shape[1:-1], values.shape[1:-1], () if channel is None else channel.shape[:-1]
    )
    q = values.shape[0]
    # Offsets of each event's image (lane, channel) first, on (*L, N), before expanding to K pixels and Q planes.
    base = torch.arange(lead.numel(), device=splat.index.device).view(*lead, 1) * (q * num_channels * hw)
    if channel is not None:
        base = base + channel * hw  # (*L, N)
    planes = torch.arange(q, device=base.device).view(q, 1, *(1,) * len(lead), 1) * (num_channels * hw)
    index = (splat.index + base).unsqueeze(0) + planes  # (Q, K, *L, N)
    source = values.unsqueeze(1) * splat.weight.unsqueeze(0)  # (Q, K, *L, N)
    source = source.expand(index.shape)
    out = torch.zeros(lead.numel() * q * num_channels * hw, dtype=source.dtype, device=source.device)
    out.index_add_(0, index.reshape(-1), source.reshape(-1))
    return out.view(*lead, q, num_channels, height, width)


def average_timestamp_image(counts: Tensor, timestamp_sums: Tensor, t_norm: float | Tensor) -> Tensor:
    """Per-pixel average timestamp of the warped events (Zhu et al., CVPR'19, eq. 4), normalised by ``t_norm``.

    ``T(x) = (sum_k w_k(x) t_k) / (sum_k w_k(x) + 1e-9) / t_norm``; 0 where no event landed.

    Args:
        counts: ``(..., H, W)`` sum of splat weights (the IWE).
        timestamp_sums: ``(..., H, W)`` sum of splat weight times timestamp, same shape.
        t_norm: the loss window length in windows (number of passes), broadcastable to ``counts``.

    Returns:
        ``(..., H, W)`` average timestamps in ``[0, 1]``.
    """
    return timestamp_sums / (counts + TIMESTAMP_EPS) / t_norm


def polarity_channel(pol_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Channel (0 positive, 1 negative) and presence of every event from a one-hot polarity mask.

    Args:
        pol_mask: ``(B, N, 2)`` columns (positive, negative); a row of zeros marks a padded event.

    Returns:
        ``(channel, present)``: ``(B, N)`` int64 and ``(B, N)`` bool.
    """
    return (pol_mask[..., 1] > 0).long(), (pol_mask[..., 0] > 0) | (pol_mask[..., 1] > 0)


def image_of_warped_events(
    flow: Tensor,
    event_list: Tensor,
    pol_mask: Tensor,
    event_valid: Tensor | None = None,
    *,
    t_ref: float = 1.0,
    flow_scaling: float = 128.0,
    round_idx: bool = False,
    compat: str | None = None,
) -> Tensor:
    """Per-polarity image of the events of one window warped with ``flow`` to ``t_ref``.

    Args:
        flow: ``(B, 2, H, W)`` flow in tanh units (channel 0 = x); zeros give the image of unwarped events.
        event_list: ``(B, N, 4)`` columns (ts in [0, 1], y, x, p).
        pol_mask: ``(B, N, 2)`` one-hot (positive, negative), zeros for padded events.
        event_valid: ``(B, N)`` bool, ``False`` for padding; ``None`` = all valid.
        t_ref: reference time in windows (1 = end of the window).
        flow_scaling: pixels per window per unit of flow.
        round_idx: round warped positions instead of bilinear splatting.
        compat: see :func:`splat_bilinear`.

    Returns:
        ``(B, 2, H, W)`` event counts per pixel, channel 0 positive, 1 negative.
    """
    resolution = (flow.shape[-2], flow.shape[-1])
    y, x, t = event_list[..., 1], event_list[..., 2], event_list[..., 0]
    channel, present = polarity_channel(pol_mask)
    if event_valid is not None:
        present = present & event_valid
    pixel = torch.where(present, pixel_index(y, x, resolution[1]), 0)  # padded rows may hold any coordinates
    event_flow = lookup_event_flow(flow, pixel)  # (B, N, 2)
    wy, wx = warp_events(y, x, t, event_flow, t_ref, flow_scaling)
    splat = splat_events(wy, wx, resolution, round_idx=round_idx, compat=compat)
    splat = splat._replace(weight=splat.weight * present)
    return accumulate(splat, resolution, channel=channel, num_channels=2)[:, 0]  # (B, 2, H, W)
