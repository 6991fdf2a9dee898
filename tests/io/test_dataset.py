"""The parameters every data set takes: integral values only, named in the errors."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.errors import DataSetError
from libertem_gpu.io.memory import MemoryDataSet
from tests.conftest import random_data


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"nav_shape": (4.5, 4)}, "nav_shape"),
        ({"nav_shape": "44"}, "nav_shape"),
        ({"num_partitions": 2.5}, "num_partitions"),
        ({"num_partitions": 0}, "num_partitions"),
        ({"num_partitions": -1}, "num_partitions"),
        ({"num_partitions": float("nan")}, "num_partitions"),
        ({"sync_offset": 2.7}, "sync_offset"),
        ({"sync_offset": float("nan")}, "sync_offset"),
        ({"sync_offset": float("inf")}, "sync_offset"),
        ({"sync_offset": "1"}, "sync_offset"),
    ],
)
def test_non_integral_parameters_are_refused(rng, kwargs, named):
    # int() would truncate 2.7 silently, and fail on NaN with a message naming nothing.
    data = random_data(rng, (4, 4, 3, 3), "uint16")
    with pytest.raises(DataSetError, match=named):
        MemoryDataSet(data, **kwargs)


def test_whole_numbers_of_any_type_are_accepted(rng):
    data = random_data(rng, (4, 4, 3, 3), "uint16")
    ds = MemoryDataSet(
        data, nav_shape=(np.int64(2), 8.0), num_partitions=np.uint8(2), sync_offset=1.0
    ).initialize()
    assert ds.nav_shape == (2, 8) and ds.sync_offset == 1 and len(ds.get_partitions()) == 2
