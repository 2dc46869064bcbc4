"""The training loop of Hagenaars, Paredes-Vallés & de Croon (NeurIPS 2021): self-supervised, truncated BPTT
over loss windows of 10 passes of 1000 events, with per-lane resets, checkpoints for exact resumption, a NaN
guard and optional data parallelism.

>>> from eventflow.train import train                                   # doctest: +SKIP
>>> result = train("quick_snn")                                         # doctest: +SKIP
>>> result.checkpoint, result.final["loss_last"]                        # doctest: +SKIP

Per epoch, :class:`eventflow.datasets.SequenceDataset` plans ``B`` lanes over the (shuffled) recordings; every
batch is one forward pass (:func:`eventflow.train.step.forward_pass`), every ``T`` batches one optimisation
step (:func:`eventflow.train.step.optimisation_step`). A loss window cut short by the end of an epoch is dropped
(the next epoch starts every lane on a new recording). Checkpoints (:mod:`eventflow.train.checkpointing`) are
written every ``run.checkpoint_every`` steps, at every epoch end and at the end; ``train(..., resume=True)``
continues from the last one and reproduces the uninterrupted run's losses exactly (same device and threads).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from eventflow.atomic import atomic_path
from eventflow.config import to_dict
from eventflow.datasets import SequenceDataset
from eventflow.loss import empty_loss_buffer
from eventflow.metrics import ratio_squared_average_timestamps
from eventflow.models import build_model, load_model, save_checkpoint
from eventflow.models.base import FlowModel
from eventflow.train.backend import apply_lif_backend
from eventflow.train.checkpointing import (
    BEST_FILE,
    MODEL_FILE,
    TRAIN_STATE,
    Position,
    load_train_state,
    restore_rng,
    save_train_state,
)
from eventflow.train.config import TrainConfig, config_hash, dump_config, load_train_config, resume_key
from eventflow.train.ddp import Distributed, forward_fn, gather_lanes, init_distributed, reduce_loss, shard_batch
from eventflow.train.metrics_log import MetricsLog
from eventflow.train.optim import build_optimizer
from eventflow.train.step import NonFiniteError, batch_to_device, forward_pass, optimisation_step, window_loss
from eventflow.windows import WindowSpec

CONFIG_FILE = "config.yaml"
# Losses averaged for the "first" and "last" figures of TrainResult.final: this many windows, at most a tenth.
SUMMARY_WINDOWS = 10


class TrainingDivergedError(RuntimeError):
    """The loss or a gradient became NaN or infinite; training stopped without writing a checkpoint."""


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced.

    - ``checkpoint``: the final weights (``model.pt`` with ``model.json``; load with
      :func:`eventflow.models.load_checkpoint`); ``best_checkpoint``: the weights at the end of the epoch with
      the lowest mean loss (None before a full epoch).
    - ``metrics``: the JSON-lines log (``metrics.csv`` beside it); ``out_dir``: the run folder.
    - ``final``: ``step``, ``epoch``, ``loss`` (last window), ``loss_first`` / ``loss_last`` (mean of the first
      and last windows of the run, up to 10 each), ``rsat_first`` / ``rsat_last`` (the same for the RSAT of the
      training windows, see :mod:`eventflow.train.metrics_log`), ``grad_norm``, ``seconds`` (this call's wall
      time).
    """

    checkpoint: Path
    best_checkpoint: Path | None
    metrics: Path
    out_dir: Path
    final: dict[str, float]


def resolve_device(setting: str, local_rank: int = 0) -> torch.device:
    """``"auto"``: CUDA (the process's local GPU under torchrun) when available, else CPU; otherwise the named
    device (an error if CUDA is asked for but absent)."""
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {setting!r} asked for but CUDA is not available (use device: auto or cpu)")
        if setting == "cuda":
            setting = f"cuda:{local_rank}"
    return torch.device(setting)


def training_files(config: TrainConfig, progress: bool = False) -> list[Path]:
    """The recordings of ``config.data.path`` (folders searched for ``*.h5``, sorted), or the embedded simulated
    training split of ``config.data.sim_profile`` (generated on first use)."""
    if config.data.path is None:
        from eventflow.simulate import ensure_default_dataset  # imported on use: the simulator is heavy

        return list(ensure_default_dataset(config.data.sim_profile, progress=progress).train)
    entries = [config.data.path] if isinstance(config.data.path, str) else list(config.data.path)
    files: list[Path] = []
    for entry in entries:
        path = Path(entry)
        if path.is_dir():
            found = sorted(path.rglob("*.h5"))
            if not found:
                raise FileNotFoundError(f"{path}: no .h5 recordings in this folder (data.path)")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder (data.path)")
    return files


