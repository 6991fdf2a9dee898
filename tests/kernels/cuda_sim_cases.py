"""Checks of the Numba-CUDA kernels, run in a child process by ``test_cuda_sim.py``.

``python cuda_sim_cases.py sim`` (with ``NUMBA_ENABLE_CUDASIM=1`` set by the caller) runs every
kernel under the CUDA simulator on tiny random inputs against the NumPy references;
``python cuda_sim_cases.py ptx`` compiles every kernel for sm_90 and sm_80. Each prints one JSON
object ``{case: "ok" | error message}``. Not a test module itself (no ``test_`` prefix).
"""

from __future__ import annotations

import json
import sys
import traceback

import numpy as np

from libertem_gpu.kernels import com_gpu, masks, masks_gpu, moments, sum_frames, sum_sig
from libertem_gpu.kernels import gpu_common as g

DTYPES = ["uint8", "uint16", "int32", "float32"]


def _data(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        hi = min(int(np.iinfo(dtype).max), 60000)
        lo = max(int(np.iinfo(dtype).min), -3000)
        return rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    return (rng.standard_normal(shape) * 100 + 20).astype(dtype)


def _close(a, b, rtol=1e-12, atol=1e-9):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def sim_cases():
    rng = np.random.default_rng(7)
    n, rows, cols = 3, 3, 7  # odd sizes: no block or chunk divides them
    npix = rows * cols
    cases = {}
    for dt in DTYPES:
        tile3 = _data(rng, (n, rows, cols), dt)
        tile = tile3.reshape(n, npix)

        def colsum(tile=tile):
            out = rng.standard_normal(npix)
            want = out + sum_frames.reference(tile)
            g.launch(sum_frames._cuda_colsum, (1, 1), (g.BLOCK,), tile, out)
            _close(out, want)

        def rowsum(tile=tile):
            out = rng.standard_normal(n)
            want = out + sum_sig.reference(tile)
            g.launch(sum_sig._cuda_rowsum, (n, 1), (g.BLOCK,), tile, out)
            _close(out, want)

        def moment(tile=tile):
            shift = tile[0].astype(np.float64)
            s1 = np.zeros(npix)
            s2 = np.zeros(npix)
            g.launch(moments._cuda_moments, (1, 1), (g.BLOCK,), tile, shift, s1, s2)
            _, mean, m2 = moments.finalize(n, shift, s1, s2)
            ref_mean, ref_var = moments.reference(tile)
            _close(mean, ref_mean)
            _close(m2 / n, ref_var, rtol=1e-9)

        def rowdot(tile=tile):
            m = rng.standard_normal((1, npix))
            out = np.zeros((n, 1))
            g.launch(masks_gpu._cuda_rowdot, (n, 1), (g.BLOCK,), tile, m[0], out)
            _close(out, masks.reference(tile, m), rtol=1e-10)

        def sparse(tile=tile):
            k = 3
            dense = rng.standard_normal((k, npix)) * (rng.random((k, npix)) > 0.5)
            indptr = np.concatenate([[0], np.cumsum((dense != 0).sum(axis=1))]).astype(np.int64)
            indices = np.concatenate([np.flatnonzero(r) for r in dense]).astype(np.int32)
            data = dense[dense != 0]
            out = np.zeros((n, k))
            g.launch(
                masks_gpu._cuda_sparse_rowdot, (n, k), (g.BLOCK,), tile, indptr, indices, data, out
            )
            _close(out, masks.reference_sparse(tile, indptr, indices, data), rtol=1e-10)

        def centre(tile3=tile3):
            w = rng.random((rows + 2, cols))
            tot, y, x = np.zeros(n), np.zeros(n), np.zeros(n)
            g.launch(com_gpu._cuda_com, (n, 1), (g.BLOCK,), tile3, w, 1, tot, y, x)
            # rows 1..rows+1 of the weights, with absolute row indices
            wf = tile3.astype(np.float64) * w[1 : rows + 1]
            r = np.arange(1, rows + 1)[:, None]
            c = np.arange(cols)[None, :]
            _close(tot, wf.sum(axis=(1, 2)), rtol=1e-10)
            _close(y, (wf * r).sum(axis=(1, 2)), rtol=1e-10)
            _close(x, (wf * c).sum(axis=(1, 2)), rtol=1e-10)

        for name, fn in [
            ("sum_frames", colsum),
            ("sum_sig", rowsum),
            ("moments", moment),
            ("masks_dense_k1", rowdot),
            ("masks_sparse", sparse),
            ("com", centre),
        ]:
            cases[f"{name}[{dt}]"] = fn
    # several blocks along both grid axes, with chunks that do not divide the row
    big = _data(rng, (40, 1100), "uint16")

    def multi_block():
        out = np.zeros(1100)
        grid = ((1100 + g.BLOCK - 1) // g.BLOCK, (40 + 31) // 32)
        g.launch(sum_frames._cuda_colsum, grid, (g.BLOCK,), big, out)
        _close(out, sum_frames.reference(big))
        out2 = np.zeros(40)
        g.launch(sum_sig._cuda_rowsum, (40, g.row_chunks(1100)), (g.BLOCK,), big, out2)
        _close(out2, sum_sig.reference(big))

    cases["multi_block[uint16]"] = multi_block
    return cases


def ptx_cases():
    from numba import cuda

    sigs = {
        sum_frames._cuda_colsum: [
            "void(uint16[:, :], float64[::1])",
            "void(float32[:, ::1], float64[::1])",
        ],
        sum_sig._cuda_rowsum: [
            "void(uint16[:, :], float64[::1])",
            "void(uint32[:, ::1], float64[::1])",
        ],
        moments._cuda_moments: ["void(uint16[:, :], float64[::1], float64[::1], float64[::1])"],
        masks_gpu._cuda_rowdot: [
            "void(uint16[:, :], float64[:], float64[:, :])",
            "void(uint8[:, :], float32[:], float32[:, :])",
        ],
        masks_gpu._cuda_sparse_rowdot: [
            "void(uint16[:, :], int64[::1], int32[::1], float64[::1], float64[:, ::1])",
            "void(uint32[:, :], int32[::1], int32[::1], float32[::1], float32[:, ::1])",
        ],
        com_gpu._cuda_com: [
            "void(uint16[:, :, :], float64[:, ::1], int64, float64[::1], float64[::1], "
            "float64[::1])",
            "void(float32[:, :, :], float64[:, ::1], int64, float64[::1], float64[::1], "
            "float64[::1])",
        ],
    }
    cases = {}
    for factory, signatures in sigs.items():
        for sig in signatures:
            for cc in ((9, 0), (8, 0)):

                def check(factory=factory, sig=sig, cc=cc):
                    ptx, _ = cuda.compile_ptx(factory(), sig, cc=cc)
                    assert f".target sm_{cc[0]}{cc[1]}" in ptx

                cases[f"{factory.__name__}:{sig}:sm_{cc[0]}{cc[1]}"] = check
    return cases


def main(mode: str) -> None:
    cases = sim_cases() if mode == "sim" else ptx_cases()
    results = {}
    for name, fn in cases.items():
        try:
            fn()
            results[name] = "ok"
        except Exception:
            results[name] = traceback.format_exc(limit=4)
    print("RESULTS " + json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
