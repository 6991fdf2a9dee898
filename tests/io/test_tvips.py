"""TVIPS series: the real file, series over several files, scan detection, bad files, fuzzing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libertem_gpu.errors import FileFormatError, LiberTEMGPUError, MissingFileError
from libertem_gpu.io.formats.tvips import TVIPSDataSet, parse_series_header
from tests.conftest import random_data
from tests.data_files import data_path, needs_data
from tests.io.builtin_analyses import check_builtin_analyses
from tests.io.contract import CollectFramesUDF, check_bad_files, check_dataset, check_guess_can_open
from tests.io.writers_tvips import write_tvips

DATA = data_path("tvips/test_tvips_2233_000.tvips")
needs_real_file = needs_data("tvips/test_tvips_2233_000.tvips")


@needs_real_file
def test_real_file(inline_ctx):
    ds = inline_ctx.load("auto", path=str(DATA))
    assert isinstance(ds, TVIPSDataSet)
    assert ds.nav_shape + ds.sig_shape == (4, 3, 3) and ds.dtype == np.uint16
    f = inline_ctx.run_udf(dataset=ds, udf=CollectFramesUDF())["frames"].raw_data
    assert (f.sum(), (f**2).sum(), f.max(), f[0].sum(), f[-1].sum()) == (630, 14910, 35, 36, 279)


@needs_real_file
def test_real_file_against_rosettasciio(ctx):
    tvips = pytest.importorskip("rsciio.tvips")
    expected = np.asarray(tvips.file_reader(str(DATA))[0]["data"])
    check_dataset(ctx, ctx.load("tvips", path=str(DATA)), expected, dtype="uint16")


@needs_real_file
def test_real_file_calibration_as_rosettasciio_reads_it(inline_ctx):
    # a diffraction series (mode 2): the header's pixel size is in 1/nm
    cal = inline_ctx.load("tvips", path=str(DATA)).calibration
    assert cal.nav == (None,) and cal.source == "tvips header"
    assert [(a.scale, a.units) for a in cal.sig] == [(1.0, "1/nm")] * 2
    tvips = pytest.importorskip("rsciio.tvips")
    axes = tvips.file_reader(str(DATA))[0]["axes"]
    assert [(a["scale"], a["units"]) for a in axes[-2:]] == [(1.0, "1/nm")] * 2


@pytest.mark.parametrize(
    ("mode", "pixel", "version", "want"),
    [
        (1, 7, 2, (7.0, "nm")),
        (2, 3, 2, (3.0, "1/nm")),
        (0, 7, 2, None),
        (1, 0, 2, None),
        (1, 7, 1, None),
    ],
)
def test_calibration_by_mode(inline_ctx, rng, tmp_path, mode, pixel, version, want):
    # units follow the first image header's mode; unset mode, zero size or a version 1 header
    # (no mode) give no calibration
    data = random_data(rng, (2, 3, 5, 4), "uint16")
    path = write_tvips(tmp_path, data, pixel_size=pixel, mode=mode, version=version)
    cal = inline_ctx.load("tvips", path=path).calibration
    if want is None:
        assert cal.is_empty
    else:
        assert [(a.scale, a.units) for a in cal.sig] == [want] * 2


@pytest.mark.parametrize(
    ("nav", "sig", "dtype", "n_files"),
    [((3, 5), (13, 17), "uint16", 1), ((4, 3), (9, 8), "uint8", 3), ((2, 6), (7, 5), "uint16", 4)],
)
def test_contract_series(ctx, rng, tmp_path, nav, sig, dtype, n_files):
    data = random_data(rng, (*nav, *sig), dtype)
    path = write_tvips(tmp_path, data, n_files=n_files)
    ds = ctx.load("auto", path=path)
    assert len(ds.meta["files"]) == n_files
    assert ds.nav_shape == nav and ds.meta["nav_shape_source"] == "image header scan positions"
    check_dataset(ctx, ds, data, dtype=dtype)
    flat = ctx.load("tvips", path=path, nav_shape=(nav[0] * nav[1],), sync_offset=0)
    check_dataset(ctx, flat, data.reshape(-1, *sig))


def test_scan_start_detected(ctx, rng, tmp_path):
    data = random_data(rng, (3, 4, 6, 7), "uint16")
    path = write_tvips(tmp_path, data, n_files=2, lead_in=5)
    ds = ctx.load("tvips", path=path)
    assert ds.sync_offset == 5 and ds.nav_shape == (3, 4)
    check_dataset(ctx, ds, data)
    assert "SumUDF" in check_builtin_analyses(ctx, ds, data)
    plain = write_tvips(tmp_path, data, scan=False, version=1, name="v1")
    assert ctx.load("tvips", path=plain).nav_shape == (12,)


def test_bad_files(rng, tmp_path):
    data = random_data(rng, (3, 4, 6, 7), "uint16")
    path = write_tvips(tmp_path, data, n_files=3)
    os.remove(tmp_path / "rec_001.tvips")
    ds = TVIPSDataSet(path).initialize()  # the series ends at the gap
    assert ds.meta["files"] == [path]
    with pytest.raises(FileFormatError, match=r"rec_002\.tvips.*rec_001\.tvips is missing"):
        TVIPSDataSet(tmp_path / "rec_002.tvips").initialize()
    os.truncate(path, os.path.getsize(path) - 10)
    with pytest.raises(FileFormatError, match=r"rec_000\.tvips.*not a multiple of the record"):
        TVIPSDataSet(path).initialize()
    lying = write_tvips(tmp_path, data, name="lie")
    raw = bytearray(Path(lying).read_bytes())
    raw[8:12] = (8).to_bytes(4, "little")  # width 7 -> 8
    Path(lying).write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match=r"lie_000\.tvips.*record size"):
        TVIPSDataSet(lying).initialize()
    with pytest.raises(MissingFileError, match="nope"):
        TVIPSDataSet(tmp_path / "nope_000.tvips").initialize()


_VALID = np.array([256, 2, 16, 16, 16, 0, 0, 1, 1, 5, 300, 100, 128], "<i4").tobytes() + bytes(204)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_header_random(data):
    try:
        parse_series_header(data, "fuzz.tvips")
    except LiberTEMGPUError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 51), st.integers(0, 255)), max_size=6))
def test_fuzz_header_mutated(edits):
    data = bytearray(_VALID)
    for pos, value in edits:
        data[pos] = value
    try:
        parse_series_header(bytes(data), "fuzz.tvips")
    except LiberTEMGPUError:
        pass


def test_shared_bad_files(ctx, rng, tmp_path):
    (tmp_path / "good").mkdir()
    path = write_tvips(tmp_path / "good", random_data(rng, (3, 4, 13, 17), "uint16"), n_files=2)
    check_bad_files(ctx, "tvips", path)


def test_guess_can_open_contract(rng, tmp_path):
    (tmp_path / "good").mkdir()
    path = write_tvips(tmp_path / "good", random_data(rng, (3, 4, 13, 17), "uint16"))
    paths = [path, DATA] if DATA.is_file() else [path]
    check_guess_can_open(TVIPSDataSet, paths, tmp_path)
