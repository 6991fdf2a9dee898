"""Complex data sets end to end: every analysis that is defined for complex numbers against
NumPy, on every executor; the others refused by name before any data is read; export and the
command line keep complex values intact."""

from __future__ import annotations

import numpy as np
import pytest

import libertem_gpu as lg
from libertem_gpu.cli import main
from libertem_gpu.errors import UnsupportedDTypeError
from libertem_gpu.io.tiles import TilingScheme
from tests.conftest import random_data

# (dtype, nav, sig, roi, partitions, tiling, source)
CASES = [
    ("complex64", (4, 5), (7, 9), True, 3, TilingScheme(depth=2, sig_rows=3), "memory"),
    ("complex128", (7,), (5, 6), False, 2, TilingScheme(depth=3), "memory"),
    ("complex64", (2, 3, 2), (6, 5), True, 3, None, "memory"),
    (">c8", (3, 4), (5, 7), True, 2, TilingScheme(depth=2, sig_rows=2), "raw"),
]


def complex_data(rng, shape, dtype):
    real = np.dtype(dtype).newbyteorder("=")
    part = np.float32 if real == np.complex64 else np.float64
    values = random_data(rng, shape, part) + 1j * random_data(rng, shape, part)
    # random_data spans the float type's range; keep sums and squares finite
    return (values / np.abs(values).max() * 100).astype(real)


def _load(ctx, rng, tmp_path, dtype, nav, sig, parts, source):
    data = complex_data(rng, nav + sig, dtype)
    if source == "memory":
        return data, ctx.load("memory", data=data, num_partitions=parts)
    path = tmp_path / "data.raw"
    data.astype(dtype).tofile(path)
    ds = ctx.load("raw", path=path, nav_shape=nav, sig_shape=sig, dtype=dtype, num_partitions=parts)
    return data, ds


def _masks(sig, rng):
    real = rng.standard_normal(sig)
    cplx = rng.standard_normal(sig) + 1j * rng.standard_normal(sig)
    sparse = np.where(rng.random(sig) > 0.7, rng.standard_normal(sig), 0.0)
    return real, cplx, sparse


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-nav{len(c[1])}-{c[6]}")
def test_complex_analyses_match_numpy(ctx, rng, tmp_path, case):
    dtype, nav, sig, with_roi, parts, tiling, source = case
    data, ds = _load(ctx, rng, tmp_path, dtype, nav, sig, parts, source)
    roi = rng.random(nav) > 0.4 if with_roi else None
    if roi is not None:
        roi.flat[0] = True
    real_mask, complex_mask, sparse_mask = _masks(sig, rng)
    udfs = [
        lg.SumUDF(),
        lg.SumSigUDF(),
        lg.StdDevUDF(),
        lg.PickUDF(),
        lg.ApplyMasksUDF(mask_factories=[lambda: real_mask, lambda: complex_mask]),
        lg.ApplyMasksUDF(mask_factories=[lambda: sparse_mask], use_sparse=True),
        lg.ApplyMasksUDF(mask_factories=[lambda: real_mask], mask_dtype=np.float32),
    ]
    total, per_frame, std, pick, masks, sparse, single = ctx.run_udf(
        dataset=ds, udf=udfs, roi=roi, tiling=tiling
    )
    flat = data.reshape(-1, *sig).astype(np.complex128)
    sel = np.ones(flat.shape[0], bool) if roi is None else roi.reshape(-1)
    frames = flat[sel]
    tol = {"rtol": 1e-5, "atol": 1e-3}  # complex64 frames, float64 accumulation

    np.testing.assert_allclose(total["intensity"].data, frames.sum(axis=0), **tol)
    assert total["intensity"].data.dtype == np.complex128
    np.testing.assert_allclose(per_frame["intensity"].raw_data, frames.sum(axis=(1, 2)), **tol)
    np.testing.assert_allclose(std["mean"].data, frames.mean(axis=0), **tol)
    var = np.mean(np.abs(frames - frames.mean(axis=0)) ** 2, axis=0)
    assert std["var"].data.dtype == np.float64 and std["std"].data.dtype == np.float64
    np.testing.assert_allclose(std["var"].data, var, rtol=1e-5)
    np.testing.assert_allclose(std["std"].data, np.sqrt(var), rtol=1e-5)
    np.testing.assert_allclose(std["varsum"].data, var * len(frames), rtol=1e-5)
    assert int(std["num_frames"].data[0]) == len(frames)
    np.testing.assert_array_equal(pick["intensity"].raw_data, data.reshape(-1, *sig)[sel])

    expected = np.stack(
        [frames.reshape(len(frames), -1) @ m.reshape(-1) for m in (real_mask, complex_mask)], -1
    )
    assert masks["intensity"].data.dtype == np.complex128
    np.testing.assert_allclose(masks["intensity"].raw_data, expected, **tol)
    expected_sparse = frames.reshape(len(frames), -1) @ sparse_mask.reshape(-1)
    np.testing.assert_allclose(sparse["intensity"].raw_data[:, 0], expected_sparse, **tol)
    single_dtype = np.result_type(np.dtype(dtype).newbyteorder("="), np.float32)
    assert single["intensity"].data.dtype == single_dtype
    np.testing.assert_allclose(
        single["intensity"].raw_data[:, 0], expected[:, 0], rtol=1e-4, atol=1e-2
    )


