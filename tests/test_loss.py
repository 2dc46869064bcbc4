"""The contrast-maximisation loss: the reference's values (golden), hand-computed cases and edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eventflow.loss import (
    empty_loss_buffer,
    event_warping_loss,
    event_warping_terms,
    flow_smoothness,
    loss_buffer_append,
    loss_buffer_reset_lanes,
)

COMPAT = "hagenaars2021"


def _pol_mask(events):
    p = events[..., 3]
    return torch.stack(((p > 0).float(), (p < 0).float()), dim=-1)


def _event_mask(events, height, width):
    mask = torch.zeros(events.shape[0], height * width)
    mask.scatter_(1, (events[..., 1] * width + events[..., 2]).long(), 1.0)
    return mask.view(-1, 1, height, width)


def _random_pass(gen, batch=2, n=40, height=6, width=7, dtype=torch.float32):
    ts = torch.sort(torch.rand(batch, n, generator=gen), dim=1).values
    y = torch.randint(0, height, (batch, n), generator=gen).float()
    x = torch.randint(0, width, (batch, n), generator=gen).float()
    p = torch.randint(0, 2, (batch, n), generator=gen).float() * 2 - 1
    events = torch.stack((ts, y, x, p), dim=-1).to(dtype)
    flow = ((torch.rand(batch, 2, height, width, generator=gen) - 0.5) / 20).to(dtype)
    return flow, events, _pol_mask(events), _event_mask(events, height, width).to(dtype)


def _buffer(passes):
    buffer = empty_loss_buffer()
    for flow, events, pol_mask, event_mask in passes:
        buffer = loss_buffer_append(buffer, [flow], events, pol_mask, None, event_mask)
    return buffer


# ------------------------------------------------------------------------------------------ golden (reference)


def _golden_buffer(golden_npz, first, last):
    buffer = empty_loss_buffer()
    for k in range(first, last):
        buffer = loss_buffer_append(
            buffer,
            [torch.from_numpy(golden_npz["flow"][k])],
            torch.from_numpy(golden_npz["event_list"][k]),
            torch.from_numpy(golden_npz["pol_mask"][k]),
            None,
            torch.from_numpy(golden_npz["event_mask"][k]),
        )
    return buffer


@pytest.mark.golden
@pytest.mark.parametrize("window, first", [("w01_10", 0), ("w11_20", 10)])
@pytest.mark.parametrize(
    "suffix, kwargs",
    [("", {}), ("_contrast_only", {"smoothness_weight": 0.0}), ("_fs_default240", {"flow_scaling": 240})],
)
def test_golden_loss_values(golden_npz, window, first, suffix, kwargs):
    buffer = _golden_buffer(golden_npz, first, first + 10)
    ours = event_warping_loss(buffer, compat=COMPAT, **kwargs).item()
    expected = float(golden_npz[f"loss_{window}{suffix}"])
    assert ours == pytest.approx(expected, rel=1e-5)


@pytest.mark.golden
def test_golden_smoothness_term(golden_npz):
    terms = event_warping_terms(_golden_buffer(golden_npz, 0, 10), compat=COMPAT)
    # The golden term is (loss - contrast_only) / 0.001 of two float32 losses near 0.69: its resolution is
    # 2^-24 / 1e-3 / 1.07 ~ 6e-5 relative, so 1e-4 is as tight as it can be checked.
    assert terms.smoothness.item() == pytest.approx(float(golden_npz["loss_w01_10_smoothness_term"]), rel=1e-4)


@pytest.mark.golden
@pytest.mark.slow  # 10 passes of LIF-FireNet at 180x240 with BPTT: ~10-20 s on one core
def test_golden_gradients(golden_npz, pretrained_liffirenet):
    models = pytest.importorskip("eventflow.models")
    model = models.load_model("LIFFireNet", pretrained_liffirenet)
    model.train()
    state = None
    buffer = empty_loss_buffer()
    for k in range(10):
        out, state = model.forward_all(torch.from_numpy(golden_npz["event_cnt"][k]), state)
        buffer = loss_buffer_append(
            buffer,
            out.flow_scales,
            torch.from_numpy(golden_npz["event_list"][k]),
            torch.from_numpy(golden_npz["pol_mask"][k]),
            None,
            torch.from_numpy(golden_npz["event_mask"][k]),
        )
    loss = event_warping_loss(buffer, compat=COMPAT)
    loss.backward()
    assert loss.item() == pytest.approx(float(golden_npz["grad_w01_10_loss_value"]), rel=1e-5)
    params = dict(model.named_parameters())
    checked = 0
    for reference_key, our_key in model.reference_key_map().items():
        key = f"grad_w01_10/{reference_key}"
        if key not in golden_npz.files:  # e.g. act_width, a buffer-like constant without gradient
            continue
        gold = torch.from_numpy(golden_npz[key])
        grad = params[our_key].grad
        assert grad is not None, our_key
        assert (grad - gold).abs().max().item() <= 1e-4 * gold.abs().max().item(), reference_key
        checked += 1
    assert checked == len([k for k in golden_npz.files if k.startswith("grad_w01_10/")])


# ------------------------------------------------------------------------------------------ hand-computed cases


def _one_lane(rows, height=3, width=3, flow=None):
    events = torch.tensor([rows], dtype=torch.float32)
    flow = torch.zeros(1, 2, height, width) if flow is None else flow
    return flow, events, _pol_mask(events), _event_mask(events, height, width)


def test_forward_and_backward_average_timestamps_of_one_pass():
    # Two positive events on one pixel at ts 0 and 1: forward average 0.5, backward average (1 + 0) / 2 = 0.5.
    buffer = _buffer([_one_lane([[0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])])
    terms = event_warping_terms(buffer)
    assert terms.forward.item() == pytest.approx(0.25)
    assert terms.backward.item() == pytest.approx(0.25)


def test_pass_offsets_and_normalisation_by_the_number_of_passes():
    # Pass 0: event at ts 0.5 on pixel A; pass 1: event at ts 0.5 on pixel B. Timestamps 0.5 and 1.5, T = 2.
    buffer = _buffer([_one_lane([[0.5, 0.0, 0.0, 1.0]]), _one_lane([[0.5, 2.0, 2.0, 1.0]])])
    terms = event_warping_terms(buffer)
    assert terms.forward.item() == pytest.approx((0.25**2 + 0.75**2) / 2)
    assert terms.backward.item() == pytest.approx((0.75**2 + 0.25**2) / 2)
    loss = event_warping_loss(buffer, smoothness_weight=0.0)
    assert loss.item() == pytest.approx(0.625)


def test_flow_that_aligns_events_lowers_the_contrast_terms():
    # An edge moving one pixel right per window: the true flow stacks the events, zero flow spreads them.
    rows = [[t, 1.0, float(x), 1.0] for t, x in ((0.0, 0), (0.5, 1), (1.0, 2))]
    still = event_warping_loss(_buffer([_one_lane(rows, 3, 4)]), smoothness_weight=0.0)
    flow = torch.zeros(1, 2, 3, 4)
    flow[:, 0] = 2.0 / 128  # two pixels per window
    aligned = event_warping_loss(_buffer([_one_lane(rows, 3, 4, flow)]), smoothness_weight=0.0)
    assert aligned.item() < still.item()


def _dense_smoothness(flow, mask, n_passes, include_time, compat):
    """Oracle: the reference's slicing formulation, written out plainly."""
    pairs = [
        (flow[..., :, :-1] - flow[..., :, 1:], mask[..., :, :-1] * mask[..., :, 1:]),
        (flow[..., :-1, :] - flow[..., 1:, :], mask[..., :-1, :] * mask[..., 1:, :]),
        (flow[..., :-1, :-1] - flow[..., 1:, 1:], mask[..., :-1, :-1] * mask[..., 1:, 1:]),
        (flow[..., 1:, :-1] - flow[..., :-1, 1:], mask[..., 1:, :-1] * mask[..., :-1, 1:]),
    ]
    if include_time:
        pairs.append((flow[:, :, :-1] - flow[:, :, 1:], mask[:, :-1] * mask[:, 1:]))
    total, count = 0, 0
    for diff, pair_mask in pairs:
        if compat:
            penalty = torch.sqrt((diff[:, :, :, 0] + diff[:, :, :, 1]) ** 2 + 1e-6)
        else:
            penalty = torch.sqrt(diff**2 + 1e-6).sum(dim=3)
        total = total + (penalty * pair_mask).sum(dim=(2, 3, 4))
        count = count + pair_mask.sum(dim=(1, 2, 3))
    return total / len(pairs) / n_passes if compat else total / count.clamp(min=1)


