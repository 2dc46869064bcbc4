"""Exchange formats: every reader round-trips real events exported from the ECD excerpt; bad input fails clearly."""

from __future__ import annotations

import struct
import sys
import warnings

import h5py
import numpy as np
import pytest
import scipy.io

from eventflow.events import make_events
from eventflow.io import formats
from eventflow.io.formats import FormatError, convert
from eventflow.io.h5 import Recording

N = 3000


@pytest.fixture(scope="module")
def ecd_events(ecd_h5):
    with Recording(ecd_h5) as rec:
        return rec.read(0, N)


def columns(ev):
    return ev["t"], ev["x"], ev["y"], (ev["p"] > 0).astype(np.int8)


def write_text(path, ev, sep=" ", header=None):
    t, x, y, p = columns(ev)
    lines = [header] if header else []
    lines += [sep.join((repr(a), str(b), str(c), str(d))) for a, b, c, d in zip(t.tolist(), x, y, p)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_aedat4(path, t, x, y, on, width, height, packet=700):
    """A minimal uncompressed AEDAT4 file: magic, IOHeader flatbuffer, size-prefixed EventPacket flatbuffers."""
    flatbuffers = pytest.importorskip("flatbuffers")
    xml = (f'<dv version="2.0"><node name="outInfo" path="/o/"><node name="0" path="/o/0/">'
           f'<attr key="compression" type="string">NONE</attr><attr key="typeIdentifier" type="string">EVTS</attr>'
           f'<node name="info" path="/o/0/info/"><attr key="sizeX" type="int">{width}</attr>'
           f'<attr key="sizeY" type="int">{height}</attr></node></node></node></dv>')
    b = flatbuffers.Builder(1024)
    desc = b.CreateString(xml)
    b.StartObject(3)
    b.PrependInt32Slot(0, 0, 0)  # compression: none
    b.PrependInt64Slot(1, -1, 0)  # no data table
    b.PrependUOffsetTRelativeSlot(2, desc, 0)
    b.Finish(b.EndObject())
    header = bytes(b.Output())
    out = bytearray(b"#!AER-DAT4.0\r\n") + struct.pack("<I", len(header)) + header
    for i0 in range(0, len(t), packet):
        sl = slice(i0, i0 + packet)
        b = flatbuffers.Builder(1024)
        b.StartVector(16, len(t[sl]), 8)
        for tk, xk, yk, ok in reversed(list(zip(t[sl], x[sl], y[sl], on[sl]))):  # struct {i64 t; i16 x, y; bool on}
            b.Prep(8, 16)
            b.Pad(3)
            b.PrependBool(bool(ok))
            b.PrependInt16(int(yk))
            b.PrependInt16(int(xk))
            b.PrependInt64(int(tk))
        vec = b.EndVector()
        b.StartObject(1)
        b.PrependUOffsetTRelativeSlot(0, vec, 0)
        b.FinishSizePrefixed(b.EndObject(), file_identifier=b"EVTS")
        body = bytes(b.Output())
        out += struct.pack("<II", 0, len(body)) + body
    path.write_bytes(bytes(out))
    return path


def exporters(ev, d):
    t, x, y, p = columns(ev)
    yield "txt with W H line", write_text(d / "a.txt", ev, header="240 180"), {}
    yield "csv with names", write_text(d / "b.csv", ev, sep=",", header="timestamp,x,y,polarity"), {}
    (d / "c.txt").write_text("".join(f"{b} {c} {a!r} {e}\n" for a, b, c, e in zip(t.tolist(), x, y, p)))
    yield "txt, other column order", d / "c.txt", {"columns": "xytp"}
    np.save(d / "d.npy", ev)
    yield "npy structured", d / "d.npy", {}
    np.save(d / "e.npy", np.stack([t, x, y, p], 1))
    yield "npy matrix", d / "e.npy", {}
    np.savez(d / "f.npz", ts=t, xs=x, ys=y, pol=p)
    yield "npz vectors", d / "f.npz", {}
    np.savez_compressed(d / "g.npz", events=ev)
    yield "npz structured", d / "g.npz", {}
    scipy.io.savemat(d / "h.mat", {"timestamp": t, "x": x.astype(float), "y": y.astype(float), "polarity": p})
    yield "mat v5 vectors", d / "h.mat", {}
    scipy.io.savemat(d / "i.mat", {"events": np.stack([t, x, y, p], 1)})
    yield "mat v5 matrix", d / "i.mat", {}
    scipy.io.savemat(d / "j.mat", {"TD": {"ts": t, "x": x, "y": y, "p": p}})
    yield "mat v5 struct", d / "j.mat", {}
    with h5py.File(d / "k.mat", "w", userblock_size=512) as f:
        f["events"] = np.stack([t, x, y, p], 1).T  # MATLAB's N x 4 is (4, N) in HDF5 (column-major)
    yield "mat v7.3 matrix", d / "k.mat", {}
    with h5py.File(d / "l.mat", "w", userblock_size=512) as f:
        for name, v in (("t", t), ("x", x.astype(float)), ("y", y.astype(float)), ("p", p.astype(float))):
            f[name] = v[None, :]  # MATLAB N x 1 vectors appear as (1, N)
    yield "mat v7.3 vectors", d / "l.mat", {}


def test_every_format_round_trips_ecd_events(ecd_events, tmp_path):
    for name, path, kw in exporters(ecd_events, tmp_path):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            info = convert(path, tmp_path / f"{path.name}.h5", chunk_events=1000, **kw)
        # Only the text file with a "W H" line tells the resolution; the others infer it and warn.
        assert info.resolution == (180, 240) and info.resolution_inferred == (name != "txt with W H line"), name
        assert len(caught) == int(info.resolution_inferred), name
        with Recording(info.path) as rec:
            np.testing.assert_array_equal(rec.read(0, rec.num_events), ecd_events, err_msg=name)
            assert info.num_events == N, name


def test_text_read_in_small_blocks_equals_whole(ecd_events, tmp_path, monkeypatch):
    path = write_text(tmp_path / "e.txt", ecd_events, header="# t x y p\n240 180")
    monkeypatch.setattr(formats, "_TEXT_BLOCK_BYTES", 1000)  # blocks cut lines anywhere
    info = convert(path, tmp_path / "e.h5", chunk_events=333)
    np.testing.assert_array_equal(Recording(info.path).read(0, N), ecd_events)


def test_aedat4_round_trip_through_the_aedat_decoder(tmp_path):
    pytest.importorskip("aedat")
    rng = np.random.default_rng(0)
    n = 2000
    t = np.sort(rng.integers(1_633_953_690_975_950, 1_633_953_690_975_950 + 50_000, n))
    x, y, on = rng.integers(0, 346, n), rng.integers(0, 260, n), rng.random(n) < 0.5
    path = write_aedat4(tmp_path / "d.aedat4", t, x, y, on, 346, 260)
    info = convert(path, tmp_path / "d.h5", rebase_time=True, chunk_events=500)
    assert info.resolution == (260, 346) and not info.resolution_inferred
    with Recording(info.path) as rec:
        ev = rec.read(0, n)
        np.testing.assert_array_equal(ev["x"], x)
        np.testing.assert_array_equal(ev["p"], np.where(on, 1, -1))
        np.testing.assert_array_equal(ev["t"], (t - t[0]) / 1e6)  # exact integer offset first, then microseconds
        assert rec.file.attrs["source_time_offset"] == t[0]
    with pytest.raises(FormatError, match="always|us"):
        convert(path, tmp_path / "e.h5", time_unit="ms")


def test_aedat4_without_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "aedat", None)  # import aedat now fails
    path = tmp_path / "x.aedat4"
    path.write_bytes(b"#!AER-DAT4.0\r\n")
    with pytest.raises(FormatError, match=r"pip install eventflow\[aedat\]") as err:
        convert(path, tmp_path / "x.h5")
    assert "\n" not in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("unit, scale", [("ms", 1e3), ("us", 1e6), ("ns", 1e9)])
