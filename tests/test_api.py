"""The Context: runs that share a user's UDF instance keep their state apart."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from libertem_gpu import CoMUDF, Context, StdDevUDF, SumUDF
from tests.conftest import random_data


def test_concurrent_runs_sharing_udf_instances_equal_serial_runs(rng):
    """200 runs in 4 threads, all with the same three UDF instances, on data sets of different
    shapes: each equals the serial result for its data set."""
    shapes = [(3, 5, 9, 11), (4, 4, 9, 11), (2, 7, 9, 11)]
    datasets = [random_data(rng, shape, np.uint16) for shape in shapes]
    shared = [CoMUDF.with_params(cy=4.0, cx=5.0, r=4.0), StdDevUDF(), SumUDF()]
    with Context("inline") as ctx:
        loaded = [ctx.load("memory", data=d, num_partitions=3) for d in datasets]
        serial = [ctx.run_udf(dataset=ds, udf=shared) for ds in loaded]

        def one(i: int):
            return i % 3, ctx.run_udf(dataset=loaded[i % 3], udf=shared)

        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(one, range(200)))
    for which, got in outcomes:
        for got_udf, want_udf in zip(got, serial[which], strict=True):
            for name, want in want_udf.items():
                np.testing.assert_array_equal(got_udf[name].data, want.data, err_msg=name)


def test_interleaved_run_udf_iter_with_a_shared_instance(rng):
    a = random_data(rng, (4, 6, 7, 8), np.uint16)
    b = random_data(rng, (5, 3, 7, 8), np.float32)
    udf = SumUDF()
    with Context("inline") as ctx:
        ds_a = ctx.load("memory", data=a, num_partitions=3)
        ds_b = ctx.load("memory", data=b, num_partitions=3)
        runs = [ctx.run_udf_iter(dataset=ds_a, udf=udf), ctx.run_udf_iter(dataset=ds_b, udf=udf)]
        last: list = [None, None]
        active = [True, True]
        while any(active):
            for i, it in enumerate(runs):
                if active[i]:
                    try:
                        last[i] = next(it)
                    except StopIteration:
                        active[i] = False
    np.testing.assert_allclose(last[0].buffers[0]["intensity"].data, a.sum(axis=(0, 1)))
    want_b = b.sum(axis=(0, 1), dtype=np.float64)
    np.testing.assert_allclose(last[1].buffers[0]["intensity"].data, want_b, rtol=1e-10)


def test_what_is_not_a_data_set_or_a_udf_gets_a_library_error(rng):
    from libertem_gpu.errors import DataSetError, UDFDefinitionError

    with Context("inline") as ctx:
        ds = ctx.load("memory", data=random_data(rng, (2, 3, 4, 5), np.uint16))
        with pytest.raises(DataSetError, match="expected a data set.*NoneType"):
            ctx.run_udf(dataset=None, udf=SumUDF())
        with pytest.raises(UDFDefinitionError, match=r"did you mean SumUDF\(\)"):
            ctx.run_udf(dataset=ds, udf=SumUDF)
        with pytest.raises(UDFDefinitionError, match="expected UDF instances"):
            ctx.run_udf(dataset=ds, udf=[SumUDF(), StdDevUDF])
