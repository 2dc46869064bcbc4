"""``eventflow inspect FILE``: summarise a recording in the reference HDF5 layout.

Reports the resolution, duration, number of events, event rate, polarity balance, time range, coordinate
range, the GT flow groups and frames present (count and time span) and the compression filters of every
dataset. Statistics are computed chunk by chunk (bounded memory), validating every event on the way, so a
corrupt or unsorted file is reported as such. ``--json`` prints one JSON object instead of a table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import h5py
import numpy as np

from eventflow.io.h5 import Recording, dataset_filters


def summarize(path: str | os.PathLike, chunk_events: int = 1 << 20,
              resolution: tuple[int, int] | None = None) -> dict:
    """A JSON-ready summary of a recording (see the module docstring); times in seconds relative to t0."""
    with Recording(path, resolution=resolution) as rec:
        n_pos = 0
        x_min, x_max, y_min, y_max = math.inf, -math.inf, math.inf, -math.inf
        for chunk in rec.iter_chunks(chunk_events):
            n_pos += int(np.count_nonzero(chunk["p"] > 0))
            x_min, x_max = min(x_min, int(chunk["x"].min())), max(x_max, int(chunk["x"].max()))
            y_min, y_max = min(y_min, int(chunk["y"].min())), max(y_max, int(chunk["y"].max()))
        duration = rec.duration
        groups = {}
        for name, stamps in (("flow_dt1", rec.gt_timestamps(1)), ("flow_dt4", rec.gt_timestamps(4)),
                             ("images", rec.image_timestamps())):
            if stamps.size:
                groups[name] = {"count": int(stamps.size), "time_range_s": [float(stamps[0] - rec.t0),
                                                                            float(stamps[-1] - rec.t0)]}
        filters: dict[str, list[str]] = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and (name.startswith("events/") or "/" not in name):
                filters[name] = [fname for _, fname, _ in dataset_filters(obj)]

        rec.file.visititems(visit)
        first_map = {g: next(iter(rec.file[g].values())) for g in groups if len(rec.file[g])}
        for g, ds in first_map.items():
            filters[f"{g}/*"] = [fname for _, fname, _ in dataset_filters(ds)]
        return {
            "path": str(rec.path),
            "resolution": list(rec.resolution),
            "num_events": rec.num_events,
            "duration_s": duration,
            "event_rate_hz": rec.num_events / duration if duration > 0 else None,
            "positive_fraction": n_pos / rec.num_events,
            "t0": rec.t0,
            "time_range_s": list(rec.time_range),
            "x_range": [x_min, x_max],
            "y_range": [y_min, y_max],
            "groups": groups,
            "filters": filters,
        }


def format_table(summary: dict) -> str:
    """The summary as aligned ``key  value`` lines."""
    h, w = summary["resolution"]
    rate = summary["event_rate_hz"]
    rows = [
        ("file", summary["path"]),
        ("resolution", f"{h} x {w} (H x W)"),
        ("events", f"{summary['num_events']:,}"),
        ("duration", f"{summary['duration_s']:.6f} s"),
        ("event rate", f"{rate / 1e6:.4f} Mev/s" if rate is not None else "n/a (zero duration)"),
        ("positive", f"{100 * summary['positive_fraction']:.2f} %"),
        ("t0", f"{summary['t0']:.9g} s"),
        ("time range", "{:.6f} .. {:.6f} s (relative to t0)".format(*summary["time_range_s"])),
        ("x range", "{} .. {}".format(*summary["x_range"])),
        ("y range", "{} .. {}".format(*summary["y_range"])),
    ]
    for name in ("flow_dt1", "flow_dt4", "images"):
        g = summary["groups"].get(name)
        rows.append((name, "absent" if g is None else "{} maps, {:.6f} .. {:.6f} s".format(g["count"],
                                                                                           *g["time_range_s"])))
    for name, names in summary["filters"].items():
        rows.append((f"filters {name}", ", ".join(names) or "none"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="recording in the reference HDF5 layout")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--resolution", type=int, nargs=2, metavar=("H", "W"),
                        help="sensor size, for files without a sensor_resolution attribute")
    parser.add_argument("--chunk-events", type=int, default=1 << 20, help="events read at a time (memory bound)")


def run(args: argparse.Namespace) -> int:
    summary = summarize(args.file, chunk_events=args.chunk_events,
                        resolution=tuple(args.resolution) if args.resolution else None)
    print(json.dumps(summary, indent=2) if args.json else format_table(summary))
    return 0
