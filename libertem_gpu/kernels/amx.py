"""Dense mask products on Intel AMX tile units, for 8- and 16-bit unsigned frames.

Applying k <= 16 float32 masks to uint8/uint16 frames on the vector units costs k
multiply-adds per pixel plus a conversion to float; on 2-core Sapphire Rapids 16 masks then
run at a third of the memory bandwidth. The AMX unit (Sapphire Rapids and later Xeons)
multiplies 16 x 64 bytes by 64 x 16 bytes in one instruction (``tdpbusd``: unsigned bytes
times signed bytes, summed in int32), so the same work becomes nearly free and the kernel is
bound by reading the frames again.

Exact integer arithmetic
------------------------
- Each mask ``j`` is scaled to 32-bit fixed point, ``q = rint(w / s_j)`` with
  ``s_j = max|w_j| / 2139062143``, and ``q`` is split into four signed base-256 digits
  ``d_0..d_3`` in [-128, 127] (balanced, so every digit is a signed byte).
- Each pixel is split into its bytes: ``x = lo + 256 hi``.
- Every byte-times-digit product is summed exactly in int32 over a chunk of pixels; the
  products with the same power of 256 share one accumulator tile (five for uint16, four for
  uint8). The accumulators are combined in int64 and scaled by ``s_j`` in float64.

The only error is the fixed-point rounding of the masks: at most ``2**-32 max|w_j|`` per
mask value, below float32 rounding for every value above ``max|w_j| / 256``. Sums are exact.

Frames are read in groups, a chunk of pixels at a time, and split into byte planes (16 frames
x 64 pixels per step, two byte permutes per frame) in a staging buffer; the kernel splits the
*next* block of 16 frames while the tile unit multiplies the current one, so that reading
the frames from memory overlaps with the arithmetic. Measured on 2-core Sapphire Rapids with
16 masks on uint16, 1 GiB in the page cache, two threads: 10-11.5 GB/s against 7.7-8.3 for
the blocked vector kernel; in the engine 0.46-0.51 of the memory floor against 0.30-0.36.

The instructions are emitted as inline assembly from Numba intrinsics. AMX needs the Linux
kernel's permission (``arch_prctl(ARCH_REQ_XCOMP_PERM)``), requested once per process by
:func:`available`; without it every caller takes the vector kernels. The setting ``amx``
(:mod:`libertem_gpu.config`, environment override ``LIBERTEM_GPU_AMX=0``) turns it off. When
the masks go to it is the mask operation's rule (:func:`libertem_gpu.kernels.masks.amx_takes`).
"""

from __future__ import annotations

import ctypes
import functools
import platform
import sys
import threading

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from libertem_gpu import config

__all__ = ["FRAME_DTYPES", "AMXMasks", "available", "dense", "enabled", "pack"]

#: Environment variable: "0" turns the AMX kernel off (the vector kernels run instead).
ENV = str(config.SETTINGS["amx"].env)  # the setting's environment override
# Values of the setting (or of the environment variable) that turn the kernel off.
_OFF = frozenset({"0", "off", "false", "no"})
#: Frame dtypes the kernel takes.
FRAME_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))

# Pixels per chunk: the int32 sums of one chunk cannot overflow (2 x 255 x 128 x 2048 < 2**31)
# and a chunk's mask digits and both staging buffers (128 KiB each) stay in L2. Measured on
# 2-core Sapphire Rapids (uint16, two threads): 1024 pixels 9.9 GB/s, 2048 11.3, 4096 10.2.
CHUNK = 2048
# Frames read chunk by chunk together (a tile of the engine holds several groups); 128 to 512
# measured alike, 32 and 64 a few percent slower.
GROUP = 256
# Pixels per tile column block: 64 bytes of each frame, 16 rows of 4 bytes per mask.
_KB = 64
# The largest balanced 4-digit base-256 number: 127 * (1 + 256 + 256**2 + 256**3).
_QMAX = 2139062143
_ROUND = 6755399441055744.0  # 1.5 * 2**52

_ARCH_REQ_XCOMP_PERM = 0x1023
_XFEATURE_XTILEDATA = 18
_SYS_ARCH_PRCTL = 158  # x86_64


_PERMISSION_LOCK = threading.Lock()


def _permitted() -> bool:
    """Whether this CPU has AMX-INT8 and the kernel lets this process use it (asked once;
    worker threads may ask at the same time)."""
    with _PERMISSION_LOCK:
        return _ask_permission()


