"""Zarr stores (v2, v3, sharded, HyperSpy .zspy) against NumPy, and bad stores."""

from __future__ import annotations

import itertools
import json
import os
import pickle
from pathlib import Path

import pytest
import zarr

from libertem_gpu import config
from libertem_gpu.errors import DataSetError, FileFormatError, MissingFileError
from libertem_gpu.io.formats.zarr_store import ZarrDataSet
from tests.conftest import random_data
from tests.io.builtin_analyses import check_builtin_analyses
from tests.io.contract import SumPartialUDF, check_bad_files, check_dataset, check_guess_can_open

SIG = (13, 17)

# (zarr format, scan shape, chunks, shards)
LAYOUTS = {
    "v2-frames": (2, (5, 7), (1, 1, *SIG), None),
    "v2-rows": (2, (5, 7), (1, 3, *SIG), None),
    "v3-blocks": (3, (5, 7), (2, 5, 7, 17), None),
    "v3-sharded": (3, (5, 7), (1, 1, *SIG), (1, 7, *SIG)),
    "v3-1d": (3, (23,), (4, *SIG), None),
    "v2-3d": (2, (2, 3, 4), (1, 2, 4, *SIG), None),
}


def write_zarr(path, data, zarr_format, chunks, shards=None, name=None):
    kwargs = {"shards": shards} if shards else {}
    if name is None:
        array = zarr.create_array(
            store=str(path),
            shape=data.shape,
            dtype=data.dtype,
            chunks=chunks,
            zarr_format=zarr_format,
            overwrite=True,
            **kwargs,
        )
    else:
        group = zarr.open_group(str(path), mode="a", zarr_format=zarr_format)
        array = group.create_array(
            name, shape=data.shape, dtype=data.dtype, chunks=chunks, **kwargs
        )
    array[...] = data
    return str(path)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_contract(tmp_path, ctx, rng, layout):
    fmt, nav, chunks, shards = LAYOUTS[layout]
    data = random_data(rng, (*nav, *SIG), "uint16")
    path = write_zarr(tmp_path / "scan.zarr", data, fmt, chunks, shards)
    ds = ctx.load("auto", path=path)
    assert isinstance(ds, ZarrDataSet) and ds.meta["zarr_format"] == fmt
    check_dataset(ctx, ds, data, dtype="uint16", rng=rng)


def test_partitions_align_to_chunks_and_shards(tmp_path, rng):
    data = random_data(rng, (9, 11, *SIG), "float32")
    path = write_zarr(tmp_path / "s.zarr", data, 3, (1, 1, *SIG), (1, 4, *SIG))
    ds = pickle.loads(pickle.dumps(ZarrDataSet(path, sync_offset=2).initialize()))
    with config.set(partition_bytes=5 * ds.frame_bytes):
        parts = ds.get_partitions()
    assert len(parts) > 5 and parts[-1].stop == 99
    for a, b in itertools.pairwise(parts):
        assert a.stop == b.start and (b.start + 2) % 11 in (0, 4, 8), b


def test_zspy_group_and_ds_path(tmp_path, inline_ctx, rng):
    data = random_data(rng, (4, 6, *SIG), ">i4")
    path = tmp_path / "sample.zspy"
    write_zarr(path, data, 2, (2, 2, *SIG), name="Experiments/__unnamed__/data")
    write_zarr(path, data[0, 0], 2, SIG, name="Experiments/__unnamed__/small")
    ds = inline_ctx.load("auto", path=path)
    assert ds.meta["ds_path"] == "Experiments/__unnamed__/data"
    check_dataset(inline_ctx, ds, data.astype("int32"), rng=rng)
    assert "SumUDF" in check_builtin_analyses(inline_ctx, ds, data)
    ds = inline_ctx.load(
        "zarr", path=path, ds_path="/Experiments/__unnamed__/data", nav_shape=(24,)
    )
    check_dataset(inline_ctx, ds, data.reshape(24, *SIG), rng=rng)
    with pytest.raises(DataSetError, match=r"no array at 'nope'.*__unnamed__/data"):
        inline_ctx.load("zarr", path=path, ds_path="nope")
    with pytest.raises(DataSetError, match="is a group"):
        inline_ctx.load("zarr", path=path, ds_path="Experiments")


