"""Evaluation metrics: the reference's FWL and RSAT (golden) and hand-computed AEE, outliers, AAE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from eventflow.loss import empty_loss_buffer, loss_buffer_append
from eventflow.metrics import (
    average_angular_error,
    average_endpoint_error,
    flow_warp_loss,
    iwe_for_visualisation,
    ratio_squared_average_timestamps,
)

COMPAT = "hagenaars2021"


def _window(flow, events, pol_mask, event_mask):
    return loss_buffer_append(empty_loss_buffer(), [flow], events, pol_mask, None, event_mask)


def _golden_window(golden_npz, prefix, k):
    return _window(
        torch.from_numpy(golden_npz[f"{prefix}flow"][k]),
        torch.from_numpy(golden_npz[f"{prefix}event_list"][k]),
        torch.from_numpy(golden_npz[f"{prefix}pol_mask"][k]),
        torch.from_numpy(golden_npz[f"{prefix}event_mask"][k]),
    )


# ------------------------------------------------------------------------------------------ FWL, RSAT (golden)


@pytest.mark.golden
@pytest.mark.parametrize("compat", [None, COMPAT])
def test_golden_fwl_rsat_window_20(golden_npz, compat):
    buffer = _golden_window(golden_npz, "", 19)
    fwl = flow_warp_loss(buffer, compat=compat)
    rsat = ratio_squared_average_timestamps(buffer, compat=compat)
    np.testing.assert_allclose(fwl.numpy(), golden_npz["fwl_w20"], rtol=1e-5)
    np.testing.assert_allclose(rsat.numpy(), golden_npz["rsat_w20"], rtol=1e-5)


@pytest.mark.golden
def test_golden_fwl_rsat_ecd_15k_windows(golden_npz):
    fwl, rsat = [], []
    for k in range(golden_npz["ecd15k_flow"].shape[0]):
        buffer = _golden_window(golden_npz, "ecd15k_", k)
        fwl.append(flow_warp_loss(buffer, compat=COMPAT).item())
        rsat.append(ratio_squared_average_timestamps(buffer, compat=COMPAT).item())
    np.testing.assert_allclose(fwl, golden_npz["ecd15k_fwl"][:, 0], rtol=1e-5)
    np.testing.assert_allclose(rsat, golden_npz["ecd15k_rsat"][:, 0], rtol=1e-5)
    assert np.mean(fwl) == pytest.approx(float(golden_npz["ecd15k_fwl_mean"]), rel=1e-5)
    assert np.mean(rsat) == pytest.approx(float(golden_npz["ecd15k_rsat_mean"]), rel=1e-5)


# ------------------------------------------------------------------------------------------ FWL, RSAT (by hand)


def _edge(flow_px_per_window):
    """Three positive events of an edge moving one pixel right per window, on a 3x5 image."""
    events = torch.tensor([[[0.0, 1.0, 1.0, 1.0], [0.5, 1.0, 1.5, 1.0], [1.0, 1.0, 2.0, 1.0]]])
    events[..., 2] = events[..., 2].floor()  # pixels 1, 1, 2
    flow = torch.zeros(1, 2, 3, 5)
    flow[:, 0] = flow_px_per_window / 128
    pol_mask = torch.tensor([[[1.0, 0.0]] * 3])
    event_mask = torch.zeros(1, 1, 3, 5)
    event_mask[0, 0, 1, 1:3] = 1
    return _window(flow, events, pol_mask, event_mask)


def test_zero_flow_scores_one():
    buffer = _edge(0.0)
    assert flow_warp_loss(buffer).item() == pytest.approx(1.0)
    assert ratio_squared_average_timestamps(buffer).item() == pytest.approx(1.0)


def test_flow_that_stacks_events_scores_better():
    # With 1 px per window the events at (x=1, t=0) and (x=1, t=0.5) round to x = 2 and 2 (1.5 rounds to even).
    buffer = _edge(1.0)
    n = 15
    var_sharp = (9 - 9 / n) / (n - 1)  # one pixel holding 3 events
    var_plain = (4 + 1 - 9 / n) / (n - 1)  # pixels holding 2 and 1 events
    assert flow_warp_loss(buffer).item() == pytest.approx(var_sharp / var_plain, rel=1e-6)
    # RSAT: one pixel of average timestamp 0.5 vs pixels of averages 0.25 and 1.
    expected = (0.5**2 / 1) / ((0.25**2 + 1.0**2) / 2)
    assert ratio_squared_average_timestamps(buffer).item() == pytest.approx(expected, rel=1e-6)


def test_fwl_rsat_are_nan_without_events():
    buffer = _window(torch.zeros(1, 2, 3, 3), torch.zeros(1, 0, 4), torch.zeros(1, 0, 2), torch.zeros(1, 1, 3, 3))
    assert math.isnan(flow_warp_loss(buffer).item())
    assert math.isnan(ratio_squared_average_timestamps(buffer).item())


# ------------------------------------------------------------------------------------------ AEE, outliers, AAE


def _flow_px(*vectors):
    """(B=1, 2, 1, len) flow in tanh units from pixel displacements (flow_scaling 128, dt ratio 1)."""
    return torch.tensor(vectors, dtype=torch.float32).T.reshape(1, 2, 1, -1) / 128


def test_aee_and_outliers_standard_and_reference():
    # Pixel 0: err 4 px, |gt| = 81, |pred| = 77: 4 > 5% of 77 but not of 81 -> outlier only in the reference.
    # Pixel 1: exact. Pixel 2: ground truth (0, 0) -> not evaluated. Pixel 3: no event -> not evaluated.
    pred = _flow_px((77.0, 0.0), (3.0, 4.0), (50.0, 0.0), (50.0, 0.0))
    gt = torch.tensor([[[[81.0, 3.0, 0.0, 9.0]], [[0.0, 4.0, 0.0, 9.0]]]])
    mask = torch.tensor([[[[1.0, 1.0, 1.0, 0.0]]]])
    standard = average_endpoint_error(pred, gt, mask, dt_gt=0.02, dt_input=0.02)
    assert standard.aee.tolist() == pytest.approx([2.0])
    assert standard.outliers.tolist() == [0.0]
    reference = average_endpoint_error(pred, gt, mask, dt_gt=0.02, dt_input=0.02, compat=COMPAT)
    assert reference.aee.tolist() == pytest.approx([2.0])
    assert reference.outliers.tolist() == pytest.approx([0.5])  # a fraction


def test_aee_scales_flow_by_the_ratio_of_intervals():
    pred = _flow_px((2.0, 0.0))
    gt = torch.tensor([[[[8.0]], [[0.0]]]])
    result = average_endpoint_error(pred, gt, torch.ones(1, 1, 1, 1), dt_gt=torch.tensor([0.08]), dt_input=0.02)
    assert result.aee.item() == pytest.approx(0.0, abs=1e-5)  # 0.08 in float32 is not exactly 4 x 0.02


def test_reference_outlier_counts_are_summed_over_the_batch():
    pred = torch.cat((_flow_px((10.0, 0.0), (1.0, 0.0)), _flow_px((1.0, 0.0), (1.0, 0.0))))
    gt = torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]]]] * 2)  # sample 0: one outlier of 2; sample 1: none
    mask = torch.ones(2, 1, 1, 2)
    standard = average_endpoint_error(pred, gt, mask, 1.0, 1.0)
    assert standard.outliers.tolist() == [50.0, 0.0]
    reference = average_endpoint_error(pred, gt, mask, 1.0, 1.0, compat=COMPAT)
    assert reference.outliers.tolist() == pytest.approx([0.5, 0.5])


def test_empty_evaluation_mask_is_nan_by_default_and_zero_in_the_reference():
    pred, gt = _flow_px((1.0, 0.0)), torch.tensor([[[[1.0]], [[0.0]]]])
    standard = average_endpoint_error(pred, gt, torch.zeros(1, 1, 1, 1), 1.0, 1.0)
    assert math.isnan(standard.aee.item()) and math.isnan(standard.outliers.item())
    reference = average_endpoint_error(pred, gt, torch.zeros(1, 1, 1, 1), 1.0, 1.0, compat=COMPAT)
    assert reference.aee.item() == 0.0 and reference.outliers.item() == 0.0
    assert math.isnan(average_angular_error(pred, gt, torch.zeros(1, 1, 1, 1), 1.0, 1.0).item())


def test_empty_input_window_gives_nan():
    pred, gt = _flow_px((1.0, 0.0), (1.0, 0.0)), torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]]]])
    pred, gt = torch.cat((pred, pred)), torch.cat((gt, gt))
    result = average_endpoint_error(pred, gt, torch.ones(2, 1, 1, 2), 1.0, torch.tensor([1.0, 0.0]))
    assert result.aee[0].item() == pytest.approx(0.0) and math.isnan(result.aee[1].item())


def test_angular_error_by_hand():
    # (1, 0, 1) vs (0, 1, 1): cos = 1 / 2 -> 60 degrees; identical vectors -> 0.
    pred = _flow_px((1.0, 0.0), (2.0, 3.0))
    gt = torch.tensor([[[[0.0, 2.0]], [[1.0, 3.0]]]])
    mask = torch.tensor([[[[1.0, 0.0]]]])
    assert average_angular_error(pred, gt, mask, 1.0, 1.0).item() == pytest.approx(60.0)
    mask = torch.tensor([[[[0.0, 1.0]]]])
    assert average_angular_error(pred, gt, mask, 1.0, 1.0).item() == pytest.approx(0.0, abs=1e-5)


# ------------------------------------------------------------------------------------------ visualisation, input


def test_iwe_for_visualisation_before_and_after():
    events = torch.tensor([[[0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 1.0, -1.0]]])
    pol_mask = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    flow = torch.zeros(1, 2, 2, 3)
    flow[:, 0] = 1.0 / 128
    pair = iwe_for_visualisation(flow, events, pol_mask)
    assert pair.before[0, 0].tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    assert pair.after[0, 0].tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    assert pair.after[0, 1].tolist() == pair.before[0, 1].tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]


def test_metrics_reject_unknown_compat():
    pred, gt = _flow_px((1.0, 0.0)), torch.tensor([[[[1.0]], [[0.0]]]])
    with pytest.raises(ValueError, match="compat must be"):
        average_endpoint_error(pred, gt, torch.ones(1, 1, 1, 1), 1.0, 1.0, compat="reference")
    with pytest.raises(ValueError, match="compat must be"):
        flow_warp_loss(_edge(0.0), compat="reference")
