"""Training-run figures of notebook 02: the metrics log as curves, loss summary, spike rates, IWE before/after."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from eventflow.evalviz import record_run
from eventflow.events import make_events
from eventflow.io.h5write import write_recording
from eventflow.loss import empty_loss_buffer, loss_buffer_append
from eventflow.metrics import flow_warp_loss, iwe_for_visualisation
from eventflow.models import build_model
from eventflow.train.metrics_log import MetricsLog
from eventflow.trainviz import (
    iwe_sharpness,
    loss_summary,
    plot_iwe_before_after,
    plot_loss_curves,
    plot_spike_rates,
    read_metrics,
    run_spike_rates,
    running_mean,
    sharpness_table,
    spike_rate_table,
)
from eventflow.windows import WindowSpec

LAYERS = ["spike_rate/head", "spike_rate/G1"]


def _write_log(folder, steps=12, log_every=3, rsat=True):
    """A run folder as the training loop leaves it: metrics.jsonl/.csv (spike rates every ``log_every``
    steps) and a checkpoint file."""
    log = MetricsLog(folder, LAYERS)
    for s in range(1, steps + 1):
        record = {"step": s, "epoch": (s - 1) // 6, "batch": 10 * s, "loss": 2.0 - 0.1 * s, "lr": 2e-4,
                  "grad_norm": float(s), "time_per_step": 1.5, "elapsed": 1.5 * s}
        if rsat:
            record["rsat"] = 1.0 - 0.01 * s
        if s % log_every == 0:
            record.update({LAYERS[0]: 0.01 * s, LAYERS[1]: 0.02 * s})
        log.write(record)
    log.close()
    (folder / "model.pt").write_bytes(b"weights")
    return folder


def test_read_metrics_turns_the_log_into_arrays(tmp_path):
    run = _write_log(tmp_path)
    curves = read_metrics(run / "model.pt")  # the checkpoint ensure_trained returns finds its folder
    assert curves.run == tmp_path
    assert curves.step.tolist() == list(range(1, 13)) and curves.step.dtype == np.int64
    np.testing.assert_allclose(curves.loss, 2.0 - 0.1 * np.arange(1, 13))
    np.testing.assert_allclose(curves.rsat, 1.0 - 0.01 * np.arange(1, 13))
    np.testing.assert_allclose(curves.elapsed, 1.5 * np.arange(1, 13))
    assert curves.epoch.tolist() == [0] * 6 + [1] * 6
    assert curves.spike_step.tolist() == [3, 6, 9, 12]
    assert list(curves.spike_rates) == ["head", "G1"]
    np.testing.assert_allclose(curves.spike_rates["G1"], [0.06, 0.12, 0.18, 0.24])


def test_read_metrics_of_an_ann_without_rsat(tmp_path):
    log = MetricsLog(tmp_path, [])
    for s in (1, 2):
        log.write({"step": s, "epoch": 0, "loss": 1.0})
    log.close()
    curves = read_metrics(tmp_path)
    assert np.isnan(curves.rsat).all() and np.isnan(curves.grad_norm).all()
    assert curves.spike_step.size == 0 and curves.spike_rates == {}


@pytest.mark.parametrize("lines, message", [
    ([], "metrics log is empty"),
    (['{"step": 1, "loss": 1.0}', "{not json"], "line 2 is not JSON"),
    (['{"step": 1}'], "line 1 is not a metrics record"),
    (['[1, 2]'], "line 1 is not a metrics record"),
    (['{"step": 1, "loss": NaN}'], "line 1 has a non-finite loss"),
    (['{"step": 1, "loss": 1.0}', '{"step": 3, "loss": 1.0}', '{"step": 2, "loss": 1.0}'],
     r"steps do not increase \(step 2 follows step 3\)"),
    (['{"step": 4, "loss": 1.0}', '{"step": 4, "loss": 1.0}'], r"steps do not increase \(step 4 follows step 4\)"),
])
def test_read_metrics_rejects_bad_logs(tmp_path, lines, message):
    (tmp_path / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    with pytest.raises(ValueError, match=message) as info:
        read_metrics(tmp_path)
    assert "metrics.jsonl" in str(info.value) and "\n" not in str(info.value)


def test_read_metrics_without_a_log(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics log"):
        read_metrics(tmp_path)


def test_running_mean_matches_a_direct_window_mean():
    rng = np.random.default_rng(0)
    values = rng.normal(size=40)
    values[[3, 4, 17]] = np.nan
    for window in (1, 4, 50):
        expected = [np.nanmean(values[max(0, i - window + 1):i + 1]) if np.isfinite(values[max(0, i - window + 1):
                    i + 1]).any() else np.nan for i in range(values.size)]
        np.testing.assert_allclose(running_mean(values, window), expected)
    assert np.isnan(running_mean([np.nan, np.nan, 1.0], 1)[:2]).all()
    with pytest.raises(ValueError, match="window must be >= 1"):
        running_mean(values, 0)
    with pytest.raises(ValueError, match=r"expected shape \(N,\)"):
        running_mean(np.zeros((2, 2)), 2)


def test_loss_summary_first_and_last_windows(tmp_path):
    curves = read_metrics(_write_log(tmp_path))
    row = loss_summary({"net": curves}, windows=3)[0]
    assert row["model"] == "net" and row["steps"] == 12
    assert row["loss first"] == pytest.approx(1.8) and row["loss last"] == pytest.approx(0.9)
    assert row["loss change %"] == pytest.approx(-50.0)
    assert row["RSAT first"] == pytest.approx(0.98) and row["RSAT last"] == pytest.approx(0.89)
    assert row["train min"] == pytest.approx(18 / 60)
    whole = loss_summary({"net": curves}, windows=100)[0]  # longer than the run: both means cover all of it
    assert whole["loss first"] == pytest.approx(whole["loss last"])
    with pytest.raises(ValueError, match="windows must be >= 1"):
        loss_summary({"net": curves}, windows=0)


def test_plot_loss_curves_draws_every_run(tmp_path):
    snn = read_metrics(_write_log(tmp_path / "snn"))
    (tmp_path / "ann").mkdir()
    ann = read_metrics(_write_log(tmp_path / "ann", rsat=False))
    fig = plot_loss_curves({"snn": snn, "ann": ann}, smooth=3)
    loss_ax, rsat_ax = fig.axes[:2]
    assert len(loss_ax.get_lines()) == 4  # raw and smoothed per run
    assert len(rsat_ax.get_lines()) == 3  # the SNN's two lines and the zero-flow line at 1
    np.testing.assert_allclose(loss_ax.get_lines()[1].get_ydata(), running_mean(snn.loss, 3))
    only_ann = plot_loss_curves({"ann": ann})
    assert "no RSAT" in only_ann.axes[1].texts[0].get_text()
    with pytest.raises(ValueError, match="no runs"):
        plot_loss_curves({})


@pytest.fixture(scope="module")
def events_run(tmp_path_factory):
    """Two tiny models run over four 30-event windows of a random recording."""
    res = (8, 12)
    n = 120
    rng = np.random.default_rng(5)
    ev = make_events(rng.integers(0, res[1], n), rng.integers(0, res[0], n), np.linspace(0.01, 0.99, n),
                     rng.integers(0, 2, n))
    path = tmp_path_factory.mktemp("trainviz") / "run.h5"
    write_recording(path, ev, res)
    torch.manual_seed(0)
    models = {"lif": build_model("LIFFireNet_short", base_num_channels=4),
              "ann": build_model("FireNet", base_num_channels=4)}
    return record_run(models, path, WindowSpec("events", 30), progress=False, hot_filter=None)


def test_spike_rates_of_a_run(events_run, tmp_path):
    rates = run_spike_rates(events_run)
    assert list(rates) == ["lif"]  # the ANN has no spiking layers
    assert list(rates["lif"]) == list(events_run.spike_rates["lif"])
    for layer, per_channel in rates["lif"].items():
        assert per_channel.shape == (4,)
        np.testing.assert_allclose(per_channel, events_run.spike_rates["lif"][layer].mean(axis=0))
        assert np.all((per_channel >= 0) & (per_channel <= 1))
    table = spike_rate_table(rates)
    assert [row["layer"] for row in table] == list(rates["lif"])
    assert table[0]["lif"] == pytest.approx(float(rates["lif"]["head"].mean()))
    curves = read_metrics(_write_log(tmp_path))
    fig = plot_spike_rates(rates, curves)
    assert len(fig.axes) == 2 and len(fig.axes[1].get_lines()) == 2  # head and G1 over the steps
    assert len(plot_spike_rates(rates).axes) == 1


def test_iwe_sharpness_is_the_flow_warp_loss():
    """One pass: the ratio of the IWE variances equals eventflow.metrics.flow_warp_loss of the same window."""
    rng = np.random.default_rng(1)
    n, h, w = 60, 6, 9
    events = torch.tensor(np.stack([np.sort(rng.uniform(0, 1, n)), rng.integers(0, h, n), rng.integers(0, w, n),
                                    rng.choice([-1.0, 1.0], n)], axis=-1), dtype=torch.float32)[None]  # (1, N, 4)
    pol_mask = torch.stack([(events[..., 3] > 0), (events[..., 3] < 0)], dim=-1).float()  # (1, N, 2)
    flow = torch.from_numpy(rng.uniform(-2, 2, (1, 2, h, w)).astype(np.float32)) / 128  # (1, 2, H, W)
    event_mask = torch.zeros(1, 1, h, w)
    event_mask[0, 0, events[0, :, 1].long(), events[0, :, 2].long()] = 1
    pair = iwe_for_visualisation(flow, events, pol_mask)
    buffer = loss_buffer_append(empty_loss_buffer(), [flow], events, pol_mask, None, event_mask)
    expected = flow_warp_loss(buffer).item()
    assert iwe_sharpness(pair.after[0], pair.before[0]) == pytest.approx(expected, rel=1e-5)
    assert expected != pytest.approx(1.0)  # the oracle is not trivial
    assert iwe_sharpness(pair.before[0], pair.before[0]) == pytest.approx(1.0)
    assert math.isnan(iwe_sharpness(np.zeros((2, h, w)), np.zeros((2, h, w))))
    with pytest.raises(ValueError, match="differ in shape"):
        iwe_sharpness(np.zeros((h, w)), np.zeros((h, w + 1)))


def test_sharpness_table_and_iwe_figure(events_run):
    rows = sharpness_table(events_run)
    assert [row["model"] for row in rows] == ["lif", "ann"]
    assert all(row["windows"] == len(events_run.times) for row in rows)
    assert sharpness_table(events_run, ["zero flow"])[0]["FWL mean"] == pytest.approx(1.0)
    fig = plot_iwe_before_after(events_run, window=-1)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "no warping" and titles[1].startswith("lif: FWL ") and titles[2].startswith("ann: FWL ")
    assert "input events" in titles and "ann: flow [px]" in titles
    with pytest.raises(ValueError, match="unknown model"):
        plot_iwe_before_after(events_run, methods=["nope"])
    with pytest.raises(IndexError, match="window 9 out of range"):
        plot_iwe_before_after(events_run, window=9)
