"""One-shot check of the C++/CUDA LIF operator on a GPU machine; prints one JSON report.

Builds ``eventflow.lif_op`` (with its CUDA kernels where a CUDA device and toolkit are present), then on every
available device (CPU, and CUDA when present):

- forward bit-identical to the PyTorch expression (``torch.equal``) for float32/float64/float16/bfloat16, hard and
  soft reset, contiguous and strided inputs;
- C++ backward against autograd through the PyTorch expression, every surrogate, detach on and off (float64);
- ``torch.library.opcheck`` of both operators;
- ``torch.autograd.gradcheck`` (float64) of the membrane path ``v_out``;

and times one LIF step at (8, 32, 128, 128) float32, forward and forward+backward, op against the expression
(the CPU with 2 threads).
Without CUDA the CUDA parts are skipped with a message. Exit status 0 when every check passed.

Usage, from the project root::

    python benchmarks/gpu_lif_op_check.py            # in the project's venv
    PYTHONPATH=. python3 benchmarks/gpu_lif_op_check.py   # a machine where eventflow is not installed
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable

import torch
from torch.utils import benchmark

from eventflow import lif_op
from eventflow.neurons.functional import lif_update_torch
from eventflow.neurons.surrogates import CANONICAL_SURROGATES

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
BENCH_SHAPE = (8, 32, 128, 128)


def make_inputs(shape, dtype, device, seed=0, requires_grad=False):
    """(current, v, z, beta, theta) with spikes on both sides of the threshold."""
    g = torch.Generator().manual_seed(seed)
    current = torch.randn(shape, generator=g, dtype=torch.float64)
    v = torch.randn(shape, generator=g, dtype=torch.float64)
    z = (torch.rand(shape, generator=g, dtype=torch.float64) > 0.5).double()
    beta = torch.sigmoid(torch.randn(shape[1], 1, 1, generator=g, dtype=torch.float64))
    theta = torch.rand(shape[1], 1, 1, generator=g, dtype=torch.float64).clamp_min(0.01)
    return [t.to(device=device, dtype=dtype).requires_grad_(requires_grad) for t in (current, v, z, beta, theta)]


def check_forward(device: str) -> dict:
    mismatches = []
    for dtype in DTYPES:
        for hard_reset in (True, False):
            for strided in (False, True):
                inputs = make_inputs((4, 16, 33, 17), dtype, device, seed=1)
                if strided:  # (B, C, H, W) views of (B, C, W, H) tensors
                    inputs[:3] = [t.transpose(2, 3).contiguous().transpose(2, 3) for t in inputs[:3]]
                got = torch.ops.eventflow.lif_update(*inputs, 10.0, hard_reset, True, "arctan")
                want = lif_update_torch(*inputs, 10.0, hard_reset, True, "arctan")
                if not (torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])):
                    mismatches.append(f"{dtype} hard_reset={hard_reset} strided={strided}")
    return {"ok": not mismatches, "mismatches": mismatches}


def check_backward(device: str) -> dict:
    worst, ok = 0.0, True
    widths = {"arctan": 10.0, "superspike": 10.0, "triangle": 0.8, "multigauss": 0.5}
    for surrogate in CANONICAL_SURROGATES:
        for hard_reset in (True, False):
            for detach in (True, False):
                inputs = make_inputs((3, 4, 6, 5), torch.float64, device, seed=11, requires_grad=True)
                g = torch.Generator().manual_seed(7)
                grad_out = [torch.randn(inputs[0].shape, generator=g, dtype=torch.float64).to(device) for _ in "vz"]
                results = []
                for fn in (lif_op.lif_update, lif_update_torch):
                    outs = fn(*inputs, widths[surrogate], hard_reset, detach, surrogate)
                    results.append(torch.autograd.grad(outs, inputs, grad_out, allow_unused=True))
                for a, b in zip(*results, strict=True):
                    if (a is None) != (b is None):
                        return {"ok": False, "error": f"{surrogate} hard={hard_reset} detach={detach}: None mismatch"}
                    if a is not None:
                        worst = max(worst, (a - b).abs().max().item())
                        ok = ok and torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    return {"ok": ok, "max_abs_diff": worst}


def check_opcheck(device: str) -> dict:
    results = {}
    for surrogate, hard_reset, detach in (("arctan", True, True), ("multigauss", False, False)):
        args = (
            *make_inputs((2, 3, 4, 5), torch.float64, device, seed=4, requires_grad=True),
            1.5,
            hard_reset,
            detach,
            surrogate,
        )
        results[f"lif_update/{surrogate}"] = torch.library.opcheck(torch.ops.eventflow.lif_update.default, args)
    grads = make_inputs((2, 3, 4, 5), torch.float64, device, seed=8)[:2]
    for detach in (True, False):
        args = (*grads, *make_inputs((2, 3, 4, 5), torch.float64, device, seed=6), 10.0, False, detach, "triangle")
        results[f"lif_update_backward/detach={detach}"] = torch.library.opcheck(
            torch.ops.eventflow.lif_update_backward.default, args
        )
    ok = all(v == "SUCCESS" for r in results.values() for v in r.values())
    return {"ok": ok, "results": results}


def check_gradcheck(device: str) -> dict:
    ok = True
    for hard_reset in (True, False):
        inputs = make_inputs((2, 2, 3, 3), torch.float64, device, seed=2, requires_grad=True)

        def v_out(*tensors, hard_reset=hard_reset):
            return torch.ops.eventflow.lif_update(*tensors, 10.0, hard_reset, False, "arctan")[0]

        ok = ok and torch.autograd.gradcheck(v_out, inputs)
    return {"ok": ok}


def time_step(device: str) -> dict:
    """Median ms of one LIF step, op against expression, forward and forward+backward (CPU: 2 threads).

    On the CPU the medians include first-touch page faults of the fresh output tensors: with glibc's default
    settings a freed 16 MB block goes back to the OS, so each call maps new pages. That dominates the operator's
    forward (about 2 ms with MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ raised to 1 GiB, 13 ms without, on
    the H200 machine's Xeon).
    """
    if device == "cpu":
        threads = torch.get_num_threads()
        torch.set_num_threads(2)
        try:
            return _time_step(device)
        finally:
            torch.set_num_threads(threads)
    return _time_step(device)


def _time_step(device: str) -> dict:
    grad_out = [torch.randn(BENCH_SHAPE, device=device) for _ in "vz"]

    def forward(fn, inputs):
        return fn(*inputs, 10.0, True, True, "arctan")

    def forward_backward(fn, inputs):
        torch.autograd.grad(fn(*inputs, 10.0, True, True, "arctan"), inputs, grad_out, allow_unused=True)

    timings = {"shape": list(BENCH_SHAPE), "dtype": "float32", "threads": torch.get_num_threads()}
    for name, fn in (("op", lif_op.lif_update), ("torch", lif_update_torch)):
        for mode, run in (("forward", forward), ("forward_backward", forward_backward)):
            inputs = make_inputs(BENCH_SHAPE, torch.float32, device, requires_grad=mode == "forward_backward")
            timer = benchmark.Timer(
                "run(fn, inputs)", globals={"run": run, "fn": fn, "inputs": inputs}, num_threads=torch.get_num_threads()
            )
            timings[f"{mode}_{name}_ms"] = round(timer.blocked_autorange(min_run_time=1.0).median * 1e3, 3)
    return timings


def guarded(check: Callable[[str], dict], device: str) -> dict:
    """Runs one check and records an exception as a failed check instead of ending the report."""
    try:
        return check(device)
    except Exception as exc:  # a report of every check is the point of this script
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=3)}


def main() -> int:
    report: dict = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available()}
    start = time.perf_counter()
    try:
        report["library"] = str(lif_op.build())
    except Exception as exc:  # the build log is the finding
        report["build_error"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(report, indent=2))
        return 1
    report["build_s"] = round(time.perf_counter() - start, 1)
    report["with_cuda"] = lif_op.with_cuda()
    devices = ["cpu"]
    if report["with_cuda"]:
        devices.append("cuda")
        report["gpu"] = torch.cuda.get_device_name()
    else:
        report["cuda_skipped"] = "no CUDA device or no CUDA toolkit (nvcc/CUDA_HOME): CUDA checks skipped"
    ok = True
    for device in devices:
        checks = {
            name: guarded(check, device)
            for name, check in (
                ("forward_bit_identical", check_forward),
                ("backward_vs_autograd", check_backward),
                ("opcheck", check_opcheck),
                ("gradcheck_v_out", check_gradcheck),
            )
        }
        ok = ok and all(c["ok"] for c in checks.values())
        checks["timing"] = guarded(time_step, device)
        report[device] = checks
    report["all_ok"] = ok
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
