"""Several built-in analyses in one pass, partial results, and LiberTEM-style use."""

from __future__ import annotations

import numpy as np

import libertem_gpu
from libertem_gpu import (
    ApplyMasksUDF,
    CoMUDF,
    MaxUDF,
    PickUDF,
    StdDevUDF,
    SumSigUDF,
    SumUDF,
    masks,
)
from libertem_gpu.io.tiles import TilingScheme
from tests.udf.test_com import com_reference, gradient_reference


def test_several_udfs_in_one_pass(ctx, rng):
    data = rng.integers(0, 4000, size=(6, 7, 13, 17)).astype(np.uint16)
    ds = ctx.load("memory", data=data, num_partitions=3)
    roi = rng.random((6, 7)) > 0.5
    udfs = [
        SumUDF(),
        CoMUDF.with_params(cy=6, cx=8, r=5),
        SumSigUDF(),
        StdDevUDF(),
        ApplyMasksUDF(mask_factories=[lambda: masks.disk((13, 17), 6, 8, 3)]),
        PickUDF(),
    ]
    results = ctx.run_udf(dataset=ds, udf=udfs, roi=roi, tiling=TilingScheme(depth=2, sig_rows=4))
    assert isinstance(results, tuple) and len(results) == len(udfs)
    f = data.astype(np.float64)[roi]
    np.testing.assert_allclose(results[0]["intensity"].data, f.sum(axis=0), rtol=1e-12)
    _, _, fy, fx = com_reference(f, (13, 17), cy=6, cx=8, r=5)
    np.testing.assert_allclose(results[1]["field"].raw_data, np.stack([fy, fx], -1), rtol=1e-9)
    np.testing.assert_allclose(results[2]["intensity"].raw_data, f.sum(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(results[3]["std"].data, f.std(axis=0), rtol=1e-9)
    disk = masks.disk((13, 17), 6, 8, 3)
    np.testing.assert_allclose(
        results[4]["intensity"].raw_data[:, 0], (f * disk).sum(axis=(1, 2)), rtol=1e-12
    )
    np.testing.assert_array_equal(results[5]["intensity"].data, data[roi])


def test_run_udf_iter_gives_growing_partial_results(ctx, rng):
    data = rng.integers(0, 4000, size=(8, 5, 9, 11)).astype(np.uint16)
    ds = ctx.load("memory", data=data, num_partitions=4)
    f = data.astype(np.float64)
    steps = list(ctx.run_udf_iter(dataset=ds, udf=[SumSigUDF(), SumUDF(), MaxUDF(), StdDevUDF()]))
    assert len(steps) == 4
    done_before = 0
    for step in steps:
        damage = step.damage.data
        assert damage.sum() > done_before
        done_before = damage.sum()
        sumsig, total, maximum, std = step.buffers
        # processed positions hold their final values; the rest are not final yet
        np.testing.assert_allclose(
            sumsig["intensity"].data[damage], f[damage].sum(axis=(1, 2)), rtol=1e-12
        )
        np.testing.assert_array_equal(sumsig["intensity"].valid_mask, damage)
        np.testing.assert_allclose(total["intensity"].data, f[damage].sum(axis=0), rtol=1e-12)
        np.testing.assert_array_equal(maximum["intensity"].data, data[damage].max(axis=0))
        assert int(std["num_frames"].data[0]) == damage.sum()
        np.testing.assert_allclose(std["var"].data, f[damage].var(axis=0), rtol=1e-9)
    assert steps[-1].damage.data.all()


def test_libertem_style_script(ctx, rng):
    """The common path of a LiberTEM script, with only the import changed."""
    data = rng.integers(0, 1000, size=(4, 5, 16, 16)).astype(np.uint16)
    ds = ctx.load("memory", data=data, sig_dims=2)

    def bf():
        return masks.circular(centerX=8, centerY=8, imageSizeX=16, imageSizeY=16, radius=4)

    def adf():
        return masks.ring(
            centerX=8, centerY=8, imageSizeX=16, imageSizeY=16, radius=8, radius_inner=5
        )

    f = data.astype(np.float64)
    res = ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(mask_factories=[bf, adf]))
    want = np.stack([(f * bf()).sum(axis=(2, 3)), (f * adf()).sum(axis=(2, 3))], axis=-1)
    np.testing.assert_allclose(res["intensity"].data, want, rtol=1e-6)
    com = ctx.run_udf(dataset=ds, udf=libertem_gpu.CoMUDF.with_params(cy=8, cx=8, r=6))
    _, _, fy, fx = com_reference(f, (16, 16), cy=8, cx=8, r=6)
    fy, fx = fy.reshape(4, 5), fx.reshape(4, 5)
    np.testing.assert_allclose(com["field_y"].data, fy, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(com["field_x"].data, fx, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(com["magnitude"].data, np.hypot(fy, fx), rtol=1e-9, atol=1e-12)
    every = np.ones((4, 5), bool)
    div = gradient_reference(fy, every, 0) + gradient_reference(fx, every, 1)
    curl = gradient_reference(fy, every, 1) - gradient_reference(fx, every, 0)
    np.testing.assert_allclose(com["divergence"].data, div, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(com["curl"].data, curl, rtol=1e-9, atol=1e-12)
    std = ctx.run_udf(dataset=ds, udf=StdDevUDF())
    frames = f.reshape(20, 16, 16)
    assert int(std["num_frames"].data[0]) == 20
    for name, want in (
        ("mean", frames.mean(axis=0)),
        ("var", frames.var(axis=0)),
        ("std", frames.std(axis=0)),
        ("sum", frames.sum(axis=0)),
        ("varsum", frames.var(axis=0) * 20),
    ):
        np.testing.assert_allclose(std[name].data, want, rtol=1e-9, atol=1e-9, err_msg=name)
    roi = np.zeros((4, 5), dtype=bool)
    roi[1, 1] = True
    pick = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)
    np.testing.assert_array_equal(pick["intensity"].raw_data[0], data[1, 1])
