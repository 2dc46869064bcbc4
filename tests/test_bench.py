"""``eventflow bench``: one JSON line with the documented keys (tiny model and sizes; no timing asserted), and the
benchmark script against the reference where a copy of it is present."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from eventflow import cli
from eventflow.paths import project_root
from eventflow.train.bench import CUDAGRAPH_COMPILE_MODES, moving_dots_windows, run_bench

KEYS = {"train_steps_per_s", "infer_fwd_per_s_b1", "infer_fwd_per_s_b8", "device", "torch", "threads", "batch",
        "resolution", "lif_backend", "compile", "model"}


def test_bench_prints_one_json_line_with_the_rates(capsys):
    threads = torch.get_num_threads()
    try:
        code = cli.main(["bench", "--model", "LIFFireNet_short", "--device", "cpu", "--batch", "8", "--resolution",
                         "16", "16", "--steps", "1", "--warmup", "0", "--infer-steps", "2", "--threads", "1",
                         "--lif-backend", "torch"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert KEYS <= set(record)
    assert record["threads"] == 1 and record["resolution"] == [16, 16] and record["device"] == "cpu"
    assert record["lif_backend"] == "torch"
    assert all(record[k] > 0 for k in ("train_steps_per_s", "infer_fwd_per_s_b1", "infer_fwd_per_s_b8"))


def test_bench_inputs_are_windows_of_moving_dots():
    windows = moving_dots_windows(3, (20, 24), passes=2, events=100, seed=5)
    assert len(windows) == 2
    w = windows[0]
    assert w["event_cnt"].shape == (3, 2, 20, 24) and w["event_list"].shape == (3, 100, 4)
    assert torch.equal(w["event_cnt"].sum(dim=(1, 2, 3)), torch.full((3,), 100.0))
    assert not w["reset"].any() and w["active"].all()
    again = moving_dots_windows(3, (20, 24), passes=2, events=100, seed=5)
    assert torch.equal(again[1]["event_list"], windows[1]["event_list"])


def test_bench_script_against_the_reference():
    reference = os.environ.get("EVENTFLOW_REFERENCE", str(project_root() / "third_party" / "event_flow"))
    if not os.path.isfile(os.path.join(reference, "models", "model.py")):
        pytest.skip(f"the reference implementation is not at {reference} (set EVENTFLOW_REFERENCE)")
    script = project_root() / "benchmarks" / "bench_train.py"
    done = subprocess.run([sys.executable, str(script), "--batch", "2", "--resolution", "16", "16", "--steps", "1",
                           "--rounds", "1", "--infer-steps", "2", "--threads", "1", "--variants", "torch"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["parity"]["ok"] and summary["parity"]["flow_max_abs_diff"] <= 1e-5
    assert set(summary["speedup"]["torch"]) == {"train_steps_per_s", "infer_fwd_per_s_b1", "infer_fwd_per_s_b2"}


@pytest.mark.parametrize("mode", CUDAGRAPH_COMPILE_MODES)
def test_cuda_graph_compile_modes_are_refused_on_cuda(mode, monkeypatch):
    # The carried state is an output of one CUDA-graph replay and the input of the next, which overwrites it
    # (seen on an H200 with reduce-overhead): refused before any CUDA work, so a CPU machine can check it.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ValueError, match="overwrite the state"):
        run_bench("LIFFireNet", device="cuda", compile=True, compile_mode=mode)
