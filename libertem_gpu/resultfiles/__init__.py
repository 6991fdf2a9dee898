"""Saved results: files that carry their provenance and load back as NumPy, xarray or HyperSpy.

See :func:`save_results` / :func:`load_results` (``libertem_gpu.load_results``) and
:mod:`~libertem_gpu.resultfiles.provenance` for what the metadata holds.
"""

from libertem_gpu.resultfiles.store import RESULT_FORMATS, SavedResults, load_results, save_results

__all__ = ["RESULT_FORMATS", "SavedResults", "load_results", "save_results"]
