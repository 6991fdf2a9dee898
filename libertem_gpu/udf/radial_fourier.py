"""Angular Fourier coefficients of radial bins of each frame: :class:`RadialFourierUDF`.

For each frame ``f`` and each radial bin ``b`` (antialiased rings of equal width between ``ri``
and ``ro`` around ``(cy, cx)``), the coefficients ``sum_pixels f * w_b * exp(1j * n * phi)``
of the orders ``n = 0 .. max_order``, ``phi = arctan2(y - cy, x - cx)`` and ``w_b`` the bin's
weight of each pixel. They are computed as a complex mask stack by
:class:`~libertem_gpu.ApplyMasksUDF`, with LiberTEM 0.16's masks, signs and defaults.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.masks import SparseMask
from libertem_gpu.udf.buffers import BufferDecl
from libertem_gpu.udf.masks import ApplyMasksUDF

__all__ = ["RadialFourierUDF", "radial_fourier_masks", "radial_fourier_parameters"]


def radial_fourier_parameters(
    sig_shape: Sequence[int],
    cx: float | None = None,
    cy: float | None = None,
    ri: float | None = None,
    ro: float | None = None,
    n_bins: int | None = None,
    max_order: int | None = None,
    use_sparse: bool | str | None = None,
) -> dict[str, Any]:
    """The parameters with LiberTEM 0.16's defaults filled in for frames of ``sig_shape``.

    Parameters
    ----------
    sig_shape : sequence of int
        The frame shape ``(ny, nx)``.
    cx, cy : float, optional
        Centre (default: ``nx / 2``, ``ny / 2``).
    ri, ro : float, optional
        Inner and outer radius (default: 0 and a radius that reaches past every corner).
    n_bins : int, optional
        Number of radial bins (default 1).
    max_order : int, optional
        Highest angular order (default 24).
    use_sparse : bool or str, optional
        Sparse masks; default as LiberTEM: dense where the stack is small or the bins cover
        much of the frame, else ``"scipy.sparse"`` (which means sparse here).

    Returns
    -------
    dict
        ``cx, cy, ri, ro, n_bins, max_order, use_sparse, mask_count, mask_dtype``.
    """
    from libertem_gpu.compat.masks import bounding_radius

    if len(tuple(sig_shape)) != 2:
        raise InvalidParameterError(
            f"incompatible dataset: need two signal dimensions, got sig_shape {tuple(sig_shape)}"
        )
    ny, nx = (int(n) for n in sig_shape)
    cx = nx / 2 if cx is None else cx
    cy = ny / 2 if cy is None else cy
    ri = 0 if ri is None else ri
    ro = bounding_radius(cx, cy, nx, ny) if ro is None else ro
    n_bins = 1 if n_bins is None else int(n_bins)
    max_order = 24 if max_order is None else int(max_order)
    if n_bins < 1 or max_order < 0:
        raise InvalidParameterError(
            f"need n_bins >= 1 and max_order >= 0, got n_bins={n_bins}, max_order={max_order}"
        )
    if not ro > ri:
        raise InvalidParameterError(f"the outer radius ro={ro} must exceed ri={ri}")
    mask_count = n_bins * (max_order + 1)
    if use_sparse is None:
        width = (ro - ri) / n_bins
        outer_bin_share = math.pi * (ro**2 - (ro - width) ** 2) / (nx * ny)
        small = mask_count * ny * nx * 8 < 2**18  # fits a cache comfortably
        use_sparse = False if small or (outer_bin_share > 0.05 and n_bins < 10) else "scipy.sparse"
    return {
        "cx": cx,
        "cy": cy,
        "ri": ri,
        "ro": ro,
        "n_bins": n_bins,
        "max_order": max_order,
        "use_sparse": use_sparse,
        "mask_count": mask_count,
        "mask_dtype": np.complex64,
    }


def radial_fourier_masks(
    sig_shape: Sequence[int],
    cx: float,
    cy: float,
    ri: float,
    ro: float,
    n_bins: int,
    max_order: int,
    sparse: bool = False,
) -> np.ndarray | SparseMask:
    """The complex masks: bin weight times ``exp(1j * order * phi)``, complex64.

    Parameters
    ----------
    sig_shape : sequence of int
        The frame shape ``(ny, nx)``.
    cx, cy, ri, ro : float
        Centre, inner and outer radius.
    n_bins, max_order : int
        Number of radial bins and the highest order.
    sparse : bool
        Return a :class:`~libertem_gpu.masks.SparseMask` of the stack instead of an array.

    Returns
    -------
    numpy.ndarray or SparseMask
        Shape ``(n_bins * (max_order + 1), ny, nx)``; mask ``b * (max_order + 1) + n`` is bin
        ``b``, order ``n``.
    """
    from libertem_gpu.compat.masks import polar_map, radial_bins

    ny, nx = (int(n) for n in sig_shape)
    bins = np.asarray(
        radial_bins(cx, cy, nx, ny, radius=ro, radius_inner=ri, n_bins=n_bins, use_sparse=False),
        dtype=np.float64,
    ).reshape(n_bins, ny * nx)
    _, phi = polar_map(cx, cy, nx, ny)
    orders = np.arange(max_order + 1)
    if not sparse:
        modulator = np.exp(1j * orders[:, None] * phi.reshape(1, -1))
        stack = (bins[:, None, :] * modulator[None]).astype(np.complex64)
        return stack.reshape(-1, ny, nx)
    indices, values = [], []
    npix = ny * nx
    flat_phi = phi.reshape(-1)
    for b in range(n_bins):
        pix = np.flatnonzero(bins[b])
        for n in orders:
            indices.append(pix + (b * (max_order + 1) + n) * npix)
            values.append(bins[b, pix] * np.exp(1j * n * flat_phi[pix]))
    return SparseMask(
        (n_bins * (max_order + 1), ny, nx),
        np.concatenate(indices),
        np.concatenate(values).astype(np.complex64),
    )


class RadialFourierUDF(ApplyMasksUDF):
    """Angular Fourier coefficients of radial bins of each frame (LiberTEM's radial Fourier
    analysis).

    Parameters
    ----------
    cx, cy : float, optional
        Centre of the bins (default: the frame centre, ``size / 2``).
    ri, ro : float, optional
        Inner and outer radius (default: 0 and a radius past every corner of the frame).
    n_bins : int, optional
        Number of radial bins of equal width (default 1).
    max_order : int, optional
        Highest angular order computed (default 24).
    use_sparse : bool or str, optional
        Sparse masks (default: LiberTEM's choice by stack size and bin area).
    backends : sequence of str, optional
        Restrict the backends this UDF may run on.

    Results
    -------
    complex : nav, extra_shape ``(n_bins, max_order + 1)``, complex64 (complex128 for
        float64 / 32-bit and wider integer data)
        ``complex[..., b, n] = sum(frame * w_b * exp(1j * n * arctan2(y - cy, x - cx)))``.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, RadialFourierUDF
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.ones((2, 3, 16, 16), dtype=np.uint16))
    >>> udf = RadialFourierUDF(cx=8, cy=8, ri=0, ro=6, n_bins=2, max_order=4)
    >>> ctx.run_udf(dataset=ds, udf=udf)["complex"].data.shape
    (2, 3, 2, 5)
    """

    def __init__(
        self,
        cx: float | None = None,
        cy: float | None = None,
        ri: float | None = None,
        ro: float | None = None,
        n_bins: int | None = None,
        max_order: int | None = None,
        use_sparse: bool | str | None = None,
        backends: Sequence[str] | None = None,
    ) -> None:
        # Not ApplyMasksUDF.__init__: the parameters are ours, the masks are made from them.
        super(ApplyMasksUDF, self).__init__(
            cx=cx,
            cy=cy,
            ri=ri,
            ro=ro,
            n_bins=n_bins,
            max_order=max_order,
            use_sparse=use_sparse,
            backends=backends,
        )

    def resolved(self, sig_shape: Sequence[int]) -> dict[str, Any]:
        """The parameters with defaults filled in for frames of ``sig_shape``."""
        p = self.params
        return radial_fourier_parameters(
            sig_shape, p.cx, p.cy, p.ri, p.ro, p.n_bins, p.max_order, p.use_sparse
        )

    def _mask_source(self, sig: tuple[int, ...]) -> tuple[Any, tuple[int, ...], Any, Any, Any]:
        q = self.resolved(sig)
        sparse = bool(q["use_sparse"])
        stack = radial_fourier_masks(
            sig, q["cx"], q["cy"], q["ri"], q["ro"], q["n_bins"], q["max_order"], sparse
        )
        return (lambda: stack), sig, sparse, q["mask_dtype"], q["mask_count"]

    def _shape(self) -> tuple[int, int]:
        assert self.meta is not None
        q = self.resolved(tuple(self.meta.dataset_shape.sig))
        return q["n_bins"], q["max_order"] + 1

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``complex``: nav, ``(n_bins, max_order + 1)`` per position (real and imaginary parts
        accumulate in a private buffer)."""
        buffers = super().get_result_buffers()
        complex_decl = buffers.pop("intensity")
        buffers["complex"] = self.buffer(
            kind="nav", extra_shape=self._shape(), dtype=complex_decl.dtype, use="result_only"
        )
        return buffers

    def get_results(self) -> dict[str, Any]:
        """``complex``, the mask results shaped ``(positions, n_bins, max_order + 1)``."""
        flat = super().get_results()["intensity"]
        return {"complex": flat.reshape(flat.shape[0], *self._shape())}
