"""LogsumUDF against NumPy: every dtype, nav of 1-3 dims, rois, sync offsets, partitions,
every executor; the minimum is per frame."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import Context, LogsumUDF
from libertem_gpu.errors import UDFDefinitionError
from libertem_gpu.io.tiles import TilingScheme
from tests.udf.builtin_cases import CASES, case_params, load_case


def reference(frames: np.ndarray) -> np.ndarray:
    """``sum_i log(frame_i - min(frame_i) + 1)`` in float64, from the definition."""
    total = np.zeros(frames.shape[1:])
    for f in frames.astype(np.float64):
        total += np.log(f - f.min() + 1)
    return total


@pytest.mark.parametrize("case", case_params(CASES))
def test_logsum_matches_numpy(ctx, rng, tmp_path, case):
    loaded = load_case(ctx, case, rng, tmp_path)
    res = loaded.run(ctx, LogsumUDF())["logsum"]
    assert res.data.dtype == np.float64 and res.data.shape == case.sig
    np.testing.assert_allclose(res.data, reference(loaded.selected), rtol=1e-12)


def test_frames_arrive_whole(inline_ctx: Context, rng):
    """A tiling that asks for row slabs still gives whole frames (the minimum is a frame's)."""
    data = rng.integers(0, 3000, (3, 5, 11, 9)).astype(np.uint16)
    data[1, 2, :5] += 20000  # the top rows brighter: a per-slab minimum would differ
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    res = inline_ctx.run_udf(ds, LogsumUDF(), tiling=TilingScheme(depth=2, sig_rows=4))
    np.testing.assert_allclose(res["logsum"].data, reference(data.reshape(-1, 11, 9)), rtol=1e-12)


def test_complex_data_is_refused(inline_ctx: Context):
    ds = inline_ctx.load("memory", data=np.ones((2, 2, 4, 4), np.complex64))
    with pytest.raises(UDFDefinitionError, match="complex"):
        inline_ctx.run_udf(ds, LogsumUDF())
