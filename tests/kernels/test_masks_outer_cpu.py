"""The outer-product mask kernel for AVX2 targets (kernels/outer_product, kernels/masks_outer_cpu)
against float64 NumPy on random data: every frame type it takes, partial blocks of frames,
partial chunks of pixels, fewer pixels than one unrolled step, rows wider than the frame."""

import numba
import numpy as np
import pytest

from libertem_gpu import masks as drawn
from libertem_gpu.kernels import cpu_target, masks, masks_cpu, masks_outer_cpu
from libertem_gpu.kernels.masks_packed import pack_dense
from libertem_gpu.kernels.outer_product import FRAMES, MASKS, STEP, outer_6x16
from libertem_gpu.kernels.tiles import read_only

pytestmark = pytest.mark.skipif(
    not cpu_target.target_has("avx2", "fma"), reason="the kernel is written for AVX2 with FMA"
)

DTYPES = ["uint8", "int8", "uint16", "int16", "float32"]


def random_frames(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 100).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def assert_sums(got, frames, masks_t, base):
    """``got == base + frames @ masks_t`` within float32 rounding of the terms (signed frames
    cancel, so the bound scales with the terms, not with the sums); a pixel missed or counted
    twice is off by far more."""
    f64 = frames.astype(np.float64)
    m64 = masks_t.astype(np.float64)
    expected = base + f64 @ m64
    bound = 1e-6 * (np.abs(f64) @ np.abs(m64)) + 1e-3
    assert np.all(np.abs(got - expected) <= bound), np.max(np.abs(got - expected) / bound)


@numba.njit
def _call_micro(cur, masks, lo, hi, acc, src, dst, ahead):
    outer_6x16(cur, masks, lo, hi, acc, src, dst, ahead)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("lo", "hi"), [(0, 64), (3, 61), (5, 9), (0, 5)])
def test_micro_kernel_adds_products_and_converts_the_next_block(rng, dtype, lo, hi):
    width = 72
    cur = rng.standard_normal((FRAMES, width)).astype(np.float32)
    masks = rng.standard_normal((width, MASKS)).astype(np.float32)
    acc0 = rng.standard_normal((FRAMES, MASKS)).astype(np.float32)
    acc = acc0.copy()
    src = random_frames(rng, (FRAMES, width), dtype)
    dst0 = rng.standard_normal((FRAMES, width)).astype(np.float32)
    dst = dst0.copy()
    ahead = random_frames(rng, (FRAMES, width), dtype)
    _call_micro(cur, masks, lo, hi, acc, src, dst, ahead)
    assert_sums(acc, cur[:, lo:hi], masks[lo:hi], acc0)
    # Whole steps of 8 pixels from lo are converted; nothing else in dst is touched.
    done = lo + STEP * ((hi - lo) // STEP)
    expected = dst0.copy()
    expected[:, lo:done] = src[:, lo:done].astype(np.float32)
    np.testing.assert_array_equal(dst, expected)


def test_group_masks_pads_the_last_group_with_zeros(rng):
    masks_t = rng.standard_normal((37, 19)).astype(np.float32)
    groups = masks_outer_cpu.group_masks(masks_t)
    assert groups.shape == (2, 37, MASKS)
    np.testing.assert_array_equal(groups[0], masks_t[:, :MASKS])
    np.testing.assert_array_equal(groups[1, :, :3], masks_t[:, MASKS:])
    assert not groups[1, :, 3:].any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("n", "npix", "k"),
    [
        (1, 5, 9),  # fewer pixels than one step, one partial block
        (6, 1024, 16),  # exactly one block and one chunk
        (7, 1031, 17),  # a partial block, a partial chunk, a second group of one mask
        (13, 2 * 1024 + 53, 33),  # three groups, three chunks
        (20, 999, 16),  # a partial chunk only, several blocks
    ],
)
def test_outer_blocked_matches_numpy(rng, dtype, n, npix, k):
    wide = random_frames(rng, (n, npix + 13), dtype)  # rows wider than the frame
    masks_t = rng.standard_normal((npix, k)).astype(np.float32)
    out0 = rng.standard_normal((n, k)).astype(np.float32)
    out = out0.copy()
    # Read-only, as cpu_dense hands tiles over: the variant cpu_dense compiles, not a second.
    groups = masks_outer_cpu.group_masks(masks_t)
    masks_outer_cpu.outer_blocked(read_only(wide), npix, groups, out)
    assert_sums(out, wide[:, :npix], masks_t, out0)


