"""Optical-flow evaluation metrics: with ground truth (AEE, outliers, AAE) and without (FWL, RSAT).

Ground-truth metrics compare the predicted displacement over the ground-truth interval,

    f_pred = flow * flow_scaling * dt_gt / dt_input   [px]

(``flow`` in tanh units over an input window of ``dt_input`` seconds, ``dt_gt`` the ground-truth interval),
with the ground truth ``f_gt`` [px] on the pixels where the last pass has an event and ``f_gt != (0, 0)``
(MVSEC protocol of Zhu et al., RA-L 2018, as used by Hagenaars et al., NeurIPS 2021).

Event-based metrics compare the events warped with the flow against the unwarped events (one loss window,
passes as in :mod:`eventflow.loss`, the last flow scale, rounding splat, ``t_ref`` = number of passes):

>>> import torch
>>> from eventflow.loss import empty_loss_buffer, loss_buffer_append
>>> flow = torch.zeros(1, 2, 4, 4)
>>> flow[:, 0] = 1.0 / 128                                   # one pixel to the right per window
>>> events = torch.tensor([[[0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 2.0, 1.0]]])   # (ts, y, x, p): a moving edge
>>> buffer = loss_buffer_append(empty_loss_buffer(), [flow], events, torch.tensor([[[1.0, 0.0], [1.0, 0.0]]]),
...                             None, torch.zeros(1, 1, 4, 4))
>>> flow_warp_loss(buffer)                                   # both events on one pixel: var 0.25 / (7 / 60)
tensor([2.1429])
>>> ratio_squared_average_timestamps(buffer)                 # (0.5^2 / 1) / ((0^2 + 1^2) / 2)
tensor([0.5000])
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from eventflow.loss import LossBuffer, stack_passes, timestamp_contrast
from eventflow.warping import (
    HAGENAARS2021,
    Splat,
    accumulate,
    check_compat,
    image_of_warped_events,
    lookup_event_flow,
    splat_round,
    warp_events,
)

OUTLIER_PX = 3.0
OUTLIER_FRACTION = 0.05


class EndpointError(NamedTuple):
    """AEE [px] and outliers per sample, ``(B,)`` each; see :func:`average_endpoint_error` for the units."""

    aee: Tensor
    outliers: Tensor


def predicted_displacement(
    flow: Tensor, dt_gt: float | Tensor, dt_input: float | Tensor, flow_scaling: float = 128.0
) -> Tensor:
    """``flow * flow_scaling * dt_gt / dt_input``: ``(B, 2, H, W)`` tanh units -> px over the GT interval (float64).

    ``dt_gt``, ``dt_input``: seconds, floats or ``(B,)`` tensors. For dt=4 evaluation pass the last quarter
    window's flow and duration. A sample with ``dt_input <= 0`` (an empty window) has no defined displacement:
    NaN, so its metrics are NaN too.
    """
    dt_input = torch.as_tensor(dt_input, dtype=torch.float64)
    ratio = torch.as_tensor(dt_gt, dtype=torch.float64) / torch.where(dt_input > 0, dt_input, math.nan)
    ratio = ratio.to(flow.device).reshape(-1, 1, 1, 1)  # (B or 1, 1, 1, 1)
    return flow.to(torch.float64) * flow_scaling * ratio


def evaluation_mask(event_mask: Tensor, gt_flow: Tensor) -> Tensor:
    """``(B, H, W)`` bool: pixels with an event in ``event_mask`` ``(B, 1, H, W)`` and ground truth
    ``gt_flow`` ``(B, 2, H, W)`` different from ``(0, 0)`` (zero marks missing ground truth in MVSEC)."""
    return event_mask[:, 0].bool() & (gt_flow != 0).any(dim=1)


def average_endpoint_error(
    flow: Tensor,
    gt_flow: Tensor,
    event_mask: Tensor,
    dt_gt: float | Tensor,
    dt_input: float | Tensor,
    flow_scaling: float = 128.0,
    compat: str | None = None,
) -> EndpointError:
    """Average endpoint error and outliers (Baker et al., IJCV 2011; MVSEC protocol, Zhu et al., RA-L 2018).

    ``e(x) = ||f_pred(x) - f_gt(x)||_2`` on the evaluation mask ``V`` (:func:`evaluation_mask`);
    ``AEE = sum_V e / |V|``. An outlier has ``e > 3 px`` and ``e > 5 %`` of the magnitude.

    Default (the standard definition): magnitude of the ground truth ``||f_gt||``, outliers per sample in
    percent, ``100 * #outliers / |V|``. A sample with an empty mask has no defined error: NaN for both (skip
    it with ``nanmean``; averaging a 0 in would bias the sequence mean).

    ``compat="hagenaars2021"`` (reference ``loss/flow.py`` ``AEE``): magnitude of the *prediction*
    ``||f_pred||``; the outlier count is summed over the whole batch and divided by each sample's ``|V|``;
    outliers as a fraction; ``|V| + 1e-9`` denominators, so an empty mask gives 0.

    Args:
        flow: ``(B, 2, H, W)`` predicted flow in tanh units (channel 0 = x).
        gt_flow: ``(B, 2, H, W)`` ground-truth displacement over ``dt_gt`` [px].
        event_mask: ``(B, 1, H, W)`` 1 where the last pass has an event.
        dt_gt, dt_input: seconds, floats or ``(B,)``.
        flow_scaling: pixels per input window per unit of flow.
        compat: ``None`` or ``"hagenaars2021"``.

    Returns:
        :class:`EndpointError` with ``aee`` [px] and ``outliers`` (percent, or a fraction under compat), ``(B,)``
        float64 each.
    """
    check_compat(compat)
    pred = predicted_displacement(flow, dt_gt, dt_input, flow_scaling)  # (B, 2, H, W) px
    gt = gt_flow.to(torch.float64)
    mask = evaluation_mask(event_mask, gt_flow)  # (B, H, W)
    error = torch.linalg.vector_norm(pred - gt, dim=1) * mask  # (B, H, W)
    magnitude = torch.linalg.vector_norm(pred if compat == HAGENAARS2021 else gt, dim=1) * mask
    outlier = (error > OUTLIER_PX) & (error > OUTLIER_FRACTION * magnitude)  # (B, H, W)
    valid = mask.sum(dim=(1, 2)).to(torch.float64)  # (B,)
    if compat == HAGENAARS2021:
        return EndpointError(error.sum(dim=(1, 2)) / (valid + 1e-9), outlier.sum() / (valid + 1e-9))
    valid = torch.where(valid > 0, valid, math.nan)
    return EndpointError(error.sum(dim=(1, 2)) / valid, 100.0 * outlier.sum(dim=(1, 2)) / valid)


def average_angular_error(
    flow: Tensor,
    gt_flow: Tensor,
    event_mask: Tensor,
    dt_gt: float | Tensor,
    dt_input: float | Tensor,
    flow_scaling: float = 128.0,
) -> Tensor:
    """Average angular error in degrees (Barron et al., IJCV 1994; Baker et al., IJCV 2011):

        AE(x) = arccos( (u u_gt + v v_gt + 1) / (sqrt(u^2 + v^2 + 1) sqrt(u_gt^2 + v_gt^2 + 1)) )

    the angle between the space-time directions ``(u, v, 1)`` and ``(u_gt, v_gt, 1)``, with ``(u, v)`` the
    displacements [px] over the ground-truth interval, averaged over the mask of :func:`evaluation_mask`.
    Arguments as :func:`average_endpoint_error`. Returns ``(B,)`` float64 degrees; NaN for an empty mask.
    """
    pred = predicted_displacement(flow, dt_gt, dt_input, flow_scaling)  # (B, 2, H, W) px
    gt = gt_flow.to(torch.float64)
    dot = (pred * gt).sum(dim=1) + 1.0  # (B, H, W)
    norms = torch.sqrt((pred**2).sum(dim=1) + 1.0) * torch.sqrt((gt**2).sum(dim=1) + 1.0)
    angle = torch.rad2deg(torch.acos(torch.clamp(dot / norms, -1.0, 1.0)))  # (B, H, W)
    mask = evaluation_mask(event_mask, gt_flow)
    valid = mask.sum(dim=(1, 2)).to(torch.float64)
    return (angle * mask).sum(dim=(1, 2)) / torch.where(valid > 0, valid, math.nan)


def _warped_and_unwarped(buffer: LossBuffer, flow_scaling: float):
    """Rounding splats of the buffer's events warped with the last flow scale to ``t_ref = T`` and unwarped."""
    stacked = stack_passes(buffer)
    flow = stacked.flow[-1]  # (B, T, 2, H, W) the highest-resolution scale
    resolution = (flow.shape[-2], flow.shape[-1])
    event_flow = lookup_event_flow(flow, stacked.pixel, stacked.pass_index)  # (B, M, 2)
    y, x = warp_events(stacked.y, stacked.x, stacked.t, event_flow, stacked.n_passes[:, None], flow_scaling)
    warped, unwarped = splat_round(y, x, resolution), splat_round(stacked.y, stacked.x, resolution)
    present = stacked.present.to(warped.weight.dtype)  # (B, M)
    index = torch.stack((warped.index, unwarped.index), dim=1)  # (K=1, 2, B, M): warped, unwarped
    weight = torch.stack((warped.weight, unwarped.weight), dim=1) * present
    return stacked, Splat(index, weight), resolution


