"""Cropping on export (``crop_nav``, ``crop_sig``, with ``bin_sig``): the file holds exactly
NumPy's slices of the data, for every output format, big-endian files, several partitions,
scan offsets and steps; only the box's frames are read; bad boxes are refused before writing."""

from __future__ import annotations

import os

import numpy as np
import pytest

from libertem_gpu.cropping import NavCrop, axis_slices, parse_crop
from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.io import host_tiles
from tests.conftest import random_data


def _read(path):
    if str(path).endswith(".npy"):
        return np.load(path)
    if str(path).endswith(".zarr"):
        import zarr

        return zarr.open_group(str(path), mode="r")["data"][...]
    import h5py

    with h5py.File(path, "r") as f:
        return f["data"][()]


@pytest.mark.parametrize("ext", [".npy", ".h5", ".zarr"])
@pytest.mark.parametrize(
    ("crop_nav", "crop_sig"),
    [
        ([(1, 4), (2, -1)], None),
        (None, [(1, 6), slice(2, None)]),
        ([slice(None, None, 2), (-3, None)], [(0, 5, 2), (-4, 7)]),
    ],
    ids=["nav", "sig", "steps"],
)
def test_crops_equal_numpy_slices(inline_ctx, rng, tmp_path, ext, crop_nav, crop_sig):
    pytest.importorskip({".h5": "h5py", ".zarr": "zarr"}.get(ext, "numpy"))
    data = random_data(rng, (5, 7, 6, 9), "<u2")
    (tmp_path / "in.raw").write_bytes(data.astype(">u2").tobytes())
    ds = inline_ctx.load(
        "raw",
        path=tmp_path / "in.raw",
        nav_shape=(5, 7),
        sig_shape=(6, 9),
        dtype=">u2",
        num_partitions=3,
    )
    out = tmp_path / f"c{ext}"
    inline_ctx.export_dataset(ds, out, crop_nav=crop_nav, crop_sig=crop_sig, chunk_bytes=200)
    nav = axis_slices(crop_nav or [None, None], (5, 7), "crop_nav")
    sig = axis_slices(crop_sig or [None, None], (6, 9), "crop_sig")
    np.testing.assert_array_equal(_read(out), data[nav][(slice(None), slice(None), *sig)])


def test_crop_then_bin(inline_ctx, rng, tmp_path):
    data = random_data(rng, (3, 4, 10, 11), np.uint16)
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    out = inline_ctx.export_dataset(
        ds, tmp_path / "b.npy", crop_nav=[None, (1, 3)], crop_sig=[(1, 9), (2, 10)], bin_sig=2
    )
    box = data[:, 1:3, 1:9, 2:10].astype(np.uint32)
    want = box.reshape(3, 2, 4, 2, 4, 2).sum(axis=(3, 5))
    back = np.load(out)
    assert back.dtype == np.uint32
    np.testing.assert_array_equal(back, want)


def test_crop_with_sync_offset(inline_ctx, rng, tmp_path):
    """Positions of the box without data are blank frames, as in a whole export."""
    data = random_data(rng, (4, 5, 3, 3), np.uint16)
    ds = inline_ctx.load("memory", data=data, sync_offset=3, num_partitions=3)
    back = np.load(inline_ctx.export_dataset(ds, tmp_path / "s.npy", crop_nav=[(2, 4), (1, 4)]))
    scan = np.zeros((20, 3, 3), np.uint16)
    scan[:17] = data.reshape(20, 3, 3)[3:]
    np.testing.assert_array_equal(back, scan.reshape(4, 5, 3, 3)[2:4, 1:4])


def test_only_the_box_is_read(inline_ctx, rng, tmp_path, monkeypatch):
    data = random_data(rng, (6, 8, 4, 4), np.uint16)
    np.save(tmp_path / "in.npy", data)
    ds = inline_ctx.load("npy", path=tmp_path / "in.npy", num_partitions=3)
    read = []
    real = host_tiles.HostStackReader.zero_copy_view

    def spy(self, start, stop, stored):
        read.extend(self.plan.frames[start:stop].tolist())
        return real(self, start, stop, stored)

    monkeypatch.setattr(host_tiles.HostStackReader, "zero_copy_view", spy)
    inline_ctx.export_dataset(ds, tmp_path / "c.npy", crop_nav=[(4, 6), (2, 5)])
    assert sorted(set(read)) == [r * 8 + c for r in (4, 5) for c in (2, 3, 4)]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(crop_nav=[(1, 3)]), "one entry per axis"),
        (dict(crop_nav=[(3, 3), None]), "keeps nothing"),
        (dict(crop_sig=[(0, 2, -1), None]), "step must be positive"),
        (dict(crop_sig=["a", None]), r"crop_sig\[0\]"),
        (dict(crop_sig=[(0.5, 2), None]), "whole numbers"),
        (dict(crop_sig=[(1, 3), None], bin_sig=3), "bin_sig"),
    ],
)
def test_bad_boxes_are_refused_before_writing(inline_ctx, rng, tmp_path, kw, match):
    ds = inline_ctx.load("memory", data=random_data(rng, (4, 5, 6, 7), np.uint8))
    with pytest.raises(InvalidParameterError, match=match):
        inline_ctx.export_dataset(ds, tmp_path / "x.npy", **kw)
    assert os.listdir(tmp_path) == []


def test_nav_crop_index_and_parse():
    crop = NavCrop((3, 4), [(1, 3), slice(None, None, 2)])
    assert crop.nav_shape == (2, 2)
    assert np.flatnonzero(crop.roi_flat).tolist() == [4, 6, 8, 10]
    assert crop.index[[4, 6, 8, 10]].tolist() == [0, 1, 2, 3]
    assert (crop.index[~crop.roi_flat] == -1).all()
    assert parse_crop("1:3, ::2") == ((1, 3, None), (None, None, 2))
    assert parse_crop("-4:") == ((-4, None, None),)
    for bad in ("1", "a:b", "1:2:3:4"):
        with pytest.raises(ValueError, match="expected"):
            parse_crop(bad)
