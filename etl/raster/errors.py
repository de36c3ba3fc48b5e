"""The one error of the raster jobs: it names the file (or layer) and the problem."""

from __future__ import annotations

from pathlib import Path

from smarttrees.errors import SmartTreesError


class RasterError(SmartTreesError):
    """A raster job cannot run on this input; nothing was written.

    Parameters
    ----------
    source:
        The file (or layer, e.g. ``communes``) at fault.
    problem:
        What is wrong, in words a person can act on.

    """

    rule = "raster"

    def __init__(self, source: Path | str, problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        name = source.name if isinstance(source, Path) else str(source)
        super().__init__(f"{name}: {problem}")
