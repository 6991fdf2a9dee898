"""Running the demo: the analyses, the context and the report."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from libertem_gpu import config
from libertem_gpu.demo.files import DemoData, demo_layout, write_demo_data
from libertem_gpu.demo.images import result_arrays, save_outputs
from libertem_gpu.errors import LiberTEMGPUError
from libertem_gpu.outputs import atomic_path
from libertem_gpu.sizes import format_size, parse_size


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


def make_context(executor: str, backend: str, scheduler: str | None) -> Any:
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
        ctx = make_context(executor, backend, scheduler)
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
            # cache), so that the timed pass measures the data path, not the compiler. So few
            # frames alone would take the plain-NumPy kernels of small runs (setting
            # small_run_bytes) and compile nothing the timed pass uses. Two passes, of 8 and 32
            # frames: kernels choose their loop by the tile's depth too (on Intel the sum over
            # frames takes prefetched pairs from 16 frames on, and shallower tiles the
            # eight-frame passes), and a warm-up of one depth left the other kernel to the
            # timed pass, which then read 0.2 instead of 4.5 GB/s after a fresh install.
            small = int(config.get("small_run_bytes"))
            t0 = time.perf_counter()
            for frames in (8, 32):
                roi = np.zeros(data.nav_shape, dtype=bool)
                roi.flat[: min(roi.size, frames)] = True
                with config.set(small_run_bytes=small if data.nbytes <= small else 0):
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
        arrays = result_arrays(results)
        files, notes = save_outputs(arrays, os.fspath(out_dir))
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
        with atomic_path(summary_path) as tmp, open(tmp, "w") as f:
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
