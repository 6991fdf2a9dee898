"""The CPU comparison's cases (:mod:`run_cpu`): the data files, the float64 NumPy reference every
contender must match before its figure counts, and each analysis as libertem_gpu, LiberTEM 0.16
and Dask arrays run it.

Not a test; imported by ``benchmarks/run_cpu.py``.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any

import numpy as np
from benchlib import alternate, check_close

ANALYSES = ("sum", "sumsig", "std", "masks1", "masks16", "vbf", "rings16", "com", "custom")
#: The built-in analyses (the issue's targets apply to them); ``custom`` is a user's NumPy UDF
#: (``custom_udf.py``), timed against the floor and LiberTEM with no target.
BUILT_IN = ANALYSES[:-1]
#: Minimum ratio to the floor (threads executor), from the issue's acceptance criteria.
FLOOR_TARGETS = {
    "sum": 0.8,
    "sumsig": 0.8,
    "masks1": 0.8,
    "std": 0.6,
    "com": 0.6,
    "masks16": 0.4,
    "vbf": 0.8,
    "rings16": 0.4,
}
MASK_ANALYSES = ("masks1", "masks16", "vbf", "rings16")
#: Minimum speed-up over LiberTEM 0.16, per dtype.
LIBERTEM_TARGETS = {"uint16": 3.0, "float32": 1.0}
SIG_SHAPE = (256, 256)


# --- files ---


def layout(size: int, dtype: np.dtype) -> tuple[int, int]:
    """A near-square 2-D scan of 256 x 256 frames holding at least ``size`` bytes."""
    frame_bytes = math.prod(SIG_SHAPE) * dtype.itemsize
    frames = max(4, -(-size // frame_bytes))
    ny = max(2, math.isqrt(frames))
    nx = -(-frames // ny)
    return ny, nx


def write_file(path: str, nav: tuple[int, int], dtype: np.dtype, seed: int) -> int:
    """Random-ish data (12-bit integers, or floats around 100) in 64 MiB chunks."""
    rng = np.random.default_rng(seed)
    n = math.prod(nav) * math.prod(SIG_SHAPE)
    chunk = 32 * 2**20
    with open(path, "wb") as f:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            if dtype.kind == "u":
                words = rng.bit_generator.random_raw(-(-m // 4)).view(np.uint16)[:m]
                words &= 0x0FFF
                words.astype(dtype, copy=False).tofile(f)
            else:
                (rng.random(m, dtype=np.float32) * 200).astype(dtype, copy=False).tofile(f)
    return n * dtype.itemsize


def read_once(path: str) -> None:
    """Bring the file into the page cache."""
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(64 * 2**20)
        while f.readinto(buf):
            pass


# --- ceilings and references ---


def gemm_ceiling(cores: int, dtype: np.dtype, frames: int = 256) -> float:
    """GB/s (of ``dtype`` input) of 16-mask products when the frames are already float32: one
    single-threaded sgemm per core, concurrently. 16 dense masks cost 16 multiply-adds per
    pixel, so this compute ceiling, not memory, bounds ``masks16``."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    npix = math.prod(SIG_SHAPE)
    rng = np.random.default_rng(5)
    blocks = [rng.random((frames, npix), dtype=np.float32) for _ in range(cores)]
    masks = rng.random((npix, 16), dtype=np.float32)

    def work() -> None:
        with ThreadPoolExecutor(cores) as pool:
            list(pool.map(lambda b: b @ masks, blocks))

    with threadpool_limits(1, "blas"):
        times, _ = alternate({"gemm": work}, 3)["gemm"]
    return cores * frames * npix * dtype.itemsize / min(times) / 1e9


def _com_weights() -> np.ndarray:
    """``(npix, 3)`` float64: the CoM disk, and the disk times the row and the column index."""
    g = com_geometry()
    yy, xx = np.mgrid[0 : SIG_SHAPE[0], 0 : SIG_SHAPE[1]].astype(np.float64)
    disk = ((yy - g["cy"]) ** 2 + (xx - g["cx"]) ** 2 <= g["r"] ** 2).astype(np.float64)
    return np.stack([disk, disk * yy, disk * xx], axis=-1).reshape(-1, 3)


