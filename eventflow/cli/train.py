"""``eventflow train``: self-supervised training from a YAML config (see :mod:`eventflow.train`).

Examples::

    eventflow train --config quick_snn                       # a shipped config: quick_snn, quick_ann, train_snn, ...
    eventflow train --config my.yaml --out runs/lif --device cuda
    eventflow train --config train_snn --data /data/uzh_fpv --epochs 100
    eventflow train --config quick_snn --out runs/q --resume  # continue an interrupted run exactly
    torchrun --standalone --nproc_per_node 4 -m eventflow train --config train_snn   # data parallel

Prints the run folder, the checkpoint and the final loss as JSON on success.
"""

from __future__ import annotations

import argparse
import json

from eventflow.train.config import load_train_config, packaged_configs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True,
                        help=f"YAML config file or a shipped config name ({', '.join(packaged_configs())})")
    parser.add_argument("--out", help="run folder (default: run.out_dir of the config, else runs/<experiment>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in the run folder from its last "
                        "checkpoint (the losses continue exactly as without the interruption)")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (overrides run.device)")
    parser.add_argument("--data", nargs="+", metavar="PATH",
                        help="recordings: folders of .h5 files and/or files (overrides data.path)")
    parser.add_argument("--epochs", type=int, help="overrides loader.n_epochs")
    parser.add_argument("--steps", type=int, help="stop after this many optimisation steps (run.max_steps)")
    parser.add_argument("--batch-size", type=int, help="overrides loader.batch_size")
    parser.add_argument("--lr", type=float, help="overrides optimizer.lr")
    parser.add_argument("--seed", type=int, help="overrides loader.seed")
    parser.add_argument("--workers", type=int, help="DataLoader workers (overrides loader.num_workers)")
    parser.add_argument("--lif-backend", choices=["torch", "cpp", "auto"], help="overrides run.lif_backend")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="any other override as a dotted key and a YAML value, e.g. model.base_num_channels=16")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def overrides_from_args(args: argparse.Namespace) -> dict:
    """The config overrides (dotted keys) given on the command line."""
    import yaml

    options = {"run.device": args.device, "loader.n_epochs": args.epochs, "run.max_steps": args.steps,
               "loader.batch_size": args.batch_size, "optimizer.lr": args.lr, "loader.seed": args.seed,
               "loader.num_workers": args.workers, "run.lif_backend": args.lif_backend,
               "data.path": (args.data[0] if len(args.data) == 1 else list(args.data)) if args.data else None}
    overrides = {k: v for k, v in options.items() if v is not None}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key] = yaml.safe_load(value)
    return overrides


def run(args: argparse.Namespace) -> int:
    from eventflow.train.loop import train  # imported here: `eventflow train --help` stays fast

    config = load_train_config(args.config, overrides=overrides_from_args(args))
    result = train(config, progress=not args.no_progress, resume=args.resume, out_dir=args.out)
    print(json.dumps({"out_dir": str(result.out_dir), "checkpoint": str(result.checkpoint),
                      "metrics": str(result.metrics), **result.final}))
    return 0
