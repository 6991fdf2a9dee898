"""Live plots of runs: ``ctx.run_udf(..., plots=True)`` shows every 2-D result (scan images and
frames) as it fills in while partitions merge.

:class:`LivePlot` is the callback API a front end implements (``display``, ``new_data``,
``update``); :class:`ChannelPlot` turns one result into a 2-D image; ``MPLLivePlot`` (in
:mod:`libertem_gpu.viz.mpl`, needs matplotlib: the ``viz`` extra) draws it with matplotlib.
Importing this package does not import matplotlib.
"""

from __future__ import annotations

from typing import Any

from libertem_gpu.viz.base import ChannelPlot, LivePlot, channel_image, plottable_channels

__all__ = ["ChannelPlot", "LivePlot", "MPLLivePlot", "channel_image", "plottable_channels"]


def __getattr__(name: str) -> Any:
    if name == "MPLLivePlot":
        from libertem_gpu.viz.driver import matplotlib_plot_class

        return matplotlib_plot_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
