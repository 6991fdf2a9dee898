"""Small CPU runs (setting ``small_run_bytes``) take the plain-NumPy kernel set: the same
results as the Numba kernels, decided by size alone, and no Numba import in a new process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from libertem_gpu import (
    FEMUDF,
    AlignedSumUDF,
    ApplyFFTMaskUDF,
    ApplyMasksUDF,
    CoMUDF,
    Context,
    CrystallinityUDF,
    HoloReconstructUDF,
    LogsumUDF,
    MaxUDF,
    MinUDF,
    ParallaxUDF,
    PickUDF,
    RadialFourierUDF,
    StdDevUDF,
    SumFFTUDF,
    SumSigUDF,
    SumUDF,
    config,
)
from libertem_gpu.plan import plan_run
from tests.udf.builtin_cases import CASES, Case, case_params, load_case

ROOT = Path(__file__).resolve().parents[2]

#: Cases across dtypes, rois, sync offsets, partitions, split frames and big-endian raw files.
SMALL_CASES = [CASES[1], CASES[3], CASES[4], CASES[6], CASES[8], CASES[10]]


def _udfs(case: Case) -> list:
    """Every built-in analysis that runs on this case's frames (the disk-finding ones keep
    their Numba kernels: not compared here)."""
    sig = case.sig
    rng = np.random.default_rng(5)
    dense = rng.random(sig).astype(np.float32)
    flat = np.zeros(sig, np.float32)
    flat.flat[:: max(1, flat.size // 7)] = 1.0
    udfs = [
        SumUDF(),
        SumSigUDF(),
        StdDevUDF(),
        MaxUDF(),
        MinUDF(),
        PickUDF(),
        ApplyMasksUDF(mask_factories=[lambda: dense, lambda: flat]),
        ApplyMasksUDF(mask_factories=[lambda: dense, lambda: flat], use_sparse=True),
        LogsumUDF(),
    ]
    if len(sig) == 2:
        cy, cx = (sig[0] - 1) / 2, (sig[1] - 1) / 2
        udfs += [
            CoMUDF.with_params(cy=cy, cx=cx, r=4),  # a binary disk: runs on the CPU
            CoMUDF.with_params(),  # whole frame
            FEMUDF(center=(cy, cx), rad_in=1, rad_out=5),
            SumFFTUDF(real_center=(cy, cx), real_rad=4),
            ApplyFFTMaskUDF(rad_in=1.5, rad_out=4),
            CrystallinityUDF(rad_in=1.5, rad_out=4.0, real_center=(cy, cx), real_rad=4),
            RadialFourierUDF(cx=cx, cy=cy, ri=1.0, ro=5.5, n_bins=3, max_order=5),
            HoloReconstructUDF(out_shape=(6, 8), sb_position=(3, 5), sb_size=2.5),
            ApplyMasksUDF(
                mask_factories=[lambda: dense], shifts=rng.integers(-2, 3, (*case.nav, 2))
            ),
            AlignedSumUDF(shifts=rng.integers(-2, 3, (*case.nav, 2))),
        ]
        if len(case.nav) == 2:
            matrix = np.array([[0.6, 0.2], [-0.3, 0.5]])
            udfs.append(ParallaxUDF(matrix, (cy + 0.3, cx - 0.2), 4.5, upsampling=2))
    return udfs


def _run(ctx, loaded, small: int) -> list[dict[str, np.ndarray]]:
    with config.set(small_run_bytes=small):
        results = loaded.run(ctx, _udfs(loaded.case))
    return [{k: np.asarray(v.raw_data) for k, v in r.items()} for r in results]


@pytest.fixture(params=["inline", "threads"])
def cpu_ctx(request: pytest.FixtureRequest):
    with Context(request.param) as context:
        yield context


@pytest.mark.parametrize("case", case_params(SMALL_CASES))
def test_small_runs_equal_numba_runs(cpu_ctx, case, rng, tmp_path):
    loaded = load_case(cpu_ctx, case, rng, tmp_path)
    plan = plan_run(loaded.ds, [SumUDF()], roi=loaded.roi, n_workers=1)
    assert plan.kernels == "numpy"  # the suite's default: Numba whatever the size
    with config.set(small_run_bytes=2**20):
        plan = plan_run(loaded.ds, [SumUDF()], roi=loaded.roi, n_workers=1)
    assert plan.kernels == "plain" and plan.backend == "numpy"
    plain = _run(cpu_ctx, loaded, 2**20)
    numba = _run(cpu_ctx, loaded, 0)
    exact = np.dtype(case.dtype).kind in "uib"
    for udf, p, n in zip(_udfs(case), plain, numba, strict=True):
        name = type(udf).__name__
        for key in n:
            got, want = p[key], n[key]
            assert got.dtype == want.dtype and got.shape == want.shape, (name, key)
            if exact and name in ("SumUDF", "SumSigUDF", "PickUDF", "MaxUDF", "MinUDF"):
                np.testing.assert_array_equal(got, want, err_msg=f"{name}.{key}")
                continue
            scale = np.nanmax(np.abs(want)) if want.size and np.isfinite(want).any() else 1.0
            np.testing.assert_allclose(
                got, want, rtol=2e-6, atol=2e-6 * scale + 1e-30, err_msg=f"{name}.{key}"
            )


def test_kernel_set_is_chosen_by_bytes_after_the_roi(rng):
    data = rng.integers(0, 1000, (4, 5, 6, 7), dtype=np.uint16)
    frame = 6 * 7 * 2
    roi = np.zeros((4, 5), bool)
    roi.flat[:3] = True
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=data, num_partitions=2)
        with config.set(small_run_bytes=3 * frame):
            assert plan_run(ds, [SumUDF()], roi=roi).kernels == "plain"
            assert plan_run(ds, [SumUDF()]).kernels == "numpy"  # 20 frames
            roi.flat[3] = True
            assert plan_run(ds, [SumUDF()], roi=roi).kernels == "numpy"
        with config.set(small_run_bytes=0):
            assert plan_run(ds, [SumUDF()], roi=roi).kernels == "numpy"


_CHILD = """
import json, sys
import numpy as np
from libertem_gpu import (ApplyMasksUDF, CoMUDF, Context, LogsumUDF, StdDevUDF, SumSigUDF,
                          SumUDF)
