"""Cross-check: LogsumUDF against LiberTEM 0.16's on the same data (float32 tolerance), from
our package and from the compat import path."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("libertem.api", reason="the cross-check needs libertem==0.16")
from libertem.api import Context as LTContext
from libertem.udf.logsum import LogsumUDF as LTLogsumUDF

from crosscheck._analyses import assert_float32_close, run_both
from libertem_gpu import Context, LogsumUDF
from libertem_gpu.compat.udf.logsum import LogsumUDF as CompatLogsumUDF

RNG = np.random.default_rng(18)


@pytest.fixture(scope="module")
def contexts():
    lt, ours = LTContext.make_with("inline"), Context("inline")
    yield lt, ours
    lt.close()
    ours.close()


@pytest.mark.parametrize("use_roi", [False, True])
@pytest.mark.parametrize("dtype", ["uint16", "float32"])
@pytest.mark.parametrize("ours", [LogsumUDF, CompatLogsumUDF])
def test_logsum_as_libertem(contexts, ours, dtype, use_roi):
    data = (RNG.random((4, 7, 13, 11)) * 3000).astype(dtype)
    roi = RNG.random((4, 7)) > 0.4 if use_roi else None
    got, want = run_both(*contexts, data, LTLogsumUDF(), ours(), "logsum", roi)
    assert_float32_close(got, want)
