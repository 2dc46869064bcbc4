"""Training and inference speed of a flow model (``eventflow bench``), measured on pre-generated inputs.

- ``train_steps_per_s``: full optimisation steps of the training loop (:mod:`eventflow.train.step`): ``T`` = 10
  forward passes of 1000 events per lane with the state carried, the loss of the window, backward, gradient
  clipping (norm 100), an Adam step (lr 2e-4), zeroing the gradients and detaching the state.
- ``infer_fwd_per_s_b1`` / ``infer_fwd_per_s_b8``: forward passes with the state carried, batch 1 and 8, under
  ``torch.inference_mode``, synchronised after every pass (a streaming deployment).

Inputs (:func:`moving_dots_windows`) are made before timing, so data loading is not measured: events of
textured dots drifting with one random velocity per lane (structured like a real recording: the loss has a
flow to find), encoded by :func:`eventflow.datasets.encode_batch`. Warm-up steps are excluded; the rates are
``1 / median`` of the per-step times.

Speed options (none changes the computed values beyond floating-point rounding): ``lif_backend="cpp"`` (the
fused C++ LIF operator), ``channels_last`` (NHWC convolutions), ``compile`` (``torch.compile`` of the network's
forward, mode ``compile_mode``; slow to compile on a CPU), ``amp`` (bfloat16 on the CPU / float16 on CUDA
autocast: changes the numbers, report it separately; the torch LIF core only).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from eventflow.datasets import encode_batch
from eventflow.events import make_events
from eventflow.loss import empty_loss_buffer
from eventflow.machine import cpu_model
from eventflow.models import build_model
from eventflow.models.base import FlowModel
from eventflow.train.backend import apply_lif_backend
from eventflow.train.optim import build_optimizer
from eventflow.train.step import batch_to_device, forward_pass, optimisation_step, window_loss
from eventflow.windows import Window

PASSES = 10
EVENTS_PER_PASS = 1000
LR = 2e-4
CLIP_GRAD = 100.0
SMOOTHNESS_WEIGHT = 0.001


def moving_dots_windows(batch: int, resolution: tuple[int, int], passes: int = PASSES,
                        events: int = EVENTS_PER_PASS, seed: int = 0, num_bins: int = 2
                        ) -> list[dict[str, torch.Tensor]]:
    """``passes`` consecutive batch dicts (:func:`eventflow.datasets.encode_batch`, keys ``event_cnt``,
    ``event_voxel``, ``event_mask``, ``event_list``, ``pol_mask``, ``event_valid``, ...; no lane resets) of
    ``events`` events per lane: 300 dots per lane at random positions drift with the lane's velocity (up to
    2 px per window); each event is a random dot at a random time of its window, with a random polarity.

    >>> windows = moving_dots_windows(2, (16, 16), passes=3, events=50)
    >>> len(windows), windows[0]["event_cnt"].shape, int(windows[2]["event_cnt"].sum())
    (3, torch.Size([2, 2, 16, 16]), 100)
    """
    rng = np.random.default_rng(seed)
    h, w = resolution
    dots = 300
    start = rng.uniform(0, [h, w], size=(batch, dots, 2))  # (B, dots, 2) as (y, x)
    velocity = rng.uniform(-2, 2, size=(batch, 1, 2))  # px per window
    out = []
    for k in range(passes):
        lanes, windows = [], []
        for b in range(batch):
            t = np.sort(rng.uniform(k, k + 1, size=events))  # in windows; 1 window = 10 ms below
            which = rng.integers(0, dots, size=events)
            pos = start[b, which] + velocity[b, 0] * t[:, None]  # (N, 2)
            y = np.mod(np.round(pos[:, 0]), h).astype(np.int16)
            x = np.mod(np.round(pos[:, 1]), w).astype(np.int16)
            p = rng.choice(np.array([-1, 1], dtype=np.int8), size=events)
            lanes.append(make_events(x, y, t * 0.01, p))
            windows.append(Window(k, k * events, (k + 1) * events, -1, float(t[0] * 0.01), float(t[-1] * 0.01)))
        out.append(encode_batch(lanes, windows, (h, w), encodings=("cnt", "voxel", "mask", "list"),
                                num_bins=num_bins))
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, amp: bool):
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16)


def prepare_bench_model(name: str, device: torch.device, *, lif_backend: str = "torch", channels_last: bool = False,
                        seed: int = 0, **overrides: Any) -> tuple[FlowModel, str]:
    """``build_model(name, **overrides)`` seeded with ``seed``, on ``device``, with the speed options; returns the
    model and the LIF backend used."""
    torch.manual_seed(seed)
    model = build_model(name, **overrides).to(device)
    used = apply_lif_backend(model, lif_backend)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, used


def cuda_graph_forward(model: FlowModel, example: torch.Tensor) -> Callable:
    """Streaming inference as one CUDA graph per pass: ``run(x, _) -> (flow, None)`` copies ``x`` into a static
    input, replays the captured forward pass, which also writes the new state into the static state it reads
    next time (the state is carried inside; the second argument is ignored). The same kernels as eager
    PyTorch run, without the per-kernel launch cost. Capture needs the ``torch`` LIF backend (the C++
    operator reads the surrogate width on the host)."""
    static_x = example.clone()
    batch, _, height, width = example.shape
    static_state = model.flatten_state(model.init_state(batch, height, width, device=example.device,
                                                        dtype=example.dtype))
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up before capture, as CUDA graphs require
        for _ in range(3):
            model(static_x, model.unflatten_state(static_state))
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        flow, state = model(static_x, model.unflatten_state(static_state))
        for dst, src in zip(static_state, model.flatten_state(state)):
            dst.copy_(src)

    def run(x: torch.Tensor, _state: Any = None) -> tuple[torch.Tensor, None]:
        static_x.copy_(x)
        graph.replay()
        return flow, None

    return run


#: torch.compile modes that capture CUDA graphs (refused on CUDA: the carried state is a graph output).
CUDAGRAPH_COMPILE_MODES = ("reduce-overhead", "max-autotune")


def compiled_forward(model: FlowModel, mode: str | None) -> Callable:
    """``torch.compile`` of ``model.forward_all`` (signature of :func:`eventflow.train.step.forward_pass`'s
    ``forward``)."""
    return torch.compile(model.forward_all, mode=mode)


def time_training(model: FlowModel, windows: list[dict[str, torch.Tensor]], steps: int, warmup: int,
                  device: torch.device, *, channels_last: bool = False, forward: Callable | None = None,
                  amp: bool = False, compat: str | None = None) -> tuple[list[float], list[float]]:
    """Seconds of each of ``steps`` optimisation steps over ``windows`` (one loss window, reused every step),
    after ``warmup`` untimed steps, and the loss of every step (warm-up included)."""
    batches = [batch_to_device(w, model.config.encoding, device, channels_last) for w in windows]
    optimizer = build_optimizer("Adam", model.parameters(), LR)
    flow_scaling = float(max(windows[0]["event_cnt"].shape[-2:]))
    state, times, losses = None, [], []
    model.train()
    for i in range(warmup + steps):
        _sync(device)
        start = time.perf_counter()
        buffer = empty_loss_buffer()
        with _autocast(device, amp):
            for batch in batches:
                state, buffer, _ = forward_pass(model, state, buffer, batch, compat=compat, forward=forward)
        loss = window_loss(buffer, flow_scaling=flow_scaling, flow_regul_weight=SMOOTHNESS_WEIGHT, compat=compat)
        stats = optimisation_step(loss, model.parameters(), optimizer, CLIP_GRAD)
        state = model.detach_state(state)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
        losses.append(stats.loss)
    return times, losses


def time_inference(model: FlowModel, inputs: list[torch.Tensor], steps: int, warmup: int, device: torch.device,
                   *, forward: Callable | None = None, amp: bool = False) -> list[float]:
    """Seconds of each of ``steps`` forward passes with the state carried (cycling through ``inputs``), after
    ``warmup`` untimed passes, synchronised after each pass."""
    run = forward or model.forward
    model.eval()
    times = []
    with torch.inference_mode(), _autocast(device, amp):
        state = None
        for i in range(warmup + steps):
            x = inputs[i % len(inputs)]
            _sync(device)
            start = time.perf_counter()
            _, state = run(x, state)
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    model.train()
    return times


def device_name(device: torch.device) -> str:
    """A readable name of the device (GPU model or CPU)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def rate(times: list[float]) -> float:
    """Per-second rate from per-item times: ``1 / median``."""
    return 1.0 / statistics.median(times)


