"""Self-supervised contrast-maximisation loss with average-timestamp images (Zhu et al., CVPR'19, Sec. 3.2),
in the multi-pass form of Hagenaars, Paredes-Vallés & de Croon (NeurIPS 2021, Sec. 3.2).

A loss window is a run of ``T`` forward passes (e.g. 10 windows of 1000 events). Every event of pass ``k``
takes the flow that pass ``k`` predicted at its own pixel, and its timestamp becomes ``t = k + ts`` (``ts`` in
``[0, 1]`` within the pass). The events are warped (:mod:`eventflow.warping`) forward to ``t_ref = T`` and
backward to ``t_ref = 0``, bilinearly splatted, and per polarity ``p`` the average-timestamp image

    A_p(x) = sum_k w_k(x) tau_k / (sum_k w_k(x) + 1e-9) / T

is formed, with ``tau_k = t_k`` forward and ``tau_k = T - t_k`` backward. The contrast term of one direction is

    L_dir = sum_{p, x} A_p(x)^2 / #{x : IWE_pos(x) + IWE_neg(x) > 0}

(with the right flow, the events a pixel collects span the whole window, so its average timestamp moves towards
the middle and the mean square over occupied pixels falls; motion blur leaves pixels with early-only or late-only
timestamps). With a flow smoothness term
``S`` (Charbonnier penalty on neighbour differences, see :func:`flow_smoothness`) the loss is

    L = mean over flow scales of (L_fw + L_bw + lambda * S)

averaged over the batch (``compat="hagenaars2021"``: summed). Passes accumulate in an explicit
:class:`LossBuffer` (functional state: every function returns a new buffer):

>>> import torch
>>> flow = torch.zeros(1, 2, 3, 3)                          # (B, 2, H, W), zero flow
>>> events = torch.tensor([[[0.5, 1.0, 1.0, 1.0]]])         # one positive event, ts = 0.5, at (y, x) = (1, 1)
>>> buffer = loss_buffer_append(empty_loss_buffer(), [flow], events, torch.tensor([[[1.0, 0.0]]]),
...                             None, torch.zeros(1, 1, 3, 3))
>>> event_warping_loss(buffer)                               # 0.5^2 forward + 0.5^2 backward
tensor(0.5000)

Differences between the default form and the reference (``compat="hagenaars2021"`` reproduces the reference):

1. batch reduction: the mean over lanes with at least one valid pass, not the sum over the batch (the
   sum ties the gradient scale, and so the learning rate, to the batch size);
2. smoothness penalty: per component, ``rho(du) + rho(dv)`` with ``rho(d) = sqrt(d^2 + 1e-6)``, normalised by the
   number of masked neighbour pairs; the reference penalises ``rho(du + dv)``, which is blind to ``du = -dv``,
   and divides the unnormalised sum by the number of directions and ``T``. Note: the reference sum grows with the
   number of pairs (thousands), so the same ``smoothness_weight`` regularises far less in the default form (on
   10 passes of the ECD shapes recording with the authors' LIF-FireNet: 1.07 against 0.0052, about 200 times);
3. bilinear neighbours ``floor(v) + 1`` instead of ``floor(v + 1)`` (see :func:`eventflow.warping.splat_bilinear`).

Both forms: a direction whose image holds no warped event (an empty window, or all events warped out of the
image) contributes 0 where the reference divides 0 by 0 (NaN); padded events (``event_valid`` False), passes
a lane had no window for (``pass_valid`` False) and passes a lane dropped with :func:`loss_buffer_reset_lanes`
contribute nothing, each lane using its own ``T`` and pass offsets; the caller's tensors are never modified
(the reference adds the pass offsets to the caller's timestamps in place). With full, unpadded batches and at
least one event inside the image the compatible form equals the reference (``loss/flow.py`` ``EventWarping``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from eventflow.warping import (
    HAGENAARS2021,
    accumulate,
    average_timestamp_image,
    check_compat,
    lookup_event_flow,
    pixel_index,
    polarity_channel,
    splat_bilinear,
    warp_events,
)

CHARBONNIER_EPS = 1e-6


class LossBuffer(NamedTuple):
    """The passes of one loss window, one tuple entry per pass (oldest first).

    ``flow[k][s]``: ``(B, 2, H, W)`` flow of scale ``s`` (tanh units, full resolution, channel 0 = x);
    ``event_list[k]``: ``(B, N_k, 4)`` (ts in [0, 1], y, x, p); ``pol_mask[k]``: ``(B, N_k, 2)`` one-hot
    (positive, negative); ``event_valid[k]``: ``(B, N_k)`` bool (False = padding); ``event_mask[k]``:
    ``(B, 1, H, W)`` 1 where pass ``k`` has an event; ``pass_valid[k]``: ``(B,)`` bool, False where the lane had
    no window at that step or dropped the pass because it started a new recording after it
    (:func:`loss_buffer_reset_lanes`).

    In a training loop over batches with per-lane resets (e.g. :mod:`eventflow.datasets`)::

        buffer = loss_buffer_reset_lanes(buffer, batch["reset"])
        buffer = loss_buffer_append(buffer, flow_scales, batch["event_list"], batch["pol_mask"],
                                    batch["event_valid"], batch["event_mask"], pass_valid=batch["active"])
        if buffer.num_passes == passes_per_loss:
            loss = event_warping_loss(buffer); loss.backward(); ...; buffer = empty_loss_buffer()
    """

    flow: tuple[tuple[Tensor, ...], ...] = ()
    event_list: tuple[Tensor, ...] = ()
    pol_mask: tuple[Tensor, ...] = ()
    event_valid: tuple[Tensor, ...] = ()
    event_mask: tuple[Tensor, ...] = ()
    pass_valid: tuple[Tensor, ...] = ()

    @property
    def num_passes(self) -> int:
        """Passes stored (``T``), valid or not."""
        return len(self.flow)


def empty_loss_buffer() -> LossBuffer:
    """A buffer with no passes (the state at the start of every loss window)."""
    return LossBuffer()


def loss_buffer_append(
    buffer: LossBuffer,
    flow_scales: Sequence[Tensor] | Tensor,
    event_list: Tensor,
    pol_mask: Tensor,
    event_valid: Tensor | None,
    event_mask: Tensor,
    pass_valid: Tensor | None = None,
) -> LossBuffer:
    """Return ``buffer`` with one more pass.

    Args:
        buffer: the passes so far.
        flow_scales: the model's flow for this pass, one ``(B, 2, H, W)`` map per scale (or one tensor).
        event_list: ``(B, N, 4)`` float (ts in [0, 1], y, x, p) of the events of this pass.
        pol_mask: ``(B, N, 2)`` one-hot polarity (positive, negative); zeros for padded events.
        event_valid: ``(B, N)`` bool, False for padded events; ``None`` = all valid.
        event_mask: ``(B, 1, H, W)`` 1 where this pass has an event.
        pass_valid: ``(B,)`` bool, False for lanes that have no window at this step (e.g. the data layer's
            ``active`` flag): the pass then does not count for that lane at all; ``None`` = valid for every lane.
            A lane's valid passes must be consecutive (checked by the loss): after an invalid pass, a lane gets
            valid passes again only after :func:`loss_buffer_reset_lanes`.

    Raises:
        ValueError: on shapes that do not match each other or the passes already stored, or on event
            coordinates outside the image.
    """
    flows = (flow_scales,) if isinstance(flow_scales, Tensor) else tuple(flow_scales)
    if not flows or any(f.dim() != 4 or f.shape[1] != 2 for f in flows):
        shapes = [tuple(f.shape) for f in flows]
        raise ValueError(f"flow_scales must be one or more (B, 2, H, W) maps, got {shapes}")
    batch, _, height, width = flows[0].shape
    if any(f.shape != flows[0].shape for f in flows):
        raise ValueError(f"all flow scales must be upsampled to one shape, got {[tuple(f.shape) for f in flows]}")
    if buffer.num_passes and (len(flows) != len(buffer.flow[0]) or flows[0].shape != buffer.flow[0][0].shape):
        raise ValueError(
            f"pass flow {len(flows)} x {tuple(flows[0].shape)} does not match the buffer's "
            f"{len(buffer.flow[0])} x {tuple(buffer.flow[0][0].shape)}"
        )
    if event_list.dim() != 3 or event_list.shape[0] != batch or event_list.shape[2] != 4:
        raise ValueError(f"event_list must be (B={batch}, N, 4) (ts, y, x, p), got {tuple(event_list.shape)}")
    n = event_list.shape[1]
    if pol_mask.shape != (batch, n, 2):
        raise ValueError(f"pol_mask must be (B, N, 2) = {(batch, n, 2)}, got {tuple(pol_mask.shape)}")
    if event_valid is None:
        event_valid = torch.ones((batch, n), dtype=torch.bool, device=event_list.device)
    elif event_valid.shape != (batch, n) or event_valid.dtype != torch.bool:
        raise ValueError(f"event_valid must be bool (B, N) = {(batch, n)}, got {event_valid.dtype} {event_valid.shape}")
    if event_mask.shape != (batch, 1, height, width):
        raise ValueError(f"event_mask must be (B, 1, H, W) = {(batch, 1, height, width)}, got {event_mask.shape}")
    if pass_valid is None:
        pass_valid = torch.ones(batch, dtype=torch.bool, device=event_list.device)
    elif pass_valid.shape != (batch,) or pass_valid.dtype != torch.bool:
        raise ValueError(f"pass_valid must be bool (B,) = ({batch},), got {pass_valid.dtype} {tuple(pass_valid.shape)}")
    y, x = event_list[..., 1], event_list[..., 2]
    outside = event_valid & ((y < 0) | (y >= height) | (x < 0) | (x >= width))
    if bool(outside.any()):
        raise ValueError(f"event_list holds valid events outside the {height}x{width} image")
    return LossBuffer(
        flow=buffer.flow + (flows,),
        event_list=buffer.event_list + (event_list,),
        pol_mask=buffer.pol_mask + (pol_mask,),
        event_valid=buffer.event_valid + (event_valid,),
        event_mask=buffer.event_mask + (event_mask,),
        pass_valid=buffer.pass_valid + (pass_valid,),
    )


def loss_buffer_reset_lanes(buffer: LossBuffer, reset: Tensor) -> LossBuffer:
    """Drop the stored passes of the lanes in ``reset`` (``(B,)`` bool), e.g. lanes that start a new recording.

    Call it before appending the first pass of the new recording: that lane's loss then uses only its passes
    since the reset, with its own timestamp offsets ``0, 1, ...`` and its own ``T`` (the other lanes are
    unchanged).
    """
    keep = ~reset
    return buffer._replace(pass_valid=tuple(valid & keep for valid in buffer.pass_valid))


class StackedPasses(NamedTuple):
    """A :class:`LossBuffer` stacked over passes (``M = sum_k N_k`` events, ``T`` passes, ``S`` scales).

    ``t``, ``y``, ``x``: ``(B, M)`` float; ``t = offset + ts`` with ``offset`` the number of the lane's valid
    passes before the event's pass. ``pixel``: ``(B, M)`` int64 ``y * W + x`` (0 for absent events).
    ``pass_index``: ``(M,)`` int64. ``channel``: ``(B, M)`` int64 polarity channel (0 positive, 1 negative).
    ``present``: ``(B, M)`` bool, a valid event of a valid pass. ``n_passes``: ``(B,)`` float, valid passes per
    lane. ``flow``: ``(S, B, T, 2, H, W)``. ``event_mask``: ``(B, T, H, W)``, zero on invalid passes.
    ``pass_valid``: ``(B, T)`` bool.
    """

    t: Tensor
    y: Tensor
    x: Tensor
    pixel: Tensor
    pass_index: Tensor
    channel: Tensor
    present: Tensor
    n_passes: Tensor
    flow: Tensor
    event_mask: Tensor
    pass_valid: Tensor


def stack_passes(buffer: LossBuffer) -> StackedPasses:
    """Concatenate the passes of ``buffer`` once, for computations over the whole loss window."""
    if buffer.num_passes == 0:
        raise ValueError("the loss buffer is empty: append at least one pass first")
    events = torch.cat(buffer.event_list, dim=1)  # (B, M, 4)
    device, dtype = events.device, events.dtype
    sizes = torch.tensor([e.shape[1] for e in buffer.event_list], device=device)
    pass_index = torch.repeat_interleave(torch.arange(buffer.num_passes, device=device), sizes)  # (M,)
    pass_valid = torch.stack(buffer.pass_valid, dim=1)  # (B, T)
    runs = pass_valid[:, 0].long() + (pass_valid[:, 1:] & ~pass_valid[:, :-1]).sum(dim=1)  # (B,) runs of valid passes
    if bool((runs > 1).any()):
        raise ValueError(
            "a lane's valid passes must be consecutive: a lane without a window at a step may only get passes "
            "again after loss_buffer_reset_lanes (a new recording)"
        )
    offset = (torch.cumsum(pass_valid, dim=1) - 1).clamp(min=0).to(dtype)  # (B, T)
    channel, has_polarity = polarity_channel(torch.cat(buffer.pol_mask, dim=1))
    present = torch.cat(buffer.event_valid, dim=1) & has_polarity & pass_valid[:, pass_index]  # (B, M)
    y, x = events[..., 1], events[..., 2]
    width = buffer.flow[0][0].shape[-1]
    per_scale = [torch.stack(scales, dim=1) for scales in zip(*buffer.flow)]  # S x (B, T, 2, H, W)
    # torch.stack copies even a single tensor: with one scale (FireNet) a view does.
    flow = per_scale[0].unsqueeze(0) if len(per_scale) == 1 else torch.stack(per_scale)  # (S, B, T, 2, H, W)
    event_mask = torch.cat(buffer.event_mask, dim=1) * pass_valid[..., None, None]  # (B, T, H, W)
    return StackedPasses(
        t=events[..., 0] + offset[:, pass_index],
        y=y,
        x=x,
        pixel=torch.where(present, pixel_index(y, x, width), 0),
        pass_index=pass_index,
        channel=channel,
        present=present,
        n_passes=pass_valid.sum(dim=1).to(dtype),
        flow=flow,
        event_mask=event_mask,
        pass_valid=pass_valid,
    )


def timestamp_contrast(counts: Tensor, timestamp_sums: Tensor, t_norm: float | Tensor) -> Tensor:
    """Average-timestamp contrast of one warp: ``sum_{p, x} A_p(x)^2 / #{x : IWE_pos(x) + IWE_neg(x) > 0}``.

    Args:
        counts: ``(..., 2, H, W)`` per-polarity images of warped events (sum of splat weights).
        timestamp_sums: ``(..., 2, H, W)`` per-polarity sums of splat weight times timestamp.
        t_norm: the window length ``T`` in windows, broadcastable to ``(..., 2, H, W)``.

    Returns:
        ``(...)``; 0 where no event landed in the image (the reference divides 0 by 0 there).
    """
    average = average_timestamp_image(counts, timestamp_sums, t_norm)  # (..., 2, H, W)
    occupied = ((counts[..., 0, :, :] + counts[..., 1, :, :]) > 0).sum(dim=(-2, -1))  # (...)
    return (average**2).sum(dim=(-3, -2, -1)) / occupied.clamp(min=1)


# Neighbour pairs as the (pass, row, column) step from their first pixel to their second: horizontal, vertical,
# down-right, up-right and, last, the same pixel in the next pass. Differences are first minus second.
_SPATIAL_STEPS = ((0, 0, 1), (0, 1, 0), (0, 1, 1), (0, -1, 1))
_TEMPORAL_STEP = (1, 0, 0)


def _pair_indices(mask: Tensor, include_time: bool) -> tuple[Tensor, Tensor, Tensor, int]:
    """Flat indices into a ``(B, T, 2, H, W)`` flow of the x component of both pixels of every neighbour pair
    whose two pixels are in ``mask`` ``(B, T, H, W)``, the lane of each pair, and the number of directions.

    Starts from the (sparse) pixels in the mask and looks their neighbour up, rather than scanning the whole
    volume once per direction.
    """
    _, passes, height, width = mask.shape
    inside = mask > 0
    lane, t, row, col = torch.nonzero(inside, as_tuple=True)  # (K,) each: the masked pixels
    steps = _SPATIAL_STEPS + ((_TEMPORAL_STEP,) if include_time else ())
    step_t, step_row, step_col = (torch.tensor(c, device=mask.device).unsqueeze(1) for c in zip(*steps))  # (D, 1)
    # Candidate second pixels (D, K); steps never decrease the pass or the column.
    in_bounds = (t + step_t < passes) & (row + step_row >= 0) & (row + step_row < height) & (col + step_col < width)
    volume = ((lane * passes + t) * height + row) * width + col  # (K,) flat index into the mask
    neighbour = volume + (step_t * height + step_row) * width + step_col  # (D, K)
    paired = in_bounds & inside.view(-1)[torch.where(in_bounds, neighbour, volume)]
    chosen = torch.nonzero(paired.view(-1)).squeeze(1)  # (P,) into the flattened (D, K)
    first = (lane * passes + t) * (2 * height * width) + row * width + col  # (K,) x component in the flow
    second = first + (step_t * 2 * height + step_row) * width + step_col  # (D, K)
    count = len(steps)
    return first.repeat(count)[chosen], second.view(-1)[chosen], lane.repeat(count)[chosen], count


def flow_smoothness(
    flow: Tensor,
    mask: Tensor,
    n_passes: Tensor,
    include_time: bool = True,
    compat: str | None = None,
) -> Tensor:
    """Charbonnier smoothness of flow maps over neighbour pairs (horizontal, vertical, both diagonals and, with
    ``include_time``, consecutive passes), counting only pairs whose two pixels are both in ``mask``.

    Default: ``S = sum_pairs (rho(du) + rho(dv)) / #pairs`` with ``rho(d) = sqrt(d^2 + 1e-6)``.
    ``compat="hagenaars2021"``: ``S = sum_pairs rho(du + dv) / D / T`` (``D`` = 5 directions, 4 without time;
    ``T`` = ``n_passes``), the reference's penalty of the summed component differences, not normalised by the
    number of pairs.

    Only the pairs inside the mask are gathered (event masks are sparse), so the cost follows the number of
    pairs rather than ``B * T * H * W``.

    Args:
        flow: ``(S, B, T, 2, H, W)`` flow maps in tanh units.
        mask: ``(B, T, H, W)`` 1 where a pixel counts, else 0 (event masks; 0 on dropped passes).
        n_passes: ``(B,)`` float ``T`` per lane (compat normalisation).
        include_time: add the pairs of the same pixel in consecutive passes.
        compat: ``None`` or ``"hagenaars2021"``.

    Returns:
        ``(S, B)`` smoothness per scale and lane; 0 for a lane without any pair.
    """
    check_compat(compat)
    scales, batch, _, _, height, width = flow.shape
    first, second, lane, directions = _pair_indices(mask, include_time)  # (P,) each
    component = torch.tensor([0, height * width], device=flow.device)  # x, y
    flat = flow.reshape(scales, -1)  # (S, B * T * 2 * H * W)
    diff = flat[:, first[:, None] + component] - flat[:, second[:, None] + component]  # (S, P, 2) du, dv
    if compat == HAGENAARS2021:
        penalty = torch.sqrt((diff[..., 0] + diff[..., 1]) ** 2 + CHARBONNIER_EPS)  # (S, P)
    else:
        penalty = torch.sqrt(diff**2 + CHARBONNIER_EPS).sum(dim=-1)  # (S, P)
    # Sequential float32 accumulation of ~1e4 small terms would cost ~1e-5 relative; sum in float64 instead.
    total = torch.zeros(scales, batch, dtype=torch.float64, device=flow.device)
    total = total.index_add_(1, lane, penalty.to(torch.float64)).to(flow.dtype)  # (S, B)
    if compat == HAGENAARS2021:
        return total / directions / n_passes
    return total / torch.bincount(lane, minlength=batch).clamp(min=1)


class WarpingTerms(NamedTuple):
    """Terms of :func:`event_warping_loss` per flow scale and lane: ``forward``, ``backward`` and ``smoothness``
    are ``(S, B)``; ``lane_valid`` is ``(B,)`` bool (the lane has at least one valid pass)."""

    forward: Tensor
    backward: Tensor
    smoothness: Tensor
    lane_valid: Tensor


def event_warping_terms(
    buffer: LossBuffer,
    flow_scaling: float = 128.0,
    compat: str | None = None,
    mask_smoothness: bool = True,
    overwrite_intermediate: bool = False,
) -> WarpingTerms:
    """Forward and backward contrast terms and smoothness of a loss window (see the module docstring).

    All passes, scales, directions and polarities are splatted with a single ``index_add_``.

    Args:
        buffer: the loss window's passes.
        flow_scaling: pixels per window per unit of flow (128 in the reference's training).
        compat: ``None`` or ``"hagenaars2021"`` (see the module docstring).
        mask_smoothness: count only neighbour pairs where both pixels have events (reference ``mask_output``).
        overwrite_intermediate: warp every event with the last pass's flow and penalise only its spatial
            smoothness under the union of the event masks (reference ``overwrite_intermediate``).
    """
    check_compat(compat)
    stacked = stack_passes(buffer)
    flow = stacked.flow  # (S, B, T, 2, H, W)
    resolution = (flow.shape[-2], flow.shape[-1])
    n = stacked.n_passes.clamp(min=1)  # (B,) lanes without a valid pass have no events either
    if mask_smoothness:
        mask = stacked.event_mask  # (B, T, H, W)
    else:
        mask = stacked.pass_valid[..., None, None].to(flow.dtype).expand(stacked.event_mask.shape)
    pass_index = stacked.pass_index
    smooth_flow, smooth_norm = flow, n
    if overwrite_intermediate:
        pass_index = torch.full_like(pass_index, buffer.num_passes - 1)
        mask = mask.amax(dim=1, keepdim=True)  # (B, 1, H, W) union over the passes
        smooth_flow, smooth_norm = flow[:, :, -1:], torch.ones_like(n)
    event_flow = torch.stack([lookup_event_flow(f, stacked.pixel, pass_index) for f in flow])  # (S, B, M, 2)
    t = stacked.t  # (B, M)
    # Direction axis first: forward to t_ref = T, backward to t_ref = 0.
    t_ref = torch.stack((n, torch.zeros_like(n))).view(2, 1, -1, 1)  # (2, 1, B, 1)
    y, x = warp_events(stacked.y, stacked.x, t, event_flow, t_ref, flow_scaling)  # (2, S, B, M)
    splat = splat_bilinear(y, x, resolution, compat=compat)  # (4, 2, S, B, M)
    splat = splat._replace(weight=splat.weight * stacked.present)
    ones = torch.ones_like(t)
    # Timestamps averaged per pixel: t forward, T - t backward (the same float ops as the reference).
    values = torch.stack((ones, ones, t, n[:, None] - t)).view(2, 2, 1, *t.shape)  # (Q=2, D=2, 1, B, M)
    images = accumulate(splat, resolution, values, stacked.channel, num_channels=2)  # (2, S, B, 2, 2, H, W)
    contrast = timestamp_contrast(images[:, :, :, 0], images[:, :, :, 1], n.view(1, 1, -1, 1, 1, 1))  # (2, S, B)

    smoothness = flow_smoothness(
        smooth_flow, mask, smooth_norm, include_time=not overwrite_intermediate, compat=compat
    )  # (S, B)
    return WarpingTerms(contrast[0], contrast[1], smoothness, stacked.n_passes > 0)


def event_warping_loss(
    buffer: LossBuffer,
    flow_scaling: float = 128.0,
    smoothness_weight: float = 0.001,
    compat: str | None = None,
    mask_smoothness: bool = True,
    overwrite_intermediate: bool = False,
) -> Tensor:
    """The training loss ``mean_scales(L_fw + L_bw + smoothness_weight * S)``, reduced over the batch.

    Default: mean over lanes with at least one valid pass (0, still attached to the graph, if none has one).
    ``compat="hagenaars2021"``: sum over the batch, as the reference. Arguments as :func:`event_warping_terms`.

    Returns:
        scalar tensor.
    """
    terms = event_warping_terms(
        buffer,
        flow_scaling=flow_scaling,
        compat=compat,
        mask_smoothness=mask_smoothness,
        overwrite_intermediate=overwrite_intermediate,
    )
    per_lane = (terms.forward + terms.backward + smoothness_weight * terms.smoothness).mean(dim=0)  # (B,)
    if compat == HAGENAARS2021:
        return per_lane.sum()
    valid = terms.lane_valid.to(per_lane.dtype)
    return (per_lane * valid).sum() / valid.sum().clamp(min=1)
