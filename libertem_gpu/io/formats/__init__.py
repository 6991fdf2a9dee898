"""File formats: one module per format, each a :class:`~libertem_gpu.io.formats.base.FileDataSet`
that parses its headers and says where its frames' bytes lie (byte ranges, or chunks to decode).

Formats register by name in :mod:`libertem_gpu.io.registry`; the machinery they use (data set
base, layout, readers, transports, partitions, tiles) sits beside this package in
:mod:`libertem_gpu.io`. In-memory sources (``memory``, ``dask``) are not files and stay there too.
"""
