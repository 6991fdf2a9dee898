"""Disk finding per frame by correlation with a template: :class:`FullFrameCorrelationUDF` (the
strongest peaks anywhere in the frame) and :class:`SparseCorrelationUDF` (the peak near each
expected position). Definitions: :mod:`libertem_gpu.disks.peaks`."""

from __future__ import annotations

from typing import Any

import numpy as np

from libertem_gpu.disks.peaks import check_peak_params, check_positions, check_search
from libertem_gpu.disks.templates import user_template
from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.kernels import get_kernel
from libertem_gpu.udf._common import kernel_backends, kernel_input_dtype, on_worker
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl

__all__ = ["FullFrameCorrelationUDF", "SparseCorrelationUDF"]


def _sig2(meta: Any, what: str) -> tuple[int, int]:
    sig = tuple(int(n) for n in meta.dataset_shape.sig)
    if len(sig) != 2:
        raise InvalidParameterError(f"{what} needs two signal dimensions, got sig_shape {sig}")
    return sig  # type: ignore[return-value]


class _DiskCorrelationUDF(UDF):
    """Shared: result buffers, input type, backends and the upsampled refinement."""

    label = "disk correlation"
    corr_op = ""
    peaks_op = ""
    wrap = True

    def _count(self) -> int:
        raise NotImplementedError

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``peaks`` (N, 2), ``heights`` (N,) float32 and ``n_found`` int32 of extra shape
        ``()`` (one integer per frame), all ``nav``."""
        if self.meta is not None:
            sig = _sig2(self.meta, self.label)
            t = self.params.template
            if t.shape[0] > sig[0] or t.shape[1] > sig[1]:
                raise InvalidParameterError(
                    f"{self.label}: the template ({t.shape[0]} x {t.shape[1]}) is larger than "
                    f"the frame ({sig[0]} x {sig[1]})"
                )
        n = self._count()
        return {
            "peaks": self.buffer(kind="nav", extra_shape=(n, 2), dtype=np.float32),
            "heights": self.buffer(kind="nav", extra_shape=(n,), dtype=np.float32),
            "n_found": self.buffer(kind="nav", dtype=np.int32),
        }

    def get_preferred_input_dtype(self) -> Any:
        """The stored type: the correlation converts as it reads."""
        return kernel_input_dtype(self.meta, self.corr_op)

    def get_backends(self) -> tuple[str, ...]:
        """The CPU (SciPy FFT / Numba) and, where a GPU is, CuPy."""
        return kernel_backends(self.corr_op, self.peaks_op, "disk_refine_upsampled")

    def _prepare_upsampled(self) -> None:
        assert self.meta is not None
        self._refine_up = None
        if self.params.refine == "upsampled":
            prepare = get_kernel("disk_refine_upsampled", self.meta.backend)
            self._refine_up = prepare(self.params.template, self.params.upsample, self.wrap)

    def _upsample(self, tile: Any) -> None:
        """Add the upsampled offsets to the peak pixels the peak operation wrote."""
        if self._refine_up is None:
            return
        xp = self.xp
        peaks = self.results.peaks
        frame, slot = xp.nonzero(~xp.isnan(self.results.heights))
        iy = peaks[frame, slot, 0].astype(np.int64)
        ix = peaks[frame, slot, 1].astype(np.int64)
        off = xp.zeros((len(frame), 2))
        self._refine_up(tile, frame, iy, ix, off)
        peaks[frame, slot, 0] += off[:, 0]
        peaks[frame, slot, 1] += off[:, 1]


class FullFrameCorrelationUDF(_DiskCorrelationUDF):
    """The ``n_peaks`` strongest disks of each frame: the frame correlated with a template over
    its whole area (an FFT correlation, circular), its local maxima at least ``min_dist`` apart
    and above ``min_height``, refined to subpixel positions.

    The correlation is batched over a tile: ``scipy.fft`` (one thread per partition) on the
    CPU, cuFFT through CuPy on the GPU. Unlike blobfinder's ``FullFrameCorrelationUDF``, which
    refines given positions, this one finds the peaks itself in every frame (for given
    positions use :class:`SparseCorrelationUDF`).

    Parameters
    ----------
    template : array_like
        2-D template (:func:`~libertem_gpu.disks.disk_template` and friends, or any array):
        normalised to zero mean and unit norm; its centre pixel ``(rows // 2, cols // 2)``
        marks the disk's position.
    n_peaks : int
        Peaks per frame (N).
    min_dist : float, optional
        Least distance between two peaks, in pixels; half the template's smaller side by
        default.
    refine : {"com", "parabolic", "upsampled"}
        Subpixel refinement (see :mod:`libertem_gpu.disks.peaks`).
    upsample : int
        Upsampling factor of ``"upsampled"`` (grid step ``1 / upsample`` pixels).
    min_height : float
        Peaks must be higher than this correlation value (frame units times the normalised
        template; 0 by default, so that a blank frame has no peaks).

    Results
    -------
    peaks : nav, float32 (N, 2)
        ``(y, x)`` in frame pixels, strongest first; NaN rows where fewer were found.
    heights : nav, float32 (N,)
        Correlation at each peak pixel, descending; NaN where none.
    n_found : nav, int32, extra shape ``()``
        Peaks found per frame (0 where none, and for scan positions without data).

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, FullFrameCorrelationUDF
    >>> from libertem_gpu.disks import disk_template
    >>> from libertem_gpu.disks.simulate import disk_frames
    >>> frames = disk_frames([(10.3, 12.6), (20.0, 7.2)], (32, 30), radius=3.0)
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.repeat(frames, 4, axis=0).reshape(2, 2, 32, 30))
    >>> res = ctx.run_udf(ds, FullFrameCorrelationUDF(disk_template(3.0), n_peaks=2))
    >>> np.round(res["peaks"].data[0, 0].astype(float), 1).tolist(), res["n_found"].data.tolist()
    ([[20.0, 7.2], [10.3, 12.6]], [[2, 2], [2, 2]])
    """

    label = "FullFrameCorrelationUDF"
    corr_op = "disk_correlate"
    peaks_op = "disk_peaks_full"
    wrap = True

    def __init__(
        self,
        template: Any,
        n_peaks: int,
        min_dist: float | None = None,
        refine: str = "com",
        upsample: int = 20,
        min_height: float = 0.0,
    ) -> None:
        t = user_template(template)
        if min_dist is None:
            min_dist = min(t.shape) // 2
        refine, upsample, min_height, n_peaks, min_dist = check_peak_params(
            refine, upsample, min_height, n_peaks, min_dist
        )
        super().__init__(
            template=t,
            n_peaks=n_peaks,
            min_dist=min_dist,
            refine=refine,
            upsample=upsample,
            min_height=min_height,
        )

    def _count(self) -> int:
        return int(self.params.n_peaks)

    def preprocess(self) -> None:
        """Lay the template out and prepare the operations, once per partition."""
        if on_worker(self.meta):
            assert self.meta is not None
            p = self.params
            sig = _sig2(self.meta, self.label)
            backend = self.meta.backend
            self._corr = get_kernel(self.corr_op, backend)(sig, p.template, self.meta.input_dtype)
            self._peaks = get_kernel(self.peaks_op, backend)(
                p.n_peaks, p.min_dist, p.min_height, p.refine
            )
            self._prepare_upsampled()

    def process_tile(self, tile: Any) -> None:
        """Correlate the tile's frames, find and refine their peaks."""
        from libertem_gpu.kernels.fourier import work_dtype

        assert self.meta is not None
        maps = self.xp.empty(tile.shape, work_dtype(self.meta.input_dtype))
        self._corr(tile, maps)
        r = self.results
        self._peaks(maps, r.peaks, r.heights, r.n_found)
        self._upsample(tile)


