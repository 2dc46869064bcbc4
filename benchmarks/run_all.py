"""Run the CPU benchmarks of ``benchmarks/`` one after the other (``make bench``) and keep their output.

Each benchmark runs as its own process (its timings are not disturbed by the previous one's memory) with the
settings recorded in ``benchmarks/RESULTS.md``; the output of each goes to ``reports/bench/<name>.txt`` and a
one-line summary (exit status and wall time) is printed. Benchmarks that need something absent are skipped with
the reason: the reference implementation (``$EVENTFLOW_REFERENCE`` or ``third_party/event_flow``) for the
comparisons against it. GPU checks (``gpu_bench.sh``, ``gpu_lif_op_check.py``) are run by hand on a GPU machine.

usage: python benchmarks/run_all.py [--only NAME ...] [--list]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent


class Benchmark(NamedTuple):
    """One benchmark: its ``name``, the script and arguments, and whether it needs the reference checkout."""

    name: str
    args: tuple[str, ...]
    needs_reference: bool = False


BENCHMARKS = (
    Benchmark("simulator", ("bench_simulator.py", "--resolution", "256", "256", "--duration", "2", "--seeds", "3")),
    Benchmark("train_infer", ("bench_train.py", "--steps", "1", "--rounds", "2", "--infer-steps", "10",
                              "--variants", "torch,cpp"), needs_reference=True),
    Benchmark("parity_reference", ("parity_reference.py", "--windows", "5"), needs_reference=True),
    Benchmark("onnx", ("bench_onnx.py", "--repeats", "10")),
    Benchmark("quantize", ("bench_quantize.py", "--repeats", "10")),
)


def reference_dir() -> Path | None:
    """The reference checkout the comparisons import, or None where there is none."""
    folder = Path(os.environ.get("EVENTFLOW_REFERENCE", ROOT / "third_party" / "event_flow"))
    return folder if (folder / "models").is_dir() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHMARKS], help="run only these")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for bench in BENCHMARKS:
            print(f"{bench.name:18s} {' '.join(bench.args)}")
        return 0
    out_dir = ROOT / "reports" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = reference_dir()
    env = dict(os.environ)
    if reference is not None:
        env["EVENTFLOW_REFERENCE"] = str(reference)
    failed = 0
    for bench in BENCHMARKS:
        if args.only and bench.name not in args.only:
            continue
        if bench.needs_reference and reference is None:
            print(f"{bench.name}: skipped (needs a checkout of tudelft/event_flow in third_party/event_flow or "
                  f"$EVENTFLOW_REFERENCE)")
            continue
        log = out_dir / f"{bench.name}.txt"
        start = time.perf_counter()
        with open(log, "w") as handle:
            code = subprocess.call([sys.executable, str(ROOT / "benchmarks" / bench.args[0]), *bench.args[1:]],
                                   stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        failed += code != 0
        print(f"{bench.name}: exit {code} after {time.perf_counter() - start:.0f} s, output in "
              f"{log.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