def run_bench(model_name: str = "LIFFireNet", device: str = "cpu", batch: int = 8,
              resolution: tuple[int, int] = (128, 128), steps: int = 5, warmup: int = 1, infer_steps: int | None = None,
              lif_backend: str = "auto", channels_last: bool = False, compile: bool = False,
              compile_mode: str | None = None, cuda_graph: bool = False, amp: bool = False,
              threads: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Measure training and inference speed (see the module docstring); returns the JSON-able record.

    ``steps`` training steps (after ``warmup``), ``infer_steps`` forward passes per batch size (default
    ``10 * steps``, after ``10 * warmup``); ``cuda_graph``: inference as CUDA graphs (:func:`cuda_graph_forward`,
    CUDA and the torch LIF backend only); ``threads`` sets ``torch.set_num_threads`` (None: leave it).
    """
    if threads is not None:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda asked for but CUDA is not available")
    if cuda_graph and (dev.type != "cuda" or compile):
        raise ValueError("cuda_graph needs a CUDA device and excludes compile")
    if compile_mode in CUDAGRAPH_COMPILE_MODES and dev.type == "cuda":
        raise ValueError(f"compile mode {compile_mode!r} replays CUDA graphs, which overwrite the state a pass "
                         f"returns before the next pass reads it; use the default mode, or --cuda-graph for inference")
    if amp and lif_backend != "torch":
        if lif_backend == "cpp":
            raise ValueError("amp needs the torch LIF backend (the C++ operator takes one dtype for all inputs)")
        lif_backend = "torch"  # "auto" under amp: the only backend that mixes precisions
    infer_steps = 10 * steps if infer_steps is None else infer_steps
    model, used = prepare_bench_model(model_name, dev, lif_backend=lif_backend, channels_last=channels_last,
                                      seed=seed)
    if cuda_graph and used != "torch":
        raise ValueError(f"cuda_graph needs the torch LIF backend, got {used!r}")
    forward = compiled_forward(model, compile_mode) if compile else None
    windows = moving_dots_windows(batch, resolution, seed=seed, num_bins=model.config.num_bins)
    train_times, losses = time_training(model, windows, steps, warmup, dev, channels_last=channels_last,
                                        forward=forward, amp=amp)
    key = "event_cnt" if model.config.encoding == "cnt" else "event_voxel"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    record: dict[str, Any] = {
        "bench": "eventflow", "model": model_name, "device": str(dev), "device_name": device_name(dev),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "batch": batch,
        "resolution": list(resolution), "passes_per_step": PASSES, "events_per_pass": EVENTS_PER_PASS,
        "steps": steps, "warmup": warmup, "infer_steps": infer_steps, "lif_backend": used,
        "channels_last": channels_last, "compile": compile, "compile_mode": compile_mode, "cuda_graph": cuda_graph,
        "amp": amp,
        "train_steps_per_s": rate(train_times), "train_step_s": statistics.median(train_times),
        "first_loss": losses[0],
    }
    for b in (1, batch) if batch != 1 else (1,):
        inputs = [w[key][:b].to(dev).contiguous(memory_format=fmt) for w in windows]
        infer_forward = torch.compile(model.forward, mode=compile_mode) if compile else None
        if cuda_graph:
            model.eval()
            with torch.inference_mode():
                infer_forward = cuda_graph_forward(model, inputs[0])
        times = time_inference(model, inputs, infer_steps, 10 * warmup, dev, forward=infer_forward, amp=amp)
        record[f"infer_fwd_per_s_b{b}"] = rate(times)
    if batch != 8:
        record.setdefault("infer_fwd_per_s_b8", None)
    return record
