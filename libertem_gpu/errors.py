"""The exception hierarchy of libertem_gpu.

Every error the library raises on purpose derives from :class:`LiberTEMGPUError` and also from the
built-in exception that fits (``ValueError``, ``FileNotFoundError``, ...), so that callers may catch
either. Messages say what was expected, what was found, and how to fix it.
"""

from __future__ import annotations


class LiberTEMGPUError(Exception):
    """Base class of all errors raised by libertem_gpu."""


class DataSetError(LiberTEMGPUError, ValueError):
    """A data set's parameters or contents are not what was declared."""


class FileFormatError(DataSetError):
    """A file is malformed, truncated, or not of the format it was opened as."""


class MissingFileError(LiberTEMGPUError, FileNotFoundError):
    """A data file, or a companion file it needs, does not exist."""


class UnknownFormatError(DataSetError):
    """No registered format has the given name, or none recognises a file."""


class ShapeMismatchError(LiberTEMGPUError, ValueError):
    """An array (roi, mask, result) does not have the shape the data set requires."""


class InvalidParameterError(LiberTEMGPUError, ValueError):
    """A parameter of an analysis or helper has a value it does not accept (e.g. an inner radius
    larger than the outer one)."""


class UDFDefinitionError(LiberTEMGPUError, TypeError):
    """A UDF class is defined in a way the framework cannot run."""


class UnsupportedDTypeError(UDFDefinitionError):
    """An analysis cannot run on the data set's element type (e.g. a maximum of complex
    numbers); raised when the run is planned, before any data is read."""


class UDFResultError(LiberTEMGPUError, ValueError):
    """A UDF returned results that do not match its declared buffers."""


class BackendError(LiberTEMGPUError, RuntimeError):
    """A compute backend (numpy, cupy) or kernel is unknown or failed."""


class BackendUnavailableError(BackendError):
    """A backend was requested explicitly but cannot run on this machine."""


class ExecutorError(LiberTEMGPUError, RuntimeError):
    """An executor is unknown, closed, or lost its workers."""


class RunTimeoutError(LiberTEMGPUError, TimeoutError):
    """A run, read or task did not finish within its time limit."""
