"""``libertem-gpu templates --system`` and ``orientation-map``: a bank over a crystal system's
sector, matched by ``run --templates``, written as the library writes it (.ang, IPF image and
key); positions left out by a ROI unindexed; usage errors."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import beam_directions, direction_orientations, load_results
from libertem_gpu.cli import main
from tests.udf.test_template_match import render

CELL = ["4.05", "4.05", "4.05", "90", "90", "90"]
FCC = [["0", "0", "0", "13"], ["0.5", "0.5", "0", "13"], ["0.5", "0", "0.5", "13"]]
FCC += [["0", "0.5", "0.5", "13"]]


@pytest.fixture
def matched(tmp_path, rng):
    """A bank of aluminium over the cubic sector, a 2 x 3 scan of its patterns turned, and the
    results of run --templates with one position left out by a ROI."""
    argv = ["templates", str(tmp_path / "al.npy"), "--cell", *CELL, "--pixel-size", "0.03"]
    argv += ["--reach", "30", "--system", "cubic", "--resolution", "6", "--phase", "aluminium"]
    for atom in FCC:
        argv += ["--atom", *atom]
    assert main(argv) == 0
    bank = np.load(tmp_path / "al.npy")
    rotations = np.load(tmp_path / "al_orientations.npy")
    truth = rng.choice(len(bank), 6, replace=False)
    frames = [
        render(bank[t][bank[t][:, 2] > 0] / [1, 1, bank[t][:, 2].max()], (64, 64), (31.5, 31.5), a)
        for t, a in zip(truth, rng.uniform(0, 2 * np.pi, 6), strict=True)
    ]
    data = rng.poisson(100 * np.stack(frames) + 1).astype(np.uint16).reshape(2, 3, 64, 64)
    np.save(tmp_path / "scan.npy", data)
    roi = np.ones((2, 3), bool)
    roi[1, 2] = False
    np.save(tmp_path / "roi.npy", roi)
    out = tmp_path / "res.npz"
    argv = ["run", str(tmp_path / "scan.npy"), "--templates", str(tmp_path / "al.npy")]
    assert main([*argv, "--mirror", "--roi", str(tmp_path / "roi.npy"), "--out", str(out)]) == 0
    return tmp_path, out, rotations


def test_templates_over_a_crystal_system(matched):
    *_, rotations = matched
    directions = beam_directions("cubic", 6)
    want = direction_orientations(directions)
    # Every kept orientation is one of the sector's; those without reflections were dropped.
    match = np.abs(rotations[:, None] - want[None]).max(axis=(2, 3)) < 1e-12
    assert match.any(axis=1).all() and 10 < len(rotations) <= len(want)


def test_orientation_map_as_the_library(matched, capsys):
    from PIL import Image

    from libertem_gpu import ipf_colors, ipf_key, match_orientations, write_ang

    tmp_path, out, rotations = matched
    ang, png = tmp_path / "m.ang", tmp_path / "m.png"
    argv = ["orientation-map", str(out), "--system", "cubic", "--cell", *CELL]
    kam = ["--kam", str(tmp_path / "k.png"), "--boundary-angle", "60"]
    kam += ["--grains", str(tmp_path / "g.png")]
    assert main([*argv, "--ang", str(ang), "--ipf", str(png), "--step", "2", "0.5", *kam]) == 0
    said = capsys.readouterr().out
    assert "5 of 6 positions oriented (aluminium 5); " in said and " grains, " in said
    res = load_results(out)
    rot = res["template_match_rotation"][..., 0]
    found = match_orientations(
        rotations,
        res["template_match_template"][..., 0],
        np.nan_to_num(rot),
        res["template_match_mirrored"][..., 0],
    )
    found[np.isnan(rot)] = np.nan
    want = write_ang(
        tmp_path / "want.ang",
        found,
        "cubic",
        [float(c) for c in CELL],
        score=res["template_match_score"][..., 0],
        step=(2, 0.5),
        phase_name="aluminium",
    )
    assert open(ang).read() == open(want).read()
    table = np.loadtxt(ang, comments="#")
    assert table[5, 6] == -1 and (table[:5, 6] > 0).all()  # the left-out position
    image = np.asarray(Image.open(png))
    colours = np.nan_to_num(ipf_colors(found, "cubic"))
    np.testing.assert_array_equal(image, np.round(colours * 255).astype(np.uint8))
    assert (image[1, 2] == 0).all()
    from libertem_gpu import kernel_average_misorientation

    want_kam = kernel_average_misorientation(found, "cubic", 60)
    got_kam = np.asarray(Image.open(tmp_path / "k.tif"))
    np.testing.assert_allclose(got_kam, want_kam.astype(np.float32), equal_nan=True)
    assert np.isfinite(want_kam).sum() >= 4 and np.nanmax(want_kam) > 0
    assert (tmp_path / "k.png").exists()
    from libertem_gpu import grain_labels

    want_labels, want_count = grain_labels(found, "cubic", 60)
    got_labels = np.asarray(Image.open(tmp_path / "g.tif"))
    np.testing.assert_array_equal(got_labels, want_labels.astype(np.float32))
    assert f"; {want_count} grains, " in said
    grains_png = np.asarray(Image.open(tmp_path / "g.png"))
    assert (grains_png[want_labels < 0] == 0).all() and (grains_png[want_labels >= 0] > 0).any()
    key = np.asarray(Image.open(tmp_path / "m_key.png"))
    assert key.shape == (256, 256, 3)
    inside = ipf_key("cubic", 256)[..., 3] == 1
    assert (key[~inside] == 255).all() and (key[inside] < 255).any()


def test_orientation_map_usage_errors(matched, capsys):
    tmp_path, out, _ = matched
    base = ["orientation-map", str(out), "--system", "cubic"]
    assert main(base) == 2
    assert (
        "--ang OUT.ang, --ipf OUT.png, --phase-map, --kam and/or --grains"
        in capsys.readouterr().err
    )
    assert main([*base[:2], "--system", "hexagonal", "--ipf", str(tmp_path / "h.png")]) == 2
    assert (
        "--system hexagonal, but the bank's phase 'aluminium' is cubic" in capsys.readouterr().err
    )
    # Orientations without the bank's phases file: the system and cell must be given.
    (tmp_path / "bare.npy").write_bytes((tmp_path / "al_orientations.npy").read_bytes())
    bare = ["orientation-map", str(out), "--orientations", str(tmp_path / "bare.npy")]
    assert main([*bare, "--ipf", str(tmp_path / "x.png")]) == 2
    assert (
        "does not say the crystal system of phase 'phase': pass --system" in capsys.readouterr().err
    )
    assert main([*bare, "--system", "cubic", "--ang", str(tmp_path / "x.ang")]) == 2
    assert "pass --cell A B C ALPHA BETA GAMMA" in capsys.readouterr().err
    named = [
        "--system",
        "cubic",
        "--cell",
        *CELL,
        "--phase",
        "Al",
        "--ang",
        str(tmp_path / "n.ang"),
    ]
    assert main([*bare, *named]) == 0
    assert "# MaterialName  \tAl\n" in open(tmp_path / "n.ang").read()
    assert main([*base, "--ipf", str(tmp_path / "x.jpg")]) == 2
    assert ".png" in capsys.readouterr().err
    (tmp_path / "old.png").write_bytes(b"keep")
    assert main([*base, "--ipf", str(tmp_path / "old.png")]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert (tmp_path / "old.png").read_bytes() == b"keep"
    wrong = ["--orientations", str(tmp_path / "missing.npy"), "--ipf", str(tmp_path / "y.png")]
    assert main([*base, *wrong]) == 2
    assert "cannot read" in capsys.readouterr().err
    other = tmp_path / "sum.npz"
    assert main(["run", str(tmp_path / "scan.npy"), "--analysis", "sum", "--out", str(other)]) == 0
    capsys.readouterr()
    assert (
        main(["orientation-map", str(other), "--system", "cubic", "--ipf", str(tmp_path / "z.png")])
        == 2
    )
    assert "not results of run --templates" in capsys.readouterr().err
    # A damaged phases file is named, not guessed around.
    phases_file = tmp_path / "al_phases.json"
    good = phases_file.read_text()
    phases_file.write_text("{not json")
    assert main([*base, "--ipf", str(tmp_path / "v.png")]) == 2
    assert "al_phases.json: cannot read the bank's phases" in capsys.readouterr().err
    phases_file.write_text(good.replace('"template_phase": [', '"template_phase": [0, '))
    assert main([*base, "--ipf", str(tmp_path / "v.png")]) == 2
    assert "template phases for a bank of" in capsys.readouterr().err
    phases_file.write_text(good)
    # The bank's orientations are found beside the bank the results name; gone, it says so.
    (tmp_path / "al_orientations.npy").rename(tmp_path / "moved.npy")
    assert main([*base, "--ipf", str(tmp_path / "w.png")]) == 2
    assert "al_orientations.npy is not there; pass --orientations" in capsys.readouterr().err


def test_many_dropped_directions_are_summed_up(tmp_path, capsys):
    # Narrow relrods and a short reach: most of a triclinic hemisphere excites nothing.
    argv = ["templates", str(tmp_path / "t.npy"), "--cell", "3", "4", "5", "80", "95", "100"]
    argv += ["--pixel-size", "0.05", "--reach", "8", "--system", "triclinic"]
    assert main([*argv, "--resolution", "6", "--max-excitation", "0.002"]) == 0
    err = capsys.readouterr().err
    total = len(beam_directions("triclinic", 6))
    kept = len(np.load(tmp_path / "t_orientations.npy"))
    assert f"note: {total - kept} orientation(s)" in err
    assert f" and {total - kept - 20} more" in err and total - kept > 20


MG_CELL = ["3.21", "3.21", "5.21", "90", "90", "120"]
MG = [["0.3333333", "0.6666667", "0.25", "12"], ["0.6666667", "0.3333333", "0.75", "12"]]


def test_two_phases(tmp_path, rng, capsys):
    """An aluminium bank with a magnesium one appended: the phase map finds which phase each
    frame shows, the .ang file holds both phases, and each system gets its key."""
    from PIL import Image

    from libertem_gpu.cli.bank_files import read_bank

    bank = str(tmp_path / "b.npy")
    common = ["--pixel-size", "0.03", "--reach", "30", "--resolution", "8"]
    al = ["templates", bank, "--cell", *CELL, *common, "--system", "cubic", "--phase", "Al"]
    for atom in FCC:
        al += ["--atom", *atom]
    mg = ["templates", bank, "--cell", *MG_CELL, *common, "--system", "hexagonal"]
    mg += ["--phase", "Mg", "--append"]
    for atom in MG:
        mg += ["--atom", *atom]
    assert main(al) == 0 and main(mg) == 0
    assert main([*mg, "--phase", "Al"]) == 2  # the last --phase counts
    assert "already holds a phase 'Al'" in capsys.readouterr().err
    assert main([*mg, "--force"]) == 2
    assert "--append adds to the bank and --force replaces it" in capsys.readouterr().err
    both = read_bank(bank)
    assert [p["name"] for p in both.phases] == ["Al", "Mg"]
    assert [p["system"] for p in both.phases] == ["cubic", "hexagonal"]
    assert all(len(t) and (t[:, 2] > 0).all() for t in both.templates)  # padding dropped
    counts = np.bincount(both.template_phase)
    assert counts[0] > 5 and counts[1] > 5 and len(both.templates) == counts.sum()
    # Frames: one template of each phase per row, turned.
    picks = [rng.choice(np.flatnonzero(both.template_phase == k)) for k in (0, 1, 0, 1, 1, 0)]
    frames = [
        render(both.templates[t] / [1, 1, both.templates[t][:, 2].max()], (64, 64), (31.5, 31.5), a)
        for t, a in zip(picks, rng.uniform(0, 2 * np.pi, 6), strict=True)
    ]
    data = rng.poisson(100 * np.stack(frames) + 1).astype(np.uint16).reshape(2, 3, 64, 64)
    np.save(tmp_path / "scan.npy", data)
    out = tmp_path / "r.npz"
    assert main(["run", str(tmp_path / "scan.npy"), "--templates", bank, "--out", str(out)]) == 0
    capsys.readouterr()
    maps = ["--ang", str(tmp_path / "m.ang"), "--ipf", str(tmp_path / "i.png")]
    maps += ["--phase-map", str(tmp_path / "p.png"), "--kam", str(tmp_path / "k.png")]
    maps += ["--boundary-angle", "180"]  # random neighbours: count them all
    maps += ["--grains", str(tmp_path / "g.png")]
    assert main(["orientation-map", str(out), *maps]) == 0
    said = capsys.readouterr().out
    assert "6 of 6 positions oriented (Al 3, Mg 3); " in said
    # At 180 degrees every same-phase neighbour joins: each phase's connected regions.
    grains = np.asarray(Image.open(tmp_path / "g.tif")).astype(int)
    truth = both.template_phase[picks].reshape(2, 3)
    from scipy import ndimage

    regions = sum(ndimage.label(truth == k)[1] for k in (0, 1))
    assert len(np.unique(grains)) == regions and f"{regions} grains" in said
    for k in (0, 1):  # no grain spans two phases
        assert not set(grains[truth == k]) & set(grains[truth != k])
    table = np.loadtxt(tmp_path / "m.ang", comments="#")
    np.testing.assert_array_equal(table[:, 7], truth.ravel() + 1)
    text = open(tmp_path / "m.ang").read()
    assert "# Symmetry              43" in text and "# Symmetry              62" in text
    phase_png = np.asarray(Image.open(tmp_path / "p.png"))
    assert len({tuple(phase_png[truth == k][0]) for k in (0, 1)}) == 2
    assert all(len({tuple(c) for c in phase_png[truth == k]}) == 1 for k in (0, 1))
    for system in ("cubic", "hexagonal"):
        assert (tmp_path / f"i_key_{system}.png").exists()
    # Each position coloured by its own phase's symmetry.
    from libertem_gpu import ipf_colors, kernel_average_misorientation, match_orientations

    res = load_results(out)
    found = match_orientations(
        both.orientations,
        res["template_match_template"][..., 0],
        res["template_match_rotation"][..., 0],
    )
    ipf = np.asarray(Image.open(tmp_path / "i.png"))
    kam = np.asarray(Image.open(tmp_path / "k.tif"))
    for k, system in enumerate(("cubic", "hexagonal")):
        want = np.round(ipf_colors(found[truth == k], system) * 255).astype(np.uint8)
        np.testing.assert_array_equal(ipf[truth == k], want)
        own = kernel_average_misorientation(found, system, 180.0, phase=truth)[truth == k]
        assert np.isfinite(own).any()
        np.testing.assert_allclose(kam[truth == k], own.astype(np.float32), equal_nan=True)
