"""StdDevUDF against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import StdDevUDF
from libertem_gpu.io.tiles import TilingScheme
from tests.udf.builtin_cases import CASES, case_params, load_case


@pytest.mark.parametrize("case", case_params(CASES))
def test_stddev_matches_numpy(ctx, rng, tmp_path, case):
    loaded = load_case(ctx, case, rng, tmp_path)
    res = loaded.run(ctx, StdDevUDF())
    frames = loaded.selected
    n = len(frames)
    mean = frames.mean(axis=0)
    var = frames.var(axis=0)
    scale = float(np.abs(frames).max())
    assert int(res["num_frames"].data[0]) == n
    for name, expected, atol in (
        ("mean", mean, 1e-12 * scale),
        ("var", var, 1e-9 * scale**2),
        ("std", np.sqrt(var), 1e-9 * scale),
        ("sum", frames.sum(axis=0), 1e-12 * scale * n),
        ("varsum", var * n, 1e-9 * scale**2 * n),
    ):
        got = res[name].data
        assert got.dtype == np.float64, name
        assert got.shape == case.sig, name
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=atol, err_msg=name)


def test_stable_for_large_mean(ctx, rng):
    # Mean 1e6, std 1: the naive sum(x**2) - sum(x)**2 / n loses almost every digit in float64.
    data = 1e6 + rng.standard_normal((16, 10, 8, 9))
    ds = ctx.load("memory", data=data, num_partitions=5)
    res = ctx.run_udf(dataset=ds, udf=StdDevUDF(), tiling=TilingScheme(depth=7))
    frames = data.reshape(-1, 8, 9)
    np.testing.assert_allclose(res["var"].data, frames.var(axis=0), rtol=1e-8)
    np.testing.assert_allclose(res["mean"].data, frames.mean(axis=0), rtol=1e-14)


def test_single_frame_and_empty_roi(inline_ctx, rng):
    data = rng.integers(0, 1000, size=(3, 4, 5, 6)).astype(np.uint16)
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    roi = np.zeros((3, 4), dtype=bool)
    roi[2, 1] = True
    res = inline_ctx.run_udf(dataset=ds, udf=StdDevUDF(), roi=roi)
    np.testing.assert_array_equal(res["mean"].data, data[2, 1])
    np.testing.assert_array_equal(res["var"].data, np.zeros((5, 6)))
    res = inline_ctx.run_udf(dataset=ds, udf=StdDevUDF(), roi=np.zeros((3, 4), dtype=bool))
    assert int(res["num_frames"].data[0]) == 0
    assert np.isnan(res["mean"].data).all() and np.isnan(res["std"].data).all()


def test_compiled_runs_finalize_and_merge_in_one_pass(monkeypatch):
    # Runs with the compiled CPU kernels finalize and merge with the one-pass loops (the same
    # bits as NumPy's chunked forms); small runs with the plain kernels import no Numba for it.
    from libertem_gpu import Context, StdDevUDF, config
    from libertem_gpu.kernels import moments_cpu

    calls = []
    for name in ("finalize_sums_into", "merge_sums_into"):
        original = getattr(moments_cpu, name)
        monkeypatch.setattr(
            moments_cpu, name, lambda *a, f=original, n=name: (calls.append(n), f(*a))[1]
        )
    data = np.random.default_rng(4).integers(0, 4000, (4, 5, 9, 11)).astype(np.uint16)
    want = data.reshape(20, 9, 11).astype(np.float64).var(axis=0)
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=data, num_partitions=3)
        for limit, compiled in ((0, True), (2**30, False)):
            calls.clear()
            with config.set(small_run_bytes=limit):
                got = ctx.run_udf(dataset=ds, udf=StdDevUDF())["var"].data
            np.testing.assert_allclose(got, want, rtol=1e-12)
            assert bool(calls) == compiled
            if compiled:
                assert calls.count("finalize_sums_into") == 3
                assert calls.count("merge_sums_into") == 3
