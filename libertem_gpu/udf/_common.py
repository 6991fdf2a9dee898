"""Small helpers shared by the built-in analyses: flat views of tiles and buffers, and where a
(possibly partial) tile sits in the frame."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError, UnsupportedDTypeError
from libertem_gpu.kernels import backends_for, reads_stored_order
from libertem_gpu.kernels.registry import get_impl
from libertem_gpu.udf.base import UDF, UDFMeta

#: Backends the built-in analyses without kernels (plain array code) run on.
BUILTIN_BACKENDS = ("numpy", "cupy")

#: Tiling preferences of analyses whose tile updates accumulate, so that huge frames may stream
#: through in row slabs.
PARTIAL_FRAMES = {"depth": None, "total_size": None, "partial_frames": True}

#: Why the profile analyses (FEM's rings, azimuthal integration) lay out their masks sparse
#: whatever their number: masks that share no pixel become a label per pixel on the CPU
#: (``kernels/labels_cpu``), faster than the dense strategies. 1 GiB of 256 x 256 frames on
#: two threads, GB/s dense against sparse: 32 rings on uint16 4.6-4.7 (runs) against
#: 4.9-5.0, on float32 5.2 against 10.9-11.2; 64 rings on uint16 1.3 against 4.8.
PROFILE_MASKS_SPARSE = True


def preferences(stored_byteorder: bool) -> dict[str, Any]:
    """:data:`PARTIAL_FRAMES`, plus whether the kernels can swap big-endian tiles as they read."""
    return {**PARTIAL_FRAMES, "stored_byteorder": stored_byteorder}


def kernel_input_dtype(meta: UDFMeta | None, *ops: str, complex_ok: bool = False) -> Any:
    """What a built-in asks for as its input type: the stored type where the CPU
    implementations of all of ``ops`` read it directly (integers are widened inside the loops,
    never copied to float), else float32 semantics (float16 data arrives as float32). Complex
    data is refused unless the analysis sums it itself (``complex_ok``).

    The CPU implementations decide for every backend, so that the client and the workers agree
    on the type (result buffers may depend on it)."""
    if meta is None:
        return UDF.USE_NATIVE_DTYPE
    native = np.dtype(meta.dataset_dtype).newbyteorder("=")
    if all(native in get_impl(op, "numpy").dtypes for op in ops):
        return UDF.USE_NATIVE_DTYPE
    if native.kind == "c" and complex_ok:
        return UDF.USE_NATIVE_DTYPE
    if native.kind == "c":
        raise UnsupportedDTypeError(
            f"the {', '.join(ops)} kernels read real numbers, and this data set holds {native}: "
            "use PickUDF, AutoUDF (ctx.map) or a UDF of your own for complex data"
        )
    return np.float32


def refuse_complex(meta: UDFMeta | None, analysis: str, reason: str) -> None:
    """Raise :class:`~libertem_gpu.errors.UnsupportedDTypeError` naming ``analysis`` and the
    data set's type if it is complex; called when the run is planned, before any read."""
    if meta is None:
        return
    native = np.dtype(meta.dataset_dtype)
    if native.kind == "c":
        raise UnsupportedDTypeError(
            f"{analysis} is not defined for complex data (this data set holds "
            f"{native.newbyteorder('=')}): {reason}"
        )


def kernel_backends(*ops: str) -> tuple[str, ...]:
    """Backends on which every one of the operations ``ops`` has an implementation."""
    return backends_for(*ops)


def mean_or_nan(total: Any, weight: Any) -> np.ndarray:
    """``total / weight`` where ``weight > 0``, NaN elsewhere (host arrays)."""
    total, weight = np.asarray(total), np.asarray(weight)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, total / weight, np.nan)


def allowed_backends(op: str, wanted: Any) -> tuple[str, ...]:
    """The backends of operation ``op``, restricted to ``wanted`` (a UDF's ``backends``
    parameter) where that is not None."""
    supported = kernel_backends(op)
    if wanted is None:
        return supported
    return tuple(b for b in supported if b in tuple(wanted))


def swaps_while_reading(meta: UDFMeta | None, op: str) -> bool:
    """Whether the operation ``op`` reads this data set's tiles in stored byte order (big-endian
    integers straight from the file), swapping as it reads, on the run's backend."""
    return meta is not None and reads_stored_order(op, meta.kernels, meta.input_dtype)


def flat_tile(tile: Any) -> Any:
    """``(n, *sig_part)`` tile as ``(n, npix)``; a view for whole frames and row slabs."""
    return tile.reshape(tile.shape[0], -1)


def flat_buffer(buf: Any) -> Any:
    """A 1-D view of a sig buffer (or its row slab), which kernels update in place."""
    if not buf.flags.c_contiguous:  # reshape would copy, and the update would be lost
        raise ValueError(f"expected a contiguous buffer, got strides {buf.strides}")
    return buf.reshape(-1)


def real_view(a: Any) -> Any:
    """A complex array (NumPy or CuPy) as interleaved (real, imaginary) reals, last axis
    doubled; no copy (the last axis must be contiguous)."""
    return a.view(np.finfo(a.dtype).dtype)


def pixel_range(meta: UDFMeta) -> tuple[int, int]:
    """Flat pixel range ``[p0, p1)`` of the frame that the current tile holds."""
    sig = meta.dataset_shape.sig
    rows = None if meta.tile is None else meta.tile.sig_rows
    if rows is None:
        return 0, math.prod(sig)
    row_len = math.prod(sig[1:])
    return rows[0] * row_len, rows[1] * row_len


def first_slab(meta: UDFMeta) -> bool:
    """Whether the current tile holds the first rows of its frames (each frame is seen once with
    this flag set, whether or not frames are split)."""
    rows = None if meta.tile is None else meta.tile.sig_rows
    return rows is None or rows[0] == 0


def on_worker(meta: UDFMeta | None) -> bool:
    """Whether the UDF runs in a partition task (as opposed to on the client)."""
    return meta is not None and meta.partition is not None


def check_center(center: Any, what: str) -> tuple[float, float]:
    """``center`` as finite ``(row, column)`` floats, else an :class:`InvalidParameterError`
    naming ``what``."""
    try:
        cy, cx = (float(c) for c in center)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"{what}: center must be two numbers (row, column), got {center!r}"
        ) from None
    if not (math.isfinite(cy) and math.isfinite(cx)):
        raise InvalidParameterError(f"{what}: center must be finite, got {center!r}")
    return cy, cx


def check_radii(
    rad_in: Any, rad_out: Any, what: str, names: tuple[str, str]
) -> tuple[float, float]:
    """``(rad_in, rad_out)`` as floats, ``0 <= rad_in < rad_out`` and finite, else an
    :class:`InvalidParameterError` naming ``what`` and the parameters ``names``."""
    try:
        ri, ro = float(rad_in), float(rad_out)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"{what}: {names[0]} and {names[1]} must be numbers, got {rad_in!r}, {rad_out!r}"
        ) from None
    if not (ri >= 0 and ro > ri and math.isfinite(ro)):
        raise InvalidParameterError(
            f"{what}: need 0 <= {names[0]} < {names[1]} (finite), got {names[0]}={rad_in}, "
            f"{names[1]}={rad_out}"
        )
    return ri, ro