class _Spy(lg.UDF):
    """Counts the frames it sees in a module-level list (inline executor)."""

    seen: list[int] = []

    def get_result_buffers(self):
        return {"n": self.buffer(kind="nav", dtype=np.int64)}

    def process_frame(self, frame):
        _Spy.seen.append(1)


@pytest.mark.parametrize(
    "udf, name",
    [
        (lg.MaxUDF(), "MaxUDF"),
        (lg.MinUDF(), "MinUDF"),
        (lg.CoMUDF.with_params(), "CoMUDF"),
    ],
)
def test_meaningless_analyses_refused_before_reading(inline_ctx, rng, udf, name):
    ds = inline_ctx.load("memory", data=complex_data(rng, (2, 3, 4, 5), np.complex64))
    _Spy.seen.clear()
    with pytest.raises(UnsupportedDTypeError, match=rf"^{name} is not defined.*complex64"):
        inline_ctx.run_udf(dataset=ds, udf=[_Spy(), udf])
    assert _Spy.seen == []


def test_complex_magnitude_through_map(inline_ctx, rng):
    """The way round a refusal that the message names: a map to real values."""
    data = complex_data(rng, (2, 3, 4, 5), np.complex128)
    res = inline_ctx.map(dataset=inline_ctx.load("memory", data=data), f=np.abs)
    np.testing.assert_allclose(res.data, np.abs(data))


@pytest.mark.parametrize("ext", ["npy", "h5"])
def test_export_keeps_complex_values(inline_ctx, rng, tmp_path, ext):
    data = complex_data(rng, (3, 2, 4, 5), np.complex64)
    out = inline_ctx.export_dataset(
        inline_ctx.load("memory", data=data, num_partitions=2), path=tmp_path / f"c.{ext}"
    )
    back = inline_ctx.load("auto", path=out)
    assert back.dtype == np.complex64
    res = inline_ctx.run_udf(dataset=back, udf=lg.PickUDF(), roi=np.ones((3, 2), bool))
    np.testing.assert_array_equal(res["intensity"].raw_data, data.reshape(6, 4, 5))


def test_cli_saves_complex_results(rng, tmp_path, capsys):
    data = complex_data(rng, (3, 4, 5, 6), np.complex64)
    np.save(tmp_path / "c.npy", data)
    out = tmp_path / "r.npz"
    argv = ["run", str(tmp_path / "c.npy"), "--analysis", "sum", "--analysis", "std"]
    assert main([*argv, "--out", str(out)]) == 0
    saved = np.load(out)
    frames = data.reshape(-1, 5, 6).astype(np.complex128)
    assert saved["sum_intensity"].dtype == np.complex128
    np.testing.assert_allclose(saved["sum_intensity"], frames.sum(axis=0), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(saved["std_mean"], frames.mean(axis=0), rtol=1e-5, atol=1e-4)
    argv = ["run", str(tmp_path / "c.npy"), "--analysis", "max"]
    assert main([*argv, "--out", str(tmp_path / "m.npz")]) == 1
    assert "MaxUDF is not defined for complex data" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.gpu
def test_complex_on_gpu_equals_cpu(rng):
    from libertem_gpu.backends import device

    info = device.probe()
    if not info.available:
        pytest.skip(f"no usable GPU: {info.reason}")
    data = complex_data(rng, (4, 5, 13, 17), np.complex64)
    real_mask, complex_mask, _ = _masks((13, 17), rng)

    def udfs():
        masks = [lambda: real_mask, lambda: complex_mask]
        return [lg.SumUDF(), lg.SumSigUDF(), lg.StdDevUDF(), lg.ApplyMasksUDF(masks)]

    with lg.Context("inline") as ctx:
        ds = ctx.load("memory", data=data, num_partitions=3)
        tiling = TilingScheme(depth=2, sig_rows=5)
        cpu = ctx.run_udf(dataset=ds, udf=udfs(), backends="numpy", tiling=tiling)
        gpu = ctx.run_udf(dataset=ds, udf=udfs(), backends="cupy", tiling=tiling)
    for a, b in zip(cpu, gpu, strict=True):
        for key in a:
            np.testing.assert_allclose(b[key].data, a[key].data, rtol=1e-5, atol=1e-3)


def test_analyses_api_on_complex_data(rng):
    """LiberTEM's analysis API: complex results (magnitude, parts, angle, complex) from masks
    on complex data; the CoM analysis refused by name."""
    from libertem_gpu.compat.api import Context

    data = complex_data(rng, (3, 4, 8, 9), np.complex64)
    mask = rng.standard_normal((8, 9))
    with Context.make_with("inline") as ctx:
        ds = ctx.load("memory", data=data, num_partitions=2)
        res = ctx.run(ctx.create_mask_analysis(dataset=ds, factories=[lambda: mask]))
        expected = (data.astype(np.complex128) * mask).sum(axis=(2, 3))
        np.testing.assert_allclose(res.mask_0_complex.raw_data, expected, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(res.mask_0.raw_data, np.abs(expected), rtol=1e-5, atol=1e-3)
        with pytest.raises(UnsupportedDTypeError, match="CoMUDF"):
            ctx.run(ctx.create_com_analysis(dataset=ds))
