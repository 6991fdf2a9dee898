"""Cross-check: LiberTEM 0.16's ``SumfftAnalysis`` and ``ApplyFFTMask`` (its
``CrystallinityUDF``) against ours, with the same parameters on the same data.

Result keys, shapes and dtypes of the raw results must be equal (the images differ in colour
map, as everywhere: ours are grey RGB); the numbers agree to float32 precision (LiberTEM
transforms each frame with ``numpy.fft`` in float32 or float64, we a tile at a time with
``scipy.fft`` in float32). LiberTEM 0.16 has no holography (it moved to LiberTEM-holo); our
``HoloReconstructUDF`` is checked against LiberTEM 0.14's algorithm in ``tests/udf``.

Run with ``crosscheck/run.sh`` (it installs ``libertem==0.16.0`` beside our package).
"""

from __future__ import annotations

import numpy as np
import pytest

libertem_api = pytest.importorskip("libertem.api", reason="the cross-check needs libertem==0.16")
from libertem.analysis import ApplyFFTMask as LTApplyFFTMask  # noqa: E402
from libertem.analysis import SumfftAnalysis as LTSumfftAnalysis  # noqa: E402
from libertem.io.dataset.memory import MemoryDataSet  # noqa: E402

from libertem_gpu import Context  # noqa: E402
from libertem_gpu.analysis.fft import ApplyFFTMask, SumfftAnalysis  # noqa: E402

RNG = np.random.default_rng(19)
SHAPES = [("uint16", (4, 5, 16, 16)), ("float32", (3, 7, 13, 11)), ("uint16", (2, 3, 15, 18))]
REAL = [{}, dict(real_centerx=5.5, real_centery=6, real_rad=2.5)]


@pytest.fixture(scope="module")
def contexts():
    lt, ours = libertem_api.Context.make_with("inline"), Context("inline")
    yield lt, ours
    lt.close()
    ours.close()


def _run(ctx, cls, ds, params, roi):
    res = ctx.run(cls(dataset=ds, parameters=params), roi=roi)
    return {r.key: (np.asarray(r.raw_data), np.asarray(r.visualized)) for r in res}


def _close(a, b, rtol=1e-5):
    assert a.shape == b.shape
    finite = np.isfinite(b)
    assert np.array_equal(np.isfinite(a), finite)
    scale = float(np.abs(b[finite]).max()) if finite.any() else 1.0
    np.testing.assert_allclose(a[finite], b[finite], rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("real", REAL, ids=["no-blank", "blank"])
@pytest.mark.parametrize(("dtype", "shape"), SHAPES, ids=str)
def test_apply_fft_mask_as_libertem(contexts, dtype, shape, real):
    lt, ours = contexts
    data = (RNG.random(shape) * 3000).astype(dtype)
    roi = RNG.random(shape[:2]) > 0.3
    params = dict(rad_in=1.5, rad_out=5, **real)
    if not real:  # LiberTEM indexes these keys
        params.update(real_centerx=None, real_centery=None, real_rad=None)
    theirs = _run(lt, LTApplyFFTMask, MemoryDataSet(data=data, num_partitions=3), params, roi)
    got = _run(ours, ApplyFFTMask, ours.load("memory", data=data, num_partitions=3), params, roi)
    assert list(got) == list(theirs) == ["intensity"]
    assert got["intensity"][0].dtype == theirs["intensity"][0].dtype
    _close(got["intensity"][0], theirs["intensity"][0])


@pytest.mark.parametrize("real", REAL, ids=["no-blank", "blank"])
@pytest.mark.parametrize(("dtype", "shape"), SHAPES, ids=str)
def test_sumfft_as_libertem(contexts, dtype, shape, real):
    lt, ours = contexts
    data = (RNG.random(shape) * 3000).astype(dtype)
    theirs = _run(lt, LTSumfftAnalysis, MemoryDataSet(data=data, num_partitions=3), real, None)
    got = _run(ours, SumfftAnalysis, ours.load("memory", data=data, num_partitions=3), real, None)
    assert list(got) == list(theirs) == ["intensity"]
    assert got["intensity"][0].dtype == theirs["intensity"][0].dtype
    _close(got["intensity"][0], theirs["intensity"][0])
