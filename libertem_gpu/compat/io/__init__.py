"""LiberTEM's ``libertem.io``: the data set classes are in :mod:`.dataset`."""
