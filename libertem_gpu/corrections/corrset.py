""":class:`CorrectionSet`: a dark frame, a gain map and excluded pixels, checked when given and
against the data set's frame shape when a run is planned, before any data is read."""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any

import numpy as np

from libertem_gpu.corrections.repair import RepairDescriptor, slab_rows
from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError

__all__ = ["CorrectionSet", "FrameCorrection", "as_correction_set"]


def _frame(value: Any, name: str) -> np.ndarray | None:
    """A dark frame or gain map as a float64 copy, or None; refuses non-numbers and NaN/inf."""
    if value is None:
        return None
    if hasattr(value, "get") and not isinstance(value, np.ndarray | dict):
        value = value.get()  # a CuPy array
    try:
        arr = np.array(value)
    except Exception as e:  # pragma: no cover - numpy accepts nearly anything
        raise InvalidParameterError(f"{name}: expected an array, got {type(value).__name__}") from e
    if arr.dtype.kind not in "buif":
        raise InvalidParameterError(
            f"{name}: expected a real-valued array shaped like a frame, got dtype {arr.dtype} "
            f"({type(value).__name__})"
        )
    if arr.ndim == 0:
        raise ShapeMismatchError(
            f"{name}: expected an array shaped like a frame, got a scalar ({value!r})"
        )
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.argwhere(bad)[:3].tolist()
        raise InvalidParameterError(
            f"{name}: expected finite values, found {int(bad.sum())} NaN or infinite value(s), "
            f"first at {where}"
        )
    return arr


def _excluded(value: Any) -> tuple[np.ndarray | None, tuple[int, ...] | None]:
    """Excluded pixels as ``(ndim, k)`` integer coordinates, and the frame shape where the input
    states one (a boolean frame, a sparse array)."""
    if value is None:
        return None, None
    if hasattr(value, "coords") and hasattr(value, "shape"):  # pydata sparse.COO (LiberTEM)
        coords = np.asarray(value.coords)
        if hasattr(value, "data"):
            coords = coords[:, np.asarray(value.data) != 0]
        return _int_coords(coords), tuple(int(s) for s in value.shape)
    if hasattr(value, "tocoo"):  # scipy.sparse (2-D frames)
        coo = value.tocoo()
        keep = np.asarray(coo.data) != 0
        coords = np.stack([np.asarray(coo.row)[keep], np.asarray(coo.col)[keep]])
        return _int_coords(coords), tuple(int(s) for s in coo.shape)
    arr = np.asarray(value)
    if arr.dtype == np.bool_:
        if arr.ndim == 0:
            raise ShapeMismatchError(
                "excluded_pixels: expected a boolean frame or (ndim, k) coordinates, got a scalar"
            )
        return np.array(np.nonzero(arr), dtype=np.intp), tuple(arr.shape)
    if arr.dtype.kind in "ui" and arr.ndim == 2:
        return _int_coords(arr), None
    raise InvalidParameterError(
        "excluded_pixels: expected a boolean frame (True where excluded), integer coordinates "
        f"of shape (ndim, k), or a sparse array; got {type(value).__name__} of dtype "
        f"{arr.dtype} and shape {arr.shape}"
    )


def _int_coords(coords: np.ndarray) -> np.ndarray:
    if coords.size and coords.dtype.kind not in "ui":
        raise InvalidParameterError(
            f"excluded_pixels: expected integer coordinates, got dtype {coords.dtype}"
        )
    coords = coords.astype(np.intp).reshape(coords.shape[0], -1)
    if coords.size and coords.min() < 0:
        raise InvalidParameterError(
            f"excluded_pixels: expected coordinates >= 0, found {int(coords.min())}"
        )
    return coords


