"""Masks that share no pixel, as a label per pixel: the kernel contract (every dtype, odd
shapes, strided tiles), finding labels in CSR stacks, and the CPU's apply_masks choosing them
for such stacks (whole frames and row slabs) and CSR for the others."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels import labels, masks
from libertem_gpu.kernels.labels_cpu import cpu
from libertem_gpu.kernels.masks import MaskStack
from tests.kernels.kit import KernelContract, flat


def _random_labels(rng, npix, k):
    """Labels in ``[0, k]`` (``k``: no mask), every mask given some pixels where there are
    enough, runs of equal labels as rings make them."""
    runs = np.repeat(rng.integers(0, k + 1, npix), rng.integers(1, 5, npix))[:npix]
    return runs.astype(np.int32)


class TestMasksLabelsContract(KernelContract):
    op = "masks_labels"
    rtol = 1e-12

    def arguments(self, rng, tile):
        frames = flat(tile)
        k = 3 if len(tile) <= 3 else 11  # the remainder frames, and blocks of four
        npix = frames.shape[1]
        out = rng.standard_normal((len(frames), k))
        return (frames, _random_labels(rng, npix, k), rng.standard_normal(npix), out)

    def expected(self, args):
        frames, lab, weights, out = args
        return [out + labels.reference(frames, lab, weights, out.shape[1])]

    def outputs(self, args):
        return [args[3]]


def test_float32_out_sums_in_float64(rng):
    tile = rng.integers(0, 2**16, (9, 301)).astype(np.uint16)
    lab = _random_labels(rng, 301, 4)
    weights = np.full(301, 1 / 3)
    out = np.zeros((9, 4), np.float32)
    cpu(tile, lab, weights, out)
    np.testing.assert_allclose(out, labels.reference(tile, lab, weights, 4), rtol=1e-7)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda a: {**a, "labels": a["labels"].astype(np.int64)}, "int32"),
        (lambda a: {**a, "labels": a["labels"][:-1]}, "shape"),
        (lambda a: {**a, "weights": a["weights"][:-1]}, "weights"),
        (lambda a: {**a, "out": a["out"][:-1]}, "out"),
        (lambda a: {**a, "labels": a["labels"] + 1}, r"\[0, 3\]"),
        (lambda a: {**a, "labels": a["labels"] - 1}, r"\[0, 3\]"),
    ],
)
def test_bad_arguments_are_refused(rng, change, match):
    lab = np.arange(12, dtype=np.int32) % 4  # 0..3: every label, 3 = no mask
    args = {"tile": rng.random((2, 12)), "labels": lab, "weights": np.ones(12)}
    args = change({**args, "out": np.zeros((2, 3))})
    with pytest.raises(ShapeMismatchError, match=match):
        cpu(args["tile"], args["labels"], args["weights"], args["out"])


def _csr(dense):
    indptr = np.concatenate([[0], np.cumsum((dense != 0).sum(axis=1))]).astype(np.int64)
    indices = np.concatenate([np.flatnonzero(r) for r in dense]).astype(np.int64)
    return indptr, indices, dense[dense != 0]


def _rings(sig, k, rng):
    """``k`` disjoint rings of random weights around the frame's centre (a ring of zeros
    between each two), and the pixels of none outside."""
    y, x = np.mgrid[: sig[0], : sig[1]]
    d = np.hypot(y - sig[0] / 2, x - sig[1] / 2)
    stack = np.zeros((k, *sig))
    for j in range(k):
        sel = (d > 2 * j) & (d <= 2 * j + 1.5)
        stack[j][sel] = rng.standard_normal(sel.sum())
    return stack.reshape(k, -1)


def test_from_csr_finds_disjoint_masks_only(rng):
    dense = _rings((13, 17), 4, rng)
    found = labels.from_csr(*_csr(dense), dense.shape[1])
    assert found is not None
    lab, weights = found
    assert lab.dtype == np.int32
    for j in range(4):
        np.testing.assert_array_equal(lab == j, dense[j] != 0)
    assert (lab[(dense != 0).sum(axis=0) == 0] == 4).all()
    np.testing.assert_array_equal(weights, dense.sum(axis=0))
    dense[1, np.flatnonzero(dense[0])[0]] = 1.0  # one pixel in two masks
    assert labels.from_csr(*_csr(dense), dense.shape[1]) is None


@pytest.mark.parametrize("disjoint", [True, False], ids=["labels", "csr"])
@pytest.mark.parametrize("dtype", ["uint16", "int32", "float32", "float64"])
def test_cpu_prepare_applies_sparse_stacks(rng, dtype, disjoint):
    """Whole frames and row slabs (pixels [p0, p1)) of the prepared operation against the
    reference, with disjoint rings (the label kernel) and overlapping masks (CSR)."""
    from libertem_gpu.kernels import masks_cpu

    sig = (13, 17)
    dense = _rings(sig, 5, rng)
    if not disjoint:
        dense[2] += dense[1]  # ring 1's pixels in two masks
    stack = MaskStack(5, False, np.dtype(np.float64), None, _csr(dense))
    tile = (rng.standard_normal((7, dense.shape[1])) * 1000).astype(dtype)
    applied = masks_cpu.prepare(stack, sig, tile.dtype)
    assert (applied.kernel is cpu) == disjoint
    out = np.zeros((7, 5))
    applied(tile, out, 0, dense.shape[1])
    want = masks.reference(tile, dense)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-9)
    out[:] = 0
    for p0, p1 in ((0, 5 * 17), (5 * 17, 13 * 17)):
        applied(np.ascontiguousarray(tile[:, p0:p1]), out, p0, p1)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-9)