def build_dataset(config: TrainConfig, files: Sequence[Path]) -> SequenceDataset:
    """The training :class:`~eventflow.datasets.SequenceDataset` of ``config`` over ``files`` (global batch)."""
    model = config.model
    return SequenceDataset(
        files,
        WindowSpec(config.data.mode, config.data.window),
        batch_size=config.loader.batch_size,
        seed=config.loader.seed,
        augment=config.loader.augment,
        encodings=(model.encoding, "mask", "list"),
        num_bins=model.num_bins if model.encoding == "voxel" else None,
        round_ts=model.round_encoding,
        shuffle=config.loader.shuffle,
        compat=config.loss.compat,
        resolution=tuple(config.loader.resolution),
    )


def prepare_model(config: TrainConfig, device: torch.device) -> FlowModel:
    """The model of ``config`` initialised from ``loader.seed`` (as the reference seeds torch before building
    it) or loaded from ``config.init_weights``, on ``device``, with the run's LIF backend and memory format.

    Raises:
        ValueError (one line, naming the file): ``init_weights`` holds another architecture.
    """
    torch.manual_seed(config.loader.seed)
    model = build_model(config.model)
    if config.init_weights is not None:
        source = load_model(config.model.name, config.init_weights)
        try:
            model.load_state_dict(source.state_dict())
        except RuntimeError as err:
            lines = str(err).splitlines()
            first = lines[1].strip() if len(lines) > 1 else lines[0]
            raise ValueError(f"{config.init_weights}: init_weights do not fit the configured "
                             f"{config.model.name} ({first})") from None
    model = model.to(device)
    apply_lif_backend(model, config.run.lif_backend)
    if config.run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    return model


def _spike_rates(model: FlowModel, activity: dict | None) -> dict[str, float]:
    if activity is None:
        return {}
    return {f"spike_rate/{layer.name}": activity[layer.name].fraction for layer in model.spiking_layers()}


#: A spiking layer whose fraction of spiking neurons falls below this is reported as silent.
SILENT_RATE = 1e-4


class SilentLayerWarning(UserWarning):
    """A spiking layer stopped firing during training (see :func:`silent_layers`)."""


def silent_layers(rates: dict[str, float], threshold: float = SILENT_RATE) -> list[str]:
    """Layers of a logged spike-rate record (``{"spike_rate/<layer>": fraction}``) below ``threshold``, in order.

    A silent layer passes nothing to the layers after it: the flow stops depending on the input and the
    surrogate gradients behind it shrink, so training rarely wakes it again (at lr 1e-3 LIF-FireNet's deepest
    layers fade to about this rate or below within ~100 steps of the quick profile; benchmarks/RESULTS.md).

    >>> silent_layers({"spike_rate/G1": 0.12, "spike_rate/R2a": 2e-5, "spike_rate/R2b": 0.0})
    ['R2a', 'R2b']
    """
    return [key.split("/", 1)[1] for key, rate in rates.items() if rate < threshold]


def _report_silent(step: int, rates: dict[str, float], reported: set[str]) -> None:
    """Warn once per layer (per run or resumption) when it falls silent; ``reported`` is updated in place."""
    new = [name for name in silent_layers(rates) if name not in reported]
    if new:
        reported.update(new)
        warnings.warn(f"step {step}: spiking layer(s) {', '.join(new)} silent (spike rate < {SILENT_RATE:g}): the "
                      "flow no longer depends on the input through them (silent from the start: check "
                      "model.spiking_neuron leak and thresh; later in training: lower optimizer.lr)",
                      SilentLayerWarning, stacklevel=3)


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan


class _Checkpointer:
    """Writes the run folder's checkpoints (rank 0) from the state of every rank."""

    def __init__(self, out: Path, config: TrainConfig, model: FlowModel, optimizer: torch.optim.Optimizer,
                 ctx: Distributed):
        self.out, self.config, self.model, self.optimizer, self.ctx = out, config, model, optimizer, ctx
        self.hash = config_hash(config)
        self.last_step: int | None = None

    def _metadata(self, position: Position, finished: bool, loss: float | None) -> dict[str, Any]:
        return {"step": position.step, "epoch": position.epoch, "batch": position.batch, "loss": loss,
                "finished": finished, "config_hash": self.hash, "experiment": self.config.experiment,
                "train_config": to_dict(self.config)}

    def save(self, position: Position, state: tuple | None, stats: dict[str, Any], loss: float | None,
             finished: bool = False) -> None:
        hidden = None if state is None else gather_lanes(self.model.flatten_state(state), self.ctx)
        if not self.ctx.is_main:
            return
        save_checkpoint(self.out / MODEL_FILE, self.model, extra=self._metadata(position, finished, loss))
        save_train_state(self.out / TRAIN_STATE, model_state=self.model.state_dict(),
                         optimizer_state=self.optimizer.state_dict(), position=position, hidden=hidden,
                         resume_key=resume_key(self.config), stats=stats)
        self.last_step = position.step

    def save_best(self, position: Position, loss: float) -> None:
        if self.ctx.is_main:
            save_checkpoint(self.out / BEST_FILE, self.model, extra=self._metadata(position, False, loss))

    def describe_last(self) -> str:
        if self.last_step is None:
            return "no checkpoint was written by this run"
        return f"the last good checkpoint is {self.out / TRAIN_STATE} (step {self.last_step})"


