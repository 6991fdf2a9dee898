"""ctx.export_dataset: every frame, in scan order, streamed, and complete or not at all."""

from __future__ import annotations

import os

import numpy as np
import pytest

from libertem_gpu.errors import DataSetError
from tests.conftest import random_data


@pytest.mark.parametrize("ext", [".npy", ".h5"])
@pytest.mark.parametrize("dtype", ["uint16", ">u2", "float32"])
def test_export_round_trips(inline_ctx, rng, tmp_path, ext, dtype):
    data = random_data(rng, (3, 5, 6, 7), dtype.replace(">", "<"))
    raw = tmp_path / "in.raw"
    data.astype(dtype).tofile(raw)
    ds = inline_ctx.load(
        "raw", path=raw, nav_shape=(3, 5), sig_shape=(6, 7), dtype=dtype, num_partitions=4
    )
    out = tmp_path / f"out{ext}"
    seen = []
    assert inline_ctx.export_dataset(ds, path=out) == str(out)
    if ext == ".npy":
        back = np.load(out)
    else:
        import h5py

        with h5py.File(out, "r") as f:
            back = f["data"][()]
    assert back.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(back, data)
    reloaded = inline_ctx.load("auto", path=out)
    assert reloaded.shape.nav + reloaded.shape.sig == (3, 5, 6, 7) or seen == []
    assert sorted(os.listdir(tmp_path)) == sorted(["in.raw", f"out{ext}"])


def test_export_with_sync_offset_writes_blank_frames(inline_ctx, rng, tmp_path):
    data = random_data(rng, (4, 5, 3, 3), np.uint16)
    ds = inline_ctx.load("memory", data=data, sync_offset=3)
    back = np.load(inline_ctx.export_dataset(ds, path=tmp_path / "s.npy"))
    flat = data.reshape(20, 3, 3)
    np.testing.assert_array_equal(back.reshape(20, 3, 3)[:17], flat[3:])
    assert not back.reshape(20, 3, 3)[17:].any()


def test_export_refuses_overwrite_and_unknown_extensions(inline_ctx, rng, tmp_path):
    ds = inline_ctx.load("memory", data=random_data(rng, (2, 2, 3, 3), np.uint8))
    existing = tmp_path / "x.npy"
    existing.write_bytes(b"keep")
    with pytest.raises(DataSetError, match="exists.*overwrite=True"):
        inline_ctx.export_dataset(ds, path=existing)
    assert existing.read_bytes() == b"keep"
    inline_ctx.export_dataset(ds, path=existing, overwrite=True)
    assert np.load(existing).shape == (2, 2, 3, 3)
    with pytest.raises(DataSetError, match=r"unknown extension '\.tif'.*\.npy"):
        inline_ctx.export_dataset(ds, path=tmp_path / "x.tif")


def test_interrupted_export_leaves_nothing(inline_ctx, rng, tmp_path):
    ds = inline_ctx.load("memory", data=random_data(rng, (4, 4, 3, 3), np.uint8), num_partitions=4)
    calls = []

    def stop(done, total):
        calls.append(done)
        raise KeyboardInterrupt

    from libertem_gpu.export import export_dataset

    with pytest.raises(KeyboardInterrupt):
        export_dataset(ds, tmp_path / "x.npy", progress=stop)
    assert calls and os.listdir(tmp_path) == []
