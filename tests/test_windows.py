"""Window planning with the reference loader's semantics, pinned on small hand-made recordings."""

from __future__ import annotations

import numpy as np
import pytest

from eventflow.events import make_events
from eventflow.io.h5 import Recording
from eventflow.io.h5write import write_recording
from eventflow.windows import (
    EMPTY_WINDOW_MAX,
    Window,
    WindowSpec,
    count_windows,
    load_window,
    plan_windows,
    read_window,
    window_at,
)


def recording(tmp_path, t, t0=0.0, gt=(), name="r.h5", **kw):
    n = len(t)
    ev = make_events(np.arange(n) % 4, np.zeros(n, int), np.asarray(t, float), np.ones(n))
    flow = [(g, np.full((2, 1, 4), k, np.float32)) for k, g in enumerate(gt)]
    return Recording(write_recording(tmp_path / name, ev, (1, 4), t0=t0, flow_dt1=flow, flow_dt4=flow, **kw))


def bisect_oracle(a, x, lo, hi):
    """The reference's recursive bisection, restated as the test's oracle."""
    if lo > hi:
        return lo
    mid = lo + (hi - lo) // 2
    if a[mid] == x:
        return mid
    return bisect_oracle(a, x, lo, mid - 1) if x < a[mid] else bisect_oracle(a, x, mid + 1, hi)


def loop_oracle(ts, t0, gt, mode, size, compat):
    """The reference loader's window loop, one row at a time (event indices, GT index, dt_gt)."""
    def find(v):
        return bisect_oracle(ts, v, 0, ts.size - 1) if compat else int(np.searchsorted(ts, v, "left"))

    out, row = [], 0
    if mode == "time":
        while not row + size >= ts[-1] - t0:
            out.append((find(row + t0), find(row + t0 + size), -1, 0.0))
            row += size
        return out
    while not int(np.ceil(row + size)) >= len(gt):
        a, b = int(np.floor(row)), int(np.ceil(row + size))
        if size < 1.0 and b - a > 1:
            a = b - 1
        e0, e1 = find(gt[a]), find(gt[b])
        if size < 1.0:
            d = e1 - e0
            e0, e1 = int(e0 + (row - a) * d), int(e0 + (row + size - a) * d)
        out.append((e0, e1, b, gt[b] - gt[b - 1]))
        row += size
    return out


def test_events_mode_drops_the_trailing_partial_window(tmp_path):
    rec = recording(tmp_path, np.arange(25) * 0.5)
    wins = plan_windows(rec, WindowSpec("events", 10))
    assert wins == [Window(0, 0, 10, -1, 0.0, 4.5, 0.0), Window(1, 10, 20, -1, 5.0, 9.5, 0.0)]
    rec30 = recording(tmp_path, np.arange(30) * 0.5, name="r30.h5")
    assert count_windows(rec30, WindowSpec("events", 10)) == 3  # an exactly full last window is kept


def test_time_mode_pinned(tmp_path):
    rec = recording(tmp_path, np.arange(40) / 8, t0=0.0)  # exact binary times 0 .. 4.875 s
    wins = plan_windows(rec, WindowSpec("time", 0.5))
    # rows 0, 0.5, ..., 4.0: the next one (4.5) would reach 4.5 + 0.5 >= ts[-1] = 4.875 and ends the sequence
    assert [(w.i0, w.i1) for w in wins] == [(4 * k, 4 * k + 4) for k in range(9)]
    assert [(w.t_start, w.t_end) for w in wins[:2]] == [(0.0, 0.5), (0.5, 1.0)]


def test_time_mode_uses_absolute_clock_with_t0(tmp_path):
    rec = recording(tmp_path, 100.0 + np.arange(40) / 8, t0=100.0)
    assert [(w.i0, w.i1) for w in plan_windows(rec, WindowSpec("time", 0.5))][:2] == [(0, 4), (4, 8)]


def test_gt_mode_dt1_and_the_dt4_split_by_event_count(tmp_path):
    rec = recording(tmp_path, 100.0 + np.arange(41.0), t0=100.0, gt=100.0 + np.arange(0, 41, 10.0))
    dt1 = plan_windows(rec, WindowSpec("gt", 1.0, dt=1))
    assert [(w.i0, w.i1, w.gt_index, w.dt_gt) for w in dt1] == [(10 * k, 10 * k + 10, k + 1, 10.0) for k in range(4)]
    assert (dt1[1].t_start, dt1[1].t_end) == (10.0, 20.0)  # the GT interval, relative to t0
    dt4 = plan_windows(rec, WindowSpec("gt", 0.25, dt=4))
    # Each GT interval of 10 events splits at int(e0 + j/4 * 10): 2.5 -> 2, 5, 7.5 -> 7, 10.
    want = [(10 * k + a, 10 * k + b, k + 1) for k in range(4) for a, b in ((0, 2), (2, 5), (5, 7), (7, 10))]
    assert [(w.i0, w.i1, w.gt_index) for w in dt4] == want
    assert all(w.dt_gt == 10.0 and (w.t_start, w.t_end) == (10.0 * (w.gt_index - 1), 10.0 * w.gt_index) for w in dt4)


