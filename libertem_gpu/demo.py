"""The demo: a synthetic 4D-STEM data set and one pass of the classic analyses over it.

The synthetic sample is a lattice of atomic columns scanned by a convergent beam. At each scan
position the detector sees the bright-field disk, shifted towards the nearest columns (the
electric field deflects the beam) and dimmed by scattering, plus a halo of scattered electrons
at high angles, where the columns are; counts follow Poisson statistics. So the virtual bright
field shows the columns dark, the annular dark field shows them bright, and the centre of mass
shows a field pointing at them, with a divergence peaked on them.

Generation streams chunks of frames to a raw file (memory stays bounded whatever the size) and is
vectorised per chunk: disk templates at quarter-pixel phases are sliced at integer offsets, and
Poisson counts are drawn by inverse transform from a precomputed table indexed by the quantised
expected count and 14 random bits.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from libertem_gpu.errors import LiberTEMGPUError

__all__ = [
    "DemoData",
    "DemoReport",
    "demo_layout",
    "format_size",
    "generate_frames",
    "parse_size",
    "run_demo",
    "write_demo_data",
]

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}

# Quantisation of the expected counts and the random bits used for the Poisson table.
_LAM_LEVELS = 256
_RANDOM_BITS = 14
_PHASES = 4  # sub-pixel positions of the disk per axis (quarter pixels)


def parse_size(text: str | int) -> int:
    """Parse a byte size such as ``"1GiB"``, ``"64MiB"``, ``"500MB"`` or ``"4096"``.

    Raises
    ------
    ValueError
        If ``text`` is not a positive size with a known unit.
    """
    if isinstance(text, int):
        value, unit = float(text), ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
        if match is None or match.group(2).lower() not in _UNITS:
            raise ValueError(
                f"cannot parse size {text!r}: expected a number with an optional unit "
                f"(B, kB, MB, GB, KiB, MiB, GiB), e.g. '1GiB' or '64MiB'"
            )
        value, unit = float(match.group(1)), match.group(2).lower()
    size = int(value * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"size must be positive, got {text!r}")
    return size


def format_size(nbytes: float) -> str:
    """``nbytes`` in binary units, e.g. ``"1.0 GiB"``."""
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= factor:
            return f"{nbytes / factor:.1f} {unit}"
    return f"{int(nbytes)} B"


def demo_layout(
    size: int, sig_shape: tuple[int, int] = (256, 256)
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The scan and frame shape of a uint16 demo data set of about ``size`` bytes.

    The scan is as square as possible, never larger than ``size``; at least 2 x 2 positions.
    """
    frame_bytes = 2 * sig_shape[0] * sig_shape[1]
    frames = max(4, size // frame_bytes)
    ny = max(2, math.isqrt(frames))
    nx = max(2, frames // ny)
    return (ny, nx), (int(sig_shape[0]), int(sig_shape[1]))


@dataclasses.dataclass(frozen=True)
class DemoData:
    """A demo data set on disk and the geometry needed to analyse it.

    Attributes
    ----------
    path : str
        The raw file (uint16, frames back to back, no headers).
    nav_shape, sig_shape : tuple of int
        Scan and frame shape.
    cy, cx : float
        Centre of the undeflected disk on the detector (pixels).
    radius : float
        Disk radius (pixels).
    halo_inner, halo_outer : float
        Inner and outer radius of the scattered halo (pixels), where the dark-field ring goes.
    seconds : float
        Time taken to generate and write the file.
    """

    path: str
    nav_shape: tuple[int, int]
    sig_shape: tuple[int, int]
    cy: float
    cx: float
    radius: float
    halo_inner: float
    halo_outer: float
    seconds: float = 0.0

    @property
    def nbytes(self) -> int:
        """Bytes of the file."""
        return 2 * math.prod(self.nav_shape) * math.prod(self.sig_shape)


@dataclasses.dataclass(frozen=True)
class _Sample:
    """Per scan position: disk shift (pixels), disk and halo mean counts per pixel."""

    shift_y: np.ndarray
    shift_x: np.ndarray
    disk: np.ndarray
    halo: np.ndarray


def _sample(nav_shape: tuple[int, int], max_shift: float, seed: int) -> _Sample:
    """A lattice of Gaussian atomic columns, slightly jittered, under the scan."""
    ny, nx = nav_shape
    rng = np.random.default_rng(seed)
    spacing = max(6.0, min(ny, nx) / 6)  # about six columns across the shorter scan axis
    sigma = spacing / 5
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    potential = np.zeros((ny, nx))
    grad_y = np.zeros((ny, nx))
    grad_x = np.zeros((ny, nx))
    for ay in np.arange(spacing / 2, ny + spacing, spacing):
        for ax in np.arange(spacing / 2, nx + spacing, spacing):
            jy, jx = rng.normal(0, spacing / 20, 2)
            weight = rng.uniform(0.6, 1.0)  # two kinds of columns, roughly
            dy, dx = yy - (ay + jy), xx - (ax + jx)
            g = weight * np.exp(-(dy * dy + dx * dx) / (2 * sigma * sigma))
            potential += g
            grad_y -= g * dy / (sigma * sigma)
            grad_x -= g * dx / (sigma * sigma)
    potential /= max(potential.max(), 1e-12)
    scale = max(np.abs(grad_y).max(), np.abs(grad_x).max(), 1e-12)
    # The beam is deflected towards the columns: along the gradient of the potential.
    return _Sample(
        shift_y=grad_y / scale * max_shift,
        shift_x=grad_x / scale * max_shift,
        disk=40.0 * (1.0 - 0.45 * potential),
        halo=0.3 + 2.5 * potential,
    )


def _disk_phases(
    sig_shape: tuple[int, int], cy: float, cx: float, radius: float, pad: int
) -> np.ndarray:
    """Soft-edged disk images on a canvas padded by ``pad``, one per quarter-pixel phase.

    ``canvas[py, px, pad - dy : pad - dy + h, pad - dx : pad - dx + w]`` is the disk moved by
    ``dy + py / phases`` rows and ``dx + px / phases`` columns.
    """
    h, w = sig_shape
    yy = np.arange(h + 2 * pad, dtype=np.float64)[:, None] - pad
    xx = np.arange(w + 2 * pad, dtype=np.float64)[None, :] - pad
    out = np.empty((_PHASES, _PHASES, h + 2 * pad, w + 2 * pad), dtype=np.float32)
    for py in range(_PHASES):
        for px in range(_PHASES):
            # Slicing the canvas at ``pad - dy`` moves its content by +dy pixels; the phase
            # adds the fraction.
            r = np.hypot(yy - (cy + py / _PHASES), xx - (cx + px / _PHASES))
            out[py, px] = np.clip(radius + 0.5 - r, 0.0, 1.0)
    return out


def _halo(sig_shape: tuple[int, int], cy: float, cx: float, inner: float, outer: float):
    """Scattered intensity: a broad ring that falls off outwards, zero inside ``inner``."""
    h, w = sig_shape
    r = np.hypot(np.arange(h)[:, None] - cy, np.arange(w)[None, :] - cx)
    ring = np.clip((r - inner) / 2.0, 0.0, 1.0) * np.exp(-np.clip(r - inner, 0, None) / outer)
    return ring.astype(np.float32)


def _poisson_table(lam_max: float) -> tuple[np.ndarray, float]:
    """Inverse cumulative Poisson distributions: ``table[level << BITS | u]`` is a count drawn
    with mean ``level * step`` when ``u`` is uniform over ``[0, 2**BITS)``."""
    step = lam_max / (_LAM_LEVELS - 1)
    lams = np.arange(_LAM_LEVELS) * step
    kmax = int(lam_max + 12 * math.sqrt(lam_max) + 20)
    k = np.arange(kmax + 1)
    # log pmf for numerical safety at large means; level 0 gives all zeros.
    log_fact = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, kmax + 1)))))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pmf = k[None, :] * np.log(lams)[:, None] - lams[:, None] - log_fact[None, :]
    log_pmf[0] = -np.inf
    log_pmf[0, 0] = 0.0
    cdf = np.cumsum(np.exp(log_pmf), axis=1)
    quantiles = (np.arange(2**_RANDOM_BITS) + 0.5) / 2**_RANDOM_BITS
    table = np.empty((_LAM_LEVELS, 2**_RANDOM_BITS), dtype=np.uint16)
    for level in range(_LAM_LEVELS):
        table[level] = np.minimum(np.searchsorted(cdf[level], quantiles), kmax)
    return table.reshape(-1), step


