"""LiberTEM-style usage of data sets, analyses, the Context and the helper modules (see
:mod:`tests.compat.usage_cases` for how the cases run)."""

from __future__ import annotations

from tests.compat.usage_cases import case

case(
    "sync_offset_positive",
    """
from libertem.udf.sumsigudf import SumSigUDF
shifted = ctx.load("memory", data=data, sync_offset=3)
res = ctx.run_udf(dataset=shifted, udf=SumSigUDF())
flat = f64.reshape(20, 12, 10).sum(axis=(1, 2))
assert np.allclose(res["intensity"].data.reshape(-1)[:17], flat[3:])
""",
)
case(
    "sync_offset_negative",
    """
from libertem.udf.sumsigudf import SumSigUDF
shifted = ctx.load("memory", data=data, sync_offset=-2)
res = ctx.run_udf(dataset=shifted, udf=SumSigUDF())
flat = f64.reshape(20, 12, 10).sum(axis=(1, 2))
assert np.allclose(res["intensity"].data.reshape(-1)[2:], flat[:18])
""",
)
case(
    "sync_offset_skips_missing",
    """
from libertem.udf.stddev import StdDevUDF
shifted = ctx.load("memory", data=data, sync_offset=18)
res = ctx.run_udf(dataset=shifted, udf=StdDevUDF())
assert res["num_frames"].data[0] == 2
""",
)
case(
    "memory_constructor_tileshape",
    """
from libertem.udf.sum import SumUDF
ds2 = MemoryDataSet(data=data, tileshape=(1, 12, 10), num_partitions=2, sig_dims=2)
res = ctx.run_udf(dataset=ds2, udf=SumUDF())
assert np.allclose(res["intensity"].data, f64.sum(axis=(0, 1)))
""",
)
case(
    "raw_file_initialize",
    """
import tempfile, os
from libertem.io.dataset.raw import RawFileDataSet
from libertem.executor.inline import InlineJobExecutor
from libertem.udf.sum import SumUDF
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "x.raw")
    data.tofile(path)
    raw = RawFileDataSet(path=path, nav_shape=(4, 5), sig_shape=(12, 10), dtype="uint16")
    raw = raw.initialize(InlineJobExecutor())
    res = ctx.run_udf(dataset=raw, udf=SumUDF())
assert np.allclose(res["intensity"].data, f64.sum(axis=(0, 1)))
""",
)
case(
    "npy_load",
    """
import tempfile, os
from libertem.udf.sum import SumUDF
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "x.npy")
    np.save(path, data)
    npy = ctx.load("npy", path=path)
    res = ctx.run_udf(dataset=npy, udf=SumUDF())
assert np.allclose(res["intensity"].data, f64.sum(axis=(0, 1)))
""",
)
case(
    "hdf5_ds_path",
    """
import tempfile, os, h5py
from libertem.udf.sum import SumUDF
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "x.h5")
    with h5py.File(path, "w") as f:
        f["data/frames"] = data
    h5 = ctx.load("hdf5", path=path, ds_path="data/frames", tileshape=(1, 12, 10))
    res = ctx.run_udf(dataset=h5, udf=SumUDF())
assert np.allclose(res["intensity"].data, f64.sum(axis=(0, 1)))
""",
)
case(
    "shape_methods",
    """
from libertem.common.shape import Shape
s = ds.shape
assert s.nav.size == 20 and s.sig.size == 120 and s.dims == 4 and s.size == 2400
assert tuple(s.flatten_nav()) == (20, 12, 10) and tuple(s.flatten_sig()) == (4, 5, 120)
assert s.to_tuple() == (4, 5, 12, 10) and s == Shape((4, 5, 12, 10), sig_dims=2)
assert tuple(ds.shape.sig) == (12, 10) and ds.shape.sig.dims == 2
""",
)
case(
    "ctx_map",
    """
res = ctx.map(dataset=ds, f=np.sum)
assert np.allclose(res.data, f64.sum(axis=(2, 3)))
""",
)
case(
    "auto_udf",
    """
from libertem.udf.auto import AutoUDF
res = ctx.run_udf(dataset=ds, udf=AutoUDF(f=lambda frame: frame[0]))
assert np.array_equal(res["result"].data, data[:, :, 0])
""",
)
case(
    "sum_analysis",
    """
res = ctx.run(ctx.create_sum_analysis(dataset=ds))
assert np.allclose(res.intensity.raw_data, f64.sum(axis=(0, 1)))
assert res.intensity.visualized is not None
""",
)
case(
    "disk_ring_point_analysis",
    """
disk = ctx.run(ctx.create_disk_analysis(dataset=ds, cx=5, cy=6, r=2))
ring = ctx.run(ctx.create_ring_analysis(dataset=ds, cx=5, cy=6, ri=1, ro=3))
point = ctx.run(ctx.create_point_analysis(dataset=ds, x=3, y=4))
y, x = np.mgrid[:12, :10]
d2 = (y - 6) ** 2 + (x - 5) ** 2
assert np.allclose(disk.intensity.raw_data, (f64 * (d2 <= 4)).sum(axis=(2, 3)))
assert np.allclose(ring["intensity"].raw_data, (f64 * ((d2 > 1) & (d2 <= 9))).sum(axis=(2, 3)))
assert np.array_equal(point.intensity.raw_data, data[..., 4, 3])
""",
)
case(
    "com_analysis",
    """
res = ctx.run(ctx.create_com_analysis(dataset=ds, cx=5, cy=6, mask_radius=4))
assert res.x.raw_data.shape == (4, 5) and res.divergence.raw_data.shape == (4, 5)
assert np.allclose(res.magnitude.raw_data, np.hypot(res.x.raw_data, res.y.raw_data))
""",
)
case(
    "pick_analysis",
    """
res = ctx.run(ctx.create_pick_analysis(dataset=ds, x=2, y=3))
assert np.array_equal(res.intensity.raw_data, data[3, 2])
""",
)
case(
    "mask_analysis",
    """
res = ctx.run(ctx.create_mask_analysis(dataset=ds, factories=[lambda: np.ones((12, 10))]))
assert np.allclose(res.mask_0.raw_data, f64.sum(axis=(2, 3)))
assert res[0].title == "mask 0"
""",
)
case(
    "radial_fourier_analysis",
    """
res = ctx.run(ctx.create_radial_fourier_analysis(dataset=ds, cx=5, cy=6, ri=0, ro=5, n_bins=2,
                                                  max_order=4))
assert res.raw_results is not None
""",
)
case(
    "export_dataset",
    """
import tempfile, os
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "out.npy")
    ctx.export_dataset(ds, path=path)
    assert np.array_equal(np.load(path), data)
""",
)
case(
    "several_udfs_one_pass",
    """
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
a, b = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
assert np.allclose(a["intensity"].data, f64.sum(axis=(0, 1)))
assert np.allclose(b["intensity"].data, f64.sum(axis=(2, 3)))
""",
)
case(
    "make_with_threads_cpus",
    """
from libertem.udf.sum import SumUDF
with lt.Context.make_with("threads", cpus=2) as tctx:
    res = tctx.run_udf(dataset=ds, udf=SumUDF())
assert np.allclose(res["intensity"].data, f64.sum(axis=(0, 1)))
""",
)
case(
    "inline_executor",
    """
from libertem.executor.inline import InlineJobExecutor
from libertem.udf.sum import SumUDF
ictx = lt.Context(executor=InlineJobExecutor())
assert np.allclose(ictx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data, f64.sum(axis=(0, 1)))
""",
)
case(
    "integer_frames_square",
    """
from libertem.udf import UDF
class Sq(UDF):
    def get_result_buffers(self):
        return {"sq": self.buffer(kind="nav", dtype="float32")}
    def process_frame(self, frame):
        self.results.sq[:] = np.sum(frame ** 2)
res = ctx.run_udf(dataset=ds, udf=Sq())
assert np.allclose(res["sq"].data, (data.astype(np.float32) ** 2).sum(axis=(2, 3)), rtol=1e-5)
""",
)
case(
    "use_native_dtype",
    """
from libertem.udf import UDF
class Native(UDF):
    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE
    def get_result_buffers(self):
        return {"k": self.buffer(kind="nav", dtype="int64")}
    def process_frame(self, frame):
        self.results.k[:] = frame.dtype.itemsize
res = ctx.run_udf(dataset=ds, udf=Native())
assert (res["k"].data == 2).all()
""",
)
case(
    "preferred_float64",
    """
from libertem.udf import UDF
class F64(UDF):
    def get_preferred_input_dtype(self):
        return np.float64
    def get_result_buffers(self):
        return {"k": self.buffer(kind="nav", dtype="int64")}
    def process_frame(self, frame):
        self.results.k[:] = frame.dtype.itemsize
res = ctx.run_udf(dataset=ds, udf=F64())
assert (res["k"].data == 8).all()
""",
)
case(
    "radial_bins_masks",
    """
from libertem import masks
from libertem.udf.masks import ApplyMasksUDF
bins = masks.radial_bins(5, 6, 10, 12, n_bins=3, use_sparse=False)
res = ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(mask_factories=lambda: bins, mask_count=3))
assert np.allclose(res["intensity"].data, np.einsum("abij,mij->abm", f64, bins), rtol=1e-5)
""",
)
case(
    "logsum_udf",
    """
from libertem.udf.logsum import LogsumUDF
res = ctx.run_udf(dataset=ds, udf=LogsumUDF())
f = data.astype(np.float32)
expected = np.log(f - f.min(axis=(2, 3), keepdims=True) + 1).sum(axis=(0, 1))
assert np.allclose(res["logsum"].data, expected, rtol=1e-5)
""",
)
case(
    "fem_udf",
    """
from libertem.udf.FEM import run_fem
res = run_fem(ctx, ds, center=(6, 5), rad_in=1, rad_out=4)
assert res["intensity"].data.shape == (4, 5)
""",
)
case(
    "run_stddev_helper",
    """
from libertem.udf.stddev import run_stddev
res = run_stddev(ctx, ds)
assert res["num_frames"] == 20 and np.allclose(res["std"], f64.std(axis=(0, 1)))
""",
)
case(
    "result_as_array",
    """
from libertem.udf.sum import SumUDF
res = ctx.run_udf(dataset=ds, udf=SumUDF())
assert np.allclose(np.array(res["intensity"]), f64.sum(axis=(0, 1)))
""",
)
case(
    "one_d_scan",
    """
from libertem.udf.sumsigudf import SumSigUDF
line = MemoryDataSet(data=data.reshape(20, 12, 10))
res = ctx.run_udf(dataset=line, udf=SumSigUDF())
assert np.allclose(res["intensity"].data, f64.reshape(20, 12, 10).sum(axis=(1, 2)))
""",
)
case(
    "three_d_scan",
    """
from libertem.udf.sumsigudf import SumSigUDF
cube = MemoryDataSet(data=data.reshape(2, 2, 5, 12, 10))
res = ctx.run_udf(dataset=cube, udf=SumSigUDF())
assert res["intensity"].data.shape == (2, 2, 5)
""",
)
case(
    "spectra_sig_dims_1",
    """
from libertem.udf.sum import SumUDF
spectra = MemoryDataSet(data=data.reshape(4, 5, 120), sig_dims=1)
res = ctx.run_udf(dataset=spectra, udf=SumUDF())
assert np.allclose(res["intensity"].data, f64.reshape(4, 5, 120).sum(axis=(0, 1)))
""",
)
case(
    "udf_params",
    """
from libertem.udf import UDF
class Scaled(UDF):
    def __init__(self, factor=2.0):
        super().__init__(factor=factor)
    def get_result_buffers(self):
        return {"s": self.buffer(kind="nav", dtype="float64")}
    def process_frame(self, frame):
        self.results.s[:] = frame.sum() * self.params.factor
res = ctx.run_udf(dataset=ds, udf=Scaled(factor=3.0))
assert np.allclose(res["s"].data, 3 * f64.sum(axis=(2, 3)))
""",
)
case(
    "device_class_cpu",
    """
from libertem.udf import UDF
class Dev(UDF):
    def get_result_buffers(self):
        return {"ok": self.buffer(kind="nav", dtype="int64")}
    def process_frame(self, frame):
        self.results.ok[:] = self.meta.device_class == "cpu"
assert ctx.run_udf(dataset=ds, udf=Dev(), backends=("numpy",))["ok"].data.all()
""",
)
case(
    "backend_constants",
    """
from libertem.udf import UDF
class Hybrid(UDF):
    def get_backends(self):
        return (self.BACKEND_NUMPY, self.BACKEND_CUPY)
    def get_result_buffers(self):
        return {"s": self.buffer(kind="nav", dtype="float64")}
    def process_frame(self, frame):
        self.results.s[:] = self.xp.sum(frame)
res = ctx.run_udf(dataset=ds, udf=Hybrid(), backends=["numpy"])
assert np.allclose(res["s"].data, f64.sum(axis=(2, 3)))
""",
)
