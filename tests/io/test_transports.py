"""The frame layout (one frame-to-byte-range lookup) and the transports that fill a caller's
buffer from it: every transport gives the same bytes for the same ranges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from libertem_gpu.errors import BackendError, FileFormatError
from libertem_gpu.io.gpu_pipeline import DeviceRing, aligned_empty
from libertem_gpu.io.layout import FileSegment, FrameLayout, split_at
from libertem_gpu.io.transports import (
    DirectTransport,
    MmapTransport,
    PreadTransport,
    choose_transport,
)


def _segmented(tmp_path, rng, frame_bytes=24, gaps=(0, 8, 3)):
    """Frames in three files, each with its own header and per-frame gap."""
    frames = rng.integers(0, 255, size=(17, frame_bytes), dtype=np.uint8)
    segments, bounds = [], [0, 5, 6, 17]
    for k, gap in enumerate(gaps):
        path = tmp_path / f"f{k}.bin"
        header = 11 * k
        with open(path, "wb") as f:
            f.write(b"\xee" * header)
            for frame in frames[bounds[k] : bounds[k + 1]]:
                f.write(frame.tobytes() + b"\xab" * gap)
        segments.append(
            FileSegment(str(path), header, frame_bytes + gap, bounds[k + 1] - bounds[k])
        )
    return frames, FrameLayout(tuple(segments), frame_bytes)


def test_split_at():
    starts = (0, 5, 6, 17)
    assert split_at(starts, 3, 9) == [(0, 3, 5, 0), (1, 0, 1, 2), (2, 0, 3, 3)]
    assert split_at(starts, 6, 6) == []
    with pytest.raises(IndexError):
        split_at(starts, 10, 18)


def test_layout_ranges(tmp_path, rng):
    _, layout = _segmented(tmp_path, rng)
    assert layout.num_frames == 17 and not layout.packed
    ranges = layout.ranges(4, 8)
    assert [(r.num_frames, r.dest_frame) for r in ranges] == [(1, 0), (1, 1), (2, 2)]
    assert ranges[2].offset == 22 and ranges[2].stride == 27
    assert ranges[1].placed(5).dest_offset == 5 * 24


@pytest.mark.parametrize("transport", [PreadTransport, DirectTransport, MmapTransport])
def test_transports_fill_the_same_bytes(tmp_path, rng, transport):
    frames, layout = _segmented(tmp_path, rng)
    with transport() as t:
        for start, stop in ((0, 17), (3, 9), (5, 6), (16, 17)):
            dest = aligned_empty((stop - start) * 24)
            t.fill(dest, layout.ranges(start, stop))
            np.testing.assert_array_equal(dest.reshape(-1, 24), frames[start:stop])


def test_truncated_file_names_it(tmp_path, rng):
    _, layout = _segmented(tmp_path, rng, gaps=(0, 0, 0))
    path = layout.segments[2].path
    with open(path, "r+b") as f:
        f.truncate(50)
    with pytest.raises(FileFormatError, match="f2.bin"):
        layout.check_file_sizes("its frames")
    for transport in (PreadTransport, DirectTransport):
        with transport() as t, pytest.raises(FileFormatError, match="truncated"):
            t.fill(aligned_empty(11 * 24), layout.ranges(6, 17))


def test_direct_reader(tmp_path, rng):
    frame_bytes = 4096
    data = rng.integers(0, 255, size=(6, frame_bytes), dtype=np.uint8)
    path = tmp_path / "frames.raw"
    data.tofile(path)
    layout = FrameLayout((FileSegment(str(path), 0, frame_bytes, 6),), frame_bytes)
    direct = DirectTransport()
    out = aligned_empty(3 * frame_bytes)
    ok = direct.try_fill(out, layout.ranges(2, 5))
    if ok:
        np.testing.assert_array_equal(out.reshape(3, -1), data[2:5])
    else:  # tmpfs and some file systems refuse O_DIRECT: the reason is recorded
        assert direct.disabled_reason
    # unaligned destination: refused, nothing read
    assert not direct.try_fill(aligned_empty(frame_bytes + 1)[1:], layout.ranges(0, 1))
    direct.close()


def test_choose_transport(tmp_path, rng):
    _, layout = _segmented(tmp_path, rng, gaps=(0, 0, 0))
    with pytest.raises(BackendError, match="pread"):
        choose_transport("nvme-magic", layout, "d")
    for name, host, path in (
        ("pread", PreadTransport, "pinned"),
        ("direct", DirectTransport, "direct"),
        ("auto", PreadTransport, "pinned"),  # kvikio is not installed here
    ):
        choice = choose_transport(name, layout, "d")
        assert type(choice.host) is host and choice.host_path == path and choice.device is None
        choice.close()
    with pytest.warns(RuntimeWarning, match="falling back"):
        assert choose_transport("kvikio", None, "d").device is None


class _Pending:
    def __init__(self, log, job):
        self.log, self.job = log, job

    def wait(self):
        self.log.append(("wait", self.job))

    def drain(self):
        self.log.append(("drain", self.job))


def test_device_ring_reads_ahead():
    from tests.backends.test_cupy_backend_logic import fake_cupy

    cp = fake_cupy()
    log = []

    def submit(job, slot):
        slot[: job[1]] = job[0]
        log.append(("submit", job))
        return _Pending(log, job)

    jobs = [(k, 8 - k % 2) for k in range(5)]
    ring = DeviceRing(cp, jobs, lambda j: j[1], submit, slot_bytes=8)
    seen = []
    for job, buf in ring:
        assert (np.asarray(buf) == job[0]).all() and len(buf) == job[1]
        # the next job was submitted before this one was handed out
        assert ("submit", jobs[min(len(jobs) - 1, len(seen) + 1)]) in log
        seen.append(job)
    assert seen == jobs and ring.done == 5
    # closing early drains the read in flight
    log.clear()
    it = iter(DeviceRing(cp, jobs, lambda j: j[1], submit, slot_bytes=8))
    next(it)
    it.close()
    assert log[-1] == ("drain", jobs[1])


def test_kept_mappings_serve_views_and_respect_the_budget(tmp_path, rng):
    # keep_mapped_bytes: whole files stay mapped between views (one mapping per file), the
    # least recently used beyond the budget are dropped, a rewritten file is mapped anew, and
    # a budget of 0 (the default) maps each view anew
    from libertem_gpu import config
    from libertem_gpu.io.transports import mmap as mmap_transport

    frames, layout = _segmented(tmp_path, rng, gaps=(0, 0, 0))
    kept = mmap_transport._KEPT
    mmap_transport.drop_kept_mappings()
    paths = [seg.path for seg in layout.segments]
    sizes = [(tmp_path / p).stat().st_size for p in paths]
    with MmapTransport() as t, config.set(keep_mapped_bytes=sizes[0] + sizes[2]):
        for r in layout.ranges(0, 17):
            got = t.view(r, (r.frame_bytes,), np.dtype(np.uint8))
            np.testing.assert_array_equal(
                got, frames[r.dest_offset // 24 : r.dest_offset // 24 + len(got)]
            )
        # files 0 and 2 fit together; mapping file 1 then 2 dropped 0
        assert sorted(k[2] for k in kept._maps) == sorted([sizes[1], sizes[2]])
        first = layout.ranges(0, 5)[0]
        a = t.view(first, (24,), np.dtype(np.uint8))
        b = t.view(first, (24,), np.dtype(np.uint8))
        assert np.shares_memory(a, b)  # the same kept mapping
        assert len(kept._maps) <= 2
    with MmapTransport() as t:  # default budget 0: nothing kept, views still right
        r = layout.ranges(6, 17)[0]
        np.testing.assert_array_equal(
            t.view(r, (24,), np.dtype(np.uint8)), frames[6 : 6 + r.num_frames]
        )
        assert not kept._maps


def test_runs_over_a_kept_file_equal_numpy(tmp_path, rng):
    from libertem_gpu import Context, SumUDF, config
    from libertem_gpu.io.transports import mmap as mmap_transport

    data = rng.integers(0, 60000, size=(5, 7, 9, 11), dtype=np.uint16)
    path = tmp_path / "kept.raw"
    data.tofile(path)
    mmap_transport.drop_kept_mappings()
    with Context("threads") as ctx, config.set(keep_mapped_bytes=2**20, small_run_bytes=0):
        ds = ctx.load("raw", path=str(path), nav_shape=(5, 7), sig_shape=(9, 11), dtype="uint16")
        roi = rng.random((5, 7)) > 0.3
        for _ in range(2):  # the second run reads through the mapping the first one kept
            res = ctx.run_udf(ds, SumUDF(), roi=roi)
            np.testing.assert_array_equal(res["intensity"].data, data[roi].sum(axis=0))
        assert len(mmap_transport._KEPT._maps) == 1
    mmap_transport.drop_kept_mappings()


def test_a_setting_changed_without_with_reaches_the_workers(tmp_path, rng):
    # config.set called on its own (as the settings page shows for keep_mapped_bytes) reaches
    # the threads of later runs; it once did nothing. In a context of its own, so that the
    # change ends with the test.
    import contextvars

    from libertem_gpu import Context, SumUDF, config
    from libertem_gpu.io.transports import mmap as mmap_transport

    data = rng.integers(0, 1000, (3, 4, 9, 11)).astype(np.uint16)
    path = tmp_path / "session.raw"
    data.tofile(path)
    mmap_transport.drop_kept_mappings()

    def session():
        config.set(keep_mapped_bytes=2**20, small_run_bytes=0)
        with Context("threads") as ctx:
            ds = ctx.load("raw", path=str(path), nav_shape=(3, 4), sig_shape=(9, 11), dtype="u2")
            res = ctx.run_udf(ds, SumUDF())
        return res["intensity"].data, len(mmap_transport._KEPT._maps)

    try:
        total, kept = contextvars.copy_context().run(session)
    finally:
        mmap_transport.drop_kept_mappings()
    np.testing.assert_array_equal(total, data.sum(axis=(0, 1)))
    assert kept == 1
    assert config.get("keep_mapped_bytes") == 0


def _resident_kib(address: int) -> int | None:
    """Rss of the mapping holding ``address`` (``/proc/self/smaps``), or None off Linux."""
    try:
        text = Path("/proc/self/smaps").read_text()
    except OSError:
        return None
    inside = False
    for line in text.splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= address < hi
        elif inside and head == "Rss:":
            return int(line.split()[1])
    return None


def test_released_pages_of_a_window_read_back_the_same(tmp_path, rng):
    # Thin row slabs of large frames are read from windows of many frames: each slab's pages
    # are let go once read, so a window's resident memory stays a slab, and a later read of
    # them maps the file's data again.
    from libertem_gpu.io.layout import ByteRange
    from libertem_gpu.io.transports.mmap import release_pages

    frames = rng.integers(0, 60000, (6, 64, 512), dtype=np.uint16)  # 64 KiB frames
    path = tmp_path / "frames.raw"
    frames.tofile(path)
    transport = MmapTransport()
    r = ByteRange(str(path), 0, 6, frames[0].nbytes, frames[0].nbytes, 0)
    view = transport.view(r, (64, 512), np.dtype(np.uint16))
    slab = view[:, 16:48]
    np.testing.assert_array_equal(slab, frames[:, 16:48])
    address = view.ctypes.data
    before = _resident_kib(address)
    release_pages(slab)
    after = _resident_kib(address)
    if before is not None and after is not None:
        assert after <= before - 6 * 32 + 8  # 32 rows of 1 KiB per frame
    np.testing.assert_array_equal(view, frames)  # read again: mapped anew, same data
    transport.close()


def test_only_windows_of_the_transport_release_pages(tmp_path, rng):
    # Memory the transport did not map for one reader (a caller's array, a kept file) is never
    # let go: MADV_DONTNEED on anonymous memory would zero it.
    from libertem_gpu import config
    from libertem_gpu.io.layout import ByteRange
    from libertem_gpu.io.transports.mmap import drop_kept_mappings, release_pages

    frames = rng.integers(1, 60000, (4, 64, 512), dtype=np.uint16)
    mine = frames.copy()
    release_pages(mine[:, 8:40])
    np.testing.assert_array_equal(mine, frames)
    path = tmp_path / "kept.raw"
    frames.tofile(path)
    transport = MmapTransport()
    r = ByteRange(str(path), 0, 4, frames[0].nbytes, frames[0].nbytes, 0)
    with config.set(keep_mapped_bytes=2**30):
        kept = transport.view(r, (64, 512), np.dtype(np.uint16))
        np.testing.assert_array_equal(kept, frames)
        address = kept.ctypes.data
        before = _resident_kib(address)
        release_pages(kept[:, 8:40])
        if before is not None:
            assert _resident_kib(address) == before
    del kept
    drop_kept_mappings()
    transport.close()
