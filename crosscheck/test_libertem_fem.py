"""Cross-check: FEMUDF against LiberTEM 0.16's on the same data and parameters (float32
tolerance), from our package and from the compat import path; ``center`` is (row, column) in
both."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("libertem.api", reason="the cross-check needs libertem==0.16")
from libertem.api import Context as LTContext
from libertem.udf.FEM import FEMUDF as LTFEMUDF

from crosscheck._analyses import assert_float32_close, run_both
from libertem_gpu import FEMUDF, Context
from libertem_gpu.compat.udf.FEM import FEMUDF as CompatFEMUDF

RNG = np.random.default_rng(19)
PARAMS = [
    dict(center=(6, 4), rad_in=1, rad_out=4),
    dict(center=(7.5, 5.2), rad_in=0, rad_out=3.5),  # non-square frame: (row, column) matters
    dict(center=(3, 8), rad_in=2.5, rad_out=6),
]


@pytest.fixture(scope="module")
def contexts():
    lt, ours = LTContext.make_with("inline"), Context("inline")
    yield lt, ours
    lt.close()
    ours.close()


@pytest.mark.parametrize("use_roi", [False, True])
@pytest.mark.parametrize("dtype", ["uint16", "float32"])
@pytest.mark.parametrize("params", PARAMS, ids=str)
@pytest.mark.parametrize("ours", [FEMUDF, CompatFEMUDF])
def test_fem_as_libertem(contexts, ours, params, dtype, use_roi):
    data = (RNG.random((4, 7, 15, 11)) * 3000).astype(dtype)
    roi = RNG.random((4, 7)) > 0.4 if use_roi else None
    got, want = run_both(*contexts, data, LTFEMUDF(**params), ours(**params), "intensity", roi)
    assert_float32_close(got, want)