class CorrectionSet:
    """Detector corrections applied to every frame before any UDF sees it:
    ``(frame - dark) * gain``, then each excluded pixel replaced by the mean of its valid
    neighbours (see :mod:`libertem_gpu.corrections.repair`). UDFs then receive floats (float32
    for data of up to 16-bit integers, as in LiberTEM), whatever type they ask for.

    Parameters
    ----------
    dark : array, optional
        Dark frame, shaped like a frame; subtracted first.
    gain : array, optional
        Gain map, shaped like a frame; multiplies the dark-subtracted frame.
    excluded_pixels : array, optional
        Dead, hot or gap pixels: a boolean frame (True where excluded), integer coordinates of
        shape ``(ndim, k)`` (as ``numpy.nonzero`` gives), or a sparse array (``sparse.COO`` as
        LiberTEM takes, or ``scipy.sparse``).
    allow_empty : bool
        Leave an excluded pixel with no valid neighbour unrepaired instead of raising.

    Raises
    ------
    InvalidParameterError
        For NaN or infinite values in ``dark`` or ``gain``, non-numeric arrays, negative or
        non-integer coordinates; :class:`~libertem_gpu.corrections.repair.RepairValueError`
        for an excluded pixel with no valid neighbour (unless ``allow_empty``).
    ShapeMismatchError
        If ``dark``, ``gain`` and ``excluded_pixels`` disagree on the frame shape (the data
        set's is checked when a run is planned).

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, SumUDF
    >>> from libertem_gpu.corrections import CorrectionSet
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.full((2, 3, 4, 5), 7, dtype=np.uint16))
    >>> hot = np.zeros((4, 5), dtype=bool)
    >>> hot[1, 2] = True
    >>> corr = CorrectionSet(dark=np.full((4, 5), 2.0), excluded_pixels=hot)
    >>> float(ctx.run_udf(dataset=ds, udf=SumUDF(), corrections=corr)["intensity"].data[1, 2])
    30.0
    """

    def __init__(
        self,
        dark: Any = None,
        gain: Any = None,
        excluded_pixels: Any = None,
        allow_empty: bool = False,
    ) -> None:
        if not isinstance(allow_empty, bool | np.bool_):
            raise InvalidParameterError(f"allow_empty: expected True or False, got {allow_empty!r}")
        self._dark = _frame(dark, "dark")
        self._gain = _frame(gain, "gain")
        self._coords, shape = _excluded(excluded_pixels)
        self._allow_empty = bool(allow_empty)
        self._shape: tuple[int, ...] | None = None
        for name, s in (
            ("dark", None if self._dark is None else self._dark.shape),
            ("gain", None if self._gain is None else self._gain.shape),
            ("excluded_pixels", shape),
        ):
            if s is None:
                continue
            if self._shape is not None and s != self._shape:
                raise ShapeMismatchError(
                    f"{name}: expected the frame shape {self._shape} of the other corrections, "
                    f"got {s}"
                )
            self._shape = s
        if self._coords is not None and self._shape is not None:
            self.check(self._shape)  # pixels out of range, empty environments: fail now

    # --- LiberTEM's accessors ---------------------------------------------------------------

    def get_dark_frame(self) -> np.ndarray | None:
        """The dark frame (float64), or None."""
        return self._dark

    def get_gain_map(self) -> np.ndarray | None:
        """The gain map (float64), or None."""
        return self._gain

    def get_excluded_pixels(self) -> Any:
        """The excluded pixels: a ``sparse.COO`` where the ``sparse`` package is installed and
        the frame shape is known (as LiberTEM returns), else ``(ndim, k)`` coordinates (or
        None)."""
        if self._coords is None:
            return None
        if self._shape is not None:
            try:
                import sparse
            except ImportError:
                return self._coords
            return sparse.COO(coords=self._coords, data=True, shape=self._shape)
        return self._coords

    @property
    def excluded_coords(self) -> np.ndarray | None:
        """The excluded pixels as ``(ndim, k)`` integer coordinates, or None."""
        return self._coords

    @property
    def allow_empty(self) -> bool:
        """Whether excluded pixels without valid neighbours are left as they are."""
        return self._allow_empty

    def have_corrections(self) -> bool:
        """Whether any correction is set (an empty set changes nothing, not even the type
        UDFs receive)."""
        return self._dark is not None or self._gain is not None or self._coords is not None

    @property
    def is_empty(self) -> bool:
        """Not :meth:`have_corrections`."""
        return not self.have_corrections()

    # --- checking and preparing for a data set ---------------------------------------------

    def check(self, sig_shape: tuple[int, ...]) -> None:
        """Check the corrections against frames of ``sig_shape`` (called when a run is planned
        and when a data set is loaded with them).

        Raises
        ------
        ShapeMismatchError
            A dark frame, gain map or excluded-pixel frame of another shape.
        InvalidParameterError
            Excluded pixels outside the frame, or of the wrong number of dimensions.
        RepairValueError
            An excluded pixel without valid neighbours (unless ``allow_empty``).
        """
        sig_shape = tuple(int(s) for s in sig_shape)
        for name, arr in (("dark", self._dark), ("gain", self._gain)):
            if arr is not None and arr.shape != sig_shape:
                raise ShapeMismatchError(
                    f"{name}: expected the data set's frame shape {sig_shape}, got {arr.shape}"
                )
        if self._coords is None:
            return
        if self._shape is not None and self._shape != sig_shape:
            raise ShapeMismatchError(
                f"excluded_pixels: expected the data set's frame shape {sig_shape}, got "
                f"{self._shape}"
            )
        if self._coords.shape[0] != len(sig_shape):
            raise InvalidParameterError(
                f"excluded_pixels: expected coordinates of shape ({len(sig_shape)}, k) for "
                f"frames of shape {sig_shape}, got {self._coords.shape}"
            )
        if self._coords.size:
            over = self._coords >= np.array(sig_shape)[:, None]
            if over.any():
                bad = self._coords[:, np.any(over, axis=0)][:, :3].T.tolist()
                raise InvalidParameterError(
                    f"excluded_pixels: expected coordinates inside the frame {sig_shape}, "
                    f"found {int(np.any(over, axis=0).sum())} outside, e.g. {bad}"
                )
        self.for_frames(sig_shape)  # empty environments raise here

    def for_frames(self, sig_shape: tuple[int, ...]) -> FrameCorrection:
        """The corrections laid out for frames of ``sig_shape`` (flat, with repair
        environments); cached."""
        sig_shape = tuple(int(s) for s in sig_shape)
        cache = self.__dict__.setdefault("_prepared", {})
        prepared = cache.get(sig_shape)
        if prepared is None:
            prepared = FrameCorrection(self, sig_shape)
            cache[sig_shape] = prepared
        return prepared

    def slab_rows(self, sig_shape: tuple[int, ...], target: int) -> int | None:
        """Rows per tile, near ``target``, for frames split into row slabs, such that every
        excluded pixel's environment lies in its slab; None: only whole frames do."""
        if self._coords is None or not self._coords.size:
            return target
        return slab_rows(self._coords[0], int(sig_shape[0]), target)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_prepared", None)  # rebuilt where needed (cheap), not shipped
        return state

    def __repr__(self) -> str:
        parts = [
            f"dark={'set' if self._dark is not None else None}",
            f"gain={'set' if self._gain is not None else None}",
            f"excluded_pixels={0 if self._coords is None else self._coords.shape[1]}",
        ]
        return f"CorrectionSet({', '.join(parts)})"