class SparseCorrelationUDF(_DiskCorrelationUDF):
    """The disk near each expected position, per frame: the frame correlated with a template in
    a small window around each position (shifts up to ``search`` pixels per axis), the window's
    maximum refined to a subpixel position. For when the lattice is roughly known: the work is
    per position, not per frame pixel.

    On the CPU, windows inside the frame come from the frame's FFT correlation where that is
    cheaper, the others from direct sums (one Numba pass reading the stored integers and
    correlating only the shifts it needs); on the GPU a Numba-CUDA kernel sums the windows.
    blobfinder's ``FastCorrelationUDF`` and ``SparseCorrelationUDF`` do the same job
    (``search`` is its ``steps``), with frames log-scaled and blobfinder's own templates.

    Parameters
    ----------
    peaks : array_like
        ``(P, 2)`` expected positions ``(y, x)`` in frame pixels (rounded to the nearest pixel).
    template : array_like
        As in :class:`FullFrameCorrelationUDF`.
    search : int
        Largest shift from an expected position, in pixels, per axis (>= 1).
    refine, upsample, min_height
        As in :class:`FullFrameCorrelationUDF`.

    Results
    -------
    peaks : nav, float32 (P, 2)
        Row ``k``: the disk found near expected position ``k``, ``(y, x)``; NaN where the
        window's maximum lies farther than ``search`` or is not above ``min_height``.
    heights : nav, float32 (P,)
        Correlation at each peak pixel; NaN where none.
    n_found : nav, int32, extra shape ``()``
        Positions with a peak, per frame.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, SparseCorrelationUDF
    >>> from libertem_gpu.disks import disk_template
    >>> from libertem_gpu.disks.simulate import disk_frames
    >>> frames = disk_frames([(10.3, 12.6), (20.0, 7.2)], (32, 30), radius=3.0)
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.repeat(frames, 4, axis=0).reshape(2, 2, 32, 30))
    >>> udf = SparseCorrelationUDF([(10, 12), (21, 7)], disk_template(3.0), search=2)
    >>> np.round(ctx.run_udf(ds, udf)["peaks"].data[1, 1].astype(float), 1).tolist()
    [[10.3, 12.6], [20.0, 7.2]]
    """

    label = "SparseCorrelationUDF"
    corr_op = "disk_sparse_find"
    peaks_op = "disk_sparse_find"
    wrap = False

    def __init__(
        self,
        peaks: Any,
        template: Any,
        search: int = 2,
        refine: str = "com",
        upsample: int = 20,
        min_height: float = 0.0,
    ) -> None:
        t = user_template(template)
        refine, upsample, min_height, _, _ = check_peak_params(refine, upsample, min_height)
        super().__init__(
            peaks=check_positions(peaks),
            template=t,
            search=check_search(search),
            refine=refine,
            upsample=upsample,
            min_height=min_height,
        )

    def _count(self) -> int:
        return len(self.params.peaks)

    def preprocess(self) -> None:
        """Lay the template and windows out, once per partition."""
        from libertem_gpu.disks.peaks import integer_positions

        if on_worker(self.meta):
            assert self.meta is not None
            p = self.params
            backend = self.meta.backend
            pos = integer_positions(p.peaks)
            sig = _sig2(self.meta, self.label)
            self._find = get_kernel(self.corr_op, backend)(
                p.template, pos, p.search, p.refine, p.min_height, self.meta.input_dtype, sig
            )
            self._prepare_upsampled()

    def process_tile(self, tile: Any) -> None:
        """Find and refine the disk near each expected position in the tile's frames."""
        r = self.results
        self._find(tile, r.peaks, r.heights, r.n_found)
        self._upsample(tile)
