"""One training step as functions with explicit state: a forward pass into the loss window, and the optimisation
step at the end of the window (truncated backpropagation through time, Hagenaars et al., NeurIPS 2021, Sec. 4).

A loss window is ``T`` forward passes (``T = window_loss / window`` = 10 in the paper). Every pass
(:func:`forward_pass`) first resets the lanes that start a new recording (their network state and their passes
in the loss buffer), then runs the model with the state carried from the previous pass and appends the flow
and the events to the :class:`~eventflow.loss.LossBuffer`. After ``T`` passes :func:`optimisation_step` computes
the loss, backpropagates through the ``T`` passes, clips the global gradient norm, steps the optimiser and
zeroes the gradients; the caller then detaches the state (it is NOT reset: the network keeps its memory across
windows, the gradient does not) and starts an empty buffer::

    state, buffer = None, empty_loss_buffer()
    for batch in batches:
        state, buffer, _ = forward_pass(model, state, buffer, batch)
        if buffer.num_passes == passes_per_loss:
            stats = optimisation_step(window_loss(buffer, ...), ...)
            state, buffer = model.detach_state(state), empty_loss_buffer()

Batches are the dicts of :mod:`eventflow.datasets` (``B`` lanes; keys ``event_cnt`` or ``event_voxel``,
``event_list``, ``pol_mask``, ``event_valid``, ``event_mask``, ``reset``, ``active``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

import torch
from torch import Tensor

from eventflow.loss import (
    LossBuffer,
    empty_loss_buffer,
    event_warping_loss,
    loss_buffer_append,
    loss_buffer_reset_lanes,
)
from eventflow.models.base import FlowModel, FlowOutput
from eventflow.warping import HAGENAARS2021

#: Model ``encoding`` -> the batch key of its input.
INPUT_KEYS = {"cnt": "event_cnt", "voxel": "event_voxel"}
#: Batch keys the training step reads besides the input.
STEP_KEYS = ("event_list", "pol_mask", "event_valid", "event_mask", "reset", "active")


class NonFiniteError(RuntimeError):
    """The loss or a gradient is NaN or infinite; ``what`` says which (one line)."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class StepStats(NamedTuple):
    """Result of :func:`optimisation_step`: the loss value and the global L2 norm of the gradients before
    clipping."""

    loss: float
    grad_norm: float


def batch_to_device(batch: Mapping[str, Tensor], encoding: str, device: torch.device | str,
                    channels_last: bool = False) -> dict[str, Tensor]:
    """The tensors a training step needs, on ``device`` (``reset`` stays on the CPU: it steers Python control
    flow, so reading it must not synchronise a GPU). ``channels_last`` puts the input in NHWC memory format."""
    device = torch.device(device)
    non_blocking = device.type == "cuda"
    key = INPUT_KEYS[encoding]
    out = {k: batch[k].to(device, non_blocking=non_blocking) for k in (key, *STEP_KEYS) if k != "reset"}
    out["reset"] = batch["reset"].cpu()
    if channels_last:
        out[key] = out[key].contiguous(memory_format=torch.channels_last)
    return out


def forward_pass(model: FlowModel, state: tuple | None, buffer: LossBuffer, batch: Mapping[str, Tensor], *,
                 compat: str | None = None, record_activity: bool = False, forward: Callable | None = None
                 ) -> tuple[tuple, LossBuffer, FlowOutput]:
    """One forward pass of the loss window.

    Args:
        model: the flow model (``model.config.encoding`` picks the input key).
        state: the model state from the previous pass (None: zeros).
        buffer: the loss window so far.
        batch: a batch dict (:mod:`eventflow.datasets`), tensors on the model's device except ``reset``.
        compat: ``None``: lane ``b`` with ``reset[b]`` gets a zero state and its passes are dropped from the
            buffer, the other lanes carry on. ``"hagenaars2021"``: as the reference, when any lane starts a
            recording, every lane's state is zeroed and the loss window restarts empty.
        record_activity: also return the per-layer activity (spike rates) of this pass.
        forward: what runs the model, ``(x, state, record_activity) -> (FlowOutput, state)``; default
            ``model.forward_all`` (:func:`eventflow.train.ddp.forward_fn` wraps it for data-parallel runs).

    Returns:
        ``(state, buffer, output)`` with the new state, the buffer with this pass appended and the model's
        :class:`~eventflow.models.base.FlowOutput` (flows ``(B, 2, H, W)``).
    """
    reset = batch["reset"]
    if bool(reset.any()):
        if compat == HAGENAARS2021:
            reset = torch.ones_like(reset)
            buffer = empty_loss_buffer()
        else:
            buffer = loss_buffer_reset_lanes(buffer, reset.to(batch["active"].device))
        if state is not None:
            state = model.reset_state(state, reset.to(batch["active"].device))
    x = batch[INPUT_KEYS[model.config.encoding]]
    output, state = (forward or model.forward_all)(x, state, record_activity=record_activity)
    buffer = loss_buffer_append(buffer, output.flow_scales, batch["event_list"], batch["pol_mask"],
                                batch["event_valid"], batch["event_mask"], pass_valid=batch["active"])
    return state, buffer, output


def window_loss(buffer: LossBuffer, *, flow_scaling: float, flow_regul_weight: float, compat: str | None,
                mask_output: bool = True, overwrite_intermediate: bool = False) -> Tensor:
    """The loss of a full window (:func:`eventflow.loss.event_warping_loss`; ``mask_output`` masks the
    smoothness with the event masks, as the reference's ``model.mask_output``)."""
    return event_warping_loss(buffer, flow_scaling=flow_scaling, smoothness_weight=flow_regul_weight,
                              compat=compat, mask_smoothness=mask_output,
                              overwrite_intermediate=overwrite_intermediate)


def optimisation_step(loss: Tensor, params: Iterable[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
                      clip_grad: float | None, loss_value: Tensor | None = None) -> StepStats:
    """Backward, clip, step, zero the gradients.

    Args:
        loss: scalar to backpropagate.
        params: the trained parameters (for clipping and the gradient norm).
        optimizer: steps over ``params``.
        clip_grad: max global L2 norm (None: no clipping; the norm is still measured).
        loss_value: the loss to report when it differs from ``loss`` (data-parallel scaling); default ``loss``.

    Returns:
        :class:`StepStats` (loss value, gradient norm before clipping).

    Raises:
        NonFiniteError: the loss or the gradient norm is NaN or infinite; the parameters and the optimiser
            state are then left as they were (nothing is stepped).
    """
    params = [p for p in params if p.requires_grad]
    value = float((loss if loss_value is None else loss_value).detach())
    if not math.isfinite(value):
        raise NonFiniteError(f"the loss is {value}")
    loss.backward()
    grads = [p.grad for p in params if p.grad is not None]
    if clip_grad is not None:
        norm = torch.nn.utils.clip_grad_norm_(params, clip_grad)
    else:
        norm = torch.nn.utils.get_total_norm(grads)
    norm_value = float(norm)
    if not math.isfinite(norm_value):
        optimizer.zero_grad(set_to_none=True)
        raise NonFiniteError(f"the gradient norm is {norm_value}")
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return StepStats(value, norm_value)
