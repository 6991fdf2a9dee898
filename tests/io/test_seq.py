"""Norpix .seq data sets: written files (8/16/32-bit, both header versions, timestamp padding),
scan shapes, bad files and header fuzzing."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libertem_gpu.errors import FileFormatError, LiberTEMGPUError, MissingFileError
from libertem_gpu.io.formats.seq import SEQDataSet, parse_seq_header
from libertem_gpu.io.registry import load
from tests.conftest import random_data
from tests.io.builtin_analyses import check_builtin_analyses
from tests.io.contract import CollectFramesUDF, check_bad_files, check_dataset, check_guess_can_open
from tests.io.writers_seq import seq_header, write_seq


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
@pytest.mark.parametrize("version, footer", [(5, 8), (4, 6), (5, 0)])
def test_written_files(ctx, rng, tmp_path, dtype, version, footer):
    data = random_data(rng, (3, 4, 13, 17), dtype)
    path = tmp_path / "scan.seq"
    write_seq(path, data.reshape(-1, 13, 17), version=version, footer=footer)
    ds = ctx.load("auto", path=str(path), nav_shape=(3, 4))
    assert isinstance(ds, SEQDataSet)
    check_dataset(ctx, ds, data, dtype=dtype)
    check_builtin_analyses(ctx, ds, data)


def test_default_nav_shape_and_sync_offset(inline_ctx, rng, tmp_path):
    data = random_data(rng, (9, 5, 7), "uint16")
    path = tmp_path / "line.seq"
    write_seq(path, data)
    ds = inline_ctx.load("seq", path=str(path))
    assert ds.nav_shape == (9,)
    ds = inline_ctx.load("seq", path=str(path), nav_shape=(2, 4), sync_offset=2)
    frames = inline_ctx.run_udf(dataset=ds, udf=CollectFramesUDF())["frames"].data
    np.testing.assert_array_equal(frames.reshape(8, 5, 7)[:7], data[2:])


def test_last_timestamp_missing(inline_ctx, rng, tmp_path):
    data = random_data(rng, (4, 5, 7), "uint16")
    path = tmp_path / "cut.seq"
    write_seq(path, data)
    path.write_bytes(path.read_bytes()[:-8])  # the last frame's timestamp only
    ds = inline_ctx.load("seq", path=str(path))
    frames = inline_ctx.run_udf(dataset=ds, udf=CollectFramesUDF())["frames"].data
    np.testing.assert_array_equal(frames, data)


# --- bad files --------------------------------------------------------------------------------


def test_truncated(rng, tmp_path):
    path = tmp_path / "t.seq"
    write_seq(path, random_data(rng, (4, 5, 7), "uint16"))
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(FileFormatError, match=r"t\.seq.*holds 3 frames.*needs 4"):
        load("seq", path=str(path))
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(FileFormatError, match="too short"):
        load("seq", path=str(path))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"true_image_size": 10}, "true image size"),
        ({"image_format": 200}, "not monochrome"),
        ({"compression": 1}, "compressed"),
    ],
)
def test_header_lies(tmp_path, kwargs, match):
    path = tmp_path / "lie.seq"
    args = {"true_image_size": 5 * 7 * 2 + 8, **kwargs}
    path.write_bytes(seq_header(7, 5, 16, 2, **args) + bytes(8192 - 1024 + 2 * 78))
    with pytest.raises(FileFormatError, match=match):
        load("seq", path=str(path))


def test_bad_magic_and_missing(tmp_path):
    path = tmp_path / "x.seq"
    path.write_bytes(bytes(2048))
    assert not SEQDataSet.guess_can_open(str(path))
    with pytest.raises(FileFormatError, match="0xFEED"):
        load("seq", path=str(path))
    with pytest.raises(MissingFileError, match="none.seq"):
        load("seq", path=str(tmp_path / "none.seq"))


# --- fuzzing ------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=1100))
def test_fuzz_header_parser(data):
    try:
        parse_seq_header(data, "fuzz.seq")
    except FileFormatError:
        pass


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(540, 640), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 200),
)
def test_fuzz_mutated_headers(mutations, cut):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.seq"
        write_seq(path, (np.arange(3 * 5 * 7, dtype="u2") * 5 + 1).reshape(3, 5, 7))
        raw = bytearray(path.read_bytes())
        for pos, value in mutations:
            raw[pos] = value
        path.write_bytes(bytes(raw[: len(raw) - cut]))
        try:
            ds = load("seq", path=str(path))
            with ds.get_reader() as reader:
                out = np.empty((ds.image_count, *ds.sig_shape), dtype=reader.dtype)
                reader.read_into(out, 0, ds.image_count)
        except LiberTEMGPUError:
            pass


def _good_seq(rng, folder):
    folder.mkdir()
    write_seq(folder / "x.seq", rng.integers(0, 2**16, (12, 13, 17)).astype(np.uint16))
    return folder / "x.seq"


def test_shared_bad_files(ctx, rng, tmp_path):
    check_bad_files(ctx, "seq", _good_seq(rng, tmp_path / "good"), nav_shape=(3, 4))


def test_guess_can_open_contract(rng, tmp_path):
    check_guess_can_open(SEQDataSet, [_good_seq(rng, tmp_path / "good")], tmp_path)


# --- header fields that decide where frames lie ------------------------------------------------


@pytest.mark.parametrize("version", [0, 2, 7, -1, 2**30])
def test_unknown_version_is_refused(rng, tmp_path, version):
    # The version decides whether frames start at 1024 or 8192: an unknown one is not guessed.
    path = tmp_path / "v.seq"
    write_seq(path, random_data(rng, (4, 5, 6), "uint16"))
    raw = bytearray(path.read_bytes())
    raw[28:32] = version.to_bytes(4, "little", signed=True)
    path.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match=rf"v\.seq.*version {version}"):
        SEQDataSet(str(path)).initialize()


def test_wrong_header_size_and_image_size_are_refused(rng, tmp_path):
    path = tmp_path / "h.seq"
    write_seq(path, random_data(rng, (4, 5, 6), "uint16"))
    good = path.read_bytes()
    for offset, value, what in ((32, 2000, "header size"), (564, 59, "59 bytes")):
        raw = bytearray(good)
        raw[offset : offset + 4] = value.to_bytes(4, "little")
        path.write_bytes(bytes(raw))
        with pytest.raises(FileFormatError, match=rf"h\.seq.*{what}"):
            SEQDataSet(str(path)).initialize()


def test_bytes_after_the_allocated_frames_warn(rng, tmp_path):
    # A version-5 file read as version 4 would show as 7168 spare bytes: say so.
    path = tmp_path / "extra.seq"
    data = random_data(rng, (4, 5, 6), "uint16")
    write_seq(path, data, footer=0)
    with open(path, "ab") as f:
        f.write(bytes(7168))
    with pytest.warns(UserWarning, match=r"extra\.seq: 7168 bytes after the 4 allocated"):
        ds = SEQDataSet(str(path)).initialize()
    assert ds.image_count == 4
