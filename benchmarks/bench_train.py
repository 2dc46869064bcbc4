"""Training and inference speed of our implementation against the reference (tudelft/event_flow), in one run,
on one machine, on the same pre-generated inputs; also checks that both compute the same thing.

Reference training step, as its ``train_flow.py``: 10 passes of ``model(event_voxel, event_cnt)`` with
``EventWarping.event_flow_association`` (on a copy of the event list, which the reference modifies in place),
then ``loss = EventWarping()``, ``loss.item()``, backward, ``clip_grad_norm_(100)``, Adam (lr 2e-4) step,
``zero_grad``, ``detach_states`` and ``reset`` of the loss. Ours: :func:`eventflow.train.bench.time_training` with
the reference's loss form (``compat="hagenaars2021"``). Inference: forward passes with the state carried under
``torch.inference_mode``, synchronised per pass, batch 1 and the training batch.

Both models start from the same weights (the reference's, loaded into ours). Parity: the flows of the first
passes from a zero state (max |difference|) and the first training loss of both (relative difference).
Measurements alternate between the implementations round by round (a shared machine's load hits both alike)
and the medians over all rounds are reported.

The reference is imported from ``$EVENTFLOW_REFERENCE`` (default ``third_party/event_flow`` in the project root,
a checkout of tudelft/event_flow at commit e81f963); nothing of it is copied here. Only its ``models`` and
``loss`` packages are imported, which need nothing beyond torch and NumPy (its training script's mlflow, pandas
and OpenCV are not needed, so nothing is stubbed).

usage: python benchmarks/bench_train.py [--device cpu|cuda] [--batch 8] [--resolution 128 128] [--steps 3]
       [--rounds 3] [--variants torch,cpp,torch+cl,cpp+cl,torch+graph] [--threads N]

Variants of ours: ``torch`` / ``cpp`` LIF core, ``+cl`` channels_last convolutions, ``+graph`` inference as CUDA
graphs (:func:`eventflow.train.bench.cuda_graph_forward`; training is eager in every variant).

Prints one JSON object: settings, machine, per-implementation rates, speedups of every variant of ours over the
reference, and the parity figures; exits 1 when parity fails.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import statistics
import sys
from pathlib import Path

import torch

from eventflow.models import build_model, load_reference_state_dict
from eventflow.paths import project_root
from eventflow.train.backend import apply_lif_backend
from eventflow.train.bench import (
    CLIP_GRAD,
    LR,
    SMOOTHNESS_WEIGHT,
    cuda_graph_forward,
    device_name,
    moving_dots_windows,
    rate,
    time_inference,
    time_training,
)

REFERENCE_ENV = "EVENTFLOW_REFERENCE"
FLOW_TOLERANCE = 1e-5
LOSS_RTOL = 1e-4
PARITY_PASSES = 3
# The paper's LIF-FireNet and FireNet settings (the reference's configs/train_SNN.yml and train_ANN.yml).
SNN_NEURON = {"leak": [-4.0, 0.1], "thresh": [0.8, 0.1], "learn_leak": True, "learn_thresh": True, "hard_reset": True}
MODEL_CONFIG = {"encoding": "cnt", "round_encoding": False, "norm_input": False, "num_bins": 2,
                "base_num_channels": 32, "kernel_size": 3, "mask_output": True}
# Variant of ours -> (lif_backend, channels_last, CUDA-graph inference).
VARIANTS = {"torch": ("torch", False, False), "cpp": ("cpp", False, False), "torch+cl": ("torch", True, False),
            "cpp+cl": ("cpp", True, False), "torch+graph": ("torch", False, True)}


def import_reference():
    """The reference's ``models.model`` and ``loss.flow`` modules."""
    root = Path(os.environ.get(REFERENCE_ENV, project_root() / "third_party" / "event_flow")).resolve()
    if not (root / "models" / "model.py").is_file():
        sys.exit(f"bench_train: the reference implementation is not at {root} (models/model.py missing); check out "
                 f"tudelft/event_flow (commit e81f963) there or set {REFERENCE_ENV}")
    sys.path.insert(0, str(root))
    return importlib.import_module("models.model"), importlib.import_module("loss.flow")


