"""LiberTEM's ``libertem.udf.stddev``: :class:`StdDevUDF`, ``run_stddev`` and
``consolidate_result``."""

from __future__ import annotations

from typing import Any

from libertem_gpu import StdDevUDF

__all__ = ["StdDevUDF", "consolidate_result", "run_stddev"]


def consolidate_result(udf_result: Any) -> dict[str, Any]:
    """The results of :class:`StdDevUDF` as plain arrays, and ``num_frames`` as an int.

    Parameters
    ----------
    udf_result : dict
        ``run_udf``'s results of a :class:`StdDevUDF`.

    Returns
    -------
    dict
        ``num_frames`` (int), ``sum``, ``varsum``, ``var``, ``std``, ``mean`` (arrays).
    """
    consolidated: dict[str, Any] = {"num_frames": int(udf_result["num_frames"].data[0])}
    for name in ("varsum", "sum", "var", "std", "mean"):
        consolidated[name] = udf_result[name].data
    return consolidated


def run_stddev(
    ctx: Any, dataset: Any, roi: Any = None, progress: bool = False, use_numba: bool = True
) -> dict[str, Any]:
    """Per-pixel sum, mean, variance and standard deviation in one pass.

    Parameters
    ----------
    ctx : Context
        The context to run on.
    dataset : DataSet
        The data set.
    roi : array of bool, optional
        Scan positions to include.
    progress : bool
        Show a progress bar.
    use_numba : bool
        Accepted for LiberTEM compatibility.

    Returns
    -------
    dict
        As :func:`consolidate_result`.
    """
    result = ctx.run_udf(
        dataset=dataset, udf=StdDevUDF(use_numba=use_numba), roi=roi, progress=progress
    )
    return consolidate_result(result)
