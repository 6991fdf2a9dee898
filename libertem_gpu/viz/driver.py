"""How a run drives its live plots: which plots ``plots=`` asks for, and when they redraw
(throttled by the ``plot_interval_s`` setting; the final results are always drawn)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

from libertem_gpu import config
from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.client import UDFResults, UDFRun
from libertem_gpu.viz.base import LivePlot, plottable_channels


def _now() -> float:
    """The driver's clock (a function of its own, so that tests can replace it)."""
    return time.monotonic()


def matplotlib_plot_class() -> type:
    """The matplotlib live plot class, or an error naming what to install."""
    try:
        from libertem_gpu.viz.mpl import MPLLivePlot
    except ImportError as e:
        raise ImportError(
            "run_udf(plots=...) draws its plots with matplotlib, which cannot be imported "
            f"({e}); install it with `pip install matplotlib` or `pip install "
            "'libertem_gpu[viz]'`, or pass your own LivePlot objects as plots=[...]"
        ) from e
    return MPLLivePlot


def needs_matplotlib(plots: Any) -> bool:
    """Whether ``plots`` asks for the default (matplotlib) plots rather than given objects."""
    if plots is True:
        return True
    return isinstance(plots, (list, tuple)) and any(
        not _is_plot(p) for p in plots
    )  # lists of channel names


def result_shapes(run: UDFRun) -> list[dict[str, tuple[int, ...]]]:
    """For each UDF of ``run``, the shape of each result's ``data``, from its declarations
    (known before any data is read)."""
    nav_shape = tuple(run.dataset.nav_shape)
    out = []
    for state in run.states:
        shapes = {}
        for name, decl in state.decls.items():
            if decl.use == "private":
                continue
            if decl.kind == "nav":
                shapes[name] = nav_shape + tuple(decl.extra_shape)
            else:
                shapes[name] = tuple(decl.shape(run.plan.n_selected, run.dataset.sig_shape))
        out.append(shapes)
    return out


def _is_plot(obj: Any) -> bool:
    return isinstance(obj, LivePlot) or all(
        callable(getattr(obj, m, None)) for m in ("display", "new_data", "update")
    )


def make_plots(plots: Any, given: Sequence[UDF], run: UDFRun) -> list[tuple[int, Any]]:
    """The plots ``plots=`` asks for, each with the index of the UDF whose results it gets.

    ``plots`` is True (every 2-D result of every UDF), a list with one list of channels per UDF
    (names, or ``(name, function)`` pairs), or a list of :class:`LivePlot` objects.
    """
    shapes = result_shapes(run)
    if isinstance(plots, (list, tuple)) and plots and all(_is_plot(p) for p in plots):
        return [(_udf_index(p, i, given), p) for i, p in enumerate(plots)]
    if plots is True:
        channels: list[Any] = [plottable_channels(s) for s in shapes]
        for udf, names, udf_shapes in zip(given, channels, shapes, strict=True):
            if not names:
                warnings.warn(
                    f"plots=True: {type(udf).__name__} has no 2-D result to plot; results "
                    f"(shapes): {udf_shapes}",
                    stacklevel=4,
                )
    elif (
        isinstance(plots, (list, tuple))
        and len(plots) <= len(given)
        and all(isinstance(p, (list, tuple)) for p in plots)
    ):
        channels = list(plots)
    else:
        raise InvalidParameterError(
            "plots must be True, a list with one list of result names per UDF (e.g. "
            "[['intensity']]), or a list of LivePlot objects; got " + repr(plots)
        )
    cls = matplotlib_plot_class()
    made = []
    for index, (udf, names) in enumerate(zip(given, channels, strict=False)):
        for channel in names:
            name = channel if isinstance(channel, str) else channel[0]
            if name not in shapes[index]:
                raise InvalidParameterError(
                    f"plots: {type(udf).__name__} has no result {name!r}; results: "
                    f"{sorted(shapes[index])}"
                )
            if isinstance(channel, str) and name not in plottable_channels(shapes[index]):
                raise InvalidParameterError(
                    f"plots: {type(udf).__name__}'s result {name!r} has shape "
                    f"{shapes[index][name]}, not an image; 2-D results: "
                    f"{plottable_channels(shapes[index])}"
                )
            plot = cls(udf, channel, shape=shapes[index][name])
            made.append((index, plot))
    return made


def _udf_index(plot: Any, position: int, given: Sequence[UDF]) -> int:
    udf = getattr(plot, "udf", None)
    if udf is None:
        return 0
    if isinstance(udf, int) and not isinstance(udf, bool):
        if not 0 <= udf < len(given):
            raise InvalidParameterError(
                f"plots[{position}].udf is {udf}, but the run has {len(given)} UDF(s)"
            )
        return udf
    for i, candidate in enumerate(given):
        if candidate is udf:
            return i
    raise InvalidParameterError(
        f"plots[{position}].udf is {type(udf).__name__} object that is not one of the UDFs "
        "passed to this run"
    )


class PlotDriver:
    """Feeds a run's results to its plots: displays them at the start, then redraws at most
    every ``interval`` seconds (the ``plot_interval_s`` setting by default), and always at the
    end.

    Parameters
    ----------
    plots : list of (int, LivePlot)
        Each plot with the index of the UDF whose results it gets.
    interval : float, optional
        Least seconds between two redraws.
    """

    def __init__(self, plots: list[tuple[int, Any]], interval: float | None = None) -> None:
        self.plots = plots
        self.interval = float(config.get("plot_interval_s") if interval is None else interval)
        self.draws = 0
        for _, plot in plots:
            plot.display()
        self._last = _now()

    def due(self, final: bool) -> bool:
        """Whether to redraw now: always for the final results, else once ``interval`` has
        passed since the last redraw (or the display)."""
        return final or _now() - self._last >= self.interval

    def draw(self, results: UDFResults) -> None:
        """Give every plot its UDF's results and redraw it."""
        damage = results.damage.data
        for index, plot in self.plots:
            plot.new_data(results.buffers[index], damage)
            plot.update()
        self.draws += 1
        self._last = _now()