def is_spiking(name: str) -> bool:
    return "LIF" in name


def reference_config(name: str, resolution: tuple[int, int]) -> dict:
    model = dict(MODEL_CONFIG, name=name,
                 activations=["arctanspike", "arctanspike"] if is_spiking(name) else ["relu", None],
                 spiking_neuron=copy.deepcopy(SNN_NEURON) if is_spiking(name) else None)
    return {"model": model, "loader": {"resolution": list(resolution)},
            "loss": {"flow_regul_weight": SMOOTHNESS_WEIGHT, "overwrite_intermediate": False}}


def build_pair(ref_models, name: str, resolution: tuple[int, int], device: torch.device, seed: int):
    """The reference model and ours with the reference's weights."""
    ref_models.FireNet.kwargs[0].clear()  # its class-level kwargs dict leaks settings between instances
    torch.manual_seed(seed)
    config = reference_config(name, resolution)
    ref = getattr(ref_models, name)(copy.deepcopy(config["model"])).to(device)
    ours = build_model(name, activations=config["model"]["activations"],
                       spiking_neuron=config["model"]["spiking_neuron"])
    load_reference_state_dict(ours, ref.state_dict(), source=f"reference {name}")
    return ref, ours.to(device), config


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_training(ref, loss_function, windows, steps: int, warmup: int, device: torch.device
                       ) -> tuple[list[float], list[float]]:
    """Seconds per optimisation step of the reference (its train_flow.py loop body), and the losses."""
    import time

    batches = [{k: w[k].to(device) for k in ("event_voxel", "event_cnt", "event_list", "pol_mask", "event_mask")}
               for w in windows]
    optimizer = torch.optim.Adam(ref.parameters(), lr=LR)
    optimizer.zero_grad()
    ref.train()
    ref.reset_states()
    loss_function.reset()
    times, losses = [], []
    for i in range(warmup + steps):
        _sync(device)
        start = time.perf_counter()
        for b in batches:
            x = ref(b["event_voxel"], b["event_cnt"])
            loss_function.event_flow_association(x["flow"], b["event_list"].clone(), b["pol_mask"],
                                                 b["event_mask"])
        loss = loss_function()
        losses.append(loss.item())
        loss.backward()
        torch.nn.utils.clip_grad.clip_grad_norm_(ref.parameters(), CLIP_GRAD)
        optimizer.step()
        optimizer.zero_grad()
        ref.detach_states()
        loss_function.reset()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times, losses


def reference_inference(ref, inputs, steps: int, warmup: int, device: torch.device) -> list[float]:
    import time

    ref.eval()
    ref.reset_states()
    times = []
    with torch.inference_mode():
        for i in range(warmup + steps):
            x = inputs[i % len(inputs)]
            _sync(device)
            start = time.perf_counter()
            ref(x, x)
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    ref.train()
    return times


