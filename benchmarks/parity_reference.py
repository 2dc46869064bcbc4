"""Numerical parity of every model with the reference implementation (tudelft/event_flow).

For every reference model class: build the reference model and ours from the same seed, load the reference
weights into ours through the checkpoint key map, run both over several windows with the state carried (real
event counts of the shared recordings and random count tensors), and report the max and mean absolute
difference of the flows for every window and scale. Also reported: whether the seeded initial weights are
identical, the spike activity (so that agreement is not that of silent networks) and, with ``--grad``, the
largest relative difference of the parameter gradients of a simple loss through BPTT.

The reference is imported from ``$EVENTFLOW_REFERENCE`` (default ``third_party/event_flow`` in the project root;
a checkout of tudelft/event_flow at commit e81f963). Nothing of it is copied here.

usage: EVENTFLOW_REFERENCE=../ref python benchmarks/parity_reference.py [--windows 5] [--grad] [--models A,B]

Passes when every window of every model has >= 99 % of flow values within 1e-4 of the reference and a mean
absolute difference <= 1e-4 (exit status 0; 1 otherwise).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import sys
from pathlib import Path

import h5py
import numpy as np
import torch

from eventflow.models import MODEL_REGISTRY, build_model, load_reference_state_dict
from eventflow.paths import project_root, shared_file

REFERENCE_ENV = "EVENTFLOW_REFERENCE"
TOLERANCE = 1e-4
MIN_FRACTION = 0.99
GRAD_MAX_PIXELS = 64 * 96
GRAD_TOLERANCE = 1e-4  # relative to the largest gradient entry of each parameter

ANN_CONFIG = {"encoding": "cnt", "round_encoding": False, "norm_input": False, "num_bins": 2,
              "base_num_channels": 32, "kernel_size": 3, "activations": ["relu", None], "mask_output": True,
              "spiking_neuron": None}
SNN_ACTIVATIONS = ["arctanspike", "arctanspike"]
# Neuron settings per neuron kind: the paper's train_SNN.yml for LIF, and livelier variants that exercise the
# other reset mode and more spikes. None = the reference cells' defaults.
NEURON_SETTINGS = {
    "lif": [{"leak": [-4.0, 0.1], "thresh": [0.8, 0.1], "learn_leak": True, "learn_thresh": True,
             "hard_reset": True},
            {"leak": [-1.0, 0.5], "thresh": [0.3, 0.1], "hard_reset": False, "act_width": 5.0}],
    "plif": [None, {"leak_v": [-1.0, 0.5], "leak_pt": [-1.0, 0.5], "thresh": [0.3, 0.1], "hard_reset": False}],
    "alif": [None, {"leak_v": [-1.0, 0.5], "leak_t": [-1.0, 0.5], "t0": [0.2, 0.05], "t1": [0.5, 0.1],
                    "hard_reset": True}],
    "xlif": [None, {"leak_v": [-1.0, 0.5], "leak_pt": [-1.0, 0.5], "t0": [0.2, 0.05], "t1": [0.5, 0.1]}],
    "leaky": [None, {"leak": [-1.0, 0.5]}],
}


# The derivative's compact variants have no reference class: their oracle is the reference model with R1b and R2b
# replaced by pass-throughs.
SHORT_VARIANTS = {"LIFFireNet_short": "LIFFireNet", "LIFFireFlowNet_short": "LIFFireFlowNet"}


class PassThrough(torch.nn.Module):
    """Stands in for a dropped reference FireNet layer: returns its input and state unchanged."""

    def forward(self, x, prev_state, residual=0):
        return x + residual, prev_state


def import_reference():
    root = Path(os.environ.get(REFERENCE_ENV, project_root() / "third_party" / "event_flow")).resolve()
    if not (root / "models" / "model.py").is_file():
        sys.exit(f"parity_reference: the reference implementation is not at {root} (models/model.py missing); "
                 f"check out tudelft/event_flow (commit e81f963) there or set {REFERENCE_ENV}")
    sys.path.insert(0, str(root))
    return importlib.import_module("models.model"), root


def event_count_windows(path: Path, n_events: int, windows: int, crop: tuple[slice, slice] | None) -> torch.Tensor:
    """``(T, 1, 2, H, W)`` per-polarity event counts of consecutive ``n_events`` windows of a reference-layout
    recording (optionally a crop ``(rows, cols)``)."""
    with h5py.File(path, "r") as f:
        height, width = (int(v) for v in f.attrs["sensor_resolution"])
        n = n_events * windows
        xs, ys, ps = (np.asarray(f["events"][k][:n]) for k in ("xs", "ys", "ps"))
    counts = np.zeros((windows, 2, height, width), dtype=np.float32)
    idx = np.arange(n) // n_events
    np.add.at(counts, (idx, np.where(ps > 0, 0, 1), ys.astype(np.int64), xs.astype(np.int64)), 1.0)
    if crop is not None:
        counts = counts[:, :, crop[0], crop[1]]
    return torch.from_numpy(np.ascontiguousarray(counts)).unsqueeze(1)


def random_windows(windows: int, height: int, width: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    rate = torch.rand(windows, 1, 2, height, width, generator=gen) * 0.6
    return torch.poisson(rate, generator=gen)


def neuron_kind(name: str) -> str | None:
    ff = MODEL_REGISTRY[name].ff
    return {"conv": None, "leaky": "leaky"}.get(ff, ff)


def reference_config(name: str, neuron: dict | None) -> dict:
    cfg = copy.deepcopy(ANN_CONFIG)
    cfg["name"] = name
    if neuron_kind(name) not in (None, "leaky"):
        cfg["activations"] = list(SNN_ACTIVATIONS)
    cfg["spiking_neuron"] = copy.deepcopy(neuron)
    return cfg


def run_reference(ref_model, windows: torch.Tensor, grad: bool):
    ref_model.reset_states()
    flows, loss = [], 0.0
    for x in windows:
        out = ref_model(x, x)["flow"]
        flows.append([f.detach().clone() for f in out])
        if grad:
            loss = loss + sum((f ** 2).mean() for f in out)
    return flows, loss


def run_ours(model, windows: torch.Tensor, grad: bool):
    state = None
    flows, loss, spikes, total = [], 0.0, 0, 0
    for x in windows:
        out, state = model.forward_all(x, state, record_activity=True)
        flows.append([f.detach().clone() for f in out.flow_scales])
        for act in out.activity.values():
            if act.spike_count is not None:
                spikes += int(act.spike_count.sum())
        total += sum(int(np.prod(s.z.shape)) for s in state if hasattr(s, "z"))
        if grad:
            loss = loss + sum((f ** 2).mean() for f in out.flow_scales)
    return flows, loss, spikes / max(total, 1)


def flow_differences(ref_flows, our_flows, name: str) -> tuple[float, float, float, str]:
    """Worst max |d|, worst per-window-and-scale mean |d|, worst fraction within the tolerance, and a per-window
    ``w<k>[s<scale>:max/mean ...]`` summary."""
    worst_max, worst_mean, worst_frac = 0.0, 0.0, 1.0
    per_window = []
    for w, (rf, of) in enumerate(zip(ref_flows, our_flows)):
        if len(rf) != len(of):
            raise SystemExit(f"{name}: the reference gives {len(rf)} scales, ours {len(of)}")
        cells = []
        for scale, (a, b) in enumerate(zip(rf, of)):
            d = (a - b).abs()
            worst_max, worst_mean = max(worst_max, d.max().item()), max(worst_mean, d.mean().item())
            worst_frac = min(worst_frac, (d <= TOLERANCE).float().mean().item())
            cells.append(f"s{scale}:{d.max().item():.1e}/{d.mean().item():.1e}")
        per_window.append(f"w{w + 1}[" + " ".join(cells) + "]")
    return worst_max, worst_mean, worst_frac, " ".join(per_window)


def gradient_difference(ref, ours, key_map: dict[str, str]) -> float:
    """Largest |g_ref - g_ours| relative to max |g_ref| over the trainable parameters."""
    ref_params, our_params = dict(ref.named_parameters()), dict(ours.named_parameters())
    worst = 0.0
    for ref_key, our_key in key_map.items():
        if ref_key in ref_params and ref_params[ref_key].grad is not None:
            g_ref, g_our = ref_params[ref_key].grad, our_params[our_key].grad
            worst = max(worst, (g_ref - g_our).abs().max().item() / (g_ref.abs().max().item() + 1e-12))
    return worst


def compare(name: str, ref_module, neuron: dict | None, inputs: dict[str, torch.Tensor], seed: int,
            with_grad: bool, pad: bool) -> tuple[bool, list[str]]:
    """Build the reference model and ours from one seed, load the reference weights into ours, run both over
    every input sequence; returns (passed, report lines)."""
    # The reference FireNet keeps one class-level kwargs dict shared by all layers and all instances: empty it,
    # or a model built earlier leaks its neuron settings into this one.
    ref_module.FireNet.kwargs[0].clear()
    ref_name = SHORT_VARIANTS.get(name, name)
    torch.manual_seed(seed)
    ref = getattr(ref_module, ref_name)(reference_config(ref_name, neuron))
    if name in SHORT_VARIANTS:
        ref.R1b, ref.R2b = PassThrough(), PassThrough()
    torch.manual_seed(seed)
    ours = build_model(name, spiking_neuron=neuron, pad_input=pad)  # the same settings, as a dict
    key_map = ours.reference_key_map()
    ref_sd, ours_sd = ref.state_dict(), ours.state_dict()
    # (the short variants draw fewer layers, so their initial weights differ from the full reference's)
    same_init = all(torch.equal(ref_sd[k], ours_sd[v]) for k, v in key_map.items()) if ref_name == name else "n/a"
    load_reference_state_dict(ours, ref_sd, source=f"reference {name}")
    n_ref = sum(p.numel() for p in ref.parameters() if p.requires_grad)
    ok = ours.num_parameters() == n_ref
    lines = [f"{name:<20} params {ours.num_parameters():>10,} (ref {n_ref:,}) init-identical {same_init} "
             f"neuron {neuron}"]
    for label, windows in inputs.items():
        height, width = windows.shape[-2:]
        if pad:
            ref.init_cropping(width, height)
        # BPTT through full-resolution windows of two models needs gigabytes: gradients on the small inputs only
        grad = with_grad and height * width <= GRAD_MAX_PIXELS
        with torch.set_grad_enabled(grad):
            ref.train(grad)
            ours.train(grad)
            ref.zero_grad()
            ours.zero_grad()
            ref_flows, ref_loss = run_reference(ref, windows, grad)
            our_flows, our_loss, spike_rate = run_ours(ours, windows, grad)
        worst_max, worst_mean, worst_frac, per_window = flow_differences(ref_flows, our_flows, name)
        passed = worst_frac >= MIN_FRACTION and worst_mean <= TOLERANCE
        grad_note = ""
        if grad:
            ref_loss.backward()
            our_loss.backward()
            rel = gradient_difference(ref, ours, key_map)
            grad_note = f" grad max rel diff {rel:.1e}"
            passed &= rel <= GRAD_TOLERANCE
        ok &= passed
        lines.append(f"  {label:<22} {tuple(windows.shape[-2:])} max|d| {worst_max:.2e} mean|d| {worst_mean:.2e} "
                     f"within1e-4 {worst_frac:.4f} spike-rate {spike_rate:.4f}{grad_note} {'ok' if passed else 'FAIL'}")
        lines.append("    " + per_window)
    return ok, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=5, help="windows per input, state carried")
    parser.add_argument("--grad", action="store_true",
                        help="also compare gradients of a BPTT loss (on the inputs of at most 64x96 pixels)")
    parser.add_argument("--models", default="", help="comma-separated subset of the registry names")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    ref_module, root = import_reference()  # the reference's models/model.py
    ecd = shared_file("data", "ecd_shapes_rotation.h5")
    davis = shared_file("data", "davis346_moving.h5")
    names = [n for n in MODEL_REGISTRY if hasattr(ref_module, SHORT_VARIANTS.get(n, n))]
    if args.models:
        names = [n for n in names if n in args.models.split(",")]
    print(f"reference: {root}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"tolerance: >= {MIN_FRACTION:.0%} within {TOLERANCE:g} and mean <= {TOLERANCE:g} per window")
    T = args.windows
    all_ok = True
    for name in names:
        spec = MODEL_REGISTRY[name]
        inputs: dict[str, torch.Tensor] = {}
        if spec.family == "firenet":
            if ecd is not None:
                inputs["ecd 1000-event"] = event_count_windows(ecd, 1000, T, None)
            if davis is not None:
                inputs["davis346 2000-event"] = event_count_windows(davis, 2000, T, None)
            inputs["random counts"] = random_windows(T, 64, 96, args.seed)
        else:
            if ecd is not None:
                inputs["ecd 2000-event crop"] = event_count_windows(ecd, 2000, T, (slice(58, 122), slice(88, 152)))
            inputs["random counts"] = random_windows(T, 64, 64, args.seed)
        kind = neuron_kind(name)
        settings = NEURON_SETTINGS.get(kind, [None]) if kind else [None]
        for neuron in settings:
            ok, lines = compare(name, ref_module, neuron, inputs, args.seed, args.grad, pad=False)
            all_ok &= ok
            print("\n".join(lines), flush=True)
        if spec.family == "evflownet" and name in ("EVFlowNet", "SpikingRecEVFlowNet") and ecd is not None:
            padded = {"ecd 2000-event, padded": event_count_windows(ecd, 2000, min(T, 3), None)}
            ok, lines = compare(name, ref_module, settings[0], padded, args.seed, False, pad=True)
            all_ok &= ok
            print("\n".join(lines), flush=True)
    print("PASS: every model matches the reference" if all_ok else "FAIL: see the lines marked FAIL above")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
