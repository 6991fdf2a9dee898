"""Cross-check: detector corrections against LiberTEM 0.16's, on the same data and the same
dark frame, gain map and excluded pixels (corners, edges, clusters).

Repair environments must be equal exactly; corrected frames and the built-in analyses agree to
float32 precision (LiberTEM subtracts a float64 dark frame and multiplies by a float64 gain map
in float64 before rounding to float32, we round them to float32 first: at most an ulp or two of
a corrected value apart). LiberTEM's own ``CorrectionSet`` is also passed to our ``run_udf``.

Run with ``crosscheck/run.sh`` (it installs ``libertem==0.16.0`` beside our package).
"""

from __future__ import annotations

import numpy as np
import pytest

libertem_api = pytest.importorskip("libertem.api", reason="the cross-check needs libertem==0.16")
from libertem.corrections import CorrectionSet as LTCorrectionSet  # noqa: E402
from libertem.corrections.detector import RepairDescriptor as LTRepair  # noqa: E402
from libertem.corrections.detector import correct as lt_correct  # noqa: E402
from libertem.io.dataset.memory import MemoryDataSet  # noqa: E402
from libertem.udf.com import CoMUDF as LTCoMUDF  # noqa: E402
from libertem.udf.masks import ApplyMasksUDF as LTApplyMasksUDF  # noqa: E402
from libertem.udf.raw import PickUDF as LTPickUDF  # noqa: E402
from libertem.udf.stddev import StdDevUDF as LTStdDevUDF  # noqa: E402
from libertem.udf.sum import SumUDF as LTSumUDF  # noqa: E402
from libertem.udf.sumsigudf import SumSigUDF as LTSumSigUDF  # noqa: E402

from libertem_gpu import (  # noqa: E402
    ApplyMasksUDF,
    CoMUDF,
    Context,
    CorrectionSet,
    PickUDF,
    StdDevUDF,
    SumSigUDF,
    SumUDF,
)
from libertem_gpu.corrections import RepairDescriptor, correct  # noqa: E402

RNG = np.random.default_rng(11)
SIG = (15, 17)


def excluded_pixels(sig):
    rows, cols = sig
    ex = np.zeros(sig, bool)
    ex[0, 0] = ex[0, -1] = ex[-1, 0] = ex[-1, -1] = True  # corners
    ex[rows // 2, 0] = ex[0, cols // 2] = True  # edges
    ex[4, 5] = ex[5, 5] = ex[5, 6] = ex[4, 6] = True  # a 2x2 cluster
    ex[10, 3:6] = True  # a row of three
    return ex


@pytest.fixture(scope="module")
def contexts():
    lt, ours = libertem_api.Context.make_with("inline"), Context("inline")
    yield lt, ours
    lt.close()
    ours.close()


def test_repair_environments_as_libertem():
    ex = excluded_pixels(SIG)
    coords = np.array(np.nonzero(ex))
    ours, theirs = RepairDescriptor(SIG, coords), LTRepair(SIG, coords)
    np.testing.assert_array_equal(ours.exclude_flat, theirs.exclude_flat)
    np.testing.assert_array_equal(ours.repair_counts, theirs.repair_counts)
    for i, count in enumerate(ours.repair_counts):
        np.testing.assert_array_equal(ours.repair_flat[i, :count], theirs.repair_flat[i, :count])


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_correct_as_libertem(dtype):
    frames = (RNG.random((6, *SIG)) * 3000).astype(dtype)
    dark = RNG.random(SIG) * 40
    gain = RNG.random(SIG) + 0.5
    coords = np.array(np.nonzero(excluded_pixels(SIG)))
    ours = correct(frames, dark, gain, excluded_pixels=coords)
    theirs = lt_correct(frames, dark, gain, excluded_pixels=coords)
    assert ours.dtype == theirs.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=2e-6 * np.abs(theirs).max())


@pytest.mark.parametrize("use_roi", [False, True])
@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_analyses_with_corrections_as_libertem(contexts, dtype, use_roi):
    lt, ours = contexts
    data = (RNG.random((4, 5, *SIG)) * 3000).astype(dtype)
    roi = RNG.random((4, 5)) > 0.4 if use_roi else None
    dark = RNG.random(SIG) * 40
    gain = RNG.random(SIG) + 0.5
    ex = excluded_pixels(SIG)
    lt_corr = LTCorrectionSet(dark=dark, gain=gain, excluded_pixels=ex)
    our_corr = CorrectionSet(dark=dark, gain=gain, excluded_pixels=ex)
    masks = [RNG.random(SIG), (RNG.random(SIG) > 0.5).astype(np.float64)]
    com = dict(cy=7.2, cx=8.4, r=6.5)

    # A copy: LiberTEM corrects float32 tiles of a memory data set in place, in the array itself.
    lt_ds = MemoryDataSet(data=data.copy(), num_partitions=3)
    lt_res = lt.run_udf(
        lt_ds,
        [
            LTSumUDF(),
            LTSumSigUDF(),
            LTStdDevUDF(),
            LTApplyMasksUDF(mask_factories=[lambda m=m: m for m in masks]),
            LTCoMUDF.with_params(**com),
        ],
        roi=roi,
        corrections=lt_corr,
    )
    ds = ours.load("memory", data=data, num_partitions=3)
    udfs = [
        SumUDF(),
        SumSigUDF(),
        StdDevUDF(),
        ApplyMasksUDF(mask_factories=[lambda m=m: m for m in masks]),
        CoMUDF.with_params(**com),
    ]
    for corr in (our_corr, lt_corr):  # LiberTEM's set is taken over as it is
        res = ours.run_udf(ds, udfs, roi=roi, corrections=corr)

        def same(a, b, rtol=2e-6):
            a, b = np.asarray(a), np.asarray(b)
            scale = float(np.nanmax(np.abs(b)))
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)

        same(res[0]["intensity"].raw_data, lt_res[0]["intensity"].raw_data)
        same(res[1]["intensity"].raw_data, lt_res[1]["intensity"].raw_data)
        for key in ("mean", "var", "std"):
            same(res[2][key].raw_data, lt_res[2][key].raw_data, rtol=1e-5)
        same(res[3]["intensity"].raw_data, lt_res[3]["intensity"].raw_data, rtol=1e-5)
        same(res[4]["raw_com"].raw_data, lt_res[4]["raw_com"].raw_data, rtol=1e-5)

    if roi is not None:  # LiberTEM's PickUDF picks one position: the first of the roi
        pick_roi = np.zeros((4, 5), bool)
        pick_roi[np.unravel_index(np.flatnonzero(roi)[0], (4, 5))] = True
        fresh = MemoryDataSet(data=data.copy(), num_partitions=3)
        lt_pick = lt.run_udf(fresh, LTPickUDF(), roi=pick_roi, corrections=lt_corr)
        pick = ours.run_udf(ds, PickUDF(), roi=pick_roi, corrections=our_corr)
        got, want = pick["intensity"].raw_data, lt_pick["intensity"].raw_data
        assert got.dtype == want.dtype == np.float32
        np.testing.assert_allclose(got.reshape(SIG), want.reshape(SIG), rtol=2e-6, atol=1e-3)