@pytest.mark.parametrize("compat", [None, "hagenaars2021"])
@pytest.mark.parametrize("mode, size", [("time", 0.003), ("time", 0.01), ("gt", 1.0), ("gt", 0.25), ("gt", 2.0),
                                        ("gt", 0.1)])
def test_plan_matches_the_reference_loop(tmp_path, mode, size, compat):
    rng = np.random.default_rng(5)
    t0 = 3.0
    ts = t0 + np.sort(rng.integers(0, 60, 400)) * 1e-3  # many duplicate timestamps
    gt = np.sort(rng.choice(np.unique(ts), 9, replace=False))  # GT times equal to event times, as is common
    rec = recording(tmp_path, ts, t0=t0, gt=gt)
    spec = WindowSpec(mode, size, dt=1)
    wins = plan_windows(rec, spec, compat=compat)
    assert [(w.i0, w.i1, w.gt_index, w.dt_gt) for w in wins] == loop_oracle(rec.read(0, 400)["t"] + t0, t0, gt,
                                                                            mode, size, compat)
    assert [window_at(rec, spec, k, compat=compat) for k in range(len(wins))] == wins
    assert count_windows(rec, spec) == len(wins)


def test_compat_search_differs_on_duplicate_timestamps(tmp_path):
    ts = np.array([0.0, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2, 0.3, 0.4, 0.5, 0.6])
    rec = recording(tmp_path, ts, gt=[0.0, 0.2, 0.6])
    assert rec.find_time(0.2) == 2
    assert rec.find_time(0.2, compat="hagenaars2021") == 5  # the first probe, mid = 5, already holds 0.2
    assert [w.i1 for w in plan_windows(rec, WindowSpec("gt", 1.0))][:1] == [2]
    assert [w.i1 for w in plan_windows(rec, WindowSpec("gt", 1.0), compat="hagenaars2021")][:1] == [5]


def test_empty_window_rule(tmp_path):
    rec = recording(tmp_path, np.arange(60) * 0.01)
    assert EMPTY_WINDOW_MAX == 10
    win10 = plan_windows(rec, WindowSpec("events", 10))[0]
    assert load_window(rec, win10).size == 0
    win11 = plan_windows(rec, WindowSpec("events", 11))[0]
    assert load_window(rec, win11).size == 11
    w, ev = read_window(rec, WindowSpec("events", 10), 2)
    assert w == plan_windows(rec, WindowSpec("events", 10))[2] and ev.size == 0
    w, ev = read_window(rec, WindowSpec("events", 12), 1)
    np.testing.assert_array_equal(ev, rec.read(12, 24))
    w, ev = read_window(rec, WindowSpec("time", 0.2), 1)
    np.testing.assert_array_equal(ev, load_window(rec, window_at(rec, WindowSpec("time", 0.2), 1)))


def test_plan_streams_many_windows(tmp_path):
    # Enough windows that event times are gathered in one chunked pass rather than point reads.
    rec = recording(tmp_path, np.arange(5000) * 1e-3, chunk_events=256)
    wins = plan_windows(rec, WindowSpec("events", 7))
    assert len(wins) == 714 and wins[100] == window_at(rec, WindowSpec("events", 7), 100)
    assert wins[-1].t_end == rec.read(4997, 4998)["t"][0]


def test_spec_validation_and_missing_gt(tmp_path):
    for args in (("frames", 1), ("events", 10.5), ("time", 0), ("gt", 0.3), ("time", float("nan"))):
        with pytest.raises(ValueError):
            WindowSpec(*args)
    with pytest.raises(ValueError):
        WindowSpec("gt", 1.0, dt=0)
    rec = recording(tmp_path, np.arange(20) * 0.1)
    with pytest.raises(ValueError, match="flow_dt1"):
        plan_windows(rec, WindowSpec("gt", 1.0))
    with pytest.raises(IndexError):
        window_at(rec, WindowSpec("events", 5), 4)
