"""HDF5 data sets: every storage layout against NumPy, chunk-aligned partitions, bad files."""

from __future__ import annotations

import itertools
import os
import pickle
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libertem_gpu import config
from libertem_gpu.errors import (
    DataSetError,
    FileFormatError,
    LiberTEMGPUError,
    MissingFileError,
)
from libertem_gpu.io.chunked import aligned_partitions, chunk_snapper, nav_blocks
from libertem_gpu.io.formats.hdf5 import H5DataSet
from tests.conftest import random_data
from tests.io.builtin_analyses import check_builtin_analyses
from tests.io.contract import check_bad_files, check_dataset, check_guess_can_open
from tests.io.writers_hdf5 import write_h5

SIG = (13, 17)

# (nav shape, chunks, compression, read as plain bytes)
LAYOUTS = {
    "contiguous-1d": ((23,), None, None, True),
    "contiguous-3d": ((2, 3, 4), None, None, True),
    "frame-chunks": ((5, 7), (1, 1, *SIG), None, True),
    "row-chunks": ((5, 7), (1, 3, *SIG), None, True),
    "block-chunks": ((5, 7), (2, 5, *SIG), None, False),
    "split-frames": ((5, 7), (1, 2, 7, 17), None, False),
    "bslz4": ((5, 7), (1, 1, *SIG), "bslz4", False),
    "gzip-3d": ((3, 4, 3), (1, 2, 2, 5, 17), "gzip", False),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_contract(tmp_path, ctx, rng, layout):
    nav, chunks, compression, direct = LAYOUTS[layout]
    data = random_data(rng, (*nav, *SIG), "uint16")
    path = write_h5(tmp_path / "scan.h5", data, chunks=chunks, compression=compression)
    ds = ctx.load("auto", path=path)
    assert isinstance(ds, H5DataSet)
    assert ds.meta["direct_io"] is direct
    check_dataset(ctx, ds, data, dtype="uint16", rng=rng)


@pytest.mark.parametrize("layout", ["contiguous-3d", "bslz4"])
def test_builtin_analyses(tmp_path, inline_ctx, rng, layout):
    nav, chunks, compression, _ = LAYOUTS[layout]
    data = random_data(rng, (*nav, *SIG), "uint16")
    path = write_h5(tmp_path / "scan.nxs", data, chunks=chunks, compression=compression)
    ds = inline_ctx.load("hdf5", path=path, ds_path="/entry/data/data")
    assert "SumUDF" in check_builtin_analyses(inline_ctx, ds, data)


@pytest.mark.parametrize("chunks", [None, (1, 1, *SIG), (1, 2, 7, 17)])
def test_big_endian_float(tmp_path, inline_ctx, rng, chunks):
    data = random_data(rng, (4, 5, *SIG), ">f4")
    path = write_h5(tmp_path / "be.hdf5", data, chunks=chunks)
    ds = inline_ctx.load("hdf5", path=path)
    assert ds.dtype == np.dtype("float32")
    check_dataset(inline_ctx, ds, data.astype("float32"), rng=rng)


def test_overrides_and_sig_dims(tmp_path, inline_ctx, rng):
    data = random_data(rng, (2, 3, 4, 5, 6), "int32")
    path = write_h5(tmp_path / "five.h5", data, ds_path="/d", chunks=(1, 1, 2, 5, 6))
    check_dataset(inline_ctx, inline_ctx.load("hdf5", path=path), data, rng=rng)
    with pytest.raises(DataSetError, match="at most 3"):
        inline_ctx.load("hdf5", path=path, sig_dims=1)
    ds = inline_ctx.load("hdf5", path=path, nav_shape=(24,), sig_shape=(30,))
    check_dataset(inline_ctx, ds, data.reshape(24, 30), rng=rng)
    ds = inline_ctx.load("hdf5", path=path, sig_dims=1, nav_shape=(24, 5))
    check_dataset(inline_ctx, ds, data.reshape(24, 5, 6), rng=rng)


@pytest.mark.parametrize("offset", [5, -4])
@pytest.mark.parametrize("chunks", [None, (3, *SIG)])
def test_sync_offset(tmp_path, inline_ctx, rng, offset, chunks):
    data = random_data(rng, (30, *SIG), "uint16")
    path = write_h5(tmp_path / "s.h5", data, chunks=chunks)
    ds = inline_ctx.load("hdf5", path=path, nav_shape=(5, 6), sync_offset=offset)
    expected = np.zeros((30, *SIG), data.dtype)
    if offset > 0:
        expected[: 30 - offset] = data[offset:]
    else:
        expected[-offset:] = data[:offset]
    check_dataset(inline_ctx, ds, expected.reshape(5, 6, *SIG), rng=rng)
    if chunks is not None:
        with config.set(partition_bytes=4 * ds.frame_bytes):
            for p in ds.get_partitions()[1:]:
                assert (p.start + offset) % 3 == 0, (p, offset)


def test_picks_largest_dataset_and_ds_path(tmp_path, inline_ctx, rng):
    big = random_data(rng, (6, *SIG), "uint8")
    small = random_data(rng, (2, 3, 4, 5), "float64")  # fewer bytes than big
    path = write_h5(
        tmp_path / "m.h5", big, ds_path="/a/big", extra={"/b/small": small, "/text": b"x"}
    )
    assert inline_ctx.load("hdf5", path=path).meta["ds_path"] == "/a/big"
    ds = inline_ctx.load("hdf5", path=path, ds_path="/b/small")
    check_dataset(inline_ctx, ds, small, rng=rng)


def test_pickles_and_partitions_align(tmp_path, rng):
    data = random_data(rng, (9, 11, *SIG), "uint16")
    path = write_h5(tmp_path / "c.h5", data, chunks=(1, 4, *SIG), compression="gzip")
    ds = H5DataSet(path).initialize()
    clone = pickle.loads(pickle.dumps(ds))
    with config.set(partition_bytes=6 * ds.frame_bytes):
        parts = clone.get_partitions()
    assert parts[0].start == 0 and parts[-1].stop == 99 and len(parts) > 5
    for a, b in itertools.pairwise(parts):
        assert a.stop == b.start
        assert b.start % 11 in (0, 4, 8), b  # a chunk boundary along the scan row
    with clone.get_reader() as reader:
        out = np.empty((7, *SIG), "uint16")
        reader.read_into(out, 20, 27)
    np.testing.assert_array_equal(out, data.reshape(99, *SIG)[20:27])


# --- geometry helpers ----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    nav=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    data=st.data(),
)
def test_nav_blocks_cover_range(nav, data):
    total = int(np.prod(nav))
    start = data.draw(st.integers(0, total))
    stop = data.draw(st.integers(start, total))
    flat = np.arange(total).reshape(nav)
    got = []
    for ranges, offset in nav_blocks(nav, start, stop):
        block = flat[tuple(slice(lo, hi) for lo, hi in ranges)].reshape(-1)
        assert offset == len(got)
        got.extend(block.tolist())
    assert got == list(range(start, stop))


