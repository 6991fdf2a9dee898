"""DECTRIS ARINA acquisitions: master file plus bitshuffle/LZ4 data files, against NumPy."""

from __future__ import annotations

import os
import pickle

import h5py
import numpy as np
import pytest

from libertem_gpu import config
from libertem_gpu.errors import FileFormatError, MissingFileError
from libertem_gpu.io.formats.arina import ArinaDataSet
from libertem_gpu.io.formats.hdf5 import H5DataSet
from tests.conftest import random_data
from tests.io.builtin_analyses import check_builtin_analyses
from tests.io.contract import SumPartialUDF, check_bad_files, check_dataset, check_guess_can_open
from tests.io.writers_hdf5 import write_arina

SIG = (13, 17)


@pytest.mark.parametrize("compress", [True, False])
def test_contract_square_scan(tmp_path, ctx, rng, compress):
    frames = random_data(rng, (36, *SIG), "uint16")
    master = write_arina(tmp_path, frames, frames_per_file=7, compress=compress)
    ds = ctx.load("auto", path=master)
    assert isinstance(ds, ArinaDataSet)
    assert ds.meta["frames_per_file"] == [7, 7, 7, 7, 7, 1]
    assert ds.meta["direct_io"] is (not compress)
    check_dataset(ctx, ds, frames.reshape(6, 6, *SIG), dtype="uint16", rng=rng)


def test_nav_shape_sync_offset_and_analyses(tmp_path, inline_ctx, rng):
    frames = random_data(rng, (30, *SIG), "uint32")
    master = write_arina(tmp_path, frames, frames_per_file=4)
    ds = inline_ctx.load("arina", path=master)
    assert ds.nav_shape == (30,)  # not a square number of frames
    ds = inline_ctx.load("arina", path=master, nav_shape=(3, 9), sync_offset=3)
    check_dataset(inline_ctx, ds, frames[3:].reshape(3, 9, *SIG), rng=rng)
    ds = inline_ctx.load("arina", path=master, nav_shape=(5, 6))
    assert "SumUDF" in check_builtin_analyses(inline_ctx, ds, frames.reshape(5, 6, *SIG))
    clone = pickle.loads(pickle.dumps(ds))
    with config.set(partition_bytes=5 * ds.frame_bytes):
        parts = clone.get_partitions()
    assert len(parts) == 6 and parts[-1].stop == 30


def test_master_opened_as_plain_hdf5(tmp_path, inline_ctx, rng):
    frames = random_data(rng, (8, *SIG), "uint16")
    master = write_arina(tmp_path, frames, frames_per_file=8)
    ds = inline_ctx.load("hdf5", path=master, ds_path="/entry/data/data_000001")
    assert isinstance(ds, H5DataSet)
    check_dataset(inline_ctx, ds, frames, rng=rng)


def test_missing_data_file_is_named(tmp_path, inline_ctx, rng):
    master = write_arina(tmp_path, random_data(rng, (20, *SIG), "uint16"), frames_per_file=6)
    os.remove(tmp_path / "scan_data_000003.h5")
    with pytest.raises(MissingFileError, match=r"scan_data_000003\.h5"):
        inline_ctx.load("auto", path=master)


def test_truncated_and_corrupt_data_files(tmp_path, inline_ctx, rng):
    frames = random_data(rng, (20, *SIG), "uint16")
    master = write_arina(tmp_path, frames, frames_per_file=6)
    second = tmp_path / "scan_data_000002.h5"
    with h5py.File(second, "r") as f:
        info = f["/entry/data/data"].id.get_chunk_info_by_coord((4, 0, 0))
    with open(second, "r+b") as f:  # the first block's compressed size now runs past the chunk
        f.seek(info.byte_offset + 12)
        f.write(b"\x7f\xff\xff\xff")
    ds = inline_ctx.load("arina", path=master)  # first frames of every file decode
    with pytest.raises(FileFormatError, match=r"scan_data_000002\.h5.*chunk \(4, 0, 0\)"):
        inline_ctx.run_udf(dataset=ds, udf=SumPartialUDF())
    with open(second, "r+b") as f:
        f.truncate(os.path.getsize(second) // 2)
    with pytest.raises(FileFormatError, match=r"scan_data_000002\.h5"):
        inline_ctx.load("arina", path=master)


def test_not_a_master_file(tmp_path, inline_ctx, rng):
    path = tmp_path / "x_master.h5"
    with h5py.File(path, "w") as f:
        f["entry/data/other"] = random_data(rng, (3, 4, 5), "uint16")
    with pytest.raises(FileFormatError, match="x_master.h5.*data_NNNNNN"):
        inline_ctx.load("arina", path=path)
    with h5py.File(path, "w") as f:
        f["stuff"] = np.arange(3)
    with pytest.raises(FileFormatError, match="no /entry/data group"):
        inline_ctx.load("auto", path=path)


def test_shared_bad_files(ctx, rng, tmp_path):
    frames = random_data(rng, (16, *SIG), "uint16")
    (tmp_path / "good").mkdir()
    master = write_arina(tmp_path / "good", frames, frames_per_file=7, compress=False)
    data_file = sorted((tmp_path / "good").glob("*_data_*.h5"))[1]
    check_bad_files(ctx, "arina", master, data_file)


def test_guess_can_open_contract(rng, tmp_path):
    frames = random_data(rng, (16, *SIG), "uint16")
    (tmp_path / "good").mkdir()
    master = write_arina(tmp_path / "good", frames, frames_per_file=7)
    check_guess_can_open(ArinaDataSet, [master], tmp_path)


def test_metadata_that_could_hang_is_not_read(tmp_path, rng):
    # Found by the fuzz campaign: a damaged heap reference of a variable-length string, or a
    # "scalar" with a huge shape, made loading take minutes for a value that is metadata only.
    frames = random_data(rng, (4, *SIG), "uint16")
    master = write_arina(tmp_path, frames, frames_per_file=4)
    with h5py.File(master, "a") as m:
        spec = m["entry/instrument/detector/detectorSpecific"]
        del spec["ntrigger"]
        spec.create_dataset("ntrigger", shape=(10**6,), dtype="u4")  # never written
        m["entry/instrument/detector/description"][...] = "vlen"  # h5py: a vlen string
    ds = ArinaDataSet(master).initialize()
    assert "ntrigger" not in ds.meta and "description" not in ds.meta
    assert ds.meta["nimages"] == 4