def flow_warp_loss(buffer: LossBuffer, flow_scaling: float = 128.0, compat: str | None = None) -> Tensor:
    """Flow Warp Loss (Stoffregen, Scheerlinck et al., ECCV'20, Sec. 4.1): contrast of the image of warped
    events relative to the image of unwarped events,

        FWL = var_x(IWE(x; flow)) / var_x(IWE(x; 0))

    over all ``H * W`` pixels (zeros included), both polarities together, events warped to the end of the
    window (``t_ref = T``) and rounded to the nearest pixel (events warped out of the image are dropped).
    ``> 1``: the flow sharpens the events. Sensitive to the number of events per window.

    The reference form is kept as the default; ``compat`` is accepted for a uniform metric interface and does
    not change the result. Rounding (not bilinear splatting) treats both images alike: bilinear weights would
    blur only the warped image and bias the ratio down. Whether the variance is biased or not cancels in the
    ratio. Padded events are excluded (the reference, at batch size 1, has none).

    Args:
        buffer: the evaluation window's passes (:func:`eventflow.loss.loss_buffer_append`).
        flow_scaling: pixels per window per unit of flow (128).
        compat: ``None`` or ``"hagenaars2021"`` (same result).

    Returns:
        ``(B,)`` FWL; NaN for a sample without events (zero variance of the unwarped image).
    """
    check_compat(compat)
    _, splat, resolution = _warped_and_unwarped(buffer, flow_scaling)
    images = accumulate(splat, resolution)  # (2, B, 1, 1, H, W)
    variance = images.flatten(start_dim=2).var(dim=-1)  # (2, B), unbiased like the reference
    return torch.where(variance[1] > 0, variance[0] / variance[1], math.nan)


