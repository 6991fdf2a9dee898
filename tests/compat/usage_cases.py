"""LiberTEM-style usage of the UDF API, as LiberTEM 0.16 users write it (imports from
``libertem``): each case is a small script that checks its own numbers against NumPy.
``test_usage.py`` runs each after replacing ``libertem`` with ``libertem_gpu.compat``, nothing
else.

``PREAMBLE`` runs first in every case: ``ctx`` (inline), ``rng``, ``data`` (uint16, 4x5 scan of
12x10 frames, values 0..999) and ``ds`` (a MemoryDataSet of it, 3 partitions).
"""

from __future__ import annotations

PREAMBLE = """
import numpy as np
import libertem.api as lt
from libertem.io.dataset.memory import MemoryDataSet
ctx = lt.Context.make_with("inline")
rng = np.random.default_rng(99)
data = rng.integers(0, 1000, (4, 5, 12, 10)).astype(np.uint16)
f64 = data.astype(np.float64)
ds = MemoryDataSet(data=data, num_partitions=3)
"""

CASES: dict[str, str] = {}


def case(name: str, code: str) -> None:
    """Add a case (a script run after :data:`PREAMBLE`)."""
    CASES[name] = code


case(
    "sum_udf",
    """
from libertem.udf.sum import SumUDF
res = ctx.run_udf(dataset=ds, udf=SumUDF())
assert np.allclose(res["intensity"].data, f64.sum(axis=(0, 1)))
""",
)
case(
    "sumsig_udf",
    """
from libertem.udf.sumsigudf import SumSigUDF
res = ctx.run_udf(dataset=ds, udf=SumSigUDF())
assert np.allclose(res["intensity"].data, f64.sum(axis=(2, 3)))
""",
)
case(
    "stddev_roi",
    """
from libertem.udf.stddev import StdDevUDF
roi = rng.random((4, 5)) > 0.5
res = ctx.run_udf(dataset=ds, udf=StdDevUDF(), roi=roi)
assert np.allclose(res["var"].data, f64[roi].var(axis=0))
assert res["num_frames"].data[0] == roi.sum()
""",
)
case(
    "pick_roi",
    """
from libertem.udf.raw import PickUDF
roi = np.zeros((4, 5), dtype=bool); roi[1, 2] = True; roi[3, 0] = True
res = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)
assert np.array_equal(res["intensity"].data, data[roi])
""",
)
case(
    "apply_masks_factories",
    """
from libertem.udf.masks import ApplyMasksUDF
from libertem import masks
udf = ApplyMasksUDF(mask_factories=[
    lambda: masks.circular(centerX=5, centerY=6, imageSizeX=10, imageSizeY=12, radius=3),
    lambda: masks.ring(5, 6, 10, 12, radius=5, radius_inner=2),
])
res = ctx.run_udf(dataset=ds, udf=udf)
m0 = masks.circular(5, 6, 10, 12, 3)
assert np.allclose(res["intensity"].data[..., 0], (f64 * m0).sum(axis=(2, 3)))
""",
)
case(
    "apply_masks_stack_count",
    """
from libertem.udf.masks import ApplyMasksUDF
stack = rng.random((3, 12, 10)).astype(np.float32)
res = ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(mask_factories=lambda: stack, mask_count=3))
assert np.allclose(res["intensity"].data, np.einsum("abij,mij->abm", f64, stack), rtol=1e-5)
""",
)
case(
    "apply_masks_shifts",
    """
from libertem.udf.masks import ApplyMasksUDF
mask = rng.random((12, 10))
udf = ApplyMasksUDF(mask_factories=[lambda: mask], shifts=(2, -3))
res = ctx.run_udf(dataset=ds, udf=udf)
moved = np.zeros_like(mask)
moved[2:, :7] = mask[:10, 3:]  # down by 2, left by 3
assert np.allclose(res["intensity"].data[..., 0], (f64 * moved).sum(axis=(2, 3)))
shifts = rng.integers(-4, 5, size=(4, 5, 2))
aux = ApplyMasksUDF.aux_data(shifts.ravel(), kind="nav", extra_shape=(2,), dtype=shifts.dtype)
res = ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(mask_factories=[lambda: mask], shifts=aux))
for (i, j) in np.ndindex(4, 5):
    dy, dx = shifts[i, j]
    m = np.zeros_like(mask)
    m[max(dy, 0):12 + min(dy, 0), max(dx, 0):10 + min(dx, 0)] = mask[
        max(-dy, 0):12 - max(dy, 0), max(-dx, 0):10 - max(dx, 0)
    ]
    assert np.isclose(res["intensity"].data[i, j, 0], (f64[i, j] * m).sum())
""",
)
case(
    "apply_masks_scipy_sparse",
    """
import scipy.sparse
from libertem.udf.masks import ApplyMasksUDF
dense = (rng.random((12, 10)) > 0.8).astype(np.float32)
udf = ApplyMasksUDF(mask_factories=[lambda: scipy.sparse.csr_matrix(dense)], use_sparse=True)
res = ctx.run_udf(dataset=ds, udf=udf)
assert np.allclose(res["intensity"].data[..., 0], (f64 * dense).sum(axis=(2, 3)), rtol=1e-5)
""",
)
case(
    "com_udf_default",
    """
from libertem.udf.com import CoMUDF
res = ctx.run_udf(dataset=ds, udf=CoMUDF.with_params())
y, x = np.mgrid[:12, :10]
cy = (f64 * y).sum(axis=(2, 3)) / f64.sum(axis=(2, 3))
assert np.allclose(res["raw_com"].data[..., 0], cy)
assert res["field"].data.shape == (4, 5, 2)
""",
)
case(
    "com_udf_regression",
    """
from libertem.udf.com import CoMUDF, RegressionOptions
res = ctx.run_udf(dataset=ds, udf=CoMUDF.with_params(
    cy=6, cx=5, r=4, regression=RegressionOptions.SUBTRACT_LINEAR))
assert np.allclose(res["field"].data.reshape(-1, 2).mean(axis=0), 0, atol=1e-9)
assert res["regression"].data.shape == (3, 2)
""",
)
case(
    "frame_udf_nav",
    """
from libertem.udf import UDF
class MaxUDF(UDF):
    def get_result_buffers(self):
        return {"max": self.buffer(kind="nav", dtype="float32")}
    def process_frame(self, frame):
        self.results.max[:] = np.max(frame)
res = ctx.run_udf(dataset=ds, udf=MaxUDF())
assert np.array_equal(res["max"].data, data.max(axis=(2, 3)))
""",
)
case(
    "tile_udf_sig_merge",
    """
from libertem.udf import UDF
class SumTile(UDF):
    def get_result_buffers(self):
        return {"s": self.buffer(kind="sig", dtype="float64")}
    def process_tile(self, tile):
        self.results.s[:] += np.sum(tile, axis=0)
    def merge(self, dest, src):
        dest.s[:] += src.s
res = ctx.run_udf(dataset=ds, udf=SumTile())
assert np.allclose(res["s"].data, f64.sum(axis=(0, 1)))
""",
)
case(
    "partition_udf",
    """
from libertem.udf import UDF
class Mean(UDF):
    def get_result_buffers(self):
        return {"m": self.buffer(kind="nav", dtype="float64")}
    def process_partition(self, partition):
        self.results.m[:] = partition.mean(axis=(-1, -2))
res = ctx.run_udf(dataset=ds, udf=Mean())
assert np.allclose(res["m"].data, f64.mean(axis=(2, 3)))
""",
)
case(
    "nav_extra_shape",
    """
from libertem.udf import UDF
class Both(UDF):
    def get_result_buffers(self):
        return {"v": self.buffer(kind="nav", extra_shape=(2,), dtype="float64")}
    def process_frame(self, frame):
        self.results.v[:] = (frame.min(), frame.max())
res = ctx.run_udf(dataset=ds, udf=Both())
assert res["v"].data.shape == (4, 5, 2)
assert np.array_equal(res["v"].data[..., 1], data.max(axis=(2, 3)))
""",
)
case(
    "single_buffer_merge",
    """
from libertem.udf import UDF
class Count(UDF):
    def get_result_buffers(self):
        return {"n": self.buffer(kind="single", dtype="int64")}
    def process_frame(self, frame):
        self.results.n[:] += 1
    def merge(self, dest, src):
        dest.n[:] += src.n
res = ctx.run_udf(dataset=ds, udf=Count())
assert res["n"].data[0] == 20
""",
)
case(
    "private_and_result_only",
    """
from libertem.udf import UDF
class Ratio(UDF):
    def get_result_buffers(self):
        return {
            "total": self.buffer(kind="nav", dtype="float64", use="private"),
            "ratio": self.buffer(kind="nav", dtype="float64", use="result_only"),
        }
    def process_frame(self, frame):
        self.results.total[:] = frame.sum()
    def get_results(self):
        return {"ratio": self.results.total / self.results.total.max()}
res = ctx.run_udf(dataset=ds, udf=Ratio())
assert "total" not in res
s = f64.sum(axis=(2, 3))
assert np.allclose(res["ratio"].data, s / s.max())
""",
)
case(
    "aux_data_nav",
    """
from libertem.udf import UDF
class Weighted(UDF):
    def get_result_buffers(self):
        return {"w": self.buffer(kind="nav", dtype="float64")}
    def process_frame(self, frame):
        self.results.w[:] = frame.sum() * self.params.weights
weights = rng.random((4, 5))
udf = Weighted(weights=Weighted.aux_data(weights, kind="nav", dtype="float64"))
res = ctx.run_udf(dataset=ds, udf=udf)
assert np.allclose(res["w"].data, f64.sum(axis=(2, 3)) * weights)
""",
)
case(
    "aux_data_sig",
    """
from libertem.udf import UDF
class Gain(UDF):
    def get_result_buffers(self):
        return {"s": self.buffer(kind="sig", dtype="float64")}
    def process_tile(self, tile):
        self.results.s[:] += (tile * self.params.gain).sum(axis=0)
    def merge(self, dest, src):
        dest.s[:] += src.s
gain = rng.random((12, 10))
res = ctx.run_udf(dataset=ds, udf=Gain(gain=Gain.aux_data(gain, kind="sig", dtype="float64")))
assert np.allclose(res["s"].data, (f64 * gain).sum(axis=(0, 1)))
""",
)
case(
    "task_data",
    """
from libertem.udf import UDF
class Masked(UDF):
    def get_task_data(self):
        return {"mask": np.ones(tuple(self.meta.dataset_shape.sig), dtype=bool)}
    def get_result_buffers(self):
        return {"s": self.buffer(kind="nav", dtype="float64")}
    def process_frame(self, frame):
        self.results.s[:] = frame[self.task_data.mask].sum()
res = ctx.run_udf(dataset=ds, udf=Masked())
assert np.allclose(res["s"].data, f64.sum(axis=(2, 3)))
""",
)
case(
    "meta_coordinates",
    """
from libertem.udf import UDF
class Where(UDF):
    def get_result_buffers(self):
        return {"c": self.buffer(kind="nav", extra_shape=(2,), dtype="int64")}
    def process_frame(self, frame):
        self.results.c[:] = self.meta.coordinates[0]
res = ctx.run_udf(dataset=ds, udf=Where())
assert np.array_equal(res["c"].data[3, 2], [3, 2])
""",
)
case(
    "meta_slice_tile",
    """
from libertem.udf import UDF
class Origins(UDF):
    def get_result_buffers(self):
        return {"s": self.buffer(kind="sig", dtype="float64")}
    def process_tile(self, tile):
        self.results.s[:] += tile.sum(axis=0)
        assert self.meta.slice.shape[0] == tile.shape[0]
        assert self.meta.sig_slice is not None
    def merge(self, dest, src):
        dest.s[:] += src.s
res = ctx.run_udf(dataset=ds, udf=Origins())
assert np.allclose(res["s"].data, f64.sum(axis=(0, 1)))
""",
)
case(
    "meta_dataset_shape",
    """
from libertem.udf import UDF
class Shapes(UDF):
    def get_result_buffers(self):
        return {"n": self.buffer(kind="single", extra_shape=(3,), dtype="int64")}
    def process_frame(self, frame):
        shape = self.meta.dataset_shape
        self.results.n[:] = (shape.nav.size, shape.sig.size, shape.dims)
    def merge(self, dest, src):
        dest.n[:] = src.n
res = ctx.run_udf(dataset=ds, udf=Shapes())
assert list(res["n"].data) == [20, 120, 4]
""",
)
case(
    "meta_input_dtype_float32",
    """
from libertem.udf import UDF
class Kind(UDF):
    def get_result_buffers(self):
        return {"k": self.buffer(kind="single", dtype="int64")}
    def process_frame(self, frame):
        assert self.meta.input_dtype == np.float32 and frame.dtype == np.float32
        self.results.k[:] = 1
    def merge(self, dest, src):
        dest.k[:] = src.k
res = ctx.run_udf(dataset=ds, udf=Kind())
""",
)
case(
    "merge_all",
    """
from libertem.udf import UDF
class S(UDF):
    def get_result_buffers(self):
        return {"s": self.buffer(kind="sig", dtype="float64")}
    def process_frame(self, frame):
        self.results.s[:] += frame
    def merge_all(self, ordered_results):
        return {"s": np.sum([b.s for b in ordered_results.values()], axis=0)}
res = ctx.run_udf(dataset=ds, udf=S())
assert np.allclose(res["s"].data, f64.sum(axis=(0, 1)))
""",
)
case(
    "run_udf_iter_damage",
    """
from libertem.udf.sumsigudf import SumSigUDF
parts = list(ctx.run_udf_iter(dataset=ds, udf=SumSigUDF()))
assert len(parts) == 3
first = parts[0]
assert 0 < first.damage.data.sum() < 20
assert np.allclose(parts[-1].buffers[0]["intensity"].data, f64.sum(axis=(2, 3)))
""",
)
case(
    "valid_mask_masked_data",
    """
from libertem.udf.sumsigudf import SumSigUDF
roi = rng.random((4, 5)) > 0.5
res = ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi)
assert np.array_equal(res["intensity"].valid_mask, roi)
assert np.allclose(res["intensity"].masked_data.compressed(), f64.sum(axis=(2, 3))[roi])
assert res["intensity"].raw_data.shape == (roi.sum(),)
""",
)
case(
    "roi_flat",
    """
from libertem.udf.sum import SumUDF
roi = np.zeros(20, dtype=bool); roi[::3] = True
res = ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi)
assert np.allclose(res["intensity"].data, f64.reshape(20, 12, 10)[roi].sum(axis=0))
""",
)

# the cases of data sets, analyses and the Context register themselves on import
import tests.compat.usage_cases_api  # noqa: E402, F401
