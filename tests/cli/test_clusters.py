"""``libertem-gpu run --clusters N``: the groups as ``cluster_frames`` finds them, with the roi,
saved with their dimensions and one image per group frame; reusing ``--pca``'s components;
bad numbers refused."""

from __future__ import annotations

import numpy as np

import libertem_gpu
from libertem_gpu import Context, load_results
from libertem_gpu.cli import main


def _scan(tmp_path, rng):
    patterns = 100 + 500 * rng.random((3, 12, 11))
    truth = rng.permutation(np.arange(90) % 3).reshape(9, 10)
    data = patterns[truth] * (1 + 0.05 * rng.standard_normal((9, 10, 12, 11)))
    np.save(tmp_path / "scan.npy", data)
    return data


def test_clusters_with_a_roi_equal_the_library(tmp_path, rng):
    data = _scan(tmp_path, rng)
    roi = rng.random((9, 10)) > 0.2
    np.save(tmp_path / "roi.npy", roi)
    out, images = tmp_path / "c.npz", tmp_path / "img"
    argv = ["run", str(tmp_path / "scan.npy"), "--clusters", "3", "--cluster-components", "4"]
    argv += ["--roi", str(tmp_path / "roi.npy")]
    assert main([*argv, "--out", str(out), "--images", str(images)]) == 0
    res = load_results(out)
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=data)
        want = libertem_gpu.cluster_frames(ctx, ds, 3, n_components=4, roi=roi)
    np.testing.assert_array_equal(res["clusters_labels"], want.labels)
    np.testing.assert_allclose(res["clusters_distances"], want.distances, equal_nan=True)
    np.testing.assert_allclose(res["clusters_mean_frames"], np.moveaxis(want.mean_frames, 0, -1))
    np.testing.assert_allclose(res["clusters_std_frames"], np.moveaxis(want.std_frames, 0, -1))
    np.testing.assert_array_equal(res["clusters_counts"], want.counts)
    np.testing.assert_allclose(res["clusters_centroids"], want.centroids)
    assert (res["clusters_labels"][~roi] == -1).all()
    assert res.dims("clusters_labels") == ["scan_y", "scan_x"]
    assert res.dims("clusters_mean_frames") == ["sig_y", "sig_x", "group"]
    names = {p.name for p in images.iterdir()}
    assert {f"clusters_mean_frames_{i}.png" for i in range(3)} <= names
    assert "clusters_labels.png" in names
    params = next(a for a in res.metadata["analyses"] if a["name"] == "clusters")["parameters"]
    assert params["n_clusters"] == 3 and params["n_components"] == 4


def test_clusters_reuse_the_pca(tmp_path, rng, monkeypatch):
    """With --pca K the groups compare those K components, decomposed once."""
    data = _scan(tmp_path, rng)
    calls = []
    decompose = libertem_gpu.udf.decomposition.decompose

    def counting(*args, **kwargs):
        calls.append(kwargs.get("n_components"))
        return decompose(*args, **kwargs)

    monkeypatch.setattr("libertem_gpu.udf.clustering.decompose", counting)
    monkeypatch.setattr("libertem_gpu.udf.decomposition.decompose", counting)
    monkeypatch.setattr(libertem_gpu, "decompose", counting)
    out = tmp_path / "c.npz"
    argv = ["run", str(tmp_path / "scan.npy"), "--pca", "3", "--clusters", "3", "--out", str(out)]
    assert main(argv) == 0
    assert calls == [3]
    res = load_results(out)
    with Context("inline") as ctx:
        want = libertem_gpu.cluster_frames(ctx, ctx.load("memory", data=data), 3, n_components=3)
    np.testing.assert_array_equal(res["clusters_labels"], want.labels)
    assert res["clusters_centroids"].shape == (3, 3)
    # another number of components: decomposed again for the groups
    calls.clear()
    more = [*argv[:-1], str(tmp_path / "d.npz"), "--cluster-components", "5"]
    assert main(more) == 0
    assert calls == [3, 5]


def test_bad_numbers_are_refused(tmp_path, rng):
    _scan(tmp_path, rng)
    base = ["run", str(tmp_path / "scan.npy"), "--out", str(tmp_path / "x.npz")]
    assert main([*base, "--clusters", "0"]) == 2
    assert main([*base, "--clusters", "2", "--cluster-components", "0"]) == 2