@pytest.mark.parametrize("compat", [None, COMPAT])
@pytest.mark.parametrize("include_time", [True, False])
def test_smoothness_equals_the_dense_formulation(compat, include_time):
    gen = torch.Generator().manual_seed(3)
    flow = torch.rand(2, 3, 4, 2, 5, 6, generator=gen, dtype=torch.float64)  # (S, B, T, 2, H, W)
    mask = (torch.rand(3, 4, 5, 6, generator=gen) < 0.6).double()
    mask[2] = 0  # a lane without pairs
    n_passes = torch.tensor([4.0, 4.0, 4.0], dtype=torch.float64)
    ours = flow_smoothness(flow, mask, n_passes, include_time=include_time, compat=compat)
    expected = _dense_smoothness(flow, mask, n_passes, include_time, compat)
    torch.testing.assert_close(ours, expected)
    assert ours[:, 2].tolist() == [0.0, 0.0]


def test_unmasked_smoothness_counts_every_pair():
    gen = torch.Generator().manual_seed(10)
    passes = [_random_pass(gen) for _ in range(3)]
    terms = event_warping_terms(_buffer(passes), mask_smoothness=False)
    flow = torch.stack([p[0] for p in passes], dim=1).unsqueeze(0)  # (S, B, T, 2, H, W)
    expected = flow_smoothness(flow, torch.ones(2, 3, 6, 7), torch.full((2,), 3.0))
    torch.testing.assert_close(terms.smoothness, expected)


