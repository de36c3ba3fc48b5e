"""``smarttrees raster …``: surfaces from the inventory, zonal statistics, sampling, serving.

The work is done by :mod:`etl.raster`; this module parses options, draws progress on a
terminal and prints one line per result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

app = typer.Typer(help="Rasters: density and canopy surfaces, zonal statistics, sampling, serving.",
                  no_args_is_help=True)
out = Console(soft_wrap=True)


def register(root: typer.Typer) -> None:
    """Add the ``raster`` command group to the root command."""
    root.add_typer(app, name="raster")


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar on a terminal (stderr); nothing in CI or when piped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=console, transient=True,
                   disable=not console.is_terminal)
    tasks: dict[str, Any] = {}

    def update(step: str, done: int, total: int) -> None:
        if step not in tasks:
            tasks[step] = bar.add_task(step, total=total or None)
        bar.update(tasks[step], completed=done, total=total or None)

    with bar:
        yield update


Resolution = Annotated[float, typer.Option(
    "--resolution", "-r", help="Cell size in metres (10, 30 or 100).")]
Category = Annotated[list[str] | None, typer.Option(
    "--category", help="Only trees of this category (urban, scattered, plantation); repeatable.")]
Species = Annotated[list[str] | None, typer.Option(
    "--species", help="Only this species (id, scientific or Vietnamese name); repeatable.")]
OutFile = Annotated[Path, typer.Option("--out", "-o", help="The GeoTIFF (COG) to write.")]


def _surface(kind: str, resolution: float, category: list[str] | None,
             species: list[str] | None, out_file: Path) -> None:
    from etl.raster.density import TreeFilter, canopy_surface, density_surface
    from smarttrees.database import connect

    trees = TreeFilter(tuple(category or ()), tuple(species or ()))
    job = density_surface if kind == "density" else canopy_surface
    with connect() as conn, _progress() as progress:
        report = job(conn, resolution, out_file, trees, progress)
    line = (f"{report.path}: {kind} at {report.resolution:g} m, {report.width:,} × "
            f"{report.height:,} cells over the {report.territory}, {report.trees:,} trees")
    if report.outside:
        line += f" ({report.outside:,} outside the territory left out)"
    if kind == "canopy":
        line += f"; {report.crown_defaults_used:,} without a crown took their species' default"
    out.print(line, highlight=False)


@app.command("density")
def density(resolution: Resolution = 100.0, category: Category = None, species: Species = None,
            out_file: OutFile = Path("density.tif")) -> None:
    """Trees per hectare over the territory, as a Cloud-Optimised GeoTIFF in EPSG:9213."""
    _surface("density", resolution, category, species, out_file)


@app.command("canopy")
def canopy(resolution: Resolution = 100.0, category: Category = None, species: Species = None,
           out_file: OutFile = Path("canopy.tif")) -> None:
    """Canopy cover (% of each cell under crowns) over the territory, as a COG in EPSG:9213."""
    _surface("canopy", resolution, category, species, out_file)
