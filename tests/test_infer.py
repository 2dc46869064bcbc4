"""``eventflow infer``: golden flows of the reference, the npz layout, every model class on a real recording,
lanes over a folder, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from eventflow.cli import main as cli_main
from eventflow.events import make_events
from eventflow.inference import Crop, plan_recording
from eventflow.io.h5write import write_recording
from eventflow.models import MODEL_REGISTRY, get_spec
from eventflow.windows import WindowSpec

RES = (8, 8)


def _write(path, n=100, t0=0.0, gt=False, seed=0):
    rng = np.random.default_rng(seed)
    t = t0 + np.sort(rng.uniform(0, 1, n))
    ev = make_events(rng.integers(0, RES[1], n), rng.integers(0, RES[0], n), t, rng.integers(0, 2, n))
    maps = [(t0 + k * 0.25, np.full((2, *RES), 1.5, np.float32)) for k in range(5)] if gt else []
    write_recording(path, ev, RES, flow_dt1=maps)
    return path


def _infer(*args: str) -> int:
    return cli_main(["infer", "--model", "LIFFireNet_short", "--set", "base_num_channels=4", "--no-progress",
                     *args])


# -------------------------------------------------------------------------------------------------- golden


@pytest.mark.golden
def test_infer_reproduces_the_reference_flows(pretrained_liffirenet, ecd_h5, golden_npz, shared_dir, tmp_path):
    """The authors' LIF-FireNet on the ECD excerpt, 1000-event windows, through the command line; checked by the
    shared parity checker (>= 99 % of values within 1e-4 in every window)."""
    out = tmp_path / "flows.npz"
    cmd = [sys.executable, "-m", "eventflow", "infer", "--model", "LIFFireNet", "--checkpoint",
           str(pretrained_liffirenet), "--data", str(ecd_h5), "--window-events", "1000", "--max-windows", "20",
           "--out", str(out), "--no-progress"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    checker = shared_dir / "checks" / "parity.py"
    golden = shared_dir / "golden" / "golden_liffirenet_ecd.npz"
    check = subprocess.run([sys.executable, str(checker), str(out), str(golden), "flow", "20"], capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


# ----------------------------------------------------------------------------------------------- the npz


def test_npz_layout_for_gt_windows(tmp_path):
    path = _write(tmp_path / "gt.h5", gt=True)
    out = tmp_path / "flows.npz"
    assert _infer("--data", str(path), "--window-gt", "dt1", "--flow-scaling", "64", "--out", str(out)) == 0
    d = np.load(out)
    assert set(d.files) == {"flow_raw", "flow_px", "flow_px_gt", "gt_index", "t_start", "t_end", "dt_input", "dt_gt",
                            "num_events", "window_index", "file_index", "files", "metadata"}
    t = 4  # GT maps at 0, 0.25, ..., 1.0: four intervals
    assert d["flow_raw"].shape == d["flow_px"].shape == d["flow_px_gt"].shape == (t, 1, 2, *RES)
    assert d["flow_raw"].dtype == np.float32
    for key in ("t_start", "t_end", "dt_input", "dt_gt", "num_events", "window_index", "gt_index"):
        assert d[key].shape == (t,), key
    np.testing.assert_allclose(d["flow_px"], d["flow_raw"] * 64, rtol=1e-6)
    ratio = (d["dt_gt"] / d["dt_input"])[:, None, None, None, None]
    np.testing.assert_allclose(d["flow_px_gt"], d["flow_px"] * ratio, rtol=1e-5)
    np.testing.assert_allclose(d["t_start"], [0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(d["dt_gt"], 0.25)
    assert d["gt_index"].tolist() == [1, 2, 3, 4] and d["window_index"].tolist() == [0, 1, 2, 3]
    meta = json.loads(str(d["metadata"]))
    assert meta["model"] == "LIFFireNet_short" and meta["checkpoint"] is None
    assert meta["window"] == {"mode": "gt", "size": 1.0, "dt": 1} and meta["flow_scaling"] == 64.0
    assert meta["hot_filter"] is None and meta["resolution"] == list(RES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flows.npz", "gt.h5"]  # nothing left behind


def test_folder_runs_as_lanes_with_state_reset_per_recording(tmp_path):
    """Lanes over a folder give, recording by recording, exactly the flows of running each file alone."""
    folder = tmp_path / "seqs"
    folder.mkdir()
    a = _write(folder / "a.h5", n=100, seed=1)
    b = _write(folder / "b.h5", n=60, seed=2)
    alone = {}
    for p in (a, b):
        assert _infer("--data", str(p), "--window-events", "20", "--out", str(tmp_path / f"{p.stem}.npz")) == 0
        alone[p.stem] = np.load(tmp_path / f"{p.stem}.npz")["flow_raw"][:, 0]  # (T, 2, H, W)
    assert _infer("--data", str(folder), "--window-events", "20", "--batch", "2", "--out",
                  str(tmp_path / "lanes.npz")) == 0
    d = np.load(tmp_path / "lanes.npz")
    assert d["flow_raw"].shape == (5, 2, 2, *RES) and d["file_index"].shape == (5, 2)
    assert d["file_index"].tolist() == [[0, 1], [0, 1], [0, 1], [0, -1], [0, -1]]
    np.testing.assert_array_equal(d["flow_raw"][:, 0], alone["a"])
    np.testing.assert_array_equal(d["flow_raw"][:3, 1], alone["b"])
    assert np.all(d["flow_raw"][3:, 1] == 0) and d["window_index"][3:, 1].tolist() == [-1, -1]
    # one lane: b follows a in the same lane, its state reset where it starts
    assert _infer("--data", str(folder), "--window-events", "20", "--out", str(tmp_path / "one.npz")) == 0
    one = np.load(tmp_path / "one.npz")["flow_raw"][:, 0]
    np.testing.assert_array_equal(one, np.concatenate([alone["a"], alone["b"]]))


# -------------------------------------------------------------------------------------- every model class


@pytest.mark.parametrize("name", list(MODEL_REGISTRY))
def test_every_model_class_runs_on_a_real_recording(name, ecd_h5, tmp_path, capsys):
    """Random weights (with a warning), 4 base channels, a centred 32x32 crop, two windows of 1000 events."""
    out = tmp_path / "flows.npz"
    rc = cli_main(["infer", "--model", name, "--checkpoint", "none", "--set", "base_num_channels=4", "--data",
                   str(ecd_h5), "--window-events", "1000", "--resolution", "32", "32", "--crop", "--max-windows", "2",
                   "--hot-filter", "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert "weights are random" in capsys.readouterr().err
    d = np.load(out)
    assert d["flow_raw"].shape == (2, 1, 2, 32, 32) and np.isfinite(d["flow_raw"]).all()
    assert np.abs(d["flow_raw"]).max() <= 1.0  # tanh output
    if get_spec(name).family == "evflownet":
        rc = cli_main(["infer", "--model", name, "--set", "base_num_channels=2", "--data", str(ecd_h5),
                       "--window-events", "1000", "--resolution", "40", "36", "--crop", "--pad", "--max-windows",
                       "1", "--out", str(out), "--no-progress"])
        assert rc == 0 and np.load(out)["flow_raw"].shape == (1, 1, 2, 40, 36)


def test_crop_takes_the_centre_and_drops_outside_events(ecd_h5):
    plan = plan_recording(ecd_h5, WindowSpec("events", 1000), resolution=(64, 64), crop=True, max_windows=1)
    assert plan.crop == Crop((64, 64), 58, 88) and plan.resolution == (64, 64)
    ev = make_events([88, 87, 151, 152], [58, 58, 121, 122], [0.0, 0.1, 0.2, 0.3], [1, 1, 1, 1])
    kept = plan.crop.events(ev)
    assert kept["x"].tolist() == [0, 63] and kept["y"].tolist() == [0, 63]


# ---------------------------------------------------------------------------------------------- bad input


def _error_of(capsys, *args) -> str:
    assert _infer(*args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1]


def test_errors_are_one_line_and_name_the_file(tmp_path, capsys):
    plain = _write(tmp_path / "plain.h5")
    out = str(tmp_path / "o.npz")
    msg = _error_of(capsys, "--data", str(plain), "--window-gt", "dt1", "--out", out)
    assert "plain.h5: no flow_dt1 ground truth" in msg
    msg = _error_of(capsys, "--data", str(plain), "--window-events", "20", "--resolution", "4", "4", "--out", out)
    assert "plain.h5: the sensor is 8x8, larger than the requested resolution 4x4" in msg
    msg = _error_of(capsys, "--data", str(plain), "--window-events", "1000", "--out", out)
    assert "plain.h5: no complete window (windows of 1000 events; the recording has 100 events)" in msg
    msg = _error_of(capsys, "--data", str(plain), "--window-events", "5", "--out", out)
    assert "plain.h5: all 20 windows are empty" in msg
    assert cli_main(["infer", "--model", "EVFlowNet", "--set", "base_num_channels=2", "--data", str(plain),
                     "--window-events", "20", "--out", out, "--no-progress"]) == 1
    msg = capsys.readouterr().err.strip().splitlines()[-1]
    assert "plain.h5: EVFlowNet needs H and W divisible by 16" in msg and "pad_input" in msg
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("name", ["ecd_shapes_rotation.h5", "davis346_moving.h5"])
def test_infer_at_the_full_sensor_size_of_each_shared_recording(name, shared_dir, tmp_path):
    path = shared_dir / "data" / name
    if not path.exists():
        pytest.skip(f"{path} is absent from the shared folder")
    out = tmp_path / "flows.npz"
    assert _infer("--data", str(path), "--window-events", "1000", "--max-windows", "2", "--out", str(out)) == 0
    d = np.load(out)
    h, w = json.loads(str(d["metadata"]))["resolution"]
    assert (h, w) == {"ecd_shapes_rotation.h5": (180, 240), "davis346_moving.h5": (260, 346)}[name]
    assert d["flow_raw"].shape == (2, 1, 2, h, w)
    out_pad = tmp_path / "evflownet.npz"
    assert cli_main(["infer", "--model", "SpikingRecEVFlowNet", "--set", "base_num_channels=2", "--pad", "--data",
                     str(path), "--window-events", "1000", "--max-windows", "1", "--out", str(out_pad),
                     "--no-progress"]) == 0
    assert np.load(out_pad)["flow_raw"].shape == (1, 1, 2, h, w)
