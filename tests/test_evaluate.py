"""Evaluation protocols: hand-computed AEE/outliers/AAE on a tiny recording with known GT, the dt=4 logic,
sanity rows, the golden ECD FWL/RSAT of the reference, metrics.json, tables and bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from eventflow.cli import main as cli_main
from eventflow.evaluate import (
    GT_FLOW,
    ZERO_FLOW,
    EvalResult,
    comparison_table,
    evaluate,
    evaluate_models,
    format_table,
    get_protocol,
    gt_as_network_output,
    gt_interval_step,
    protocol_spec,
    with_splits,
)
from eventflow.events import make_events
from eventflow.io.h5write import write_recording
from eventflow.metrics import predicted_displacement
from eventflow.models import build_model

RES = (8, 8)
N_PER_INTERVAL = 48  # 12 per quarter: more than the 10 events of an empty window
DT_EVENT = 0.02  # s between events: a window of 48 events lasts 47 * 0.02 s


def _events_of_interval(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interval k (between GT maps at t = k and k + 1): 48 events; quarters 0-2 on rows 1-2, the last quarter on
    rows 3-4, where the GT is larger."""
    j = np.arange(N_PER_INTERVAL)
    last = j >= 36
    y = np.where(last, 3 + j % 2, 1 + j % 2)
    x = np.where(last, 1 + j % 5, 1 + j % 6)
    t = k + 0.01 + j * DT_EVENT
    return x, y, t


def _gt_map() -> np.ndarray:
    gt = np.zeros((2, *RES), np.float32)
    gt[0] = 3.0
    gt[1, 3:5] = 4.0  # rows 3-4: (3, 4), magnitude 5
    gt[:, :, 7] = 0.0  # column 7: no ground truth
    return gt


def _write_gt_recording(path, group="flow_dt1", intervals=2):
    xs, ys, ts = zip(*(_events_of_interval(k) for k in range(intervals)))
    x, y, t = np.concatenate(xs), np.concatenate(ys), np.concatenate(ts)
    events = make_events(x, y, t, np.ones_like(x))
    maps = [(float(k), _gt_map()) for k in range(intervals + 1)]
    write_recording(path, events, RES, **{group: maps})
    return x, y, t


@pytest.fixture
def gt_file(tmp_path):
    path = tmp_path / "seq_a.h5"
    _write_gt_recording(path)
    return path


@pytest.fixture
def gt4_file(tmp_path):
    path = tmp_path / "seq_dt4.h5"
    _write_gt_recording(path, group="flow_dt4")
    return path


def _constant_model(cx: float, cy: float):
    """A LIF-FireNet whose prediction layer outputs the constant flow (cx, cy) in tanh units."""
    model = build_model("LIFFireNet_short", base_num_channels=4)
    with torch.no_grad():
        model.pred.conv.weight.zero_()
        model.pred.conv.bias.copy_(torch.atanh(torch.tensor([cx, cy])))
    return model


