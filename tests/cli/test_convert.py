"""``libertem-gpu convert`` and ``ctx.export_dataset`` to chunked HDF5 and Zarr: every real file
in the shared data reloads frame-identical; compression; chunks of whole frames; atomic, and
nothing left behind when interrupted; no overwrite without --force."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from libertem_gpu import Context, PickUDF
from libertem_gpu.cli import main
from libertem_gpu.export import choose_chunks
from tests.conftest import random_data
from tests.data_files import require_data

REAL = ["blo/test2.blo", "mrc/Custom_movie.mrc", "tia/128x128x5-diffraction_preview.emi"]
REAL += ["tvips/test_tvips_2233_000.tvips", "mib/001_4x2_6bit.mib"]
REAL += [f"mib/Single_9_Frame_CounterDepth_{d}_Rows_256.mib" for d in (1, 6, 12, 24)]


def _frames(ctx, ds):
    """Every frame as stored, in scan order, through the UDF path (not the export's)."""
    return ctx.run_udf(dataset=ds, udf=PickUDF())["intensity"].raw_data


def _read_back(path):
    if path.suffix == ".zarr":
        import zarr

        array = zarr.open_group(str(path), mode="r")["data"]
        return array[...], array.chunks
    import h5py

    with h5py.File(path, "r") as f:
        return f["data"][()], f["data"].chunks


@pytest.mark.parametrize("name", REAL)
def test_real_files_reload_frame_identical(tmp_path, name):
    source = require_data(name)
    with Context("inline") as ctx:
        ds = ctx.load("auto", path=str(source))
        want = _frames(ctx, ds)
        for ext in (".h5", ".zarr"):
            out = tmp_path / f"copy{ext}"
            assert main(["convert", str(source), str(out), "--no-progress"]) == 0
            back, chunks = _read_back(out)
            assert back.shape == (*ds.nav_shape, *ds.sig_shape)
            assert back.dtype == ds.dtype
            np.testing.assert_array_equal(back.reshape(want.shape), want, err_msg=f"{name}{ext}")
            assert tuple(chunks[-len(ds.sig_shape) :]) == ds.sig_shape  # whole frames
            reloaded = ctx.load("auto", path=str(out))
            assert reloaded.nav_shape == ds.nav_shape
            np.testing.assert_array_equal(_frames(ctx, reloaded), want)


@pytest.mark.parametrize(
    ("ext", "compression"), [(".h5", "gzip"), (".h5", "lz4"), (".zarr", "zstd"), (".zarr", "lz4")]
)
def test_compressed_and_chunked(tmp_path, rng, ext, compression):
    data = random_data(rng, (5, 7, 6, 10), np.uint16) // 512  # compressible
    raw = tmp_path / "in.raw"
    data.tofile(raw)
    out = tmp_path / f"c{ext}"
    argv = ["convert", str(raw), str(out), "--nav-shape", "5,7", "--sig-shape", "6,10"]
    argv += ["--dtype", "uint16", "--compression", compression, "--chunk-size", "600"]
    assert main(argv) == 0
    back, chunks = _read_back(out)
    np.testing.assert_array_equal(back, data)
    assert tuple(chunks) == (1, 5, 6, 10)  # 600 bytes: 5 frames of 120, within a scan row
    if ext == ".h5":
        import h5py

        with h5py.File(out, "r") as f:
            assert f["data"].compression is not None or f["data"]._filters
    with Context("inline") as ctx:
        np.testing.assert_array_equal(
            _frames(ctx, ctx.load("auto", path=str(out))), data.reshape(35, 6, 10)
        )


def test_choose_chunks():
    assert choose_chunks((64, 64), (256, 256), 2) == (1, 32, 256, 256)
    assert choose_chunks((10, 3), (4, 4), 1, target=100) == (2, 3, 4, 4)
    assert choose_chunks((5,), (2048, 2048), 4) == (1, 2048, 2048)  # a frame over the target
    assert choose_chunks((2, 3, 4), (2, 2), 1, target=10**6) == (2, 3, 4, 2, 2)


def test_python_api_is_the_same(tmp_path, rng):
    data = random_data(rng, (4, 3, 5, 5), np.float32)
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=data, sync_offset=2, num_partitions=3)
        out = ctx.export_dataset(ds, tmp_path / "x.zarr", compression="gzip", chunk_bytes=200)
        back, _ = _read_back(Path(out))
    flat = np.zeros((12, 5, 5), np.float32)
    flat[:10] = data.reshape(12, 5, 5)[2:]  # positions without data: blank frames
    np.testing.assert_array_equal(back.reshape(12, 5, 5), flat)


