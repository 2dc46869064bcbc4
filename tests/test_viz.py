"""eventflow.viz: colour codes with known answers, shapes, and figures that survive empty input."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from matplotlib.colors import rgb_to_hsv
from matplotlib.figure import Figure
from PIL import Image

from eventflow import paths, viz
from eventflow.events import empty_events, make_events


def uniform_flow(fx: float, fy: float, h: int = 4, w: int = 6) -> np.ndarray:
    flow = np.zeros((2, h, w))  # (2, H, W)
    flow[0], flow[1] = fx, fy
    return flow


# ------------------------------------------------------------------------------------------------ flow colours


@pytest.mark.parametrize(
    "fx, fy, hue",
    [(1.0, 0.0, 0.0), (0.0, 1.0, 0.25), (-1.0, 0.0, 0.5), (0.0, -1.0, 0.75)],
    ids=["+x red", "+y(down) yellow-green", "-x cyan", "-y(up) violet"],
)
def test_flow_direction_sets_the_hue(fx, fy, hue):
    rgb = viz.flow_to_rgb(uniform_flow(fx, fy), max_magnitude=1.0)
    h, s, v = rgb_to_hsv(rgb[0, 0])
    assert min(abs(h - hue), 1 - abs(h - hue)) < 1e-6
    assert s == pytest.approx(1.0) and v == pytest.approx(1.0)


def test_diagonal_flow_falls_between_its_neighbours():
    # +x +y (right and down) lies between red (0) and yellow-green (1/4)
    h = rgb_to_hsv(viz.flow_to_rgb(uniform_flow(1.0, 1.0), max_magnitude=2.0)[0, 0])[0]
    assert h == pytest.approx(0.125)


def test_magnitude_sets_the_value_and_zero_flow_is_black():
    flow = np.zeros((2, 1, 3))
    flow[0, 0] = [0.0, 1.0, 4.0]  # zero, half and beyond the scale
    v = rgb_to_hsv(viz.flow_to_rgb(flow, max_magnitude=2.0)[0])[:, 2]
    np.testing.assert_allclose(v, [0.0, 0.5, 1.0])
    assert viz.flow_to_rgb(np.zeros((2, 3, 3))).max() == 0.0


def test_default_scale_is_a_robust_percentile():
    flow = uniform_flow(1.0, 0.0, h=50, w=50)
    flow[0, 0, 0] = 100.0  # a single outlier among 2500 pixels does not darken the rest
    v = rgb_to_hsv(viz.flow_to_rgb(flow))[..., 2]
    assert v[5, 5] == pytest.approx(1.0)


def test_non_finite_flow_is_grey_and_torch_input_works():
    flow = uniform_flow(1.0, 0.0)
    flow[:, 0, 0] = np.nan
    rgb = viz.flow_to_rgb(torch.from_numpy(flow), max_magnitude=1.0)
    assert rgb.shape == (4, 6, 3)
    np.testing.assert_allclose(rgb[0, 0], [viz.MISSING_GREY] * 3)
    np.testing.assert_allclose(rgb[1, 1], [1.0, 0.0, 0.0])


@pytest.mark.parametrize("shape", [(3, 4, 4), (1, 2, 4, 4), (4, 4)])
def test_flow_shape_is_checked(shape):
    with pytest.raises(ValueError, match=r"expected shape \(2, H, W\)"):
        viz.flow_to_rgb(np.zeros(shape))


def test_colour_wheel_matches_the_flow_colours():
    size = 41
    wheel = viz.colour_wheel(size)
    c = size // 2
    assert wheel.shape == (size, size, 4)
    # the pixel right of the centre is the colour of +x flow, the one below it that of +y (rows grow downwards)
    np.testing.assert_allclose(wheel[c, -1, :3], viz.flow_to_rgb(uniform_flow(1, 0), 1.0)[0, 0], atol=1e-9)
    np.testing.assert_allclose(wheel[-1, c, :3], viz.flow_to_rgb(uniform_flow(0, 1), 1.0)[0, 0], atol=1e-9)
    np.testing.assert_allclose(wheel[c, c, :3], 0.0)  # zero flow at the centre
    assert wheel[0, 0, 3] == 0.0 and wheel[c, c, 3] == 1.0  # transparent outside the disc


def test_overlay_colour_wheel_only_touches_its_corner():
    rgb = np.full((40, 60, 3), 0.3)
    out = viz.overlay_colour_wheel(rgb)
    assert out.shape == rgb.shape and not np.array_equal(out[:12, -12:], rgb[:12, -12:])
    np.testing.assert_array_equal(out[15:, :], rgb[15:, :])
    np.testing.assert_array_equal(viz.overlay_colour_wheel(np.zeros((2, 2, 3))), 0.0)  # too small: unchanged


# --------------------------------------------------------------------------------------------------- events


def test_event_colours_positive_red_negative_blue_background_white():
    counts = np.zeros((2, 2, 3))
    counts[0, 0, 0] = 5  # positive
    counts[1, 0, 1] = 5  # negative
    rgb = viz.event_rgb(counts, max_count=5)
    np.testing.assert_allclose(rgb[0, 0], [1, 0, 0])
    np.testing.assert_allclose(rgb[0, 1], [0, 0, 1])
    np.testing.assert_allclose(rgb[1, 2], [1, 1, 1])


def test_events_and_count_images_give_the_same_frame():
    ev = make_events(x=[0, 2, 2, 1], y=[1, 0, 0, 1], t=[0.0, 0.1, 0.2, 0.3], p=[1, -1, -1, 1])
    counts = viz.event_counts(ev, resolution=(2, 3))
    expected = np.zeros((2, 2, 3))
    expected[0, 1, 0] = expected[0, 1, 1] = 1
    expected[1, 0, 2] = 2
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_array_equal(viz.event_rgb(ev, (2, 3)), viz.event_rgb(expected))


def test_event_input_errors():
    ev = make_events(x=[5], y=[0], t=[0.0], p=[1])
    with pytest.raises(ValueError, match="resolution"):
        viz.event_counts(ev)
    with pytest.raises(ValueError, match="outside the resolution"):
        viz.event_counts(ev, (2, 3))
    with pytest.raises(ValueError, match=r"\(2, H, W\)"):
        viz.event_rgb(np.zeros((3, 2, 2)))


def test_empty_events_give_a_white_frame():
    np.testing.assert_array_equal(viz.event_rgb(empty_events(), (3, 4)), 1.0)


# --------------------------------------------------------------------------------------------- other arrays


def test_endpoint_error_map():
    pred = uniform_flow(3.0, 4.0)
    gt = np.zeros_like(pred)
    gt[:, 0, 0] = np.nan
    err = viz.endpoint_error_map(pred, gt)
    assert err.shape == (4, 6)
    assert np.isnan(err[0, 0]) and err[1, 1] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="ground truth shape"):
        viz.endpoint_error_map(pred, gt[:, :2])
    stack = viz.endpoint_error_map(np.stack([pred, 2 * pred]), np.zeros((2, 2, 4, 6)))  # (T, 2, H, W)
    assert stack.shape == (2, 4, 6) and stack[1, 0, 0] == pytest.approx(10.0)


def test_iwe_and_scalar_maps():
    assert viz.iwe_2d(np.ones((2, 3, 4))).tolist() == np.full((3, 4), 2.0).tolist()
    with pytest.raises(ValueError, match=r"\(H, W\) or \(2, H, W\)"):
        viz.iwe_2d(np.ones((3, 3, 4)))
    rgb = viz.scalar_to_rgb(np.array([[0.0, 1.0, 2.0, np.nan]]), "gray", vmax=1.0, bad=0.5)
    np.testing.assert_allclose(rgb[0, :, 0], [0.0, 1.0, 1.0, 0.5])
    np.testing.assert_allclose(viz.scalar_to_rgb(np.full((2, 2), np.nan), "gray"), 0.85)  # no data: no crash


def test_voxel_tiles_place_each_bin():
    voxel = np.arange(5)[:, None, None] * np.ones((5, 2, 3))  # bin i holds i
    tiles = viz.voxel_tiles(voxel, gap=1)  # 3 columns, 2 rows
    assert tiles.shape == (5, 11)
    assert tiles[0, 0] == 0 and tiles[0, 4] == 1 and tiles[0, 8] == 2 and tiles[3, 0] == 3 and tiles[3, 4] == 4
    assert np.isnan(tiles[2, 0]) and np.isnan(tiles[3, 8])  # gap row, unused tile


def test_rgb_to_png_round_trip_and_upscale():
    rgb = np.zeros((2, 3, 3))
    rgb[0, 0] = [1, 0, 0]
    img = np.asarray(Image.open(io.BytesIO(viz.rgb_to_png(rgb, upscale=2))))
    assert img.shape == (4, 6, 3)
    assert img[:2, :2].tolist() == [[[255, 0, 0]] * 2] * 2 and img[2:, 2:].max() == 0


def test_arrows_point_along_the_flow():
    fig = viz.plot_flow_arrows(uniform_flow(2.0, 0.0, h=40, w=40), background=np.zeros((2, 40, 40)))
    quiver = fig.axes[0].collections[0]
    assert (quiver.U > 0).all() and (quiver.V == 0).all()
    assert quiver.gain == pytest.approx(2 / 2.0)  # default: the robust max magnitude spans one grid step (2 px)


# ------------------------------------------------------------------------------------------------- figures


def test_figures_do_not_fail_on_empty_input():
    zeros = np.zeros((2, 5, 7))
    figures = [
        viz.plot_events(empty_events(), resolution=(5, 7)),
        viz.plot_flow(zeros),
        viz.plot_flow_arrows(zeros),
        viz.plot_error_map(zeros, np.full_like(zeros, np.nan)),
        viz.plot_error_map(zeros, zeros, mask=np.zeros((5, 7), bool)),
        viz.plot_iwe({}),
        viz.plot_iwe({"before": np.zeros((5, 7)), "after": zeros}),
        viz.plot_voxel_grid(np.zeros((0, 5, 7))),
        viz.plot_spike_rates({}),
        viz.plot_spike_rates({"lif": {"head": np.array([]), "G1": 0.1}}),
        viz.plot_metric_vs_window({}),
    ]
    for fig in figures:
        assert isinstance(fig, Figure)
        assert viz.figure_to_png(fig)[:4] == b"\x89PNG"


def test_figures_with_data_and_shared_axes():
    fig = viz.plot_spike_rates(
        {"lif": {"head": 0.1, "G1": np.array([0.2, 0.4])}, "plif": {"head": 0.05}}, ylabel="rate"
    )
    heights = [p.get_height() for p in fig.axes[0].patches]
    np.testing.assert_allclose(heights[:2], [0.1, 0.3])  # bar = mean over channels
    artists = viz.draw_spike_rates(fig.axes[0], {"lif": {"head": 0.1, "G1": np.array([0.2, 0.4])}})
    viz.update_spike_rates(artists, {"lif": {"head": 0.3, "G1": np.array([0.1, 0.1])}})
    bars, whiskers = artists[0]
    np.testing.assert_allclose([p.get_height() for p in bars], [0.3, 0.1])
    np.testing.assert_allclose(whiskers.get_segments()[1][:, 1], [0.1, 0.1])  # no spread over channels
    fig = viz.plot_metric_vs_window({"lif": {4: 1.0, 1: 0.5}}, metric="AEE [px]", xlabel="dt")
    line = fig.axes[0].lines[0]
    assert line.get_xdata().tolist() == [1, 4] and line.get_ydata().tolist() == [0.5, 1.0]
    fig = viz.plot_voxel_grid(np.random.default_rng(0).normal(size=(3, 4, 5)))
    assert len(fig.axes) == 3
    fig = viz.new_figure(1, 2)
    viz.plot_flow(uniform_flow(1, 0), ax=fig.axes[0])
    viz.plot_events(np.ones((2, 4, 6)), ax=fig.axes[1])
    assert len(fig.axes) == 2 and len(fig.axes[0].child_axes) == 1  # two panels, a colour-wheel inset on the flow


def test_save_figure_writes_atomically_under_figures(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "figures_dir", lambda: tmp_path / "figures")
    fig = viz.plot_flow(uniform_flow(1.0, -1.0))
    out = viz.save_figure(fig, "sub/flow.png")
    assert out == tmp_path / "figures" / "sub" / "flow.png"
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in out.parent.iterdir()] == ["flow.png"]  # no temporary file left behind
    absolute = viz.save_figure(fig, tmp_path / "elsewhere.svg")
    assert absolute.read_text().lstrip().startswith("<?xml")
    with pytest.raises(ValueError, match="no suffix"):
        viz.save_figure(fig, "flow")


def test_import_has_no_pyplot_side_effect():
    code = "import sys, eventflow.viz, eventflow.widgets; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
