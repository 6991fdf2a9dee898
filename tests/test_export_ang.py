"""TSL .ang files: read back as the format's readers read them (header keys, then columns),
the orientations, positions, scores and unindexed positions come back; bad arguments and
existing files are refused."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from libertem_gpu import rotations_from_euler, write_ang
from libertem_gpu.errors import InvalidParameterError

CELL = (4.05, 4.05, 4.05, 90, 90, 90)


def _read(path):
    header = {}
    with open(path) as f:
        lines = f.read().splitlines()
    for line in lines:
        if line.startswith("#") and ":" in line:
            key, _, value = line[1:].partition(":")
            header[key.strip()] = value.strip()
        elif line.startswith("# ") and len(line[2:].split(None, 1)) == 2:
            key, value = line[2:].split(None, 1)
            header.setdefault(key, value.strip())
    return header, np.loadtxt(path, comments="#")


def _map(rows, cols, seed=0):
    rot = Rotation.random(rows * cols, random_state=seed).as_matrix()
    return rot.reshape(rows, cols, 3, 3)


def test_orientations_positions_and_scores_come_back(tmp_path, rng):
    rot = _map(3, 5)
    rot[1, 2] = np.nan  # a position without data
    score = rng.uniform(1, 9, (3, 5))
    path = write_ang(tmp_path / "m.ang", rot, "cubic", CELL, score=score, step=(0.5, 0.25))
    header, table = _read(path)
    assert header["Symmetry"] == "43"
    assert header["LatticeConstants"].split() == [
        "4.050",
        "4.050",
        "4.050",
        "90.000",
        "90.000",
        "90.000",
    ]
    assert (header["NROWS"], header["NCOLS_ODD"], header["NCOLS_EVEN"]) == ("3", "5", "5")
    assert (float(header["XSTEP"]), float(header["YSTEP"])) == (0.25, 0.5)
    assert table.shape == (15, 8)
    solved = table[:, 7] == 1
    assert solved.sum() == 14 and not solved[1 * 5 + 2]
    # Rows in scan order, x fastest.
    np.testing.assert_allclose(table[:, 3], np.tile(np.arange(5) * 0.25, 3))
    np.testing.assert_allclose(table[:, 4], np.repeat(np.arange(3) * 0.5, 5))
    back = rotations_from_euler(table[solved, :3])
    np.testing.assert_allclose(back, rot.reshape(-1, 3, 3)[solved], atol=5e-5)
    np.testing.assert_allclose(table[solved, 5], score.ravel()[solved], rtol=1e-5)
    top = score.ravel()[solved].max()
    np.testing.assert_allclose(table[solved, 6], score.ravel()[solved] / top, atol=1e-4)
    # Unindexed: Euler angles 4 pi, CI -1.
    np.testing.assert_allclose(table[~solved, :3], 4 * np.pi, atol=1e-5)
    assert table[~solved, 6] == -1


def test_sample_frame_and_a_single_row(tmp_path):
    rot = _map(1, 4, seed=3)[0]
    frame = Rotation.from_rotvec([0, 0, 0.4]).as_matrix()
    path = write_ang(
        tmp_path / "r.ang", rot, "hexagonal", (3.2, 3.2, 5.2, 90, 90, 120), sample_frame=frame
    )
    header, table = _read(path)
    assert header["Symmetry"] == "62" and header["NROWS"] == "1"
    np.testing.assert_allclose(rotations_from_euler(table[:, :3]), frame @ rot, atol=5e-5)
    assert (table[:, 6] == 1).all()


def test_refusals(tmp_path):
    rot = _map(2, 2)
    path = write_ang(tmp_path / "a.ang", rot, "cubic", CELL)
    before = open(path).read()
    with pytest.raises(FileExistsError, match="a.ang exists"):
        write_ang(path, rot[:1], "cubic", CELL)
    assert open(path).read() == before
    write_ang(path, rot[:1], "cubic", CELL, overwrite=True)
    assert open(path).read() != before
    with pytest.raises(InvalidParameterError, match="rows, cols, 3, 3"):
        write_ang(tmp_path / "b.ang", np.eye(3), "cubic", CELL)
    with pytest.raises(InvalidParameterError, match="one value per position"):
        write_ang(tmp_path / "b.ang", rot, "cubic", CELL, score=np.ones(3))
    with pytest.raises(InvalidParameterError, match="six numbers"):
        write_ang(tmp_path / "b.ang", rot, "cubic", CELL[:5])
    with pytest.raises(InvalidParameterError, match="mirror"):
        write_ang(tmp_path / "b.ang", rot, "cubic", CELL, sample_frame=np.diag([1.0, 1, -1]))
    with pytest.raises(InvalidParameterError, match="crystal system"):
        write_ang(tmp_path / "b.ang", rot, "cubical", CELL)
    assert not (tmp_path / "b.ang").exists()


def test_several_phases(tmp_path):
    from libertem_gpu import Phase

    rot = _map(2, 3, seed=5)
    phases = [
        Phase("aluminium", "cubic", CELL),
        Phase("zinc", "hexagonal", (2.66, 2.66, 4.95, 90, 90, 120)),
    ]
    which = np.array([[0, 1, 1], [-1, 0, 1]])
    path = write_ang(tmp_path / "p.ang", rot, phases=phases, phase_index=which)
    text = open(path).read()
    assert text.index("# Phase 1") < text.index("aluminium") < text.index("# Phase 2")
    assert text.index("# Phase 2") < text.index("zinc") < text.index("# GRID")
    assert "# Symmetry              43" in text and "# Symmetry              62" in text
    assert "2.660 2.660 4.950 90.000 90.000 120.000" in text
    table = np.loadtxt(path, comments="#")
    np.testing.assert_array_equal(table[:, 7], [1, 2, 2, 0, 1, 2])
    assert table[3, 6] == -1  # no phase: unindexed
    solved = table[:, 7] > 0
    np.testing.assert_allclose(
        rotations_from_euler(table[solved, :3]), rot.reshape(-1, 3, 3)[solved], atol=5e-5
    )
    with pytest.raises(InvalidParameterError, match="not both"):
        write_ang(tmp_path / "q.ang", rot, "cubic", CELL, phases=phases, phase_index=which)
    with pytest.raises(InvalidParameterError, match="beyond the 2 phases"):
        write_ang(tmp_path / "q.ang", rot, phases=phases, phase_index=which + 1)
    with pytest.raises(InvalidParameterError, match="one integer per position"):
        write_ang(tmp_path / "q.ang", rot, phases=phases, phase_index=which[0])
    with pytest.raises(InvalidParameterError, match="system and cell, or phases"):
        write_ang(tmp_path / "q.ang", rot)
