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
    assert main([*run, "--templates", str(tmp_path / "none.npy"), *out]) == 2
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
