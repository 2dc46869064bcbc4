"""``eventflow infer``: run a model over a recording, carrying its state from window to window.

    eventflow infer --model LIFFireNet --checkpoint ../shared/data/hagenaars2021_liffirenet.pt \\
        --data ecd_shapes_rotation.h5 --window-events 1000 --out flows.npz

Windows are cut exactly as the reference loader does (:mod:`eventflow.windows`): ``--window-events N``
consecutive events, ``--window-time S`` seconds, or ``--window-gt dt1|dt4`` (the MVSEC protocols: the events
between consecutive ``flow_dt1`` maps, or quarters of the ``flow_dt4`` intervals split by event count). The
resolution is the file's ``sensor_resolution`` unless ``--resolution H W`` is given (``--crop`` takes a centred
crop of that size). No hot-pixel filter unless ``--hot-filter`` (the reference's evaluation configs switch it
on; inference leaves the data alone by default).

``--data`` may be a folder: its ``*.h5`` recordings then run as ``--batch B`` lanes in parallel, each lane
walking through whole recordings with its own state (reset where it starts the next recording), as the
reference loader assigns them. The output layout is described in :func:`eventflow.inference.infer`.

Without ``--checkpoint`` (or with ``--checkpoint none``) the model is randomly initialised, with a warning:
useful to exercise every model of the registry, meaningless as flow. ``--set key=value`` overrides model
config fields of plain state_dicts and random models (e.g. ``--set base_num_channels=8``); ``--pad`` lets the
EV-FlowNet family run at sizes that are not multiples of 16 (zero padding, as the reference's CropParameters).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import yaml

from eventflow.inference import FLOW_SCALING, HotFilter, infer, prepare_model
from eventflow.models import MODEL_REGISTRY
from eventflow.windows import WindowSpec

COMPAT_CHOICES = ("hagenaars2021",)
GT_WINDOWS = {"dt1": WindowSpec("gt", 1.0, dt=1), "dt4": WindowSpec("gt", 0.25, dt=4)}


def parse_overrides(items: list[str] | None) -> dict[str, object]:
    """``["key=value", ...]`` -> ``{key: value}`` with YAML-typed values (``8`` -> int, ``[0.8, 0.1]`` -> list).

    >>> parse_overrides(["base_num_channels=8", "spiking_neuron={thresh: [0.8, 0.1]}"])
    {'base_num_channels': 8, 'spiking_neuron': {'thresh': [0.8, 0.1]}}
    """
    out: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def checkpoint_arg(value: str | None) -> Path | None:
    """``none`` (any case) or nothing -> None, otherwise a path."""
    return None if value is None or value.lower() == "none" else Path(value)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Model, checkpoint and run options shared by ``infer`` and ``evaluate``."""
    parser.add_argument("--model", required=True, choices=list(MODEL_REGISTRY), metavar="NAME",
                        help=f"model class: {', '.join(MODEL_REGISTRY)}")
    parser.add_argument("--checkpoint", default=None,
                        help="our checkpoint (.pt with .json) or a plain/reference state_dict; 'none' or omitted: "
                             "random weights (with a warning)")
    parser.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                        help="model config override for plain state_dicts and random models (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights without a checkpoint")
    parser.add_argument("--pad", action="store_true",
                        help="EV-FlowNet family: zero-pad H, W to multiples of 16 and crop the flow back")
    parser.add_argument("--resolution", type=int, nargs=2, metavar=("H", "W"),
                        help="working resolution (default: the file's sensor_resolution)")
    parser.add_argument("--crop", action="store_true", help="take a centred crop of --resolution from the sensor")
    parser.add_argument("--compat", choices=COMPAT_CHOICES, default=None,
                        help="reproduce the reference implementation's quirks (see the docs of each step)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--flow-scaling", type=float, default=FLOW_SCALING,
                        help="pixels per window per unit of network output (default 128, as the paper)")
    parser.add_argument("--max-windows", type=int, default=None,
                        help="at most this many windows per recording (evaluate: evaluation windows, i.e. GT "
                             "intervals in the GT protocols)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_cli_model(args: argparse.Namespace):
    """The model of ``--model``/``--checkpoint``/``--set``/``--pad``, warning on stderr when it is random."""
    checkpoint = checkpoint_arg(args.checkpoint)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        model = prepare_model(args.model, checkpoint, device=args.device, pad=args.pad,
                              overrides=parse_overrides(args.overrides), seed=args.seed)
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    return model, checkpoint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--data", required=True, type=Path,
                        help="recording in the reference HDF5 layout, or a folder of them (run as --batch lanes)")
    window = parser.add_mutually_exclusive_group(required=True)
    window.add_argument("--window-events", type=int, metavar="N", help="windows of N consecutive events")
    window.add_argument("--window-time", type=float, metavar="S", help="windows of S seconds")
    window.add_argument("--window-gt", choices=list(GT_WINDOWS),
                        help="windows between ground-truth maps: dt1 (flow_dt1) or dt4 (quarters of flow_dt4)")
    parser.add_argument("--batch", type=int, default=1, metavar="B",
                        help="lanes in parallel when --data is a folder (a single file runs as one lane)")
    parser.add_argument("--hot-filter", action="store_true",
                        help="the reference evaluation's hot-pixel filter (100 px, 5 windows, rate 0.8)")
    parser.add_argument("--out", required=True, type=Path, help="output .npz")


def window_spec(args: argparse.Namespace) -> WindowSpec:
    if args.window_events is not None:
        return WindowSpec("events", int(args.window_events))
    if args.window_time is not None:
        return WindowSpec("time", float(args.window_time))
    return GT_WINDOWS[args.window_gt]


def run(args: argparse.Namespace) -> int:
    if args.out.suffix != ".npz":
        raise ValueError(f"{args.out}: the output is an .npz file")
    model, checkpoint = load_cli_model(args)
    result = infer(
        model,
        args.data,
        window_spec(args),
        args.out,
        batch_size=args.batch,
        hot_filter=HotFilter() if args.hot_filter else None,
        resolution=tuple(args.resolution) if args.resolution else None,
        crop=args.crop,
        compat=args.compat,
        device=args.device,
        flow_scaling=args.flow_scaling,
        max_windows=args.max_windows,
        progress=not args.no_progress,
        metadata={"checkpoint": None if checkpoint is None else str(checkpoint)},
    )
    print(f"wrote {result.path}: {result.steps} windows x {result.batch_size} lane(s) of {model.config.name} "
          f"over {len(result.files)} recording(s)")
    return 0
