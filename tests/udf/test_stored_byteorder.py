"""Big-endian integer data sets: analyses whose kernels swap while reading get the stored bytes
straight from the mapped file; the results equal those of native data."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import (
    ApplyMasksUDF,
    CoMUDF,
    MaxUDF,
    MinUDF,
    StdDevUDF,
    SumSigUDF,
    SumUDF,
)
from libertem_gpu.masks import disk, ring
from libertem_gpu.plan import plan_tiling
from libertem_gpu.udf.client import UDFClientState
from tests.conftest import random_data

SIG = (13, 17)


def _swapping_udfs():
    return [
        SumUDF(),
        SumSigUDF(),
        MaxUDF(),
        MinUDF(),
        ApplyMasksUDF(mask_factories=[lambda: disk(SIG, 6, 8, 4), lambda: ring(SIG, 6, 8, 6, 3)]),
        CoMUDF.with_params(cy=6, cx=8, r=5),
    ]


def _load(ctx, tmp_path, data, dtype):
    path = tmp_path / "be.raw"
    data.astype(dtype).tofile(path)
    return ctx.load(
        "raw", path=path, nav_shape=data.shape[:2], sig_shape=SIG, dtype=dtype, num_partitions=3
    )


def _scheme(ds, udfs):
    for u in udfs:
        UDFClientState(u, ds, None, ds.shape.nav_size)
    return plan_tiling(ds, udfs, "numpy", ds.get_partitions(2))


@pytest.mark.parametrize("dtype", [">u2", ">u4"])
def test_results_equal_native(ctx, rng, tmp_path, dtype):
    data = random_data(rng, (5, 7, *SIG), dtype.replace(">", "<"))
    big = _load(ctx, tmp_path, data, dtype)
    assert _scheme(big, _swapping_udfs()).stored_byteorder
    little = ctx.load("memory", data=data)
    roi = rng.random((5, 7)) > 0.3
    got = ctx.run_udf(dataset=big, udf=_swapping_udfs(), roi=roi)
    want = ctx.run_udf(dataset=little, udf=_swapping_udfs(), roi=roi)
    for g, w in zip(got, want, strict=True):
        for name in w:
            np.testing.assert_allclose(g[name].raw_data, w[name].raw_data, rtol=1e-12)


def test_one_analysis_without_swapping_kernel_means_native_tiles(inline_ctx, rng, tmp_path):
    data = random_data(rng, (4, 6, *SIG), "uint16")
    big = _load(inline_ctx, tmp_path, data, ">u2")
    udfs = [*_swapping_udfs(), StdDevUDF()]
    assert not _scheme(big, udfs).stored_byteorder
    got = inline_ctx.run_udf(dataset=big, udf=udfs)
    np.testing.assert_allclose(got[0]["intensity"].data, data.sum(axis=(0, 1)))
    np.testing.assert_allclose(got[-1]["var"].data, data.reshape(24, -1).var(axis=0).reshape(SIG))


def test_dense_masks_and_signed_types_keep_native_tiles(inline_ctx, rng, tmp_path):
    data = random_data(rng, (4, 6, *SIG), "uint16")
    big = _load(inline_ctx, tmp_path, data, ">u2")
    weights = rng.random(SIG)
    noisy = ApplyMasksUDF(mask_factories=[lambda: weights])
    assert not _scheme(big, [noisy]).stored_byteorder
    signed = _load(inline_ctx, tmp_path, data.astype(np.int16), ">i2")
    assert not _scheme(signed, [SumUDF()]).stored_byteorder
    native = _load(inline_ctx, tmp_path, data, "<u2")
    assert not _scheme(native, [SumUDF()]).stored_byteorder