def test_smoothness_penalises_each_component_by_default():
    # du = +a, dv = -a between two neighbours: blind spot of the reference's rho(du + dv).
    flow = torch.zeros(1, 1, 1, 2, 1, 2)  # (S, B, T, 2, H, W)
    flow[..., 0, 0, 0], flow[..., 1, 0, 0] = 0.1, -0.1
    mask = torch.ones(1, 1, 1, 2)
    n = torch.tensor([1.0])
    default = flow_smoothness(flow, mask, n)
    assert default.item() == pytest.approx(2 * np.sqrt(0.1**2 + 1e-6), rel=1e-6)
    compat = flow_smoothness(flow, mask, n, compat=COMPAT)
    assert compat.item() == pytest.approx(np.sqrt(1e-6) / 5, rel=1e-5)  # one pair, 5 directions, T = 1


def test_batch_mean_by_default_and_sum_under_compat():
    gen = torch.Generator().manual_seed(4)
    passes = [_random_pass(gen, batch=1) for _ in range(3)]
    doubled = [tuple(torch.cat((t, t)) for t in p) for p in passes]
    for compat, factor in ((None, 1.0), (COMPAT, 2.0)):
        single = event_warping_loss(_buffer(passes), compat=compat)
        both = event_warping_loss(_buffer(doubled), compat=compat)
        assert both.item() == pytest.approx(factor * single.item(), rel=1e-6)


