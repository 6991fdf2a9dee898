"""LiberTEM's ``libertem.io.dataset``: one module per format (``memory``, ``raw``, ``npy``,
``hdf5``, ``mib``, ``raw_csr``) and :mod:`.base`."""

from libertem_gpu.io import get_format

__all__ = ["get_dataset_cls"]


def get_dataset_cls(filetype: str) -> type:
    """The data set class for a format name: the LiberTEM-shaped one where this package has
    it, else ours."""
    from libertem_gpu.compat.api import _data_set_class

    return _data_set_class(filetype) or get_format(filetype)
