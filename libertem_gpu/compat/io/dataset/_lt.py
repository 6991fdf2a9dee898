"""What LiberTEM's data set classes share here: a LiberTEM-shaped ``initialize(executor)``, and
constructors that return data sets ready to run.

LiberTEM's data sets are used directly (``MemoryDataSet(data=...)`` handed to ``run_udf``) or
initialised with an executor (``ds = ds.initialize(executor)``); ours are initialised without
one. The compat classes initialise themselves when constructed, so both uses work.
"""

from __future__ import annotations

import warnings
from typing import Any


class LiberTEMDataSetMixin:
    """Gives a data set class LiberTEM's ``initialize(executor)`` signature."""

    def initialize(self, executor: Any = None) -> Any:
        """Read and check the metadata and return the data set; ``executor`` (LiberTEM's
        argument) is accepted and not needed."""
        return super().initialize()  # type: ignore[misc]

    def set_num_cores(self, cores: int) -> None:
        """LiberTEM's hint for partitioning; the run plan sizes partitions here."""

    def get_correction_data(self) -> None:
        """No corrections (LiberTEM's dark frame / gain map) are attached to data sets here."""
        return None


def scan_shape(nav_shape: Any, scan_size: Any, what: str) -> Any:
    """``nav_shape``, or LiberTEM's deprecated ``scan_size`` spelling of it."""
    if scan_size is None:
        return nav_shape
    if nav_shape is not None:
        raise ValueError(f"{what}: give nav_shape or scan_size (deprecated), not both")
    warnings.warn("scan_size is deprecated: pass nav_shape", FutureWarning, stacklevel=3)
    return scan_size
