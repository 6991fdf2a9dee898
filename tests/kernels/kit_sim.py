"""The GPU half of the kernel contract kit, run by :func:`kit.simulator_results` in a child
process with ``NUMBA_ENABLE_CUDASIM=1``: NumPy (and SciPy) stand in for CuPy (and cupyx), so
that each GPU implementation's own code, its checks and its Numba-CUDA kernels run on the
host. ``python kit_sim.py module=path:Contract ...`` prints one JSON object ``{case: "ok" |
traceback}``. Not a test module itself (no ``test_`` prefix).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types

import numpy as np


def _stand_in_for_cupy() -> None:
    """Make ``import cupy`` give NumPy and ``cupyx.scipy.sparse`` SciPy's sparse arrays."""
    import scipy.sparse

    cupy = types.ModuleType("cupy")
    cupy.__getattr__ = lambda name: getattr(np, name)  # type: ignore[method-assign]
    cupyx = types.ModuleType("cupyx")
    cupyx_scipy = types.ModuleType("cupyx.scipy")
    cupyx_scipy.sparse = scipy.sparse  # type: ignore[attr-defined]
    cupyx.scipy = cupyx_scipy  # type: ignore[attr-defined]
    sys.modules.update(
        {
            "cupy": cupy,
            "cupyx": cupyx,
            "cupyx.scipy": cupyx_scipy,
            "cupyx.scipy.sparse": scipy.sparse,
        }
    )


def main(names: list[str]) -> None:
    _stand_in_for_cupy()
    from tests.kernels.kit import run_simulated

    results: dict[str, str] = {}
    for name in names:
        spec, qualname = name.rsplit(":", 1)
        module_name, path = spec.split("=", 1)
        module = sys.modules.get(module_name)
        if module is None:
            loader = importlib.util.spec_from_file_location(module_name, path)
            assert loader is not None and loader.loader is not None
            module = importlib.util.module_from_spec(loader)
            sys.modules[module_name] = module
            loader.loader.exec_module(module)
        results.update(run_simulated(getattr(module, qualname)))
    print("RESULTS " + json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
