"""The ``eventflow`` command.

Each subcommand lives in its own module ``eventflow.cli.<name>`` with two functions:
``add_arguments(parser)`` and ``run(args) -> int``. :data:`SUBCOMMANDS` is the registry; a module is imported
only when its subcommand runs, so ``eventflow --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("eventflow.cli.simulate", "simulate an event camera with exact ground-truth flow"),
    "inspect": ("eventflow.cli.inspect", "summarise a recording in the reference HDF5 layout"),
    "convert": ("eventflow.cli.convert", "convert txt/csv, npy/npz, mat or aedat4 events to the reference layout"),
    "infer": ("eventflow.cli.infer", "run a model over a recording, carrying state from window to window"),
    "train": ("eventflow.cli.train", "self-supervised training from a YAML config"),
    "bench": ("eventflow.cli.bench", "training and inference speed of a model, as one JSON line"),
    "evaluate": ("eventflow.cli.evaluate", "the paper's evaluation protocols (AEE, outliers, AAE, FWL, RSAT)"),
    "export": ("eventflow.cli.export", "export a model to ONNX (stateful, one time step) or NIR"),
    "quantize": ("eventflow.cli.quantize", "post-training quantisation or quantisation-aware training"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventflow",
        description="Spiking neural networks for self-supervised event-based optical flow.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(SUBCOMMANDS)}")
        parser.print_help()
        return 0 if argv else 2
    name = argv[0]
    module = importlib.import_module(SUBCOMMANDS[name][0])
    sub = argparse.ArgumentParser(prog=f"eventflow {name}", description=SUBCOMMANDS[name][1])
    module.add_arguments(sub)
    args = sub.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as err:
        # Errors raised for bad input carry a one-line message that names the file and the problem.
        print(f"eventflow {name}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
