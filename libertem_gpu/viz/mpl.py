"""Live plots with matplotlib: in Jupyter an ipympl figure that redraws in place (``%matplotlib
widget``), or else an image output that is replaced at each update; elsewhere a figure window
(with a non-interactive backend such as Agg, a figure that is only drawn)."""

from __future__ import annotations

import sys
import warnings
from typing import Any

import matplotlib
import matplotlib.pyplot as plt

from libertem_gpu.viz.base import Channel, ChannelPlot


def front_end() -> str:
    """Where plots appear: ``"widget"`` (Jupyter with ipympl), ``"static"`` (Jupyter with another
    backend: the image output is replaced) or ``"window"`` (anything else)."""
    ipython = sys.modules.get("IPython")  # never imported here: without it there is no notebook
    shell = ipython.get_ipython() if ipython is not None else None  # type: ignore[attr-defined]
    if shell is None or "IPKernelApp" not in getattr(shell, "config", {}):
        return "window"
    backend = matplotlib.get_backend().lower()
    return "widget" if ("ipympl" in backend or "widget" in backend) else "static"


class MPLLivePlot(ChannelPlot):
    """A result channel as a matplotlib image that follows the run.

    Parameters
    ----------
    udf : UDF or int, optional
        Whose results (see :class:`~libertem_gpu.viz.base.LivePlot`).
    channel : str or (str, callable)
        The result to show (see :class:`~libertem_gpu.viz.base.ChannelPlot`).
    title : str, optional
        The axes' title.
    shape : tuple of int, optional
        The image's shape before data arrives.
    **imshow_kwargs
        Passed to ``Axes.imshow`` (e.g. ``cmap="magma"``).

    Attributes
    ----------
    fig, axes, image
        The matplotlib figure, axes and ``AxesImage`` once displayed.
    mode : str
        The :func:`front_end` it was displayed in.
    """

    def __init__(
        self,
        udf: Any = None,
        channel: Channel | None = None,
        *,
        title: str | None = None,
        shape: tuple[int, ...] | None = None,
        **imshow_kwargs: Any,
    ) -> None:
        super().__init__(udf, channel, title=title, shape=shape)
        self.imshow_kwargs = {"cmap": "gray", "interpolation": "nearest", **imshow_kwargs}
        self.fig: Any = None
        self.axes: Any = None
        self.image: Any = None
        self.mode = "window"
        self._handle: Any = None

    def display(self) -> None:
        self.mode = front_end()
        self.fig, self.axes = plt.subplots()
        self.image = self.axes.imshow(self.data, **self.imshow_kwargs)
        self.axes.set_title(self.title)
        self.fig.colorbar(self.image, ax=self.axes)
        if self.mode == "static":
            from IPython.display import display

            self._handle = display(self.fig, display_id=True)
            # Shown through the handle only: the inline backend would show it again at the
            # end of the cell.
            plt.close(self.fig)
        elif self.mode == "widget":
            from IPython.display import display

            display(self.fig.canvas)
        else:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*non-interactive.*")
                self.fig.show()

    def update(self) -> None:
        if self.image is None:
            raise RuntimeError(f"plot {self.title!r}: display() must be called before update()")
        if self.image.get_array().shape != self.data.shape:  # shape unknown at display
            rows, cols = self.data.shape
            self.image.set_extent((-0.5, cols - 0.5, rows - 0.5, -0.5))
        self.image.set_data(self.data)
        self.image.set_clim(*self.limits())
        if self.mode == "static":
            self._handle.update(self.fig)
        else:
            self.fig.canvas.draw_idle()
            self.fig.canvas.flush_events()
