"""Warping, splatting and images of warped events against hand-computed cases."""

from __future__ import annotations

import pytest
import torch

from eventflow.warping import (
    accumulate,
    average_timestamp_image,
    check_compat,
    image_of_warped_events,
    lookup_event_flow,
    pixel_index,
    splat_bilinear,
    splat_round,
    warp_events,
)


def _events(rows):
    """(B=1, N, 4) event list from (ts, y, x, p) rows."""
    return torch.tensor([rows], dtype=torch.float32)


def _pol_mask(events):
    p = events[..., 3]
    return torch.stack(((p > 0).float(), (p < 0).float()), dim=-1)


def test_lookup_event_flow_reads_each_events_own_pixel_and_pass():
    flow = torch.arange(2 * 2 * 3 * 4, dtype=torch.float32).view(1, 2, 2, 3, 4)  # (B, T, 2, H, W)
    pixel = pixel_index(torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 3.0]]), 4)  # (y, x) = (0, 1), (2, 3)
    per_event = lookup_event_flow(flow, pixel, torch.tensor([0, 1]))
    expected = [[flow[0, 0, 0, 0, 1], flow[0, 0, 1, 0, 1]], [flow[0, 1, 0, 2, 3], flow[0, 1, 1, 2, 3]]]  # (u, v)
    assert per_event.tolist() == [expected]
    single = lookup_event_flow(flow[:, 1], pixel)  # (B, 2, H, W)
    assert single[0, 0].tolist() == [flow[0, 1, 0, 0, 1], flow[0, 1, 1, 0, 1]]
    with pytest.raises(ValueError, match="pass_index"):
        lookup_event_flow(flow, pixel)


def test_warp_events_moves_along_the_flow_to_t_ref():
    y, x, t = torch.tensor([2.0]), torch.tensor([5.0]), torch.tensor([0.25])
    flow = torch.tensor([[0.5, -0.25]])  # (N, 2): u, v
    wy, wx = warp_events(y, x, t, flow, t_ref=1.0, flow_scaling=4.0)
    assert (wy.item(), wx.item()) == (2.0 - 0.75 * 0.25 * 4, 5.0 + 0.75 * 0.5 * 4)
    wy, wx = warp_events(y, x, t, flow, t_ref=0.0, flow_scaling=4.0)
    assert (wy.item(), wx.item()) == (2.0 + 0.25 * 0.25 * 4, 5.0 - 0.25 * 0.5 * 4)


def test_bilinear_splat_conserves_mass_inside_the_image():
    gen = torch.Generator().manual_seed(0)
    y = torch.rand(1, 500, generator=gen) * 5  # inside [0, H - 1] = [0, 5]
    x = torch.rand(1, 500, generator=gen) * 7
    splat = splat_bilinear(y, x, (6, 8))
    torch.testing.assert_close(splat.weight.sum(dim=0), torch.ones(1, 500))
    image = accumulate(splat, (6, 8))  # (1, Q, C, H, W)
    torch.testing.assert_close(image.sum(), torch.tensor(500.0))


def test_bilinear_splat_weights_and_dropped_neighbours():
    splat = splat_bilinear(torch.tensor([1.25]), torch.tensor([2.5]), (4, 4))
    assert splat.index[:, 0].tolist() == [1 * 4 + 2, 1 * 4 + 3, 2 * 4 + 2, 2 * 4 + 3]  # TL, TR, BL, BR
    assert splat.weight[:, 0].tolist() == [0.75 * 0.5, 0.75 * 0.5, 0.25 * 0.5, 0.25 * 0.5]
    # Right of the last column: the right neighbours fall outside and are dropped (weight 0, valid index).
    edge = splat_bilinear(torch.tensor([0.0]), torch.tensor([3.25]), (4, 4))
    assert edge.weight.sum().item() == pytest.approx(0.75)
    assert 0 <= edge.index.min().item() and edge.index.max().item() < 16
    # Left of the first column: only the right neighbour (column 0) is inside.
    left = splat_bilinear(torch.tensor([0.0]), torch.tensor([-0.25]), (4, 4))
    assert left.weight.sum().item() == pytest.approx(0.75)


def test_compat_neighbour_quirk_loses_a_tiny_negative_position():
    # floor(v + 1) rounds up to 1 for v = -1e-8 in float32: the reference's neighbours are -1 and 1, both weight 0.
    y, x = torch.tensor([1.0]), torch.tensor([-1e-8])
    assert splat_bilinear(y, x, (3, 3)).weight.sum().item() == pytest.approx(1.0)
    assert splat_bilinear(y, x, (3, 3), compat="hagenaars2021").weight.sum().item() == 0.0


