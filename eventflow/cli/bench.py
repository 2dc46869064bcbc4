"""``eventflow bench``: training and inference speed of a model, printed as ONE JSON line.

Examples::

    eventflow bench --model LIFFireNet --device cpu --batch 8 --resolution 128 128 --steps 5
    eventflow bench --model LIFFireNet --device cuda --steps 20 --lif-backend cpp --cuda-graph

Keys: ``train_steps_per_s`` (optimisation steps of 10 passes of 1000 events: loss, backward, clip, Adam, detach),
``infer_fwd_per_s_b1`` and ``infer_fwd_per_s_b8`` (forward passes with the state carried, synchronised per pass),
and the settings (device, torch version, threads, ...). See :mod:`eventflow.train.bench`.
"""

from __future__ import annotations

import argparse
import json

from eventflow.train.backend import BACKENDS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="LIFFireNet", help="a registered model name (default LIFFireNet)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--batch", type=int, default=8, help="lanes of the training batch (default 8)")
    parser.add_argument("--resolution", type=int, nargs=2, default=[128, 128], metavar=("H", "W"))
    parser.add_argument("--steps", type=int, default=5, help="timed training steps (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps first (default 1)")
    parser.add_argument("--infer-steps", type=int, help="timed forward passes per batch size (default 10 x steps)")
    parser.add_argument("--lif-backend", choices=BACKENDS, default="auto",
                        help="LIF core: torch, cpp (fused C++ operator) or auto (cpp where it builds; default)")
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory format for the convolutions")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network (slow to compile on CPU)")
    parser.add_argument("--compile-mode", help="torch.compile mode (default: inductor's); the CUDA-graph modes "
                        "reduce-overhead and max-autotune are refused on CUDA (use --cuda-graph)")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="inference as CUDA graphs (CUDA and --lif-backend torch only)")
    parser.add_argument("--amp", action="store_true", help="autocast (bfloat16 on CPU, float16 on CUDA)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: PyTorch's)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from eventflow.train.bench import run_bench  # imported here: `eventflow bench --help` stays fast

    if args.steps < 1 or args.warmup < 0:
        raise ValueError(f"--steps must be >= 1 and --warmup >= 0, got {args.steps}, {args.warmup}")
    record = run_bench(args.model, args.device, args.batch, tuple(args.resolution), args.steps, args.warmup,
                       args.infer_steps, lif_backend=args.lif_backend, channels_last=args.channels_last,
                       compile=args.compile, compile_mode=args.compile_mode, cuda_graph=args.cuda_graph,
                       amp=args.amp, threads=args.threads, seed=args.seed)
    print(json.dumps(record))
    return 0