class FrameCorrection:
    """A :class:`CorrectionSet` laid out for frames of one shape: flat dark and gain frames and
    the repair descriptor; hands out the arrays the ``correct`` kernels take, per output type
    and row slab."""

    def __init__(self, corrections: CorrectionSet, sig_shape: tuple[int, ...]) -> None:
        npix = math.prod(sig_shape)
        dark = corrections.get_dark_frame()
        gain = corrections.get_gain_map()
        self.sig_shape = sig_shape
        self.row_len = math.prod(sig_shape[1:])
        self.dark = np.zeros(npix) if dark is None else dark.reshape(-1)
        self.gain = np.ones(npix) if gain is None else gain.reshape(-1)
        #: Whether a gain map other than ones scales the frames.
        self.has_gain = bool(gain is not None and np.any(gain != 1.0))
        self.repair = RepairDescriptor(
            sig_shape, corrections.excluded_coords, allow_empty=corrections.allow_empty
        )
        #: What analyses derive from these corrections once per process (folded weights).
        self.cache: dict[Any, Any] = {}

    @cached_property
    def _whole(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = self.repair
        return r.exclude_flat, r.repair_flat, r.repair_counts

    def arrays(
        self, dtype: np.dtype, sig_rows: tuple[int, int] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(dark, gain, exclude, env, counts)`` for tiles of ``sig_rows`` (None: whole
        frames) corrected into ``dtype`` (dark and gain rounded to it once, here)."""
        if sig_rows is None:
            p0, p1 = 0, self.dark.size
            exclude, env, counts = self._whole
        else:
            p0, p1 = sig_rows[0] * self.row_len, sig_rows[1] * self.row_len
            exclude, env, counts = self.repair.rows(*sig_rows)
        return (
            self.dark[p0:p1].astype(dtype),
            self.gain[p0:p1].astype(dtype),
            exclude,
            env,
            counts,
        )


def as_correction_set(value: Any, name: str = "corrections") -> CorrectionSet | None:
    """``value`` as a :class:`CorrectionSet` with corrections, or None for None or an empty set.

    LiberTEM's own ``CorrectionSet`` (anything with its ``get_dark_frame``, ``get_gain_map``
    and ``get_excluded_pixels``) is taken over.

    Raises
    ------
    InvalidParameterError
        For anything else.
    """
    if value is None:
        return None
    if not isinstance(value, CorrectionSet):
        if not all(
            hasattr(value, m) for m in ("get_dark_frame", "get_gain_map", "get_excluded_pixels")
        ):
            raise InvalidParameterError(
                f"{name}: expected a CorrectionSet (libertem_gpu.corrections) or None, got "
                f"{type(value).__name__}"
            )
        value = CorrectionSet(
            dark=value.get_dark_frame(),
            gain=value.get_gain_map(),
            excluded_pixels=value.get_excluded_pixels(),
            allow_empty=bool(getattr(value, "_allow_empty", False)),
        )
    return value if value.have_corrections() else None
