"""Errors of the loaders: each names the file, and where it can the row and the field."""

from __future__ import annotations

from pathlib import Path

from smarttrees.errors import SmartTreesError


class InputError(SmartTreesError):
    """An input file cannot be loaded at all; nothing was written.

    Parameters
    ----------
    path:
        The file at fault.
    problem:
        What is wrong, in words a person can act on.
    row:
        1-based row of the file (the header is row 1), when one row is at fault.
    field:
        The column (as the file names it), when one column is at fault.

    """

    rule = "bad_input"

    def __init__(
        self, path: Path | str, problem: str, *, row: int | None = None, field: str | None = None
    ) -> None:
        self.path = Path(path)
        self.problem = problem
        self.row = row
        self.field = field
        where = [self.path.name]
        if row is not None:
            where.append(f"row {row:,}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {problem}")


class MappingError(SmartTreesError):
    """A column-mapping file is malformed."""

    rule = "bad_mapping"
