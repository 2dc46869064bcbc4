"""Quantisation-aware training: fine-tune a quantised model through its fake quantisers.

The quantised twins (:mod:`eventflow.quantize.layers`) round in the forward pass and pass gradients straight
through the rounding (Bengio et al. 2013; Jacob et al., CVPR 2018), zero where a value saturates; spikes use the
model's surrogate gradient. So the float parameters (weights, leaks ``a``, thresholds) learn to work on the
integer grids. The formats stay as calibrated (:func:`~eventflow.quantize.model.ptq` first); the per-channel
weight scales follow the weights at every step.

:func:`finetune` is the paper's training loop (:mod:`eventflow.train.step`: truncated BPTT over loss windows,
the self-supervised contrast loss, gradient clipping) run on the quantised model for a number of optimisation
steps, with the data and loss settings of a training config (by default the one the float model was trained
with, :func:`eventflow.train.profile_config`) and a smaller learning rate.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from eventflow.loss import empty_loss_buffer
from eventflow.models.base import FlowModel
from eventflow.quantize.calibrate import Calibration
from eventflow.quantize.config import QuantConfig
from eventflow.quantize.model import is_quantized, ptq
from eventflow.train.config import TrainConfig, load_train_config
from eventflow.train.loop import build_dataset, training_files
from eventflow.train.optim import build_optimizer
from eventflow.train.step import batch_to_device, forward_pass, optimisation_step, window_loss

#: Fine-tuning learning rate relative to the training config's.
LR_FACTOR = 0.1


class FinetuneResult(NamedTuple):
    """Losses of the optimisation steps of :func:`finetune` (``losses[0]`` the first window) and the learning
    rate used."""

    losses: list[float]
    lr: float


def finetune(qmodel: FlowModel, train_config: TrainConfig | str, steps: int, lr: float | None = None,
             progress: bool = False) -> FinetuneResult:
    """Fine-tune quantised ``qmodel`` in place for ``steps`` optimisation steps (loss windows of
    ``train_config.passes_per_loss`` forward passes) on the training data of ``train_config`` (a
    :class:`~eventflow.train.TrainConfig` or a shipped name such as ``"quick_snn"``); learning rate ``lr``
    (default :data:`LR_FACTOR` times the config's). Epochs repeat as needed. The model is left in eval mode."""
    if not is_quantized(qmodel):
        raise ValueError(f"{qmodel.config.name} is not quantised; quantise it first (eventflow.quantize.ptq)")
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    config = load_train_config(train_config)
    if config.model.encoding != qmodel.config.encoding:
        raise ValueError(f"the training config feeds {config.model.encoding!r} inputs but {qmodel.config.name} "
                         f"reads {qmodel.config.encoding!r}")
    device = next(qmodel.parameters()).device
    dataset = build_dataset(config, training_files(config))
    lr = config.optimizer.lr * LR_FACTOR if lr is None else lr
    optimizer = build_optimizer(config.optimizer.name, qmodel.parameters(), lr)
    loss_kwargs = dict(flow_scaling=config.flow_scaling, flow_regul_weight=config.loss.flow_regul_weight,
                       compat=config.loss.compat, mask_output=config.model.mask_output,
                       overwrite_intermediate=config.loss.overwrite_intermediate)
    losses: list[float] = []
    qmodel.train()
    bar = tqdm(total=steps, desc="QAT", disable=not progress)
    epoch = 0
    try:
        while len(losses) < steps:
            dataset.set_epoch(epoch)
            state, buffer = None, empty_loss_buffer()
            for i in range(len(dataset)):
                batch = batch_to_device(dataset[i], config.model.encoding, device)
                state, buffer, _ = forward_pass(qmodel, state, buffer, batch, compat=config.loss.compat)
                if buffer.num_passes < config.passes_per_loss:
                    continue
                stats = optimisation_step(window_loss(buffer, **loss_kwargs), qmodel.parameters(), optimizer,
                                          config.loss.clip_grad)
                losses.append(stats.loss)
                bar.update(1)
                bar.set_postfix(loss=f"{stats.loss:.4f}")
                state, buffer = qmodel.detach_state(state), empty_loss_buffer()
                if len(losses) == steps:
                    break
            epoch += 1
            if epoch > 1000 * steps:
                raise ValueError("the training data yields no complete loss window")
    finally:
        bar.close()
        qmodel.eval()
    if not all(math.isfinite(v) for v in losses):
        raise ValueError("QAT fine-tuning produced a non-finite loss")
    return FinetuneResult(losses, lr)


def qat(model: FlowModel, calibration: Calibration, config: QuantConfig, train_config: TrainConfig | str,
        steps: int, lr: float | None = None, progress: bool = False) -> tuple[FlowModel, FinetuneResult]:
    """Quantisation-aware training: :func:`~eventflow.quantize.model.ptq` of float ``model`` with
    ``calibration`` and ``config``, then :func:`finetune` for ``steps``. ``model`` is left unchanged; returns the
    fine-tuned quantised copy and its losses."""
    qmodel = ptq(model, calibration, config)
    with torch.enable_grad():
        result = finetune(qmodel, train_config, steps, lr, progress)
    return qmodel, result
