"""Cross-check: CrystallinityUDF against LiberTEM 0.16's on the same data and parameters
(float32 tolerance), both CPU strategies (partial DFT, FFT), with and without the real-space
blank, odd and even frame sizes, from our package and from the compat import path."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("libertem.api", reason="the cross-check needs libertem==0.16")
from libertem.api import Context as LTContext
from libertem.udf.crystallinity import CrystallinityUDF as LTCrystallinityUDF

from crosscheck._analyses import assert_float32_close, run_both
from libertem_gpu import Context, CrystallinityUDF
from libertem_gpu.compat.udf.crystallinity import (
    CrystallinityUDF as CompatCrystallinityUDF,
)
from libertem_gpu.kernels import fourier_mask

RNG = np.random.default_rng(20)
PARAMS = [
    dict(rad_in=1, rad_out=4, real_center=(6, 5), real_rad=2),
    dict(rad_in=0, rad_out=3, real_center=None, real_rad=None),  # odd sizes: DC in the band
    dict(rad_in=2, rad_out=30, real_center=(7.5, 3), real_rad=3.5),
]


@pytest.fixture(scope="module")
def contexts():
    lt, ours = LTContext.make_with("inline"), Context("inline")
    yield lt, ours
    lt.close()
    ours.close()


@pytest.mark.parametrize("shape", [(4, 7, 15, 11), (3, 5, 16, 12)], ids=str)
@pytest.mark.parametrize("strategy", ["dft", "fft"])
@pytest.mark.parametrize("params", PARAMS, ids=str)
def test_crystallinity_as_libertem(contexts, monkeypatch, params, strategy, shape):
    monkeypatch.setattr(fourier_mask, "_DFT_COLUMNS_PER_LOG2", 100 if strategy == "dft" else 0)
    data = RNG.poisson(200, shape).astype(np.uint16)
    got, want = run_both(
        *contexts, data, LTCrystallinityUDF(**params), CrystallinityUDF(**params), "intensity"
    )
    assert_float32_close(got, want, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_compat_path_with_roi(contexts, dtype):
    data = (RNG.random((4, 7, 15, 11)) * 3000).astype(dtype)
    roi = RNG.random((4, 7)) > 0.4
    params = dict(rad_in=1.5, rad_out=5, real_center=(7, 5), real_rad=2)
    got, want = run_both(
        *contexts,
        data,
        LTCrystallinityUDF(**params),
        CompatCrystallinityUDF(**params),
        "intensity",
        roi,
    )
    assert_float32_close(got, want, rtol=1e-5)
