"""The batch pipeline: lane plans and reset flags, determinism, DataLoader workers, augmentation, GT batches."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from eventflow import encodings as enc
from eventflow.datasets import Flips, SequenceDataset, iter_recording, plan_lanes
from eventflow.events import make_events
from eventflow.io.h5 import Recording
from eventflow.io.h5write import write_recording
from eventflow.windows import WindowSpec, load_window, plan_windows

RES = (6, 9)
KEYS = {"event_cnt", "event_mask", "event_list", "pol_mask", "event_valid", "num_events", "dt_input", "dt_gt",
        "reset", "active", "file_index", "window_index", "t_start", "t_end"}


def tiny(tmp_path, name, n, seed, gt_every=None):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.random(n)) + seed
    ev = make_events(rng.integers(0, RES[1], n), rng.integers(0, RES[0], n), t, rng.choice([-1, 1], n))
    flow = []
    if gt_every:
        stamps = t[::gt_every]
        flow = [(s, rng.standard_normal((2, *RES)).astype(np.float32)) for s in stamps]
    return write_recording(tmp_path / name, ev, RES, t0=float(seed), flow_dt1=flow)


@pytest.fixture
def files(tmp_path):
    # 5, 3, 7 and 2 windows of 20 events (the last event count leaves a partial window that is dropped)
    return [tiny(tmp_path, f"r{i}.h5", n, i) for i, n in enumerate((100, 65, 140, 40))]


def test_lanes_follow_the_reference_assignment():
    lanes = plan_lanes([5, 3, 7, 2, 0, 4], [0, 1, 2, 3, 4, 5], 2)
    # lane 0: file 0 (steps 0-4); lane 1: file 1 (0-2), then file 2 (3-9); lane 0 takes file 3 at step 5, ...
    assert [[(s.file_index, s.start_step) for s in lane] for lane in lanes] == [[(0, 0), (3, 5), (5, 7)],
                                                                                [(1, 0), (2, 3)]]


def test_reset_flags_are_per_lane(files):
    ds = SequenceDataset(files, WindowSpec("events", 20), batch_size=2)
    assert len(ds) == ds.steps_per_epoch == 10  # lane 1: 3 + 7 windows; lane 0: 5 + 2, then inactive
    batches = [ds[s] for s in range(len(ds))]
    assert set(batches[0]) == KEYS
    resets = torch.stack([b["reset"] for b in batches]).tolist()
    assert [s for s, r in enumerate(resets) if r[0]] == [0, 5]
    assert [s for s, r in enumerate(resets) if r[1]] == [0, 3]
    active = torch.stack([b["active"] for b in batches])
    assert active[:, 1].all() and active[:7, 0].all() and not active[7:, 0].any()
    files_seen = torch.stack([b["file_index"] for b in batches])
    assert files_seen[:, 0].tolist() == [0] * 5 + [3] * 2 + [-1] * 3
    assert files_seen[:, 1].tolist() == [1] * 3 + [2] * 7
    assert batches[3]["window_index"].tolist() == [3, 0]
    idle = batches[8]
    assert idle["num_events"][0] == 0 and idle["event_cnt"][0].abs().sum() == 0 and not idle["event_valid"][0].any()


def test_batch_contents_match_the_recording(files):
    ds = SequenceDataset(files, WindowSpec("events", 20), batch_size=2, encodings=("cnt", "voxel", "mask", "list"),
                         num_bins=3)
    b = ds[4]
    rec = Recording(files[2])
    win = plan_windows(rec, WindowSpec("events", 20))[1]
    ev = load_window(rec, win)
    x, y = torch.from_numpy(ev["x"].astype(np.int64)), torch.from_numpy(ev["y"].astype(np.int64))
    p = torch.from_numpy(ev["p"].astype(np.float32))
    t = enc.normalize_timestamps(ev["t"])
    assert torch.equal(b["event_cnt"][1], enc.event_count(x, y, p, RES))
    assert torch.equal(b["event_voxel"][1], enc.event_voxel(x, y, t, p, 3, RES))
    assert torch.equal(b["event_list"][1], enc.event_list(x, y, t, p))
    assert b["dt_input"][1].item() == ev["t"][-1] - ev["t"][0]
    assert (b["t_start"][1].item(), b["t_end"][1].item()) == (win.t_start, win.t_end)
    assert b["event_cnt"].shape == (2, 2, *RES) and b["event_list"].dtype == torch.float32


def test_determinism_per_seed_and_shuffle_per_epoch(files):
    kw = dict(batch_size=2, augment={"horizontal", "vertical", "polarity"}, shuffle=True)
    a = SequenceDataset(files, WindowSpec("events", 20), seed=1, **kw)
    b = SequenceDataset(files, WindowSpec("events", 20), seed=1, **kw)
    assert a.lanes == b.lanes
    for s in (0, 4, 9):
        assert all(torch.equal(a[s][k], b[s][k]) for k in KEYS)
    plans = {str(SequenceDataset(files, WindowSpec("events", 20), seed=s, **kw).lanes) for s in range(4)}
    assert len(plans) > 1
    before = a.lanes
    a.set_epoch(1)
    assert a.lanes != before and a.epoch == 1
    assert sorted(s.file_index for lane in a.lanes for s in lane) == [0, 1, 2, 3]  # every file once per epoch


def test_dataloader_workers_give_identical_batches(files):
    ds = SequenceDataset(files, WindowSpec("events", 20), batch_size=2, augment={"horizontal", "polarity"}, seed=3)
    ds[0]  # open a file in the parent: the workers must not use its handle
    serial = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0))
    parallel = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2))
    assert len(serial) == len(parallel) == len(ds)
    for x, y in zip(serial, parallel):
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    assert pickle.loads(pickle.dumps(ds)).lanes == ds.lanes


def test_augmentation_flips_events_and_gt_consistently(tmp_path):
    path = tiny(tmp_path, "gt.h5", 200, 4, gt_every=40)
    spec = WindowSpec("gt", 1.0)
    plain = SequenceDataset([path], spec)
    for seed in range(100):  # find a seed that draws every flip (p = 1/8 each)
        flipped = SequenceDataset([path], spec, seed=seed, augment={"horizontal", "vertical", "polarity"})
        if flipped.lanes[0][0].flips == Flips(True, True, True):
            break
    else:
        pytest.fail("no seed drew all three flips")
    a, b = plain[1], flipped[1]
    assert torch.equal(b["gt_flow"][0], enc.flip_flow(a["gt_flow"][0], True, True))
    assert torch.equal(b["event_cnt"][0], torch.flip(a["event_cnt"][0], dims=(1, 2)).flip(0))  # polarity swaps
    lst_a, lst_b = a["event_list"][0], b["event_list"][0]
    assert torch.equal(lst_b[:, 1], RES[0] - 1 - lst_a[:, 1]) and torch.equal(lst_b[:, 3], -lst_a[:, 3])
    rec = Recording(path)
    assert torch.equal(a["gt_flow"][0], torch.from_numpy(rec.read_gt(1, 2)))
    assert a["dt_gt"][0].item() == rec.gt_timestamps(1)[2] - rec.gt_timestamps(1)[1]


def test_iter_recording_in_order(files):
    batches = list(iter_recording(files[2], WindowSpec("events", 20)))
    assert len(batches) == 7 and set(batches[0]) == KEYS
    assert [b["reset"].item() for b in batches] == [True] + [False] * 6
    assert [b["window_index"].item() for b in batches] == list(range(7))
    ds = SequenceDataset([files[2]], WindowSpec("events", 20))
    for k, b in enumerate(batches):
        assert all(torch.equal(b[key], ds[k][key]) for key in KEYS)


@pytest.mark.golden
def test_iter_recording_golden(ecd_h5, golden_npz):
    gold = {k: golden_npz[k] for k in ("event_cnt", "event_list", "pol_mask", "event_mask", "dt_input")}
    for k, b in zip(range(20), iter_recording(ecd_h5, WindowSpec("events", 1000), compat="hagenaars2021")):
        for key, gkey in (("event_cnt", "event_cnt"), ("event_list", "event_list"), ("event_mask", "event_mask")):
            assert torch.equal(b[key], torch.from_numpy(gold[gkey][k])), (k, key)
        np.testing.assert_array_equal(np.signbit(b["pol_mask"].numpy()), np.signbit(gold["pol_mask"][k]))
        assert b["dt_input"].numpy().tolist() == gold["dt_input"][k].tolist()


def test_bad_arguments(files, tmp_path):
    with pytest.raises(ValueError, match="voxel"):
        SequenceDataset(files, WindowSpec("events", 20), encodings=("voxel",))
    with pytest.raises(ValueError, match="unknown augmentation"):
        SequenceDataset(files, WindowSpec("events", 20), augment={"rotate"})
    other = write_recording(tmp_path / "big.h5", make_events([0], [0], [0.0], [1]), (7, 7))
    with pytest.raises(ValueError, match="resolution"):
        SequenceDataset([files[0], other], WindowSpec("events", 20))
    with pytest.raises(ValueError, match="flow_dt1"):
        SequenceDataset(files, WindowSpec("gt", 1.0))
