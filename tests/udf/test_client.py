"""The client side of a run: what it keeps after the run."""

from __future__ import annotations

import gc

import numpy as np

from libertem_gpu import CoMUDF, SumUDF
from libertem_gpu.udf.client import UDFRun
from tests.conftest import random_data


def test_a_finished_run_is_freed_without_the_cycle_collector(inline_ctx, rng):
    # A reference cycle (run -> UDF -> meta -> run) kept every run's scan-sized buffers
    # alive until the cyclic collector ran: hundreds of MiB per run for large frames.
    ds = inline_ctx.load("memory", data=random_data(rng, (4, 5, 8, 9), "uint16"))
    gc.collect()
    gc.disable()
    try:
        results = inline_ctx.run_udf(dataset=ds, udf=[SumUDF(), CoMUDF()])
        assert not [o for o in gc.get_objects() if isinstance(o, UDFRun)]
    finally:
        gc.enable()
    assert np.isfinite(results[1]["field_x"].data).all()
