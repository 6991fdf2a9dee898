"""Runs every built-in analysis on a data set and compares it with NumPy on the frames the data
set should hold (for the detector format tests)."""

from __future__ import annotations

import numpy as np

from libertem_gpu import (
    ApplyMasksUDF,
    CoMUDF,
    MaxUDF,
    MinUDF,
    PickUDF,
    StdDevUDF,
    SumSigUDF,
    SumUDF,
)


def _masks(sig: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A binary disk (ring-free frames: a band for 1-D ones) and smooth random weights."""
    if len(sig) == 2:
        yy, xx = np.mgrid[: sig[0], : sig[1]]
        r2 = (yy - (sig[0] - 1) / 2) ** 2 + (xx - (sig[1] - 1) / 2) ** 2
        binary = r2 <= (min(sig) / 3) ** 2
    else:
        binary = np.zeros(sig, dtype=bool)
        binary[sig[0] // 4 : 3 * sig[0] // 4 + 1] = True
    weights = np.random.default_rng(7).random(sig)
    return binary, weights


def check_builtin_analyses(ctx, ds, expected: np.ndarray) -> list[str]:
    """Run every built-in analysis over ``ds`` (in one pass) and compare with NumPy.

    ``expected`` has shape ``nav + sig``. Sums must agree to rounding, extrema and picked frames
    exactly. Returns the names of the analyses that ran (CoM needs 2-D frames).
    """
    sig = ds.sig_shape
    frames = expected.reshape(-1, *sig).astype(np.float64)
    flat = frames.reshape(len(frames), -1)
    binary, weights = _masks(sig)
    roi = np.zeros(ds.shape.nav_size, dtype=bool)
    roi[[0, len(roi) // 2, len(roi) - 1]] = True
    expected_results = {
        "SumUDF": ("intensity", frames.sum(axis=0)),
        "SumSigUDF": ("intensity", flat.sum(axis=1)),
        "MaxUDF": ("intensity", frames.max(axis=0)),
        "MinUDF": ("intensity", frames.min(axis=0)),
        "StdDevUDF": ("std", frames.std(axis=0)),
        "ApplyMasksUDF": (
            "intensity",
            np.stack([flat @ binary.reshape(-1), flat @ weights.reshape(-1)], axis=-1),
        ),
    }
    udfs = [
        SumUDF(),
        SumSigUDF(),
        MaxUDF(),
        MinUDF(),
        StdDevUDF(),
        ApplyMasksUDF(mask_factories=[lambda: binary, lambda: weights]),
    ]
    if len(sig) == 2:
        cy, cx = (sig[0] - 1) / 2, (sig[1] - 1) / 2
        yy, xx = np.mgrid[: sig[0], : sig[1]]
        total = frames.sum(axis=(1, 2))
        safe = np.where(total == 0, 1, total)
        shifts = np.stack(
            [
                (frames * yy).sum(axis=(1, 2)) / safe - cy,
                (frames * xx).sum(axis=(1, 2)) / safe - cx,
            ],
            axis=-1,
        )
        shifts[total == 0] = 0  # LiberTEM's convention for empty frames
        expected_results["CoMUDF"] = ("raw_shifts", shifts)
        udfs.append(CoMUDF.with_params(cy=cy, cx=cx))
    results = ctx.run_udf(dataset=ds, udf=udfs)
    ran = []
    for udf, result in zip(udfs, results, strict=True):
        name = type(udf).__name__
        key, want = expected_results[name]
        np.testing.assert_allclose(
            np.asarray(result[key].raw_data, dtype=np.float64).reshape(-1),
            want.reshape(-1),
            rtol=1e-6,
            atol=1e-6,
            err_msg=f"{name} on {ds!r}",
        )
        ran.append(name)
    picked = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"].raw_data
    np.testing.assert_array_equal(np.asarray(picked, dtype=np.float64), frames[roi])
    return [*ran, "PickUDF"]
