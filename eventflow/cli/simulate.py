"""``eventflow simulate``: an event recording with exact ground-truth flow, or the embedded default dataset.

Examples::

    eventflow simulate --out rec.h5 --seed 3 --resolution 96 160 --duration 1.0
    eventflow simulate --out rec.h5 --seed 1 --image camera coins --motion rotation --speed 2 --noise-rate 0.5
    eventflow simulate --preset default            # generate (or reuse) the quick default dataset under data/sim
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from eventflow.simulate.config import MOTION_KINDS, SimConfig
from eventflow.simulate.dataset import PROFILES, ensure_default_dataset
from eventflow.simulate.images import PHOTOS
from eventflow.simulate.sequence import simulate_to_h5

PRESETS = ("default",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SimConfig()
    parser.add_argument("--out", help="output HDF5 file (reference layout)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives an identical file")
    parser.add_argument("--resolution", type=int, nargs=2, metavar=("H", "W"), default=list(defaults.resolution))
    parser.add_argument("--duration", type=float, default=defaults.duration, help="seconds of events")
    parser.add_argument("--gt-rate", type=float, default=defaults.gt_rate_hz, help="ground-truth rate [Hz]")
    parser.add_argument(
        "--image", nargs="+", choices=list(PHOTOS), metavar="NAME",
        help=f"photo(s); the seed picks one (default: all). Choices: {', '.join(PHOTOS)}",
    )
    parser.add_argument("--motion", choices=MOTION_KINDS, default=defaults.motion, help="camera motion kind")
    parser.add_argument("--speed", type=float, default=defaults.speed, help="scale on the image speed")
    parser.add_argument("--contrast", type=float, nargs=2, metavar=("CPOS", "CNEG"),
                        default=[defaults.contrast_pos, defaults.contrast_neg], help="contrast thresholds (log)")
    parser.add_argument("--mismatch", type=float, default=defaults.contrast_mismatch,
                        help="per-pixel threshold standard deviation (log)")
    parser.add_argument("--refractory", type=float, default=defaults.refractory, help="refractory period [s]")
    parser.add_argument("--noise-rate", type=float, default=defaults.noise_rate_hz,
                        help="background noise events per pixel per second")
    parser.add_argument("--hot-pixels", type=int, default=defaults.hot_pixels, help="number of hot pixels")
    parser.add_argument("--hot-pixel-rate", type=float, default=defaults.hot_pixel_rate_hz,
                        help="events per second of a hot pixel")
    parser.add_argument("--preset", choices=PRESETS,
                        help="generate a named dataset instead of one file ('default': the embedded dataset)")
    parser.add_argument("--profile", choices=list(PROFILES), default="quick", help="size of the preset dataset")
    parser.add_argument("--compression", choices=["gzip", "lzf", "none"], default="gzip",
                        help="HDF5 compression of the file (none: fastest to write, about twice as large)")
    parser.add_argument("--progress", action="store_true", help="show progress bars")


def run(args: argparse.Namespace) -> int:
    if args.preset == "default":
        paths = ensure_default_dataset(args.profile, progress=True)
        print(json.dumps(paths.summary(), indent=2))
        print(f"{len(paths.generated)} file(s) written, {len(paths.train) + len(paths.test) - len(paths.generated)} "
              f"reused, under {paths.root}")
        return 0
    if not args.out:
        raise ValueError("--out FILE.h5 is required (or use --preset default)")
    config = SimConfig(
        resolution=(args.resolution[0], args.resolution[1]),
        duration=args.duration,
        gt_rate_hz=args.gt_rate,
        motion=args.motion,
        speed=args.speed,
        contrast_pos=args.contrast[0],
        contrast_neg=args.contrast[1],
        contrast_mismatch=args.mismatch,
        refractory=args.refractory,
        noise_rate_hz=args.noise_rate,
        hot_pixels=args.hot_pixels,
        hot_pixel_rate_hz=args.hot_pixel_rate,
    )
    if args.image:
        config = replace(config, image=tuple(args.image))
    compression = None if args.compression == "none" else args.compression
    path = simulate_to_h5(args.out, config, args.seed, progress=args.progress, compression=compression)
    print(f"wrote {path}")
    return 0