def test_bad_stores(tmp_path, inline_ctx, rng):
    with pytest.raises(MissingFileError, match="gone.zarr"):
        inline_ctx.load("zarr", path=tmp_path / "gone.zarr")
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    with pytest.raises(FileFormatError, match="empty.zarr: not a Zarr store"):
        inline_ctx.load("zarr", path=empty)
    data = random_data(rng, (6, 4, *SIG), "uint16")
    path = write_zarr(tmp_path / "b.zarr", data, 3, (1, 1, *SIG))
    meta = os.path.join(path, "zarr.json")
    good = open(meta, "rb").read()
    with open(meta, "wb") as f:
        f.write(good[: len(good) // 2])
    with pytest.raises(FileFormatError, match="zarr.json: Zarr metadata is not valid JSON"):
        inline_ctx.load("zarr", path=path)
    with open(meta, "wb") as f:
        f.write(good)
    chunk = os.path.join(path, "c", "3", "2", "0", "0")
    with open(chunk, "r+b") as f:
        f.truncate(10)
    ds = inline_ctx.load("zarr", path=path)
    with pytest.raises(FileFormatError, match=r"b.zarr: array /: chunk \(3, 2, 0, 0\)"):
        inline_ctx.run_udf(dataset=ds, udf=SumPartialUDF())


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_fuzz_mutated_metadata_raise_library_errors(tmp_path_factory, zarr_format):
    """Random byte mutations of the store's metadata: loading and reading either works or
    raises one of the library's own errors, never anything else."""
    import shutil

    import numpy as np
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from libertem_gpu import Context
    from libertem_gpu.errors import LiberTEMGPUError
    from tests.io.contract import CollectFramesUDF

    base = tmp_path_factory.mktemp("zarr-fuzz")
    data = np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 3, 4, 5)
    original = base / "orig.zarr"
    write_zarr(original, data, zarr_format, (1, 1, 4, 5))
    meta_name = ".zarray" if zarr_format == 2 else "zarr.json"
    meta = (original / meta_name).read_bytes()
    ctx = Context("inline")
    outcomes = {"loaded": 0, "refused": 0}

    @settings(max_examples=60, suppress_health_check=list(HealthCheck))
    @given(
        edits=st.lists(
            st.tuples(st.integers(0, len(meta) - 1), st.integers(0, 255)), min_size=1, max_size=4
        ),
        cut=st.integers(0, len(meta)),
    )
    def run(edits, cut):
        target = base / "mutated.zarr"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(original, target)
        mutated = bytearray(meta)
        for pos, value in edits:
            mutated[pos] = value
        (target / meta_name).write_bytes(bytes(mutated[: max(cut, 1)]))
        try:
            ds = ctx.load("zarr", path=str(target))
            ctx.run_udf(dataset=ds, udf=CollectFramesUDF())
            outcomes["loaded"] += 1
        except LiberTEMGPUError:
            outcomes["refused"] += 1

    run()
    assert outcomes["refused"] > 0  # the mutations did reach the parser


def test_shared_bad_files(tmp_path, ctx, rng):
    (tmp_path / "good").mkdir()
    data = random_data(rng, (3, 4, *SIG), "uint16")
    path = write_zarr(tmp_path / "good" / "scan.zarr", data, 3, (2, 2, *SIG))
    chunk = max((p for p in Path(path).rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    check_bad_files(ctx, "zarr", path, chunk, directory=True)


def test_guess_can_open_contract(tmp_path, rng):
    data = random_data(rng, (3, 4, *SIG), "uint16")
    path = write_zarr(tmp_path / "scan.zarr", data, 3, (2, 2, *SIG))
    check_guess_can_open(ZarrDataSet, [path], tmp_path)


# --- what the metadata claims against what is stored -------------------------------------------


def _claim(path, **changes):
    meta_file = Path(path) / "zarr.json"
    meta = json.loads(meta_file.read_text())
    for key, value in changes.items():
        if key == "chunk_shape":
            meta["chunk_grid"]["configuration"]["chunk_shape"] = value
        else:
            meta[key] = value
    meta_file.write_text(json.dumps(meta))


def test_metadata_claiming_more_than_is_stored_is_refused(tmp_path, rng):
    # A few hundred bytes of zarr.json must not make a run allocate gigabytes.
    path = write_zarr(
        tmp_path / "big.zarr", random_data(rng, (4, 8, 6, 5), "uint16"), 3, (1, 8, 6, 5)
    )
    _claim(path, shape=[4, 2**31, 6, 5])
    with pytest.raises(FileFormatError, match=r"big\.zarr.*2147483648.*only 4 chunks"):
        ZarrDataSet(path).initialize()
    _claim(path, chunk_shape=[4, 2**31, 6, 5])  # one chunk "holds" it all: implausible
    with pytest.raises(FileFormatError, match=r"big\.zarr.*not plausible"):
        ZarrDataSet(path).initialize()


def test_missing_chunks_warn(tmp_path, rng):
    path = write_zarr(
        tmp_path / "sparse.zarr", random_data(rng, (4, 3, 6, 5), "uint16"), 3, (1, 3, 6, 5)
    )
    chunk = next(p for p in sorted(Path(path).rglob("*")) if p.is_file() and p.name != "zarr.json")
    chunk.unlink()
    with pytest.warns(UserWarning, match=r"sparse\.zarr.*1 of 4 chunks are not stored"):
        ZarrDataSet(path).initialize()
