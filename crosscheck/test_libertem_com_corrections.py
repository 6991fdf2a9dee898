"""Cross-check: CoM corrections and complex data against LiberTEM 0.16, on the same data.

- ``guess_corrections`` and ``coordinate_check`` (ours: closed-form quadratic form in the
  rotation; LiberTEM's: 360 x 2 evaluations of the curl) give the same guess and curves;
- ``CoMUDF`` with the same parameters (centre, radius, rotation, flip, regression) gives the
  same ``raw_com``, ``field``, ``magnitude``, ``divergence``, ``curl`` and ``regression``;
- sums, per-frame sums, masks (real and complex), mean, variance (real: ``mean |x - mean|**2``)
  and standard deviation on complex data agree.

Run with ``crosscheck/run.sh`` (it installs ``libertem==0.16.0`` beside our package).
"""

from __future__ import annotations

import numpy as np
import pytest

lt_api = pytest.importorskip("libertem.api", reason="the cross-check needs libertem==0.16")
from libertem.io.dataset.memory import MemoryDataSet  # noqa: E402
from libertem.udf import com as lt_com  # noqa: E402
from libertem.udf.masks import ApplyMasksUDF as LtMasks  # noqa: E402
from libertem.udf.stddev import StdDevUDF as LtStd  # noqa: E402
from libertem.udf.sum import SumUDF as LtSum  # noqa: E402
from libertem.udf.sumsigudf import SumSigUDF as LtSumSig  # noqa: E402

import libertem_gpu as lg  # noqa: E402
from libertem_gpu.compat.udf import com as our_com  # noqa: E402
from libertem_gpu.udf.com import apply_correction  # noqa: E402

RNG = np.random.default_rng(11)


@pytest.fixture(scope="module")
def contexts():
    lt, ours = lt_api.Context.make_with("inline"), lg.Context("inline")
    yield lt, ours
    lt.close()
    ours.close()


def _atomic_shifts(rotation, flip, shape=(30, 34)):
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    potential = sum(
        np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 5.0)
        for cy in range(3, shape[0], 7)
        for cx in range(2, shape[1], 6)
    )
    fy, fx = np.gradient(potential)
    ry, rx = apply_correction(fy, fx, rotation, flip, forward=False)
    return ry + 0.02 * RNG.standard_normal(shape) + 7, rx + 0.02 * RNG.standard_normal(shape) + 9


@pytest.mark.parametrize(("rotation", "flip"), [(0, False), (23, False), (-97, True), (151, True)])
@pytest.mark.parametrize("roi", ["default", "mask"])
def test_guess_corrections_as_libertem(rotation, flip, roi):
    ry, rx = _atomic_shifts(rotation, flip)
    sel = None if roi == "default" else RNG.random(ry.shape) > 0.3
    ours = our_com.guess_corrections(ry, rx, roi=sel)
    theirs = lt_com.guess_corrections(ry, rx, roi=sel)
    assert ours.scan_rotation == theirs.scan_rotation and ours.flip_y == theirs.flip_y
    assert ours.cy == pytest.approx(theirs.cy) and ours.cx == pytest.approx(theirs.cx)
    curves = zip(
        our_com.coordinate_check(ry, rx, sel), lt_com.coordinate_check(ry, rx, sel), strict=True
    )
    for a, b in curves:
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def _frames(shape, sig=(15, 17)):
    """Random frames with a bright, moving disk, so that shifts and fields are not noise."""
    ry, rx = _atomic_shifts(31, True, shape)
    r, c = np.mgrid[: sig[0], : sig[1]].astype(np.float64)
    disk = np.exp(-((r - ry[..., None, None] + 0.0) ** 2 + (c - rx[..., None, None]) ** 2) / 6.0)
    return (disk * 1000 + RNG.random(shape + sig) * 50).astype(np.float32)


PARAMS = [
    {},
    dict(cy=7.2, cx=8.9, r=6.0, scan_rotation=31.0, flip_y=True, regression=1),
    dict(cy=7, cx=8, r=7.5, ri=2.0, scan_rotation=-12.0, regression=0),
]


@pytest.mark.parametrize("params", PARAMS, ids=str)
def test_com_results_as_libertem(contexts, params):
    lt, ours = contexts
    data = _frames((9, 11))
    theirs = lt.run_udf(
        dataset=MemoryDataSet(data=data, num_partitions=3), udf=lt_com.CoMUDF.with_params(**params)
    )
    mine = ours.run_udf(
        dataset=ours.load("memory", data=data, num_partitions=3),
        udf=lg.CoMUDF.with_params(**params),
    )
    keys = ["raw_com", "raw_shifts", "field", "field_y", "field_x", "magnitude"]
    keys += ["divergence", "curl", "regression"]
    for key in keys:
        np.testing.assert_allclose(
            mine[key].data, theirs[key].data, rtol=1e-4, atol=1e-4, err_msg=key
        )


def test_complex_data_as_libertem(contexts):
    lt, ours = contexts
    shape = (4, 5, 9, 11)
    data = (RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)).astype(np.complex64)
    real_mask = RNG.standard_normal(shape[2:])
    complex_mask = (RNG.standard_normal(shape[2:]) + 1j * RNG.standard_normal(shape[2:])).astype(
        np.complex64
    )

    def factories():
        return [lambda: real_mask, lambda: complex_mask]

    theirs = lt.run_udf(
        dataset=MemoryDataSet(data=data, num_partitions=2),
        udf=[LtSum(), LtSumSig(), LtStd(), LtMasks(mask_factories=factories())],
    )
    mine = ours.run_udf(
        dataset=ours.load("memory", data=data, num_partitions=2),
        udf=[lg.SumUDF(), lg.SumSigUDF(), lg.StdDevUDF(), lg.ApplyMasksUDF(factories())],
    )
    tol = {"rtol": 1e-4, "atol": 1e-4}
    np.testing.assert_allclose(mine[0]["intensity"].data, theirs[0]["intensity"].data, **tol)
    np.testing.assert_allclose(mine[1]["intensity"].data, theirs[1]["intensity"].data, **tol)
    for key in ("mean", "var", "std", "varsum", "num_frames"):  # var: mean |x - mean|**2
        np.testing.assert_allclose(mine[2][key].data, theirs[2][key].data, **tol, err_msg=key)
    np.testing.assert_allclose(mine[3]["intensity"].data, theirs[3]["intensity"].data, **tol)
