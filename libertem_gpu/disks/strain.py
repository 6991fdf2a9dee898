"""Strain and rotation maps from fitted lattice basis vectors, with their uncertainty.

The deformation gradient is ``F = B @ inv(B_ref)`` with ``B = [a b]`` the basis vectors as
columns. Components are named in ``(x, y)`` with x along the frame's columns and y along its
rows (pointing down, as images are displayed); rotations are positive from +x towards +y
(clockwise on screen).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError

__all__ = ["METHODS", "SPACES", "StrainMaps", "reference_basis", "strain_from_basis"]

#: Decompositions of ``F``: ``"polar"`` (``F = R U``, strain ``U - I``, exact for any rotation)
#: and ``"small"`` (strain ``(F + F.T) / 2 - I``, rotation ``(F_yx - F_xy) / 2``, first order).
METHODS = ("polar", "small")
#: ``"diffraction"``: the deformation of the pattern itself; ``"real"``: of the crystal, whose
#: lattice deforms with ``inv(F).T`` when its reciprocal lattice deforms with ``F``.
SPACES = ("diffraction", "real")


@dataclass(frozen=True)
class StrainMaps:
    """Strain and rotation per scan position (all shaped like the scan; NaN where no lattice).

    Attributes
    ----------
    exx, eyy, exy : numpy.ndarray
        Strain tensor components (``exy`` is the tensor shear, half the engineering shear).
    rotation : numpy.ndarray
        Rotation in radians, positive from +x towards +y.
    exx_std, eyy_std, exy_std, rotation_std : numpy.ndarray
        Standard deviations propagated from the fit covariance (the reference taken as exact).
    deformation : numpy.ndarray, shape (*S, 2, 2)
        ``F`` in ``(y, x)`` components, in the chosen space.
    """

    exx: np.ndarray
    eyy: np.ndarray
    exy: np.ndarray
    rotation: np.ndarray
    exx_std: np.ndarray
    eyy_std: np.ndarray
    exy_std: np.ndarray
    rotation_std: np.ndarray
    deformation: np.ndarray


def reference_basis(a: Any, b: Any, roi: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean basis vectors over a reference region, ignoring positions without a lattice.

    Parameters
    ----------
    a, b : array_like, shape (*S, 2)
        Fitted basis vectors per scan position.
    roi : array_like of bool, shape S, optional
        The reference region; default: everywhere.

    Returns
    -------
    a_ref, b_ref : numpy.ndarray, shape (2,)

    Raises
    ------
    InvalidParameterError
        If the roi's shape does not match or it holds no fitted lattice.
    """
    va, vb = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if roi is None:
        sel = np.ones(va.shape[:-1], bool)
    else:
        sel = np.asarray(roi, bool)
        if sel.shape != va.shape[:-1]:
            raise InvalidParameterError(
                f"the reference roi must have the scan's shape {va.shape[:-1]}, got {sel.shape}"
            )
    sel = sel & np.isfinite(va).all(axis=-1) & np.isfinite(vb).all(axis=-1)
    if not sel.any():
        raise InvalidParameterError("the reference region holds no position with a lattice")
    return va[sel].mean(axis=0), vb[sel].mean(axis=0)


def _components(f: np.ndarray, method: str) -> np.ndarray:
    """``(exx, eyy, exy, rotation)`` stacked on the last axis from ``F`` (``(y, x)`` rows)."""
    fyy, fyx, fxy, fxx = f[..., 0, 0], f[..., 0, 1], f[..., 1, 0], f[..., 1, 1]
    if method == "small":
        rot = (fyx - fxy) / 2
        return np.stack([fxx - 1, fyy - 1, (fxy + fyx) / 2, rot], axis=-1)
    rot = np.arctan2(fyx - fxy, fxx + fyy)
    c, s = np.cos(rot), np.sin(rot)
    # U = R^T F in (x, y) components
    uxx = c * fxx + s * fyx
    uyy = -s * fxy + c * fyy
    uxy = c * fxy + s * fyy
    return np.stack([uxx - 1, uyy - 1, uxy, rot], axis=-1)