def test_time_units(tmp_path, unit, scale):
    t = np.array([1000, 1500, 4000], dtype=np.int64)
    np.savez(tmp_path / "u.npz", t=t, x=[0, 1, 2], y=[0, 0, 1], p=[1, 0, 1])
    info = convert(tmp_path / "u.npz", tmp_path / "u.h5", time_unit=unit, resolution=(2, 3))
    np.testing.assert_array_equal(Recording(info.path).read(0, 3)["t"], t / scale)


def test_bad_inputs_name_the_file(tmp_path):
    cases = {
        "unsorted.txt": ("0.2 1 1 1\n0.1 1 1 0\n", "not sorted"),
        "frac.txt": ("0.1 1.5 1 1\n", "not an integer"),
        "pol.txt": ("0.1 1 1 3\n", "polarity 3"),
        "nan.txt": ("nan 1 1 1\n", "non-finite"),
        "empty.txt": ("# nothing\n", "no events"),
        "word.txt": ("0.1 1 1 1\n0.2 a 1 1\n", "lines from"),
        "cols.txt": ("0.1 1 1\n", "3 columns"),
        "names.csv": ("when,x,y,p\n0.1,1,1,1\n", "header names"),
        "neg.txt": ("0.1 -1 1 1\n", "negative"),
    }
    for name, (text, pattern) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ValueError, match=pattern) as err:
            convert(path, tmp_path / "out.h5")
        assert "\n" not in str(err.value) and str(path) in str(err.value), name
    assert not (tmp_path / "out.h5").exists()  # atomic: nothing left behind
    (tmp_path / "x.bin").write_bytes(b"0")
    with pytest.raises(FormatError, match="suffix"):
        convert(tmp_path / "x.bin", tmp_path / "o.h5")
    with pytest.raises(FileNotFoundError):
        convert(tmp_path / "absent.txt", tmp_path / "o.h5")
    np.save(tmp_path / "wide.npy", np.zeros((3, 5)))
    with pytest.raises(FormatError, match="N x 4"):
        convert(tmp_path / "wide.npy", tmp_path / "o.h5")
    np.save(tmp_path / "range.npy", make_events([0, 9], [0, 0], [0.0, 1.0], [1, 1]))
    with pytest.raises(ValueError, match="out of range"):
        convert(tmp_path / "range.npy", tmp_path / "o.h5", resolution=(4, 4))


def test_text_timestamps_integer_then_fractional_and_large_integers(tmp_path):
    (tmp_path / "a.txt").write_text("0 1 1 1\n0.5 2 1 0\n")  # "0" looks like an integer, 0.5 does not
    info = convert(tmp_path / "a.txt", tmp_path / "a.h5", resolution=(2, 3))
    assert Recording(info.path).read(0, 2)["t"].tolist() == [0.0, 0.5]
    (tmp_path / "b.txt").write_text("1633953690975950 1 1 1\n1633953690975957 2 1 0\n")
    info = convert(tmp_path / "b.txt", tmp_path / "b.h5", resolution=(2, 3), time_unit="us", rebase_time=True)
    assert Recording(info.path).read(0, 2)["t"].tolist() == [0.0, 7e-6]