def test_multiple_scales_are_averaged():
    gen = torch.Generator().manual_seed(5)
    passes = [_random_pass(gen) for _ in range(2)]
    one = event_warping_loss(_buffer(passes))
    buffer = empty_loss_buffer()
    for flow, events, pol_mask, event_mask in passes:
        buffer = loss_buffer_append(buffer, [flow * 0.5, flow * 1.5], events, pol_mask, None, event_mask)
    low = event_warping_loss(_buffer([(f * 0.5, *rest) for f, *rest in passes]))
    high = event_warping_loss(_buffer([(f * 1.5, *rest) for f, *rest in passes]))
    assert event_warping_loss(buffer).item() == pytest.approx((low.item() + high.item()) / 2, rel=1e-6)
    assert one.item() != pytest.approx(low.item())


# ------------------------------------------------------------------------------------------ padding, empty, resets


def test_padded_events_contribute_nothing():
    gen = torch.Generator().manual_seed(6)
    passes = [_random_pass(gen) for _ in range(2)]
    plain = event_warping_loss(_buffer(passes))
    buffer = empty_loss_buffer()
    for flow, events, pol_mask, event_mask in passes:
        pad = torch.tensor([[[0.3, 2.0, 3.0, 1.0]] * 5] * events.shape[0])  # real-looking rows, marked invalid
        valid = torch.cat((torch.ones(events.shape[:2], dtype=torch.bool), torch.zeros(events.shape[0], 5).bool()), 1)
        buffer = loss_buffer_append(
            buffer, [flow], torch.cat((events, pad), 1), torch.cat((pol_mask, _pol_mask(pad)), 1), valid, event_mask
        )
    assert event_warping_loss(buffer).item() == pytest.approx(plain.item(), rel=1e-6)


@pytest.mark.parametrize("compat", [None, COMPAT])
def test_empty_window_gives_a_finite_loss_and_gradient(compat):
    flow = torch.zeros(2, 2, 4, 4, requires_grad=True)
    buffer = loss_buffer_append(
        empty_loss_buffer(), [flow], torch.zeros(2, 0, 4), torch.zeros(2, 0, 2), None, torch.zeros(2, 1, 4, 4)
    )
    loss = event_warping_loss(buffer, compat=compat)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(flow.grad).all()


@pytest.mark.parametrize("compat", [None, COMPAT])
def test_events_warped_out_of_the_image_give_zero_not_nan(compat):
    flow = torch.full((1, 2, 3, 3), 0.9, requires_grad=True)  # 115 px per window: everything leaves the image
    _, events, pol_mask, event_mask = _one_lane([[0.0, 1.0, 1.0, 1.0], [0.1, 1.0, 2.0, -1.0]])
    terms = event_warping_terms(
        loss_buffer_append(empty_loss_buffer(), [flow], events, pol_mask, None, event_mask), compat=compat
    )
    assert terms.forward.item() == 0.0  # forward: both warped out; backward: the event at ts 0 stays
    assert torch.isfinite(terms.backward).all()


def test_lane_reset_keeps_only_the_passes_since_the_reset():
    gen = torch.Generator().manual_seed(7)
    passes = [_random_pass(gen) for _ in range(4)]
    buffer = empty_loss_buffer()
    for k, (flow, events, pol_mask, event_mask) in enumerate(passes):
        if k == 2:  # lane 1 starts a new recording at pass 2
            buffer = loss_buffer_reset_lanes(buffer, torch.tensor([False, True]))
        buffer = loss_buffer_append(buffer, [flow], events, pol_mask, None, event_mask)
    for compat in (None, COMPAT):
        terms = event_warping_terms(buffer, compat=compat)
        lane0 = event_warping_terms(_buffer([tuple(t[:1] for t in p) for p in passes]), compat=compat)
        lane1 = event_warping_terms(_buffer([tuple(t[1:] for t in p) for p in passes[2:]]), compat=compat)
        for ours, alone in zip(terms[:3], lane0[:3]):
            torch.testing.assert_close(ours[:, :1], alone)
        for ours, alone in zip(terms[:3], lane1[:3]):
            torch.testing.assert_close(ours[:, 1:], alone)


