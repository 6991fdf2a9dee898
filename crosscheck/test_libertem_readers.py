"""Cross-check: our SEQ, K2IS and FRMS6 readers against LiberTEM 0.16's, frame by frame.

No real SEQ, K2IS or FRMS6 file exists here, so the files come from our test writers
(``tests/io/writers_*.py``); LiberTEM's readers are an independent implementation of the same
formats, so where both read a written file the same way, neither the writer nor our reader can
share a misreading of the format with the other. Frames are compared exactly: integer data as
integers, dark-corrected FRMS6 data as float32 computed the same way on both sides.

Run with ``crosscheck/run.sh`` (it installs ``libertem==0.16.0`` beside our package).
"""

from __future__ import annotations

import numpy as np
import pytest

libertem_api = pytest.importorskip("libertem.api", reason="the cross-check needs libertem==0.16")
from libertem.udf.base import UDF as LTUDF  # noqa: E402

from libertem_gpu import Context  # noqa: E402
from tests.io.contract import CollectFramesUDF  # noqa: E402
from tests.io.writers_dm import Group, write_dm  # noqa: E402
from tests.io.writers_frms6 import fold, write_frms6  # noqa: E402
from tests.io.writers_k2is import write_k2is  # noqa: E402
from tests.io.writers_seq import write_seq  # noqa: E402


class LTFrames(LTUDF):
    """LiberTEM UDF: every frame into a nav buffer, in the data set's native dtype or the one
    asked for (``dtype``)."""

    def __init__(self, dtype=None):
        super().__init__(dtype=dtype)

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE if self.params.dtype is None else self.params.dtype

    def get_result_buffers(self):
        return {
            "frames": self.buffer(
                kind="nav", extra_shape=tuple(self.meta.dataset_shape.sig), dtype="float64"
            )
        }

    def process_frame(self, frame):
        self.results.frames[:] = frame


@pytest.fixture(scope="module")
def lt_ctx():
    ctx = libertem_api.Context.make_with("inline")
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def our_ctx():
    ctx = Context("inline")
    yield ctx
    ctx.close()


def _compare(lt_ctx, our_ctx, fmt, path, lt_kwargs, our_kwargs, lt_dtype=None):
    """Open ``path`` with both readers and compare shape, dtype and every frame exactly."""
    lt_ds = lt_ctx.load(fmt, path=str(path), **lt_kwargs)
    ours = our_ctx.load(fmt, path=str(path), **our_kwargs)
    assert tuple(ours.shape.to_tuple()) == tuple(lt_ds.shape), (ours.shape, lt_ds.shape)
    assert np.dtype(ours.dtype) == np.dtype(lt_ds.dtype)
    lt_frames = lt_ctx.run_udf(dataset=lt_ds, udf=LTFrames(dtype=lt_dtype))["frames"].data
    our_frames = our_ctx.run_udf(dataset=ours, udf=CollectFramesUDF())["frames"].data
    assert our_frames.shape == lt_frames.shape
    # Scan positions without a frame in the file (sync_offset, short files) stay NaN in our
    # float buffers and 0 in LiberTEM's: neither reads anything there.
    sig_axes = tuple(range(len(lt_ds.shape.nav), our_frames.ndim))
    unread = np.isnan(our_frames).all(axis=sig_axes)
    assert not np.isnan(our_frames[~unread]).any()
    assert (lt_frames[unread] == 0).all()
    our_frames = np.where(np.isnan(our_frames), 0.0, our_frames)
    for index in np.ndindex(*lt_frames.shape[: len(lt_ds.shape.nav)]):
        np.testing.assert_array_equal(our_frames[index], lt_frames[index], err_msg=str(index))
    return our_frames


# --- SEQ --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "version", "footer", "frames", "nav_shape", "sync_offset"),
    [
        ("uint16", 5, 8, 15, (3, 5), 0),
        ("uint8", 5, 8, 17, (4, 4), 0),  # one trailing frame not in the scan
        ("uint32", 5, 8, 7, (7,), 0),  # the whole uint32 range (beyond float32)
        ("uint16", 4, 8, 12, (2, 2, 3), 0),  # frames from byte 1024
        ("uint16", 5, 0, 9, (3, 3), 0),  # no timestamp
        ("uint16", 5, 1000, 10, (2, 4), 2),  # padded frames, two frames skipped
        ("uint8", 4, 16, 6, (3, 3), -2),  # two blank frames first, one missing at the end
    ],
)
def test_seq(lt_ctx, our_ctx, tmp_path, dtype, version, footer, frames, nav_shape, sync_offset):
    rng = np.random.default_rng(sum(map(ord, dtype)) + 10 * version + footer + frames)
    info = np.iinfo(dtype)
    data = rng.integers(0, info.max, (frames, 7, 13), dtype=dtype, endpoint=True)
    path = tmp_path / "scan.seq"
    # LiberTEM 0.16 cannot decode an empty description (it cuts the UTF-16 text at an odd byte)
    write_seq(path, data, version=version, footer=footer, description="cross-check")
    kwargs = {"nav_shape": nav_shape, "sync_offset": sync_offset}
    got = _compare(lt_ctx, our_ctx, "seq", path, kwargs, kwargs)
    # and both against the data written (the UDFs read what the files hold)
    n = int(np.prod(nav_shape))
    skip, blank = max(sync_offset, 0), max(-sync_offset, 0)
    expected = np.zeros((n, 7, 13))
    src = data[skip : skip + n - blank]
    expected[blank : blank + len(src)] = src
    np.testing.assert_array_equal(got.reshape(n, 7, 13), expected)


# --- K2IS -------------------------------------------------------------------------------------

K2_SIG = (1860, 2048)


