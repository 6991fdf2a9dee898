"""ctx.export_dataset to a .toml path: sparse frames (raw_csr) that read back as the data set,
with crops, binning and sync offsets; refused compression and overwrites; interrupted exports
leave nothing."""

from __future__ import annotations

import os

import numpy as np
import pytest

from libertem_gpu.errors import DataSetError
from libertem_gpu.export import export_dataset
from tests.conftest import random_data
from tests.io.contract import check_dataset

FILES = ["x.toml", "x_data.raw", "x_indices.raw", "x_indptr.raw"]


def sparse(rng, shape, dtype):
    """Random values where about one pixel in ten is hit, zero elsewhere."""
    values = random_data(rng, shape, dtype)
    return np.where(rng.random(shape) < 0.1, values, np.zeros((), values.dtype))


@pytest.mark.parametrize("dtype", ["uint8", "uint16", ">u4", "int16", "float32", "float64"])
def test_round_trip(ctx, rng, tmp_path, dtype):
    data = sparse(rng, (3, 5, 6, 7), dtype.replace(">", "<"))
    raw = tmp_path / "in.raw"
    data.astype(dtype).tofile(raw)
    ds = ctx.load("raw", path=raw, nav_shape=(3, 5), sig_shape=(6, 7), dtype=dtype)
    out = tmp_path / "x.toml"
    assert ctx.export_dataset(ds, path=out) == str(out)
    assert sorted(os.listdir(tmp_path)) == sorted(["in.raw", *FILES])
    back = ctx.load("auto", path=out)
    check_dataset(ctx, back, data, dtype=np.dtype(dtype).newbyteorder("="))
    nonzero = np.count_nonzero(data)
    assert os.path.getsize(tmp_path / "x_indices.raw") == 4 * nonzero


def test_crops_binning_and_offsets(inline_ctx, rng, tmp_path):
    data = sparse(rng, (4, 6, 8, 9), "uint16")
    ds = inline_ctx.load("memory", data=data, sync_offset=2, num_partitions=3)
    out = export_dataset(
        ds, tmp_path / "x.toml", crop_nav=[(1, 4), None], crop_sig=[None, (0, 8)], bin_sig=2
    )
    flat = np.zeros((24, 8, 9), np.uint16)
    flat[:22] = data.reshape(24, 8, 9)[2:]
    box = flat.reshape(4, 6, 8, 9)[1:4, :, :, :8]
    want = box.reshape(3, 6, 4, 2, 4, 2).sum(axis=(3, 5))
    check_dataset(inline_ctx, inline_ctx.load("raw_csr", path=out), want)
    out = export_dataset(ds, tmp_path / "y.toml", bin_nav=2)
    want = flat.reshape(2, 2, 3, 2, 8, 9).sum(axis=(1, 3), dtype=np.uint32)
    check_dataset(inline_ctx, inline_ctx.load("raw_csr", path=out), want)


def test_refusals_keep_what_exists(inline_ctx, rng, tmp_path):
    ds = inline_ctx.load("memory", data=sparse(rng, (2, 2, 3, 3), "uint8"))
    with pytest.raises(DataSetError, match=r"\.toml output cannot be compressed"):
        export_dataset(ds, tmp_path / "x.toml", compression="gzip")
    (tmp_path / "x_data.raw").write_bytes(b"keep")
    with pytest.raises(DataSetError, match=r"x_data\.raw exists.*overwrite=True"):
        export_dataset(ds, tmp_path / "x.toml")
    assert (tmp_path / "x_data.raw").read_bytes() == b"keep"
    assert os.listdir(tmp_path) == ["x_data.raw"]
    export_dataset(ds, tmp_path / "x.toml", overwrite=True)
    assert sorted(os.listdir(tmp_path)) == FILES


def test_interrupted_export_leaves_nothing(inline_ctx, rng, tmp_path):
    data = sparse(rng, (4, 4, 3, 3), "uint8")
    ds = inline_ctx.load("memory", data=data, num_partitions=4)

    def stop(done, total):
        if done >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_dataset(ds, tmp_path / "x.toml", progress=stop)
    assert os.listdir(tmp_path) == []


def test_the_toml_file_appears_last(inline_ctx, rng, tmp_path, monkeypatch):
    """A TOML file only ever names complete files: it is renamed into place after them."""
    import libertem_gpu.outputs as outputs

    renamed = []
    real = os.replace

    def spy(src, dst):
        renamed.append(os.path.basename(dst))
        real(src, dst)

    monkeypatch.setattr(outputs.os, "replace", spy)
    ds = inline_ctx.load("memory", data=sparse(rng, (2, 3, 4, 4), "uint16"))
    export_dataset(ds, tmp_path / "x.toml")
    assert renamed[-1] == "x.toml" and sorted(renamed) == FILES
