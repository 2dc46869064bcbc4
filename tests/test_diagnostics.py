"""The diagnostic scripts of benchmarks/: the loss landscape and the flow alignment, on a simulated translation."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from eventflow.models import build_model, save_checkpoint
from eventflow.paths import project_root
from eventflow.simulate import SimConfig, simulate_to_h5


@pytest.fixture(scope="module")
def translation(tmp_path_factory):
    """0.3 s of a photo translating at 64x64 with flow_dt1 at 30 Hz."""
    path = tmp_path_factory.mktemp("diag") / "translation.h5"
    simulate_to_h5(path, SimConfig(resolution=(64, 64), duration=0.3, motion="translation", image=("astronaut",)),
                   seed=3)
    return path


def _run(script: str, *args: str) -> list[dict]:
    done = subprocess.run([sys.executable, str(project_root() / "benchmarks" / script), *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_loss_landscape_ranks_the_ground_truth_below_zero_flow(translation):
    rows = _run("loss_landscape.py", str(translation), "--splits", "1", "8", "--passes", "8", "--noise", "1")
    assert [r["splits"] for r in rows] == [1, 8]
    coarse, fine = rows
    assert fine["events_per_pass"] < coarse["events_per_pass"]
    assert fine["gt_px_per_pass"] == pytest.approx(coarse["gt_px_per_pass"] / 8, rel=0.35)
    assert set(fine) >= {"zero", "GT", "noise 1", "GT+noise 1"}
    assert fine["GT"] < fine["zero"] and fine["GT"] < fine["noise 1"]  # a band where the loss is informative


def test_loss_landscape_fit_finds_the_translation(translation):
    # Minimising the loss over one constant flow from zero lands on the mean GT motion per pass (~1.8 px here);
    # a free per-pixel field reaches a lower loss than the GT's, away from the GT (event collapse).
    (row,) = _run("loss_landscape.py", str(translation), "--splits", "4", "--passes", "8", "--noise", "1",
                  "--fit", "100")
    assert row["gt_mean_px"][0] == pytest.approx(row["fit_const_px"][0], abs=0.15)
    assert row["gt_mean_px"][1] == pytest.approx(row["fit_const_px"][1], abs=0.15)
    assert min(abs(v) for v in row["gt_mean_px"]) > 0.5
    assert row["fit_field_GT_loss"] == row["GT"] and row["fit_field_loss"] < row["GT"]
    assert -1 <= row["fit_field_cosine"] <= 1


def test_zero_flow_is_a_trap_of_integer_event_positions(translation):
    # ~0.9 px per pass: from zero, the constant fit does not leave zero along x (events on the pixel lattice make
    # zero flow a strict local minimum); with sub-pixel dithered events it reaches the GT motion.
    plain, dithered = (_run("loss_landscape.py", str(translation), "--splits", "8", "--passes", "8", "--noise",
                            "1", "--fit", "100", *extra)[0] for extra in ((), ("--dither",)))
    assert (plain["dither"], dithered["dither"]) == (False, True)
    assert plain["gt_mean_px"] == dithered["gt_mean_px"] and abs(plain["gt_mean_px"][0]) > 0.5
    assert abs(plain["fit_const_px"][0]) < 0.1
    assert dithered["fit_const_px"][0] == pytest.approx(dithered["gt_mean_px"][0], abs=0.15)
    assert dithered["fit_const_px"][1] == pytest.approx(dithered["gt_mean_px"][1], abs=0.15)
    assert dithered["GT"] < dithered["zero"]


def test_flow_alignment_of_a_constant_flow_model(translation, tmp_path):
    # A model whose output is one constant flow: reversing it reverses the cosine and the best scale, and leaves
    # the magnitudes and the zero-flow AEE as they were.
    means = []
    for sign in (1.0, -1.0):
        model = build_model("LIFFireNet_short", base_num_channels=4)
        with torch.no_grad():
            model.pred.conv.weight.zero_()
            model.pred.conv.bias.copy_(torch.tensor([0.01, 0.004]) * sign)
        ckpt = tmp_path / f"const{sign:+.0f}.pt"
        save_checkpoint(ckpt, model)
        rows = _run("flow_alignment.py", "--checkpoint", str(ckpt), "--data", str(translation), "--splits", "2",
                    "--max-windows", "3")
        assert rows[-1]["data"] == "mean" and rows[-1]["intervals"] == 3
        means.append(rows[-1])
    plus, minus = means
    assert abs(plus["cosine"]) > 0.1 and minus["cosine"] == pytest.approx(-plus["cosine"], abs=1e-3)
    assert minus["best_scale"] == pytest.approx(-plus["best_scale"], rel=1e-3)
    assert plus["pred_px"] == pytest.approx(minus["pred_px"], rel=1e-6) and plus["pred_px"] > 0
    assert plus["AEE_zero"] == pytest.approx(plus["gt_px"]) and minus["AEE_zero"] == plus["AEE_zero"]
    # One vector everywhere, and the translation's GT is (nearly) one vector too.
    assert plus["pred_uniformity"] == pytest.approx(1.0, abs=1e-6) and plus["gt_uniformity"] > 0.95
