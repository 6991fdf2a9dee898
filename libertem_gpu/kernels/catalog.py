"""The built-in operations: for each, in one entry, its signature, NumPy reference, CPU and GPU
implementations and what they read.

Adding an operation means one kernel module (reference, CPU and GPU side by side), one entry
here, and one test module built on the kernel contract kit (``tests/kernels/kit.py``).
Targets are strings: nothing here imports a kernel module.
"""

from __future__ import annotations

import numpy as np

from libertem_gpu.kernels.byteorder import SWAPPABLE_DTYPES
from libertem_gpu.kernels.operation import (
    Accumulate,
    CentreOfMass,
    ComPreparer,
    Correct,
    DenseMasks,
    DiskPeaksPreparer,
    DiskRefinePreparer,
    FourierPreparer,
    Impl,
    LabelMasks,
    LogSum,
    MasksPreparer,
    Operation,
    ParallaxSplat,
    PixelMoments,
    PolarCorrelationPreparer,
    PtychoStep,
    ShiftedMoments,
    SpanCentreOfMass,
    SpanMasks,
    SparseCorrelationPreparer,
    SparseMasks,
    SSBPreparer,
    WeightedFrameSum,
)

__all__ = ["OPERATIONS", "PLAIN"]

#: The kernel set of small CPU runs (see ``RunPlan.kernels``): each operation's NumPy
#: reference called as its CPU implementation is (:mod:`libertem_gpu.kernels.plain`), or its
#: reference ``prepare``. Not a backend: it runs on the ``numpy`` backend and imports no Numba.
PLAIN = "plain"

_P = "libertem_gpu.kernels."
# Native dtypes the swapping CPU kernels read byte-reversed (8-bit ones need no swap).
_SWAPS = frozenset(d for d in SWAPPABLE_DTYPES if d.isnative)


def _op(
    name: str,
    signature: type,
    reference: str,
    cpu: str,
    gpu: str | None,
    swaps: frozenset[np.dtype] = frozenset(),
    plain: str | None = None,
) -> Operation:
    """One operation: reference, CPU and (optional) GPU targets relative to this package;
    ``swaps``: native dtypes the CPU implementation reads byte-reversed; ``plain``: its
    implementation in the :data:`PLAIN` kernel set (``"reference"``: the reference itself,
    for a ``prepare`` that follows the signature), if it has one."""
    impls = {"numpy": Impl(_P + cpu, swaps=swaps)}
    if gpu is not None:
        # The GPU backend converts byte order on the device: its kernels never swap.
        impls["cupy"] = Impl(_P + gpu)
    if plain is not None:
        # Reads native byte order only: the pipeline swaps big-endian tiles for it.
        impls[PLAIN] = Impl(_P + (reference if plain == "reference" else plain))
    return Operation(name, signature, _P + reference, impls)


_FLOATS: frozenset[np.dtype] = frozenset({np.dtype(np.float32), np.dtype(np.float64)})


def _float_op(name: str, signature: type, reference: str, cpu: str, gpu: str) -> Operation:
    """An operation on float maps (not on tiles of the data set)."""
    impls = {"numpy": Impl(_P + cpu, dtypes=_FLOATS), "cupy": Impl(_P + gpu, dtypes=_FLOATS)}
    return Operation(name, signature, _P + reference, impls)