def avx2_target(monkeypatch):
    """Choose kernels as for a target with AVX2 and FMA but not AVX-512, whatever this host."""
    avx2 = lambda *features: set(features) <= {"avx", "avx2", "fma"}  # noqa: E731
    monkeypatch.setattr(masks_cpu, "target_has", avx2)
    monkeypatch.setattr(cpu_target, "target_has", avx2)
    monkeypatch.setattr(masks_cpu, "amx_takes", lambda *args: False)
    monkeypatch.setattr(masks, "amx_takes", lambda *args: False)


@pytest.fixture
def outer_calls(monkeypatch):
    """The calls of the outer-product kernel, with cpu_dense choosing as for an AVX2 target."""
    avx2_target(monkeypatch)
    calls = []
    kernel = masks_outer_cpu.outer_blocked

    def counting(a, npix, groups, out):
        calls.append(groups.shape)
        kernel(a, npix, groups, out)

    monkeypatch.setattr(masks_outer_cpu, "outer_blocked", counting)
    return calls


@pytest.mark.parametrize(
    ("n", "k", "mask_dtype", "dtype", "taken"),
    [
        (11, 9, np.float32, "uint16", True),
        (6, 16, np.float32, "float32", True),
        (11, 8, np.float32, "uint16", False),  # half a group or more would be zeros
        (11, 16, np.float64, "uint16", False),  # float64 sums: the float64 kernels
        (11, 16, np.float32, "int32", False),  # not exact in float32
        (5, 16, np.float32, "uint16", False),  # fewer frames than a block: the 6 x 2 kernel
    ],
)
def test_cpu_dense_takes_the_outer_kernel_on_avx2_for_many_float32_masks(
    rng, outer_calls, n, k, mask_dtype, dtype, taken
):
    tile = random_frames(rng, (n, 17 * 19), dtype)
    masks_t = rng.standard_normal((17 * 19, k)).astype(mask_dtype)
    out0 = rng.standard_normal((n, k)).astype(mask_dtype)
    out = out0.copy()
    packed = pack_dense(masks_t)
    masks_cpu.cpu_dense(tile, packed, out)
    assert bool(outer_calls) is taken
    assert_sums(out, tile, masks_t, out0)
    # Only the layout the kernel reads is made: groups of 16, or packed chunks.
    made = packed.nbytes
    assert made == (packed.groups().nbytes if taken else packed.data.nbytes)


def _stack(arrays):
    dense = np.stack(arrays).reshape(len(arrays), -1).astype(np.float32)
    return masks.MaskStack(len(arrays), False, np.dtype(np.float32), dense.T.copy(), None)


def test_rings_covering_most_of_the_frame_go_to_the_outer_kernel_on_avx2(monkeypatch):
    sig = (64, 64)
    many = _stack([drawn.ring(sig, 32, 32, r + 3, r) for r in range(0, 48, 3)])  # 16 rings
    few = _stack([drawn.ring(sig, 32, 32, r + 3, r) for r in range(0, 27, 3)])  # 9, the centre
    assert many.runs(sig).read_fraction >= 0.7 > few.runs(sig).read_fraction
    avx2_target(monkeypatch)
    assert masks.cpu_runs(many, sig, np.uint16) is None  # dense, outer product
    assert masks.cpu_runs(few, sig, np.uint16) is not None
    assert masks.cpu_runs(many, sig, np.int32) is not None  # not exact in float32 lanes
    monkeypatch.setattr(cpu_target, "target_has", lambda *features: False)  # no AVX2
    assert masks.cpu_runs(many, sig, np.uint16) is not None


def test_the_rule_reads_the_coverage_without_encoding_runs(monkeypatch):
    # The fraction the runs would read is the masks' non-zero share: where a dense kernel takes
    # the masks anyway, the runs are never encoded.
    sig = (64, 64)
    many = _stack([drawn.ring(sig, 32, 32, r + 3, r) for r in range(0, 48, 3)])
    read = many.runs(sig).read_fraction
    assert many.covers(read) and not many.covers(read + 1e-6)
    fresh = _stack([drawn.ring(sig, 32, 32, r + 3, r) for r in range(0, 48, 3)])
    avx2_target(monkeypatch)
    monkeypatch.setattr(masks.MaskStack, "runs", lambda *args: pytest.fail("runs encoded"))
    assert masks.cpu_runs(fresh, sig, np.uint16) is None
