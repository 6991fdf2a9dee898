""":class:`AnalysisMixin`: LiberTEM's ``create_*_analysis`` and ``run`` methods of ``Context``."""

from __future__ import annotations

from typing import Any

import numpy as np

from libertem_gpu.analysis.analyses import (
    Analysis,
    COMAnalysis,
    DiskMaskAnalysis,
    MasksAnalysis,
    PickFrameAnalysis,
    PointMaskAnalysis,
    RingMaskAnalysis,
    SDAnalysis,
    SumAnalysis,
    _sig2,
    check_com_dataset,
    check_point_dataset,
)
from libertem_gpu.analysis.radial_fourier import RadialFourierAnalysis
from libertem_gpu.analysis.results import AnalysisResultSet
from libertem_gpu.errors import InvalidParameterError


def _given(**kwargs: Any) -> dict[str, Any]:
    """The parameters the caller gave (None means: use the analysis' default)."""
    return {k: v for k, v in kwargs.items() if v is not None}


class AnalysisMixin:
    """The analysis API of LiberTEM's ``Context``; :class:`~libertem_gpu.Context` inherits it.

    Each ``create_*_analysis`` returns an :class:`~libertem_gpu.analysis.analyses.Analysis`;
    :meth:`run` runs it in one pass and returns an
    :class:`~libertem_gpu.analysis.results.AnalysisResultSet`.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.ones((2, 3, 8, 8), dtype=np.uint16))
    >>> result = ctx.run(ctx.create_disk_analysis(dataset=ds, cx=4, cy=4, r=1))
    >>> result.intensity.raw_data.tolist()
    [[5.0, 5.0, 5.0], [5.0, 5.0, 5.0]]
    """

    def run_udf(
        self,
        dataset: Any,
        udf: Any,
        roi: Any = None,
        progress: bool = False,
        *,
        corrections: Any = None,
    ) -> Any:
        raise NotImplementedError  # provided by Context

    def create_mask_analysis(
        self,
        factories: Any,
        dataset: Any,
        use_sparse: bool | str | None = None,
        mask_count: int | None = None,
        mask_dtype: Any = None,
        dtype: Any = None,
    ) -> MasksAnalysis:
        """Integrate each frame against masks; results ``mask_0``, ``mask_1``, ...

        Parameters
        ----------
        factories : callable or list of callable
            Functions without arguments that return a frame-shaped mask each (or, a single
            function, a stack of masks, first axis the mask index).
        dataset : DataSet
            The data set.
        use_sparse : bool or str, optional
            Use sparse masks (None: where every mask is sparse).
        mask_count : int, optional
            The number of masks a single factory returns.
        mask_dtype : dtype, optional
            The masks' element type.
        dtype : dtype, optional
            The type to compute in.
        """
        return MasksAnalysis(
            dataset=dataset,
            parameters={
                "factories": factories,
                "use_sparse": use_sparse,
                "mask_count": mask_count,
                "mask_dtype": mask_dtype,
                "dtype": dtype,
            },
        )

    def create_com_analysis(
        self,
        dataset: Any,
        cx: float | None = None,
        cy: float | None = None,
        mask_radius: float | None = None,
        flip_y: bool = False,
        mask_radius_inner: float | None = None,
        scan_rotation: float = 0.0,
    ) -> COMAnalysis:
        """Centre of mass of each frame over a 2-D scan; results ``field``, ``magnitude``,
        ``divergence``, ``curl``, ``x``, ``y``.

        Parameters
        ----------
        dataset : DataSet
            A data set with a 2-D scan of 2-D frames.
        cx, cy : float, optional
            The reference centre (default: the frame centre, ``size / 2``).
        mask_radius : float, optional
            Leave out intensity farther than this from ``(cy, cx)``.
        flip_y : bool
            Flip the detector's y axis.
        mask_radius_inner : float, optional
            With ``mask_radius``: also leave out intensity closer than this (annular CoM).
        scan_rotation : float
            Degrees by which the shifts are rotated into the scan's axes (positive: clockwise).
        """
        check_com_dataset(dataset)
        parameters = _given(cx=cx, cy=cy, flip_y=flip_y, scan_rotation=scan_rotation)
        if mask_radius is not None:
            parameters["r"] = mask_radius
        if mask_radius_inner is not None:
            if mask_radius is None:
                raise InvalidParameterError(
                    "annular CoM needs both mask_radius and mask_radius_inner"
                )
            parameters["ri"] = mask_radius_inner
        return COMAnalysis(dataset=dataset, parameters=parameters)

    def create_disk_analysis(
        self,
        dataset: Any,
        cx: float | None = None,
        cy: float | None = None,
        r: float | None = None,
    ) -> DiskMaskAnalysis:
        """Integrate each frame over a disk; results ``intensity`` and ``intensity_log``.

        Parameters
        ----------
        dataset : DataSet
            A data set of 2-D frames.
        cx, cy : float, optional
            Centre (default: the frame centre).
        r : float, optional
            Radius (default: 0.3 of half the smaller frame side).
        """
        _sig2(dataset)
        return DiskMaskAnalysis(dataset=dataset, parameters=_given(cx=cx, cy=cy, r=r))

    def create_ring_analysis(
        self,
        dataset: Any,
        cx: float | None = None,
        cy: float | None = None,
        ri: float | None = None,
        ro: float | None = None,
    ) -> RingMaskAnalysis:
        """Integrate each frame over a ring; results ``intensity`` and ``intensity_log``.

        Parameters
        ----------
        dataset : DataSet
            A data set of 2-D frames.
        cx, cy : float, optional
            Centre (default: the frame centre).
        ri, ro : float, optional
            Inner and outer radius (default: ``0.8 * ro`` and half the smaller frame side).
        """
        _sig2(dataset)
        return RingMaskAnalysis(dataset=dataset, parameters=_given(cx=cx, cy=cy, ri=ri, ro=ro))

    def create_point_analysis(
        self, dataset: Any, x: int | None = None, y: int | None = None
    ) -> PointMaskAnalysis:
        """The pixel ``(y, x)`` of each frame; results ``intensity`` and ``intensity_log``.

        Parameters
        ----------
        dataset : DataSet
            A data set with at most two scan dimensions.
        x, y : int, optional
            The pixel (default: the frame centre).
        """
        check_point_dataset(dataset)
        return PointMaskAnalysis(dataset=dataset, parameters=_given(cx=x, cy=y))

    def create_sum_analysis(self, dataset: Any) -> SumAnalysis:
        """Sum of all frames; results ``intensity`` (log-scaled image) and ``intensity_lin``.

        Parameters
        ----------
        dataset : DataSet
            The data set.
        """
        return SumAnalysis(dataset=dataset, parameters={})

    def create_sd_analysis(self, dataset: Any) -> SDAnalysis:
        """Per-pixel standard deviation over all frames; results ``intensity`` (log-scaled
        image) and ``intensity_lin``.

        LiberTEM 0.16 has this analysis (``SDAnalysis``) in its web GUI only; here it is
        created like the others.

        Parameters
        ----------
        dataset : DataSet
            The data set.
        """
        return SDAnalysis(dataset=dataset, parameters={})

    def create_pick_analysis(
        self, dataset: Any, x: int, y: int | None = None, z: int | None = None
    ) -> PickFrameAnalysis:
        """One whole frame; results ``intensity`` (log-scaled image) and ``intensity_lin``.

        Parameters
        ----------
        dataset : DataSet
            The data set (1-D to 3-D scan).
        x, y, z : int
            The scan position: ``x`` for a 1-D scan, ``x`` and ``y`` for 2-D, all three for
            3-D.
        """
        analysis = PickFrameAnalysis(dataset=dataset, parameters=_given(x=x, y=y, z=z))
        analysis.get_origin()  # a wrong number of coordinates fails here, not in run()
        return analysis

    def create_radial_fourier_analysis(
        self,
        dataset: Any,
        cx: float | None = None,
        cy: float | None = None,
        ri: float | None = None,
        ro: float | None = None,
        n_bins: int | None = None,
        max_order: int | None = None,
        use_sparse: bool | str | None = None,
    ) -> RadialFourierAnalysis:
        """Angular Fourier coefficients of rings around a centre; results ``dominant_<b>``,
        ``absolute_<b>_<n>``, ``phase_<b>_<n>``, ``complex_<b>_<n>`` per bin ``b`` and order
        ``n``, and ``raw_results`` (complex, ``(n_bins, max_order + 1, *nav_shape)``).

        Parameters
        ----------
        dataset : DataSet
            A data set of 2-D frames.
        cx, cy : float, optional
            Centre (default: the frame centre, ``size / 2``).
        ri, ro : float, optional
            Inner and outer radius (default: 0 and a radius past every corner of the frame).
        n_bins : int, optional
            Number of radial bins of equal width (default 1).
        max_order : int, optional
            Highest angular order (default 24).
        use_sparse : bool or str, optional
            Sparse masks (default: chosen by mask stack size and bin area, as LiberTEM).
        """
        _sig2(dataset)
        given = _given(
            cx=cx, cy=cy, ri=ri, ro=ro, n_bins=n_bins, max_order=max_order, use_sparse=use_sparse
        )
        return RadialFourierAnalysis(dataset=dataset, parameters=given)

    def run(
        self,
        job: Analysis,
        roi: Any = None,
        progress: bool = False,
        corrections: Any = None,
    ) -> AnalysisResultSet:
        """Run an analysis from a ``create_*_analysis`` method in one pass.

        Parameters
        ----------
        job : Analysis
            The analysis.
        roi : numpy.ndarray of bool, optional
            Scan positions to process (default: the analysis' own, usually all).
        progress : bool
            Show a progress bar.
        corrections : CorrectionSet, optional
            Detector corrections applied to every frame (default: the data set's).

        Returns
        -------
        AnalysisResultSet
            The named results; ``.raw_results`` holds the UDF's results.
        """
        if roi is None:
            roi = job.get_roi()
        udf_results = self.run_udf(
            dataset=job.dataset,
            udf=job.get_udf(),
            roi=roi,
            progress=progress,
            corrections=corrections,
        )
        damage: Any = (
            True
            if roi is None
            else np.asarray(roi, dtype=bool).reshape(tuple(job.dataset.shape.nav))
        )
        return job.get_udf_results(udf_results, roi, damage=damage)
