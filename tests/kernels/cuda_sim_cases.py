"""The PTX compile check of the Numba-CUDA kernels, run in a child process by
``test_cuda_sim.py``: ``python cuda_sim_cases.py ptx`` compiles every kernel for sm_90 and sm_80
and prints one JSON object ``{case: "ok" | error message}``. (The kernels' results under the CUDA
simulator are checked through their wrappers by the kernel contract kit, ``kit.py``.) Not a test
module itself (no ``test_`` prefix).
"""

from __future__ import annotations

import json
import sys
import traceback

from libertem_gpu.kernels import (
    com_gpu,
    disk_corr,
    disk_peaks,
    masks_gpu,
    moments,
    sum_frames,
    sum_sig,
)


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
        disk_corr._cuda_sparse: [
            "void(uint16[:, :, ::1], float32[:, ::1], int64[:, ::1], int64, float32[:, :, :, ::1])",
            "void(float64[:, :, :], float64[:, ::1], int64[:, ::1], int64, float64[:, :, :, ::1])",
        ],
        disk_peaks._cuda_select: [
            "void(int64[:, ::1], float64[:, ::1], int64, float64, int64, int64[:, ::1], "
            "int64[::1])",
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
    if mode != "ptx":
        raise SystemExit(f"unknown mode {mode!r}; valid: ptx")
    cases = ptx_cases()
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
