"""``smarttrees export``: a public layer to the files GIS programs open."""

# ruff: noqa: B008 - typer declares options as parameter defaults
from __future__ import annotations

from pathlib import Path

import typer


def register(root: typer.Typer) -> None:
    """Add ``export`` to the root command."""
    root.command("export")(export)


def _bbox(text: str | None) -> list[float] | None:
    from smarttrees.errors import ExportError

    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ExportError(f"--bbox {text!r}: four numbers separated by commas") from None


def export(
    layer: str = typer.Argument(..., help="A public layer: trees, stands, nurseries, communes…"),
    out: Path = typer.Option(..., "--out", "-o", help="The file to write."),
    fmt: str = typer.Option(None, "--format", "-f",
                            help="gpkg, fgb, shp, csv, geojson or xlsx (default: from --out)."),
    bbox: str = typer.Option(None, "--bbox", help="min_lon,min_lat,max_lon,max_lat"),
    crs: str = typer.Option(None, "--crs", help="Output CRS, e.g. EPSG:9213 (default WGS 84)."),
) -> None:
    """Export one public layer (public columns only) to a file GIS programs open."""
    from smarttrees.database import database_url
    from smarttrees.errors import ExportError
    from smarttrees.export import FORMATS, export_layer

    if fmt is None:
        by_suffix = {f.suffix: name for name, f in FORMATS.items()}
        fmt = by_suffix.get(out.suffix.lower())
        if fmt is None:
            raise ExportError(f"--format is needed: {out.name!r} has no known suffix")
    result = export_layer(database_url(), layer, fmt, out, bbox=_bbox(bbox), crs=crs)
    for note in result.warnings:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"{result.rows:,} {layer} written to {result.path}")