@settings(max_examples=60, deadline=None)
@given(
    nav=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    chunk=st.lists(st.integers(1, 9), min_size=3, max_size=3),
    per=st.integers(1, 40),
    offset=st.integers(-20, 20),
)
def test_aligned_partitions(nav, chunk, per, offset):
    chunk = chunk[: len(nav)]
    total = int(np.prod(nav))
    snap = chunk_snapper(nav, chunk)
    parts = aligned_partitions(total, per, offset, snap)
    assert parts[0].start == 0 and parts[-1].stop == total
    grid = np.arange(total).reshape(nav)
    ids = np.zeros(total, int)
    for idx in np.ndindex(*nav):
        ids[grid[idx]] = hash(
            tuple(i // min(c, n) for i, c, n in zip(idx, chunk, nav, strict=True))
        )
    for a, b in itertools.pairwise(parts):
        assert a.stop == b.start and a.start < a.stop
        s = b.start + offset  # source frame of the boundary
        if 0 < s < total:
            assert ids[s - 1] != ids[s], (nav, chunk, s)


# --- bad files -----------------------------------------------------------------------------------


def test_missing_file_and_not_hdf5(tmp_path, inline_ctx):
    with pytest.raises(MissingFileError, match="nope.h5"):
        inline_ctx.load("hdf5", path=tmp_path / "nope.h5")
    fake = tmp_path / "fake.h5"
    fake.write_bytes(b"not hdf5 at all" * 100)
    with pytest.raises(FileFormatError, match="fake.h5.*not an HDF5"):
        inline_ctx.load("auto", path=fake)


def test_missing_ds_path_lists_datasets(tmp_path, inline_ctx, rng):
    path = write_h5(tmp_path / "p.h5", random_data(rng, (3, *SIG), "uint16"))
    with pytest.raises(DataSetError, match=r"no dataset at '/entry/wrong'.*/entry/data/data"):
        inline_ctx.load("hdf5", path=path, ds_path="/entry/wrong")
    with pytest.raises(DataSetError, match="is a group"):
        inline_ctx.load("hdf5", path=path, ds_path="/entry")
    flat = write_h5(tmp_path / "flat.h5", random_data(rng, (13, 17), "uint16"))
    with pytest.raises(DataSetError, match=r"no dataset with 2 frame axes.*\(13, 17\)"):
        inline_ctx.load("hdf5", path=flat)


@pytest.mark.parametrize("chunks", [None, (1, *SIG)])
def test_truncated(tmp_path, inline_ctx, rng, chunks):
    path = write_h5(tmp_path / "t.h5", random_data(rng, (20, *SIG), "uint16"), chunks=chunks)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 3 * SIG[0] * SIG[1])
    with pytest.raises(FileFormatError, match="t.h5"):
        inline_ctx.load("hdf5", path=path)


