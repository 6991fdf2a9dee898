"""LiberTEM's ``libertem.corrections``: :class:`CorrectionSet` and :mod:`.coordinates`
(:mod:`.detector` holds LiberTEM's repair helpers)."""

from __future__ import annotations

from libertem_gpu.corrections.corrset import CorrectionSet

__all__ = ["CorrectionSet"]
