"""Data-parallel training on the CPU (gloo, 2 processes on localhost): after one loss window the gradients
averaged by DistributedDataParallel equal those of one process on the whole batch, for the default (lane-mean)
and the reference (lane-sum) loss; and a 2-process training run logs the single process's losses."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from eventflow.config import to_dict
from eventflow.loss import empty_loss_buffer
from eventflow.models import build_model
from eventflow.simulate import SimConfig, simulate_to_h5
from eventflow.train import load_train_config, train
from eventflow.train.bench import moving_dots_windows
from eventflow.train.ddp import forward_fn, init_distributed, reduce_loss, shard_batch
from eventflow.train.step import forward_pass, window_loss

BATCH = 4
COMPATS = (None, "hagenaars2021")


pytestmark = pytest.mark.usefixtures("one_thread")


def run_two(worker, *args) -> None:
    """Run ``worker(rank, *args)`` in 2 processes. Forked (the children inherit the imported modules: no
    seconds-long re-import of torch); each uses one thread, so no OpenMP pool is touched after the fork."""
    mp.start_processes(worker, args=args, nprocs=2, join=True, start_method="fork")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _windows():
    windows = moving_dots_windows(BATCH, (16, 16), passes=3, events=150, seed=1)
    for w in windows:  # lane 3 has no data: rank 1 holds one valid lane, rank 0 two
        w["active"] = torch.tensor([True, True, True, False])
        w["reset"] = torch.zeros(BATCH, dtype=torch.bool)
    return windows


def _window_gradients(model, forward, windows, compat, ctx):
    state, buffer = None, empty_loss_buffer()
    for w in windows:
        state, buffer, _ = forward_pass(model, state, buffer, shard_batch(w, ctx.lanes), compat=compat,
                                        forward=forward)
    loss = window_loss(buffer, flow_scaling=16.0, flow_regul_weight=0.2, compat=compat)
    backward, value = reduce_loss(loss, buffer, compat, ctx)
    backward.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}, float(value)


def _model():
    torch.manual_seed(0)
    return build_model("LIFFireNet", base_num_channels=4, spiking_neuron={"thresh": (0.3, 0.1)})


def _setup(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)


def _gradient_worker(rank: int, world: int, port: int, out: str) -> None:
    _setup(rank, world, port)
    ctx = init_distributed(torch.device("cpu"), BATCH)
    results = {}
    for compat in COMPATS:
        model = _model()
        grads, value = _window_gradients(model, forward_fn(model, ctx, torch.device("cpu")), _windows(), compat, ctx)
        results[str(compat)] = (grads, value)
    torch.save(results, f"{out}.rank{rank}")
    dist.destroy_process_group()


def test_ddp_gradients_equal_the_single_process_gradients(tmp_path):
    out = str(tmp_path / "grads")
    run_two(_gradient_worker, 2, free_port(), out)
    ranks = [torch.load(f"{out}.rank{r}") for r in range(2)]
    single_ctx = init_distributed(torch.device("cpu"), BATCH)
    assert single_ctx.world_size == 1
    for compat in COMPATS:
        model = _model()
        expected, value = _window_gradients(model, model.forward_all, _windows(), compat, single_ctx)
        for grads, ddp_value in (r[str(compat)] for r in ranks):
            assert ddp_value == pytest.approx(value, rel=1e-6)
            for name, g in expected.items():
                # float sums in another order: compare to the gradient's scale
                scale = float(g.abs().max()) + 1e-12
                torch.testing.assert_close(grads[name], g, rtol=1e-5, atol=1e-6 * scale, msg=f"{compat} {name}")
        assert any(float(g.abs().sum()) > 0 for g in expected.values())


def _train_worker(rank: int, world: int, port: int, config: dict, out: str) -> None:
    _setup(rank, world, port)
    train(load_train_config(config), progress=False, out_dir=out)
    dist.destroy_process_group()


def test_two_process_training_logs_the_single_process_losses(tmp_path):
    data = tmp_path / "data"
    for i in range(2):
        simulate_to_h5(data / f"rec{i}.h5", SimConfig(resolution=(32, 32), duration=0.06, motion="translation",
                                                      image=("camera",)), seed=i)
    overrides = {"data.path": str(data), "data.window": 1000, "data.window_loss": 2000, "loader.resolution": [32, 32],
                 "loader.batch_size": 2, "model.base_num_channels": 4, "run.max_steps": 3, "run.device": "cpu",
                 "run.lif_backend": "torch", "optimizer.lr": 3e-3}
    full = load_train_config("quick_snn", overrides=overrides)
    run_two(_train_worker, 2, free_port(), to_dict(full), str(tmp_path / "ddp"))
    train(full, progress=False, out_dir=tmp_path / "single")

    def losses(folder):
        return [json.loads(line)["loss"] for line in (tmp_path / folder / "metrics.jsonl").read_text().splitlines()]

    assert len(losses("single")) == 3
    assert losses("ddp") == pytest.approx(losses("single"), rel=1e-5)
