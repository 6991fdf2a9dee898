"""Fuzzing every reader: small valid files of each format, mutations of them (truncations, bit
flips in headers, size fields and offsets set to extremes), and the judgement of one attempt.

Used by ``tests/io/test_fuzz.py`` (a few seconds per format in every test run) and by
``benchmarks/fuzz_campaign.py`` (hundreds of mutations per format, each in a worker process
with a time limit). An attempt's outcome is one of:

- ``error``: a library error (:class:`~libertem_gpu.errors.LiberTEMGPUError`) naming a file of
  the data set;
- ``unnamed``: a library error that names none of its files;
- ``other``: an exception that is not the library's;
- ``loaded``: the file loads and every frame reads, and either the frames that the mutation
  did not touch equal the original's, or a warning said why they may not;
- ``garbage``: it loads silently, with the original's shape and dtype, but frames whose bytes
  the mutation did not touch differ from the original's.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from libertem_gpu import Context
from libertem_gpu.errors import LiberTEMGPUError
from tests.io.contract import CollectFramesUDF, SumPartialUDF

#: Data sets larger than this are summed, not collected frame by frame (a mutated header may
#: claim a large but plausible scan).
COLLECT_LIMIT = 32 * 2**20


@dataclass
class Sample:
    """A valid data set written into a folder of its own.

    Attributes
    ----------
    fmt : str
        Format name for ``ctx.load``.
    path : str
        The file (or store) to load.
    kwargs : dict
        Further ``ctx.load`` arguments.
    expected : numpy.ndarray
        What the frames hold (``nav + sig``).
    targets : list of (str, int)
        Files to mutate (relative to the folder) and the length of their header region, where
        bit flips and size fields are aimed.
    """

    fmt: str
    path: str
    kwargs: dict[str, Any]
    expected: np.ndarray
    targets: list[tuple[str, int]] = field(default_factory=list)


def _data(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    from tests.conftest import random_data

    return random_data(rng, shape, dtype)


def _raw(d: Path, rng: np.random.Generator) -> Sample:
    data = _data(rng, (3, 4, 9, 7), "uint16")
    data.tofile(d / "x.raw")
    kw = {"nav_shape": (3, 4), "sig_shape": (9, 7), "dtype": "uint16"}
    return Sample("raw", str(d / "x.raw"), kw, data, [("x.raw", 0)])


def _npy(d: Path, rng: np.random.Generator) -> Sample:
    data = _data(rng, (3, 4, 9, 7), "uint16")
    np.save(d / "x.npy", data)
    return Sample("npy", str(d / "x.npy"), {}, data, [("x.npy", 128)])


def _mib(d: Path, rng: np.random.Generator) -> Sample:
    from tests.io.writers_mib import write_mib

    data = rng.integers(0, 4095, (3, 4, 16, 16)).astype("uint16")
    hdr = write_mib(d, data, 12)
    return Sample("mib", hdr, {}, data, [("scan.mib", 384), ("scan.hdr", 400)])


def _blo(d: Path, rng: np.random.Generator) -> Sample:
    from tests.io.writers_blo import write_blo

    data = rng.integers(1, 255, (3, 4, 7, 7)).astype("uint8")
    path = write_blo(d / "x.blo", data)
    return Sample("blo", path, {}, data, [("x.blo", 64)])


def _seq(d: Path, rng: np.random.Generator) -> Sample:
    from tests.io.writers_seq import write_seq

    data = _data(rng, (12, 9, 7), "uint16")
    write_seq(d / "x.seq", data)
    return Sample("seq", str(d / "x.seq"), {}, data, [("x.seq", 640)])


def _k2is(d: Path, rng: np.random.Generator) -> Sample:
    from libertem_gpu.io.formats.k2is import FRAME_SHAPE as FRAME
    from tests.io.writers_k2is import write_k2is

    frames = rng.integers(0, 4096, (3, *FRAME)).astype(np.uint16)
    gtg = write_k2is(d / "scan", frames, leads=(0,) * 8)
    return Sample("k2is", gtg, {}, frames, [("scan_1.bin", 4096), ("scan_4.bin", 4096)])


def _frms6(d: Path, rng: np.random.Generator) -> Sample:
    from tests.io.writers_frms6 import fold, unfold_reference, write_frms6

    sensor = _data(rng, (6, 14, 9), "uint16")
    stored = fold(sensor, 1)
    dark = fold(_data(rng, (2, 14, 9), "uint16") // 50, 1)
    hdr = write_frms6(d / "scan", dark, [stored[:4], stored[4:]], (2, 3))
    expected = unfold_reference(stored, 1).reshape(2, 3, 14, 9)
    return Sample("frms6", hdr, {}, expected, [("scan_001.frms6", 1024 + 64), ("scan.hdr", 200)])


def _empad(d: Path, rng: np.random.Generator) -> Sample:
    from tests.io.writers_empad import write_empad

    data = _data(rng, (2, 2, 128, 128), "float32")
    xml = write_empad(d, data)
    raw = next(p.name for p in d.iterdir() if p.suffix == ".raw")
    return Sample("empad", xml, {}, data, [(Path(xml).name, 2000), (raw, 0)])


def _mrc(d: Path, rng: np.random.Generator) -> Sample:
    from tests.io.writers_mrc import raster_info, write_mrc

    data = _data(rng, (3, 4, 9, 7), "uint16")
    path = write_mrc(d, data.reshape(-1, 9, 7), info=raster_info(3, 4))
    info = next(p.name for p in d.iterdir() if p.suffix == ".txt")
    return Sample("mrc", path, {}, data, [(Path(path).name, 256), (info, 400)])


def _tia(d: Path, rng: np.random.Generator) -> Sample:
    from tests.io.writers_tia import write_emi, write_ser

    data = _data(rng, (12, 9, 7), "uint16")
    write_ser(d / "scan_1.ser", data, (12,))
    write_emi(d / "scan.emi")
    return Sample("ser", str(d / "scan_1.ser"), {}, data, [("scan_1.ser", 400)])


def _dm(d: Path, rng: np.random.Generator) -> Sample:
    from tests.io.writers_dm import write_dm_stack

    data = _data(rng, (3, 4, 9, 7), "uint16")
    write_dm_stack(d / "x.dm4", data)
    return Sample("dm", str(d / "x.dm4"), {}, data, [("x.dm4", 2000)])


def _tvips(d: Path, rng: np.random.Generator) -> Sample:
    from tests.io.writers_tvips import write_tvips

    data = _data(rng, (3, 4, 9, 7), "uint16")
    path = write_tvips(d, data)
    return Sample("tvips", path, {}, data, [(Path(path).name, 1024 + 64)])


def _arina(d: Path, rng: np.random.Generator) -> Sample:
    from tests.io.writers_hdf5 import write_arina

    frames = _data(rng, (16, 9, 7), "uint16")
    master = write_arina(d, frames, frames_per_file=7)
    data_file = sorted(p.name for p in d.iterdir() if p.name != Path(master).name)[0]
    return Sample(
        "arina",
        master,
        {},
        frames.reshape(4, 4, 9, 7),
        [(Path(master).name, 4096), (data_file, 4096)],
    )


def _hdf5(d: Path, rng: np.random.Generator) -> Sample:
    from tests.io.writers_hdf5 import write_h5

    data = _data(rng, (3, 4, 9, 7), "uint16")
    path = write_h5(d / "x.h5", data, chunks=(1, 2, 9, 7), compression="gzip")
    return Sample("hdf5", path, {}, data, [("x.h5", 4096)])


def _zarr(d: Path, rng: np.random.Generator) -> Sample:
    import zarr

    data = _data(rng, (3, 4, 9, 7), "uint16")
    array = zarr.create_array(
        store=str(d / "x.zarr"), shape=data.shape, dtype=data.dtype, chunks=(1, 2, 9, 7)
    )
    array[...] = data
    chunk = sorted(str(p.relative_to(d)) for p in (d / "x.zarr").rglob("*") if p.is_file())
    targets = [(c, 600 if c.endswith("zarr.json") else 64) for c in chunk]
    return Sample("zarr", str(d / "x.zarr"), {}, data, targets)


def _raw_csr(d: Path, rng: np.random.Generator) -> Sample:
    import scipy.sparse

    from tests.io.test_raw_csr import write_csr

    dense = rng.integers(1, 1000, (12, 63)) * (rng.random((12, 63)) < 0.2)
    matrix = scipy.sparse.csr_matrix(dense.astype(np.uint16))
    toml = write_csr(d, matrix, (3, 4), (9, 7))
    targets = [("data.toml", 400), ("rowind.dat", 52), ("coords.dat", 64), ("values.dat", 0)]
    return Sample("raw_csr", str(toml), {}, dense.astype(np.uint16).reshape(3, 4, 9, 7), targets)


#: One sample writer per reader.
SAMPLES: dict[str, Callable[[Path, np.random.Generator], Sample]] = {
    "raw": _raw,
    "npy": _npy,
    "mib": _mib,
    "blo": _blo,
    "seq": _seq,
    "k2is": _k2is,
    "frms6": _frms6,
    "empad": _empad,
    "mrc": _mrc,
    "tia": _tia,
    "dm": _dm,
    "tvips": _tvips,
    "arina": _arina,
    "hdf5": _hdf5,
    "zarr": _zarr,
    "raw_csr": _raw_csr,
}


# --- mutations --------------------------------------------------------------------------------

_EXTREMES = (0, 1, 2**15, 2**16 - 1, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1)


def mutate(raw: bytes, header: int, rng: np.random.Generator) -> tuple[bytes, str, int, int]:
    """One random mutation of ``raw``, aimed at its first ``header`` bytes where that matters.

    Returns the mutated bytes, a description, and the byte range ``[lo, hi)`` of the original
    that it changed (from ``lo`` to the end for truncations and shifts).
    """
    n = len(raw)
    head = max(1, min(n, header or n))
    kind = rng.choice(["truncate", "flip", "size", "bytes", "shift"], p=[0.2, 0.3, 0.3, 0.1, 0.1])
    if n == 0:
        return raw, "empty", 0, 0
    if kind == "truncate":
        cut = int(rng.integers(0, head)) if rng.random() < 0.5 else int(rng.integers(0, n))
        return raw[:cut], f"truncate to {cut}", cut, n
    out = bytearray(raw)
    if kind == "flip":
        spots = rng.integers(0, head, int(rng.integers(1, 5)))
        for s in spots:
            out[s] ^= 1 << int(rng.integers(0, 8))
        return (
            bytes(out),
            f"flip bits at {sorted(spots.tolist())}",
            int(spots.min()),
            int(spots.max()) + 1,
        )
    if kind == "size":
        width = int(rng.choice([2, 4, 8]))
        at = int(rng.integers(0, max(1, head - width + 1))) // width * width
        value = int(rng.choice(_EXTREMES)) % (1 << (8 * width))
        if rng.random() < 0.3:  # near the old value: off by a little
            old = int.from_bytes(out[at : at + width], "little")
            value = (old + int(rng.choice([-2, -1, 1, 2, 64]))) % (1 << (8 * width))
        order = "little" if rng.random() < 0.8 else "big"
        out[at : at + width] = value.to_bytes(width, order)
        return bytes(out), f"{width}-byte field at {at} = {value} ({order})", at, at + width
    if kind == "bytes":
        at = int(rng.integers(0, n))
        count = int(rng.integers(1, 17))
        out[at : at + count] = rng.integers(0, 256, min(count, n - at), dtype=np.uint8).tobytes()
        return bytes(out), f"random bytes at {at}..{at + count}", at, at + count
    at = int(rng.integers(0, head))
    count = int(rng.integers(1, 9))
    if rng.random() < 0.5:
        return raw[:at] + bytes(count) + raw[at:], f"insert {count} bytes at {at}", at, n
    return raw[:at] + raw[at + count :], f"delete {count} bytes at {at}", at, n


# --- judging one attempt ----------------------------------------------------------------------


def _touched_frames(original: Any, path: str, lo: int, hi: int) -> np.ndarray | None:
    """Which source frames of ``original`` lie (partly) in bytes ``[lo, hi)`` of ``path``, or
    None where the format decodes (no byte layout to tell)."""
    with original.get_reader() as reader:
        layout = reader.raw_layout()
        if layout is None:
            return None
        touched = np.zeros(original.image_count, dtype=bool)
        for r in layout.ranges(0, original.image_count):
            if os.path.realpath(r.path) != os.path.realpath(path):
                continue
            starts = r.offset + np.arange(r.num_frames) * r.stride
            hit = (starts < hi) & (starts + r.frame_bytes > lo)
            touched[r.dest_frame : r.dest_frame + r.num_frames] |= hit
        return touched


def _names(folder: Path) -> set[str]:
    names = {folder.name}
    for p in folder.rglob("*"):
        names.add(p.name)
    return names


def judge(
    ctx: Context,
    sample: Sample,
    original: Any,
    folder: Path,
    target: str,
    lo: int,
    hi: int,
) -> tuple[str, str]:
    """Load and read the mutated data set in ``folder``; its outcome and a detail line."""
    path = str(folder / Path(sample.path).relative_to(Path(sample.path).parent))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = ctx.load(sample.fmt, path=path, **sample.kwargs)
            if ds.nbytes <= COLLECT_LIMIT:
                frames = ctx.run_udf(dataset=ds, udf=CollectFramesUDF())["frames"].data
            else:
                ctx.run_udf(dataset=ds, udf=SumPartialUDF())
                frames = None
        except LiberTEMGPUError as e:
            message = str(e)
            if any(name and name in message for name in _names(folder)):
                return "error", f"{type(e).__name__}: {message[:200]}"
            return "unnamed", f"{type(e).__name__}: {message[:300]}"
        except MemoryError:
            return "other", "MemoryError"
        except Exception as e:  # what the library let through: the finding
            return "other", f"{type(e).__name__}: {str(e)[:300]}"
    if caught:
        return "loaded", f"with warning: {str(caught[0].message)[:160]}"
    expected = sample.expected
    if frames is None or ds.shape.to_tuple() != expected.shape or ds.dtype != expected.dtype:
        return "loaded", f"as {ds.shape.to_tuple()} {ds.dtype}"
    touched = _touched_frames(original, str(Path(sample.path).parent / target), lo, hi)
    if touched is None:
        return "loaded", "same shape (decoded format: frames not compared)"
    flat = frames.reshape(-1, *ds.sig_shape)
    ref = expected.reshape(-1, *ds.sig_shape).astype(np.float64)
    source = np.arange(len(flat)) + ds.sync_offset
    for i in range(len(flat)):
        s = source[i]
        if 0 <= s < len(touched) and not touched[s] and not np.array_equal(flat[i], ref[s]):
            return "garbage", f"frame {i} differs, its bytes untouched"
    return "loaded", "frames as the original where untouched"


def prepare(folder: Path, fmt: str, seed: int) -> tuple[Sample, Any]:
    """Write ``fmt``'s sample into ``folder``; the sample and its loaded (original) data set."""
    folder.mkdir(parents=True, exist_ok=True)
    sample = SAMPLES[fmt](folder, np.random.default_rng(seed))
    original = Context("inline").load(sample.fmt, path=sample.path, **sample.kwargs)
    return sample, original


def make_attempt(
    sample: Sample, work: Path, rng: np.random.Generator
) -> tuple[Path, str, str, int, int]:
    """Copy the sample's folder to ``work`` and mutate one of its targets there; returns the
    copy, the target, a description, and the changed range."""
    source = Path(sample.path).parent
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(source, work)
    target, header = sample.targets[int(rng.integers(0, len(sample.targets)))]
    raw = (work / target).read_bytes()
    mutated, what, lo, hi = mutate(raw, header, rng)
    (work / target).write_bytes(mutated)
    return work, target, f"{target}: {what}", lo, hi
