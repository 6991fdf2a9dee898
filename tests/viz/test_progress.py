"""Progress bars count frames (with a roi: the selected ones) and show the rate in GB/s."""

from __future__ import annotations

import io

import pytest

from libertem_gpu import SumSigUDF
from libertem_gpu.progress import FrameProgress, format_rate
from tests.conftest import random_data


@pytest.fixture
def bars(monkeypatch):
    """The state of every FrameProgress when it closes: (frames done, total, postfix)."""
    closed: list = []
    close = FrameProgress.close

    def recording(self):  # type: ignore[no-untyped-def]
        closed.append((self.bar.n, self.bar.total, self.bar.postfix))
        close(self)

    monkeypatch.setattr(FrameProgress, "close", recording)
    return closed


@pytest.mark.parametrize("with_roi", [False, True])
def test_run_progress_reaches_the_frames_to_process(ctx, rng, bars, capsys, with_roi):
    data = random_data(rng, (5, 7, 3, 4), "uint16")
    ds = ctx.load("memory", data=data, num_partitions=3)
    roi = rng.random((5, 7)) > 0.5 if with_roi else None
    frames = int(roi.sum()) if with_roi else 35
    ctx.run_udf(ds, SumSigUDF(), roi=roi, progress=True)
    assert bars == [(frames, frames, bars[0][2])]
    assert bars[0][2].endswith(" GB/s")
    err = capsys.readouterr().err
    assert f"{frames}/{frames}" in err and "frame/s" in err and "GB/s" in err


def test_progress_of_partial_runs_and_sync_offset(inline_ctx, rng, bars):
    data = random_data(rng, (4, 6, 3, 4), "float32")
    # Four positions at the end of the scan hold no frame: they are not counted.
    ds = inline_ctx.load("memory", data=data, num_partitions=3, sync_offset=4)
    parts = list(inline_ctx.run_udf_iter(ds, SumSigUDF(), progress=True))
    assert len(parts) > 1 and bars == [(20, 20, bars[0][2])]


def test_rate_is_stored_bytes_per_second():
    ticks = iter([10.0, 12.0])  # started at 10 s, 2 s later 1000 frames of 1 MB
    progress = FrameProgress(2000, 10**6, file=io.StringIO(), clock=lambda: next(ticks))
    progress.update(1000)
    assert progress.n == 1000 and progress.bar.postfix == "0.500 GB/s"
    progress.close()
    assert [format_rate(r) for r in (2.5e9, 123.4e9, 1e6)] == [
        "2.50 GB/s",
        "123 GB/s",
        "0.001 GB/s",
    ]
