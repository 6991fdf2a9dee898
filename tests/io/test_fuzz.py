"""Seeded, time-bounded fuzzing of every reader: mutated files (truncated, bit flips in headers,
size fields and offsets set to extremes) give a library error naming the file, or load and
read the data they claim (frames the mutation did not touch equal the original's), or warn.

``benchmarks/fuzz_campaign.py`` runs the same mutations by the hundred, each in a worker
process with a time and memory watch.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from libertem_gpu import Context
from tests.io.fuzz_kit import SAMPLES, judge, make_attempt, prepare

SECONDS = 2.5  # per format, in every test run
MAX_ATTEMPTS = 60


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_mutated_files_fail_cleanly_or_read_what_they_claim(tmp_path, fmt):
    sample, original = prepare(tmp_path / "good", fmt, seed=7)
    ctx = Context("inline")
    rng = np.random.default_rng(20261202)
    deadline = time.monotonic() + SECONDS
    seen: dict[str, int] = {}
    for attempt in range(MAX_ATTEMPTS):
        if attempt and time.monotonic() > deadline:
            break
        work, target, what, lo, hi = make_attempt(sample, tmp_path / "work", rng)
        outcome, detail = judge(ctx, sample, original, work, target, lo, hi)
        assert outcome in ("error", "loaded"), f"{fmt}, attempt {attempt}, {what}: {detail}"
        seen[outcome] = seen.get(outcome, 0) + 1
    assert seen.get("error", 0) > 0, seen  # the mutations do reach the parsers