def _by_hand(pred_px: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """AEE, outliers (%, GT magnitude) and AAE of a constant prediction ``pred_px`` (2,) on the pixels of the
    events (x, y) that have GT."""
    gt = _gt_map()
    pixels = {(int(yy), int(xx)) for yy, xx in zip(y, x) if (gt[:, yy, xx] != 0).any()}
    errs, angles, outliers = [], [], 0
    for yy, xx in pixels:
        g = gt[:, yy, xx].astype(np.float64)
        e = float(np.hypot(*(pred_px - g)))
        errs.append(e)
        outliers += e > 3.0 and e > 0.05 * np.hypot(*g)
        cos = (pred_px @ g + 1) / (np.sqrt(pred_px @ pred_px + 1) * np.sqrt(g @ g + 1))
        angles.append(math.degrees(math.acos(min(1.0, cos))))
    return {"AEE": float(np.mean(errs)), "outliers_pct": 100.0 * outliers / len(pixels), "AAE": float(np.mean(angles))}


# --------------------------------------------------------------------------------------------- GT protocols


def test_dt1_hand_computed_and_sanity_rows(gt_file):
    c = np.array([0.02, -0.01])
    res = evaluate(_constant_model(*c), None, gt_file, "mvsec-dt1", hot_filter=False, progress=False, label="const")
    assert res.methods == ["const", ZERO_FLOW, GT_FLOW]
    assert len(res.per_window["const"]) == 2  # one per GT interval
    dt_input = (N_PER_INTERVAL - 1) * DT_EVENT
    pred_px = c.astype(np.float32).astype(np.float64) * 128 * 1.0 / dt_input
    for k, row in enumerate(res.per_window["const"]):
        x, y, _ = _events_of_interval(k)
        expected = _by_hand(pred_px, x, y)
        for metric, value in expected.items():
            assert row[metric] == pytest.approx(value, rel=1e-4), metric
        assert row["window"] == k and row["t_start"] == pytest.approx(k) and row["t_end"] == pytest.approx(k + 1)
    # zero flow: AEE = mean GT magnitude on the evaluated pixels; GT flow: AEE ~ 0, no outliers
    x, y, _ = _events_of_interval(0)
    zero = _by_hand(np.zeros(2), x, y)
    assert res.means[ZERO_FLOW]["AEE"] == pytest.approx(zero["AEE"], rel=1e-6)
    assert res.means[ZERO_FLOW]["FWL"] == pytest.approx(1.0) and res.means[ZERO_FLOW]["RSAT"] == pytest.approx(1.0)
    assert res.means[GT_FLOW]["AEE"] < 1e-4 and res.means[GT_FLOW]["outliers_pct"] == 0.0
    assert res.means[GT_FLOW]["AAE"] < 1e-2


def test_dt4_evaluates_once_per_interval_with_the_last_quarter(gt4_file):
    c = np.array([0.01, 0.01])
    res = evaluate(_constant_model(*c), None, gt4_file, "mvsec-dt4", hot_filter=False, progress=False, label="const")
    rows = res.per_window["const"]
    assert [r["window"] for r in rows] == [3, 7]  # the last quarter of each of the two intervals
    dt_quarter = 11 * DT_EVENT  # the last quarter: events 36..47 of the interval
    pred_px = c.astype(np.float32).astype(np.float64) * 128 * 1.0 / dt_quarter
    for k, row in enumerate(rows):
        x, y, _ = _events_of_interval(k)
        expected = _by_hand(pred_px, x[36:], y[36:])  # the last quarter's events only
        assert row["AEE"] == pytest.approx(expected["AEE"], rel=1e-4)
        assert row["AAE"] == pytest.approx(expected["AAE"], rel=1e-4)
    # zero flow sees only the last quarter's pixels, all on the rows where |GT| = 5
    assert res.means[ZERO_FLOW]["AEE"] == pytest.approx(5.0)
    assert res.means[ZERO_FLOW]["FWL"] == pytest.approx(1.0)  # FWL over the 4 quarters as 4 passes


def test_dt1_with_splits_evaluates_the_last_split_scaled_to_the_interval(gt_file):
    c = np.array([0.01, 0.01])
    res = evaluate(_constant_model(*c), None, gt_file, "mvsec-dt1", splits=4, hot_filter=False, progress=False,
                   label="const")
    assert res.settings["protocol"] == "mvsec-dt1/4" and res.settings["window"]["size"] == 0.25
    rows = res.per_window["const"]
    assert [r["window"] for r in rows] == [3, 7]  # the last of the 4 windows of each interval
    pred_px = c.astype(np.float32).astype(np.float64) * 128 * 1.0 / (11 * DT_EVENT)  # scaled to the interval
    for k, row in enumerate(rows):
        x, y, _ = _events_of_interval(k)
        assert row["AEE"] == pytest.approx(_by_hand(pred_px, x[36:], y[36:])["AEE"], rel=1e-4)
    assert res.means[ZERO_FLOW]["AEE"] == pytest.approx(5.0)
    assert res.means[GT_FLOW]["AEE"] < 1e-4
    # splits equal to the protocol's own count change nothing
    assert with_splits("mvsec-dt4", 4) == get_protocol("mvsec-dt4")
    with pytest.raises(ValueError, match="splits applies to the GT protocols only"):
        with_splits("events", 2)
    with pytest.raises(ValueError, match="splits must be a positive integer"):
        with_splits("mvsec-dt1", 0)


def test_gt_interval_counter_skips_windows_without_interval():
    count, fired = 0, []
    for dt in [0.1, 0.0, 0.1, 0.1, -1.0, 0.1, 0.1]:
        now, count = gt_interval_step(count, dt, 4)
        fired.append(now)
    assert fired == [False, False, False, False, False, True, False]
    assert [gt_interval_step(0, 0.5, 1)] == [(True, 0)]


def test_gt_as_network_output_inverts_predicted_displacement():
    gt = torch.randn(2, 2, 3, 4)
    dt_gt, dt_in = torch.tensor([0.05, 0.2], dtype=torch.float64), torch.tensor([0.01, 0.0], dtype=torch.float64)
    flow = gt_as_network_output(gt, dt_gt, dt_in, 128.0)
    back = predicted_displacement(flow, dt_gt, dt_in, 128.0)
    torch.testing.assert_close(back[0], gt[0].double(), rtol=1e-5, atol=1e-5)
    assert torch.all(flow[1] == 0)  # an empty window has no defined conversion


def test_compat_reports_outliers_in_percent_from_the_predicted_magnitude(gt_file):
    c = np.array([0.3, 0.0])  # far too fast: every evaluated pixel is an outlier either way
    model = _constant_model(*c)
    ours = evaluate(model, None, gt_file, "mvsec-dt1", hot_filter=False, progress=False, baselines=False)
    ref = evaluate(model, None, gt_file, "mvsec-dt1", hot_filter=False, progress=False, baselines=False,
                   compat="hagenaars2021")
    assert ours.mean["outliers_pct"] == pytest.approx(100.0)
    assert ref.mean["outliers_pct"] == pytest.approx(100.0)
    assert ref.mean["AEE"] == pytest.approx(ours.mean["AEE"], rel=1e-6)


# ------------------------------------------------------------------------------------------------ golden


@pytest.mark.golden
def test_golden_ecd_fwl_rsat_with_compat(pretrained_liffirenet, ecd_h5, golden_npz):
    """The reference ECD evaluation: 15000-event windows, hot-pixel filter on, FWL and RSAT per window."""
    res = evaluate("LIFFireNet", pretrained_liffirenet, ecd_h5, "events", compat="hagenaars2021", progress=False,
                   baselines=False)
    rows = res.per_window["LIFFireNet"]
    np.testing.assert_allclose([r["FWL"] for r in rows], golden_npz["ecd15k_fwl"][:, 0], rtol=1e-5)
    np.testing.assert_allclose([r["RSAT"] for r in rows], golden_npz["ecd15k_rsat"][:, 0], rtol=1e-5)
    assert res.mean["FWL"] == pytest.approx(float(golden_npz["ecd15k_fwl_mean"]), rel=1e-5)
    assert res.mean["RSAT"] == pytest.approx(float(golden_npz["ecd15k_rsat_mean"]), rel=1e-5)


# ----------------------------------------------------------------------------------------------- outputs


def test_metrics_json_structure(gt_file, tmp_path):
    res = evaluate(_constant_model(0.01, 0.0), None, gt_file, "mvsec-dt1", hot_filter=False, progress=False)
    out = res.write_json(tmp_path / "out" / "metrics.json")
    assert sorted(p.name for p in out.parent.iterdir()) == ["metrics.json"]  # atomic: no temporary left
    data = json.loads(out.read_text())
    assert set(data) == {"method", "mean", "per_sequence", "per_window", "baselines", "settings"}
    assert set(data["mean"]) == {"AEE", "outliers_pct", "AAE", "FWL", "RSAT"}
    assert set(data["per_sequence"]) == {"seq_a"} and data["per_sequence"]["seq_a"]["n_windows"] == 2
    assert set(data["per_window"][0]) == {"sequence", "window", "t_start", "t_end", "AEE", "outliers_pct", "AAE",
                                          "FWL", "RSAT"}
    assert set(data["baselines"]) == {ZERO_FLOW, GT_FLOW}
    s = data["settings"]
    for key in ("models", "checkpoint", "protocol", "window", "compat", "hot_filter", "flow_scaling", "versions"):
        assert key in s, key
    assert s["protocol"] == "mvsec-dt1" and s["window"] == {"mode": "gt", "size": 1.0, "dt": 1}
    assert s["hot_filter"] is None and s["flow_scaling"] == 128.0


def test_nan_is_written_as_null(tmp_path):
    res = EvalResult({}, ("FWL",), ["m"], per_window={"m": [{"sequence": "s", "window": 0, "t_start": 0.0,
                                                              "t_end": 1.0, "FWL": math.nan}]})
    res.summarise()
    data = json.loads(res.write_json(tmp_path / "m.json").read_text())
    assert data["mean"]["FWL"] is None and data["per_window"][0]["FWL"] is None


def test_cli_evaluate_writes_metrics_and_prints_tables(gt_file, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    rc = cli_main(["evaluate", "--model", "LIFFireNet_short", "--set", "base_num_channels=4", "--data",
                   str(gt_file.parent), "--protocol", "mvsec-dt1", "--out", str(out), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr()
    assert "zero flow" in printed.out and "GT flow" in printed.out and "random" in printed.err
    assert json.loads(out.read_text())["settings"]["hot_filter"]["max_px"] == 100  # on by default


def test_comparison_table_lines_up_methods_and_data_sets():
    a = EvalResult({}, ("AEE",), ["net", ZERO_FLOW], means={"net": {"AEE": 1.5}, ZERO_FLOW: {"AEE": 3.0}})
    b = EvalResult({}, ("FWL", "RSAT"), ["net", ZERO_FLOW, "other"],
                   means={"net": {"FWL": 1.2, "RSAT": 0.9}, ZERO_FLOW: {"FWL": 1.0, "RSAT": 1.0},
                          "other": {"FWL": 1.1, "RSAT": math.nan}})
    rows = comparison_table({"sim": a, "ECD": b})
    assert [r["method"] for r in rows] == ["net", ZERO_FLOW, "other"]
    assert rows[0] == {"method": "net", "sim AEE": 1.5, "ECD FWL": 1.2, "ECD RSAT": 0.9}
    assert rows[2]["sim AEE"] is None
    text = format_table(rows).splitlines()
    assert text[0].split() == ["method", "sim", "AEE", "ECD", "FWL", "ECD", "RSAT"]
    assert text[-1].split() == ["other", "-", "1.100", "-"]


# --------------------------------------------------------------------------------------------- bad input


def test_gt_protocol_on_data_without_gt_names_the_file(tmp_path):
    path = tmp_path / "nogt.h5"
    n = 100
    write_recording(path, make_events([1] * n, [1] * n, np.linspace(0, 1, n), [1] * n), RES)
    with pytest.raises(ValueError, match="nogt.h5: no flow_dt1 ground truth"):
        evaluate(build_model("LIFFireNet_short", base_num_channels=4), None, path, "mvsec-dt1", progress=False)


def test_all_empty_windows_name_the_file(tmp_path):
    path = tmp_path / "sparse.h5"
    t = np.array([0.1, 0.2, 1.1, 1.2, 2.1])  # at most 10 events between GT maps
    write_recording(path, make_events([1] * 5, [1] * 5, t, [1] * 5), RES,
                    flow_dt1=[(float(k), _gt_map()) for k in range(3)])
    with pytest.raises(ValueError, match=r"sparse.h5: all 2 windows are empty"):
        evaluate(build_model("LIFFireNet_short", base_num_channels=4), None, path, "mvsec-dt1", progress=False)


def test_resolution_mismatch_names_the_file(gt_file):
    model = build_model("LIFFireNet_short", base_num_channels=4)
    with pytest.raises(ValueError, match=r"seq_a.h5: the sensor is 8x8, larger than the requested resolution 4x4"):
        evaluate(model, None, gt_file, "mvsec-dt1", resolution=(4, 4), progress=False)
    with pytest.raises(ValueError, match=r"seq_a.h5: EVFlowNet needs H and W divisible by 16"):
        evaluate(build_model("EVFlowNet", base_num_channels=2), None, gt_file, "mvsec-dt1", progress=False)


def test_protocol_arguments_are_checked(gt_file):
    with pytest.raises(ValueError, match="unknown protocol 'mvsec'"):
        protocol_spec("mvsec")
    with pytest.raises(ValueError, match="window_events applies to the 'events' protocol only"):
        protocol_spec("mvsec-dt1", window_events=1000)
    with pytest.raises(ValueError, match="reserved for the baselines"):
        evaluate_models({ZERO_FLOW: build_model("LIFFireNet_short", base_num_channels=4)}, gt_file, "events",
                        window_events=20, progress=False)
