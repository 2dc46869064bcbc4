"""``eventflow inspect`` and ``eventflow convert`` on the real recordings and on bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eventflow.cli import main
from eventflow.cli.inspect import summarize
from eventflow.events import make_events
from eventflow.io.h5 import Recording
from eventflow.io.h5write import write_recording


@pytest.mark.parametrize("name, resolution, events", [("ecd_h5", [180, 240], 120000), ("davis_h5", [260, 346], 117667)])
def test_inspect_real_recordings(request, capsys, name, resolution, events):
    path = request.getfixturevalue(name)
    assert main(["inspect", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["resolution"] == resolution and summary["num_events"] == events
    assert 0 < summary["positive_fraction"] < 1 and summary["groups"] == {}
    assert summary["event_rate_hz"] == pytest.approx(events / summary["duration_s"])
    assert summary["filters"]["events/ts"] == ["shuffle", "deflate"]
    assert main(["inspect", str(path)]) == 0
    table = capsys.readouterr().out
    assert f"{resolution[0]} x {resolution[1]} (H x W)" in table and f"{events:,}" in table


def test_inspect_counts_in_small_chunks_and_lists_gt(tmp_path):
    ev = make_events([0, 1, 2, 3], [0, 0, 1, 1], [1.0, 1.5, 2.0, 3.0], [1, 1, -1, 1])
    flow = [(1.0 + k, np.zeros((2, 2, 4), np.float32)) for k in range(3)]
    path = write_recording(tmp_path / "g.h5", ev, (2, 4), t0=1.0, flow_dt1=flow)
    s = summarize(path, chunk_events=1)
    assert s["positive_fraction"] == 0.75 and s["x_range"] == [0, 3] and s["time_range_s"] == [0.0, 2.0]
    assert s["groups"]["flow_dt1"] == {"count": 3, "time_range_s": [0.0, 2.0]}
    assert s["event_rate_hz"] == 2.0


def test_convert_ecd_through_text_and_back(ecd_h5, tmp_path, capsys):
    with Recording(ecd_h5) as rec:
        ev = rec.read(0, rec.num_events)
    txt = tmp_path / "events.txt"
    with open(txt, "w") as f:  # the ECD events.txt convention: t x y p, polarity 0/1
        f.write("240 180\n")
        np.savetxt(f, np.stack([ev["t"], ev["x"], ev["y"], ev["p"] > 0], 1), fmt=["%.17g", "%d", "%d", "%d"])
    out = tmp_path / "back.h5"
    assert main(["convert", str(txt), "--out", str(out)]) == 0
    assert "120,000 events" in capsys.readouterr().out
    with Recording(out) as back:
        np.testing.assert_array_equal(back.read(0, back.num_events), ev)
        assert back.resolution == (180, 240)


def test_convert_warns_when_it_infers_the_resolution(tmp_path, capsys):
    np.save(tmp_path / "e.npy", make_events([0, 4], [0, 2], [0.0, 1.0], [1, -1]))
    assert main(["convert", str(tmp_path / "e.npy"), "--out", str(tmp_path / "e.h5")]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "3x5" in err
    assert main(["convert", str(tmp_path / "e.npy"), "--out", str(tmp_path / "f.h5"), "--resolution", "8", "8"]) == 0
    assert Recording(tmp_path / "f.h5").resolution == (8, 8)


def test_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    assert main(["inspect", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bad) in err and "HDF5" in err
    (tmp_path / "u.txt").write_text("0.2 0 0 1\n0.1 0 0 1\n")
    assert main(["convert", str(tmp_path / "u.txt"), "--out", str(tmp_path / "u.h5")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not sorted" in err
