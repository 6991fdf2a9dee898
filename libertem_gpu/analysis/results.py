"""What ``ctx.run(analysis)`` returns: named images (:class:`AnalysisResult`) in a result set.

Shaped as LiberTEM 0.16's ``AnalysisResult`` / ``AnalysisResultSet``, so that scripts reading
``result.intensity.raw_data`` or ``result["mask_0"].visualized`` run unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = [
    "AnalysisResult",
    "AnalysisResultSet",
    "complex_results",
    "rgb_from_2dvector",
    "visualize_simple",
]


def visualize_simple(data: Any, logarithmic: bool = False, damage: Any = True) -> np.ndarray:
    """A grey-scale RGB image of a 2-D (or 1-D) real array, scaled to its range.

    Parameters
    ----------
    data : array_like
        Real values.
    logarithmic : bool
        Scale ``log1p(data - min)`` instead of ``data``, for data with a few bright values.
    damage : bool or array of bool
        Which values count for the range (the processed positions); others are black.

    Returns
    -------
    numpy.ndarray
        ``uint8`` of shape ``data.shape + (3,)``.
    """
    values = np.asarray(data, dtype=np.float64)
    valid = np.broadcast_to(np.asarray(damage, dtype=bool), values.shape) & np.isfinite(values)
    if not valid.any():
        return np.zeros((*values.shape, 3), dtype=np.uint8)
    low = values[valid].min()
    if logarithmic:
        values = np.log1p(np.where(valid, values - low, 0.0))
        low = 0.0
    high = values[valid].max()
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    grey = np.where(valid, np.clip(scaled, 0.0, 1.0) * 255.0, 0.0).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def rgb_from_2dvector(x: Any, y: Any, vmax: float | None = None) -> np.ndarray:
    """An RGB image of a 2-D vector field: hue from the direction, brightness from the length.

    Parameters
    ----------
    x, y : array_like
        The vector components (same shape).
    vmax : float, optional
        The length shown at full brightness; default: the largest finite length.

    Returns
    -------
    numpy.ndarray
        ``uint8`` of shape ``x.shape + (3,)``; non-finite vectors are black.
    """
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    length = np.hypot(xs, ys)
    finite = np.isfinite(length)
    if vmax is None:
        vmax = float(length[finite].max()) if finite.any() else 1.0
    value = np.clip(np.where(finite, length, 0.0) / (vmax or 1.0), 0.0, 1.0)
    hue = (np.arctan2(np.where(finite, ys, 0.0), np.where(finite, xs, 0.0)) / (2 * np.pi)) % 1.0
    # HSV with full saturation to RGB: each channel is a shifted triangle wave of the hue.
    channels = [
        np.clip(np.abs((hue * 6.0 + shift) % 6.0 - 3.0) - 1.0, 0.0, 1.0) for shift in (0, 4, 2)
    ]
    rgb = np.stack(channels, axis=-1) * value[..., None]
    return (rgb * 255.0).astype(np.uint8)


class AnalysisResult:
    """One named result of an analysis: the numbers and an image of them.

    Parameters
    ----------
    raw_data : numpy.ndarray or tuple
        The numbers (for CoM's ``field``, the tuple ``(x, y)`` as in LiberTEM).
    visualized : numpy.ndarray or callable
        An RGB image (``uint8``, ``(..., 3)``), or a function that makes it on first use.
    title, desc : str
        A short title and a description.
    key : str
        The name under which the result set holds this result.
    include_in_download : bool
        Kept for LiberTEM compatibility (its web GUI's downloads).
    """

    def __init__(
        self,
        raw_data: Any,
        visualized: np.ndarray | Callable[[], np.ndarray],
        title: str,
        desc: str,
        key: str,
        include_in_download: bool = True,
    ) -> None:
        self.raw_data = raw_data
        self._visualized = visualized
        self.title = title
        self.desc = desc
        self.key = key
        self.include_in_download = include_in_download

    @property
    def visualized(self) -> np.ndarray:
        """The image, made on first use."""
        if callable(self._visualized):
            self._visualized = self._visualized()
        return self._visualized

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        array = np.asarray(self.raw_data)
        return array if dtype is None else array.astype(dtype)

    def __repr__(self) -> str:
        return f"<AnalysisResult: {self.key}>"


class AnalysisResultSet:
    """The results of one ``ctx.run(analysis)``.

    Reachable by key as attributes (``rs.intensity``) or items (``rs["intensity"]``), by
    position (``rs[0]``), and by iteration, as in LiberTEM.

    Parameters
    ----------
    results : list of AnalysisResult, or a callable returning one
        The named results.
    raw_results : dict, optional
        The UDF results the analysis was computed from (name to
        :class:`~libertem_gpu.udf.buffers.BufferResult`).
    """

    def __init__(
        self,
        results: Sequence[AnalysisResult] | Callable[[], Sequence[AnalysisResult]],
        raw_results: Any = None,
    ) -> None:
        self._results = results
        self.raw_results = raw_results

    @property
    def results(self) -> list[AnalysisResult]:
        """The results, in order."""
        if callable(self._results):
            self._results = self._results()
        return list(self._results)

    def keys(self) -> list[str]:
        """The results' keys, in order."""
        return [r.key for r in self.results]

    def __getattr__(self, key: str) -> AnalysisResult:
        if key.startswith("_"):  # copy/pickle probe private names before __init__ ran
            raise AttributeError(key)
        for result in self.results:
            if result.key == key:
                return result
        raise AttributeError(f"no result with key {key!r}; have: {', '.join(self.keys())}")

    def __getitem__(self, key: str | int) -> AnalysisResult:
        if isinstance(key, str):
            return self.__getattr__(key)
        return self.results[key]

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[AnalysisResult]:
        return iter(self.results)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.keys()}>"


def complex_results(
    data: np.ndarray,
    key_prefix: str,
    title: str,
    desc: str,
    damage: Any,
    default_lin: bool = True,
) -> list[AnalysisResult]:
    """The results LiberTEM gives for complex values: magnitude (``key_prefix``, and its log),
    real and imaginary parts, phase angle, and the complex values themselves.

    ``default_lin=False`` makes the log-scaled magnitude the one under ``key_prefix`` and the
    linear one ``<key_prefix>_lin`` (sum and pick); otherwise the linear one is
    ``key_prefix`` and the log one ``<key_prefix>_log``.
    """
    valid = np.asarray(damage, dtype=bool) & np.isfinite(data)
    magnitude = np.abs(data)
    angle = np.angle(data)
    lin_key, log_key = (
        (key_prefix, f"{key_prefix}_log") if default_lin else (f"{key_prefix}_lin", key_prefix)
    )

    def wheel() -> np.ndarray:
        return rgb_from_2dvector(data.real, data.imag, vmax=float(np.max(magnitude[valid])))

    def entry(raw: Any, vis: Callable[[], np.ndarray], key: str, what: str) -> AnalysisResult:
        return AnalysisResult(raw, vis, key=key, title=f"{title} [{what}]", desc=f"{desc} [{what}]")

    return [
        entry(magnitude, lambda: visualize_simple(magnitude, damage=valid), lin_key, "magn"),
        entry(
            magnitude,
            lambda: visualize_simple(magnitude, logarithmic=True, damage=valid),
            log_key,
            "log(magn)",
        ),
        entry(
            data.real,
            lambda: visualize_simple(data.real, damage=valid),
            f"{key_prefix}_real",
            "real",
        ),
        entry(
            data.imag,
            lambda: visualize_simple(data.imag, damage=valid),
            f"{key_prefix}_imag",
            "imag",
        ),
        entry(angle, lambda: visualize_simple(angle, damage=valid), f"{key_prefix}_angle", "angle"),
        entry(data, wheel, f"{key_prefix}_complex", "complex"),
    ]
