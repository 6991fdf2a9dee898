"""``libertem-gpu run --templates`` and ``--ring-strain``: the library's TemplateMatchUDF and
RingStrainUDF, saved with their provenance; usage errors."""

from __future__ import annotations

import numpy as np
import pytest

import libertem_gpu
from libertem_gpu import Context, load_results
from libertem_gpu.cli import main
from tests.udf.test_template_match import random_bank, render


@pytest.fixture
def scan(tmp_path, rng):
    """A 2 x 3 scan of 40 x 44 frames, each one of four templates turned; the bank padded to
    one array with spots of intensity 0."""
    bank = random_bank(rng, 4, 16, spots=6)
    bank[1] = bank[1][:4]
    padded = np.zeros((4, 6, 3))
    for k, t in enumerate(bank):
        padded[k, : len(t)] = t
    truth = rng.integers(0, 4, 6)
    angles = rng.uniform(0, 2 * np.pi, 6)
    frames = [
        render(bank[t], (40, 44), (19.5, 21.5), a) for t, a in zip(truth, angles, strict=True)
    ]
    data = rng.poisson(np.stack(frames) + 2).astype(np.uint16).reshape(2, 3, 40, 44)
    np.save(tmp_path / "scan.npy", data)
    np.save(tmp_path / "bank.npy", padded)
    return tmp_path, data, bank, truth


def test_templates_as_the_library(scan):
    tmp_path, data, bank, truth = scan
    out = tmp_path / "t.npz"
    argv = ["run", str(tmp_path / "scan.npy"), "--templates", str(tmp_path / "bank.npy")]
    argv += ["--template-rmin", "3", "--n-best", "2", "--mirror", "--out", str(out)]
    assert main(argv) == 0
    res = load_results(out)
    udf = libertem_gpu.TemplateMatchUDF(bank, rad_min=3, n_best=2, mirror=True)
    with Context("inline") as ctx:
        want = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=udf)
    for key in ("template", "rotation", "score", "mirrored"):
        np.testing.assert_allclose(res[f"template_match_{key}"], want[key].data, rtol=1e-6)
    np.testing.assert_array_equal(res["template_match_template"][..., 0], truth.reshape(2, 3))
    assert res.dims("template_match_score") == ["scan_y", "scan_x", "match"]
    (entry,) = res.metadata["analyses"]
    assert entry["udf"] == "TemplateMatchUDF" and entry["parameters"]["n_best"] == 2


def test_template_usage_errors(scan, capsys):
    tmp_path, *_ = scan
    np.save(tmp_path / "flat.npy", np.zeros((4, 3)))
    out = ["--out", str(tmp_path / "x.npz")]
    run = ["run", str(tmp_path / "scan.npy")]
    assert main([*run, "--templates", str(tmp_path / "flat.npy"), *out]) == 2
    assert "expected numbers of shape (templates, spots, 3)" in capsys.readouterr().err
    assert main([*run, "--templates", str(tmp_path / "none.npy"), *out]) == 1  # as --dark
    assert "cannot read" in capsys.readouterr().err
    bank = str(tmp_path / "bank.npy")
    assert main([*run, "--templates", bank, "--n-best", "9", *out]) == 1
    assert "n_best must lie between 1 and the 4 templates" in capsys.readouterr().err


def test_ring_strain_as_the_library(tmp_path, rng):
    """``--ring-strain``: the library's RingStrainUDF, with the reference radius given."""
    from tests.udf.test_ring_strain import strained_ring

    strain = rng.uniform(-0.01, 0.01, (2, 3, 3))
    frames = np.stack([strained_ring((70, 72), (34.5, 35.5), strain[i]) for i in np.ndindex(2, 3)])
    data = rng.poisson(frames).astype(np.uint16).reshape(2, 3, 70, 72)
    np.save(tmp_path / "rings.npy", data)
    out = tmp_path / "s.npz"
    argv = ["run", str(tmp_path / "rings.npy"), "--ring-strain", "20", "40"]
    assert main([*argv, "--reference-radius", "30", "--out", str(out)]) == 0
    res = load_results(out)
    udf = libertem_gpu.RingStrainUDF(rad_min=20, rad_max=40, reference_radius=30)
    with Context("inline") as ctx:
        want = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=udf)
    np.testing.assert_allclose(res["ring_strain_strain"], want["strain"].data)
    assert np.abs(res["ring_strain_strain"] - strain).max() < 2e-3
    assert res.dims("ring_strain_strain") == ["scan_y", "scan_x", "component"]
    (entry,) = res.metadata["analyses"]
    assert entry["udf"] == "RingStrainUDF" and entry["parameters"]["reference_radius"] == 30


def test_templates_command_writes_the_library_bank(tmp_path, capsys):
    """``libertem-gpu templates``: kinematic_templates padded, and the orientations beside;
    zone axes and a file of rotations; an orientation without reflections is left out."""
    from libertem_gpu.udf.template_bank import kinematic_templates, zone_axis_orientation

    cell = ["4.05", "4.05", "4.05", "90", "90", "90"]
    atoms = [["0", "0", "0", "13"], ["0.5", "0.5", "0", "13"]]
    atoms += [["0.5", "0", "0.5", "13"], ["0", "0.5", "0.5", "13"]]
    tilted = np.array(  # a random orientation that excites nothing within the reach
        [
            [0.66433984769, 0.745682589661, 0.051088572577],
            [0.308414000906, -0.211225025546, -0.927504605179],
            [-0.680832850865, 0.631934699205, -0.370304152183],
        ]
    )
    np.save(tmp_path / "rot.npy", tilted[None])
    out = tmp_path / "al.npy"
    argv = ["templates", str(out), "--cell", *cell, "--pixel-size", "0.02", "--reach", "44"]
    argv += ["--zone", "0", "0", "1", "--zone", "1", "1", "1", "--orientations"]
    argv += [str(tmp_path / "rot.npy"), "--max-excitation", "0.008"]
    for atom in atoms:
        argv += ["--atom", *atom]
    assert main(argv) == 0
    bank = np.load(out)
    rotations = np.load(tmp_path / "al_orientations.npy")
    fcc = [[float(v) for v in a] for a in atoms]
    zones = [zone_axis_orientation([float(c) for c in cell], z) for z in ((0, 0, 1), (1, 1, 1))]
    want = kinematic_templates(
        [float(c) for c in cell], zones, 0.02, 44, atoms=fcc, max_excitation=0.008
    )
    assert bank.shape == (2, max(len(t) for t in want), 3)
    np.testing.assert_allclose(rotations, np.stack(zones))
    for row, t in zip(bank, want, strict=True):
        np.testing.assert_allclose(row[: len(t)], t)
        assert not row[len(t) :].any()
    assert "left out: [2]" in capsys.readouterr().err
    assert main(argv) == 2  # exists: needs --force
    assert "--force" in capsys.readouterr().err
    assert (
        main(
            [
                "templates",
                str(tmp_path / "x.npy"),
                "--cell",
                *cell,
                "--pixel-size",
                "0.02",
                "--reach",
                "44",
            ]
        )
        == 2
    )
    assert "--zone" in capsys.readouterr().err
