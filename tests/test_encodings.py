"""Encodings against plain loops, golden parity with the reference loader, the hot-pixel filter and flips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eventflow import encodings as enc
from eventflow.io.h5 import Recording
from eventflow.windows import WindowSpec, load_window, plan_windows

RES = (5, 7)


def random_window(n, seed=0, res=RES):
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.integers(0, res[1], n))
    y = torch.from_numpy(rng.integers(0, res[0], n))
    t = enc.normalize_timestamps(np.sort(rng.random(n)))
    p = torch.from_numpy(rng.choice([-1.0, 1.0], n).astype(np.float32))
    return x, y, t, p


def loop_encodings(x, y, t, p, num_bins, res):
    """Plain per-event loops (float32 accumulation in event order) as the oracle."""
    h, w = res
    cnt = np.zeros((2, h, w), np.float32)
    mask = np.zeros((1, h, w), np.float32)
    vox = np.zeros((num_bins, h, w), np.float32)
    for k in range(len(x)):
        xi, yi, pi, ti = int(x[k]), int(y[k]), float(p[k]), np.float32(t[k]) * np.float32(num_bins - 1)
        cnt[0 if pi > 0 else 1, yi, xi] += 1
        mask[0, yi, xi] = 1
        for b in range(num_bins):
            wgt = max(np.float32(0), np.float32(1) - np.abs(ti - np.float32(b)))
            vox[b, yi, xi] = np.float32(vox[b, yi, xi] + np.float32(pi) * wgt)
    return cnt, mask, vox


@pytest.mark.parametrize("num_bins", [1, 2, 5])
def test_encodings_match_loops(num_bins):
    x, y, t, p = random_window(300, seed=num_bins)
    cnt, mask, vox = loop_encodings(x, y, t, p, num_bins, RES)
    np.testing.assert_array_equal(enc.event_count(x, y, p, RES).numpy(), cnt)
    np.testing.assert_array_equal(enc.event_mask(x, y, RES).numpy(), mask)
    np.testing.assert_array_equal(enc.event_voxel(x, y, t, p, num_bins, RES).numpy(), vox)
    lst = enc.event_list(x, y, t, p)
    assert lst.shape == (300, 4) and lst.dtype == torch.float32
    np.testing.assert_array_equal(lst[:, 1].numpy(), y.numpy())
    pm = enc.polarity_mask(p)
    np.testing.assert_array_equal(pm.numpy(), np.stack([p.numpy() > 0, p.numpy() < 0], 1).astype(np.float32))
    assert not torch.signbit(pm).any()
    assert torch.signbit(enc.polarity_mask(p, compat="hagenaars2021")[:, 1][p > 0]).all()


def test_round_ts_puts_each_event_in_one_bin():
    x, y, t, p = random_window(100, seed=9)
    vox = enc.event_voxel(x, y, t, p, 3, RES, round_ts=True)
    _, _, want = loop_encodings(x, y, torch.round(t * 2) / 2, p, 3, RES)
    np.testing.assert_array_equal(vox.numpy(), want)


def test_batched_forms_equal_per_window_forms_with_padding():
    wins = [random_window(n, seed=n) for n in (40, 0, 17)]
    n_max = 40
    pad = [torch.zeros(3, n_max, dtype=d) for d in (torch.int64, torch.int64, torch.float32, torch.float32)]
    valid = torch.zeros(3, n_max, dtype=torch.bool)
    for b, w in enumerate(wins):
        for col, val in zip(pad, w):
            col[b, : len(val)] = val
        valid[b, : len(w[0])] = True
    xs, ys, ts, ps = pad
    batched = (enc.event_count(xs, ys, ps, RES, valid), enc.event_mask(xs, ys, RES, valid),
               enc.event_voxel(xs, ys, ts, ps, 4, RES, valid=valid))
    for b, (x, y, t, p) in enumerate(wins):
        single = (enc.event_count(x, y, p, RES), enc.event_mask(x, y, RES), enc.event_voxel(x, y, t, p, 4, RES))
        for got, want in zip(batched, single):
            assert torch.equal(got[b], want)


def test_normalize_timestamps_in_float32():
    t = np.array([1000.000001, 1000.5, 1001.0])
    t32 = t.astype(np.float32)
    want = (t32 - t32[0]) / (t32[-1] - t32[0])
    np.testing.assert_array_equal(enc.normalize_timestamps(t).numpy(), want)
    assert enc.normalize_timestamps(np.array([3.0])).tolist() == [0.0]
    assert torch.isnan(enc.normalize_timestamps(np.array([3.0, 3.0]), compat="hagenaars2021")).all()
    assert enc.normalize_timestamps(np.zeros(0)).shape == (0,)


@pytest.mark.golden
def test_golden_first_20_windows_of_1000_events(ecd_h5, golden_npz, one_thread):
    rec = Recording(ecd_h5)
    gold = {k: golden_npz[k] for k in ("event_cnt", "event_mask", "event_list", "pol_mask", "dt_input")}
    wins = plan_windows(rec, WindowSpec("events", 1000))[:20]
    assert [w.i0 for w in wins] == golden_npz["event_index_start"].tolist()
    for k, win in enumerate(wins):
        ev = load_window(rec, win)
        x, y = torch.from_numpy(ev["x"].astype(np.int64)), torch.from_numpy(ev["y"].astype(np.int64))
        p = torch.from_numpy(ev["p"].astype(np.float32))
        t = enc.normalize_timestamps(ev["t"], compat="hagenaars2021")
        assert torch.equal(enc.event_count(x, y, p, rec.resolution), torch.from_numpy(gold["event_cnt"][k, 0]))
        assert torch.equal(enc.event_mask(x, y, rec.resolution), torch.from_numpy(gold["event_mask"][k, 0]))
        assert torch.equal(enc.event_list(x, y, t, p), torch.from_numpy(gold["event_list"][k, 0]))
        pm = enc.polarity_mask(p, compat="hagenaars2021").numpy()
        np.testing.assert_array_equal(pm, gold["pol_mask"][k, 0])
        np.testing.assert_array_equal(np.signbit(pm), np.signbit(gold["pol_mask"][k, 0]))  # the -0.0 quirk
        assert ev["t"][-1] - ev["t"][0] == gold["dt_input"][k, 0]


# -- hot-pixel filter --------------------------------------------------------------------------------------------


def hot_loop_oracle(rate, num_windows, max_px, min_obvs, max_rate):
    """The greedy reference filter restated: repeatedly take the first argmax while its rate exceeds max_rate."""
    rate = rate.clone()
    mask = torch.ones_like(rate)
    if num_windows > min_obvs:
        for _ in range(max_px):
            i = int(torch.argmax(rate))
            r, c = divmod(i, rate.shape[1])
            if rate[r, c] > max_rate:
                rate[r, c] = 0
                mask[r, c] = 0
            else:
                break
    return mask


@pytest.mark.parametrize("max_px", [5, 30])  # fewer or more slots than pixels over the rate
def test_hot_pixel_step_matches_the_greedy_loop_with_ties(max_px):
    rng = np.random.default_rng(max_px)
    lanes, res = 3, (4, 6)
    state = enc.hot_pixel_init(res, batch_size=lanes)
    oracle_active = torch.zeros(lanes, *res)
    oracle_num = [0] * lanes
    for step in range(40):
        # Few distinct activity patterns make many equal rates (ties).
        cnt = torch.from_numpy((rng.random((lanes, 2, *res)) < 0.45).astype(np.float32) * 3)
        if step == 20:
            state = enc.hot_pixel_reset(state, torch.tensor([False, True, False]))
            oracle_active[1] = 0
            oracle_num[1] = 0
        mask, state = enc.hot_pixel_step(cnt, state, max_px=max_px, min_obvs=3, max_rate=0.5)
        for b in range(lanes):
            oracle_active[b] += (cnt[b].sum(0) > 0).float()
            oracle_num[b] += 1
            want = hot_loop_oracle(oracle_active[b] / oracle_num[b], oracle_num[b], max_px, 3, 0.5)
            assert torch.equal(mask[b], want), (step, b)
    assert state.num_windows.tolist() == oracle_num


def test_hot_pixel_rate_compared_in_float32():
    # 8 of 10 windows: float32(0.8) == float32(8 / 10), so the pixel is not hotter than max_rate = 0.8.
    state = enc.hot_pixel_init((1, 2))
    on = torch.tensor([[[1.0, 1.0]], [[0.0, 0.0]]])
    off = torch.tensor([[[0.0, 1.0]], [[0.0, 0.0]]])
    for k in range(10):
        mask, state = enc.hot_pixel_step(on if k < 8 else off, state, min_obvs=5, max_rate=0.8)
    assert mask.tolist() == [[1.0, 0.0]] and state.num_windows.item() == 10


@pytest.mark.golden
def test_hot_pixel_filter_golden(ecd_h5, golden_npz, one_thread):
    rec = Recording(ecd_h5)
    gold = {k: golden_npz[f"ecd15k_{k}"] for k in ("event_cnt", "event_mask", "hot_px_removed")}
    state = enc.hot_pixel_init(rec.resolution)
    for k, win in enumerate(plan_windows(rec, WindowSpec("events", 15000))):
        ev = load_window(rec, win)
        x, y = torch.from_numpy(ev["x"].astype(np.int64)), torch.from_numpy(ev["y"].astype(np.int64))
        cnt = enc.event_count(x, y, torch.from_numpy(ev["p"].astype(np.float32)), rec.resolution)
        mask, state = enc.hot_pixel_step(cnt, state)
        inputs = {"event_cnt": cnt[None], "event_mask": enc.event_mask(x, y, rec.resolution)[None]}
        batch = enc.apply_hot_pixel_mask(inputs, mask[None])
        assert torch.equal(batch["event_cnt"][0], torch.from_numpy(gold["event_cnt"][k, 0]))
        assert torch.equal(batch["event_mask"][0], torch.from_numpy(gold["event_mask"][k, 0]))
        assert int(((mask == 0) & (cnt.sum(0) > 0)).sum()) == gold["hot_px_removed"][k]
    state = enc.hot_pixel_init(rec.resolution)
    changed = []
    for k, win in enumerate(plan_windows(rec, WindowSpec("events", 1000))[:20]):
        ev = load_window(rec, win)
        x, y = torch.from_numpy(ev["x"].astype(np.int64)), torch.from_numpy(ev["y"].astype(np.int64))
        cnt = enc.event_count(x, y, torch.from_numpy(ev["p"].astype(np.float32)), rec.resolution)
        mask, state = enc.hot_pixel_step(cnt, state)
        if not torch.equal(cnt * mask, cnt):
            changed.append(k + 1)
    assert changed == golden_npz["hot_filter_changed_windows_1k"].tolist()


def test_apply_hot_pixel_mask_can_drop_listed_events():
    x, y, t, p = (torch.tensor([[0, 1, 1, 0]]), torch.tensor([[0, 0, 0, 0]]), torch.tensor([[0.0, 0.3, 0.6, 1.0]]),
                  torch.tensor([[1.0, -1.0, 1.0, 0.0]]))
    valid = torch.tensor([[True, True, True, False]])
    batch = {"event_cnt": enc.event_count(x, y, p, (1, 2), valid), "event_list": enc.event_list(x, y, t, p),
             "pol_mask": enc.polarity_mask(p), "event_valid": valid, "num_events": torch.tensor([3])}
    mask = torch.tensor([[[1.0, 0.0]]])
    kept = enc.apply_hot_pixel_mask(batch, mask)
    assert torch.equal(kept["event_list"], batch["event_list"])  # reference: the list is not filtered
    assert kept["event_cnt"][0, :, 0, 1].tolist() == [0.0, 0.0]
    dropped = enc.apply_hot_pixel_mask(batch, mask, drop_listed_events=True)
    assert dropped["event_valid"].tolist() == [[True, False, False, False]]
    assert dropped["num_events"].tolist() == [1] and dropped["pol_mask"][0, 1:].abs().sum() == 0


# -- flips -------------------------------------------------------------------------------------------------------


def warp(x, y, t, flow, t_ref=1.0):
    """Move each event along the flow at its own pixel to t_ref (flow in px per unit of t)."""
    u = flow[0, y.long(), x.long()]
    v = flow[1, y.long(), x.long()]
    return x + (t_ref - t) * u, y + (t_ref - t) * v


@pytest.mark.parametrize("horizontal, vertical", [(True, False), (False, True), (True, True)])
def test_flipped_events_warped_with_flipped_flow_equal_the_flipped_warp(horizontal, vertical):
    h, w = RES
    x, y, t, p = random_window(200, seed=4)
    flow = torch.randn(2, h, w)
    wx, wy = warp(x.float(), y.float(), t, flow)
    fx, fy, fp = enc.flip_events(x, y, p, RES, horizontal, vertical, polarity=True)
    gx, gy = warp(fx.float(), fy.float(), t, enc.flip_flow(flow, horizontal, vertical))
    want_x, want_y, _ = enc.flip_events(wx, wy, p, RES, horizontal, vertical)
    assert torch.allclose(gx, want_x, atol=1e-5) and torch.allclose(gy, want_y, atol=1e-5)
    assert torch.equal(fp, -p)
    back = enc.flip_events(fx, fy, fp, RES, horizontal, vertical, polarity=True)
    assert all(torch.equal(a, b) for a, b in zip(back, (x, y, p)))
    batched = enc.flip_flow(flow[None].numpy(), horizontal, vertical)
    np.testing.assert_array_equal(batched[0], enc.flip_flow(flow, horizontal, vertical).numpy())
