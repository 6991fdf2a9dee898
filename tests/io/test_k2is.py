"""Gatan K2 IS data sets: written sector files (12-bit blocks, sectors starting out of step,
shutter flag), scan shape from the .gtg, bad files and header fuzzing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libertem_gpu.errors import FileFormatError, LiberTEMGPUError, MissingFileError
from libertem_gpu.io.formats.k2is import BLOCK_BYTES, K2ISDataSet, decode_12bit
from libertem_gpu.io.registry import load
from tests.io.builtin_analyses import check_builtin_analyses
from tests.io.contract import CollectFramesUDF, check_bad_files, check_dataset, check_guess_can_open
from tests.io.writers_k2is import pack_12bit, write_k2is

FRAME = (1860, 2048)


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(11)
    return rng.integers(0, 4096, (4, *FRAME)).astype(np.uint16)


@pytest.fixture(scope="module")
def written(tmp_path_factory, frames):
    """Sectors start out of step (partial frames, whole earlier frames); the first frame lacks
    the shutter flag; the .gtg gives no scan shape: the data set is the 3 shutter frames."""
    base = tmp_path_factory.mktemp("k2") / "scan"
    gtg = write_k2is(base, frames, shutter_from=1, extra_lead_frames=(0, 1, 0, 0, 0, 0, 2, 0))
    return gtg


def test_contract(ctx, written, frames):
    ds = ctx.load("auto", path=str(written))
    assert isinstance(ds, K2ISDataSet)
    check_dataset(ctx, ds, frames[1:], dtype="uint16")


def test_builtin_analyses_and_open_by_sector(inline_ctx, written, frames):
    ds = inline_ctx.load("k2is", path=str(written).replace(".gtg", "_5.bin"))
    assert ds.nav_shape == (3,)
    check_builtin_analyses(inline_ctx, ds, frames[1:])


def test_scan_shape_from_gtg(inline_ctx, tmp_path, frames):
    # With a STEM scan shape, the data set starts one frame before the shutter flag.
    gtg = write_k2is(tmp_path / "s", frames, nav_shape=(1, 3), shutter_from=2)
    ds = inline_ctx.load("k2is", path=str(gtg))
    assert ds.nav_shape == (1, 3)
    result = inline_ctx.run_udf(dataset=ds, udf=CollectFramesUDF())["frames"].data
    np.testing.assert_array_equal(result[0], frames[1:])


def test_12bit_decoding_roundtrip():
    values = np.random.default_rng(5).integers(0, 4096, 3000).astype(np.uint16)
    out = np.empty_like(values)
    decode_12bit(pack_12bit(values), out)
    np.testing.assert_array_equal(out, values)
    # Bit layout: first value in byte 0 and the low nibble of byte 1.
    assert pack_12bit(np.array([0xABC, 0x123], np.uint16)).tolist() == [0xBC, 0x3A, 0x12]


# --- bad files --------------------------------------------------------------------------------


def _small(tmp_path, n=2, **kwargs):
    frames = np.random.default_rng(2).integers(0, 4096, (n, *FRAME)).astype(np.uint16)
    return write_k2is(tmp_path / "b", frames, leads=(0,) * 8, **kwargs)


def test_missing_companions(tmp_path):
    gtg = _small(tmp_path)
    os.remove(tmp_path / "b_4.bin")
    with pytest.raises(MissingFileError, match=r"8 sector files.*\[1, 2, 3, 5, 6, 7, 8\]"):
        load("k2is", path=gtg)
    gtg = _small(tmp_path)
    os.remove(gtg)
    with pytest.raises(MissingFileError, match=r"b\.gtg"):
        load("k2is", path=str(tmp_path / "b_1.bin"))
    assert load("k2is", path=str(tmp_path / "b_1.bin"), require_gtg=False).nav_shape == (2,)


def test_truncated_sector(tmp_path):
    gtg = _small(tmp_path, nav_shape=(1, 2))
    sector = tmp_path / "b_3.bin"
    with open(sector, "r+b") as f:
        f.truncate(os.path.getsize(sector) - 1000)
    with pytest.raises(FileFormatError, match=r"holds 1 frames.*needs 2"):
        load("k2is", path=gtg)
    with open(sector, "r+b") as f:
        f.truncate(BLOCK_BYTES * 5)
    with pytest.raises(FileFormatError, match=r"b_3\.bin.*less than one frame"):
        load("k2is", path=gtg)


def test_corrupt_blocks(inline_ctx, tmp_path):
    gtg = _small(tmp_path)
    sector = tmp_path / "b_2.bin"
    raw = bytearray(sector.read_bytes())
    raw[0:4] = b"\x00\x00\x00\x00"
    sector.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match=r"b_2\.bin.*not a K2 IS block"):
        load("k2is", path=gtg)
    # A wrong frame id inside the second frame is found when that frame is read.
    gtg = _small(tmp_path)
    raw = bytearray(sector.read_bytes())
    at = (32 + 7) * BLOCK_BYTES + 24  # frame id
    raw[at : at + 4] = (999).to_bytes(4, "big")
    sector.write_bytes(bytes(raw))
    ds = load("k2is", path=gtg)
    with pytest.raises(FileFormatError, match="out of step"):
        inline_ctx.run_udf(dataset=ds, udf=CollectFramesUDF())


def test_sectors_out_of_step(tmp_path):
    frames = np.zeros((2, *FRAME), np.uint16) + 7
    gtg = write_k2is(tmp_path / "o", frames, extra_lead_frames=(0, 0, 0, 6, 0, 0, 0, 0))
    with pytest.raises(FileFormatError, match="out of step"):
        load("k2is", path=gtg)


# --- fuzzing ------------------------------------------------------------------------------------

_GOOD: dict[int, bytes] = {}


def _good_sectors() -> dict[int, bytes]:
    if not _GOOD:
        with tempfile.TemporaryDirectory() as d:
            _small(Path(d))
            for s in range(1, 9):
                _GOOD[s] = (Path(d) / f"b_{s}.bin").read_bytes()
    return _GOOD


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 8), st.integers(0, 63), st.integers(0, 39), st.integers(0, 255)),
        min_size=1,
        max_size=6,
    )
)
def test_fuzz_block_headers(mutations):
    sectors = {s: bytearray(raw) for s, raw in _good_sectors().items()}
    for sector, block, pos, value in mutations:
        sectors[sector][block * BLOCK_BYTES + pos] = value
    with tempfile.TemporaryDirectory() as d:
        for s, raw in sectors.items():
            (Path(d) / f"f_{s}.bin").write_bytes(bytes(raw))
        try:
            ds = load("k2is", path=str(Path(d) / "f_1.bin"), require_gtg=False)
            with ds.get_reader() as reader:
                out = np.empty((ds.image_count, *ds.sig_shape), dtype=reader.dtype)
                reader.read_into(out, 0, ds.image_count)
        except LiberTEMGPUError:
            pass


def test_shared_bad_files(ctx, frames, tmp_path):
    (tmp_path / "good").mkdir()
    gtg = write_k2is(tmp_path / "good" / "scan", frames, nav_shape=(1, 3), shutter_from=1)
    check_bad_files(ctx, "k2is", gtg, gtg.replace(".gtg", "_3.bin"))


def test_guess_can_open_contract(written, tmp_path):
    paths = [written, written.replace(".gtg", "_1.bin"), written.replace(".gtg", "_8.bin")]
    check_guess_can_open(K2ISDataSet, paths, tmp_path)
