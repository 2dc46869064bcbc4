"""Tests of the event-camera simulator: exact GT flow, event generation, determinism, noise, CLI, dataset cache."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import replace

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventflow import paths
from eventflow.cli import main as cli_main
from eventflow.events import EVENT_DTYPE, validate_events
from eventflow.simulate import dataset as sim_dataset
from eventflow.simulate import sequence as sim_sequence
from eventflow.simulate.config import MOTION_KINDS, SimConfig
from eventflow.simulate.esim import esim_step, esim_steps, init_state, make_thresholds, sample_thresholds
from eventflow.simulate.images import PHOTOS, load_photo
from eventflow.simulate.motion import (
    apply_homography,
    footprint_inside,
    mean_image_speed,
    reference_from_sensor,
    sample_motion,
)
from eventflow.simulate.render import flow_map
from eventflow.simulate.sequence import gt_timestamps, simulate_sequence, simulate_to_h5

SMALL = SimConfig(resolution=(48, 64), duration=0.4, image=("astronaut", "coffee"), motion="mixed")


@pytest.fixture(scope="module")
def small_result():
    return simulate_sequence(SMALL, seed=7)


# ---- motion model and exact ground truth -------------------------------------------------------------------------

motion_cases = st.tuples(
    st.integers(0, 2**31 - 1),
    st.sampled_from(MOTION_KINDS),
    st.sampled_from([(24, 32), (48, 64), (40, 40)]),
    st.floats(-3.0, 3.0),
    st.floats(0.005, 0.2),
)


@settings(max_examples=40, deadline=None)
@given(motion_cases)
def test_gt_flow_equals_displacement_from_the_homographies(case):
    seed, kind, res, t_a, dt = case
    motion = sample_motion(np.random.default_rng(seed), kind, res, (400, 600), speed_px_s=150.0)
    flow = flow_map(motion, t_a, t_a + dt, res)  # (2, H, W)
    h, w = res
    rng = np.random.default_rng(seed + 1)
    ys, xs = rng.integers(0, h, 50), rng.integers(0, w, 50)
    p = np.stack([xs, ys], axis=1).astype(np.float64)
    moved = p + flow[:, ys, xs].T
    # Independently of flow_map's inverse: the scene point seen at p at t_a, G(t_a) p, must be what the sensor
    # sees at the moved position at t_b, G(t_b) (p + f).
    seen_a = apply_homography(reference_from_sensor(motion, np.array([t_a]))[0], p)
    seen_b = apply_homography(reference_from_sensor(motion, np.array([t_a + dt]))[0], moved)
    np.testing.assert_allclose(seen_b, seen_a, atol=2e-3)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.sampled_from(MOTION_KINDS),
    st.sampled_from([(16, 16), (96, 160), (256, 256)]),
    st.sampled_from([(172, 448), (512, 512), (1411, 1411)]),
)
def test_view_stays_inside_the_photo_at_all_times(seed, kind, res, photo_shape):
    motion = sample_motion(np.random.default_rng(seed), kind, res, photo_shape, speed_px_s=300.0)
    assert footprint_inside(motion, np.linspace(-50.0, 50.0, 2001))


@pytest.mark.parametrize("kind", MOTION_KINDS)
def test_speed_is_normalised_to_the_requested_mean(kind):
    motion = sample_motion(np.random.default_rng(3), kind, (64, 64), (512, 512), speed_px_s=120.0)
    assert mean_image_speed(motion, (64, 64)) == pytest.approx(120.0, rel=1e-6)


def test_dt4_flow_is_the_composition_of_four_dt1_flows(small_result):
    dt1 = dict(small_result.flow_dt1)
    ts = sorted(dt1)
    h, w = small_result.resolution
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float64)
    checked = 0
    for t4, f4 in small_result.flow_dt4:
        k = ts.index(t4)
        if k < 4:
            continue
        x, y = gx.copy(), gy.copy()
        inside = np.ones_like(x, dtype=bool)
        for t in ts[k - 3 : k + 1]:
            inside &= (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
            u, v = _bilinear(dt1[t], np.clip(x, 0, w - 1), np.clip(y, 0, h - 1))
            x, y = x + u, y + v
        err = np.hypot(x - gx - f4[0], y - gy - f4[1])[inside]
        assert err.size > 0.5 * h * w
        assert np.percentile(err, 99) < 0.02
        checked += 1
    assert checked >= 2


def _bilinear(flow, x, y):
    h, w = flow.shape[1:]
    x0 = np.minimum(np.floor(x).astype(int), w - 2)
    y0 = np.minimum(np.floor(y).astype(int), h - 2)
    fx, fy = x - x0, y - y0
    out = []
    for c in flow:
        top = c[y0, x0] * (1 - fx) + c[y0, x0 + 1] * fx
        bottom = c[y0 + 1, x0] * (1 - fx) + c[y0 + 1, x0 + 1] * fx
        out.append(top * (1 - fy) + bottom * fy)
    return out


def _fwl_medians(events, flow_dt1, resolution):
    """Median over GT intervals of var(IWE warped by s * GT) / var(IWE unwarped), for several flow variants."""
    h, w = resolution

    def iwe(x, y):
        xi, yi = np.rint(x).astype(int), np.rint(y).astype(int)
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        return np.bincount(yi[ok] * w + xi[ok], minlength=h * w).astype(float)

    ratios = {"gt": [], "0.7": [], "1.3": [], "rot90": []}
    for (t0, _), (t1, flow) in zip(flow_dt1[:-1], flow_dt1[1:]):
        ev = events[(events["t"] >= t0) & (events["t"] < t1)]
        if ev.size < 200:
            continue
        x, y = ev["x"].astype(float), ev["y"].astype(float)
        frac = (t1 - ev["t"]) / (t1 - t0)
        u, v = flow[0][ev["y"], ev["x"]] * frac, flow[1][ev["y"], ev["x"]] * frac
        base = iwe(x, y).var()
        for name, s in (("gt", 1.0), ("0.7", 0.7), ("1.3", 1.3)):
            ratios[name].append(iwe(x + s * u, y + s * v).var() / base)
        ratios["rot90"].append(iwe(x - v, y + u).var() / base)
    assert len(ratios["gt"]) >= 5
    return {k: float(np.median(v)) for k, v in ratios.items()}


@pytest.mark.parametrize("motion", ["translation", "mixed", "rotation"])
def test_warping_by_gt_sharpens_the_events(motion):
    cfg = SimConfig(resolution=(64, 96), duration=0.4, image=("camera",), motion=motion, speed_range=(150.0, 200.0))
    res = simulate_sequence(cfg, seed=11)
    med = _fwl_medians(res.events, res.flow_dt1, cfg.resolution)
    assert med["gt"] > 1.2
    assert med["gt"] > max(med["0.7"], med["1.3"], med["rot90"])


# ---- events ------------------------------------------------------------------------------------------------------


def test_events_are_valid_sorted_and_balanced(small_result):
    ev = small_result.events
    assert ev.dtype == EVENT_DTYPE
    validate_events(ev, resolution=SMALL.resolution, source="simulated")  # sorted, in bounds, p in {-1, +1}
    assert ev.size > 5000
    assert 0.0 < ev["t"].min() and ev["t"].max() <= SMALL.duration
    assert 0.3 < (ev["p"] > 0).mean() < 0.7
    # Events come from the whole sensor, not a corner of it.
    assert np.unique(ev["y"].astype(int) * 64 + ev["x"]).size > 0.5 * 48 * 64


def test_gt_maps_and_frames_follow_the_mvsec_timing(small_result):
    ts = gt_timestamps(SMALL)
    np.testing.assert_allclose([t for t, _ in small_result.flow_dt1], ts)
    np.testing.assert_allclose([t for t, _ in small_result.flow_dt4], ts[::4])
    np.testing.assert_allclose([t for t, _ in small_result.images], ts)
    assert all(f.shape == (2, 48, 64) and f.dtype == np.float32 for _, f in small_result.flow_dt1)
    assert all(img.shape == (48, 64) and img.dtype == np.uint8 for _, img in small_result.images)
    assert np.ptp(small_result.images[0][1]) > 50  # a real photo, not a flat field


def test_same_seed_is_identical_and_another_seed_differs(small_result):
    again = simulate_sequence(SMALL, seed=7)
    np.testing.assert_array_equal(again.events, small_result.events)
    for (ta, fa), (tb, fb) in zip(again.flow_dt1, small_result.flow_dt1):
        assert ta == tb
        np.testing.assert_array_equal(fa, fb)
    for (_, ia), (_, ib) in zip(again.images, small_result.images):
        np.testing.assert_array_equal(ia, ib)
    other = simulate_sequence(SMALL, seed=8)
    assert other.events.size != small_result.events.size or not np.array_equal(other.events, small_result.events)
    assert not np.array_equal(other.flow_dt1[3][1], small_result.flow_dt1[3][1])


def test_same_seed_gives_a_bit_identical_file(tmp_path):
    cfg = replace(SMALL, duration=0.2, noise_rate_hz=1.0, hot_pixels=2)
    a = simulate_to_h5(tmp_path / "a.h5", cfg, seed=5)
    b = simulate_to_h5(tmp_path / "b.h5", cfg, seed=5)
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


def _min_interval_per_pixel(ev):
    order = np.lexsort((ev["t"], ev["y"], ev["x"]))
    key = ev["y"][order].astype(np.int64) * 10_000 + ev["x"][order]
    dt = np.diff(ev["t"][order])
    same = np.diff(key) == 0
    return dt[same].min()


def test_refractory_period_is_respected_per_pixel():
    base = SimConfig(resolution=(32, 48), duration=0.3, image=("grass",), motion="translation", contrast_pos=0.1,
                     contrast_neg=0.1, speed_range=(250.0, 250.0))
    free = simulate_sequence(replace(base, refractory=0.0), seed=2).events
    held = simulate_sequence(replace(base, refractory=2e-3), seed=2).events
    assert _min_interval_per_pixel(free) < 2e-3  # without it pixels do fire faster, so the check below can fail
    assert _min_interval_per_pixel(held) >= 2e-3
    assert held.size < free.size


def _naive_pixel(levels, times, ref, c_pos, c_neg, refractory):
    """Event-by-event oracle for one pixel: every crossing level of the piecewise-linear log intensity in turn,
    each kept only if it comes a refractory period after the last kept one. Like the simulator, it keeps the
    thresholds and the reference level in float32."""
    out, last = [], -np.inf
    for (l0, l1), (t0, t1) in zip(zip(levels[:-1], levels[1:]), zip(times[:-1], times[1:])):
        c, sign = (c_pos, 1) if l1 > ref else (c_neg, -1)
        n = int(np.floor(sign * (l1 - ref) / c))
        for k in range(1, n + 1):
            level = ref + sign * k * c
            t = t0 + (level - l0) / (l1 - l0) * (t1 - t0)
            if t >= last + refractory + 1e-12:  # the simulator's 1 ps guard decides exact ties the same way
                out.append((t, sign))
                last = t
        ref = float(np.float32(ref + sign * max(n, 0) * c))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.floats(-1.5, 1.5), min_size=2, max_size=8),
    st.floats(0.05, 0.4),
    st.floats(0.05, 0.4),
    st.sampled_from([0.0, 0.003, 0.02]),
)
def test_esim_step_matches_an_event_by_event_oracle(levels, c_pos, c_neg, refractory):
    levels = [0.0] + levels
    times = [0.01 * k for k in range(len(levels))]
    th = make_thresholds(np.array([c_pos]), np.array([c_neg]), refractory)
    state = init_state(np.array([levels[0]], np.float32))
    got = []
    for k in range(len(levels) - 1):
        l0, l1 = (np.array([v], np.float32) for v in levels[k : k + 2])
        (pix, t, p), state = esim_step(l0, l1, times[k], times[k + 1], state, th)
        got += list(zip(t.tolist(), p.tolist()))
    lv = [float(np.float32(v)) for v in levels]
    want = _naive_pixel(lv, times, lv[0], float(np.float32(c_pos)), float(np.float32(c_neg)), refractory)
    assert [p for _, p in got] == [p for _, p in want]
    np.testing.assert_allclose([t for t, _ in got], [t for t, _ in want], atol=1e-9)


@pytest.mark.parametrize("refractory", [0.0, 4e-3])
def test_esim_steps_equals_one_step_at_a_time(refractory):
    rng = np.random.default_rng(4)
    n_pix, steps = 300, 6
    # Random walks of log intensity, some fast enough for several crossings and refractory hits per step.
    logs = np.cumsum(rng.normal(0.0, 0.15, (steps + 1, n_pix)), axis=0).astype(np.float32)
    times = np.sort(rng.uniform(0.0, 0.05, steps + 1))
    th = sample_thresholds(rng, n_pix, 0.2, 0.25, 0.03, refractory)
    state = init_state(logs[0])
    (pix, t, p), batched = esim_steps(logs, times, state, th)
    assert np.all(state.last_t == -np.inf)  # the input state is not modified
    want, one = [], state
    for j in range(steps):
        out, one = esim_step(logs[j], logs[j + 1], times[j], times[j + 1], one, th)
        want.append(out)
    np.testing.assert_array_equal(pix, np.concatenate([w[0] for w in want]))
    np.testing.assert_array_equal(t, np.concatenate([w[1] for w in want]))
    np.testing.assert_array_equal(p, np.concatenate([w[2] for w in want]))
    np.testing.assert_array_equal(batched.ref, one.ref)
    np.testing.assert_array_equal(batched.last_t, one.last_t)
    assert pix.size > 200 and np.unique(pix).size < pix.size  # pixels fired repeatedly, so the state mattered


def test_row_tiles_do_not_change_the_events(monkeypatch):
    cfg = SimConfig(resolution=(40, 56), duration=0.15, image=("astronaut",), motion="mixed", refractory=1e-3)
    whole = simulate_sequence(cfg, seed=3).events
    monkeypatch.setattr(sim_sequence, "_TILE_PIXELS", 7 * 56 + 5)  # 7-row tiles, the last one shorter
    tiled = simulate_sequence(cfg, seed=3).events
    assert whole.size > 1000
    np.testing.assert_array_equal(tiled, whole)


def test_h5_files_use_the_shuffle_filter_by_default(tmp_path):
    cfg = replace(SMALL, duration=0.1)
    plain = simulate_to_h5(tmp_path / "plain.h5", cfg, seed=2, shuffle=False)
    shuffled = simulate_to_h5(tmp_path / "shuffled.h5", cfg, seed=2)
    with h5py.File(plain) as a, h5py.File(shuffled) as b:
        flow = sorted(b["flow_dt1"])[1]
        assert b["events/ts"].shuffle and b[f"flow_dt1/{flow}"].shuffle and b["events/ts"].compression == "gzip"
        assert not a["events/ts"].shuffle and not a[f"flow_dt1/{flow}"].shuffle
        np.testing.assert_array_equal(a["events/ts"][:], b["events/ts"][:])
        np.testing.assert_array_equal(a[f"flow_dt1/{flow}"][:], b[f"flow_dt1/{flow}"][:])
    assert shuffled.stat().st_size < plain.stat().st_size


def test_static_scene_gives_only_noise_at_the_requested_rates():
    static = SimConfig(resolution=(32, 32), duration=1.0, image=("camera",), speed=0.0)
    assert simulate_sequence(static, seed=1).events.size == 0
    noisy = simulate_sequence(replace(static, noise_rate_hz=5.0), seed=1).events
    expected = 5.0 * 32 * 32 * 1.0
    assert abs(noisy.size - expected) < 5 * np.sqrt(expected)
    assert 0.4 < (noisy["p"] > 0).mean() < 0.6
    hot = simulate_sequence(replace(static, hot_pixels=3, hot_pixel_rate_hz=300.0), seed=1).events
    pixels, counts = np.unique(hot["y"].astype(int) * 32 + hot["x"], return_counts=True)
    assert pixels.size == 3
    assert np.all((counts > 100) & (counts < 600))
    assert all(np.unique(hot["p"][hot["y"].astype(int) * 32 + hot["x"] == px]).size == 1 for px in pixels)


# ---- photos, configs -----------------------------------------------------------------------------------------------


def test_every_bundled_photo_loads_offline():
    for name in PHOTOS:
        img = load_photo(name)
        assert img.ndim == 2 and min(img.shape) >= 150 and img.dtype == np.float32
        assert 0.0 <= img.min() and img.max() <= 1.0 and img.std() > 0.05


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resolution": (2, 64)}, "resolution"),
        ({"duration": 0.0}, "duration"),
        ({"contrast_pos": -0.1}, "contrast_pos"),
        ({"refractory": float("nan")}, "refractory"),
        ({"image": ("eagle",)}, "unknown photo 'eagle'"),
        ({"hot_pixels": 100_000}, "hot_pixels"),
        ({"speed_range": (10.0, 5.0)}, "speed_range"),
    ],
)
def test_bad_config_is_a_one_line_error(kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        SimConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_bad_seed_is_rejected():
    with pytest.raises(ValueError, match="seed"):
        simulate_sequence(SMALL, seed=-1)


# ---- files, CLI, dataset cache --------------------------------------------------------------------------------------


def test_cli_writes_a_file_the_independent_checker_accepts(tmp_path, capsys):
    out = tmp_path / "sim.h5"
    argv = ["simulate", "--out", str(out), "--seed", "3", "--resolution", "64", "96", "--duration", "0.5",
            "--image", "coffee", "--noise-rate", "0.5"]
    assert cli_main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    with h5py.File(out) as f:
        assert f["events/xs"].shape[0] == f.attrs["num_events"] > 0
        assert sorted(f) == ["events", "flow_dt1", "flow_dt4", "images"]
        assert len(f["flow_dt1"]) == 16 and len(f["flow_dt4"]) == 4
        assert f.attrs["photo"] == "coffee" and f.attrs["seed"] == 3
    checker = paths.shared_file("checks", "simgt.py")
    if checker is None:
        pytest.skip(f"shared checks/simgt.py not found (set {paths.SHARED_ENV}); CI provides it")
    run = subprocess.run([sys.executable, str(checker), str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_cli_without_out_is_an_error(capsys):
    assert cli_main(["simulate", "--seed", "1"]) == 1
    assert "--out" in capsys.readouterr().err


def _tiny_specs():
    cfg = SimConfig(resolution=(24, 32), duration=0.2, image=("brick",), motion="translation")
    return [
        sim_dataset.SequenceSpec("train_00", "train", cfg, 1),
        sim_dataset.SequenceSpec("test_00", "test", replace(cfg, image=("coins",), motion="perspective"), 2),
    ]


def test_dataset_is_generated_once_and_regenerated_on_version_change(tmp_path, monkeypatch):
    specs = _tiny_specs()
    first = sim_dataset.ensure_dataset(specs, tmp_path)
    assert [p.name for p in first.train] == ["train_00.h5"] and [p.name for p in first.test] == ["test_00.h5"]
    assert set(first.generated) == set(first.train + first.test)
    stamps = {p: p.stat().st_mtime_ns for p in first.train + first.test}
    again = sim_dataset.ensure_dataset(specs, tmp_path)
    assert again.generated == ()
    assert {p: p.stat().st_mtime_ns for p in again.train + again.test} == stamps
    first.test[0].unlink()
    assert sim_dataset.ensure_dataset(specs, tmp_path, workers=2).generated == first.test
    assert first.test[0].is_file() and first.train[0].stat().st_mtime_ns == stamps[first.train[0]]
    monkeypatch.setattr(sim_dataset, "SIMULATOR_VERSION", 999)
    regenerated = sim_dataset.ensure_dataset(specs, tmp_path, workers=2)  # two files: in a process pool
    assert set(regenerated.generated) == set(first.train + first.test)
    assert first.train[0].stat().st_mtime_ns != stamps[first.train[0]]
    assert '"simulator_version": 999' in first.manifest.read_text()
    assert '"shuffle": true' in first.manifest.read_text()  # the HDF5 filters are part of each file's record


def test_default_dataset_layout_keeps_test_photos_and_motions_out_of_training(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path))
    for profile in sim_dataset.PROFILES:
        specs = sim_dataset.dataset_specs(profile)
        train = [s for s in specs if s.split == "train"]
        test = [s for s in specs if s.split == "test"]
        assert 12 <= len(train) and 3 <= len(test)
        assert not {s.config.image for s in train} & {s.config.image for s in test}
        assert "perspective" not in {s.config.motion for s in train}
        assert {s.config.resolution for s in train} == {(128, 128)} and {s.config.resolution for s in test} == {
            (256, 256)
        }
    layout = sim_dataset.default_dataset_paths("quick")
    assert layout.root == tmp_path / "sim" / "quick"
    assert len(layout.train) == 14 and len(layout.test) == 4
    with pytest.raises(ValueError, match="unknown dataset profile"):
        sim_dataset.dataset_specs("huge")
