"""Output files appear complete or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from libertem_gpu import cli
from libertem_gpu.outputs import atomic_path


def test_complete_write_lands_at_the_final_path(tmp_path, rng):
    target = tmp_path / "r.npz"
    data = rng.random(7)
    with atomic_path(target) as tmp:
        assert tmp.endswith(".npz") and os.path.dirname(tmp) == str(tmp_path)
        np.savez(tmp, a=data)
        assert not target.exists()  # nothing at the final path until the block ends
    np.testing.assert_array_equal(np.load(target)["a"], data)
    assert os.listdir(tmp_path) == ["r.npz"]


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_interrupted_write_leaves_nothing(tmp_path, error):
    target = tmp_path / "r.npz"
    with pytest.raises(error), atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"PK\x03\x04 half an archive")
        raise error("interrupted")
    assert os.listdir(tmp_path) == []


def test_interrupted_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "r.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        Path(tmp).write_text("new, half")
        raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["r.txt"]


def test_cli_run_interrupted_while_saving_leaves_no_npz(tmp_path, rng, monkeypatch):
    raw = tmp_path / "d.raw"
    rng.integers(0, 1000, size=(4, 4, 8, 8)).astype(np.uint16).tofile(raw)
    out = tmp_path / "out" / "r.npz"

    def savez_then_interrupt(path, **arrays):
        with open(path, "wb") as f:  # part of the archive is written, then Ctrl-C
            f.write(b"PK\x03\x04")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", savez_then_interrupt)
    argv = ["run", str(raw), "--format", "raw", "--nav-shape", "4,4", "--sig-shape", "8,8"]
    argv += ["--dtype", "uint16", "--analysis", "sum", "--analysis", "com", "--out", str(out)]
    assert cli.main(argv) == 130  # the exit status of an interrupted command
    assert not out.exists()
    assert os.listdir(out.parent) == []
