"""Direct Electron MRC movies: the real file, written movies with _info.txt, bad files,
header fuzzing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libertem_gpu.errors import FileFormatError, LiberTEMGPUError, MissingFileError
from libertem_gpu.io.calibration import AxisCalibration
from libertem_gpu.io.formats.mrc import MRCDataSet, parse_info_txt, parse_mrc_header
from tests.conftest import random_data
from tests.data_files import data_path, needs_data
from tests.io.builtin_analyses import check_builtin_analyses
from tests.io.contract import CollectFramesUDF, check_bad_files, check_dataset, check_guess_can_open
from tests.io.writers_mrc import raster_info, write_mrc

DATA = data_path("mrc/Custom_movie.mrc")
needs_real_file = needs_data("mrc/Custom_movie.mrc")


@needs_real_file
def test_real_file(inline_ctx):
    ds = inline_ctx.load("auto", path=str(DATA))
    assert isinstance(ds, MRCDataSet)
    assert ds.nav_shape + ds.sig_shape == (30, 16, 16) and ds.dtype == np.uint16
    f = inline_ctx.run_udf(dataset=ds, udf=CollectFramesUDF())["frames"].raw_data
    assert (f.sum(), (f**2).sum(), f.max(), f[0].sum(), f[-1].sum()) == (
        9006430,
        11569118626,
        1596,
        300212,
        300183,
    )


@needs_real_file
def test_real_file_against_rosettasciio(ctx):
    mrc = pytest.importorskip("rsciio.mrc")
    expected = np.asarray(mrc.file_reader(str(DATA))[0]["data"]).reshape(30, 16, 16)
    check_dataset(ctx, ctx.load("mrc", path=str(DATA)), expected, dtype="uint16")


@pytest.mark.parametrize(
    ("dtype", "nav", "repeats", "extended", "big"),
    [
        ("uint16", (3, 5), 1, 0, False),
        ("float32", (2, 3, 4), 2, 1536, False),
        ("int16", (4, 2), 1, 128, True),
        ("int8", (2, 2), 1, 0, False),
        ("float16", (3, 3), 1, 0, False),
    ],
)
def test_contract(ctx, rng, tmp_path, dtype, nav, repeats, extended, big):
    data = random_data(rng, (*nav, 13, 17), dtype)
    info = raster_info(nav[-2], nav[-1], repeats)
    path = write_mrc(
        tmp_path, data.reshape(-1, 13, 17), extended=extended, info=info, big_endian=big
    )
    ds = ctx.load("auto", path=path)
    assert ds.nav_shape == nav and ds.meta["nav_shape_source"] == "info.txt raster scan"
    check_dataset(ctx, ds, data, dtype=dtype)


def test_nav_shape_and_analyses(ctx, rng, tmp_path):
    data = random_data(rng, (12, 13, 17), "uint16")
    path = write_mrc(tmp_path, data)  # no _info.txt
    ds = ctx.load("mrc", path=path, nav_shape=(3, 4))
    check_dataset(ctx, ds, data.reshape(3, 4, 13, 17))
    assert "SumUDF" in check_builtin_analyses(ctx, ds, data.reshape(3, 4, 13, 17))
    info = tmp_path / "elsewhere.txt"
    info.write_text("Scan - Enable = Disable\n")
    assert ctx.load("mrc", path=path, info_path=info).nav_shape == (12,)


def test_bad_files(rng, tmp_path):
    data = random_data(rng, (12, 13, 17), "uint16")
    path = write_mrc(tmp_path, data, info=raster_info(3, 4))
    with pytest.raises(FileFormatError, match=r"_movie\.mrc.*holds 12 frames.*needs 16"):
        MRCDataSet(path, nav_shape=(4, 4)).initialize()
    os.remove(tmp_path / "20250101_00001_info.txt")
    with pytest.raises(MissingFileError, match=r"_movie\.mrc.*_info\.txt.*nav_shape"):
        MRCDataSet(path).initialize()
    with pytest.raises(MissingFileError, match=r"nothere\.txt"):
        MRCDataSet(path, info_path=tmp_path / "nothere.txt").initialize()
    os.truncate(path, os.path.getsize(path) - 1)
    with pytest.raises(FileFormatError, match=r"_movie\.mrc.*header states 12 frames.*truncated"):
        MRCDataSet(path, nav_shape=(12,)).initialize()
    raw = bytearray(Path(path).read_bytes())
    raw[12:16] = (4).to_bytes(4, "little")  # mode 4: complex
    Path(path).write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match=r"_movie\.mrc.*mode 4 is not supported"):
        MRCDataSet(path, nav_shape=(12,)).initialize()
    assert not MRCDataSet.guess_can_open(path)


_VALID = bytearray(1024)
_VALID[0:16] = np.array([16, 16, 30, 6], "<i4").tobytes()
_VALID[212:214] = b"DD"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1100))
def test_fuzz_header_random(data):
    try:
        parse_mrc_header(data, "fuzz.mrc")
    except LiberTEMGPUError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), max_size=8))
def test_fuzz_header_mutated(edits):
    data = bytearray(_VALID)
    for pos, value in edits:
        data[pos if pos < 100 else 112 + pos] = value
    try:
        parse_mrc_header(bytes(data), "fuzz.mrc")
    except LiberTEMGPUError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_info(text):
    from libertem_gpu.io.formats.mrc import nav_from_info

    nav, _ = nav_from_info(parse_info_txt(text), 7)
    assert all(isinstance(d, int) for d in nav)


def _good_mrc(rng, folder):
    folder.mkdir()
    data = random_data(rng, (12, 13, 17), "uint16")
    return write_mrc(folder, data, info=raster_info(3, 4, 1))


def test_shared_bad_files(ctx, rng, tmp_path):
    check_bad_files(ctx, "mrc", _good_mrc(rng, tmp_path / "good"))


def test_guess_can_open_contract(rng, tmp_path):
    paths = [_good_mrc(rng, tmp_path / "good")]
    if DATA.is_file():
        paths.append(DATA)
    check_guess_can_open(MRCDataSet, paths, tmp_path)


# --- calibration --------------------------------------------------------------------------------


@needs_real_file
def test_real_file_calibration_is_unknown():
    # DE wrote "Specimen Pixel Size X (nanometers) = -1" (unknown) and copied it into the cell:
    # cella = -1 nm x 16 pixels = -160 Å. Camera length -1 too: nothing is known.
    ds = MRCDataSet(str(DATA)).initialize()
    assert ds.meta["cell_angstrom"] == (-160.0, -160.0, 0.0) and ds.meta["sampling"] == (16, 16, 30)
    assert ds.calibration.is_empty and ds.calibration.sig == (None, None)


@pytest.mark.parametrize("big", [False, True])
def test_calibration_from_the_header_cell(rng, tmp_path, big):
    data = random_data(rng, (4, 6, 5), "uint16")  # 6 rows of 5 pixels
    path = write_mrc(tmp_path, data, cell=(5 * 2.5, 6 * 3.0, 4.0), big_endian=big)
    cal = MRCDataSet(path, nav_shape=(4,)).initialize().calibration
    assert cal.sig == (AxisCalibration(0.3, 0.0, "nm"), AxisCalibration(0.25, 0.0, "nm"))
    assert cal.nav == (None,) and cal.source == "mrc header (cella / mx)"


@pytest.mark.parametrize("cell", [(5.0, 6.0, 4.0), (0.0, 0.0, 0.0), (-50.0, -60.0, 0.0)])
def test_header_cell_without_a_pixel_size_is_unknown(rng, tmp_path, cell):
    # 1 Å per pixel (cella = mx) is what writers that know no pixel size put there.
    path = write_mrc(tmp_path, random_data(rng, (4, 6, 5), "uint16"), cell=cell)
    assert MRCDataSet(path, nav_shape=(4,)).initialize().calibration.is_empty


def test_raster_scan_step_and_camera_length_from_info(rng, tmp_path):
    info = {
        **raster_info(2, 3),
        "Specimen Pixel Size X (nanometers)": "1.5",
        "Specimen Pixel Size Y (nanometers)": "2",
        "Instrument Project Camera Length (centimeters)": "8",
    }
    # DE copies the scan step into the cell; it is not the detector's pixel size.
    path = write_mrc(tmp_path, random_data(rng, (6, 4, 5), "uint16"), info=info, cell=(75, 80, 6))
    cal = MRCDataSet(path).initialize().calibration
    assert cal.nav == (AxisCalibration(2.0, 0.0, "nm"), AxisCalibration(1.5, 0.0, "nm"))
    assert cal.sig == (None, None)
    assert (cal.camera_length, cal.camera_length_units) == (80.0, "mm")
    assert cal.source == "info.txt (Specimen Pixel Size); info.txt (Camera Length)"
    twice = {**info, **raster_info(2, 3, repeats=2)}
    path = write_mrc(tmp_path, random_data(rng, (12, 4, 5), "u2"), name="r", info=twice)
    repeated = MRCDataSet(path).initialize()
    assert repeated.nav_shape == (2, 2, 3) and repeated.calibration.nav == (None, *cal.nav)


def test_movie_pixel_size_from_info(rng, tmp_path):
    info = {"Scan - Enable": "Disable", "Specimen Pixel Size X (nanometers)": "0.5"}
    path = write_mrc(tmp_path, random_data(rng, (3, 4, 5), "uint16"), info=info)
    cal = MRCDataSet(path).initialize().calibration
    assert cal.nav == (None,) and cal.sig == (None, AxisCalibration(0.5, 0.0, "nm"))
    assert cal.source == "info.txt (Specimen Pixel Size)"


def test_header_calibration_against_rosettasciio(rng, tmp_path):
    mrc = pytest.importorskip("rsciio.mrc")
    path = write_mrc(tmp_path, random_data(rng, (4, 6, 5), "uint16"), cell=(12.5, 18.0, 4.0))
    axes = mrc.file_reader(path)[0]["axes"][1:]  # (frames, y, x): the frame axes
    cal = MRCDataSet(path, nav_shape=(4,)).initialize().calibration
    for ours, theirs in zip(cal.sig, axes, strict=True):
        assert (ours.scale, ours.units) == (pytest.approx(theirs["scale"]), theirs["units"])
