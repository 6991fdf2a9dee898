"""The disk-finding operations against their NumPy references (libertem_gpu.disks.peaks),
through the kernel contract kit: correlation maps (full frame and sparse windows) on every
dtype, peak selection and refinement on float maps, and the upsampled refinement from frame
crops."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.disks import peaks as ref
from libertem_gpu.kernels.fourier import work_dtype
from tests.kernels.kit import KernelContract

# float32 transforms and sums of values up to ~4e9 (uint32) against float64 references
RTOL = 2e-5


def _template(rng):
    return rng.standard_normal((3, 5))


class TestDiskCorrelateContract(KernelContract):
    op = "disk_correlate"
    rtol = RTOL

    def arguments(self, rng, tile):
        out = rng.random(tile.shape).astype(work_dtype(tile.dtype))
        return (tile, _template(rng), out)

    def expected(self, args):
        return [ref.correlate(args[0], args[1])]

    def outputs(self, args):
        return [args[2]]

    def call(self, kernel, args, swap):
        tile, template, out = args
        kernel(tile.shape[1:], template, tile.dtype)(tile, out)


class TestDiskCorrelateSparseContract(KernelContract):
    op = "disk_correlate_sparse"
    rtol = RTOL
    half = 2

    def arguments(self, rng, tile):
        rows, cols = tile.shape[1:]
        # windows across the edges (zero outside) and one in the middle
        pos = rng.integers(-3, [rows + 3, cols + 3], size=(3, 2))
        pos = np.vstack([pos, [[rows // 2, cols // 2]]]).astype(np.int64)
        m = 2 * self.half + 1
        out = rng.random((len(tile), len(pos), m, m)).astype(work_dtype(tile.dtype))
        return (tile, _template(rng), pos, out)

    def expected(self, args):
        tile, template, pos, _ = args
        return [ref.correlate_sparse(tile, template, pos, self.half - 1, 1)]

    def outputs(self, args):
        return [args[3]]

    def call(self, kernel, args, swap):
        tile, template, pos, out = args
        kernel(template, pos, self.half, tile.dtype)(tile, out)


class _PeaksContract(KernelContract):
    """Outputs start random; NaN where no peak."""

    dtypes = ("float32", "float64")
    refine = "com"

    def _outputs(self, rng, n, count):
        return (
            rng.random((n, count, 2)).astype(np.float32),
            rng.random((n, count)).astype(np.float32),
            rng.integers(0, 9, n).astype(np.int32),
        )

    def expected(self, args):
        maps, *_ = args
        outs = [np.array(o) for o in args[-3:]]
        self.reference_kernel()(np.asarray(maps), *outs)
        return outs

    def outputs(self, args):
        return list(args[-3:])


class TestDiskPeaksFullContract(_PeaksContract):
    op = "disk_peaks_full"
    params = (3, 1.5, -500.0)

    def reference_kernel(self):
        from libertem_gpu.kernels import disk_peaks

        return disk_peaks.prepare_full_reference(*self.params, self.refine)

    def arguments(self, rng, tile):
        return (tile, *self._outputs(rng, len(tile), self.params[0]))

    def call(self, kernel, args, swap):
        kernel(*self.params, self.refine)(*args)


class TestDiskPeaksFullParabolicContract(TestDiskPeaksFullContract):
    refine = "parabolic"
    params = (5, 0.0, -np.inf)


class TestDiskPeaksSparseContract(_PeaksContract):
    op = "disk_peaks_sparse"
    search = 2
    count = 3

    def _pos(self):
        return np.array([[5, 7], [0, 0], [-2, 9]])

    def reference_kernel(self):
        from libertem_gpu.kernels import disk_peaks

        return disk_peaks.prepare_sparse_reference(self._pos(), self.search, -100.0, self.refine)

    def arguments(self, rng, tile):
        m = 2 * (self.search + ref.REACH[self.refine]) + 1
        shape = (len(tile), self.count, m, m)
        maps = (rng.standard_normal(shape) * 1000).astype(tile.dtype)
        return (maps, *self._outputs(rng, len(tile), self.count))

    def call(self, kernel, args, swap):
        kernel(self._pos(), self.search, -100.0, self.refine)(*args)


class TestDiskPeaksSparseParabolicContract(TestDiskPeaksSparseContract):
    refine = "parabolic"


class TestDiskRefineUpsampledContract(KernelContract):
    op = "disk_refine_upsampled"
    rtol = 1e-12
    wrap = True

    def arguments(self, rng, tile):
        n, rows, cols = tile.shape
        k = 0 if rows * cols == 1 else 5  # a constant crop has no maximum to find
        frame = rng.integers(0, n, k)
        iy = rng.integers(-1, rows + 1, k) % (rows if self.wrap else rows + 2)
        ix = rng.integers(-1, cols + 1, k) % (cols if self.wrap else cols + 2)
        return (tile, _template(rng), frame, iy, ix, rng.random((k, 2)))

    def expected(self, args):
        from libertem_gpu.kernels import disk_peaks

        tile, template, frame, iy, ix, out = args
        out = out.copy()
        disk_peaks.prepare_upsampled_reference(template, 10, self.wrap)(tile, frame, iy, ix, out)
        return [out]

    def outputs(self, args):
        return [args[5]]

    def call(self, kernel, args, swap):
        tile, template, *rest = args
        kernel(template, 10, self.wrap)(tile, *rest)


class TestDiskRefineUpsampledZeroPaddedContract(TestDiskRefineUpsampledContract):
    wrap = False


class TestDiskSparseFindContract(KernelContract):
    """The fused sparse search (CPU: two-stage Numba pass) equals full maps and their peaks.
    Its GPU implementation is the two operations above in sequence, each run in the simulator
    by its own contract; on the simulator's tiny frames most windows lie outside the frame,
    where zero padding makes exact ties that float32 and float64 break differently."""

    op = "disk_sparse_find"
    simulate = False
    rtol = RTOL
    refine = "com"
    search = 2

    def arguments(self, rng, tile):
        rows, cols = tile.shape[1:]
        pos = rng.integers(-3, [rows + 3, cols + 3], size=(3, 2))
        pos = np.vstack([pos, [[rows // 2, cols // 2]]]).astype(np.int64)
        n, count = len(tile), len(pos)
        outs = (
            rng.random((n, count, 2)).astype(np.float32),
            rng.random((n, count)).astype(np.float32),
            rng.integers(0, 9, n).astype(np.int32),
        )
        return (tile, _template(rng), pos, *outs)

    def expected(self, args):
        from libertem_gpu.kernels import disk_sparse

        tile, template, pos, *outs = args
        outs = [np.array(o) for o in outs]
        disk_sparse.prepare_find_reference(
            template, pos, self.search, self.refine, -np.inf, tile.dtype
        )(tile, *outs)
        return outs

    def outputs(self, args):
        return list(args[3:])

    def call(self, kernel, args, swap):
        tile, template, pos, *outs = args
        kernel(template, pos, self.search, self.refine, -np.inf, tile.dtype)(tile, *outs)


class TestDiskSparseFindParabolicContract(TestDiskSparseFindContract):
    refine = "parabolic"
    search = 1


class TestDiskSparseFindPixelContract(TestDiskSparseFindContract):
    refine = "upsampled"


@pytest.mark.parametrize("refine", ["com", "parabolic", "upsampled"])
def test_sparse_find_fft_strategy(rng, monkeypatch, refine):
    """The CPU's FFT strategy (forced) equals the reference: windows inside the frame from
    the full-frame correlation, those across the edges by direct sums."""
    from libertem_gpu.kernels import disk_sparse

    monkeypatch.setattr(disk_sparse, "_FFT_COST", 0.0)
    tile = rng.poisson(50, (5, 40, 37)).astype(np.uint16)
    template = rng.standard_normal((5, 7))
    pos = np.array([[20, 18], [11, 12], [30, 25], [1, 2], [38, 20]])
    outs = [np.zeros((5, 5, 2), np.float32), np.zeros((5, 5), np.float32), np.zeros(5, np.int32)]
    want = [o.copy() for o in outs]
    prepared = disk_sparse.prepare_find(template, pos, 2, refine, -np.inf, tile.dtype, (40, 37))
    assert prepared._fft is not None and prepared._fft_which.tolist() == [0, 1, 2]
    prepared(tile, *outs)
    disk_sparse.prepare_find_reference(template, pos, 2, refine, -np.inf, tile.dtype)(tile, *want)
    np.testing.assert_allclose(outs[0], want[0], atol=1e-4)
    np.testing.assert_allclose(outs[1], want[1], rtol=1e-5)
    np.testing.assert_array_equal(outs[2], want[2])
