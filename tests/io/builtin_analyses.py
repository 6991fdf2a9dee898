"""Runs the built-in analyses that exist on a data set and compares them with NumPy on the
frames the data set should hold (for the detector format tests)."""

from __future__ import annotations

import importlib

import numpy as np

# (module, class, result name, numpy reference over the (n, *sig) float64 frames)
_ANALYSES = [
    ("libertem_gpu.udf.sum", "SumUDF", "intensity", lambda f: f.sum(axis=0)),
    ("libertem_gpu.udf.sumsig", "SumSigUDF", "intensity", lambda f: f.reshape(len(f), -1).sum(1)),
    ("libertem_gpu.udf.extrema", "MaxUDF", "intensity", lambda f: f.max(axis=0)),
    ("libertem_gpu.udf.extrema", "MinUDF", "intensity", lambda f: f.min(axis=0)),
    ("libertem_gpu.udf.stddev", "StdDevUDF", "std", lambda f: f.std(axis=0)),
]


def check_builtin_analyses(ctx, ds, expected: np.ndarray) -> list[str]:
    """Run every available built-in analysis over ``ds``; return the names that ran.

    ``expected`` has shape ``nav + sig``; results must equal the NumPy reference (sums to
    rounding, extrema exactly).
    """
    frames = expected.reshape(-1, *ds.sig_shape).astype(np.float64)
    ran = []
    for module_name, class_name, key, reference in _ANALYSES:
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            continue
        result = ctx.run_udf(dataset=ds, udf=cls())[key].raw_data
        np.testing.assert_allclose(
            np.asarray(result, dtype=np.float64).reshape(-1),
            reference(frames).reshape(-1),
            rtol=1e-6,
            atol=1e-6,
            err_msg=f"{class_name} on {ds!r}",
        )
        ran.append(class_name)
    return ran