@pytest.mark.parametrize("ext", [".npy", ".h5", ".zarr"])
def test_binned_export(tmp_path, rng, ext):
    """Blocks of 2 x 3 pixels summed (uint16 -> uint32), the edge pixels that fill no block
    left out with a warning; positions without data stay blank; the file reloads."""
    data = random_data(rng, (4, 3, 13, 17), np.uint16)
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=data, sync_offset=1, num_partitions=3)
        with pytest.warns(UserWarning, match=r"leaves out the last \(1, 2\) pixels"):
            out = ctx.export_dataset(ds, tmp_path / f"b{ext}", bin_sig=(2, 3), chunk_bytes=300)
    back = np.load(out) if ext == ".npy" else _read_back(Path(out))[0]
    frames = np.zeros((12, 13, 17), np.uint16)
    frames[:11] = data.reshape(12, 13, 17)[1:]
    want = frames[:, :12, :15].reshape(12, 6, 2, 5, 3).sum(axis=(2, 4), dtype=np.uint64)
    assert back.dtype == np.uint32 and back.shape == (4, 3, 6, 5)
    np.testing.assert_array_equal(back.reshape(12, 6, 5), want)


def test_convert_bin_sig_on_the_command_line(tmp_path, rng, capsys):
    data = random_data(rng, (2, 3, 8, 8), np.uint8)
    np.save(tmp_path / "in.npy", data)
    out = tmp_path / "b.h5"
    assert main(["convert", str(tmp_path / "in.npy"), str(out), "--bin-sig", "4"]) == 0
    assert "binned by 4" in capsys.readouterr().out
    back, chunks = _read_back(out)
    want = data.reshape(2, 3, 2, 4, 2, 4).sum(axis=(3, 5))
    assert back.dtype == np.uint16 and tuple(chunks[-2:]) == (2, 2)
    np.testing.assert_array_equal(back, want)
    bad = tmp_path / "bad.h5"
    assert main(["convert", str(tmp_path / "in.npy"), str(bad), "--bin-sig", "3,9"]) == 1
    assert "bin_sig" in capsys.readouterr().err
    assert not bad.exists()
    with pytest.raises(SystemExit):  # argparse: not numbers
        main(["convert", str(tmp_path / "in.npy"), str(bad), "--bin-sig", "two"])


def test_convert_crops_on_the_command_line(tmp_path, rng, capsys):
    data = random_data(rng, (6, 7, 9, 10), np.uint16)
    np.save(tmp_path / "in.npy", data)
    out = tmp_path / "c.zarr"
    argv = ["convert", str(tmp_path / "in.npy"), str(out), "--crop-nav", "1:5,::3"]
    assert main([*argv, "--crop-sig", "2:-1,:8", "--bin-sig", "2", "--no-progress"]) == 0
    assert "12 frames cropped, binned by 2" in capsys.readouterr().out
    back, _ = _read_back(out)
    box = data[1:5, ::3, 2:8, :8].astype(np.uint32)
    np.testing.assert_array_equal(back, box.reshape(4, 3, 3, 2, 4, 2).sum(axis=(3, 5)))
    bad = tmp_path / "bad.h5"
    assert main(["convert", str(tmp_path / "in.npy"), str(bad), "--crop-nav", "7:9,:"]) == 1
    assert "crop_nav[0]" in capsys.readouterr().err
    assert not bad.exists()
    with pytest.raises(SystemExit):  # argparse: not start:stop
        main(["convert", str(tmp_path / "in.npy"), str(bad), "--crop-sig", "3"])


