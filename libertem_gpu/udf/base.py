"""The :class:`UDF` base class: what a user-defined analysis declares and implements."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from libertem_gpu.errors import UDFDefinitionError
from libertem_gpu.io.partition import Partition
from libertem_gpu.io.tiles import TileSlice
from libertem_gpu.shape import Shape
from libertem_gpu.udf.aux import AuxData
from libertem_gpu.udf.buffers import BufferDecl, BufferNamespace

PROCESS_METHODS = ("process_frame", "process_tile", "process_partition")


class UDFParams(BufferNamespace):
    """The keyword parameters a UDF was constructed with, as attributes (``self.params.NAME``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("UDF parameters are read-only")

    def _show(self, name: str, value: Any) -> None:
        """Let parameter ``name`` read as ``value`` (the framework's slice of aux data)."""
        self._arrays[name] = value


@dataclass(frozen=True)
class Slice:
    """Where the current tile lies in the data set (``self.meta.slice``).

    Attributes
    ----------
    frames : numpy.ndarray
        Flat scan positions of the tile's frames.
    sig : tuple of slice
        The part of the frame the tile holds.
    """

    frames: np.ndarray
    sig: tuple[slice, ...]

    @property
    def origin(self) -> tuple[int, ...]:
        """Flat scan position of the first frame, then the tile's first pixel in the frame."""
        return (int(self.frames[0]), *(s.start for s in self.sig))

    @property
    def shape(self) -> tuple[int, ...]:
        """Frames, then the size of each signal axis of the tile."""
        return (len(self.frames), *(s.stop - s.start for s in self.sig))

    def get(self, array: Any, sig_only: bool = False, nav_only: bool = False) -> Any:
        """The part of ``array`` that belongs to this tile: of a frame-shaped array with
        ``sig_only``, of a flat scan-shaped array with ``nav_only``, else of a
        ``(nav_size, *sig)`` array."""
        if sig_only:
            return array[self.sig]
        if nav_only:
            return array[self.frames]
        index = (slice(None), *self.sig)
        return array[self.frames][index]


@dataclass
class UDFMeta:
    """What a UDF knows about the run, the data set and the current tile (``self.meta``).

    Attributes
    ----------
    dataset_shape : Shape
        Navigation and signal shape of the data set.
    dataset_dtype : numpy.dtype
        Element type as stored.
    input_dtype : numpy.dtype
        Element type of the tiles the UDF receives (native byte order).
    roi : numpy.ndarray or None
        Boolean scan mask of the run, shaped like the scan.
    backend : str
        ``"numpy"`` or ``"cupy"``.
    xp : module
        The array module of the backend.
    device_class : str
        ``"cpu"`` or ``"cuda"``.
    partition : Partition or None
        The partition being processed (None on the client).
    tile : TileSlice or None
        The current tile (or frame) while processing.
    byteswapped : bool
        Tiles hold the stored (big-endian) bytes viewed as ``input_dtype``: only for UDFs whose
        tiling preferences include ``"stored_byteorder": True``; their kernels swap as they read.
    run_key : tuple of (str, int) or None
        In a worker: the run's unique id and this UDF's position in the run's list of UDFs,
        the same for every partition of the run (None on the client). A key for state that
        the partitions of one run may share in a process, such as laid-out masks.
    valid_nav : callable or None
        On the client: gives the mask that :meth:`get_valid_nav_mask` returns.
    corrections : CorrectionSet or None
        The run's detector corrections, already applied to the tiles the UDF receives (None:
        none; LiberTEM gives an empty set there).
    kernels : str
        The kernel set the run plan chose (``get_kernel(op, meta.kernels)``): the backend's
        name, or ``"plain"`` for the plain-NumPy kernels of a small CPU run (setting
        ``small_run_bytes``). ``backend`` and ``xp`` are the same either way.
    """

    dataset_shape: Shape
    dataset_dtype: np.dtype
    input_dtype: np.dtype
    roi: np.ndarray | None
    backend: str
    xp: ModuleType
    device_class: str
    partition: Partition | None = None
    tile: TileSlice | None = None
    byteswapped: bool = False
    run_key: tuple[str, int] | None = None
    valid_nav: Callable[[], np.ndarray] | None = None
    corrections: Any = None
    kernels: str = "numpy"

    def get_valid_nav_mask(self, full_nav: bool = False) -> np.ndarray | None:
        """The positions whose results have been merged, as a flat boolean mask (on the
        client, in ``merge`` and ``get_results``; None in the workers).

        In ``merge`` the partition being merged is not yet included. Positions without data
        (``sync_offset`` past either end of the file) are never included, so counts, means and
        fits over ``mask`` use only positions that hold data.

        Parameters
        ----------
        full_nav : bool
            With a roi: a mask over the whole scan instead of over the roi's positions.
        """
        if self.valid_nav is None:
            return None
        valid = self.valid_nav()
        if full_nav and self.roi is not None:
            full = np.zeros(self.roi.size, dtype=bool)
            full[self.roi.reshape(-1)] = valid
            return full
        return valid

    @property
    def slice(self) -> Slice:
        """Where the current tile lies in the data set (see :class:`Slice`)."""
        if self.tile is None:
            raise AttributeError("the slice is only known while a tile is processed")
        return Slice(self.tile.frames, self.sig_slice)

    @property
    def coordinates(self) -> np.ndarray:
        """Scan coordinates of the current tile's frames, shape ``(frames, nav_dims)``."""
        if self.tile is None:
            raise AttributeError("coordinates are only known while a tile is processed")
        return np.stack(np.unravel_index(self.tile.frames, self.dataset_shape.nav), axis=-1)

    @property
    def sig_slice(self) -> tuple[builtins.slice, ...]:
        """The part of the frame the current tile holds, as slices over the signal axes."""
        rows = None if self.tile is None else self.tile.sig_rows
        full = tuple(slice(0, n) for n in self.dataset_shape.sig)
        if rows is None:
            return full
        return (slice(*rows), *full[1:])


class UDF:
    """Base class of user-defined functions.

    A UDF declares its result buffers (:meth:`get_result_buffers`), implements exactly one of
    ``process_frame(frame)``, ``process_tile(tile)`` or ``process_partition(partition)``, and
    says how two partial results combine (:meth:`merge`). The framework runs it anywhere: one
    thread, many threads, many processes, GPUs.

    Subclasses take their parameters as keyword arguments and pass them on:
    ``super().__init__(radius=radius)``; they become ``self.params.radius``. Parameters must be
    picklable, as they travel to the workers.

    Inside the process method, ``self.results.NAME`` is the part of buffer ``NAME`` that belongs
    to the current frame/tile/partition, ``self.meta`` describes the data and the tile, and
    ``self.xp`` is the array module (``numpy`` or ``cupy``).
    """

    #: Buffer kinds for :meth:`buffer`.
    BUFFER_KINDS: ClassVar[tuple[str, ...]] = ("nav", "sig", "single")
    #: What :meth:`get_preferred_input_dtype` returns to receive tiles in the data set's own
    #: (stored, native byte order) type; the same marker as LiberTEM's.
    USE_NATIVE_DTYPE: ClassVar[Any] = bool
    #: Built-ins whose sums are linear in the data (centre of mass) set this to receive the
    #: stored, uncorrected tiles and apply ``meta.corrections`` folded into their weights
    #: (:mod:`libertem_gpu.corrections.fold`); every other UDF receives corrected tiles.
    _folds_corrections: ClassVar[bool] = False

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self.params = UDFParams(dict(kwargs))
        self.meta: UDFMeta | None = None
        self.results = BufferNamespace({})
        self.task_data = BufferNamespace({})

    @classmethod
    def aux_data(
        cls, data: Any, kind: str, extra_shape: tuple[int, ...] = (), dtype: Any = "float32"
    ) -> AuxData:
        """Wrap an array to pass as a parameter that the process methods see sliced.

        Parameters
        ----------
        data : array_like
            ``kind="nav"``: one value per scan position (scan-shaped or flat, each value of
            ``extra_shape``); ``"sig"``: frame-shaped (plus ``extra_shape``); ``"single"``:
            ``extra_shape``.
        kind : {"nav", "sig", "single"}
            How the process methods see it: the current frames' values, the part of the frame
            the tile holds, or all of it.
        extra_shape : tuple of int
            Shape of each value.
        dtype : dtype
            Element type.

        Examples
        --------
        >>> import numpy as np
        >>> from libertem_gpu import UDF
        >>> weights = UDF.aux_data(np.arange(6.0), kind="nav")
        >>> weights.data.shape
        (6,)
        """
        return AuxData.make(data, kind, extra_shape, dtype)

    def get_task_data(self) -> dict[str, Any]:
        """Data computed once per partition in the worker, before :meth:`preprocess`, and read
        as ``self.task_data.NAME`` (for example a kernel's constants moved to the device)."""
        return {}

    # --- declaration --------------------------------------------------------------------------

    def buffer(
        self,
        kind: str,
        extra_shape: tuple[int, ...] = (),
        dtype: Any = "float32",
        where: str | None = None,
        use: str | None = None,
    ) -> BufferDecl:
        """Declare a result buffer (used in :meth:`get_result_buffers`).

        Parameters
        ----------
        kind : {"nav", "sig", "single"}
            One value per frame, one frame-shaped accumulator, or one fixed-size value.
        extra_shape : tuple of int
            Extra trailing dimensions.
        dtype : dtype
            Element type.
        where : str, optional
            LiberTEM compatibility; ignored (buffers live where the backend computes).
        use : {None, "private", "result_only"}
            See :class:`~libertem_gpu.udf.buffers.BufferDecl`.
        """
        if isinstance(extra_shape, int):
            extra_shape = (extra_shape,)
        return BufferDecl(
            kind=kind,
            extra_shape=tuple(int(d) for d in extra_shape),
            dtype=np.dtype(dtype),
            use=use,
            where=where,
        )

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """Declare the result buffers: a dict of name to :meth:`buffer` declarations."""
        raise UDFDefinitionError(
            f"{type(self).__name__} must implement get_result_buffers() returning a dict of "
            "name -> self.buffer(kind=..., dtype=...)"
        )

    def get_preferred_input_dtype(self) -> Any:
        """The element type this UDF wants its tiles in (``self.meta.input_dtype`` says what it
        gets).

        float32 by default, as in LiberTEM, widened where the data needs it: 8- and 16-bit
        integers arrive as float32, 32/64-bit integers and float64 as float64, complex data as
        complex. Return ``self.USE_NATIVE_DTYPE`` to receive the stored type unconverted (the
        built-in analyses do: their kernels read integers directly). The framework converts each
        tile once per type that the run's UDFs ask for.
        """
        return np.float32

    def get_backends(self) -> tuple[str, ...]:
        """Backends this UDF can run on; override to add ``"cupy"``."""
        return ("numpy",)

    def get_tiling_preferences(self) -> dict[str, Any]:
        """Tiling wishes: ``depth`` (max frames per tile), ``total_size`` (max tile bytes),
        ``partial_frames`` (True if ``process_tile`` accepts frames split into row slabs; its nav
        buffer updates must then accumulate) and ``stored_byteorder`` (True if it can take
        big-endian unsigned integer tiles unswapped, see ``meta.byteswapped``)."""
        return {"depth": None, "total_size": None, "partial_frames": False}

    @classmethod
    def get_method(cls) -> str:
        """Which of ``frame``, ``tile`` or ``partition`` this UDF processes.

        Raises
        ------
        UDFDefinitionError
            If it implements none or more than one of the process methods.
        """
        found = [name for name in PROCESS_METHODS if callable(getattr(cls, name, None))]
        if len(found) != 1:
            raise UDFDefinitionError(
                f"{cls.__name__} must implement exactly one of {', '.join(PROCESS_METHODS)}; "
                f"found {found or 'none'}"
            )
        return found[0].removeprefix("process_")

    # --- hooks ---------------------------------------------------------------------------------

    def preprocess(self) -> None:
        """Initialise buffers, once per partition on the worker and once on the client, after
        allocation (buffers start zeroed)."""

    def postprocess(self) -> None:
        """Finish a partition's buffers on the worker, after its last tile."""

    def merge(self, dest: BufferNamespace, src: BufferNamespace) -> None:
        """Combine a partition's buffers ``src`` into the client's ``dest``.

        ``dest.NAME`` of a ``nav`` buffer is the slice for the partition's frames; ``sig`` and
        ``single`` buffers are whole. The default copies ``nav`` buffers and refuses others,
        whose combination only the UDF knows (sum, max, ...).
        """
        for name in dest:
            if self._decls[name].kind != "nav":
                raise UDFDefinitionError(
                    f"{type(self).__name__} has a {self._decls[name].kind!r} buffer {name!r}: "
                    "implement merge(dest, src) to say how two partial results combine"
                )
            dest[name][...] = src[name]

    def get_results(self) -> dict[str, Any]:
        """Final results from the merged buffers (``self.results``; ``nav`` buffers hold only the
        frames in the roi, flat). The default returns every buffer that is not private."""
        return {
            name: self.results[name]
            for name, decl in self._decls.items()
            if decl.use is None and name in self.results
        }

    # --- conveniences --------------------------------------------------------------------------

    @property
    def xp(self) -> ModuleType:
        """The array module of the backend this UDF runs on."""
        if self.meta is None:
            raise AttributeError("xp is only known while the UDF runs")
        return self.meta.xp

    @property
    def _decls(self) -> dict[str, BufferDecl]:
        decls = self.__dict__.get("_decls_cache")
        if decls is None:
            decls = self.get_result_buffers()
            self.__dict__["_decls_cache"] = decls
        return decls

    def copy(self) -> UDF:
        """A fresh instance with the same parameters."""
        return type(self)(**self._kwargs)

    def __getstate__(self) -> dict[str, Any]:
        # Only the parameters travel; run state (meta, buffers, xp) is rebuilt where it runs.
        return {"_kwargs": self._kwargs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        fresh = type(self)(**state["_kwargs"])
        self.__dict__.update(fresh.__dict__)