def ratio_squared_average_timestamps(
    buffer: LossBuffer, flow_scaling: float = 128.0, compat: str | None = None
) -> Tensor:
    """Ratio of the Squared Averaged Timestamps (Hagenaars et al., NeurIPS 2021, appendix C): the forward
    average-timestamp contrast (:func:`eventflow.loss.timestamp_contrast`, ``t_ref = T``, per polarity) of the
    warped events over that of the unwarped events, both with the rounding splat,

        RSAT = L_fw(flow) / L_fw(0)

    ``< 1``: the flow sharpens the events. The reference form is the default (see :func:`flow_warp_loss`);
    ``compat`` does not change the result.

    Returns:
        ``(B,)`` RSAT; NaN for a sample without events.
    """
    check_compat(compat)
    stacked, splat, resolution = _warped_and_unwarped(buffer, flow_scaling)
    values = torch.stack((torch.ones_like(stacked.t), stacked.t)).unsqueeze(1)  # (Q=2, 1, B, M): weight, timestamp
    images = accumulate(splat, resolution, values, stacked.channel, num_channels=2)  # (2, B, 2, 2, H, W)
    n = stacked.n_passes.clamp(min=1).view(1, -1, 1, 1, 1)
    contrast = timestamp_contrast(images[:, :, 0], images[:, :, 1], n)  # (2, B)
    return torch.where(contrast[1] > 0, contrast[0] / contrast[1], math.nan)


class IWEPair(NamedTuple):
    """Per-polarity images of events ``(B, 2, H, W)`` (channel 0 positive, 1 negative): ``before`` unwarped,
    ``after`` warped with the flow to the end of the window."""

    before: Tensor
    after: Tensor


def iwe_for_visualisation(
    flow: Tensor,
    event_list: Tensor,
    pol_mask: Tensor,
    event_valid: Tensor | None = None,
    flow_scaling: float = 128.0,
    round_idx: bool = True,
) -> IWEPair:
    """Images of one window's events before and after motion compensation with ``flow`` ``(B, 2, H, W)``.

    ``event_list`` ``(B, N, 4)`` (ts, y, x, p), ``pol_mask`` ``(B, N, 2)``, ``event_valid`` ``(B, N)`` as in
    :func:`eventflow.warping.image_of_warped_events`; events are warped to ``t_ref = 1`` (rounded by default).
    """
    after = image_of_warped_events(
        flow, event_list, pol_mask, event_valid, t_ref=1.0, flow_scaling=flow_scaling, round_idx=round_idx
    )
    before = image_of_warped_events(
        torch.zeros_like(flow), event_list, pol_mask, event_valid, t_ref=1.0, round_idx=round_idx
    )
    return IWEPair(before, after)