def _deformation(basis: np.ndarray, ref_inv: np.ndarray, space: str) -> np.ndarray:
    f = basis @ ref_inv
    if space == "real":
        good = np.isfinite(f).all(axis=(-2, -1))
        f = np.where(good[..., None, None], f, np.eye(2))
        f = np.swapaxes(np.linalg.inv(f), -1, -2)
        f[~good] = np.nan
    return f


def strain_from_basis(
    a: Any,
    b: Any,
    a_ref: Any,
    b_ref: Any,
    covariance: Any = None,
    *,
    method: str = "polar",
    space: str = "diffraction",
) -> StrainMaps:
    """Strain and rotation of each lattice ``(a, b)`` against the reference ``(a_ref, b_ref)``.

    Parameters
    ----------
    a, b : array_like, shape (*S, 2)
        Basis vectors ``(y, x)`` per position.
    a_ref, b_ref : array_like, shape (2,)
        Reference basis vectors (same indexing as ``a``, ``b``).
    covariance : array_like, shape (*S, 6, 6), optional
        Fit covariance of ``(origin_y, origin_x, a_y, a_x, b_y, b_x)``
        (:attr:`~libertem_gpu.disks.lattice.LatticeFit.covariance`); its basis block is
        propagated to first order. Default: standard deviations are NaN.
    method : {"polar", "small"}
        See :data:`METHODS`.
    space : {"diffraction", "real"}
        See :data:`SPACES`.

    Returns
    -------
    StrainMaps
        With leading shape ``S``.
    """
    if method not in METHODS:
        raise InvalidParameterError(f"method must be one of {METHODS}, got {method!r}")
    if space not in SPACES:
        raise InvalidParameterError(f"space must be one of {SPACES}, got {space!r}")
    va, vb = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if va.shape != vb.shape or va.shape[-1:] != (2,):
        raise InvalidParameterError(
            f"a and b must have the same shape (..., 2), got {va.shape} and {vb.shape}"
        )
    ref = np.stack([np.asarray(a_ref, np.float64), np.asarray(b_ref, np.float64)], axis=-1)
    if ref.shape != (2, 2) or not np.isfinite(ref).all() or abs(np.linalg.det(ref)) < 1e-12:
        raise InvalidParameterError(
            f"a_ref and b_ref must be finite, non-collinear vectors (y, x), got {ref.T.tolist()}"
        )
    ref_inv = np.linalg.inv(ref)
    params = np.concatenate([va, vb], axis=-1)  # (a_y, a_x, b_y, b_x)

    def evaluate(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        basis = np.stack([q[..., 0:2], q[..., 2:4]], axis=-1)
        f = _deformation(basis, ref_inv, space)
        return _components(f, method), f

    comps, f = evaluate(params)
    std = np.full(comps.shape, np.nan)
    if covariance is not None:
        cov = np.asarray(covariance, np.float64)
        if cov.shape != (*va.shape[:-1], 6, 6):
            raise InvalidParameterError(
                f"covariance must have shape {(*va.shape[:-1], 6, 6)}, got {cov.shape}"
            )
        # Jacobian by central differences, one column per basis parameter
        step = 1e-6 * np.maximum(np.abs(ref).max(), 1.0)
        cols = []
        for i in range(4):
            dq = np.zeros(4)
            dq[i] = step
            cols.append((evaluate(params + dq)[0] - evaluate(params - dq)[0]) / (2 * step))
        jac = np.stack(cols, axis=-1)  # (*S, 4 outputs, 4 params)
        var = np.einsum("...ij,...jk,...ik->...i", jac, cov[..., 2:, 2:], jac)
        std = np.sqrt(np.maximum(var, 0.0))
    return StrainMaps(
        exx=comps[..., 0],
        eyy=comps[..., 1],
        exy=comps[..., 2],
        rotation=comps[..., 3],
        exx_std=std[..., 0],
        eyy_std=std[..., 1],
        exy_std=std[..., 2],
        rotation_std=std[..., 3],
        deformation=f,
    )