def train(config: TrainConfig | str | Path | dict, *, progress: bool = True, resume: bool = False,
          out_dir: str | Path | None = None) -> TrainResult:
    """Train a flow model self-supervised, as the paper (see the module docstring).

    Args:
        config: a :class:`~eventflow.train.config.TrainConfig`, a YAML file, a shipped config name
            (``"quick_snn"``, ``"train_snn"``, ...) or a dict.
        progress: show a progress bar with the loss.
        resume: continue the run in ``out_dir`` from its last checkpoint (the config must match, except the
            schedule length and the execution settings).
        out_dir: the run folder (default ``config.run.out_dir``, else ``runs/<experiment>``).

    Returns:
        :class:`TrainResult`.

    Raises:
        TrainingDivergedError: the loss or a gradient became non-finite (the last checkpoint is kept).
        ValueError, FileNotFoundError: bad config, data, or an existing run in ``out_dir`` without ``resume``.
    """
    config = load_train_config(config)
    out = Path(out_dir or config.run.out_dir or Path("runs") / config.experiment)
    device = resolve_device(config.run.device, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)  # before NCCL starts: each rank on its own GPU
    ctx = init_distributed(device, config.loader.batch_size)
    state_path = out / TRAIN_STATE
    if resume and not state_path.is_file():
        raise FileNotFoundError(f"{state_path}: nothing to resume (no training state in {out})")
    if not resume and state_path.exists():
        raise ValueError(f"{out}: already holds a run ({TRAIN_STATE}); resume it (--resume) or choose another "
                         f"output folder")

    model = prepare_model(config, device)
    optimizer = build_optimizer(config.optimizer.name, model.parameters(), config.optimizer.lr)
    position, hidden = Position(), None
    stats: dict[str, Any] = {"epoch_loss_sum": 0.0, "epoch_windows": 0, "best_loss": None, "first_losses": [],
                             "recent_losses": [], "first_rsat": [], "recent_rsat": [], "last_loss": None,
                             "last_grad_norm": None, "elapsed": 0.0}
    if resume:
        saved = load_train_state(state_path)
        if saved["resume_key"] != resume_key(config):
            raise ValueError(f"{state_path}: was written by a different config (only the schedule length and "
                             f"execution settings may change on resumption)")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        position, stats = saved["position"], saved["stats"]
        if saved["hidden"] is not None:
            hidden = [t[ctx.lanes].to(device) for t in saved["hidden"]]
        restore_rng(saved["rng"])

    files = training_files(config, progress=progress and ctx.is_main)
    dataset = build_dataset(config, files)
    forward = forward_fn(model, ctx, device)
    passes = config.passes_per_loss
    loss_kwargs = dict(flow_scaling=config.flow_scaling, flow_regul_weight=config.loss.flow_regul_weight,
                       compat=config.loss.compat, mask_output=config.model.mask_output,
                       overwrite_intermediate=config.loss.overwrite_intermediate)
    checkpointer = _Checkpointer(out, config, model, optimizer, ctx)
    if resume:
        checkpointer.last_step = position.step
    log = None
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / CONFIG_FILE) as tmp:
            tmp.write_text(dump_config(config))
        rate_fields = [f"spike_rate/{layer.name}" for layer in model.spiking_layers()]
        log = MetricsLog(out, rate_fields, resume_step=position.step if resume else None,
                         tensorboard=config.run.tensorboard)

    max_steps = config.run.max_steps
    windows_per_epoch = len(dataset) // passes
    total = config.loader.n_epochs * windows_per_epoch
    total = min(total, max_steps) if max_steps is not None else total
    bar = tqdm(total=total, initial=min(position.step, total), desc=config.experiment, unit="step",
               disable=not (progress and ctx.is_main), dynamic_ncols=True)
    started = time.perf_counter()
    elapsed0 = stats["elapsed"]
    resume_at, step = position, position.step
    done = max_steps is not None and step >= max_steps
    last_time = time.perf_counter()
    silent: set[str] = set()
    try:
        for epoch in range(resume_at.epoch, config.loader.n_epochs):
            if done:
                break
            dataset.set_epoch(epoch)
            start = resume_at.batch if epoch == resume_at.epoch else 0
            state = None
            if epoch == resume_at.epoch and hidden is not None:
                state = model.unflatten_state(hidden)
            buffer = empty_loss_buffer()
            loader = torch.utils.data.DataLoader(dataset, batch_size=None, sampler=range(start, len(dataset)),
                                                 num_workers=config.loader.num_workers,
                                                 pin_memory=device.type == "cuda")
            for index, raw in enumerate(loader, start):
                batch = batch_to_device(shard_batch(raw, ctx.lanes), config.model.encoding, device,
                                        config.run.channels_last)
                record = (step + 1) % config.run.log_every == 0 and buffer.num_passes == passes - 1
                state, buffer, output = forward_pass(model, state, buffer, batch, compat=config.loss.compat,
                                                     record_activity=record, forward=forward)
                if buffer.num_passes < passes:
                    continue
                with torch.no_grad():
                    rsat = float(ratio_squared_average_timestamps(buffer, config.flow_scaling).nanmean())
                loss, value = reduce_loss(window_loss(buffer, **loss_kwargs), buffer, config.loss.compat, ctx)
                try:
                    step_stats = optimisation_step(loss, model.parameters(), optimizer, config.loss.clip_grad,
                                                   loss_value=value)
                except NonFiniteError as err:
                    raise TrainingDivergedError(
                        f"training stopped at step {step + 1} (epoch {epoch}, batch {index + 1}): {err.what}; "
                        f"{checkpointer.describe_last()}") from None
                state, buffer = model.detach_state(state), empty_loss_buffer()
                step += 1
                now = time.perf_counter()
                stats["epoch_loss_sum"] += step_stats.loss
                stats["epoch_windows"] += 1
                if len(stats["first_losses"]) < SUMMARY_WINDOWS:
                    stats["first_losses"].append(step_stats.loss)
                    stats["first_rsat"].append(rsat)
                stats["recent_losses"] = (stats["recent_losses"] + [step_stats.loss])[-SUMMARY_WINDOWS:]
                stats["recent_rsat"] = (stats["recent_rsat"] + [rsat])[-SUMMARY_WINDOWS:]
                stats["last_loss"], stats["last_grad_norm"] = step_stats.loss, step_stats.grad_norm
                stats["elapsed"] = elapsed0 + now - started
                rates = _spike_rates(model, output.activity) if record else {}
                if log is not None:
                    log.write({"step": step, "epoch": epoch, "batch": index + 1, "loss": step_stats.loss, "rsat": rsat,
                               "lr": optimizer.param_groups[0]["lr"], "grad_norm": step_stats.grad_norm,
                               "time_per_step": now - last_time, "elapsed": stats["elapsed"], **rates})
                    _report_silent(step, rates, silent)
                last_time = now
                bar.update(1)
                bar.set_postfix(loss=f"{step_stats.loss:.4f}", epoch=epoch)
                done = max_steps is not None and step >= max_steps
                if done or step % config.run.checkpoint_every == 0:
                    position = Position(epoch, index + 1, step)
                    checkpointer.save(position, state, stats, step_stats.loss, finished=done)
                if done:
                    break
            if done:
                break
            # The epoch is over: drop a partial loss window; the next epoch starts every lane afresh.
            epoch_loss = stats["epoch_loss_sum"] / max(stats["epoch_windows"], 1)
            stats["epoch_loss_sum"], stats["epoch_windows"] = 0.0, 0
            position = Position(epoch + 1, 0, step)
            finished = epoch + 1 == config.loader.n_epochs
            if stats["best_loss"] is None or epoch_loss < stats["best_loss"]:
                stats["best_loss"] = epoch_loss
                checkpointer.save_best(position, epoch_loss)
            checkpointer.save(position, None, stats, stats["last_loss"], finished=finished)
    finally:
        bar.close()
        if log is not None:
            log.close()
    final = {"step": float(step), "epoch": float(position.epoch), "loss": stats["last_loss"],
             "loss_first": _mean(stats["first_losses"]), "loss_last": _mean(stats["recent_losses"]),
             "rsat_first": _mean(stats["first_rsat"]), "rsat_last": _mean(stats["recent_rsat"]),
             "grad_norm": stats["last_grad_norm"], "seconds": time.perf_counter() - started}
    best = out / BEST_FILE
    return TrainResult(out / MODEL_FILE, best if best.is_file() else None, out / "metrics.jsonl", out, final)
