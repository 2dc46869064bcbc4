"""``eventflow evaluate``: the paper's evaluation protocols on a recording or a folder of recordings.

    eventflow evaluate --model LIFFireNet --checkpoint ../shared/data/hagenaars2021_liffirenet.pt \\
        --data data/ecd --protocol events --window-events 15000 --out metrics.json --compat hagenaars2021

Protocols (:mod:`eventflow.evaluate`): ``mvsec-dt1`` and ``mvsec-dt4`` (AEE, % outliers, AAE against the
``flow_dt1``/``flow_dt4`` ground truth, plus FWL and RSAT) and ``events`` (FWL and RSAT per window of
``--window-events`` events, 15000 by default as for ECD and HQF); ``--splits K`` cuts every GT interval into
``K`` windows (``eventflow.evaluate.with_splits``). The hot-pixel filter of the reference
evaluation is on unless ``--no-hot-filter``. Prints per-sequence and mean tables with the zero-flow and
GT-flow sanity rows, and writes ``metrics.json`` atomically (``mean``, ``per_sequence``, ``per_window``,
``baselines``, ``settings``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eventflow.cli.infer import add_model_arguments, load_cli_model
from eventflow.evaluate import PROTOCOLS, evaluate_models


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--data", required=True, type=Path,
                        help="recording in the reference HDF5 layout, or a folder of them (one sequence each)")
    parser.add_argument("--protocol", required=True, choices=list(PROTOCOLS),
                        help="; ".join(f"{p.name}: {p.description}" for p in PROTOCOLS.values()))
    parser.add_argument("--window-events", type=int, default=None, metavar="N",
                        help="events per window of the 'events' protocol (default 15000)")
    parser.add_argument("--splits", type=int, default=None, metavar="K",
                        help="GT protocols: cut every GT interval into K windows by event count, metrics on the "
                             "last one scaled to the interval (default 1 for mvsec-dt1, 4 for mvsec-dt4)")
    hot = parser.add_mutually_exclusive_group()
    hot.add_argument("--hot-filter", dest="hot_filter", action="store_true", default=True,
                     help="the reference evaluation's hot-pixel filter (default: on)")
    hot.add_argument("--no-hot-filter", dest="hot_filter", action="store_false", help="switch the filter off")
    parser.add_argument("--max-sequences", type=int, default=None, help="evaluate only the first sequences")
    parser.add_argument("--out", required=True, type=Path, help="output metrics.json")


def run(args: argparse.Namespace) -> int:
    model, checkpoint = load_cli_model(args)
    result = evaluate_models(
        {model.config.name: model},
        args.data,
        args.protocol,
        window_events=args.window_events,
        splits=args.splits,
        compat=args.compat,
        hot_filter=args.hot_filter,
        device=args.device,
        flow_scaling=args.flow_scaling,
        max_windows=args.max_windows,
        max_sequences=args.max_sequences,
        resolution=tuple(args.resolution) if args.resolution else None,
        crop=args.crop,
        progress=not args.no_progress,
        settings={"checkpoint": None if checkpoint is None else str(checkpoint)},
    )
    print(result.table())
    path = result.write_json(args.out)
    print(f"wrote {path}")
    return 0
