"""Latency per window of the exported step graph in onnxruntime (CPU) against PyTorch eager, batch 1.

For each model, resolution and thread count, :func:`eventflow.export.latency.measure_latency` times PyTorch, the
export with ``eventflow.LIF`` nodes (functions inlined by onnxruntime), the plain-operator export and, where the
library builds, the native custom op, in turns on the same windows with their state fed back. Inputs: windows of
1000 real events (``shared/data/ecd_shapes_rotation.h5``; centre crop for smaller sizes) and the authors' LIF-FireNet
weights where the shared folder is present; otherwise sparse random counts and random weights. Prints one JSON line
per setting and a Markdown table (median and minimum milliseconds per window).

usage: python benchmarks/bench_onnx.py [--models LIFFireNet] [--resolutions 180x240 128x128] [--threads 1 2]
                                       [--repeats 30] [--no-native] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import onnxruntime as ort
import torch

from eventflow.export.latency import latency_table, measure_latency
from eventflow.export.ort_library import OrtLibraryError, build
from eventflow.export.parity import recording_windows
from eventflow.machine import cpu_model
from eventflow.models import MODEL_REGISTRY, build_model, load_model
from eventflow.paths import shared_file


def make_model(name: str):
    weights = shared_file("data", "hagenaars2021_liffirenet.pt")
    if name == "LIFFireNet" and weights is not None:
        return load_model(name, weights).eval()
    torch.manual_seed(0)
    pad = {"pad_input": True} if MODEL_REGISTRY[name].family == "evflownet" else {}
    return build_model(name, **pad).eval()


def make_windows(height: int, width: int, count: int = 10) -> list[torch.Tensor]:
    recording = shared_file("data", "ecd_shapes_rotation.h5")
    if recording is None:
        g = torch.Generator().manual_seed(0)
        return [(torch.rand(1, 2, height, width, generator=g) < 0.02).float() for _ in range(count)]
    windows = recording_windows(recording, count)
    full_h, full_w = windows[0].shape[-2:]
    top, left = (full_h - height) // 2, (full_w - width) // 2
    return [w[..., top:top + height, left:left + width].contiguous() for w in windows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["LIFFireNet"], choices=list(MODEL_REGISTRY))
    parser.add_argument("--resolutions", nargs="+", default=["180x240", "128x128"], help="HxW sizes")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds per setting (after 3 warm-up rounds)")
    parser.add_argument("--no-native", action="store_true", help="leave out the native custom-op library")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()

    library = None
    if not args.no_native:
        try:
            library = build()
        except OrtLibraryError as err:
            print(f"note: no native custom-op library ({err}); ort-native is left out")
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
               "onnxruntime": ort.__version__, "data": "ECD" if shared_file("data") else "random"}
    print(json.dumps(machine))
    results = []
    for name in args.models:
        model = make_model(name)
        for res in args.resolutions:
            height, width = (int(v) for v in res.lower().split("x"))
            windows = make_windows(height, width)
            for threads in args.threads:
                result = measure_latency(model, windows, threads=threads, repeats=args.repeats,
                                         custom_op_library=library)
                results.append(result)
                print(json.dumps(result))
    print()
    print(latency_table(results))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
