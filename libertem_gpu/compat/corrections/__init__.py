"""LiberTEM's ``libertem.corrections``: :class:`CorrectionSet` (empty only) and
:mod:`.coordinates`."""

from __future__ import annotations

from typing import Any

from libertem_gpu.errors import InvalidParameterError

__all__ = ["CorrectionSet"]


class CorrectionSet:
    """LiberTEM's dark-frame / gain-map / excluded-pixel corrections: only the empty set is
    supported here, so that scripts passing ``CorrectionSet()`` run.

    Raises
    ------
    InvalidParameterError
        For any correction given.
    """

    def __init__(
        self,
        dark: Any = None,
        gain: Any = None,
        excluded_pixels: Any = None,
        allow_empty: bool = False,
    ) -> None:
        if dark is not None or gain is not None or excluded_pixels is not None:
            raise InvalidParameterError(
                "corrections (dark frame, gain map, excluded pixels) are not supported; "
                "apply them in a UDF of your own"
            )

    @property
    def is_empty(self) -> bool:
        """Always True: no corrections."""
        return True

    def have_corrections(self) -> bool:
        """Always False: no corrections."""
        return False
