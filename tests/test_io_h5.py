"""Reading the reference HDF5 layout: round trips, chunked reads, time search, filters and bad input."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

from eventflow.events import make_events
from eventflow.io import h5 as h5mod
from eventflow.io.h5 import Recording, RecordingError, reference_bisection
from eventflow.io.h5write import write_recording


def random_events(n, resolution=(6, 8), seed=0, t0=0.0, dup=False):
    rng = np.random.default_rng(seed)
    h, w = resolution
    t = np.sort(rng.integers(0, n // 3 + 1, n) * 1e-3) if dup else np.sort(rng.random(n))
    return make_events(rng.integers(0, w, n), rng.integers(0, h, n), t + t0, rng.choice([-1, 1], n))


def raw_file(path, xs, ys, ts, ps, attrs=None, **groups):
    """A file in the layout written with h5py directly, with whatever dtypes the test wants."""
    with h5py.File(path, "w") as f:
        g = f.create_group("events")
        for name, data in (("xs", xs), ("ys", ys), ("ts", ts), ("ps", ps)):
            if data is not None:
                g.create_dataset(name, data=data)
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        for group, items in groups.items():
            gg = f.create_group(group)
            for name, (stamp, arr) in items.items():
                gg.create_dataset(name, data=arr).attrs["timestamp"] = stamp
    return path


def one_line_error(excinfo, path):
    msg = str(excinfo.value)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


def test_round_trip_with_gt_and_frames(tmp_path):
    ev = random_events(500, t0=10.0)
    flow = [(10.0 + 0.1 * k, np.full((2, 6, 8), k, np.float32)) for k in range(5)]
    imgs = [(10.0 + 0.2 * k, np.full((6, 8), k, np.uint8)) for k in range(3)]
    path = write_recording(tmp_path / "r.h5", ev, (6, 8), t0=10.0, flow_dt1=flow, flow_dt4=flow[:2], images=imgs)
    with Recording(path) as rec:
        assert rec.resolution == (6, 8) and rec.num_events == 500 and rec.t0 == 10.0
        got = rec.read(0, 500)
        np.testing.assert_array_equal(got["x"], ev["x"])
        np.testing.assert_array_equal(got["p"], ev["p"])
        np.testing.assert_array_equal(got["t"], ev["t"] - 10.0)  # float64 ts - t0, as the reference
        assert rec.time_range == (ev["t"][0] - 10.0, ev["t"][-1] - 10.0)
        assert rec.duration == ev["t"][-1] - ev["t"][0]
        np.testing.assert_array_equal(rec.gt_timestamps(1), [s for s, _ in flow])
        assert rec.has_gt(1) and rec.has_gt(4) and not rec.has_gt(2)
        assert rec.read_gt(1, 3).dtype == np.float32 and rec.read_gt(1, 3)[0, 0, 0] == 3
        np.testing.assert_array_equal(rec.image_timestamps(), [s for s, _ in imgs])
        assert rec.read_image(2)[0, 0] == 2
        with pytest.raises(IndexError):
            rec.read_gt(1, 5)


def test_chunked_reading_equals_whole_read(tmp_path):
    ev = random_events(1000, seed=1)
    path = write_recording(tmp_path / "r.h5", ev, (6, 8), chunk_events=64)
    with Recording(path) as rec:
        whole = rec.read(0, rec.num_events)
        for size in (1, 7, 333, 5000):
            np.testing.assert_array_equal(np.concatenate(list(rec.iter_chunks(size))), whole)
        np.testing.assert_array_equal(np.concatenate([ts for _, ts in rec.iter_timestamps(13)]), ev["t"])
        np.testing.assert_array_equal(rec.timestamps(5, 9), whole["t"][5:9])
        assert rec.read(990, 2000).size == 10  # the end is clipped


@pytest.mark.parametrize("stored", ["bool", "uint8", "int8_pm1", "float_01"])
def test_polarity_is_two_p_minus_one_whatever_the_dtype(tmp_path, stored):
    p = np.array([1, 0, 0, 1, 1])
    data = {"bool": p.astype(bool), "uint8": p.astype(np.uint8), "int8_pm1": (2 * p - 1).astype(np.int8),
            "float_01": p.astype(np.float32)}[stored]
    path = raw_file(tmp_path / "p.h5", np.zeros(5, np.int16), np.zeros(5, np.int16), np.arange(5.0), data,
                    attrs={"sensor_resolution": [1, 1]})
    assert Recording(path).read(0, 5)["p"].tolist() == [1, -1, -1, 1, 1]


def test_resolution_from_attribute_maps_or_argument(tmp_path):
    xs, ys, ts, ps = np.array([0, 3], np.int16), np.array([0, 1], np.int16), np.array([0.0, 1.0]), np.array([1, 0])
    path = raw_file(tmp_path / "a.h5", xs, ys, ts, ps, flow_dt1={"flow000": (0.5, np.zeros((2, 2, 4), np.float32))})
    assert Recording(path).resolution == (2, 4)
    path = raw_file(tmp_path / "b.h5", xs, ys, ts, ps)
    with pytest.raises(RecordingError, match=r"pass resolution=\(H, W\)") as err:
        Recording(path)
    one_line_error(err, path)
    assert Recording(path, resolution=(5, 5)).resolution == (5, 5)


def test_gt_timestamps_follow_name_order(tmp_path):
    # Written out of name order: the reference visits names in increasing order (visititems).
    maps = {name: (stamp, np.full((2, 1, 1), stamp, np.float32))
            for name, stamp in (("flow0002", 2.0), ("flow0000", 0.0), ("flow0001", 1.0))}
    path = raw_file(tmp_path / "g.h5", np.zeros(3, np.int16), np.zeros(3, np.int16), np.arange(3.0),
                    np.ones(3, bool), attrs={"sensor_resolution": [1, 1]}, flow_dt1=maps)
    with Recording(path) as rec:
        assert rec.gt_timestamps(1).tolist() == [0.0, 1.0, 2.0]
        assert [rec.read_gt(1, k)[0, 0, 0] for k in range(3)] == [0.0, 1.0, 2.0]


def test_pickles_by_path_and_reopens(tmp_path):
    path = write_recording(tmp_path / "r.h5", random_events(50), (6, 8))
    rec = Recording(path)
    first = rec.read(0, 50)
    clone = pickle.loads(pickle.dumps(rec))
    assert clone.file is not rec.file
    np.testing.assert_array_equal(clone.read(0, 50), first)
    rec.close()
    np.testing.assert_array_equal(rec.read(0, 50), first)  # reopened on demand


def reference_search_oracle(array, x, left, right):
    """The reference loader's recursive bisection, restated here as the test's oracle."""
    if left > right:
        return left
    mid = left + (right - left) // 2
    if array[mid] == x:
        return mid
    if x < array[mid]:
        return reference_search_oracle(array, x, left, mid - 1)
    return reference_search_oracle(array, x, mid + 1, right)


@pytest.mark.parametrize("block", [4, 1 << 16])
def test_find_time_default_and_compat(tmp_path, monkeypatch, block):
    monkeypatch.setattr(h5mod, "SEARCH_BLOCK", block)  # small blocks exercise the bisection over single reads
    ev = random_events(301, dup=True, t0=5.0, seed=3)
    path = write_recording(tmp_path / "d.h5", ev, (6, 8), chunk_events=16)
    ts = ev["t"]
    queries = np.concatenate([np.unique(ts), [ts[0] - 1, ts[-1] + 1, ts[10] + 1e-4]])
    with Recording(path) as rec:
        want = np.searchsorted(ts, queries, "left")
        want_compat = [reference_search_oracle(ts, q, 0, ts.size - 1) for q in queries]
        for method in ("bisect", "stream"):
            np.testing.assert_array_equal(rec.find_times(queries, method=method), want)
            np.testing.assert_array_equal(rec.find_times(queries, compat="hagenaars2021", method=method), want_compat)
        assert rec.find_time(queries[5]) == want[5]
    assert (np.asarray(want_compat) != want).any()  # duplicates make the two searches differ


def test_reference_bisection_matches_recursive_oracle():
    rng = np.random.default_rng(7)
    for _ in range(200):
        a = np.sort(rng.integers(0, 6, rng.integers(1, 40)))
        x = rng.integers(-1, 7)
        got = reference_bisection(a.size, np.searchsorted(a, x, "left"), np.searchsorted(a, x, "right"))[0]
        assert got == reference_search_oracle(a, x, 0, a.size - 1)


def test_hdf5plugin_filters_round_trip(tmp_path):
    hdf5plugin = pytest.importorskip("hdf5plugin")
    ev = random_events(2000)
    path = tmp_path / "lz4.h5"
    with h5py.File(path, "w") as f:
        for name, field, comp in (("xs", "x", hdf5plugin.LZ4()), ("ys", "y", hdf5plugin.Blosc()),
                                  ("ts", "t", hdf5plugin.Blosc(cname="zstd")), ("ps", "p", hdf5plugin.LZ4())):
            data = ev[field] > 0 if name == "ps" else ev[field]
            f.create_dataset(f"events/{name}", data=data, chunks=(256,), **comp)
        f.attrs["sensor_resolution"] = [6, 8]
    with Recording(path) as rec:
        np.testing.assert_array_equal(rec.read(0, 2000), ev)
        assert {n for _, n, _ in h5mod.dataset_filters(rec.file["events/xs"])} == {"lz4"}


def test_missing_filter_gives_one_line_error(tmp_path):
    # An optional filter id that no library registers: HDF5 writes the data unfiltered but lists the filter,
    # as a file compressed with a plugin looks where the plugin is missing.
    path = write_recording(tmp_path / "f.h5", random_events(10), (6, 8))
    with h5py.File(path, "a") as f:
        del f["events/xs"]
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((4,))
        dcpl.set_filter(40001, h5py.h5z.FLAG_OPTIONAL, ())
        ds = h5py.h5d.create(f["events"].id, b"xs", h5py.h5t.NATIVE_INT16, h5py.h5s.create_simple((10,)), dcpl=dcpl)
        ds.write(h5py.h5s.ALL, h5py.h5s.ALL, np.zeros(10, np.int16))
    with pytest.raises(RecordingError, match="events/xs.*40001") as err:
        Recording(path)
    one_line_error(err, path)


def test_not_hdf5_truncated_and_missing(tmp_path):
    text = tmp_path / "text.h5"
    text.write_text("0.1 1 2 1\n")
    with pytest.raises(RecordingError, match="not a readable HDF5 file") as err:
        Recording(text)
    one_line_error(err, text)
    good = write_recording(tmp_path / "good.h5", random_events(5000), (6, 8))
    cut = tmp_path / "cut.h5"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(RecordingError) as err:
        rec = Recording(cut)
        rec.read(0, rec.num_events)
    one_line_error(err, cut)
    with pytest.raises(FileNotFoundError):
        Recording(tmp_path / "absent.h5")


def _bad(tmp_path, name, **overrides):
    cols = {"xs": np.array([0, 1, 2], np.int16), "ys": np.array([0, 1, 1], np.int16),
            "ts": np.array([0.0, 0.5, 1.0]), "ps": np.array([1, 0, 1], np.uint8)}
    cols.update(overrides)
    return raw_file(tmp_path / name, cols["xs"], cols["ys"], cols["ts"], cols["ps"],
                    attrs={"sensor_resolution": [2, 3]})


@pytest.mark.parametrize(
    "overrides, pattern, on_read",
    [
        ({"ps": None}, "missing dataset.*events/ps", False),
        ({"xs": np.array([0.0, 1.5, 2.0])}, "non-integer coordinate 1.5 at event 1", True),
        ({"ts": np.array([b"a", b"b", b"c"])}, "events/ts has dtype", False),
        ({"ys": np.array([0, 1], np.int16)}, "differ in length", False),
        ({"ts": np.array([0.0, np.nan, 1.0])}, "non-finite timestamp nan at event 1", True),
        ({"ts": np.array([np.nan, 0.5, 1.0])}, "non-finite timestamp", False),
        ({"ts": np.array([0.0, 0.7, 0.6])}, r"not sorted: t\[2\]", True),
        ({"xs": np.array([0, 3, 1], np.int16)}, r"x coordinate 3 out of range \[0, 3\) at event 1", True),
        ({"ys": np.array([0, -1, 1], np.int16)}, "y coordinate -1 out of range", True),
        ({"ps": np.array([1, 2, 0])}, "polarity 2 at event 1", True),
        ({k: np.zeros(0, d) for k, d in (("xs", np.int16), ("ys", np.int16), ("ts", float), ("ps", bool))},
         "contains no events", False),
    ],
)
def test_bad_input_one_line_errors(tmp_path, overrides, pattern, on_read):
    path = _bad(tmp_path, "bad.h5", **overrides)
    with pytest.raises(RecordingError, match=pattern) as err:
        rec = Recording(path)
        assert on_read, "opening should have failed"
        rec.read(0, 3)
    one_line_error(err, path)


def test_missing_events_group(tmp_path):
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as f:
        f.create_group("images")
    with pytest.raises(RecordingError, match="missing group 'events'") as err:
        Recording(path)
    one_line_error(err, path)