def _k2_frames(rng, n):
    return rng.integers(0, 4096, (n, *K2_SIG), dtype=np.uint16)


@pytest.mark.parametrize(
    ("leads", "extra_lead_frames"),
    [
        ((0,) * 8, (0,) * 8),  # sectors in step
        ((0, 3, 0, 0, 1, 0, 0, 2), (0, 1, 0, 0, 0, 0, 2, 0)),  # partial and whole frames first
    ],
)
def test_k2is_time_series(lt_ctx, our_ctx, tmp_path, leads, extra_lead_frames):
    """No scan shape in the .gtg file: every frame from the first with the shutter flag."""
    frames = _k2_frames(np.random.default_rng(sum(leads) + 7), 3)
    gtg = write_k2is(tmp_path / "t", frames, leads=leads, extra_lead_frames=extra_lead_frames)
    got = _compare(lt_ctx, our_ctx, "k2is", gtg, {}, {})
    np.testing.assert_array_equal(got, frames)


# LiberTEM looks for the first frame with the shutter flag in steps of 400 frames (12800
# blocks) from the synchronised start, and again from the data set's start when it checks the
# data set: the flag must be set 400 frames after the first frame, and the files must go on for
# 400 frames after the first frame of the data set. Blank frames (holes in the files) before and
# after the frames with data make that cheap: 399 idle frames, frames[0] without the flag, then
# frames[1:] and 400 blank frames with it.
IDLE, TAIL = 399, 400


def test_k2is_shutter(lt_ctx, our_ctx, tmp_path):
    """A STEM scan (.gtg with SI Dimensions): the shutter flag comes one frame late, so both
    start one frame before the first frame with the flag. The same sector files as a time series
    (no SI Dimensions): both skip the frames without the flag."""
    frames = _k2_frames(np.random.default_rng(11), 7)
    base = tmp_path / "s"
    try:
        _k2is_shutter(lt_ctx, our_ctx, base, frames)
    finally:  # 850 MB allocated on disk: not left for pytest's last three runs
        for path in tmp_path.glob("s*"):
            path.unlink()


def _k2is_shutter(lt_ctx, our_ctx, base, frames):
    gtg = write_k2is(
        base,
        frames,
        nav_shape=(2, 3),
        shutter_from=1,
        idle_frames=IDLE,
        tail_frames=TAIL,
        first_id=1000,
        extra_lead_frames=(0, 0, 1, 0, 0, 0, 0, 0),
    )
    got = _compare(lt_ctx, our_ctx, "k2is", gtg, {}, {})
    np.testing.assert_array_equal(got.reshape(6, *K2_SIG), frames[:6])

    write_dm(gtg, Group(("Version", np.int32(1))))  # no scan shape: a time series
    # LiberTEM 0.16 moves a time series to the first frame with the flag and then, by default,
    # skips as many frames again (its default sync_offset is the number of frames without the
    # flag): it would read blank frames 400 to 403 after frames[1]. With sync_offset 0 it reads
    # from frames[1], as ours does by default, and both count sync_offset from there.
    for sync_offset in (0, 2):
        ours = {"nav_shape": (2, 2)} | ({"sync_offset": sync_offset} if sync_offset else {})
        got = _compare(lt_ctx, our_ctx, "k2is", gtg, {**ours, "sync_offset": sync_offset}, ours)
        first = 1 + sync_offset
        np.testing.assert_array_equal(got.reshape(4, *K2_SIG), frames[first : first + 4])


# --- FRMS6 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("binning", [1, 2, 4])
@pytest.mark.parametrize("dark", [False, True])
@pytest.mark.parametrize(("nav_shape", "parts"), [((3, 5), (7, 8)), ((13,), (4, 4, 5))])
def test_frms6(lt_ctx, our_ctx, tmp_path, binning, dark, nav_shape, parts):
    """Dark-frame subtraction on both sides or on neither (LiberTEM's
    ``enable_offset_correction`` and our ``dark_correction``); no gain map (ours has none)."""
    rng = np.random.default_rng(100 * binning + 10 * dark + len(parts))
    n, rows, half = sum(parts), 6, 9
    sensor = rng.integers(0, 65536, (n, 2 * rows * binning, half), dtype=np.uint16)
    stored = fold(sensor, binning)
    dark_frames = fold(rng.integers(0, 1000, (5, 2 * rows * binning, half), np.uint16), binning)
    cuts = np.cumsum(parts)[:-1]
    hdr = write_frms6(tmp_path / "f", dark_frames, np.split(stored, cuts), nav_shape, binning)
    got = _compare(
        lt_ctx,
        our_ctx,
        "frms6",
        hdr,
        {"enable_offset_correction": dark},
        {"dark_correction": dark},
        lt_dtype=np.float32 if dark else None,
    )
    if not dark:  # unbinned sensor rows are the first of each binned group
        expected = np.repeat(sensor[:, ::binning], binning, axis=1)
        np.testing.assert_array_equal(got.reshape(n, *expected.shape[1:]), expected)


@pytest.mark.parametrize("sync_offset", [-3, 2])
def test_frms6_sync_offset(lt_ctx, our_ctx, tmp_path, sync_offset):
    rng = np.random.default_rng(5 + sync_offset)
    sensor = rng.integers(0, 65536, (12, 12, 9), dtype=np.uint16)
    hdr = write_frms6(tmp_path / "g", fold(sensor[:2], 1), [fold(sensor, 1)], (3, 4), 1)
    kwargs = {"sync_offset": sync_offset}
    _compare(
        lt_ctx,
        our_ctx,
        "frms6",
        hdr,
        {"enable_offset_correction": False, **kwargs},
        {"dark_correction": False, **kwargs},
    )