def generate_frames(
    nav_shape: tuple[int, int],
    sig_shape: tuple[int, int] = (256, 256),
    *,
    seed: int = 0,
    chunk_frames: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield the demo data set's frames in scan order, in chunks of ``(n, *sig_shape)`` uint16.

    Parameters
    ----------
    nav_shape : tuple of int
        Scan shape (2-D).
    sig_shape : tuple of int
        Frame shape (2-D, at least 16 x 16).
    seed : int
        Seed of the random generator: the same seed gives the same data.
    chunk_frames : int, optional
        Frames per chunk; default about 16 MiB of output.
    """
    h, w = (int(s) for s in sig_shape)
    if h < 16 or w < 16:
        raise ValueError(f"demo frames must be at least 16 x 16 pixels, got {sig_shape}")
    geometry = _geometry(sig_shape)
    max_shift = geometry["radius"] / 4
    sample = _sample(nav_shape, max_shift, seed)
    pad = math.ceil(max_shift) + 2
    disks = _disk_phases(sig_shape, geometry["cy"], geometry["cx"], geometry["radius"], pad)
    halo = _halo(sig_shape, geometry["cy"], geometry["cx"], geometry["halo_inner"], 8.0)
    background = np.float32(0.2)
    lam_max = float(sample.disk.max() + sample.halo.max() * halo.max() + background)
    table, step = _poisson_table(lam_max)
    inv_step = np.float32(1.0 / step)
    rng = np.random.default_rng(seed + 1)

    # Split each shift into an integer part (slice offset) and a quarter-pixel phase.
    def split(shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        quarters = np.rint(shift.reshape(-1) * _PHASES).astype(np.int64)
        whole = np.floor_divide(quarters, _PHASES)
        return whole, quarters - whole * _PHASES

    int_y, ph_y = split(sample.shift_y)
    int_x, ph_x = split(sample.shift_x)
    disk_level = sample.disk.reshape(-1).astype(np.float32)
    halo_level = sample.halo.reshape(-1).astype(np.float32)

    n_total = math.prod(nav_shape)
    chunk = chunk_frames or max(1, (16 * 2**20) // (2 * h * w))
    lam = np.empty((chunk, h, w), dtype=np.float32)
    index = np.empty((chunk, h, w), dtype=np.uint32)
    # Raw 64-bit draws of the bit generator, viewed as 16-bit words: the cheapest uniform bits.
    words_per_draw = 4
    for start in range(0, n_total, chunk):
        stop = min(start + chunk, n_total)
        n = stop - start
        lam_c, index_c = lam[:n], index[:n]
        for j, f in enumerate(range(start, stop)):
            y0, x0 = pad - int_y[f], pad - int_x[f]
            disk = disks[ph_y[f], ph_x[f], y0 : y0 + h, x0 : x0 + w]
            np.multiply(disk, disk_level[f], out=lam_c[j])
        lam_c += halo_level[start:stop, None, None] * halo[None]
        lam_c += background
        lam_c *= inv_step
        lam_c += np.float32(0.5)  # round to the nearest level
        np.copyto(index_c, lam_c, casting="unsafe")
        np.left_shift(index_c, _RANDOM_BITS, out=index_c)
        draws = -(-index_c.size // words_per_draw)
        words = rng.bit_generator.random_raw(draws).view(np.uint16)[: index_c.size]
        words >>= 16 - _RANDOM_BITS
        index_c |= words.reshape(index_c.shape)
        yield table[index_c]


def _geometry(sig_shape: tuple[int, int]) -> dict[str, float]:
    """Where the disk and the halo sit on a frame of ``sig_shape``."""
    h, w = sig_shape
    radius = min(h, w) / 8
    return {
        "cy": (h - 1) / 2,
        "cx": (w - 1) / 2,
        "radius": radius,
        "halo_inner": radius * 1.6,
        "halo_outer": min(h, w) / 2 - 1,
    }


def write_demo_data(
    directory: str | os.PathLike[str],
    size: int | str = "1GiB",
    *,
    sig_shape: tuple[int, int] = (256, 256),
    seed: int = 0,
) -> DemoData:
    """Generate the demo data set and write it as ``demo.raw`` in ``directory``.

    Parameters
    ----------
    directory : path
        An existing directory.
    size : int or str
        Approximate size in bytes (``"1GiB"``, ``"64MiB"``, ...); the scan is the largest
        near-square that fits.
    sig_shape : tuple of int
        Frame shape.
    seed : int
        Random seed.
    """
    nav_shape, sig_shape = demo_layout(parse_size(size), sig_shape)
    path = os.path.join(os.fspath(directory), "demo.raw")
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        for frames in generate_frames(nav_shape, sig_shape, seed=seed):
            frames.tofile(f)
    g = _geometry(sig_shape)
    return DemoData(
        path=path,
        nav_shape=nav_shape,
        sig_shape=sig_shape,
        cy=g["cy"],
        cx=g["cx"],
        radius=g["radius"],
        halo_inner=g["halo_inner"],
        halo_outer=g["halo_outer"],
        seconds=time.perf_counter() - t0,
    )


@dataclasses.dataclass
class DemoReport:
    """What a demo run did: where things are and how fast it went.

    Attributes
    ----------
    data : DemoData
        The generated data set (its file is gone unless ``keep`` was set).
    out_dir : str
        Folder of the results.
    files : list of str
        Files written there.
    run_seconds : float
        Wall time of the analysis pass (kernels already compiled).
    warmup_seconds : float
        Wall time of the warm-up pass on a few frames (kernel compilation or cache load).
    gb_per_s : float
        Bytes of the data set per second of the analysis pass, in 10**9.
    notes : list of str
        Things skipped and why (no pillow, no h5py).
    """

    data: DemoData
    out_dir: str
    files: list[str]
    run_seconds: float
    warmup_seconds: float
    gb_per_s: float
    notes: list[str]
    kept_data: bool = False


def _demo_udfs(data: DemoData) -> list[Any]:
    """Sum, virtual bright field + annular dark field (one masks UDF), centre of mass."""
    from libertem_gpu import ApplyMasksUDF, CoMUDF, SumUDF, masks

    # The bright-field disk moves by up to a quarter radius: a slightly larger virtual detector
    # keeps all of it; the dark-field ring starts outside the moving disk.
    bf = masks.disk(data.sig_shape, cy=data.cy, cx=data.cx, r=data.radius * 1.3)
    adf = masks.ring(data.sig_shape, cy=data.cy, cx=data.cx, r=data.halo_outer, ri=data.halo_inner)
    return [
        SumUDF(),
        ApplyMasksUDF(mask_factories=[lambda: bf, lambda: adf]),
        CoMUDF.with_params(cy=data.cy, cx=data.cx, r=data.radius * 1.3),
    ]


def _make_context(executor: str, backend: str, scheduler: str | None) -> Any:
    from libertem_gpu.api import Context

    if scheduler:
        connect = getattr(Context, "connect", None)
        if connect is None:
            raise LiberTEMGPUError(
                "--scheduler needs Context.connect, which this installation lacks "
                "(the cluster support is not installed)"
            )
        return connect(scheduler)
    return Context(executor, backend=backend)


def run_demo(
    size: int | str = "1GiB",
    out_dir: str | os.PathLike[str] = "libertem-gpu-demo",
    *,
    executor: str = "threads",
    backend: str = "auto",
    scheduler: str | None = None,
    keep: bool = False,
    sig_shape: tuple[int, int] = (256, 256),
    tmp_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> DemoReport:
    """Generate the demo data set, analyse it in one pass, and save the results.

    Runs sum over the scan (``SumUDF``), a virtual bright field and an annular dark field
    (``ApplyMasksUDF`` with a disk and a ring mask) and the centre of mass (``CoMUDF``) together,
    then writes ``results.npz`` (and ``results.h5`` where h5py is installed), PNG images (where
    pillow is installed) and ``summary.json`` to ``out_dir``.

    Parameters
    ----------
    size : int or str
        Approximate data set size, e.g. ``"1GiB"`` or ``"64MiB"``.
    out_dir : path
        Folder for the results; created if missing.
    executor : str
        ``"threads"`` or ``"inline"`` (ignored with ``scheduler``).
    backend : str
        ``"auto"``, ``"numpy"`` or ``"cupy"``.
    scheduler : str, optional
        Address of a dask scheduler to run on (``Context.connect``).
    keep : bool
        Keep the generated raw file (its path is in the report) instead of deleting it.
    sig_shape : tuple of int
        Frame shape of the synthetic data.
    tmp_dir : path, optional
        Where to create the temporary folder for the data (default: the system's).
    progress : bool
        Show a progress bar during the analysis.
    log : callable
        Receives one line per step.

    Returns
    -------
    DemoReport
    """
    nbytes = parse_size(size)
    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="libertem-gpu-demo-", dir=tmp_dir)
    try:
        nav_shape, sig_shape = demo_layout(nbytes, sig_shape)
        log(
            f"generating {format_size(2 * math.prod(nav_shape) * math.prod(sig_shape))} of "
            f"synthetic 4D-STEM data: scan {nav_shape}, frames {sig_shape}, uint16 -> {work}"
        )
        data = write_demo_data(work, nbytes, sig_shape=sig_shape)
        log(f"  written in {data.seconds:.1f} s ({data.nbytes / data.seconds / 1e9:.2f} GB/s)")
        ctx = _make_context(executor, backend, scheduler)
        try:
            ds = ctx.load(
                "raw",
                path=data.path,
                nav_shape=data.nav_shape,
                sig_shape=data.sig_shape,
                dtype="uint16",
            )
            udfs = _demo_udfs(data)
            # A pass over a few frames compiles the kernels for uint16 (or loads them from Numba's
            # cache), so that the timed pass measures the data path, not the compiler.
            roi = np.zeros(data.nav_shape, dtype=bool)
            roi.flat[: min(roi.size, 8)] = True
            t0 = time.perf_counter()
            ctx.run_udf(dataset=ds, udf=[u.copy() for u in udfs], roi=roi)
            warmup = time.perf_counter() - t0
            t0 = time.perf_counter()
            results = ctx.run_udf(dataset=ds, udf=udfs, progress=progress)
            seconds = time.perf_counter() - t0
        finally:
            ctx.close()
        rate = data.nbytes / seconds / 1e9
        log(
            f"analysed {format_size(data.nbytes)} in {seconds:.2f} s: {rate:.2f} GB/s "
            f"(sum, virtual bright field, annular dark field, centre of mass in one pass; "
            f"executor {'dask at ' + scheduler if scheduler else executor}, warm-up "
            f"{warmup:.2f} s)"
        )
        arrays = _result_arrays(results)
        files, notes = _save(arrays, os.fspath(out_dir))
        summary = {
            "nav_shape": list(data.nav_shape),
            "sig_shape": list(data.sig_shape),
            "dtype": "uint16",
            "nbytes": data.nbytes,
            "generate_s": data.seconds,
            "warmup_s": warmup,
            "run_s": seconds,
            "gb_per_s": rate,
            "executor": f"dask:{scheduler}" if scheduler else executor,
            "backend": backend,
            "disk": {"cy": data.cy, "cx": data.cx, "r": data.radius},
            "ring": {"ri": data.halo_inner, "r": data.halo_outer},
            "files": [os.path.basename(f) for f in files],
        }
        summary_path = os.path.join(os.fspath(out_dir), "summary.json")
        with open(summary_path, "w") as f:
            json.dump(summary, f, indent=2)
        files.append(summary_path)
        for note in notes:
            log(f"note: {note}")
        names = ", ".join(os.path.basename(f) for f in files)
        log(f"results in {os.path.abspath(out_dir)}: {names}")
    finally:
        if keep:
            log(f"kept the data set in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return DemoReport(
        data=data,
        out_dir=os.path.abspath(out_dir),
        files=files,
        run_seconds=seconds,
        warmup_seconds=warmup,
        gb_per_s=rate,
        notes=notes,
        kept_data=keep,
    )


def _result_arrays(results: Any) -> dict[str, Any]:
    """Flatten the three UDFs' results into named arrays."""
    sum_res, masks_res, com_res = results
    intensity = np.asarray(masks_res["intensity"].data)
    arrays: dict[str, Any] = {
        "sum": np.asarray(sum_res["intensity"].data),
        "bright_field": intensity[..., 0],
        "annular_dark_field": intensity[..., 1],
    }
    for name in ("field_y", "field_x", "magnitude", "divergence", "curl"):
        if name in com_res:
            arrays[f"com_{name}"] = np.asarray(com_res[name].data)
    return arrays


def _save(arrays: dict[str, Any], out_dir: str) -> tuple[list[str], list[str]]:
    """Write NPZ, HDF5 (if h5py) and PNGs (if pillow); return the files and notes."""
    files = []
    notes = []
    npz = os.path.join(out_dir, "results.npz")
    np.savez(npz, **arrays)
    files.append(npz)
    try:
        import h5py
    except ImportError:
        notes.append("h5py is not installed: skipped results.h5 (pip install h5py)")
    else:
        h5 = os.path.join(out_dir, "results.h5")
        with h5py.File(h5, "w") as f:
            for name, value in arrays.items():
                f.create_dataset(name, data=value)
        files.append(h5)
    try:
        from PIL import Image
    except ImportError:
        notes.append("pillow is not installed: skipped the PNG images (pip install pillow)")
        return files, notes
    images = {name: _to_uint8(value, log=name == "sum") for name, value in arrays.items()}
    if "com_field_y" in arrays and "com_field_x" in arrays:
        images["com_field"] = _field_rgb(arrays["com_field_y"], arrays["com_field_x"])
    for name, image in images.items():
        path = os.path.join(out_dir, f"{name}.png")
        Image.fromarray(_upscale(image)).save(path)
        files.append(path)
    return files, notes


def _to_uint8(image: np.ndarray, log: bool = False) -> np.ndarray:
    """Grey levels from the 0.5 to 99.5 percentile (NaN black); ``log`` for diffraction."""
    image = np.asarray(image, dtype=np.float64)
    if log:
        image = np.log1p(np.clip(image, 0, None))
    finite = np.isfinite(image)
    if not finite.any():
        return np.zeros(image.shape, dtype=np.uint8)
    lo, hi = np.percentile(image[finite], [0.5, 99.5])
    scaled = (np.where(finite, image, lo) - lo) / (hi - lo if hi > lo else 1.0)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def _field_rgb(fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """A vector field as colour: direction as hue, length as brightness."""
    fy = np.nan_to_num(np.asarray(fy, dtype=np.float64))
    fx = np.nan_to_num(np.asarray(fx, dtype=np.float64))
    mag = np.hypot(fy, fx)
    top = np.percentile(mag, 99.5) or 1.0
    value = np.clip(mag / top, 0, 1)
    hue = (np.arctan2(fy, fx) / (2 * np.pi)) % 1.0
    # HSV to RGB with full saturation.
    k = (hue[..., None] * 6 + np.array([5.0, 3.0, 1.0])) % 6
    rgb = value[..., None] * (1 - np.clip(np.minimum(k, 4 - k), 0, 1))
    return (rgb * 255).astype(np.uint8)


def _upscale(image: np.ndarray, minimum: int = 256) -> np.ndarray:
    """Repeat pixels so that small scans are visible (nearest neighbour)."""
    factor = max(1, minimum // max(1, min(image.shape[:2])))
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
