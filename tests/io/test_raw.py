"""The raw file data set: layouts, byte orders, headers, sync_offset and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.errors import DataSetError, FileFormatError, MissingFileError
from libertem_gpu.io.formats.raw import RawFileDataSet
from tests.conftest import random_data
from tests.io.contract import check_bad_files, check_dataset, check_guess_can_open


def write_raw(path, frames: np.ndarray, file_header=0, frame_header=0, frame_footer=0, rng=None):
    """Write frames (n, *sig) with filler bytes around them, as detectors do."""
    rng = rng or np.random.default_rng(3)
    with open(path, "wb") as f:
        f.write(rng.integers(0, 256, file_header, dtype=np.uint8).tobytes())
        for frame in frames:
            f.write(rng.integers(0, 256, frame_header, dtype=np.uint8).tobytes())
            f.write(frame.tobytes())
            f.write(rng.integers(0, 256, frame_footer, dtype=np.uint8).tobytes())
    return str(path)


@pytest.mark.parametrize(
    ("dtype", "nav", "sig"),
    [
        ("uint16", (5, 7), (13, 17)),
        (">u2", (4, 6), (13, 17)),
        ("uint8", (11,), (9, 8)),
        (">f4", (2, 3, 4), (5, 7)),
        ("int32", (3, 5), (31,)),
        ("float64", (6, 5), (4, 3)),
    ],
)
def test_contract(ctx, rng, tmp_path, dtype, nav, sig):
    data = random_data(rng, nav + sig, dtype)
    path = write_raw(tmp_path / "x.raw", data.reshape(-1, *sig))
    ds = ctx.load("raw", path=path, nav_shape=nav, sig_shape=sig, dtype=dtype)
    check_dataset(ctx, ds, data, dtype=dtype)


@pytest.mark.parametrize("headers", [(100, 0, 0), (0, 24, 0), (7, 13, 5), (4096, 384, 0)])
def test_headers_and_footers(ctx, rng, tmp_path, headers):
    file_header, frame_header, frame_footer = headers
    data = random_data(rng, (3, 5, 13, 17), ">u2")
    path = write_raw(tmp_path / "x.raw", data.reshape(-1, 13, 17), *headers)
    ds = ctx.load(
        "raw",
        path=path,
        nav_shape=(3, 5),
        sig_shape=(13, 17),
        dtype=">u2",
        file_header=file_header,
        frame_header=frame_header,
        frame_footer=frame_footer,
    )
    check_dataset(ctx, ds, data)


@pytest.mark.parametrize("offset", [-4, 3])
def test_sync_offset(ctx, rng, tmp_path, offset):
    frames = random_data(rng, (20, 6, 5), "uint16")
    path = write_raw(tmp_path / "x.raw", frames)
    ds = ctx.load(
        "raw", path=path, nav_shape=(4, 5), sig_shape=(6, 5), dtype="uint16", sync_offset=offset
    )
    expected = np.zeros((20, 6, 5), dtype=np.uint16)
    src = np.arange(20) + offset
    ok = (src >= 0) & (src < 20)
    expected[ok] = frames[src[ok]]
    check_dataset(ctx, ds, expected.reshape(4, 5, 6, 5))


def test_more_frames_than_scan_positions(ctx, rng, tmp_path):
    frames = random_data(rng, (23, 4, 3), "uint16")
    path = write_raw(tmp_path / "x.raw", frames)
    ds = ctx.load("raw", path=path, nav_shape=(4, 5), sig_shape=(4, 3), dtype="uint16")
    assert ds.image_count == 23
    check_dataset(ctx, ds, frames[:20].reshape(4, 5, 4, 3))


def test_file_shorter_than_declared_shape(tmp_path, inline_ctx):
    path = write_raw(tmp_path / "short.raw", np.ones((10, 4, 4), dtype=np.uint16))
    with pytest.raises(FileFormatError, match=r"short\.raw.*holds 10 frames.*needs 12"):
        inline_ctx.load("raw", path=path, nav_shape=(3, 4), sig_shape=(4, 4), dtype="uint16")


def test_file_shorter_than_one_frame(tmp_path, inline_ctx):
    path = tmp_path / "tiny.raw"
    path.write_bytes(b"\0" * 10)
    with pytest.raises(FileFormatError, match=r"tiny\.raw.*10 bytes"):
        inline_ctx.load("raw", path=path, nav_shape=(1,), sig_shape=(4, 4), dtype="uint16")


@pytest.mark.parametrize("shape", [(0, 4), (-1, 4), (4, 0)])
def test_non_positive_shape(tmp_path, inline_ctx, shape):
    path = write_raw(tmp_path / "x.raw", np.ones((16, 4, 4), dtype=np.uint16))
    with pytest.raises(DataSetError, match="positive"):
        inline_ctx.load("raw", path=path, nav_shape=shape, sig_shape=(4, 4), dtype="uint16")
    with pytest.raises(DataSetError, match="positive"):
        inline_ctx.load("raw", path=path, nav_shape=(4, 4), sig_shape=shape, dtype="uint16")


@pytest.mark.parametrize("dtype", ["uint17", "complex64", object, "U8"])
def test_unknown_dtype(tmp_path, inline_ctx, dtype):
    path = write_raw(tmp_path / "x.raw", np.ones((16, 4, 4), dtype=np.uint16))
    with pytest.raises((DataSetError, TypeError), match="dtype"):
        inline_ctx.load("raw", path=path, nav_shape=(4, 4), sig_shape=(4, 4), dtype=dtype)


def test_missing_file(tmp_path, inline_ctx):
    with pytest.raises(MissingFileError, match="nope.raw"):
        inline_ctx.load(
            "raw", path=tmp_path / "nope.raw", nav_shape=(2,), sig_shape=(4, 4), dtype="u1"
        )


@pytest.mark.parametrize("offset", [-12, 16, 100])
def test_sync_offset_out_of_range(tmp_path, inline_ctx, offset):
    path = write_raw(tmp_path / "x.raw", np.ones((16, 4, 4), dtype=np.uint16))
    with pytest.raises(DataSetError, match="sync_offset"):
        inline_ctx.load(
            "raw", path=path, nav_shape=(3, 4), sig_shape=(4, 4), dtype="u2", sync_offset=offset
        )


def test_opened_read_only(tmp_path, inline_ctx, rng):
    path = write_raw(tmp_path / "x.raw", random_data(rng, (6, 4, 4), "uint16"))
    (tmp_path / "x.raw").chmod(0o444)
    ds = inline_ctx.load("raw", path=path, nav_shape=(6,), sig_shape=(4, 4), dtype="uint16")
    from libertem_gpu import UDF

    class Frames(UDF):
        def get_result_buffers(self):
            return {"f": self.buffer(kind="nav", extra_shape=(4, 4), dtype="u2")}

        def process_tile(self, tile):
            self.results.f[:] = tile

    inline_ctx.run_udf(dataset=ds, udf=Frames())
    with pytest.raises(ValueError, match="read-only"):
        # Tiles are read-only views: a UDF cannot corrupt the file through them.
        reader = ds.get_reader()
        reader.view(0, 6)[0, 0, 0] = 1


def test_raw_is_not_auto_detected(tmp_path, inline_ctx):
    path = write_raw(tmp_path / "x.raw", np.ones((4, 4, 4), dtype=np.uint16))
    from libertem_gpu.errors import UnknownFormatError

    with pytest.raises(UnknownFormatError, match="no format recognises"):
        inline_ctx.load("auto", path=path)


def test_shared_bad_files(ctx, rng, tmp_path):
    (tmp_path / "good").mkdir()
    path = write_raw(tmp_path / "good" / "x.raw", random_data(rng, (12, 7, 5), "uint16"))
    kwargs = {"nav_shape": (3, 4), "sig_shape": (7, 5), "dtype": "uint16"}
    check_bad_files(ctx, "raw", path, **kwargs)


def test_guess_can_open_contract(rng, tmp_path):
    # Raw files carry no signature: "auto" never claims one, so only the rejections apply.
    check_guess_can_open(RawFileDataSet, [], tmp_path)