ctx = Context("inline")
ds = ctx.load("raw", path=sys.argv[1], nav_shape=(5, 7), sig_shape=(9, 11), dtype=">u2")
yy, xx = np.mgrid[:9, :11]
disk = ((yy - 4) ** 2 + (xx - 5) ** 2 < 9).astype(np.float32)
dense = np.random.default_rng(0).random((9, 11)).astype(np.float32)
udfs = [SumUDF(), SumSigUDF(), StdDevUDF(), LogsumUDF(), CoMUDF.with_params(cy=4, cx=5, r=3),
        ApplyMasksUDF(mask_factories=[lambda: disk, lambda: dense])]
res = ctx.run_udf(dataset=ds, udf=udfs)
frames = np.fromfile(sys.argv[1], dtype=">u2").reshape(35, 9, 11).astype(np.float64)
assert np.array_equal(res[0]["intensity"].raw_data, frames.sum(axis=0))
masks = np.stack([disk, dense]).reshape(2, -1).astype(np.float64)
np.testing.assert_allclose(res[5]["intensity"].raw_data, frames.reshape(35, -1) @ masks.T,
                           rtol=1e-6)
# CoM with corrections folded in (gain, an excluded pixel inside the disk): the folded pixel
# terms go through the gather, not a Numba kernel
from libertem_gpu import CorrectionSet
gain = 1 + 0.1 * np.random.default_rng(1).random((9, 11))
excluded = np.zeros((9, 11), bool)
excluded[4, 6] = True
cs = CorrectionSet(gain=gain, excluded_pixels=excluded)
com = ctx.run_udf(dataset=ds, udf=CoMUDF.with_params(cy=4, cx=5, r=3), corrections=cs)
c = frames * gain
c[:, 4, 6] = (c[:, 3:6, 5:8].sum(axis=(1, 2)) - c[:, 4, 6]) / 8  # mean of the 8 neighbours
cw = c * ((yy - 4) ** 2 + (xx - 5) ** 2 <= 9)  # the CoM disk includes its rim
want = np.stack([(cw * yy).sum(axis=(1, 2)), (cw * xx).sum(axis=(1, 2))], -1)
want /= cw.sum(axis=(1, 2))[:, None]
np.testing.assert_allclose(com["raw_com"].raw_data.reshape(35, 2), want, rtol=1e-5)
ds = ctx.load("memory", data=frames.reshape(5, 7, 9, 11).astype(np.float32))
ctx.run_udf(dataset=ds, udf=[SumUDF(), StdDevUDF()])
try:
    import h5py
except ImportError:
    pass
else:
    with h5py.File(sys.argv[2], "w") as f:
        f["data"] = frames.reshape(5, 7, 9, 11).astype(">u2")
    ds = ctx.load("hdf5", path=sys.argv[2], ds_path="data")
    res = ctx.run_udf(dataset=ds, udf=udfs)
    assert np.array_equal(res[0]["intensity"].raw_data, frames.sum(axis=0))
print(json.dumps({"numba": "numba" in sys.modules, "scipy": "scipy" in sys.modules}))
"""


@pytest.mark.parametrize("small", ["", "0"])
def test_small_run_in_a_new_process_imports_no_numba(tmp_path, small):
    """Raw (big-endian), in-memory and HDF5 data, six analyses."""
    path = tmp_path / "small.raw"
    rng = np.random.default_rng(11)
    rng.integers(0, 4000, (35, 9, 11)).astype(">u2").tofile(path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LIBERTEM_GPU_SMALL_RUN_BYTES": small}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(tmp_path / "small.h5")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    # Small data, default setting: plain NumPy; with the setting at 0: the Numba kernels.
    assert loaded["numba"] is (small == "0")
    if small == "":
        assert loaded["scipy"] is False
