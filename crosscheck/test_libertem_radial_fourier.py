"""Cross-check: ``create_radial_fourier_analysis`` against LiberTEM 0.16's, on the same data.

Parameters (defaults and the ``use_sparse`` choice included), result keys and their order,
shapes and dtypes must be equal; coefficients agree to float32 precision (both compute with
complex64 masks). ``dominant_<b>`` is compared without a roi only: with one, LiberTEM's
threshold is NaN (see ``docs/libertem.md``).

Run with ``crosscheck/run.sh`` (it installs ``libertem==0.16.0`` beside our package).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

libertem_api = pytest.importorskip("libertem.api", reason="the cross-check needs libertem==0.16")
from libertem.io.dataset.memory import MemoryDataSet  # noqa: E402

from libertem_gpu import Context  # noqa: E402

RNG = np.random.default_rng(7)
CASES = [
    ("float32", (4, 5, 13, 11), dict(cx=5.3, cy=6.1, ri=1, ro=5, n_bins=2, max_order=3)),
    ("float32", (4, 5, 13, 11), {}),
    ("uint16", (3, 7, 17, 15), dict(cx=7, cy=8.5, ri=0, ro=7, n_bins=3, max_order=6)),
    ("uint16", (3, 7, 17, 15), dict(use_sparse=True, n_bins=2, max_order=5)),
    ("uint16", (2, 3, 64, 64), dict(n_bins=12, max_order=8)),  # sparse by default
    ("uint16", (2, 3, 64, 64), dict(n_bins=3, max_order=8)),
]


@pytest.fixture(scope="module")
def contexts():
    lt, ours = libertem_api.Context.make_with("inline"), Context("inline")
    yield lt, ours
    lt.close()
    ours.close()


def _run(ctx, ds, params, roi):
    analysis = ctx.create_radial_fourier_analysis(dataset=ds, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN / NaN outside the roi
        res = ctx.run(analysis, roi=roi)
        return analysis.parameters, {r.key: np.asarray(r.raw_data) for r in res}, res.raw_results


@pytest.mark.parametrize("use_roi", [False, True])
@pytest.mark.parametrize(("dtype", "shape", "params"), CASES, ids=str)
def test_radial_fourier_as_libertem(contexts, dtype, shape, params, use_roi):
    lt, ours = contexts
    data = (RNG.random(shape) * 1000).astype(dtype)
    roi = RNG.random(shape[:2]) > 0.4 if use_roi else None
    lt_p, lt_r, lt_raw = _run(lt, MemoryDataSet(data=data, num_partitions=3), params, roi)
    p, r, raw = _run(ours, ours.load("memory", data=data, num_partitions=3), params, roi)

    assert {k: str(v) for k, v in p.items()} == {k: str(v) for k, v in lt_p.items()}
    assert list(r) == list(lt_r)
    assert raw.shape == lt_raw.shape and raw.dtype == lt_raw.dtype
    # the bins' intensity: float32 rounding is relative to it
    scale = np.nanmax(np.abs(lt_raw[:, :1]))
    np.testing.assert_allclose(raw, lt_raw, rtol=0, atol=2e-6 * scale)
    for key, expected in lt_r.items():
        got = r[key]
        assert got.shape == expected.shape and got.dtype == expected.dtype, key
        if key.startswith("dominant"):
            # with a roi: equal inside it where ours finds a dominant order (LiberTEM never
            # reports 0 there); outside it ours reports 0, LiberTEM 1
            same = np.ones(got.shape, bool) if roi is None else roi & (got != 0)
            np.testing.assert_array_equal(got[same], expected[same], err_msg=key)
            if roi is not None:
                assert (got[~roi] == 0).all() and (expected[~roi] == 1).all(), key
        elif key.startswith("phase"):
            magnitude = np.abs(lt_r[key.replace("phase", "complex")])
            strong = magnitude > 1e-3 * np.nanmax(magnitude)
            turn = np.angle(np.exp(1j * (got[strong] - expected[strong].astype(np.float64))))
            assert np.abs(turn).max() < 1e-3, key
        else:
            # absolute: scale of the bin's intensity; complex n >= 1: divided by it
            normalised = key.startswith("complex_") and not key.endswith("_0")
            tol = 2e-6 if normalised else 2e-6 * scale
            np.testing.assert_allclose(got, expected, rtol=0, atol=tol, err_msg=key)
