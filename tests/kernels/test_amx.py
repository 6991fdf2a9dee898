"""The AMX mask kernel: fixed-point packing everywhere, products where the CPU has AMX."""

import numpy as np
import pytest

from libertem_gpu.kernels import amx, masks

needs_amx = pytest.mark.skipif(not amx.available(), reason="no AMX-INT8 here")


def _masks(rng, npix, k):
    # Mixed signs, one mask far smaller than the others, one all zero where k allows.
    w = rng.standard_normal((npix, k)).astype(np.float32)
    if k > 1:
        w[:, 1] *= 1e-6
    if k > 2:
        w[:, 2] = 0
    return w


def _bound(frames, w):
    """Worst error of exact sums over the fixed-point masks: half a step per product."""
    step = np.abs(w.astype(np.float64)).max(axis=0) / 2139062143
    return frames.astype(np.float64).sum(axis=1)[:, None] * step[None, :] / 2 + 1e-12


@pytest.mark.parametrize("npix", [1, 63, 64, 130, 5000])
@pytest.mark.parametrize("k", [1, 3, 16])
def test_pack_digits_rebuild_the_fixed_point_masks(npix, k):
    rng = np.random.default_rng(npix * 31 + k)
    w = _masks(rng, npix, k)
    packed = amx.pack(w)
    assert packed is not None and packed.k == k and packed.npix == npix
    nkb = -(-npix // 64)
    assert packed.digits.shape == (nkb, 4, 16, 64) and packed.digits.dtype == np.int8
    # tiles[b, d, r, 4 m + e] holds digit d of pixel 64 b + 4 r + e of mask m.
    d = packed.digits.reshape(nkb, 4, 16, 16, 4).transpose(1, 0, 2, 4, 3).reshape(4, -1, 16)
    q = sum(d[i].astype(np.int64) * 256**i for i in range(4))
    rebuilt = q[:npix, :k] * packed.scale[:k]
    step = packed.scale[:k]
    assert np.all(np.abs(rebuilt - w) <= step / 2 + 1e-300)
    # Padding pixels and unused mask columns hold zeros.
    assert not q[npix:].any() and not q[:, k:].any()


def test_pack_refuses_what_it_cannot_take():
    w = np.ones((10, 2), np.float32)
    w[3, 1] = np.nan
    assert amx.pack(w) is None
    w[3, 1] = np.inf
    assert amx.pack(w) is None
    with pytest.raises(ValueError, match="1 to 16 masks"):
        amx.pack(np.ones((10, 17), np.float32))


def test_packed_masks_keep_their_amx_layout():
    w = np.random.default_rng(4).random((300, 5)).astype(np.float32)
    packed = masks.pack_dense(w)
    first = packed.amx()
    assert first is packed.amx()
    assert masks.pack_dense(np.ones((300, 17), np.float32)).amx() is None


@needs_amx
@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize(
    ("n", "npix"),
    [(1, 13 * 17), (15, 63), (16, 64), (17, 2048), (40, 2048 + 65), (300, 4096 + 1000)],
)
@pytest.mark.parametrize("k", [1, 2, 16])
def test_dense_is_exact_over_fixed_point_masks(dtype, n, npix, k):
    # 300 frames span two frame groups; 2048 + 65 and 5096 pixels end in a ragged chunk.
    rng = np.random.default_rng(n * 7 + npix + k)
    top = np.iinfo(dtype).max
    frames = rng.integers(0, top, (n, npix), endpoint=True).astype(dtype)
    frames[0, :3] = [0, top, top]
    w = _masks(rng, npix, k)
    out = rng.random((n, k))
    expected = out + frames.astype(np.float64) @ w.astype(np.float64)
    amx.dense(frames, npix, amx.pack(w), out)
    assert np.all(np.abs(out - expected) <= _bound(frames, w) + 1e-9 * np.abs(expected))


@needs_amx
def test_dense_reads_strided_rows():
    # Rows of a wider array, as raw files with frame headers give them.
    rng = np.random.default_rng(8)
    wide = rng.integers(0, 65535, (37, 4096 + 40), endpoint=True).astype(np.uint16)
    frames = wide[:, 20:4116]
    w = _masks(rng, 4096, 16)
    out = np.zeros((37, 16))
    amx.dense(frames, 4096, amx.pack(w), out)
    expected = frames.astype(np.float64) @ w.astype(np.float64)
    assert np.all(np.abs(out - expected) <= _bound(frames, w) + 1e-9 * np.abs(expected))


@needs_amx
def test_dense_bad_input():
    w = amx.pack(np.ones((100, 2), np.float32))
    with pytest.raises(TypeError, match="uint8 or uint16"):
        amx.dense(np.ones((3, 100), np.int16), 100, w, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="pixels"):
        amx.dense(np.ones((3, 99), np.uint16), 99, w, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="out must have shape"):
        amx.dense(np.ones((3, 100), np.uint16), 100, w, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="contiguous"):
        amx.dense(np.ones((3, 200), np.uint16)[:, ::2], 100, w, np.zeros((3, 2)))


def test_dense_refuses_to_run_where_amx_is_off(monkeypatch):
    monkeypatch.setenv(amx.ENV, "0")
    assert not amx.available()
    w = amx.pack(np.ones((100, 2), np.float32))
    with pytest.raises(RuntimeError, match="cannot run here"):
        amx.dense(np.ones((3, 100), np.uint16), 100, w, np.zeros((3, 2)))


@needs_amx  # elsewhere both runs would take the vector kernel: nothing to compare
@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_cpu_dense_agrees_with_and_without_amx(monkeypatch, dtype):
    # Where AMX runs, float32 masks on 8/16-bit frames take it; turned off, the vector
    # kernel runs. Both match the float64 reference to float32 rounding.
    rng = np.random.default_rng(9)
    frames = rng.integers(0, 1000, (23, 3000)).astype(dtype)
    w = rng.random((3000, 16)).astype(np.float32)
    expected = frames.astype(np.float64) @ w.astype(np.float64)
    results = {}
    for flag in ("1", "0"):
        monkeypatch.setenv(amx.ENV, flag)
        out = np.zeros((23, 16), np.float32)
        masks.cpu_dense(frames, masks.pack_dense(w), out)
        results[flag] = out
        np.testing.assert_allclose(out, expected, rtol=1e-6)
    np.testing.assert_allclose(results["1"], results["0"], rtol=1e-6)


@needs_amx
def test_cpu_dense_takes_amx_for_float32_masks_on_16_bit_frames(amx_calls):
    frames = np.ones((4, 100), np.uint16)
    out = np.zeros((4, 16), np.float32)
    masks.cpu_dense(frames, np.ones((100, 16), np.float32), out)
    np.testing.assert_array_equal(out, 100)
    # float64 masks and float frames keep the vector kernels.
    masks.cpu_dense(frames, np.ones((100, 16)), np.zeros((4, 16)))
    masks.cpu_dense(frames.astype(np.float32), np.ones((100, 16), np.float32), out)
    assert amx_calls == [(np.uint16, (4, 100))]


@needs_amx
def test_amx_runs_make_only_the_amx_layout(rng):
    frames = rng.integers(0, 4096, (7, 300)).astype(np.uint16)
    weights = rng.random((300, 16)).astype(np.float32)
    packed = masks.pack_dense(weights)
    out = np.zeros((7, 16), np.float32)
    masks.cpu_dense(frames, packed, out)
    np.testing.assert_allclose(out, frames.astype(np.float64) @ weights, rtol=1e-6)
    assert packed.nbytes == packed.amx().digits.nbytes  # no packed chunks made


def test_cpu_dense_without_amx_never_calls_it(monkeypatch):
    monkeypatch.setenv(amx.ENV, "0")

    def boom(*args):
        raise AssertionError("AMX kernel called")

    monkeypatch.setattr(amx, "dense", boom)
    frames = np.ones((4, 100), np.uint16)
    out = np.zeros((4, 3), np.float32)
    masks.cpu_dense(frames, np.ones((100, 3), np.float32), out)
    np.testing.assert_array_equal(out, 100)


def test_takes_2_to_16_masks_on_8_and_16_bit_frames_where_amx_runs(monkeypatch):
    here = amx.available()
    assert masks.amx_takes(np.uint16, 16) == here and masks.amx_takes("u1", 2) == here
    assert not masks.amx_takes(np.uint16, 1) and not masks.amx_takes(np.uint16, 17)
    assert not masks.amx_takes(np.int16, 4) and not masks.amx_takes(np.float32, 4)
    monkeypatch.setenv(amx.ENV, "0")
    assert not masks.amx_takes(np.uint16, 16)


def test_the_setting_turns_it_off(monkeypatch):
    from libertem_gpu import config

    monkeypatch.delenv(amx.ENV, raising=False)
    assert amx.enabled()
    for off in (False, "off", "0"):
        with config.set(amx=off):
            assert not amx.enabled() and not amx.available()
            assert not masks.amx_takes(np.uint16, 16)
    with config.set(amx="auto"):
        assert amx.enabled()
    monkeypatch.setenv(amx.ENV, "0")  # the environment overrides the setting
    assert not amx.enabled()


def test_split_declares_every_register_it_writes():
    """The byte-splitting assembly advances its pointers with addq, which writes the flags:
    the constraint string must name them clobbered, as well as its registers and memory."""

    class Builder:
        def asm(self, fnty, asm, constraints, args, side_effect):
            self.asm_text, self.constraints = asm, constraints

    class Context:
        def get_dummy_value(self):
            return None

    builder = Builder()
    amx._codegen(amx._split_asm(), amx._SPLIT_CLOBBERS)(Context(), builder, None, [1] * 6)
    clobbers = set(builder.constraints.split(",")[6:])
    assert "addq" in builder.asm_text
    assert {"~{flags}", "~{memory}", "~{rax}", "~{rcx}", "~{rdx}"} <= clobbers
    used = {f"~{{{r}}}" for r in ("zmm0", "zmm1", "zmm2", "zmm30", "zmm31")}
    assert used <= clobbers
