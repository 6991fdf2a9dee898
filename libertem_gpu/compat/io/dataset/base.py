"""LiberTEM's ``libertem.io.dataset.base``: the data set base class and its exception."""

from libertem_gpu.errors import DataSetError
from libertem_gpu.io.dataset import DataSet

__all__ = ["DataSet", "DataSetException"]

#: What a bad data set raises (a ``ValueError`` too, as here every data set error is).
DataSetException = DataSetError
