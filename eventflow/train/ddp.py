"""Data-parallel training with ``torchrun`` and :class:`~torch.nn.parallel.DistributedDataParallel`.

Launch::

    torchrun --standalone --nproc_per_node 2 -m eventflow train --config train_snn

Each of the ``W`` processes (ranks) takes a disjoint, contiguous block of ``B / W`` lanes of the global batch of
``B`` lanes (:func:`lane_slice`): every rank reads the same batch (``B`` windows of 1000 events, cheap next to the
network) and keeps its lanes (:func:`shard_batch`). Communication backend: NCCL on CUDA, gloo on the CPU.

Loss scaling: DDP averages the gradients of the ranks. The default loss is the mean over the lanes with at least
one valid pass (``V`` lanes in the global batch, ``V_r`` on rank ``r``); rank ``r`` computes the mean over its own
lanes ``L_r`` and backpropagates ``L_r * W * V_r / V`` (:func:`reduce_loss`), so the average over ranks is the
gradient of the global mean. The reference's loss (``compat="hagenaars2021"``) sums over lanes: rank ``r``
backpropagates ``W * L_r`` and the average is the gradient of the global sum. The reported loss is the global
one on every rank.

Checkpoints hold the hidden state of the whole global batch (:func:`gather_lanes`), so a run can be resumed with
any number of ranks that divides the batch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor, nn

from eventflow.loss import LossBuffer
from eventflow.models.base import FlowModel
from eventflow.warping import HAGENAARS2021


class Distributed(NamedTuple):
    """This process's place in a data-parallel run: ``rank`` of ``world_size``, ``local_rank`` (GPU index on its
    node) and ``lanes``, its slice of the global batch. A single process is rank 0 of 1 with every lane."""

    rank: int
    world_size: int
    local_rank: int
    lanes: slice

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints, logs and progress bars (rank 0)."""
        return self.rank == 0


def lane_slice(batch_size: int, rank: int, world_size: int) -> slice:
    """The contiguous lanes of ``rank``: ``[rank * B / W, (rank + 1) * B / W)``.

    >>> lane_slice(8, 1, 2)
    slice(4, 8, None)
    """
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} is not divisible by the {world_size} data-parallel processes")
    per = batch_size // world_size
    return slice(rank * per, (rank + 1) * per)


def launched_world_size() -> int:
    """``WORLD_SIZE`` set by torchrun (1 when not launched by it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: torch.device, batch_size: int) -> Distributed:
    """Join the process group that torchrun described in the environment (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), with NCCL on CUDA and gloo on the CPU; without torchrun,
    a single process."""
    world = launched_world_size()
    if world == 1:
        return Distributed(0, 1, 0, slice(0, batch_size))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    lanes = lane_slice(batch_size, rank, world)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(rank, world, local_rank, lanes)


def shard_batch(batch: Mapping[str, Tensor], lanes: slice) -> dict[str, Tensor]:
    """This rank's lanes of a batch dict (every tensor has the lane axis first)."""
    return {k: v[lanes] for k, v in batch.items()}


class _ForwardAll(nn.Module):
    """``forward = model.forward_all``, so that DistributedDataParallel sees (and prepares its gradient
    reduction for) every forward pass the training step makes."""

    def __init__(self, model: FlowModel):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, state: tuple | None, record_activity: bool = False):
        return self.model.forward_all(x, state, record_activity=record_activity)


def forward_fn(model: FlowModel, ctx: Distributed, device: torch.device):
    """The callable ``(x, state, record_activity) -> (FlowOutput, state)`` the training step runs: the model's
    ``forward_all``, or through DistributedDataParallel in a data-parallel run."""
    if ctx.world_size == 1:
        return model.forward_all
    ids = [device.index if device.index is not None else ctx.local_rank] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(_ForwardAll(model), device_ids=ids)


def reduce_loss(loss: Tensor, buffer: LossBuffer, compat: str | None, ctx: Distributed) -> tuple[Tensor, Tensor]:
    """``(loss to backpropagate, global loss)`` on this rank (see the module docstring); one all-reduce."""
    if ctx.world_size == 1:
        return loss, loss.detach()
    if compat == HAGENAARS2021:
        total = loss.detach().clone()
        dist.all_reduce(total)
        return loss * ctx.world_size, total
    valid = torch.stack(buffer.pass_valid).any(dim=0).sum().to(loss.dtype)  # lanes with a valid pass
    sums = torch.stack([loss.detach() * valid, valid])
    dist.all_reduce(sums)
    total_valid = sums[1].clamp(min=1)
    return loss * (ctx.world_size * valid / total_valid), sums[0] / total_valid


def gather_lanes(tensors: list[Tensor], ctx: Distributed) -> list[Tensor]:
    """Per-rank ``(B / W, ...)`` tensors concatenated over the ranks in lane order, ``(B, ...)`` (collective:
    every rank must call it)."""
    if ctx.world_size == 1:
        return list(tensors)
    out = []
    for t in tensors:
        parts = [torch.empty_like(t) for _ in range(ctx.world_size)]
        dist.all_gather(parts, t.contiguous())
        out.append(torch.cat(parts))
    return out

