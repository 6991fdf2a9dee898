"""WindowFramesUDF: each frame's window, binned, against NumPy on random data, every executor,
rois, sync offsets and several partitions."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.ptycho.frames import WindowFramesUDF
from tests.conftest import random_data


@pytest.mark.parametrize("binning, box", [(1, (2, 3, 6)), (2, (1, 0, 8)), (3, (0, 2, 9))])
def test_windows_against_numpy(ctx, rng, binning, box):
    nav, sig, sync = (5, 7), (11, 13), 2
    data = random_data(rng, (*nav, *sig), "uint16") // 16
    ds = ctx.load("memory", data=data, sync_offset=sync, num_partitions=3)
    roi = rng.random(nav) > 0.3
    y0, x0, size = box
    res = ctx.run_udf(dataset=ds, udf=WindowFramesUDF(y0, x0, size, binning), roi=roi)
    n = size // binning
    flat = data.reshape(-1, *sig).astype(np.float64)
    got = np.asarray(res["frames"].data).reshape(-1, n, n)
    valid = np.asarray(res["frames"].valid_mask).reshape(-1)
    for i in range(flat.shape[0]):
        has = 0 <= i + sync < flat.shape[0] and roi.reshape(-1)[i]
        assert valid[i] == has
        if not has:
            continue
        window = flat[i + sync, y0 : y0 + size, x0 : x0 + size]
        want = window.reshape(n, binning, n, binning).sum(axis=(1, 3))
        np.testing.assert_allclose(got[i], want, rtol=1e-6)
    assert res["frames"].data.dtype == np.float32
