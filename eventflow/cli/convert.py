"""``eventflow convert INPUT --out FILE.h5``: events from txt/csv, npy/npz, mat or aedat4 to the reference layout.

See :mod:`eventflow.io.formats` for the formats, the accepted column names and the ``W H`` header line of text
files. The output is written atomically; timestamps are converted to seconds with ``--time-unit``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from eventflow.io.formats import FORMATS, TIME_UNITS, convert


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="event file (txt, csv, npy, npz, mat, aedat4)")
    parser.add_argument("--out", type=Path, required=True, help="output HDF5 file (reference layout)")
    parser.add_argument("--format", default="auto", choices=("auto", *FORMATS), help="input format (default: suffix)")
    parser.add_argument("--resolution", type=int, nargs=2, metavar=("H", "W"),
                        help="sensor size; default: from the file, else max coordinate + 1 (with a warning)")
    parser.add_argument("--time-unit", choices=tuple(TIME_UNITS), default=None,
                        help="unit of the input timestamps (default s; AEDAT4 is always us)")
    parser.add_argument("--columns", default="txyp",
                        help="column order of text files and N x 4 arrays, e.g. xytp; _ skips a column")
    parser.add_argument("--rebase-time", action="store_true",
                        help="subtract the first timestamp (stored as the attribute source_time_offset)")


def run(args: argparse.Namespace) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = convert(args.input, args.out, format=args.format,
                         resolution=tuple(args.resolution) if args.resolution else None, time_unit=args.time_unit,
                         columns=args.columns, rebase_time=args.rebase_time)
    for w in caught:
        print(f"eventflow convert: warning: {w.message}", file=sys.stderr)
    h, w = result.resolution
    print(f"wrote {result.path}: {result.num_events:,} events, {h} x {w} (H x W), from {result.format}")
    return 0
