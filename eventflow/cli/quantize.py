"""``eventflow quantize``: post-training quantisation or quantisation-aware training of a checkpoint.

Calibration reads the training split of the simulated dataset only (``--profile``); QAT fine-tunes with that
profile's training config. The output is an eventflow checkpoint (``OUT.pt`` with ``OUT.json``) holding the
float parameters and every layer's fixed-point formats (:func:`eventflow.quantize.load_quantized` rebuilds the
quantised model; ``eventflow evaluate`` reads it as the float model). ``--onnx`` also writes the integer ONNX
graph (spiking FireNet models). One JSON line summarises the result.

Examples::

    eventflow quantize --model LIFFireNet --checkpoint data/checkpoints/.../model.pt --bits 8 --mode ptq \\
        --out runs/liffirenet_int8.pt --onnx runs/liffirenet_int8.onnx
    eventflow quantize --model FireNet --checkpoint model.pt --bits 4 --mode qat --qat-steps 50 --out fn4.pt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eventflow.models import load_model
from eventflow.quantize import (
    QuantConfig,
    QuantInfo,
    calibrate_on_training_split,
    model_size,
    ptq,
    qat,
    save_quantized,
)
from eventflow.simulate.dataset import PROFILES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model name (needed for plain state_dicts such as the authors' weights)")
    parser.add_argument("--checkpoint", required=True, help="our checkpoint (.pt with .json) or a plain state_dict")
    parser.add_argument("--bits", type=int, default=8, help="width of weights, activations and state (8, 6, 4)")
    parser.add_argument("--weight-bits", type=int, help="override --bits for the weights (2-8)")
    parser.add_argument("--state-bits", type=int, help="override --bits for membrane potentials / hidden states")
    parser.add_argument("--mode", choices=["ptq", "qat"], default="ptq", help="post-training or quantisation-aware")
    parser.add_argument("--out", required=True, help="output checkpoint OUT.pt (OUT.json beside it)")
    parser.add_argument("--profile", choices=list(PROFILES), default="quick",
                        help="simulated dataset for calibration (training split) and the QAT training config")
    parser.add_argument("--calibration-windows", type=int, default=QuantConfig.calibration_windows,
                        help="forward passes of calibration")
    parser.add_argument("--method", choices=["mse", "percentile", "max"], default=QuantConfig.method,
                        help="calibrated grids: least squared error on the samples, or holding a percentile of the "
                             "non-zero magnitudes, or the maximum")
    parser.add_argument("--percentile", type=float, default=QuantConfig.percentile)
    parser.add_argument("--qat-steps", type=int, default=20, help="optimisation steps of QAT fine-tuning")
    parser.add_argument("--lr", type=float, help="QAT learning rate (default: a tenth of the training config's)")
    parser.add_argument("--onnx", help="also write the integer ONNX graph here (spiking FireNet models)")
    parser.add_argument("--height", type=int, default=180, help="resolution the ONNX graph is checked at")
    parser.add_argument("--width", type=int, default=240)
    parser.add_argument("--progress", action="store_true", help="show progress bars")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix != ".pt":
        raise ValueError(f"{out}: --out must end in .pt (the formats go to {out.stem}.json beside it)")
    model = load_model(args.model, args.checkpoint).eval()
    config = QuantConfig(bits=args.bits, weight_bits=args.weight_bits, state_bits=args.state_bits,
                         method=args.method, percentile=args.percentile,
                         calibration_windows=args.calibration_windows)
    calibration = calibrate_on_training_split(model, args.profile, config.calibration_windows,
                                              progress=args.progress)
    extra: dict = {"checkpoint": str(args.checkpoint), "profile": args.profile}
    if args.mode == "ptq":
        qmodel = ptq(model, calibration, config)
    else:
        from eventflow.train import profile_config

        qmodel, result = qat(model, calibration, config, profile_config(model.config.name, args.profile),
                             args.qat_steps, args.lr, progress=args.progress)
        extra.update(qat_losses=result.losses, qat_lr=result.lr)
    save_quantized(out, qmodel, QuantInfo(args.mode, config, calibration.files, extra))
    size = model_size(qmodel)
    summary = {"out": str(out), "model": model.config.name, "mode": args.mode, "bits": args.bits,
               "calibration_files": len(calibration.files), "calibration_windows": calibration.windows,
               "size_bytes": size.packed, "fp32_bytes": size.fp32_packed}
    if args.onnx:
        from eventflow.quantize.onnx_int8 import export_int8_onnx

        export_int8_onnx(qmodel, args.onnx, height=args.height, width=args.width)
        summary.update(onnx=str(args.onnx), onnx_bytes=Path(args.onnx).stat().st_size)
    print(json.dumps(summary))
    return 0
