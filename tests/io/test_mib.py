"""Merlin .mib data sets: real files, every counter depth (stored and raw), quads, several files,
scan shapes, bad files and header fuzzing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libertem_gpu.errors import FileFormatError, LiberTEMGPUError, MissingFileError
from libertem_gpu.io.calibration import AxisCalibration
from libertem_gpu.io.formats.mib import MIBDataSet, parse_frame_header, parse_hdr
from tests.data_files import data_path, needs_data
from tests.io.builtin_analyses import check_builtin_analyses
from tests.io.contract import CollectFramesUDF, check_bad_files, check_dataset, check_guess_can_open
from tests.io.writers_mib import frame_header, max_value, write_mib

DATA = data_path("mib")
needs_real_file = needs_data("mib")

# file, shape, dtype, sum, sum of squares, max, first frame sum, last frame sum
REAL = [
    ("001_4x2_6bit.mib", (2, 4, 256, 256), "uint8", 3623664, 134152280, 63, 448386, 457927),
    (
        "Single_9_Frame_CounterDepth_12_Rows_256.mib",
        (9, 256, 256),
        ">u2",
        260753,
        63601277,
        2216,
        29032,
        29026,
    ),
    (
        "Single_9_Frame_CounterDepth_1_Rows_256.mib",
        (9, 256, 256),
        "uint8",
        21614,
        21614,
        1,
        2389,
        2404,
    ),
    (
        "Single_9_Frame_CounterDepth_24_Rows_256.mib",
        (9, 256, 256),
        ">u4",
        258156,
        55100714,
        2074,
        28662,
        28551,
    ),
    (
        "Single_9_Frame_CounterDepth_6_Rows_256.mib",
        (9, 256, 256),
        "uint8",
        217684,
        2401824,
        63,
        24125,
        24193,
    ),
]


def _counts(rng, shape, depth):
    return rng.integers(0, max_value(depth), size=shape, endpoint=True).astype(np.uint32)


@needs_real_file
@pytest.mark.parametrize("row", REAL, ids=[r[0] for r in REAL])
def test_real_files(inline_ctx, row):
    name, shape, dtype, total, squares, peak, first, last = row
    ds = inline_ctx.load("auto", path=str(DATA / name))
    assert isinstance(ds, MIBDataSet)
    assert ds.nav_shape + ds.sig_shape == shape
    assert ds.storage_dtype == np.dtype(dtype)
    frames = inline_ctx.run_udf(dataset=ds, udf=CollectFramesUDF())["frames"].raw_data
    assert frames.sum() == total
    assert (frames**2).sum() == squares
    assert frames.max() == peak
    assert frames[0].sum() == first
    assert frames[-1].sum() == last


@needs_real_file
@pytest.mark.parametrize("row", REAL, ids=[r[0] for r in REAL])
def test_real_files_against_rosettasciio(ctx, row):
    """Frame by frame against rosettasciio (which flips frames upside down)."""
    rsciio_qd = pytest.importorskip("rsciio.quantumdetector")
    path = str(DATA / row[0])
    expected = np.flip(rsciio_qd.file_reader(path)[0]["data"], axis=-2)
    ds = ctx.load("mib", path=path)
    assert expected.shape == ds.nav_shape + ds.sig_shape
    check_dataset(ctx, ds, np.asarray(expected), dtype=row[2])


@needs_real_file
def test_real_big_endian_stays_big_endian():
    ds = MIBDataSet(DATA / "Single_9_Frame_CounterDepth_12_Rows_256.mib").initialize()
    with ds.get_reader() as reader:
        assert reader.dtype == np.dtype(">u2")
        out = np.empty((2, 256, 256), dtype=reader.dtype)
        reader.read_into(out, 3, 5)
    raw = np.fromfile(ds.meta["files"][0], dtype=np.uint8)
    stride = 384 + 256 * 256 * 2
    for i, frame in enumerate(out):
        start = (3 + i) * stride + 384
        assert frame.tobytes() == raw[start : start + 256 * 256 * 2].tobytes()


@needs_real_file
@pytest.mark.parametrize("name", [r[0] for r in REAL[:2]])
def test_real_files_calibration(name):
    cal = MIBDataSet(DATA / name).initialize().calibration
    pitch = AxisCalibration(55.0, 0.0, "µm")
    assert cal.sig == (pitch, pitch) and cal.source == "Medipix3 pixel pitch (55 µm)"
    assert all(a is None for a in cal.nav) and cal.camera_length is None


@pytest.mark.parametrize("raw", [False, True])
def test_quad_calibration(rng, tmp_path, raw):
    # 2x2 quads: the same pitch on the 2 x 2 chips' pixels (the gap between chips holds none).
    hdr = write_mib(tmp_path, _counts(rng, (2, 3, 10, 16), 6), 6, raw=raw, quad=True)
    cal = MIBDataSet(hdr).initialize().calibration
    assert cal.nav == (None, None) and cal.sig == (AxisCalibration(55.0, 0.0, "µm"),) * 2


@pytest.mark.parametrize(
    ("depth", "raw", "quad", "sig"),
    [
        (1, False, False, (13, 17)),
        (6, False, False, (13, 17)),
        (12, False, False, (13, 17)),
        (24, False, False, (13, 17)),
        (12, False, True, (24, 26)),
        (1, True, False, (5, 128)),
        (6, True, False, (13, 24)),
        (12, True, False, (13, 20)),
        (24, True, False, (13, 20)),
        (1, True, True, (6, 128)),
        (6, True, True, (10, 16)),
        (12, True, True, (14, 8)),
    ],
)
def test_contract_depths_and_layouts(ctx, rng, tmp_path, depth, raw, quad, sig):
    data = _counts(rng, (3, 4, *sig), depth)
    hdr = write_mib(tmp_path, data, depth, raw=raw, quad=quad)
    ds = ctx.load("auto", path=hdr)
    assert ds.nav_shape == (3, 4)
    native = {1: "u1", 6: "u1", 12: "u2", 24: "u4"}[depth]
    assert ds.dtype == np.dtype(native)
    assert ds.storage_dtype.isnative == (raw or depth <= 6)
    check_dataset(ctx, ds, data)


@pytest.mark.parametrize(("raw", "depth"), [(False, 12), (True, 6)])
def test_several_files(ctx, rng, tmp_path, raw, depth):
    data = _counts(rng, (5, 3, 11, 16), depth)
    hdr = write_mib(tmp_path, data, depth, raw=raw, n_files=3)
    by_hdr = ctx.load("mib", path=hdr)
    by_mib = ctx.load("auto", path=str(tmp_path / "scan2.mib"))
    assert len(by_hdr.meta["files"]) == 3 and by_mib.meta["files"] == by_hdr.meta["files"]
    check_dataset(ctx, by_hdr, data)
    check_dataset(ctx, by_mib, data)
    single = ctx.load("mib", path=str(tmp_path / "scan1.mib"), multi_file=False, nav_shape=(5,))
    check_dataset(ctx, single, data.reshape(15, 11, 16)[:5])


def test_scan_shapes(ctx, rng, tmp_path):
    data = _counts(rng, (3, 4, 7, 9), 12)
    # One frame per trigger: the line length comes from the flyback gaps in the timestamps.
    hdr = write_mib(tmp_path, data, 12, frames_per_trigger=1)
    ds = ctx.load("mib", path=hdr)
    assert ds.nav_shape == (3, 4) and ds.meta["nav_shape_source"].startswith("frame timestamps")
    check_dataset(ctx, ds, data)
    three = ctx.load("mib", path=hdr, nav_shape=(2, 3, 2))
    check_dataset(ctx, three, data.reshape(2, 3, 2, 7, 9))
    line = ctx.load("mib", path=hdr, nav_shape=(12,), sig_shape=(63,))
    check_dataset(ctx, line, data.reshape(12, 63))
    no_hdr = write_mib(tmp_path, data, 12, name="nohdr", hdr=False)
    check_dataset(ctx, ctx.load("auto", path=no_hdr, nav_shape=(3, 4)), data)
    shifted = ctx.load("mib", path=hdr, nav_shape=(2, 4), sync_offset=2)
    check_dataset(ctx, shifted, data.reshape(12, 7, 9)[2:10].reshape(2, 4, 7, 9))


def test_builtin_analyses(ctx, rng, tmp_path):
    data = _counts(rng, (4, 5, 13, 16), 12)
    for raw in (False, True):
        ds = ctx.load("auto", path=write_mib(tmp_path, data, 12, raw=raw, name=f"a{int(raw)}"))
        assert "SumUDF" in check_builtin_analyses(ctx, ds, data)


# --- bad files --------------------------------------------------------------------------------


def test_truncated_file(rng, tmp_path):
    data = _counts(rng, (3, 4, 13, 17), 12)
    hdr = write_mib(tmp_path, data, 12)
    mib = tmp_path / "scan.mib"
    os.truncate(mib, os.path.getsize(mib) - 100)
    with pytest.raises(FileFormatError, match=r"scan\.mib.*holds 11 frames.*needs 12"):
        MIBDataSet(hdr).initialize()
    os.truncate(mib, 200)
    with pytest.raises(FileFormatError, match=r"scan\.mib.*less than one frame"):
        MIBDataSet(hdr).initialize()


def test_hdr_lies_about_frame_count(rng, tmp_path):
    data = _counts(rng, (3, 4, 13, 17), 12)
    hdr = write_mib(tmp_path, data, 12, frames_per_trigger=4, hdr_frames=16)
    with pytest.raises(FileFormatError, match=r"holds 12 frames.*needs 16"):
        MIBDataSet(hdr).initialize()


def test_frame_header_lies_about_size(rng, tmp_path):
    data = _counts(rng, (3, 4, 13, 17), 12)
    hdr = write_mib(tmp_path, data, 12)
    mib = tmp_path / "scan.mib"
    raw = bytearray(mib.read_bytes())
    raw[20:24] = b"0018"  # width 17 -> 18
    mib.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match=r"scan\.mib.*expected a frame header"):
        MIBDataSet(hdr).initialize()


def test_missing_companions(rng, tmp_path):
    data = _counts(rng, (3, 4, 13, 17), 12)
    write_mib(tmp_path, data, 12, n_files=3)
    os.remove(tmp_path / "scan.hdr")
    with pytest.raises(MissingFileError, match=r"scan1\.mib.*\.hdr.*nav_shape"):
        MIBDataSet(tmp_path / "scan1.mib").initialize()
    os.remove(tmp_path / "scan2.mib")
    with pytest.raises(FileFormatError, match=r"scan3\.mib.*starts at frame 9, expected 5"):
        MIBDataSet(tmp_path / "scan1.mib", nav_shape=(12,)).initialize()
    with pytest.raises(MissingFileError, match="nothere"):
        MIBDataSet(tmp_path / "nothere.mib").initialize()
    (tmp_path / "empty.hdr").write_bytes(b"HDR,\t\r\nEnd\t")
    with pytest.raises(MissingFileError, match=r"empty\.hdr.*no \.mib files"):
        MIBDataSet(tmp_path / "empty.hdr").initialize()


def test_not_a_mib_file(tmp_path):
    path = tmp_path / "bogus.mib"
    path.write_bytes(b"PK\x03\x04" + bytes(1000))
    assert not MIBDataSet.guess_can_open(str(path))
    with pytest.raises(FileFormatError, match=r"bogus\.mib.*MQ1"):
        MIBDataSet(path, nav_shape=(1,)).initialize()


def test_unsupported_raw_quad_24bit(tmp_path):
    head = frame_header(1, 768, 4, 64, 8, "R64", "2x2", 24)
    (tmp_path / "q.mib").write_bytes(head + bytes(4 * 64 * 8 * 4))
    with pytest.raises(FileFormatError, match=r"q\.mib.*not supported"):
        MIBDataSet(tmp_path / "q.mib", nav_shape=(1,)).initialize()


# --- fuzzing the header parsers ---------------------------------------------------------------

_VALID = frame_header(1, 384, 1, 16, 8, "U16", "1x1", 12)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_frame_header_random(data):
    try:
        parse_frame_header(data, "fuzz.mib")
    except LiberTEMGPUError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 383), st.integers(0, 255)), min_size=1, max_size=8))
def test_fuzz_frame_header_mutated(edits):
    data = bytearray(_VALID)
    for pos, value in edits:
        data[pos] = value
    try:
        parse_frame_header(bytes(data), "fuzz.mib")
    except LiberTEMGPUError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_hdr(text):
    try:
        parse_hdr("HDR,\t\n" + text, "fuzz.hdr")
    except LiberTEMGPUError:
        pass


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, 120), st.sampled_from(b"0123456789,RUx \x00")), max_size=4
    ),
    hdr_edit=st.sampled_from(["", "Frames per Trigger (Number):\t0", "ScanX:\t-3", "ScanY:\tabc"]),
)
def test_fuzz_whole_load(tmp_path_factory, edits, hdr_edit):
    """Mutated frame headers and .hdr lines: a load either works or raises our own error."""
    directory = tmp_path_factory.mktemp("fuzz")
    data = np.arange(2 * 8 * 16, dtype=np.uint32).reshape(2, 8, 16) % 4000
    hdr = write_mib(directory, data, 12)
    mib = directory / "scan.mib"
    raw = bytearray(mib.read_bytes())
    for pos, value in edits:
        raw[pos] = value
    mib.write_bytes(bytes(raw))
    if hdr_edit:
        with open(hdr, "r+b") as f:
            f.seek(0, 2)
            text = Path(hdr).read_bytes().replace(b"End\t", hdr_edit.encode() + b"\r\nEnd\t")
            f.seek(0)
            f.write(text)
    try:
        ds = MIBDataSet(hdr).initialize()
        with ds.get_reader() as reader:
            out = np.empty((1, *ds.sig_shape), dtype=reader.dtype)
            reader.read_into(out, 0, 1)
    except LiberTEMGPUError:
        pass


def test_shared_bad_files(ctx, rng, tmp_path):
    data = _counts(rng, (3, 4, 16, 12), 12)
    (tmp_path / "good").mkdir()
    hdr = write_mib(tmp_path / "good", data, 12)
    check_bad_files(ctx, "mib", hdr, next((tmp_path / "good").glob("*.mib")))


def test_guess_can_open_contract(rng, tmp_path):
    (tmp_path / "good").mkdir()
    hdr = write_mib(tmp_path / "good", _counts(rng, (3, 4, 16, 12), 12), 12)
    paths = [hdr, *sorted((tmp_path / "good").glob("*.mib")), *sorted(DATA.glob("*.mib"))]
    check_guess_can_open(MIBDataSet, paths, tmp_path)


# --- truncated .hdr: fall back, but say so -----------------------------------------------------


def test_truncated_hdr_warns(rng, tmp_path):
    data = rng.integers(0, max_value(12), (3, 4, 16, 16)).astype("uint16")
    hdr = Path(write_mib(tmp_path, data, 12))
    text = hdr.read_bytes()
    hdr.write_bytes(text[: text.index(b"Frames in")])  # cut before the frame count
    with pytest.warns(UserWarning) as record:
        ds = MIBDataSet(str(hdr)).initialize()
    messages = [str(w.message) for w in record]
    assert any("scan.hdr" in m and "'End'" in m for m in messages), messages
    assert any("scan.hdr" in m and "line scan" in m for m in messages), messages
    assert ds.nav_shape == (12,)
