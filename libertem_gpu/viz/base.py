"""The live plot callback API: what a run calls while partitions merge, and a base class that
turns one result channel into a 2-D image. Nothing here imports a plotting package."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.udf.buffers import BufferResult


class LivePlot:
    """Base class of the plots that ``run_udf(plots=[...])`` drives; subclass it for another
    front end (a GUI, a web page, a file writer).

    The run calls :meth:`display` once before any data is read, then, after merged partitions
    (at most every ``plot_interval_s`` seconds, see :mod:`libertem_gpu.config`) and always after
    the last one, :meth:`new_data` followed by :meth:`update`; all calls come from the thread
    that called ``run_udf`` (or iterates ``run_udf_iter``).

    Parameters
    ----------
    udf : UDF or int, optional
        Whose results the plot receives: one of the UDF instances passed to ``run_udf``, or
        its index in that list; default the first.

    Attributes
    ----------
    udf : UDF or int or None
        As given.
    """

    def __init__(self, udf: Any = None) -> None:
        self.udf = udf

    def display(self) -> None:
        """Show the (empty) plot; called once before the run reads data."""

    def new_data(self, results: Mapping[str, BufferResult], damage: np.ndarray) -> None:
        """Take the partial results of the UDF.

        Parameters
        ----------
        results : dict of str to BufferResult
            The UDF's results so far (``nav`` results NaN, or 0 for integers, where not yet
            processed).
        damage : numpy.ndarray of bool
            Shaped like the scan: True where a position has been processed.
        """
        raise NotImplementedError

    def update(self) -> None:
        """Redraw with the data :meth:`new_data` took."""


def plottable(shape: tuple[int, ...]) -> bool:
    """Whether a result of this shape is an image: two axes longer than 1."""
    return sum(1 for n in shape if n != 1) == 2


def plottable_channels(shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """The names of the results whose shape (``data``'s) is 2-D once axes of length 1 go."""
    return [name for name, shape in shapes.items() if plottable(shape)]


Channel = str | tuple[str, Callable[[np.ndarray], np.ndarray]]


class ChannelPlot(LivePlot):
    """A :class:`LivePlot` of one result channel as a 2-D image (``self.data``, masked where
    there is nothing to show yet); subclasses draw it in :meth:`display` and :meth:`update`.

    Parameters
    ----------
    udf : UDF or int, optional
        As for :class:`LivePlot`.
    channel : str or (str, callable)
        The result's name, or a name and a function applied to the result's ``data`` (e.g.
        ``("intensity", np.log1p)``); the image is the result with axes of length 1 removed.
    title : str, optional
        Default: the UDF's class and the channel.
    shape : tuple of int, optional
        The image's shape before the first data arrives (``run_udf`` passes it); default 1x1.

    Attributes
    ----------
    data : numpy.ma.MaskedArray
        The current image (float64; complex results show their magnitude), masked at scan
        positions not yet processed and where values are not finite.
    updates : int
        How often :meth:`new_data` has been called.
    """

    def __init__(
        self,
        udf: Any = None,
        channel: Channel | None = None,
        *,
        title: str | None = None,
        shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(udf)
        if isinstance(channel, str):
            self.channel, self.func = channel, None
        elif isinstance(channel, (tuple, list)) and len(channel) == 2 and callable(channel[1]):
            self.channel, self.func = str(channel[0]), channel[1]
        else:
            raise InvalidParameterError(
                f"channel must be a result name or a (name, function) pair, got {channel!r}"
            )
        label = self.channel if self.func is None else f"{_name(self.func)}({self.channel})"
        if title is None:
            owner = "" if udf is None or isinstance(udf, int) else f"{type(udf).__name__}: "
            title = owner + label
        self.title = title
        squeezed = tuple(n for n in (shape or (1, 1)) if n != 1) or (1, 1)
        if len(squeezed) != 2:
            squeezed = (1, 1)
        self.data: np.ma.MaskedArray = np.ma.masked_all(squeezed, dtype=np.float64)
        self.updates = 0

    def new_data(self, results: Mapping[str, BufferResult], damage: np.ndarray) -> None:
        if self.channel not in results:
            raise InvalidParameterError(
                f"plot {self.title!r}: the UDF has no result {self.channel!r}; results: "
                f"{sorted(results)}"
            )
        self.data = channel_image(results[self.channel], self.func)
        self.updates += 1

    def limits(self) -> tuple[float, float]:
        """Colour limits: the 0.1 and 99.9 percentiles of the shown values (one hot pixel does
        not wash out a diffraction pattern), widened where they are equal."""
        values = self.data.compressed()
        if values.size == 0:
            return 0.0, 1.0
        if values.size > 1000:
            lo, hi = (float(v) for v in np.quantile(values, (0.001, 0.999)))
        else:
            lo, hi = float(values.min()), float(values.max())
        if lo == hi:
            hi = lo + max(abs(lo), 1.0) * 1e-6
        return lo, hi


def channel_image(
    result: BufferResult, func: Callable[[np.ndarray], np.ndarray] | None = None
) -> np.ma.MaskedArray:
    """``result`` as a 2-D float image, masked where not yet processed (``nav`` results) or not
    finite; ``func`` is applied to ``result.data`` first."""
    if func is None and result.kind == "nav":
        masked = result.masked_data
        values, invalid = np.ma.getdata(masked), np.ma.getmaskarray(masked)
    else:
        values = np.asarray(result.data if func is None else func(result.data))
        invalid = np.zeros(values.shape, dtype=bool)
    if np.iscomplexobj(values):
        values = np.abs(values)
    image = np.array(values, dtype=np.float64).squeeze()
    invalid = np.broadcast_to(invalid, values.shape).squeeze()
    if image.ndim != 2:
        raise InvalidParameterError(
            f"a live plot needs a 2-D image; the channel gives shape {np.shape(values)}"
        )
    return np.ma.masked_array(image, mask=invalid | ~np.isfinite(image))


def _name(func: Callable[..., Any]) -> str:
    return getattr(func, "__name__", type(func).__name__)