def reference(
    data: np.ndarray, nav: tuple[int, int], dtype: np.dtype, analyses: list[str]
) -> dict[str, np.ndarray]:
    """Every analysis's expected result, in float64 NumPy, from one pass over the file's
    bytes (``data``, uint8) in chunks of frames: what each contender's result must match
    before its figure counts.

    Returns, per analysis, an array shaped like the result that :func:`extract` returns."""
    n = math.prod(nav)
    npix = math.prod(SIG_SHAPE)
    frames = data[: n * npix * dtype.itemsize].view(dtype).reshape(n, npix)
    columns = {
        name: _mask_stack(name).reshape(-1, npix).T for name in analyses if name in MASK_ANALYSES
    }
    if "com" in analyses:
        columns["com"] = _com_weights()
    weights = None
    if columns:
        weights = np.concatenate([c.astype(np.float64) for c in columns.values()], axis=1)
    shift = frames[0].astype(np.float64)
    s1 = np.zeros(npix)
    s2 = np.zeros(npix)
    per_frame = np.zeros(n)
    products = np.zeros((n, 0 if weights is None else weights.shape[1]))
    step = max(1, (32 * 2**20) // (npix * 8))
    for start in range(0, n, step):
        chunk = frames[start : start + step].astype(np.float64)
        per_frame[start : start + step] = chunk.sum(axis=1)
        if weights is not None:
            products[start : start + step] = chunk @ weights
        chunk -= shift
        s1 += chunk.sum(axis=0)
        s2 += (chunk * chunk).sum(axis=0)
    out: dict[str, np.ndarray] = {}
    sig = SIG_SHAPE
    if "sum" in analyses or "custom" in analyses:
        out["sum"] = out["custom"] = (s1 + n * shift).reshape(sig)
    if "sumsig" in analyses:
        out["sumsig"] = per_frame.reshape(nav)
    if "std" in analyses:
        mean = s1 / n
        out["std"] = np.sqrt(np.maximum(s2 / n - mean * mean, 0)).reshape(sig)
    col = 0
    for name, c in columns.items():
        block = products[:, col : col + c.shape[1]]
        col += c.shape[1]
        if name == "com":
            with np.errstate(invalid="ignore", divide="ignore"):
                com = block[:, 1:] / block[:, :1]
            out[name] = com.reshape(*nav, 2)
        else:
            out[name] = block.reshape(*nav, c.shape[1])
    return out


#: Tolerance of each contender's result against :func:`reference`, relative to its largest
#: value: float64 accumulation for ours and Dask (except float32 mask products), float32 inside
#: LiberTEM. A frame left out of a 2 GiB sum changes it by ~6e-5.
RTOL = {"float64": 1e-6, "float32": 1e-4}


def rtol_for(contender: str, name: str) -> float:
    if contender == "libertem" or name in ("masks1", "masks16", "custom"):
        return RTOL["float32"]
    return RTOL["float64"]


def extract(contender: str, name: str, value: Any) -> np.ndarray:
    """The part of a contender's result that :func:`reference` predicts, as float64."""
    if name == "custom" and contender != "dask":
        return np.asarray(value["total"].data, dtype=np.float64)
    if contender == "dask":
        arr = np.asarray(value, dtype=np.float64)
        if name in ("sum", "std", "custom"):
            return arr.reshape(SIG_SHAPE)
        if name == "sumsig":
            return arr
        return arr.reshape(*arr.shape[:1], -1)
    if name == "std":
        return np.asarray(value["std"].data, dtype=np.float64)
    if name == "com":
        g = com_geometry()
        # field = raw_com - (cy, cx) without scan rotation, flip or regression (the default)
        return np.asarray(value["field"].data, dtype=np.float64) + np.array([g["cy"], g["cx"]])
    return np.asarray(value["intensity"].data, dtype=np.float64)


def verify(contender: str, name: str, value: Any, want: np.ndarray) -> None:
    """Raise :class:`VerificationError` unless the contender's result matches the reference."""
    got = extract(contender, name, value)
    if contender == "dask" and name not in ("sum", "std", "custom"):
        want = want.reshape(got.shape)
    check_close(f"{contender} {name}", got, want, rtol_for(contender, name))


def subset_read(name: str, dtype: np.dtype) -> dict[str, Any] | None:
    """For drawn binary masks (``vbf``, ``rings16``): what part of each frame a kernel that
    reads only the masked pixels (the run-length kernels) touches. Such a figure counts all
    the file's bytes but may read fewer, so it is not compared with the floor."""
    if name not in ("vbf", "rings16"):
        return None
    union = _drawn_masks(name).any(axis=0).reshape(-1)
    per_line = max(1, 64 // dtype.itemsize)
    lines = np.pad(union, (0, -union.size % per_line)).reshape(-1, per_line).any(axis=1)
    return {
        "reads_subset": True,
        "masked_fraction": float(union.mean()),
        "bytes_read_fraction": float(lines.mean()),
        "reads_subset_note": (
            "binary masks may go to the run-length kernels, which read only the 64-byte lines "
            "holding masked pixels (bytes_read_fraction, an estimate from the masks); where "
            "AMX runs, masks covering most of the frame go to the dense kernel, which reads "
            "all. The library does not report which path ran: no ratio to the floor."
        ),
    }


# --- the contenders ---


def _masks(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *SIG_SHAPE), dtype=np.float32)


def _drawn_masks(name: str) -> np.ndarray:
    """What users draw: a bright-field disk, or 16 concentric rings (binary masks)."""
    h, w = SIG_SHAPE
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2)
    if name == "vbf":
        return (r <= min(h, w) / 8)[np.newaxis]
    edges = np.linspace(0, min(h, w) / 2, 17)
    return np.stack([(r >= a) & (r < b) for a, b in itertools.pairwise(edges)])


