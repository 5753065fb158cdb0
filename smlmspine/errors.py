"""The smlmspine error family.

Every error a user can cause derives from :class:`SmlmSpineError`. The CLI prints
these as one line on stderr and exits with status 2; anything else is a bug.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SmlmSpineError", "FormatError", "SchemaError", "ParameterError", "QualityWarning"]


class SmlmSpineError(Exception):
    """Base class of every error smlmspine raises on purpose."""


class FormatError(SmlmSpineError, ValueError):
    """A file cannot be read or written as the requested/detected format.

    The message always starts with the file name and, where known, names the line
    and the column at fault.

    Parameters
    ----------
    message : str
        What was expected and what was found; line breaks are joined into one line.
    path : str or pathlib.Path, optional
        The file at fault (kept as ``path``).
    line : int, optional
        Line number (1-based) in a text file.
    column : str, optional
        Name of the column at fault.

    Attributes
    ----------
    path : pathlib.Path or None
        The file, as given.
    line : int or None
        The line, as given.
    column : str or None
        The column, as given.
    reason : str
        The message without the location prefix.

    Examples
    --------
    >>> print(FormatError("missing column 'x [nm]'", path="locs.csv", line=1))
    locs.csv, line 1: missing column 'x [nm]'
    """

    def __init__(self, message: str, *, path: str | Path | None = None,
                 line: int | None = None, column: str | None = None):
        # One line, always: messages of foreign libraries (pyarrow, h5py) may hold line breaks.
        message = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
        self.path = None if path is None else Path(path)
        self.line = line
        self.column = column
        self.reason = message
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class SchemaError(SmlmSpineError, ValueError):
    """A table does not follow the canonical localization schema."""


class ParameterError(SmlmSpineError, ValueError):
    """A function or CLI argument has an invalid value."""


class QualityWarning(UserWarning):
    """The data cannot fully support a result (too sparse, inconsistent, ...)."""
