"""Parallax imaging (tilt-corrected bright field) in one streaming pass: :class:`ParallaxUDF`.

With a defocused probe each bright-field detector pixel sees the specimen through a beam
tilted by that pixel's angle, so its virtual image is the specimen's image moved by an offset
that grows linearly with the pixel's position in the disk: ``I_q(p) = I_0(p - A q)`` for
scan position ``p`` and detector position ``q`` (from the disk's centre), ``A`` a 2 x 2 matrix
of scan pixels per detector pixel (defocus, the detector's rotation and flip against the scan,
astigmatism). Adding every pixel's value back where it belongs, at ``p - A q``, sums all
bright-field pixels without the blur that their different offsets give the plain bright-field
image, and since the offsets fall between scan positions the sum may be drawn on a finer grid
than the scan (``upsampling``). :func:`~libertem_gpu.udf.parallax_fit.estimate_parallax`
measures ``A`` from the data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from libertem_gpu import host_threads
from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError
from libertem_gpu.kernels import get_kernel
from libertem_gpu.udf._common import (
    allowed_backends,
    check_center,
    flat_tile,
    kernel_input_dtype,
    mean_or_nan,
    on_worker,
    pixel_range,
    preferences,
)
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl, BufferNamespace

__all__ = ["ParallaxUDF", "bright_field_pixels"]


def bright_field_pixels(
    sig_shape: Sequence[int], center: Any, radius: float, shift_matrix: Any
) -> tuple[np.ndarray, np.ndarray]:
    """The flat indices of the pixels within ``radius`` of ``center`` (ascending), and each
    one's shift ``A q``, ``(m, 2)`` in scan pixels."""
    rows, cols = (int(s) for s in sig_shape)
    cy, cx = (float(c) for c in center)
    # Only the disk's bounding box: large frames would otherwise build grids of every pixel.
    y0, y1 = max(0, math.floor(cy - radius)), min(rows, math.ceil(cy + radius) + 1)
    x0, x1 = max(0, math.floor(cx - radius)), min(cols, math.ceil(cx + radius) + 1)
    if y1 <= y0 or x1 <= x0:  # the disk lies off the frame
        return np.zeros(0, np.int64), np.zeros((0, 2))
    y, x = np.mgrid[y0:y1, x0:x1]
    inside = np.hypot(y - cy, x - cx) <= radius
    q = np.stack([y[inside] - cy, x[inside] - cx], axis=-1).astype(np.float64)
    flat = (y[inside] * cols + x[inside]).astype(np.int64)  # ascending: row-major box
    return flat, q @ np.asarray(shift_matrix, dtype=np.float64).T