OPERATIONS: tuple[Operation, ...] = (
    _op(
        "sum_frames",
        Accumulate,
        "sum_frames:reference",
        "sum_frames_cpu:cpu",
        "sum_frames:gpu",
        swaps=_SWAPS,
        plain="plain:sum_frames",
    ),
    _op(
        "sum_sig",
        Accumulate,
        "sum_sig:reference",
        "sum_sig_cpu:cpu",
        "sum_sig:gpu",
        swaps=_SWAPS,
        plain="plain:sum_sig",
    ),
    _op(
        "max",
        Accumulate,
        "extrema:reference_max",
        "extrema_cpu:cpu_max",
        "extrema:gpu_max",
        swaps=_SWAPS,
        plain="plain:max",
    ),
    _op(
        "min",
        Accumulate,
        "extrema:reference_min",
        "extrema_cpu:cpu_min",
        "extrema:gpu_min",
        swaps=_SWAPS,
        plain="plain:min",
    ),
    _op(
        "moments",
        ShiftedMoments,
        "moments:reference",
        "moments_cpu:cpu",
        "moments:gpu",
        plain="plain:moments",
    ),
    # Analyses of issue 18: log-sum (whole frames), FEM's ring statistics (crystallinity is
    # fft_mask_sum below).
    _op("logsum", LogSum, "logsum:reference", "logsum_cpu:cpu", "logsum:gpu", plain="plain:logsum"),
    _op(
        "parallax_splat",
        ParallaxSplat,
        "parallax:reference",
        "parallax_cpu:cpu",
        "parallax:gpu",
        plain="parallax:plain",
    ),
    _op(
        "pixel_moments",
        PixelMoments,
        "pixel_moments:reference",
        "pixel_moments_cpu:cpu",
        "pixel_moments:gpu",
        plain="plain:pixel_moments",
    ),
    _op("masks_dense", DenseMasks, "masks:reference", "masks_cpu:cpu_dense", "masks_gpu:gpu_dense"),
    _op(
        "masks_sparse",
        SparseMasks,
        "masks:reference_sparse",
        "masks_cpu:cpu_sparse",
        "masks_gpu:gpu_sparse",
    ),
    # Sparse masks that share no pixel (rings, sectors), a label per pixel: the CPU's way with
    # them (the GPU applies their CSR).
    _op("masks_labels", LabelMasks, "labels:reference", "labels_cpu:cpu", None),
    # Masks given as runs of equal value (disks, rings, rectangles): CPU only.
    _op("masks_spans", SpanMasks, "spans:reference", "spans_cpu:masks_cpu", None, swaps=_SWAPS),
    _op("com", CentreOfMass, "com:reference", "com_cpu:cpu", "com_gpu:gpu"),
    _op(
        "com_spans",
        SpanCentreOfMass,
        "com:reference_spans",
        "spans_cpu:com_cpu",
        None,
        swaps=_SWAPS,
    ),
    # Detector corrections, fused with the conversion of stored values to a UDF's float type.
    _op(
        "correct",
        Correct,
        "correct:reference",
        "correct_cpu:cpu",
        "correct:gpu",
        plain="plain:correct",
    ),
    # Operations with a prepare step: the implementation per backend lays the masks (weights)
    # out once per partition and picks the kernels; UDFs call what it returns per tile.
    _op(
        "apply_masks",
        MasksPreparer,
        "masks:prepare_reference",
        "masks_cpu:prepare",
        "masks_gpu:prepare",
        swaps=_SWAPS,
        plain="reference",
    ),
    _op(
        "centre_of_mass",
        ComPreparer,
        "com:prepare_reference",
        "com_cpu:prepare",
        "com_gpu:prepare",
        swaps=_SWAPS,
        plain="reference",
    ),
    # Per-frame FFTs of whole frames (scipy.fft on the CPU, cuFFT through CuPy on the GPU);
    # fft_mask_sum (crystallinity, ApplyFFTMask) picks partial DFT, pruned or full FFT.
    _op(
        "power_spectrum",
        FourierPreparer,
        "fourier:prepare_power_reference",
        "fourier:prepare_power",
        "fourier:prepare_power_gpu",
        plain="reference",
    ),
    _op(
        "fft_mask_sum",
        FourierPreparer,
        "fourier_mask:prepare_mask_sum_reference",
        "fourier_mask:prepare_mask_sum",
        "fourier_mask:prepare_mask_sum_gpu",
        plain="reference",
    ),
    # Disk finding (issue 19): correlation maps of whole frames (FFT) or of windows around
    # expected positions (direct sums), then their peaks; maps are float, so the peak
    # operations read float32 and float64 only.
    _op(
        "disk_correlate",
        FourierPreparer,
        "disk_corr:prepare_correlate_reference",
        "disk_corr:prepare_correlate",
        "disk_corr:prepare_correlate_gpu",
    ),
    _op(
        "disk_correlate_sparse",
        SparseCorrelationPreparer,
        "disk_corr:prepare_sparse_reference",
        "disk_corr:prepare_sparse",
        "disk_corr:prepare_sparse_gpu",
    ),
    _float_op(
        "disk_peaks_full",
        DiskPeaksPreparer,
        "disk_peaks:prepare_full_reference",
        "disk_peaks:prepare_full",
        "disk_peaks:prepare_full_gpu",
    ),
    _float_op(
        "disk_peaks_sparse",
        DiskPeaksPreparer,
        "disk_peaks:prepare_sparse_reference",
        "disk_peaks:prepare_sparse",
        "disk_peaks:prepare_sparse_gpu",
    ),
    _op(
        "disk_sparse_find",
        DiskPeaksPreparer,
        "disk_sparse:prepare_find_reference",
        "disk_sparse:prepare_find",
        "disk_sparse:prepare_find_gpu",
    ),
    _op(
        "disk_refine_upsampled",
        DiskRefinePreparer,
        "disk_peaks:prepare_upsampled_reference",
        "disk_peaks:prepare_upsampled",
        "disk_peaks:prepare_upsampled_gpu",
    ),
    _op(
        "holo_reconstruct",
        FourierPreparer,
        "fourier:prepare_holo_reference",
        "fourier:prepare_holo",
        "fourier:prepare_holo_gpu",
        plain="reference",
    ),
    # Single side band ptychography's sums (BLAS / cuBLAS on both backends).
    _op(
        "ssb_accumulate",
        SSBPreparer,
        "ssb:prepare_reference",
        "ssb:prepare",
        "ssb:prepare_gpu",
        plain="ssb:prepare",
    ),
    # Polar images against a template bank over every rotation (template matching).
    _float_op(
        "polar_correlate",
        PolarCorrelationPreparer,
        "template_match:prepare_reference",
        "template_match:prepare",
        "template_match:prepare_gpu",
    ),
    # One batch of iterative ptychography (on the reconstruction's arrays, not on tiles).
    _float_op("ptycho_step", PtychoStep, "ptycho:reference", "ptycho_cpu:cpu", "ptycho:gpu"),
    # Frames summed with a weight per frame and sum (the transpose of a mask product).
    _op(
        "weighted_frame_sum",
        WeightedFrameSum,
        "weighted_sum:reference",
        "weighted_sum_cpu:cpu",
        "weighted_sum:gpu",
        plain="weighted_sum:plain",
    ),
)
