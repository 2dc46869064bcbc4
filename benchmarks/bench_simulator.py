"""Event-simulator throughput on ONE CPU core, printed as one JSON object.

Runs ``eventflow.simulate`` on several seeds (each picks its own photo) and reports events per second:
``events_per_cpu_s`` over the whole in-memory simulation (photo loading, planning, events, GT maps, frames; no
file), ``event_loop_events_per_cpu_s`` over event generation alone, and with ``--write`` the rate of
``simulate_to_h5`` (the same simulation plus writing gzip HDF5 behind the byte shuffle) too. Thread pools are
limited to one thread and the process is pinned to one core before NumPy is imported. Wall-clock and CPU seconds
are both reported, with the load average before and after: on a shared machine CPU seconds are the steadier
figure.

usage: python benchmarks/bench_simulator.py [--resolution H W] [--duration S] [--seeds N] [--motion KIND] [--write]
       [--repeat N]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from eventflow.config import to_dict  # noqa: E402
from eventflow.machine import cpu_model  # noqa: E402
from eventflow.simulate.config import MOTION_KINDS, SimConfig  # noqa: E402
from eventflow.simulate.sequence import ground_truth, iter_event_chunks, plan_sequence, simulate_to_h5  # noqa: E402


class Clock:
    """Wall-clock and CPU seconds of a block."""

    def __enter__(self) -> Clock:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0


def run_seed(config: SimConfig, seed: int, write: bool) -> dict:
    """Time one seed: the in-memory simulation (and its event loop), and with ``write`` simulate_to_h5."""
    with Clock() as total:
        plan = plan_sequence(config, seed)
        with Clock() as loop:
            n = sum(chunk.size for chunk in iter_event_chunks(plan))
        ground_truth(plan)
    row = {"seed": seed, "photo": plan.photo, "speed_px_s": round(plan.speed_px_s, 1), "events": n,
           "wall_s": round(total.wall, 3), "cpu_s": round(total.cpu, 3), "event_loop_cpu_s": round(loop.cpu, 3)}
    if write:
        with tempfile.TemporaryDirectory() as tmp:
            with Clock() as clock:
                path = simulate_to_h5(Path(tmp) / "bench.h5", config, seed)
            row["h5_mb"] = round(path.stat().st_size / 1e6, 1)
        row["h5_wall_s"], row["h5_cpu_s"] = round(clock.wall, 3), round(clock.cpu, 3)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    parser.add_argument("--duration", type=float, default=3.0, help="seconds simulated per seed")
    parser.add_argument("--seeds", type=int, default=6, help="number of seeds (0, 1, ...), each its own photo")
    parser.add_argument("--motion", choices=MOTION_KINDS, default="mixed")
    parser.add_argument("--write", action="store_true",
                        help="also time simulate_to_h5 (gzip HDF5 behind the byte shuffle) per seed")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per seed; the fastest (least disturbed) is kept, for shared machines")
    args = parser.parse_args()
    config = SimConfig(resolution=tuple(args.resolution), duration=args.duration, motion=args.motion)

    plan_sequence(config, 0)  # warm up imports (scikit-image, h5py) so they are not timed
    load_before = os.getloadavg()
    per_seed = []
    for seed in range(args.seeds):
        runs = [run_seed(config, seed, args.write) for _ in range(max(1, args.repeat))]
        per_seed.append(min(runs, key=lambda r: r["cpu_s"] + r.get("h5_cpu_s", 0.0)))

    events = sum(r["events"] for r in per_seed)
    wall = sum(r["wall_s"] for r in per_seed)
    cpu = sum(r["cpu_s"] for r in per_seed)
    loop_cpu = sum(r["event_loop_cpu_s"] for r in per_seed)
    result = {
        "events": events,
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "events_per_s": round(events / wall),
        "events_per_cpu_s": round(events / cpu),
        "event_loop_events_per_cpu_s": round(events / loop_cpu),
        "simulated_s_per_cpu_s": round(args.seeds * args.duration / cpu, 3),
        "resolution": list(config.resolution),
        "settings": {k: v for k, v in to_dict(config).items() if k != "image"},
        "threads": 1,
        "repeat": args.repeat,
        "cpu": cpu_model(),
        "nproc": os.cpu_count(),
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "per_seed": per_seed,
    }
    if args.write:
        result["h5_events_per_s"] = round(events / sum(r["h5_wall_s"] for r in per_seed))
        result["h5_events_per_cpu_s"] = round(events / sum(r["h5_cpu_s"] for r in per_seed))
        result["h5_mb"] = round(sum(r["h5_mb"] for r in per_seed), 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