class ParallaxUDF(UDF):
    """Parallax (tilt-corrected bright-field) image: every bright-field pixel's value added at
    its scan position moved back by its own shift, on a grid ``upsampling`` times finer than
    the scan.

    Parameters
    ----------
    shift_matrix : array_like
        ``(2, 2)``: scan pixels (row, column) that a pixel's virtual image moves per detector
        pixel (row, column) from ``center``, ``shift = shift_matrix @ q``: the
        ``shift_matrix`` of :func:`~libertem_gpu.udf.parallax_fit.estimate_parallax`, or from
        the optics (defocus times the angle per detector pixel over the scan step, rotated as
        the detector is against the scan).
    center : tuple of float
        ``(row, column)`` of the bright-field disk's centre on the detector.
    radius : float
        Pixels within this distance of ``center`` count.
    mean_frame : numpy.ndarray, optional
        The mean frame (frame-shaped): each pixel's value is divided by its mean, so that
        the image is the relative contrast (0 on average) whatever the disk's own shading;
        pixels whose mean is not positive are left out. Without it values count as read.
    upsampling : int
        Image pixels per scan step (default 1).
    backends : sequence of str, optional
        Restrict the backends this UDF may run on.

    Results
    -------
    image : single, ``(rows * upsampling, columns * upsampling)`` of the scan, float64
        The weighted mean of the values that fell near each image pixel (minus 1 with
        ``mean_frame``), NaN where none did. Image pixel ``(a, b)`` lies at scan position
        ``(a / upsampling, b / upsampling)``.
    weight : single, the same shape, float64
        The bilinear weight that fell on each image pixel (how well the scan and the shifts
        cover it).

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, ParallaxUDF
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.random.default_rng(0).random((8, 9, 12, 12)))
    >>> udf = ParallaxUDF(np.eye(2) * 0.3, center=(5.5, 5.5), radius=4, upsampling=2)
    >>> ctx.run_udf(dataset=ds, udf=udf)["image"].data.shape
    (16, 18)
    """

    def __init__(
        self,
        shift_matrix: Any,
        center: Any,
        radius: float,
        mean_frame: Any = None,
        upsampling: int = 1,
        backends: Sequence[str] | None = None,
    ) -> None:
        matrix = np.asarray(shift_matrix, dtype=np.float64)
        if matrix.shape != (2, 2) or not np.isfinite(matrix).all():
            raise InvalidParameterError(
                f"ParallaxUDF: shift_matrix must be 2 x 2 finite numbers, got {shift_matrix!r}"
            )
        cy, cx = check_center(center, "ParallaxUDF")
        if not (isinstance(radius, (int, float, np.number)) and float(radius) > 0):
            raise InvalidParameterError(f"ParallaxUDF: radius must be > 0, got {radius!r}")
        if isinstance(upsampling, bool) or not isinstance(upsampling, (int, np.integer)):
            raise InvalidParameterError(
                f"ParallaxUDF: upsampling must be a whole number >= 1, got {upsampling!r}"
            )
        if upsampling < 1:
            raise InvalidParameterError(f"ParallaxUDF: upsampling must be >= 1, got {upsampling}")
        super().__init__(
            shift_matrix=matrix,
            center=(cy, cx),
            radius=float(radius),
            mean_frame=None if mean_frame is None else np.asarray(mean_frame, dtype=np.float64),
            upsampling=int(upsampling),
            backends=backends,
        )

    def get_preferred_input_dtype(self) -> Any:
        """The stored type, which the operation reads."""
        return kernel_input_dtype(self.meta, "parallax_splat")

    def get_backends(self) -> tuple[str, ...]:
        """Where the operation runs (the CPU and, where a GPU is, CuPy)."""
        return allowed_backends("parallax_splat", self.params.backends)

    def get_tiling_preferences(self) -> dict[str, Any]:
        """Accepts frames split into row slabs (each slab adds its own pixels)."""
        return preferences(stored_byteorder=False)

    def _image_shape(self) -> tuple[int, int]:
        assert self.meta is not None
        nav = tuple(int(n) for n in self.meta.dataset_shape.nav)
        sig = tuple(int(n) for n in self.meta.dataset_shape.sig)
        if len(nav) != 2 or len(sig) != 2:
            raise InvalidParameterError(
                f"ParallaxUDF needs a 2-D scan of 2-D frames, got scan {nav} and frames {sig}"
            )
        mean = self.params.mean_frame
        if mean is not None and mean.shape != sig:
            raise ShapeMismatchError(
                f"ParallaxUDF: mean_frame has shape {mean.shape}, frames are {sig}"
            )
        u = self.params.upsampling
        return nav[0] * u, nav[1] * u

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``total`` (private) and ``weight``: the sums over the image; ``image`` from them."""
        shape = self._image_shape()
        pixels, _ = self._geometry()
        if len(pixels) == 0:
            raise InvalidParameterError(
                f"ParallaxUDF: no pixel within radius {self.params.radius} of center "
                f"{self.params.center} (with a positive mean_frame)"
            )

        def single(use: str | None) -> BufferDecl:
            return self.buffer(kind="single", extra_shape=shape, dtype=np.float64, use=use)

        return {
            "total": single("private"),
            "weight": single(None),
            "image": single("result_only"),
        }

    def _geometry(self) -> tuple[np.ndarray, np.ndarray]:
        """The pixels that count (ascending flat indices) and their shifts."""
        assert self.meta is not None
        p = self.params
        sig = tuple(self.meta.dataset_shape.sig)
        pixels, shifts = bright_field_pixels(sig, p.center, p.radius, p.shift_matrix)
        if p.mean_frame is not None:
            keep = p.mean_frame.reshape(-1)[pixels] > 0
            pixels, shifts = pixels[keep], shifts[keep]
        return pixels, shifts

    def preprocess(self) -> None:
        """Lay out the pixels, their factors and offsets on the backend, once per partition."""
        if not on_worker(self.meta):
            return
        assert self.meta is not None
        p = self.params
        pixels, shifts = self._geometry()
        scale = np.ones(len(pixels))
        if p.mean_frame is not None:
            scale = 1.0 / p.mean_frame.reshape(-1)[pixels]
        xp = self.xp
        self._pixels = pixels  # on the host: for the row slabs' ranges
        self._on_backend = (
            xp.asarray(pixels),
            xp.asarray(scale),
            xp.asarray(-shifts * p.upsampling),  # a value belongs at p - A q
        )
        self._splat = get_kernel("parallax_splat", self.meta.kernels)

    def process_tile(self, tile: Any) -> None:
        """Add the tile's bright-field pixels (those of its row slab) to the image."""
        assert self.meta is not None and self.meta.tile is not None
        p0, p1 = pixel_range(self.meta)
        a, b = np.searchsorted(self._pixels, (p0, p1))
        if a == b:
            return
        pixels, scale, offsets = self._on_backend
        nav = tuple(self.meta.dataset_shape.nav)
        where = np.stack(np.unravel_index(self.meta.tile.frames, nav), axis=-1)
        positions = self.xp.asarray(where.astype(np.float64) * self.params.upsampling)
        self._splat(
            flat_tile(tile),
            pixels[a:b] - p0,
            scale[a:b],
            positions,
            offsets[a:b],
            self.results.total,
            self.results.weight,
        )

    def merge(self, dest: BufferNamespace, src: BufferNamespace) -> None:
        """Sums add."""
        host_threads.combine_into(np.add, dest.total, src.total)
        host_threads.combine_into(np.add, dest.weight, src.weight)

    def get_results(self) -> dict[str, Any]:
        """The image: the weighted mean at each image pixel (NaN where nothing fell)."""
        weight = self.results.weight
        image = mean_or_nan(self.results.total, weight)
        if self.params.mean_frame is not None:
            image -= 1.0
        return {"image": image, "weight": weight}