def _corrupt_chunk(path: str, index: tuple[int, ...]) -> None:
    with h5py.File(path, "r") as f:
        info = f["/entry/data/data"].id.get_chunk_info_by_coord(index)
    with open(path, "r+b") as f:
        f.seek(info.byte_offset)
        f.write(b"\xff" * min(info.size, 64))


@pytest.mark.parametrize("compression", ["bslz4", "gzip"])
def test_corrupt_chunk(tmp_path, inline_ctx, rng, compression):
    data = random_data(rng, (6, 4, *SIG), "uint16")
    path = write_h5(tmp_path / "z.h5", data, chunks=(1, 1, *SIG), compression=compression)
    _corrupt_chunk(path, (3, 2, 0, 0))
    ds = inline_ctx.load("hdf5", path=path)  # the first chunk is fine
    with pytest.raises(
        FileFormatError, match=r"z.h5: dataset /entry/data/data: chunk \(3, 2, 0, 0\)"
    ):
        inline_ctx.run_udf(dataset=ds, udf=_sum_udf())
    _corrupt_chunk(path, (0, 0, 0, 0))
    with pytest.raises(FileFormatError, match=r"chunk \(0, 0, 0, 0\)"):
        inline_ctx.load("hdf5", path=path)


def test_corrupt_bitshuffle_header_is_an_error_not_a_crash(tmp_path, inline_ctx, rng):
    """A chunk whose bitshuffle header lies about its size crashed the HDF5 filter (found by
    fuzzing); it is checked before HDF5 decodes it."""
    data = random_data(rng, (4, 3, 5, 6), "uint16")
    path = write_h5(tmp_path / "h.h5", data, chunks=(1, 2, 5, 6), compression="bslz4")
    with h5py.File(path, "r") as f:
        info = f["/entry/data/data"].id.get_chunk_info_by_coord((1, 0, 0, 0))
    with open(path, "r+b") as f:
        f.seek(info.byte_offset + 5)
        f.write(b"\x66")
    ds = inline_ctx.load("hdf5", path=path)
    with pytest.raises(FileFormatError, match=r"chunk \(1, 0, 0, 0\) is corrupt: header says"):
        inline_ctx.run_udf(dataset=ds, udf=_sum_udf())