def test_inactive_passes_do_not_count_for_their_lane():
    gen = torch.Generator().manual_seed(11)
    passes = [_random_pass(gen) for _ in range(3)]
    buffer = empty_loss_buffer()
    for k, (flow, events, pol_mask, event_mask) in enumerate(passes):
        active = torch.tensor([True, k < 2])  # lane 1 ran out of windows at step 2
        buffer = loss_buffer_append(buffer, [flow], events, pol_mask, None, event_mask, pass_valid=active)
    terms = event_warping_terms(buffer)
    lane1 = event_warping_terms(_buffer([tuple(t[1:] for t in p) for p in passes[:2]]))
    for ours, alone in zip(terms[:3], lane1[:3]):
        torch.testing.assert_close(ours[:, 1:], alone)
    # A gap in a lane's passes without a reset is refused.
    flow, events, pol_mask, event_mask = passes[0]
    buffer = loss_buffer_append(buffer, [flow], events, pol_mask, None, event_mask)
    with pytest.raises(ValueError, match="consecutive"):
        event_warping_loss(buffer)
    reset = loss_buffer_reset_lanes(buffer, torch.tensor([False, True]))
    assert torch.isfinite(event_warping_loss(reset))


def test_overwrite_intermediate_warps_every_event_with_the_last_flow():
    gen = torch.Generator().manual_seed(8)
    passes = [_random_pass(gen) for _ in range(3)]
    last_flow = passes[-1][0]
    same_flow = _buffer([(last_flow, *rest) for _, *rest in passes])
    overwritten = event_warping_loss(_buffer(passes), smoothness_weight=0.0, overwrite_intermediate=True)
    expected = event_warping_loss(same_flow, smoothness_weight=0.0)
    assert overwritten.item() == pytest.approx(expected.item(), rel=1e-6)


def test_gradient_of_the_loss_with_respect_to_flow():
    gen = torch.Generator().manual_seed(9)
    passes = [_random_pass(gen, batch=1, n=8, height=4, width=5, dtype=torch.float64) for _ in range(2)]
    flows = [p[0].clone().requires_grad_() for p in passes]
    for compat in (None, COMPAT):

        def loss(*fs, compat=compat):
            return event_warping_loss(_buffer([(f, *p[1:]) for f, p in zip(fs, passes)]), compat=compat)

        assert torch.autograd.gradcheck(loss, tuple(flows), fast_mode=True)


# ------------------------------------------------------------------------------------------ bad input


def test_bad_input_is_rejected_with_one_line_errors():
    flow, events, pol_mask, event_mask = _one_lane([[0.0, 1.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="empty"):
        event_warping_loss(empty_loss_buffer())
    with pytest.raises(ValueError, match="event_list must be"):
        loss_buffer_append(empty_loss_buffer(), [flow], events[0], pol_mask, None, event_mask)
    with pytest.raises(ValueError, match="pol_mask must be"):
        loss_buffer_append(empty_loss_buffer(), [flow], events, pol_mask[..., :1], None, event_mask)
    with pytest.raises(ValueError, match="outside the 3x3 image"):
        outside = events.clone()
        outside[..., 2] = 3
        loss_buffer_append(empty_loss_buffer(), [flow], outside, pol_mask, None, event_mask)
    buffer = loss_buffer_append(empty_loss_buffer(), [flow], events, pol_mask, None, event_mask)
    with pytest.raises(ValueError, match="does not match"):
        loss_buffer_append(buffer, [flow, flow], events, pol_mask, None, event_mask)
    with pytest.raises(ValueError, match="compat must be"):
        event_warping_loss(buffer, compat="reference")
