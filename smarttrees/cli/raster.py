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


Band = Annotated[int | None, typer.Option(
    "--band", "-b", help="Band to use (1-based); needed when the raster has several.")]


@app.command("zonal")
def zonal(
    raster: Annotated[Path, typer.Argument(help="A raster GDAL reads (one band, or --band).")],
    by: Annotated[str, typer.Option(
        "--by", help="Zones: commune, stand, or a polygon file (GeoJSON, GPKG…).")] = "commune",
    stats: Annotated[str | None, typer.Option(
        "--stats", help="Comma-separated: mean,min,max,sum,count,std,majority "
        "[default: mean,min,max,count].")] = None,
    band: Band = None,
    categorical: Annotated[bool | None, typer.Option(
        "--categorical/--continuous",
        help="Class shares per zone [default: an integer band with a colour table].")] = None,
    id_field: Annotated[str | None, typer.Option(
        "--id-field", help="Zone file: the field holding each zone's code.")] = None,
    csv_path: Annotated[Path | None, typer.Option(
        "--csv", help="CSV to write [default: RASTER_zonal_BY.csv here].")] = None,
) -> None:
    """Zonal statistics per commune, stand or polygon, into PostGIS and a CSV."""
    from etl.raster.inputs import open_raster
    from etl.raster.zonal import parse_stats, run_zonal, zones_from_database, zones_from_file
    from smarttrees.database import connect

    names = parse_stats(stats)
    with open_raster(raster, band) as source, connect() as conn:
        if by in ("commune", "stand"):
            zones = zones_from_database(conn, by)
        else:
            zones = zones_from_file(Path(by), id_field)
        target = csv_path or Path(f"{source.name}_zonal_{Path(by).stem}.csv")
        report = run_zonal(conn, source, zones, names, target, categorical)
    kind = "class shares and " if report.categorical else ""
    out.print(f"{raster}: {kind}{','.join(report.stats)} for {report.zones:,} zones "
              f"({zones.source}) → table smarttrees.{report.table}, {report.csv_path}",
              highlight=False)


@app.command("sample")
def sample(
    raster: Annotated[Path, typer.Argument(help="A raster GDAL reads (one band, or --band).")],
    column: Annotated[str | None, typer.Option(
        "--column", help="Name of the stored value [default: the raster's file name].")] = None,
    band: Band = None,
    layer: Annotated[str, typer.Option(
        "--layer", help="trees (each tree) or stands (a point on each stand).")] = "trees",
) -> None:
    """Store the raster's value at every tree (or stand): collection raster_samples."""
    from etl.raster.inputs import open_raster
    from etl.raster.sample import column_name
    from etl.raster.sample import sample as sample_layer
    from smarttrees.database import connect

    with open_raster(raster, band) as source, connect() as conn, _progress() as progress:
        name = column_name(column or source.name)
        report = sample_layer(conn, source, name, layer, progress)
    out.print(f"{raster}: {report.name} sampled at {report.features:,} {report.layer}, "
              f"{report.with_value:,} with a value (the others on nodata or outside)",
              highlight=False)


@app.command("add")
def add(
    raster: Annotated[Path, typer.Argument(help="A raster GDAL reads (a COG serves fastest).")],
    name: Annotated[str, typer.Option("--name", help="Collection name: a-z, 0-9, _.")],
    band: Band = None,
    title: Annotated[str | None, typer.Option(
        "--title", help="Title [default: file name].")] = None,
    colormap: Annotated[str | None, typer.Option(
        "--colormap", help="rio-tiler colormap (viridis, greens, terrain…), or 'file' for the "
        "band's own colours [default: file if it has some, else viridis].")] = None,
    value_min: Annotated[float | None, typer.Option(
        "--min", help="Value drawn with the first colour [default: 2nd percentile].")] = None,
    value_max: Annotated[float | None, typer.Option(
        "--max", help="Value drawn with the last colour [default: 98th percentile].")] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Replace a raster registered under the same name.")] = False,
) -> None:
    """Register a raster for serving: PNG tiles and an OGC API – Coverages collection.

    Writes a Web Mercator copy of the band into the data folder's ``rasters`` folder, from
    which the tiles are read.
    """
    from etl.raster.errors import RasterError
    from etl.raster.registry import add_raster
    from gis_api.collections import COLLECTIONS
    from smarttrees.database import connect

    if (value_min is None) != (value_max is None):
        raise RasterError("--min/--max", "give both, or neither")
    value_range = None if value_min is None or value_max is None else (value_min, value_max)
    with connect() as conn:
        record = add_raster(conn, raster, name, band=band, title=title, colormap=colormap,
                            value_range=value_range, replace=replace,
                            reserved={c.id for c in COLLECTIONS})
    stretch = ("" if record.value_min is None
               else f", {record.value_min:g}…{record.value_max:g} as {record.colormap}")
    out.print(f"{raster}: registered as {record.name} (band {record.band}, {record.crs}{stretch});"
              f" tiles /collections/{record.name}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}.png"
              " (restart the server to list it in /collections)", highlight=False)


@app.command("list")
def list_rasters() -> None:
    """The registered rasters."""
    from smarttrees.database import connect

    with connect() as conn:
        rows = conn.execute("SELECT name, band, crs, colormap, path FROM smarttrees.rasters "
                            "ORDER BY name").fetchall()
    for name, band, crs, colormap, path in rows:
        out.print(f"{name}: band {band}, {crs}, {colormap}, {path}", highlight=False)


@app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="The registered name.")]) -> None:
    """Unregister a raster and delete its Web Mercator copy (the file itself is left alone)."""
    from etl.raster.registry import remove_raster
    from smarttrees.database import connect

    with connect() as conn:
        remove_raster(conn, name)
    out.print(f"{name}: unregistered", highlight=False)
