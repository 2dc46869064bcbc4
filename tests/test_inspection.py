"""Tests of eventflow.inspection: statistics rows, scrubber data, the ground-truth check and its figures."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from matplotlib.figure import Figure

from eventflow import inspection
from eventflow.cli.inspect import summarize
from eventflow.events import make_events
from eventflow.io.h5write import write_recording
from eventflow.simulate.config import SimConfig
from eventflow.simulate.sequence import simulate_to_h5

SIM = SimConfig(resolution=(40, 56), duration=0.4, image=("camera",), motion="translation",
                speed_range=(150.0, 180.0))


@pytest.fixture(scope="module")
def sim_h5(tmp_path_factory):
    return simulate_to_h5(tmp_path_factory.mktemp("sim") / "sim.h5", SIM, seed=11)


@pytest.fixture(scope="module")
def no_gt_h5(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 40000
    ev = make_events(rng.integers(0, 30, n), rng.integers(0, 20, n), np.sort(rng.uniform(0, 1, n)),
                     np.where(rng.random(n) < 0.25, 1, -1))
    return write_recording(tmp_path_factory.mktemp("real") / "real.h5", ev, (20, 30))


def _scaled_gt_copy(src, dst, factor):
    """A copy of ``src`` whose flow_dt1 maps are multiplied by ``factor`` (a wrong ground truth)."""
    with h5py.File(src) as f:
        events = make_events(f["events/xs"][:], f["events/ys"][:], f["events/ts"][:],
                             np.where(f["events/ps"][:], 1, -1))
        dt1 = [(float(d.attrs["timestamp"]), factor * d[:]) for _, d in sorted(f["flow_dt1"].items())]
    return write_recording(dst, events, SIM.resolution, flow_dt1=dt1)


def test_stats_rows_follow_summarize_and_total_each_data_set(sim_h5, no_gt_h5):
    rows = inspection.stats_rows({"sim": [sim_h5], "real": [no_gt_h5, no_gt_h5]})
    assert [(r["data set"], r["recording"]) for r in rows] == [
        ("sim", "sim"), ("sim", "(all 1)"), ("real", "real"), ("real", "real"), ("real", "(all 2)")
    ]
    s = summarize(sim_h5)
    sim_row = rows[0]
    assert sim_row["H x W"] == "40x56" and sim_row["events"] == s["num_events"]
    assert sim_row["flow_dt1"] == 13 and sim_row["flow_dt4"] == 4 and sim_row["frames"] == 13
    assert sim_row["positive %"] == pytest.approx(100 * s["positive_fraction"])
    real, total = rows[2], rows[4]
    assert real["flow_dt1"] == 0 and real["frames"] == 0 and real["positive %"] == pytest.approx(25, abs=1)
    assert total["events"] == 2 * real["events"] and total["duration s"] == pytest.approx(2 * real["duration s"])
    assert total["Mev/s"] == pytest.approx(real["Mev/s"])
    table = inspection.stats_table({"sim": [sim_h5]})
    assert "sim" in table and "Mev/s" in table.splitlines()[0]


def test_scrubber_data_has_events_voxels_and_gt_where_the_file_has_it(sim_h5, no_gt_h5):
    d = inspection.scrubber_data(sim_h5, max_windows=5, num_bins=3)
    assert d.counts.shape == (5, 2, 40, 56) and d.voxels.shape == (5, 3, 40, 56) and d.gt_flow.shape == (5, 2, 40, 56)
    np.testing.assert_allclose(d.times, np.arange(1, 6) / 30.0)  # GT windows end on the GT timestamps
    # Voxels are signed counts: summed over bins they give positive minus negative events.
    np.testing.assert_allclose(d.voxels.sum(axis=1), d.counts[:, 0] - d.counts[:, 1], atol=1e-4)
    assert float(np.abs(d.gt_flow[:, 0]).mean()) > 1.0  # translation: pixels move by several px per interval
    real = inspection.scrubber_data(no_gt_h5, max_windows=None)
    assert real.gt_flow is None and real.num_windows == 40000 // inspection.EVENT_WINDOW
    assert real.counts.sum() == real.num_windows * inspection.EVENT_WINDOW
    with pytest.raises(ValueError, match="no window from index 99"):
        inspection.scrubber_data(sim_h5, first=99)


def test_ground_truth_check_passes_the_simulator_and_fails_a_wrong_ground_truth(sim_h5, tmp_path):
    check = inspection.check_ground_truth(sim_h5, max_windows=6)
    assert check.passed, check.table()
    check.require()
    (row,) = check.rows
    assert row["recording"] == "sim" and row["windows"] == 6  # one window per GT interval
    assert row["zero"] == pytest.approx(1.0)  # unwarped events: the same image
    assert row["GT"] > 1.5 and row["GT"] > max(row[k] for k in inspection.FLOW_VARIANTS if k != "GT")
    assert check.fwl["sim"]["GT"].shape == (6,)
    wrong = _scaled_gt_copy(sim_h5, tmp_path / "wrong.h5", -1.0)
    both = inspection.check_ground_truth([sim_h5, wrong], max_windows=3)
    assert [r["passed"] for r in both.rows] == [True, False] and not both.passed
    assert "wrong" in both.table()
    with pytest.raises(ValueError, match="failed the contrast check in wrong$"):
        both.require()
    plain = write_recording(tmp_path / "plain.h5", make_events([1] * 50, [1] * 50, np.linspace(0, 1, 50), [1] * 50),
                            (4, 4))
    with pytest.raises(ValueError, match="no flow_dt1 ground truth"):
        inspection.check_ground_truth(plain)


def test_warped_event_images_are_sharper_with_the_ground_truth(sim_h5):
    images = inspection.warped_event_images(sim_h5, window=3)
    names = [k.split(":")[0] for k in images]
    assert names == ["zero", "GT", "0.5 x GT", "GT turned 90 deg"]
    zero, gt = (images[k] for k in list(images)[:2])
    assert zero.shape == (40, 56) and 0.7 * zero.sum() < gt.sum() <= zero.sum()  # some events are warped out
    assert gt.var() > 1.5 * zero.var()
    assert list(images)[0] == "zero: FWL 1.00"
    with pytest.raises(ValueError, match="unknown flow variant"):
        inspection.warped_event_images(sim_h5, variants=("GT", "2 x GT"))


def test_samples_per_data_set_and_their_figures(sim_h5, no_gt_h5, capsys):
    datasets = {"sim": [sim_h5, sim_h5], "real": [no_gt_h5], "empty": []}
    assert inspection.first_recordings(datasets) == {"sim": sim_h5, "real": no_gt_h5}
    assert inspection.first_recordings(datasets, every=("sim",)) == {"sim: sim": sim_h5, "real": no_gt_h5}
    assert inspection.recordings_of(datasets, "real") == {"real": no_gt_h5}
    assert inspection.recordings_of(datasets, "absent") == {}
    samples = inspection.load_samples(inspection.first_recordings(datasets), max_windows=2, num_bins=4)
    assert samples["sim"].gt_flow is not None and samples["real"].gt_flow is None
    fig = inspection.events_voxels_figure(samples, window=-1)
    assert isinstance(fig, Figure) and len([ax for ax in fig.axes if ax.images]) == 2 * 5
    fig = inspection.gt_flow_figure(samples)  # the sample without ground truth is left out
    assert len([ax for ax in fig.axes if ax.images]) == 3  # events, colour, arrows
    assert fig.axes[1].child_axes[0].images  # the colour-wheel legend
    with pytest.raises(ValueError, match="ground-truth flow"):
        inspection.gt_flow_figure({"real": samples["real"]})
    with pytest.raises(IndexError, match="window 5 out of range"):
        inspection.events_voxels_figure(samples, window=5)
    scrubbers = inspection.display_samples({"real": samples["real"]})
    assert list(scrubbers) == ["real"] and scrubbers["real"].png("events")[:4] == b"\x89PNG"
    assert inspection.display_samples({}) == {} and "no recordings" in capsys.readouterr().out