def parity(ref, ours, windows, device: torch.device) -> float:
    """Max |flow difference| over the first passes from a zero state."""
    ref.reset_states()
    state, worst = None, 0.0
    with torch.no_grad():
        for w in windows[:PARITY_PASSES]:
            x = w["event_cnt"].to(device)
            ref_flow = ref(x, x)["flow"][-1]
            flow, state = ours(x, state)
            worst = max(worst, (ref_flow - flow).abs().max().item())
    ref.reset_states()
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="LIFFireNet")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--resolution", type=int, nargs=2, default=[128, 128], metavar=("H", "W"))
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per round and implementation")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--infer-steps", type=int, default=20, help="timed forward passes per round and batch size")
    parser.add_argument("--rounds", type=int, default=3, help="alternating measurement rounds")
    parser.add_argument("--variants", default="torch,cpp", help=f"ours: comma-separated of {', '.join(VARIANTS)}")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: PyTorch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in VARIANTS:
            sys.exit(f"bench_train: unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    resolution = (args.resolution[0], args.resolution[1])
    ref_models, ref_loss = import_reference()
    ref, ours, config = build_pair(ref_models, args.model, resolution, device, args.seed)
    loss_function = ref_loss.EventWarping(config, device)
    windows = moving_dots_windows(args.batch, resolution, seed=args.seed)
    flow_diff = parity(ref, ours, windows, device)

    # Every implementation trains its own copy from the same initial weights.
    initial = copy.deepcopy(ref.state_dict())
    models = {}
    for v in variants:
        backend, channels_last, graph = VARIANTS[v]
        if graph and device.type != "cuda":
            sys.exit(f"bench_train: variant {v!r} needs a CUDA device")
        _, model, _ = build_pair(ref_models, args.model, resolution, device, args.seed)
        apply_lif_backend(model, backend)
        models[v] = model.to(memory_format=torch.channels_last) if channels_last else model
    sizes = sorted({1, args.batch})
    inputs = {b: [w["event_cnt"][:b].to(device) for w in windows] for b in sizes}
    results: dict[str, dict[str, list[float]]] = {name: {"train": [], **{f"b{b}": [] for b in sizes}}
                                                  for name in ["reference", *variants]}
    first_loss: dict[str, float] = {}
    for _ in range(args.rounds):
        ref.load_state_dict(initial)
        times, losses = reference_training(ref, loss_function, windows, args.steps, args.warmup, device)
        results["reference"]["train"] += times
        first_loss.setdefault("reference", losses[0])
        for b in sizes:
            results["reference"][f"b{b}"] += reference_inference(ref, inputs[b], args.infer_steps, 5, device)
        for v in variants:
            backend, channels_last, graph = VARIANTS[v]
            model = models[v]
            load_reference_state_dict(model, initial, source="reference")
            times, losses = time_training(model, windows, args.steps, args.warmup, device,
                                          channels_last=channels_last, compat="hagenaars2021")
            results[v]["train"] += times
            first_loss.setdefault(v, losses[0])
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            for b in sizes:
                xs = [x.contiguous(memory_format=fmt) for x in inputs[b]]
                forward = None
                if graph:
                    model.eval()
                    with torch.inference_mode():
                        forward = cuda_graph_forward(model, xs[0])
                results[v][f"b{b}"] += time_inference(model, xs, args.infer_steps, 5, device, forward=forward)

    def rates(name: str) -> dict[str, float]:
        r = results[name]
        out = {"train_steps_per_s": rate(r["train"])}
        out.update({f"infer_fwd_per_s_b{b}": rate(r[f"b{b}"]) for b in sizes})
        return out

    ref_rates = rates("reference")
    summary = {
        "bench": "bench_train", "model": args.model, "device": str(device), "device_name": device_name(device),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "batch": args.batch,
        "resolution": list(resolution), "steps_per_round": args.steps, "rounds": args.rounds,
        "infer_steps_per_round": args.infer_steps, "load_avg": os.getloadavg()[0],
        "reference": ref_rates,
        "ours": {v: rates(v) for v in variants},
        "speedup": {v: {k: rates(v)[k] / ref_rates[k] for k in ref_rates} for v in variants},
        "parity": {"flow_max_abs_diff": flow_diff,
                   "first_loss": first_loss,
                   "first_loss_rel_diff": {v: abs(first_loss[v] - first_loss["reference"])
                                           / abs(first_loss["reference"]) for v in variants},
                   "train_step_s_median": {k: statistics.median(results[k]["train"]) for k in results}},
    }
    ok = flow_diff <= FLOW_TOLERANCE and all(d <= LOSS_RTOL for d in summary["parity"]["first_loss_rel_diff"].values())
    summary["parity"]["ok"] = ok
    print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
