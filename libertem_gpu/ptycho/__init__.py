"""Iterative ptychography: the specimen's complex transmission and the probe from a scan's
diffraction patterns (:func:`~libertem_gpu.ptychography`)."""

from libertem_gpu.ptycho.reconstruct import Ptychography, ptychography

__all__ = ["Ptychography", "ptychography"]