@functools.cache
def _ask_permission() -> bool:
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
            else:
                return False
    except OSError:
        return False
    # AMX for the products, AVX512-VBMI (every AMX CPU has it) for splitting the bytes.
    if not {"amx_tile", "amx_int8", "avx512vbmi"} <= flags:
        return False
    # Compiled for another CPU (NUMBA_CPU_NAME, e.g. portable caches), the assembler would
    # refuse the AMX instructions.
    cpu_name = getattr(numba.config, "CPU_NAME", None)
    if cpu_name not in (None, "host"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        granted = libc.syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA) == 0
    except (OSError, AttributeError):
        return False
    if granted:
        import llvmlite.binding as llvm

        # Numba does not set up LLVM's assembly parser, which inline assembly needs.
        llvm.initialize_native_asmparser()
    return bool(granted)


def enabled() -> bool:
    """The setting ``amx`` (``True``/``"auto"``: use AMX where the CPU has it; ``False``/
    ``"off"``); :mod:`libertem_gpu.config` applies its environment override
    ``LIBERTEM_GPU_AMX=0``. The one place that reads the switch."""
    value = config.get("amx")
    return str(value).strip().lower() not in _OFF and value is not False


def available() -> bool:
    """Whether the AMX kernel can run here.

    True on Linux x86-64 CPUs with AMX-INT8 (Sapphire Rapids and later Xeons) once the kernel
    has granted this process the tile state, unless switched off (:func:`enabled`). The
    permission is requested on the first call.
    """
    return enabled() and _permitted()


class AMXMasks:
    """Masks as signed byte digits in tile layout; see :func:`pack`.

    Attributes
    ----------
    digits : numpy.ndarray
        int8 ``(nkb, 4, 16, 64)``: for pixel block ``b`` and digit ``d``, row ``r`` holds,
        for each mask ``m``, the digits of pixels ``64 b + 4 r + e`` at ``[4 m + e]``.
    scale : numpy.ndarray
        float64 ``(16,)``: mask ``m`` is ``scale[m] * sum_d 256**d digit_d``.
    k : int
        Number of masks (the rest of the 16 columns are zero).
    npix : int
        Pixels per mask.
    """

    __slots__ = ("digits", "k", "npix", "scale")

    def __init__(self, digits: np.ndarray, scale: np.ndarray, k: int, npix: int) -> None:
        self.digits = digits
        self.scale = scale
        self.k = k
        self.npix = npix


