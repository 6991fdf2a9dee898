"""LiberTEM's ``libertem.executor``: its executor classes as ours (see the submodules)."""
