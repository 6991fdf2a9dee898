"""A contract test kit for data sets: every format's tests call these checks with a data set and
the NumPy array its frames should equal.

Usage in a format's test module::

    from tests.io.contract import check_dataset

    def test_contract(tmp_path, ctx):
        expected = ...  # numpy array, nav + sig
        ds = ctx.load("myformat", path=write_my_file(tmp_path, expected))
        check_dataset(ctx, ds, expected)

    def test_bad_files(tmp_path, ctx):
        check_bad_files(ctx, "myformat", write_my_file(tmp_path / "good", expected))

    def test_guess_can_open(tmp_path):
        check_guess_can_open(MyDataSet, [write_my_file(tmp_path / "good", expected)], tmp_path)
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import mmap
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from libertem_gpu import UDF, Context, config
from libertem_gpu.errors import LiberTEMGPUError
from libertem_gpu.io.dataset import DataSet
from libertem_gpu.io.tiles import TilingScheme


class CollectFramesUDF(UDF):
    """Copies every frame into a nav buffer (for small test data only)."""

    def get_result_buffers(self):
        return {
            "frames": self.buffer(
                kind="nav", extra_shape=self.meta.dataset_shape.sig, dtype="float64"
            )
        }

    def process_tile(self, tile):
        self.results.frames[:] = tile


class SumPartialUDF(UDF):
    """Sum over frames, accepting partial frames (exercises row-split tiles)."""

    def get_result_buffers(self):
        return {"intensity": self.buffer(kind="sig", dtype="float64")}

    def get_tiling_preferences(self):
        return {"partial_frames": True}

    def process_tile(self, tile):
        self.results.intensity[:] += tile.sum(axis=0, dtype=np.float64)

    def merge(self, dest, src):
        dest.intensity[:] += src.intensity


def check_dataset(
    ctx: Context,
    ds: DataSet,
    expected: np.ndarray,
    dtype: np.dtype | str | None = None,
    rng: np.random.Generator | None = None,
) -> None:
    """Check shape, dtype, frame-by-frame equality (all frames, an roi, several partitions, tiles
    that do not divide the frame count, split frames) of ``ds`` against ``expected``."""
    rng = rng or np.random.default_rng(1)
    nav_ndim = len(ds.nav_shape)
    assert ds.nav_shape + ds.sig_shape == expected.shape, (ds.shape, expected.shape)
    if dtype is not None:
        assert ds.dtype == np.dtype(dtype).newbyteorder("="), (ds.dtype, dtype)
    ref = expected.astype(np.float64)
    # Positions without data (sync_offset past either end of the file) are never processed:
    # their frames read as NaN in the float64 frames result.
    source = np.arange(ds.shape.nav_size) + ds.sync_offset
    no_data = ((source < 0) | (source >= ds.image_count)).reshape(ds.nav_shape)
    ref[no_data] = np.nan

    frames = ctx.run_udf(dataset=ds, udf=CollectFramesUDF())["frames"].data
    np.testing.assert_array_equal(frames, ref)

    # Several partitions, of sizes that do not divide the frame count.
    with config.set(partition_bytes=3 * ds.frame_bytes):
        assert len(ds.get_partitions()) > 1 or ds.shape.nav_size <= 3
        frames = ctx.run_udf(dataset=ds, udf=CollectFramesUDF())["frames"].data
    np.testing.assert_array_equal(frames, ref)

    roi = rng.random(ds.nav_shape) > 0.4
    roi.flat[0] = True
    result = ctx.run_udf(dataset=ds, udf=CollectFramesUDF(), roi=roi, tiling=TilingScheme(depth=3))[
        "frames"
    ]
    np.testing.assert_array_equal(result.raw_data, ref[roi])
    assert np.isnan(result.data[~roi]).all()

    split = TilingScheme(depth=2, sig_rows=max(1, ds.sig_shape[0] // 3))
    total = ctx.run_udf(dataset=ds, udf=SumPartialUDF(), tiling=split)["intensity"].data
    np.testing.assert_allclose(total, np.nansum(ref, axis=tuple(range(nav_ndim))), rtol=1e-12)


# --- bad files ----------------------------------------------------------------------------------

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def _snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Size, modification time and digest of every file below ``folder``."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p)] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


@contextlib.contextmanager
def _no_writes_below(folder: Path) -> Iterator[None]:
    """Fail if anything opens a file below ``folder`` for writing (os.open, open, h5py)."""
    root = str(folder.resolve())
    writes: list[str] = []

    def below(path: Any) -> bool:
        try:
            return os.path.realpath(os.fspath(path)).startswith(root)
        except TypeError:  # a file descriptor
            return False

    real_os_open, real_open = os.open, builtins.open

    def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & _WRITE_FLAGS and below(path):
            writes.append(f"os.open({path!r}, {flags:#o})")
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(c in mode for c in "wax+") and below(file):
            writes.append(f"open({file!r}, {mode!r})")
        return real_open(file, mode, *args, **kwargs)

    patches = [(os, "open", os_open), (builtins, "open", open_)]
    h5py = sys.modules.get("h5py")
    if h5py is not None:
        real_file = h5py.File

        def h5_file(name: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if mode != "r" and below(name):
                writes.append(f"h5py.File({name!r}, {mode!r})")
            return real_file(name, mode, *args, **kwargs)

        patches.append((h5py, "File", h5_file))
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    for obj, name, fn in patches:
        setattr(obj, name, fn)
    try:
        yield
    finally:
        for obj, name, fn in saved:
            setattr(obj, name, fn)
    assert not writes, f"input files opened for writing: {writes}"


def _fails_naming(ctx: Context, fmt: str, path: Path, name: str, **kwargs: Any) -> None:
    """Loading ``path`` and reading all its frames raises a library error naming ``name``."""
    try:
        ds = ctx.load(fmt, path=str(path), **kwargs)
        ctx.run_udf(dataset=ds, udf=SumPartialUDF())
    except LiberTEMGPUError as e:
        assert name in str(e), f"error for {path} does not name {name!r}: {e}"
        return
    raise AssertionError(f"{fmt}: no error for {path}")


def check_bad_files(
    ctx: Context,
    fmt: str,
    path: str | os.PathLike[str],
    data_file: str | os.PathLike[str] | None = None,
    *,
    directory: bool = False,
    **load_kwargs: Any,
) -> None:
    """The shared bad-file checks of a format, around a good data set at ``path``.

    ``path``'s folder must hold only the data set's files. Checks that:

    - loading and reading every frame opens no input file for writing and changes none;
    - a missing ``path``, a directory in its place (a file, for formats whose ``path`` is a
      directory), and an empty one each give a library error naming it;
    - with ``data_file`` (default ``path``) cut to half its size, loading or reading gives a
      library error naming that file.
    """
    path = Path(path).resolve()
    folder = path.parent
    data = Path(data_file).resolve() if data_file is not None else path
    before = _snapshot(folder)
    with _no_writes_below(folder):
        ds = ctx.load(fmt, path=str(path), **load_kwargs)
        ctx.run_udf(dataset=ds, udf=SumPartialUDF())
    assert _snapshot(folder) == before, "reading changed the input files"

    work = folder.parent / f"{folder.name}-bad"
    missing = work / "missing" / path.name
    _fails_naming(ctx, fmt, missing, str(missing), **load_kwargs)

    wrong = work / "wrong-kind" / path.name
    wrong.parent.mkdir(parents=True)
    if directory:
        wrong.write_bytes(b"")
    else:
        wrong.mkdir()
    _fails_naming(ctx, fmt, wrong, str(wrong), **load_kwargs)

    empty = work / "empty" / path.name
    empty.parent.mkdir(parents=True)
    if directory:
        empty.mkdir()
    else:
        empty.write_bytes(b"")
    _fails_naming(ctx, fmt, empty, path.name, **load_kwargs)

    cut = work / "truncated"
    shutil.copytree(folder, cut)
    cut_data = cut / data.relative_to(folder)
    os.truncate(cut_data, cut_data.stat().st_size // 2)
    _fails_naming(ctx, fmt, cut / path.relative_to(folder), cut_data.name, **load_kwargs)


# --- guess_can_open -----------------------------------------------------------------------------


@contextlib.contextmanager
def _count_reads() -> Iterator[list[int]]:
    """Count the bytes read through open(), os.read/pread/preadv and mmap while active."""
    count = [0]
    real_open, real_read, real_pread = builtins.open, os.read, os.pread
    real_preadv, real_mmap = os.preadv, mmap.mmap

    class Counting:
        def __init__(self, f: Any) -> None:
            self._f = f

        def read(self, *args: Any) -> Any:
            data = self._f.read(*args)
            count[0] += len(data)
            return data

        def readinto(self, b: Any) -> Any:
            n = self._f.readinto(b)
            count[0] += n or 0
            return n

        def readline(self, *args: Any) -> Any:
            return self.read_line(self._f.readline(*args))

        def read_line(self, line: Any) -> Any:
            count[0] += len(line)
            return line

        def __iter__(self) -> Any:
            return (self.read_line(line) for line in self._f)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._f, name)

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: Any) -> None:
            self._f.close()

    def counting_mmap(fileno: int, length: int, *args: Any, **kwargs: Any) -> Any:
        count[0] += length or os.fstat(fileno).st_size
        return real_mmap(fileno, length, *args, **kwargs)

    def os_read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        count[0] += len(data)
        return data

    def os_pread(fd: int, n: int, offset: int) -> bytes:
        data = real_pread(fd, n, offset)
        count[0] += len(data)
        return data

    def os_preadv(fd: int, buffers: Any, offset: int, *args: Any) -> int:
        n = real_preadv(fd, buffers, offset, *args)
        count[0] += n
        return n

    patches = [
        (builtins, "open", lambda *a, **k: Counting(real_open(*a, **k))),
        (os, "read", os_read),
        (os, "pread", os_pread),
        (os, "preadv", os_preadv),
        (mmap, "mmap", counting_mmap),
    ]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    for obj, name, fn in patches:
        setattr(obj, name, fn)
    try:
        yield count
    finally:
        for obj, name, fn in saved:
            setattr(obj, name, fn)


def check_guess_can_open(
    cls: type[DataSet],
    paths: Sequence[str | os.PathLike[str]],
    tmp_path: Path,
    by_extension: Sequence[str] = (),
) -> None:
    """The shared ``guess_can_open`` checks of a format.

    - It accepts each of its own files in ``paths``;
    - it is cheap: with a file grown by 64 MiB (sparse) it still accepts and reads at most
      1 MiB;
    - it rejects another format's file (an ``.npy`` array), and random bytes or another format's
      bytes under each of its extensions, except the ``by_extension`` ones that the format
      claims by name (their files have no signature to check), and a missing file.
    """
    work = tmp_path / f"guess-{cls.format_name}"
    work.mkdir()
    for p in paths:
        assert cls.guess_can_open(str(p)), f"{cls.__name__} does not recognise its file {p}"
        if os.path.isfile(p):
            big = work / f"big-{Path(p).name}"
            shutil.copyfile(p, big)
            os.truncate(big, big.stat().st_size + 64 * 2**20)
            with _count_reads() as count:
                assert cls.guess_can_open(str(big)), f"{cls.__name__}: grown {big} not recognised"
            assert count[0] <= 2**20, f"{cls.__name__}.guess_can_open read {count[0]} bytes"
    foreign = work / "array.npy"
    np.save(foreign, np.arange(4096, dtype=np.uint16).reshape(4, 32, 32))
    assert not cls.guess_can_open(str(foreign)) or cls.format_name == "npy"
    rng = np.random.default_rng(7)
    for ext in cls.extensions:
        if ext in by_extension:
            continue
        noise = work / f"noise.{ext}"
        noise.write_bytes(rng.integers(0, 256, 65536, dtype=np.uint8).tobytes())
        assert not cls.guess_can_open(str(noise)), f"{cls.__name__} accepts random bytes"
        if cls.format_name != "npy":
            renamed = work / f"array.{ext}"
            shutil.copyfile(foreign, renamed)
            assert not cls.guess_can_open(str(renamed)), f"{cls.__name__} accepts .npy bytes"
    assert not cls.guess_can_open(str(work / "missing" / "x.bin"))
