"""Evaluation runs for figures and the flow explorer: per-window arrays and the notebook's figures."""

from __future__ import annotations

import numpy as np
import pytest

from eventflow.evalviz import plot_error_maps, plot_flow_over_events, record_run
from eventflow.events import make_events
from eventflow.io.h5write import write_recording
from eventflow.models import build_model
from eventflow.widgets import FlowExplorer, explorer_data_from_run
from eventflow.windows import WindowSpec

RES = (8, 12)


@pytest.fixture
def gt_file(tmp_path):
    n = 120
    rng = np.random.default_rng(3)
    ev = make_events(rng.integers(0, RES[1], n), rng.integers(0, RES[0], n), np.linspace(0.01, 0.99, n),
                     rng.integers(0, 2, n))
    gt = np.zeros((2, *RES), np.float32)
    gt[0] = 2.0
    path = tmp_path / "run.h5"
    write_recording(path, ev, RES, flow_dt1=[(k / 3, gt) for k in range(4)])
    return path


def test_record_run_keeps_every_window_of_every_method(gt_file):
    models = {"lif": build_model("LIFFireNet_short", base_num_channels=4),
              "ann": build_model("FireNet", base_num_channels=4)}
    run = record_run(models, gt_file, WindowSpec("gt", 1.0, dt=1), progress=False)
    t = 3
    assert run.counts.shape == (t, 2, *RES) and run.times.shape == (t,) and run.event_mask.shape == (t, *RES)
    assert list(run.flows_px) == ["lif", "ann", "zero flow"]
    assert all(f.shape == (t, 2, *RES) for f in run.flows_px.values())
    assert np.all(run.flows_px["zero flow"] == 0) and np.all(run.gt_px[:, 0] == 2.0)
    assert set(run.spike_rates) == {"lif"} and run.spike_rates["lif"]["G1"].shape == (t, 4)
    assert run.iwe_before.sum() == pytest.approx(run.counts.sum())  # every event lands unwarped
    np.testing.assert_allclose(run.iwe_after["zero flow"], run.iwe_before)
    data = explorer_data_from_run(run)
    explorer = FlowExplorer(data, views=("events", "flow", "gt", "error", "iwe_after", "spikes"), model="lif")
    assert explorer.png("error")[:4] == b"\x89PNG" and data.models == ["lif", "ann", "zero flow"]


def test_figures_of_a_run(gt_file):
    run = record_run({"lif": build_model("LIFFireNet_short", base_num_channels=4)}, gt_file,
                     WindowSpec("gt", 1.0, dt=1), progress=False, hot_filter=None)
    fig = plot_error_maps(run, window=1)
    assert len(fig.axes) >= 3  # ground truth + two methods (+ colour bars)
    assert len(plot_flow_over_events(run, window=-1).axes) >= 3
    with pytest.raises(ValueError, match="unknown method"):
        plot_error_maps(run, methods=["nope"])
    with pytest.raises(IndexError, match="window 3 out of range"):
        plot_error_maps(run, window=3)
    events_run = record_run({}, gt_file, WindowSpec("events", 40), progress=False)
    with pytest.raises(ValueError, match="error maps need ground truth"):
        plot_error_maps(events_run)
