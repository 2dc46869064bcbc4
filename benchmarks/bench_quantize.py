"""Latency and size of the integer ONNX LIF-FireNet against the float32 ONNX export, in onnxruntime on the CPU.

Exports one time step of LIF-FireNet twice: float32 (:func:`eventflow.export.onnx.export_onnx`, the LIF as its
standard-operator function) and integer (:func:`eventflow.quantize.onnx_int8.export_int8_onnx`, 8-bit PTQ,
calibrated on the quick training split unless ``--uncalibrated``), then times ``session.run`` on a real
recording's event counts with the state carried (median over ``--repeats`` after ``--warmup`` runs), for each
thread count. Also reports the file sizes, the packed model sizes (:func:`eventflow.quantize.model_size`) and the
PyTorch step latency of the float and the quantised (fake-quant) model. Prints one JSON object.

usage: python benchmarks/bench_quantize.py [--checkpoint PATH] [--resolution H W] [--threads 1 2] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from eventflow.export.onnx import INPUT_NAME, export_onnx
from eventflow.machine import cpu_model
from eventflow.models import build_model, load_model
from eventflow.paths import shared_file
from eventflow.quantize import (
    QuantConfig,
    calibrate_on_training_split,
    default_model_formats,
    model_size,
    ptq,
    quantize_model,
)
from eventflow.quantize.onnx_int8 import export_int8_onnx


def event_counts(height: int, width: int, windows: int) -> list[np.ndarray]:
    """Event counts of consecutive 15000-event windows of the ECD recording (shared folder) cropped or padded to
    ``height x width``; Poisson counts of the same density where it is absent."""
    from eventflow.inference import iter_batches, plan_recording
    from eventflow.windows import WindowSpec

    ecd = shared_file("data", "ecd_shapes_rotation.h5")
    if ecd is None:
        rng = np.random.default_rng(0)
        return [rng.poisson(15000 / (2 * height * width), (1, 2, height, width)).astype(np.float32)
                for _ in range(windows)]
    plan = plan_recording(ecd, WindowSpec("events", 15000), max_windows=windows)
    out = []
    for batch in iter_batches([plan], 1, encodings=("cnt",)):
        counts = np.zeros((1, 2, height, width), np.float32)
        cnt = batch["event_cnt"].numpy()
        h, w = min(height, cnt.shape[2]), min(width, cnt.shape[3])
        counts[:, :, :h, :w] = cnt[:, :, :h, :w]
        out.append(counts)
    return out


def time_onnx(path: Path, inputs: list[np.ndarray], threads: int, warmup: int, repeats: int) -> float:
    """Median milliseconds per ``session.run`` with the state fed back."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    state_inputs = [i for i in session.get_inputs() if i.name != INPUT_NAME]
    dtypes = {"tensor(float)": np.float32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8}
    height, width = inputs[0].shape[2:]
    state = {i.name: np.zeros((1, i.shape[1], height, width), dtypes[i.type]) for i in state_inputs}
    outputs = [o.name for o in session.get_outputs()]
    times = []
    for k in range(warmup + repeats):
        feed = {INPUT_NAME: inputs[k % len(inputs)], **state}
        t0 = time.perf_counter()
        result = session.run(outputs, feed)
        times.append(time.perf_counter() - t0)
        state = {i.name: r for i, r in zip(state_inputs, result[1:])}
    return 1e3 * statistics.median(times[warmup:])


def time_torch(model, inputs: list[np.ndarray], threads: int, warmup: int, repeats: int) -> float:
    torch.set_num_threads(threads)
    state, times = None, []
    with torch.no_grad():
        for k in range(warmup + repeats):
            x = torch.from_numpy(inputs[k % len(inputs)])
            t0 = time.perf_counter()
            _, state = model(x, state)
            times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times[warmup:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="LIF-FireNet weights (default: the authors', else random)")
    parser.add_argument("--resolution", type=int, nargs=2, default=[180, 240], metavar=("H", "W"))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--uncalibrated", action="store_true", help="default formats instead of PTQ calibration")
    args = parser.parse_args()
    height, width = args.resolution

    weights = args.checkpoint or shared_file("data", "hagenaars2021_liffirenet.pt")
    model = (load_model("LIFFireNet", weights) if weights else build_model("LIFFireNet")).eval()
    if args.uncalibrated:
        qmodel = quantize_model(model, default_model_formats(model, QuantConfig(bits=8)))
    else:
        qmodel = ptq(model, calibrate_on_training_split(model, "quick", max_windows=20), QuantConfig(bits=8))
    inputs = event_counts(height, width, 8)
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path, int8_path = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        export_onnx(model, fp32_path, height=height, width=width, custom_ops=False)
        export_int8_onnx(qmodel, int8_path, height=height, width=width)
        size = model_size(qmodel)
        result = {
            "machine": {"cpu": cpu_model(), "nproc": os.cpu_count(), "load_avg_1min": os.getloadavg()[0]},
            "versions": {"onnxruntime": ort.__version__, "torch": torch.__version__},
            "weights": str(weights) if weights else "random",
            "resolution": [height, width],
            "onnx_bytes": {"fp32": fp32_path.stat().st_size, "int8": int8_path.stat().st_size},
            "model_bytes": {"fp32": size.fp32_packed, "int8_packed": size.packed, "int8_serialized": size.serialized},
            "latency_ms": {},
        }
        for threads in args.threads:
            result["latency_ms"][f"{threads} thread(s)"] = {
                "onnx_fp32": time_onnx(fp32_path, inputs, threads, args.warmup, args.repeats),
                "onnx_int8": time_onnx(int8_path, inputs, threads, args.warmup, args.repeats),
                "torch_fp32": time_torch(model, inputs, threads, args.warmup, args.repeats),
                "torch_fake_quant": time_torch(qmodel, inputs, threads, args.warmup, args.repeats),
            }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
