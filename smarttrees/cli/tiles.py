"""``smarttrees tiles …``: the vector tiles as one PMTiles archive, for static hosts and phones.

The work is done by :mod:`gis_api.tiles.archive`; this module parses options, draws progress
on a terminal and prints what was written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="Vector tiles: the PMTiles archive of an area.", no_args_is_help=True)
out = Console(soft_wrap=True)


def register(root: typer.Typer) -> None:
    """Add the ``tiles`` command group to the root command."""
    root.add_typer(app, name="tiles")


@contextmanager
def _progress() -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar of tiles rendered on a terminal (stderr); nothing when piped or in CI."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    bar = Progress(TextColumn("tiles"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, transient=True, disable=not console.is_terminal)
    task = bar.add_task("tiles", total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield update


def _size(n: int) -> str:
    """Bytes for a person: 41.5 MB (decimal units, as file managers show them)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    raise AssertionError("unreachable")


@app.command("export")
def export(
    out_file: Annotated[Path, typer.Option(
        "--out", "-o", help="The archive to write, e.g. province.pmtiles.")],
    minzoom: Annotated[int, typer.Option("--minzoom", help="Lowest zoom level.")] = 0,
    maxzoom: Annotated[int, typer.Option("--maxzoom", help="Highest zoom level.")] = 16,
    bbox: Annotated[str | None, typer.Option(
        "--bbox", help="west,south,east,north in degrees (default: the data's extent), "
        "e.g. a field team's area for an offline map.")] = None,
    connections: Annotated[int, typer.Option(
        "--connections", min=1, max=32,
        help="Database connections rendering at once.")] = 4,
) -> None:
    """Write the trees, stands and communes tiles of an area into one PMTiles archive.

    The tiles are those the server sends (all three layers in each tile); empty ones are left
    out. The archive is written beside --out and renamed into place when complete.
    """
    import asyncio

    from gis_api.tiles.archive import check_zooms, export_archive, parse_bbox
    from smarttrees.database import database_url
    from smarttrees.settings import get_settings

    check_zooms(minzoom, maxzoom)
    bounds = parse_bbox(bbox) if bbox is not None else None
    settings = get_settings()
    url = database_url(settings)
    with _progress() as progress:
        report = asyncio.run(export_archive(
            url, out_file, settings, minzoom=minzoom, maxzoom=maxzoom, bbox=bounds,
            connections=connections, progress=progress,
        ))
    west, south, east, north = report.bounds
    out.print(
        f"{report.path}: {_size(report.size)} ({report.size:,} bytes), {report.tiles:,} tiles, "
        f"zoom {report.minzoom}–{report.maxzoom}, bbox {west:.5f},{south:.5f},{east:.5f},"
        f"{north:.5f}, trees version {report.version}, in {report.seconds:.1f} s",
        highlight=False,
    )
