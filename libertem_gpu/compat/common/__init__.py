"""LiberTEM's ``libertem.common``: :mod:`.shape` and :mod:`.buffers`."""
