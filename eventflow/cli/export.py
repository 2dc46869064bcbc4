"""``eventflow export``: one time step of a model with explicit state as ONNX, or LIF-FireNet as NIR.

    eventflow export --model LIFFireNet --checkpoint ../shared/data/hagenaars2021_liffirenet.pt \\
        --format onnx --out lif_firenet.onnx
    eventflow export --model LIFFireNet --checkpoint ... --format onnx --out lif.onnx \\
        --parity ../shared/data/ecd_shapes_rotation.h5 --windows 50
    eventflow export --model LIFFireNet --checkpoint ... --format nir --out lif_firenet.nir

ONNX (:mod:`eventflow.export.onnx`): inputs ``event_cnt`` and the states ``*_in``, outputs ``flow`` and ``*_out``;
one ``eventflow.LIF`` node per spiking layer with a model-local function (``--plain``: standard operators only);
batch, height and width symbolic unless ``--static``. ``--parity FILE.h5`` runs the export in onnxruntime against
PyTorch over the first ``--windows`` windows of 1000 events and fails (exit 1) when parity does not hold.
NIR (:mod:`eventflow.export.nir`): LIF-FireNet as a NIR graph up to its tanh head.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from eventflow.cli.infer import checkpoint_arg, parse_overrides
from eventflow.inference import prepare_model
from eventflow.models import MODEL_REGISTRY

FORMATS = {"onnx": ".onnx", "nir": ".nir"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, choices=list(MODEL_REGISTRY), metavar="NAME",
                        help=f"model class: {', '.join(MODEL_REGISTRY)}")
    parser.add_argument("--checkpoint", required=True,
                        help="our checkpoint (.pt with .json) or a plain/reference state_dict; 'none': random "
                             "weights (with a warning)")
    parser.add_argument("--format", choices=list(FORMATS), default="onnx", help="onnx (default) or nir")
    parser.add_argument("--out", required=True, type=Path, help="output file (.onnx or .nir)")
    parser.add_argument("--resolution", type=int, nargs=2, metavar=("H", "W"), default=[180, 240],
                        help="sensor resolution the graph is checked at (fixed with --static); default 180 240")
    parser.add_argument("--plain", action="store_true",
                        help="ONNX: standard operators only (the eventflow neuron functions inlined)")
    parser.add_argument("--static", action="store_true", help="ONNX: fixed batch 1 and the given resolution")
    parser.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                        help="model config override for plain state_dicts and random models (repeatable)")
    parser.add_argument("--pad", action="store_true",
                        help="EV-FlowNet family: zero-pad H, W to multiples of 16 and crop the flow back")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights with --checkpoint none")
    parser.add_argument("--parity", type=Path, metavar="FILE.h5",
                        help="ONNX: check onnxruntime against PyTorch on this recording")
    parser.add_argument("--windows", type=int, default=50, help="windows of 1000 events for --parity (default 50)")


def run(args: argparse.Namespace) -> int:
    suffix = FORMATS[args.format]
    if args.out.suffix != suffix:
        raise ValueError(f"{args.out}: --format {args.format} writes a {suffix} file")
    if args.format == "nir" and (args.plain or args.static or args.parity):
        raise ValueError("--plain, --static and --parity apply to --format onnx only")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        model = prepare_model(args.model, checkpoint_arg(args.checkpoint), pad=args.pad,
                              overrides=parse_overrides(args.overrides), seed=args.seed)
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    height, width = args.resolution
    if args.format == "nir":
        from eventflow.export.nir import export_nir

        graph = export_nir(model, args.out, height=height, width=width)
        print(f"wrote {args.out}: NIR graph of {model.config.name} with {len(graph.nodes)} nodes, "
              f"{len(graph.edges)} edges")
        return 0

    from eventflow.export.onnx import export_onnx

    proto = export_onnx(model, args.out, height=height, width=width, custom_ops=not args.plain,
                        dynamic=not args.static)
    custom = sum(1 for n in proto.graph.node if n.domain == "eventflow")
    print(f"wrote {args.out}: {model.config.name}, {len(proto.graph.node)} nodes ({custom} eventflow neuron nodes), "
          f"{len(proto.graph.input) - 1} state tensors")
    if args.parity is None:
        return 0
    from eventflow.export.parity import recording_windows, run_parity

    windows = recording_windows(args.parity, args.windows)
    report = run_parity(model, proto, windows, progress=True)
    print(report.summary())
    return 0 if report.passed else 1