def _sum_udf():
    from tests.io.contract import SumPartialUDF

    return SumPartialUDF()


def _mutations():
    return st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), min_size=1, max_size=8)


@pytest.fixture(scope="module")
def fuzz_source(tmp_path_factory):
    rng = np.random.default_rng(7)
    directory = tmp_path_factory.mktemp("fuzz")
    data = random_data(rng, (4, 3, 5, 6), "uint16")
    plain = write_h5(directory / "plain.h5", data, chunks=(1, 1, 5, 6))
    packed = write_h5(directory / "packed.h5", data, chunks=(1, 2, 5, 6), compression="bslz4")
    contiguous = write_h5(directory / "contiguous.h5", data)
    return {
        name: Path(path).read_bytes()
        for name, path in [("plain", plain), ("packed", packed), ("contiguous", contiguous)]
    }


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    which=st.sampled_from(["plain", "packed", "contiguous"]),
    mutations=_mutations(),
    cut=st.booleans(),
)
def test_fuzz_mutated_files_raise_library_errors(tmp_path, fuzz_source, which, mutations, cut):
    """Mutated headers and metadata (and truncation) only ever raise the library's errors."""
    raw = bytearray(fuzz_source[which])
    for pos, value in mutations:  # anywhere: superblock, object headers, chunk index, chunks
        raw[pos % len(raw)] = value
    if cut:
        raw = raw[: len(raw) - 1 - mutations[0][0] % 2000]
    path = tmp_path / f"{which}.h5"
    path.write_bytes(bytes(raw))
    from libertem_gpu import Context

    ctx = Context("inline")
    try:
        ds = ctx.load("hdf5", path=path)
        ctx.run_udf(dataset=ds, udf=_sum_udf())
    except LiberTEMGPUError:
        pass
    finally:
        ctx.close()


def test_import_does_not_pull_h5py():
    code = (
        "import sys, libertem_gpu, libertem_gpu.io.formats.hdf5, libertem_gpu.io.formats.arina, "
        "libertem_gpu.io.formats.zarr_store; "
        "bad = [m for m in ('h5py', 'hdf5plugin', 'zarr', 'numba') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_shared_bad_files(tmp_path, ctx, rng):
    (tmp_path / "good").mkdir()
    path = write_h5(tmp_path / "good" / "scan.h5", random_data(rng, (3, 4, *SIG), "uint16"))
    check_bad_files(ctx, "hdf5", path)


def test_guess_can_open_contract(tmp_path, rng):
    # Its own extensions are claimed by name (load("auto") then says "not an HDF5 file").
    path = write_h5(tmp_path / "scan.h5", random_data(rng, (3, 4, *SIG), "uint16"))
    h5_names = H5DataSet.extensions
    check_guess_can_open(H5DataSet, [path], tmp_path, by_extension=h5_names)


# --- what the header claims against what is stored ---------------------------------------------


def test_unwritten_chunks_and_data_are_refused(tmp_path, rng):
    # Unwritten chunks read as the fill value: a dataset declaring far more than the file
    # holds is refused at load, before anything is sized by its shape.
    path = tmp_path / "claims.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("big", shape=(64, 2**20, 6, 5), chunks=(1, 64, 6, 5), dtype="u2")
        d[0, :64] = random_data(rng, (64, 6, 5), "uint16")
        f.create_dataset("empty", shape=(4, 4, 6, 5), dtype="u2")  # contiguous, never written
    with pytest.raises(FileFormatError, match=r"claims\.h5:big.*only 1 chunks"):
        H5DataSet(str(path), ds_path="big").initialize()
    with pytest.raises(FileFormatError, match=r"claims\.h5: dataset empty.*only 0 bytes"):
        H5DataSet(str(path), ds_path="empty").initialize()