def _mask_stack(name: str) -> np.ndarray:
    if name in ("vbf", "rings16"):
        return _drawn_masks(name)
    return _masks(1 if name == "masks1" else 16, 1)


def com_geometry() -> dict[str, float]:
    h, w = SIG_SHAPE
    return {"cy": (h - 1) / 2, "cx": (w - 1) / 2, "r": min(h, w) / 4}


def _return(value: np.ndarray) -> np.ndarray:
    return value


def libertem_gpu_udf(name: str) -> Any:
    import libertem_gpu as lg

    if name == "sum":
        return lg.SumUDF()
    if name == "sumsig":
        return lg.SumSigUDF()
    if name == "std":
        return lg.StdDevUDF()
    if name in MASK_ANALYSES:
        stack = _mask_stack(name)
        # float32 arithmetic for float32 masks, as LiberTEM does (results float32); binary
        # masks are summed exactly whatever the dtype.
        return lg.ApplyMasksUDF(
            mask_factories=[functools.partial(_return, m) for m in stack], mask_dtype=np.float32
        )
    if name == "com":
        return lg.CoMUDF.with_params(**com_geometry())
    if name == "custom":
        from custom_udf import FrameSum

        return FrameSum()
    raise KeyError(name)


def libertem_udf(name: str) -> Any:
    if name == "sum":
        from libertem.udf.sum import SumUDF

        return SumUDF()
    if name == "sumsig":
        from libertem.udf.sumsigudf import SumSigUDF

        return SumSigUDF()
    if name == "std":
        from libertem.udf.stddev import StdDevUDF

        return StdDevUDF()
    if name in MASK_ANALYSES:
        from libertem.udf.masks import ApplyMasksUDF

        stack = _mask_stack(name)
        return ApplyMasksUDF(
            mask_factories=[functools.partial(_return, m) for m in stack],
            use_sparse=False if name in ("masks1", "masks16") else None,
        )
    if name == "com":
        from libertem.udf.com import CoMUDF

        return CoMUDF.with_params(**com_geometry())
    if name == "custom":
        from custom_udf import LiberTEMFrameSum

        return LiberTEMFrameSum()
    raise KeyError(name)


def dask_run(name: str, path: str, nav: tuple[int, int], dtype: np.dtype, cores: int) -> Any:
    """The Dask array equivalent of each analysis on a memmap, threaded scheduler."""
    import dask.array as da

    n = math.prod(nav)
    npix = math.prod(SIG_SHAPE)
    mm = np.memmap(path, dtype=dtype, mode="r", shape=(n, npix))
    frames_per_chunk = max(1, (128 * 2**20) // (npix * dtype.itemsize))
    arr = da.from_array(mm, chunks=(frames_per_chunk, npix))
    if name == "sum":
        expr = arr.sum(axis=0, dtype=np.float64)
    elif name == "sumsig":
        expr = arr.sum(axis=1, dtype=np.float64)
    elif name == "std":
        expr = arr.std(axis=0, dtype=np.float64)
    elif name in MASK_ANALYSES:
        stack = _mask_stack(name).reshape(-1, npix).astype(np.float32)
        expr = arr @ stack.T
    elif name == "com":
        g = com_geometry()
        yy, xx = np.mgrid[0 : SIG_SHAPE[0], 0 : SIG_SHAPE[1]]
        disk = ((yy - g["cy"]) ** 2 + (xx - g["cx"]) ** 2 <= g["r"] ** 2).astype(np.float32)
        weights = np.stack([disk, disk * yy, disk * xx], axis=-1).reshape(npix, 3)
        moments = arr @ weights
        expr = moments[:, 1:] / moments[:, :1]
    elif name == "custom":  # the same as a user writes it with Dask arrays
        expr = arr.astype(np.float32).sum(axis=0, dtype=np.float64)
    else:
        raise KeyError(name)
    return expr.compute(scheduler="threads", num_workers=cores)
