"""PNDetector .frms6 data sets: written data sets (folded halves, binning, dark correction,
several files, files without a frame count), bad files and header fuzzing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libertem_gpu.errors import FileFormatError, LiberTEMGPUError, MissingFileError
from libertem_gpu.io.formats.frms6 import FRMS6DataSet, parse_frms6_file_header, parse_frms6_hdr
from libertem_gpu.io.registry import load
from tests.conftest import random_data
from tests.io.builtin_analyses import check_builtin_analyses
from tests.io.contract import check_bad_files, check_dataset, check_guess_can_open
from tests.io.writers_frms6 import fold, unfold_reference, write_frms6, write_hdr


def _write(tmp_path, rng, nav_shape=(3, 4), binning=1, rows=7, cols=9):
    n = int(np.prod(nav_shape))
    sensor = random_data(rng, (n, 2 * rows * binning, cols), "uint16")
    stored = fold(sensor, binning)
    dark = fold(random_data(rng, (5, 2 * rows * binning, cols), "uint16") // 50, binning)
    hdr = write_frms6(tmp_path / "scan", dark, [stored[:5], stored[5:]], nav_shape, binning)
    return hdr, stored, dark


@pytest.mark.parametrize("binning", [1, 2])
@pytest.mark.parametrize("dark_correction", [False, True])
def test_written_data_set(ctx, rng, tmp_path, binning, dark_correction):
    hdr, stored, dark = _write(tmp_path, rng, binning=binning)
    expected = unfold_reference(stored, binning)
    if dark_correction:
        mean_dark = unfold_reference(dark, binning).astype(np.float64).mean(axis=0)
        expected = expected.astype(np.float32) - mean_dark.astype(np.float32)
    expected = expected.reshape(3, 4, *expected.shape[1:])
    ds = ctx.load("auto", path=str(hdr), dark_correction=dark_correction)
    assert isinstance(ds, FRMS6DataSet)
    dtype = "float32" if dark_correction else "uint16"
    check_dataset(ctx, ds, expected, dtype=dtype)
    check_builtin_analyses(ctx, ds, expected)


def test_open_by_data_file_and_nav_override(inline_ctx, rng, tmp_path):
    _write(tmp_path, rng, nav_shape=(12,))
    ds = inline_ctx.load("frms6", path=str(tmp_path / "scan_002.frms6"), nav_shape=(2, 6))
    assert ds.shape.to_tuple() == (2, 6, 14, 9)
    assert ds.meta["dark_frames"] == 5


def test_fold_matches_sensor_layout(rng):
    # The writer's folding is the inverse of the reference unfolding (independent check).
    sensor = random_data(rng, (2, 8, 5), "uint16")
    np.testing.assert_array_equal(unfold_reference(fold(sensor, 1), 1), sensor)
    # Upper half: left columns as is; lower half: right columns rotated by 180 degrees.
    stored = fold(sensor, 1)
    np.testing.assert_array_equal(stored[0, 0, :5], sensor[0, 0])
    np.testing.assert_array_equal(stored[0, 0, 5:], sensor[0, 7, ::-1])


# --- bad files --------------------------------------------------------------------------------


def test_missing_companions(tmp_path, rng):
    hdr, _, _ = _write(tmp_path, rng)
    os.remove(tmp_path / "scan_000.frms6")
    with pytest.raises(MissingFileError, match="scan_000"):
        load("frms6", path=str(hdr))
    _write(tmp_path, rng)
    os.remove(hdr)
    with pytest.raises(MissingFileError, match=r"scan\.hdr"):
        load("frms6", path=str(tmp_path / "scan_001.frms6"))


def test_truncated(tmp_path, rng):
    hdr, _, _ = _write(tmp_path, rng)
    part = tmp_path / "scan_001.frms6"  # its header holds the frame count
    part.write_bytes(part.read_bytes()[:-100])
    with pytest.raises(FileFormatError, match=r"scan_001\.frms6.*truncated"):
        load("frms6", path=str(hdr))
    _write(tmp_path, rng)
    part = tmp_path / "scan_002.frms6"  # no frame count: size must be whole frames
    part.write_bytes(part.read_bytes()[:-100])
    with pytest.raises(FileFormatError, match=r"scan_002\.frms6.*whole frames"):
        load("frms6", path=str(hdr))


def test_header_lies(tmp_path, rng):
    hdr, _, _ = _write(tmp_path, rng)
    part = tmp_path / "scan_001.frms6"
    raw = bytearray(part.read_bytes())
    raw[1020:1024] = (50).to_bytes(4, "little")
    part.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match="declares 50 frames"):
        load("frms6", path=str(hdr))
    _write(tmp_path, rng)
    write_hdr(hdr, (5, 5), 12, 5)  # the scan needs 25 frames, the files hold 12
    with pytest.raises(FileFormatError, match="holds 12 frames"):
        load("frms6", path=str(hdr))
    Path(hdr).write_text("[other]\nx=1\n")
    with pytest.raises(FileFormatError, match="measurementInfo"):
        load("frms6", path=str(hdr))


# --- fuzzing ------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1100), st.integers(0, 1 << 20))
def test_fuzz_file_header(data, size):
    try:
        parse_frms6_file_header(data, "fuzz.frms6", size)
    except FileFormatError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_hdr(text):
    try:
        parse_frms6_hdr("[measurementInfo]\n" + text, "fuzz.hdr")
    except FileFormatError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1100), st.integers(0, 255)), min_size=1, max_size=6))
def test_fuzz_mutated_files(mutations):
    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory() as d:
        hdr, _, _ = _write(Path(d), rng, nav_shape=(12,), rows=3, cols=4)
        part = Path(d) / "scan_001.frms6"
        raw = bytearray(part.read_bytes())
        for pos, value in mutations:
            raw[pos] = value
        part.write_bytes(bytes(raw))
        try:
            ds = load("frms6", path=str(hdr))
            with ds.get_reader() as reader:
                out = np.empty((ds.image_count, *ds.sig_shape), dtype=reader.dtype)
                reader.read_into(out, 0, ds.image_count)
        except LiberTEMGPUError:
            pass


def test_shared_bad_files(ctx, rng, tmp_path):
    (tmp_path / "good").mkdir()
    hdr, _, _ = _write(tmp_path / "good", rng)
    check_bad_files(ctx, "frms6", hdr, hdr.replace(".hdr", "_002.frms6"))


def test_guess_can_open_contract(rng, tmp_path):
    (tmp_path / "good").mkdir()
    hdr, _, _ = _write(tmp_path / "good", rng)
    paths = [hdr, hdr.replace(".hdr", "_000.frms6"), hdr.replace(".hdr", "_001.frms6")]
    check_guess_can_open(FRMS6DataSet, paths, tmp_path)


def test_hdr_without_scan_shape_warns(rng, tmp_path):
    hdr, _, _ = _write(tmp_path, rng)
    lines = Path(hdr).read_text().splitlines()
    Path(hdr).write_text("\n".join(ln for ln in lines if "stemimagesize" not in ln) + "\n")
    with pytest.warns(UserWarning, match=r"scan\.hdr: no stemimagesize.*line scan"):
        ds = FRMS6DataSet(hdr).initialize()
    assert ds.nav_shape == (12,)
