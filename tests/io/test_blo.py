"""NanoMegas .blo data sets: the real file, written files, bad files and header fuzzing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libertem_gpu.errors import FileFormatError, LiberTEMGPUError, MissingFileError
from libertem_gpu.io.formats.blo import BloDataSet, parse_blo_header
from tests.data_files import data_path, needs_data
from tests.io.builtin_analyses import check_builtin_analyses
from tests.io.contract import (
    CollectFramesUDF,
    check_bad_files,
    check_dataset,
    check_guess_can_open,
)
from tests.io.writers_blo import HEADER, write_blo

DATA = data_path("blo/test2.blo")
needs_real_file = needs_data("blo/test2.blo")


@needs_real_file
def test_real_file(inline_ctx):
    ds = inline_ctx.load("auto", path=str(DATA))
    assert isinstance(ds, BloDataSet)
    assert ds.nav_shape + ds.sig_shape == (2, 3, 5, 5) and ds.dtype == np.uint8
    f = inline_ctx.run_udf(dataset=ds, udf=CollectFramesUDF())["frames"].raw_data
    assert (f.sum(), (f**2).sum(), f.max(), f[0].sum(), f[-1].sum()) == (
        2952,
        65646,
        30,
        473,
        538,
    )


@needs_real_file
def test_real_file_against_rosettasciio(ctx):
    blockfile = pytest.importorskip("rsciio.blockfile")
    expected = blockfile.file_reader(str(DATA))[0]["data"]
    check_dataset(ctx, ctx.load("blo", path=str(DATA)), np.asarray(expected), dtype="uint8")


@pytest.mark.parametrize(("nav", "side"), [((3, 5), 13), ((1, 7), 8), ((4, 2), 17)])
def test_contract(ctx, rng, tmp_path, nav, side):
    data = rng.integers(0, 256, size=(*nav, side, side), dtype=np.uint8)
    path = write_blo(tmp_path / "x.blo", data)
    check_dataset(ctx, ctx.load("auto", path=path), data, dtype="uint8")
    flat = ctx.load("blo", path=path, nav_shape=(nav[0] * nav[1],), sig_shape=(side * side,))
    check_dataset(ctx, flat, data.reshape(-1, side * side))
    assert "SumUDF" in check_builtin_analyses(ctx, ctx.load("blo", path=path), data)


def test_bad_files(rng, tmp_path):
    data = rng.integers(0, 256, size=(3, 4, 9, 9), dtype=np.uint8)
    path = write_blo(tmp_path / "x.blo", data)
    os.truncate(path, os.path.getsize(path) - 20)
    with pytest.raises(FileFormatError, match=r"x\.blo.*holds 11 frames.*needs 12"):
        BloDataSet(path).initialize()
    os.truncate(path, 0x1000 + 3)
    with pytest.raises(FileFormatError, match=r"x\.blo.*too short"):
        BloDataSet(path).initialize()
    lying = write_blo(tmp_path / "lie.blo", data, pattern_offset=0x1000)
    raw = bytearray(Path(lying).read_bytes())
    raw[12:16] = (10**8).to_bytes(4, "little")  # patterns "at" byte 100 MB
    Path(lying).write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match=r"lie\.blo.*patterns at byte 100000000"):
        BloDataSet(lying).initialize()
    wrong_magic = write_blo(tmp_path / "m.blo", data, magic=0x0304)
    with pytest.raises(FileFormatError, match=r"m\.blo.*magic"):
        BloDataSet(wrong_magic).initialize()
    with pytest.raises(MissingFileError, match="gone"):
        BloDataSet(tmp_path / "gone.blo").initialize()


_VALID = write_blo.__defaults__ and HEADER.pack(
    b"IMGBLO", 0x0102, 200, 4096, 0, 9, 0, 3, 4, 0, 1.0, 1.0, 1, 1, 1, 1.0
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_header_random(data):
    try:
        parse_blo_header(data, "fuzz.blo")
    except LiberTEMGPUError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, HEADER.size - 1), st.integers(0, 255)), max_size=6))
def test_fuzz_header_mutated(edits):
    data = bytearray(_VALID)
    for pos, value in edits:
        data[pos] = value
    try:
        parse_blo_header(bytes(data), "fuzz.blo")
    except LiberTEMGPUError:
        pass


def test_shared_bad_files(ctx, rng, tmp_path):
    data = rng.integers(0, 256, size=(3, 4, 9, 9), dtype=np.uint8)
    (tmp_path / "good").mkdir()
    check_bad_files(ctx, "blo", write_blo(tmp_path / "good" / "x.blo", data))


def test_guess_can_open_contract(rng, tmp_path):
    data = rng.integers(0, 256, size=(3, 4, 9, 9), dtype=np.uint8)
    paths = [write_blo(tmp_path / "x.blo", data)]
    if DATA.is_file():
        paths.append(str(DATA))
    check_guess_can_open(BloDataSet, paths, tmp_path)


# --- frame markers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "frame"),
    [
        ("offset+1", 0),  # the header's pattern offset is wrong: every frame would shift
        ("marker", 5),  # one frame's 0x55AA is damaged
        ("number", 11),  # the last frame's number is wrong
    ],
)
def test_frame_markers_are_checked(rng, tmp_path, edit, frame):
    data = rng.integers(1, 255, (3, 4, 7, 7), dtype=np.uint8)
    path = Path(write_blo(tmp_path / "m.blo", data))
    raw = bytearray(path.read_bytes())
    offset = 0x1000
    if edit == "offset+1":
        raw[12:16] = (offset + 1).to_bytes(4, "little")  # the patterns' offset
    elif edit == "marker":
        raw[offset + frame * 55] ^= 0xFF
    else:
        raw[offset + frame * 55 + 2] ^= 0x40
    path.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match=rf"m\.blo: frame {frame} .*0x55AA"):
        BloDataSet(str(path)).initialize()