@pytest.mark.parametrize("ext", [".h5", ".zarr"])
def test_convert_bins_the_scan_on_the_command_line(tmp_path, rng, capsys, ext):
    data = random_data(rng, (6, 8, 5, 5), np.uint8)
    np.save(tmp_path / "in.npy", data)
    out = tmp_path / f"n{ext}"
    argv = [
        "convert",
        str(tmp_path / "in.npy"),
        str(out),
        "--bin-nav",
        "3,2",
        "--chunk-size",
        "200",
    ]
    assert main([*argv, "--no-progress"]) == 0
    assert "scan binned by (3, 2)" in capsys.readouterr().out
    back, _ = _read_back(out)
    want = data.astype(np.uint16).reshape(2, 3, 4, 2, 5, 5).sum(axis=(1, 3))
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, want)


def test_refuses_to_overwrite_without_force(tmp_path, rng, capsys):
    np.save(tmp_path / "in.npy", random_data(rng, (2, 3, 4, 4), np.uint8))
    for name, make in (("x.h5", lambda p: p.write_bytes(b"keep")), ("x.zarr", os.mkdir)):
        out = tmp_path / name
        make(out)
        assert main(["convert", str(tmp_path / "in.npy"), str(out)]) == 1
        err = capsys.readouterr().err
        assert "exists" in err and "--force" in err and "overwrite=" not in err
        assert main(["convert", str(tmp_path / "in.npy"), str(out), "--force"]) == 0
        assert _read_back(out)[0].shape == (2, 3, 4, 4)
    assert sorted(os.listdir(tmp_path)) == ["in.npy", "x.h5", "x.zarr"]


@pytest.mark.parametrize("ext", [".h5", ".zarr"])
def test_interrupted_convert_leaves_nothing(tmp_path, rng, monkeypatch, capsys, ext):
    from libertem_gpu.export_chunked import ChunkWriter

    np.save(tmp_path / "in.npy", random_data(rng, (6, 5, 8, 8), np.uint16))
    flush = ChunkWriter._flush
    calls = []

    def interrupt_after_one(self):
        flush(self)
        calls.append(1)
        raise KeyboardInterrupt  # as Ctrl-C between two chunks

    monkeypatch.setattr(ChunkWriter, "_flush", interrupt_after_one)
    out = tmp_path / f"out{ext}"
    argv = ["convert", str(tmp_path / "in.npy"), str(out), "--chunk-size", "256"]
    assert main(argv) == 130
    assert calls == [1]
    assert "interrupted" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["in.npy"]


def test_missing_codec_is_named(tmp_path, rng, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "hdf5plugin", None)
    np.save(tmp_path / "in.npy", random_data(rng, (2, 2, 4, 4), np.uint8))
    argv = ["convert", str(tmp_path / "in.npy"), str(tmp_path / "o.h5"), "--compression", "zstd"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "hdf5plugin" in err and "pip install hdf5plugin" in err
    assert os.listdir(tmp_path) == ["in.npy"]


@pytest.mark.parametrize("depth", [1, 12])
def test_counting_data_to_sparse_frames(tmp_path, depth):
    """A Merlin file of counts (1 and 12 bits) to raw_csr: the same frames in a fraction of
    the bytes."""
    source = require_data(f"mib/Single_9_Frame_CounterDepth_{depth}_Rows_256.mib")
    out = tmp_path / "events.toml"
    assert main(["convert", str(source), str(out), "--no-progress"]) == 0
    with Context("inline") as ctx:
        want = _frames(ctx, ctx.load("auto", path=str(source)))
        back = ctx.load("auto", path=str(out))
        assert back.dtype == want.dtype
        np.testing.assert_array_equal(_frames(ctx, back), want)
    written = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert written < 0.6 * want.nbytes