def test_round_splat_rounds_half_to_even_and_drops_outside():
    splat = splat_round(torch.tensor([0.5, 1.5, 2.49, -0.6]), torch.tensor([0.0, 0.0, 3.5, 0.0]), (3, 5))
    assert splat.index[0].tolist() == [0 * 5 + 0, 2 * 5 + 0, 2 * 5 + 4, 0]
    assert splat.weight[0].tolist() == [1.0, 1.0, 1.0, 0.0]


def test_accumulate_sums_values_per_channel_and_quantity():
    splat = splat_round(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[1.0, 1.0, 0.0]]), (2, 2))  # (K=1, 1, N=3)
    values = torch.tensor([[[1.0, 1.0, 1.0]], [[0.2, 0.4, 0.8]]])  # (Q=2, 1, N)
    channel = torch.tensor([[0, 0, 1]])
    image = accumulate(splat, (2, 2), values, channel, num_channels=2)
    assert image.shape == (1, 2, 2, 2, 2)
    assert image[0, 0, 0].tolist() == [[0.0, 2.0], [0.0, 0.0]]
    assert image[0, 0, 1].tolist() == [[0.0, 0.0], [1.0, 0.0]]
    torch.testing.assert_close(image[0, 1, 0, 0, 1], torch.tensor(0.6))
    torch.testing.assert_close(image[0, 1, 1, 1, 0], torch.tensor(0.8))


def test_average_timestamp_image_is_zero_where_empty():
    counts = torch.tensor([[2.0, 0.0]])
    sums = torch.tensor([[3.0, 0.0]])
    torch.testing.assert_close(average_timestamp_image(counts, sums, 2.0), torch.tensor([[0.75, 0.0]]))


def test_image_of_warped_events_zero_and_integer_flow():
    events = _events([[0.0, 1.0, 1.0, 1.0], [0.5, 1.0, 1.0, -1.0], [1.0, 2.0, 0.0, 1.0]])
    flow = torch.zeros(1, 2, 3, 4)
    still = image_of_warped_events(flow, events, _pol_mask(events))
    assert still[0, 0].nonzero().tolist() == [[1, 1], [2, 0]]
    assert still[0, 1].nonzero().tolist() == [[1, 1]]
    flow[:, 0] = 2.0 / 128  # two pixels right per window
    moved = image_of_warped_events(flow, events, _pol_mask(events), t_ref=1.0)
    assert moved[0, 0, 1].tolist() == [0.0, 0.0, 0.0, 1.0]  # from x = 1, 1 window before t_ref
    assert moved[0, 1, 1].tolist() == [0.0, 0.0, 1.0, 0.0]  # from x = 1, half a window before
    assert moved[0, 0, 2].tolist() == [1.0, 0.0, 0.0, 0.0]  # at t_ref: not moved
    rounded = image_of_warped_events(flow, events, _pol_mask(events), round_idx=True)
    torch.testing.assert_close(rounded, moved)


def test_image_of_warped_events_ignores_padding_with_any_coordinates():
    events = _events([[0.0, 1.0, 1.0, 1.0], [0.0, -7.0, 99.0, 0.0]])
    valid = torch.tensor([[True, False]])
    image = image_of_warped_events(torch.zeros(1, 2, 3, 3), events, _pol_mask(events), valid)
    assert image.sum().item() == 1.0


def test_iwe_gradient_with_respect_to_flow():
    gen = torch.Generator().manual_seed(1)
    events = torch.cat(
        (torch.rand(1, 6, 1, generator=gen), torch.randint(0, 5, (1, 6, 2), generator=gen).double(),
         torch.ones(1, 6, 1)), dim=-1
    ).double()
    pol_mask = torch.stack((torch.ones(1, 6), torch.zeros(1, 6)), dim=-1).double()
    flow = (torch.rand(1, 2, 5, 5, generator=gen, dtype=torch.float64) - 0.5) / 64
    flow.requires_grad_()

    def contrast(f):
        return (image_of_warped_events(f, events, pol_mask, flow_scaling=16.0) ** 2).sum()

    assert torch.autograd.gradcheck(contrast, (flow,))


def test_check_compat_rejects_unknown_modes():
    check_compat(None)
    check_compat("hagenaars2021")
    with pytest.raises(ValueError, match="compat must be"):
        check_compat("hagenaars")