def pack(masks_t: np.ndarray) -> AMXMasks | None:
    """Quantise up to 16 masks to 32-bit fixed point and lay their digits out for the tiles.

    Parameters
    ----------
    masks_t : numpy.ndarray
        ``(npix, k)`` float32 or float64, ``1 <= k <= 16``.

    Returns
    -------
    AMXMasks or None
        None where a mask value is not finite (the vector kernels handle NaN and inf).
    """
    npix, k = masks_t.shape
    if not 1 <= k <= 16:
        raise ValueError(f"the AMX kernel takes 1 to 16 masks, got {k}")
    peak = np.zeros(k)
    if npix:
        with np.errstate(invalid="ignore"):
            peak = np.abs(masks_t).max(axis=0).astype(np.float64)
    if not np.isfinite(peak).all():
        return None
    scale = np.ones(16)
    scale[:k] = np.where(peak > 0, peak / _QMAX, 1.0)
    nkb = -(-npix // _KB)
    words = np.zeros((nkb, 4, 16, 16), np.uint32)
    _fill_digits(masks_t, scale, words)
    tiles = words.view(np.int8) if sys.byteorder == "little" else _bytes_le(words)
    return AMXMasks(tiles, scale, k, npix)


def _bytes_le(words: np.ndarray) -> np.ndarray:
    """The bytes of ``words`` in little-endian order (AMX exists on x86 only, which is; for
    the simulated paths of the tests on other machines)."""
    return words.astype("<u4").view(np.int8)


@numba.njit(nogil=True, cache=True)
def _fill_digits(w, scale, words):
    # Pixel p = 64 b + 4 r + e of mask m has digit d at byte e of words[b, d, r, m] (the
    # int8 tiles[b, d, r, 4 m + e]). The digits in [-128, 127] of q (|q| <= _QMAX, 0x7F7F7F7F)
    # are the bytes of v = (q + 0x80808080) ^ 0x80808080: each byte of q + 0x80808080 is a
    # digit + 128. Block by block (4 KiB of digits, written while in L1), mask by mask, four
    # pixels' bytes d gathered into one word per digit. 16 masks of 8M pixels: 0.80 -> 0.61 s
    # (pixel by pixel, digit by digit through carries, np.rint), of which about 0.2 s is the
    # first writes to the freshly allocated digits.
    npix, k = w.shape
    v = np.zeros(_KB, np.int64)
    for b in range(words.shape[0]):
        p0 = b * _KB
        n = min(_KB, npix - p0)
        for m in range(k):
            s = scale[m]
            for j in range(n):
                # Rounded to nearest, ties to even, as np.rint (a libm call per value, which
                # took most of the time): adding and taking away 1.5 * 2**52 leaves no bits
                # after the point, for |x| < 2**51 (here at most _QMAX).
                x = np.float64(w[p0 + j, m]) / s
                q = np.int64((x + _ROUND) - _ROUND)
                v[j] = (q + 0x80808080) ^ 0x80808080
            for j in range(n, _KB):  # pixels past the end: digits 0
                v[j] = 0
            # A 4 x 4 byte transpose of each four pixels' words: bytes, then byte pairs.
            for r in range(_KB // 4):
                v0 = v[4 * r]
                v1 = v[4 * r + 1]
                v2 = v[4 * r + 2]
                v3 = v[4 * r + 3]
                a = (v0 & 0x00FF00FF) | ((v1 & 0x00FF00FF) << 8)
                c = (v2 & 0x00FF00FF) | ((v3 & 0x00FF00FF) << 8)
                o = ((v0 >> 8) & 0x00FF00FF) | (v1 & 0xFF00FF00)
                e = ((v2 >> 8) & 0x00FF00FF) | (v3 & 0xFF00FF00)
                words[b, 0, r, m] = (a & 0xFFFF) | ((c & 0xFFFF) << 16)
                words[b, 1, r, m] = (o & 0xFFFF) | ((e & 0xFFFF) << 16)
                words[b, 2, r, m] = (a >> 16) | (c & 0xFFFF0000)
                words[b, 3, r, m] = (o >> 16) | (e & 0xFFFF0000)


# --- the instructions, as inline assembly ---

_I64 = ir.IntType(64)


def _codegen(asm: str, clobbers: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    """Emit ``asm`` with every argument in a general register; it may write memory and the
    registers named in ``clobbers``."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        fnty = ir.FunctionType(ir.VoidType(), [_I64] * len(args))
        constraints = ",".join(["r"] * len(args) + [f"~{{{r}}}" for r in (*clobbers, "memory")])
        builder.asm(fnty, asm, constraints, list(args), side_effect=True)
        return context.get_dummy_value()

    return codegen


@intrinsic
def _load_config(typingctx, config):  # type: ignore[no-untyped-def]
    """Load the tile configuration at address ``config`` (64 bytes)."""
    return types.none(types.int64), _codegen("ldtilecfg ($0)")


@intrinsic
def _release(typingctx):  # type: ignore[no-untyped-def]
    """Return the tile state to its initial (unused) state."""
    return types.none(), _codegen("tilerelease")


@intrinsic
def _zero(typingctx):  # type: ignore[no-untyped-def]
    """Zero the five accumulator tiles 0-4."""
    asm = "\n".join(f"tilezero %tmm{t}" for t in range(5))
    return types.none(), _codegen(asm)


@intrinsic
def _store(typingctx, dst, stride):  # type: ignore[no-untyped-def]
    """Store accumulator tiles 0-4 to ``dst + 1024 t`` (rows ``stride`` bytes apart)."""
    asm = "\n".join(f"tilestored %tmm{t}, {1024 * t}($0,$1,1)" for t in range(5))
    return types.none(types.int64, types.int64), _codegen(asm)


def _step_asm(planes: int) -> str:
    # Tile 5: low bytes, tile 6: high bytes (16 frames x 64 pixels), tile 7: one digit of
    # the masks. Byte b times digit d adds into accumulator b + d.
    lines = ["tileloadd ($0,$2,1), %tmm5"]
    if planes == 2:
        lines.append("tileloadd ($1,$2,1), %tmm6")
    for d in range(4):
        lines.append(f"tileloadd {1024 * d}($3,$4,1), %tmm7")
        lines.append(f"tdpbusd %tmm7, %tmm5, %tmm{d}")
        if planes == 2:
            lines.append(f"tdpbusd %tmm7, %tmm6, %tmm{d + 1}")
    return "\n".join(lines)


def _make_step(planes: int):  # type: ignore[no-untyped-def]
    asm = _step_asm(planes)

    @intrinsic
    def step(typingctx, lo, hi, stride, digits, digit_stride):  # type: ignore[no-untyped-def]
        return types.none(*([types.int64] * 5)), _codegen(asm)

    return step


def _split_asm() -> str:
    # Low and high bytes of 64 uint16 pixels of 16 frames: two loads, two byte permutes
    # (vpermt2b, AVX512-VBMI), two stores per frame. $0 frames, $1 their row stride in bytes,
    # $2 low plane, $3 high plane, $4 the plane's row stride, $5 the even/odd byte indices.
    lines = [
        "vmovdqu64 ($5), %zmm30",
        "vmovdqu64 64($5), %zmm31",
        "movq $0, %rax",
        "movq $2, %rcx",
        "movq $3, %rdx",
    ]
    for _ in range(16):
        lines += [
            "vmovdqu64 (%rax), %zmm0",
            "vmovdqu64 64(%rax), %zmm1",
            "vmovdqa64 %zmm0, %zmm2",
            "vpermt2b %zmm1, %zmm30, %zmm0",
            "vpermt2b %zmm1, %zmm31, %zmm2",
            "vmovdqu64 %zmm0, (%rcx)",
            "vmovdqu64 %zmm2, (%rdx)",
            "addq $1, %rax",
            "addq $4, %rcx",
            "addq $4, %rdx",
        ]
    return "\n".join(lines)


# Registers _split_asm writes: its pointers, its vectors, and the flags (its addq set them).
_SPLIT_CLOBBERS = ("rax", "rcx", "rdx", "zmm0", "zmm1", "zmm2", "zmm30", "zmm31", "flags")


@intrinsic
def _split16(typingctx, src, src_stride, lo, hi, stride, index):  # type: ignore[no-untyped-def]
    """Byte planes of 64 pixels of 16 uint16 frames (see :func:`_split_asm`)."""
    return types.none(*([types.int64] * 6)), _codegen(_split_asm(), _SPLIT_CLOBBERS)


_step_u8 = _make_step(1)
_step_u16 = _make_step(2)


# --- the kernel ---


# Indices of the even (low) and the odd (high) bytes of 64 uint16 pixels.
_BYTE_INDEX = np.concatenate([np.arange(0, 128, 2), np.arange(1, 128, 2)]).astype(np.uint8)


@numba.njit(nogil=True, cache=True, inline="always")
def _stage(a, i, p0, npix, stage, row0, planes):
    """Split pixels ``[p0, p0 + 64)`` of frames ``i .. i + 15`` into byte planes at
    ``stage[row0 + f]`` (low) and ``stage[row0 + 16 + f]`` (high), zero past the frames'
    end and past the last pixel."""
    n = a.shape[0]
    q0 = p0 % CHUNK
    m = min(_KB, npix - p0)
    if planes == 2 and m == _KB and i + 16 <= n:
        _split16(
            a[i:, p0:].ctypes.data,
            a.strides[0],
            stage[row0:, q0:].ctypes.data,
            stage[row0 + 16 :, q0:].ctypes.data,
            stage.strides[0],
            _BYTE_INDEX.ctypes.data,
        )
        return
    for f in range(16):
        lo = stage[row0 + f, q0 : q0 + _KB]
        hi = stage[row0 + 16 + f, q0 : q0 + _KB]
        if i + f < n:
            x = a[i + f, p0 : p0 + m]
            for p in range(m):
                v = x[p]
                lo[p] = np.uint8(v & 0xFF)
                if planes == 2:
                    hi[p] = np.uint8(v >> 8)
            for p in range(m, _KB):
                lo[p] = 0
                hi[p] = 0
        else:
            lo[:] = 0
            hi[:] = 0


@numba.njit(nogil=True, cache=True)
def _dense(a, npix, digits, scale, k, planes, out):
    n = a.shape[0]
    # Palette 1, tiles 0-7 of 16 rows x 64 bytes.
    config = np.zeros(64, np.uint8)
    config[0] = 1
    for t in range(8):
        config[16 + 2 * t] = 64
        config[48 + t] = 16
    # Two buffers of 16 frames x (low, high) byte rows of one chunk.
    stage = np.zeros((64, CHUNK), np.uint8)
    sums = np.zeros((5, 16, 16), np.int32)
    tot = np.zeros((n, k))
    _load_config(config.ctypes.data)
    stage_at = stage.ctypes.data
    digits_at = digits.ctypes.data
    # Prime buffer 0 with the first block; each block then stages the next one.
    for p in range(0, min(CHUNK, npix), _KB):
        _stage(a, 0, p, npix, stage, 0, planes)
    cur = 0
    # Frames in groups of GROUP, each read chunk by chunk: within a group, a chunk's 16-frame
    # blocks follow each other; the block after a group's last is the next group's first.
    for g0 in range(0, n, GROUP):
        ge = min(g0 + GROUP, n)
        for c0 in range(0, npix, CHUNK):
            c1 = min(c0 + CHUNK, npix)
            for i in range(g0, ge, 16):
                ni = i + 16
                nc0 = c0
                if ni >= ge:
                    ni = g0
                    nc0 = c0 + CHUNK
                if nc0 >= npix:
                    ni = ge
                    nc0 = 0
                nc1 = min(nc0 + CHUNK, npix) if ni < n else nc0
                _zero()
                lo = stage_at + cur * 32 * CHUNK
                hi = lo + 16 * CHUNK
                nb = 0
                for p in range(c0, c1, _KB):
                    q = nc0 + (p - c0)
                    if q < nc1:
                        _stage(a, ni, q, npix, stage, (1 - cur) * 32, planes)
                    b = p // _KB
                    off = p - c0
                    if planes == 2:
                        _step_u16(lo + off, hi + off, CHUNK, digits_at + b * 4096, 64)
                    else:
                        _step_u8(lo + off, hi + off, CHUNK, digits_at + b * 4096, 64)
                    nb += 1
                # The next chunk may have more blocks than this one had room to stage.
                for q in range(nc0 + nb * _KB, nc1, _KB):
                    _stage(a, ni, q, npix, stage, (1 - cur) * 32, planes)
                _store(sums.ctypes.data, 64)
                for f in range(min(16, ge - i)):
                    for j in range(k):
                        s = np.int64(sums[4, f, j])
                        for t in range(3, -1, -1):
                            s = s * 256 + np.int64(sums[t, f, j])
                        tot[i + f, j] += np.float64(s) * scale[j]
                cur = 1 - cur
    _release()
    for i in range(n):
        for j in range(k):
            out[i, j] += tot[i, j]


def dense(a: np.ndarray, npix: int, masks: AMXMasks, out: np.ndarray) -> None:
    """Accumulate ``out += a[:, :npix] @ masks`` on the tile unit.

    Parameters
    ----------
    a : numpy.ndarray
        ``(n, >= npix)`` uint8 or uint16, rows contiguous.
    npix : int
        Pixels per frame.
    masks : AMXMasks
        From :func:`pack`, with ``masks.npix == npix``.
    out : numpy.ndarray
        ``(n, masks.k)`` float32 or float64, updated in place.

    Raises
    ------
    RuntimeError
        Where :func:`available` is false (without the kernel's permission the first tile
        instruction would kill the process).
    """
    if not available():
        raise RuntimeError(
            "the AMX kernel cannot run here: no AMX-INT8, no permission from the kernel, "
            f"or switched off (setting 'amx', {ENV}=0)"
        )
    if a.dtype not in FRAME_DTYPES:
        raise TypeError(f"the AMX kernel takes uint8 or uint16 frames, got {a.dtype}")
    if masks.npix != npix:
        raise ValueError(f"masks have {masks.npix} pixels, frames {npix}")
    if a.ndim != 2 or a.shape[1] < npix or (a.shape[1] > 1 and a.strides[1] != a.itemsize):
        raise ValueError(f"frames must be rows of >= {npix} contiguous pixels, got {a.shape}")
    if out.shape != (a.shape[0], masks.k):
        raise ValueError(f"out must have shape {(a.shape[0], masks.k)}, got {out.shape}")
    if a.shape[0] == 0 or npix == 0:
        return
    planes = 2 if a.dtype == np.uint16 else 1
    _dense(a, npix, masks.digits, masks.scale, masks.k, planes, out)
