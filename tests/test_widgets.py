"""eventflow.widgets without a browser: data validation, driving the controls, the static fallback."""

from __future__ import annotations

import io

import ipywidgets
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from eventflow import widgets
from eventflow.widgets import EventScrubber, ExplorerData, ExplorerDataError, FlowExplorer

T, H, W = 4, 24, 32  # not square, so swapped axes show


def moving_square(shift=(2.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Events of a square's edges moving ``shift = (dx, dy)`` px per window, and its ground-truth flow."""
    counts = np.zeros((T, 2, H, W), np.float32)
    for t in range(T):
        x0, y0 = 4 + int(shift[0] * t), 4 + int(shift[1] * t)
        counts[t, 0, y0 : y0 + 8, x0 + 7] = 2  # leading edge brightens
        counts[t, 1, y0 : y0 + 8, x0] = 1  # trailing edge darkens
    gt = np.zeros((T, 2, H, W), np.float32)
    gt[:, 0], gt[:, 1] = shift
    return counts, gt


@pytest.fixture
def data() -> ExplorerData:
    counts, gt = moving_square()
    gt_holes = gt.copy()
    gt_holes[:, :, :2] = np.nan  # no ground truth in the top rows
    rng = np.random.default_rng(0)
    return ExplorerData.from_arrays(
        counts,
        times=np.arange(T) * 0.05,
        flows={"good": gt, "zero": np.zeros_like(gt), "half": gt / 2},
        gt_flow=gt_holes,
        iwe_before={"good": counts},  # (T, 2, H, W): summed over polarity
        iwe_after={"good": counts.sum(axis=1) * 2},
        spike_rates={"good": {"head": rng.uniform(0, 0.2, T), "G1": rng.uniform(0, 0.3, (T, 8))}},
        voxels=np.stack([counts[:, 0] - counts[:, 1]] * 3, axis=1),  # (T, 3, H, W)
    )


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


# --------------------------------------------------------------------------------------------------- the data


def test_from_arrays_converts_and_keeps_shapes(data):
    assert data.num_windows == T and data.resolution == (H, W) and data.models == ["good", "zero", "half"]
    assert data.counts.dtype == np.float32 and data.times.dtype == np.float64
    assert data.iwe_before["good"].shape == (T, H, W)
    assert data.spike_rates["good"]["G1"].shape == (T, 8)


def test_from_arrays_takes_torch_tensors_and_lists_of_them():
    counts, gt = moving_square()
    d = ExplorerData.from_arrays(
        [torch.from_numpy(c) for c in counts], torch.arange(T) * 0.1, flows={"net": torch.from_numpy(gt)}
    )
    np.testing.assert_array_equal(d.counts, counts)
    assert d.gt_flow is None and d.voxels is None


@pytest.mark.parametrize(
    "change, message",
    [
        ({"counts": np.zeros((T, 3, H, W))}, r"counts has shape \(4, 3, 24, 32\), expected \(T, 2, H, W\)"),
        ({"counts": np.zeros((0, 2, H, W))}, "at least one window"),
        ({"times": np.zeros(T + 1)}, r"times has shape \(5,\), expected \(T,\) = \(4\)"),
        ({"times": np.array([0.0, 0.2, 0.1, 0.3])}, "non-decreasing"),
        ({"flows": {"net": np.zeros((T - 1, 2, H, W))}}, r"flows\['net'\] has shape \(3, 2, 24, 32\)"),
        ({"flows": {"net": np.zeros((T, 2, W, H))}}, r"expected \(T, 2, H, W\) = \(4, 2, 24, 32\)"),
        ({"gt_flow": np.full((T, 2, H, W), np.inf)}, "gt_flow holds infinite values"),
        ({"voxels": np.zeros((T, 5, H, W + 1))}, r"voxels .* expected \(T, B, H, W\) = \(4, \*, 24, 32\)"),
        ({"iwe_after": {"other": np.zeros((T, H, W))}}, r"iwe_after names model\(s\) \['other'\]"),
        ({"iwe_before": {"net": np.zeros((T, H))}}, r"iwe_before\['net'\] has shape"),
        ({"spike_rates": {"net": {"G1": np.zeros(T + 2)}}}, r"spike_rates\['net'\]\['G1'\] has shape \(6,\)"),
        ({"flows": {"net": [["a"]]}}, "not a numeric array"),
    ],
)
def test_bad_arrays_are_refused_with_a_one_line_message(change, message):
    counts, gt = moving_square()
    kwargs = {"counts": counts, "times": np.arange(T) * 0.1, "flows": {"net": gt}} | change
    with pytest.raises(ExplorerDataError, match=message) as info:
        ExplorerData.from_arrays(kwargs.pop("counts"), kwargs.pop("times"), **kwargs)
    assert "\n" not in str(info.value)


def test_non_finite_and_negative_counts_are_refused():
    counts, gt = moving_square()
    for bad, message in ((np.nan, "non-finite"), (-1.0, "negative")):
        c = counts.copy()
        c[1, 0, 3, 3] = bad
        with pytest.raises(ExplorerDataError, match=message):
            ExplorerData.from_arrays(c, np.arange(T))


def test_direct_construction_is_checked_too():
    counts, _ = moving_square()
    with pytest.raises(ExplorerDataError, match="float array"):
        ExplorerData(counts=counts.astype(np.int32), times=np.arange(T, dtype=float))


# ------------------------------------------------------------------------------------------------ the explorer


def test_initial_views_and_controls(data):
    ex = FlowExplorer(data)
    assert ex.views == ("events", "flow", "gt", "error")
    assert [box for box in ex.grid.children] == [ex.panels[n].box for n in ex.views]
    assert ex.slider.max == T - 1 and list(ex.model.options) == ["good", "zero", "half"]
    for n in ex.views:
        assert ex.png(n)[:4] == b"\x89PNG"
    assert pixels(ex.png("events")).shape == (H * 8, W * 8, 3)  # small sensor shown enlarged, whole factor
    assert ex.time_label.value.startswith("1/4")


def test_slider_changes_the_picture(data):
    ex = FlowExplorer(data)
    before = ex.png("events")
    ex.slider.value = 3
    after = ex.png("events")
    assert after != before
    assert ex.time_label.value.startswith("4/4") and "0.1500 s" in ex.time_label.value
    # the square moved right by 6 px (x 8 display scale): the red leading edge moved with it
    red = lambda png: np.nonzero((pixels(png)[..., 1] < 100).any(axis=0))[0].max()  # noqa: E731
    assert red(after) - red(before) == 6 * 8


def test_model_dropdown_changes_flow_and_error(data):
    ex = FlowExplorer(data)
    flow_good, error_good = ex.png("flow"), ex.png("error")
    ex.model.value = "zero"
    assert ex.png("flow") != flow_good and ex.png("error") != error_good
    assert "zero" in ex.panels["flow"].title.value
    assert pixels(ex.png("flow"))[100:, :100].max() == 0  # zero flow is black (away from the wheel)


def test_prediction_and_ground_truth_share_one_colour_scale(data):
    ex = FlowExplorer(data)
    flow, gt = pixels(ex.png("flow")), pixels(ex.png("gt"))
    np.testing.assert_array_equal(flow[2 * 8 :], gt[2 * 8 :])  # identical where ground truth exists
    assert (gt[:16, :100] == 128).all()  # rows without ground truth are grey
    ex.model.value = "half"  # half the displacement: half the brightness, same hue
    half = pixels(ex.png("flow")).astype(float)
    np.testing.assert_allclose(half[100:, :100].max(axis=-1), gt[100:, :100].max(axis=-1) / 2, atol=1)


def test_error_view_shows_the_pixels_the_aee_counts():
    counts, gt = moving_square()
    gt[:, :, :, :8] = 0  # no ground truth (MVSEC's zero) left of column 8, where the trailing edge starts
    d = ExplorerData.from_arrays(counts, np.arange(T), flows={"net": gt + 1.0}, gt_flow=gt)
    frame = widgets.VIEWS["error"].render(d, widgets.DisplayScales.of(d), 0, "net")
    shown = (frame.rgb != 0.85).any(axis=-1)  # grey: left out
    events = counts[0].sum(axis=0) > 0
    np.testing.assert_array_equal(shown, events & (np.arange(W) >= 8))
    assert "mean 1.41 px" in frame.title  # |(1, 1)| on every evaluated pixel


def test_toggles_add_and_remove_panels(data):
    ex = FlowExplorer(data)
    ex.toggles["arrows"].value = True
    ex.toggles["spikes"].value = True
    ex.toggles["gt"].value = False
    assert ex.views == ("events", "flow", "arrows", "error", "spikes")
    assert list(ex.grid.children) == [ex.panels[n].box for n in ex.views]
    arrows, spikes = ex.png("arrows"), ex.png("spikes")
    ex.slider.value = 2
    assert ex.png("arrows") != arrows and ex.png("spikes") != spikes
    assert pixels(ex.png("spikes")).shape[0] > 100


def test_iwe_views_and_models_without_them(data):
    ex = FlowExplorer(data, views=("iwe_before", "iwe_after"))
    assert pixels(ex.png("iwe_after")).min() < pixels(ex.png("iwe_before")).min()  # sharper = darker peaks
    ex.model.value = "zero"  # no images of warped events for this model: a blank panel that says so
    assert ex.panels["iwe_after"].title.value.endswith("n/a")


def test_views_without_data_are_disabled_and_refused():
    counts, gt = moving_square()
    d = ExplorerData.from_arrays(counts, np.arange(T), flows={"net": gt})
    ex = FlowExplorer(d)
    assert ex.views == ("events", "flow")
    assert ex.toggles["gt"].disabled and "gt_flow=" in ex.toggles["gt"].tooltip
    ex.toggles["gt"].value = True  # a disabled view never shows
    assert ex.views == ("events", "flow")
    with pytest.raises(ValueError, match=r"view 'error' needs ground-truth flow \(gt_flow=\)"):
        FlowExplorer(d, views=("error",))
    with pytest.raises(ValueError, match="unknown view 'voxel'"):
        FlowExplorer(d, views=("voxel",))
    with pytest.raises(ValueError, match=r"unknown model 'x'; choose from \['net'\]"):
        FlowExplorer(d, model="x")
    with pytest.raises(ValueError, match="no predicted flows"):
        FlowExplorer(ExplorerData.from_arrays(counts, np.arange(T)))
    with pytest.raises(TypeError, match="takes an ExplorerData"):
        FlowExplorer(counts)


def test_a_single_window_works():
    counts, gt = moving_square()
    d = ExplorerData.from_arrays(counts[:1], [0.0], flows={"net": gt[:1]}, gt_flow=gt[:1])
    ex = FlowExplorer(d, views=FlowExplorer.VIEW_NAMES[:5])
    assert ex.slider.disabled and ex.png("error")[:4] == b"\x89PNG"
    assert isinstance(ex.static_figure(), Figure)


# ------------------------------------------------------------------------------------------- static fallback


def test_static_figure_is_windows_by_views(data):
    ex = FlowExplorer(data)
    ex.toggles["spikes"].value = True
    fig = ex.static_figure(max_windows=3)
    assert len(fig.axes) == 3 * 5
    assert fig.axes[0].get_ylabel().startswith("window 0")
    assert fig.axes[5].get_ylabel().startswith("window 2")  # 0, 2 (rounded middle), 3


def test_show_displays_the_widget_and_a_png(data, monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    ex = widgets.display_explorer(data, views=("events", "arrows"))
    assert shown[0] is ex.widget
    assert isinstance(shown[1], IPython.display.Image) and shown[1].data[:4] == b"\x89PNG"
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


# -------------------------------------------------------------------------------------------- event scrubber


def test_event_scrubber(data, monkeypatch):
    import IPython.display

    sc = EventScrubber(data)
    assert sc.views == ("events", "voxel", "gt", "gt_arrows")
    assert sc.model not in sc.widget.children  # no model drop-down
    voxel = sc.png("voxel")
    sc.slider.value = 1
    assert sc.png("voxel") != voxel
    assert pixels(sc.png("voxel")).shape == ((2 * H + 2) * 3, (2 * W + 2) * 3, 3)  # 3 bins in 2 x 2 tiles, x3
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    assert isinstance(widgets.display_scrubber(data), EventScrubber) and len(shown) == 2


def test_event_scrubber_without_ground_truth_or_voxels():
    counts, _ = moving_square()
    sc = EventScrubber(ExplorerData.from_arrays(counts, np.arange(T)))
    assert sc.views == ("events",)
    assert isinstance(sc.widget, ipywidgets.VBox)
