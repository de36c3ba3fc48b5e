"""``smarttrees load``: tree surveys, nurseries, seedling lots, plantation stands, admin units."""

# ruff: noqa: B008 - typer declares options as parameter defaults
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

# File arguments are not checked by click (readable=False): the loaders refuse an unreadable
# file in the one-line form of every other failure (smarttrees.cli.failures).
app = typer.Typer(help="Load files into the database: all or nothing, every refusal explained.",
                  no_args_is_help=True)


def register(root: typer.Typer) -> None:
    """Add the ``load`` command group to the root command."""
    root.add_typer(app, name="load")


def _progress() -> tuple[Any, Callable[[str, int, int], None]]:
    """A rich progress bar on a terminal; nothing in CI or when piped."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TimeElapsedColumn(), console=console, transient=True,
                   disable=not console.is_terminal)
    tasks: dict[str, Any] = {}

    def update(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bar.add_task(phase, total=total or None)
        bar.update(tasks[phase], completed=done)

    return bar, update


@app.command("trees")
def trees(
    files: list[Path] = typer.Argument(
        ..., help="Survey files: CSV, XLSX, GeoJSON, GPKG, SHP, FGB.", readable=False),
    mapping: str = typer.Option(None, "--mapping", "-m",
                                help="Preset name (vi_field_survey, en_survey) or a mapping file."),
    crs: str = typer.Option(None, "--crs",
                            help="CRS of the coordinates: EPSG code, wgs84, vn2000-thai-nguyen, "
                                 "vn2000-tm3-106-30, vn2000-utm48, utm48, utm49…"),
    encoding: str = typer.Option(None, "--encoding",
                                 help="Text encoding of CSV files (utf-8, cp1258, tcvn3, vni); "
                                      "detected when omitted."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check and report; write nothing."),
    strict: bool = typer.Option(False, "--strict", help="Refuse the whole run if any row is bad."),
    rejects: Path = typer.Option(None, "--rejects",
                                 help="Where to write refused rows (default: FILE.rejects.csv; a "
                                      "folder when loading several files)."),
    source_name: str = typer.Option(None, "--source-name",
                                    help="Source recorded in the history (default: file name)."),
) -> None:
    """Load tree surveys into the tree inventory; tree_code is the key."""
    from etl import csv_prefetch, prefetch

    # A workbook is read in Rust while the loader's modules are imported (etl.xlsx_prefetch),
    # a CSV read and split into lines (etl.csv_prefetch).
    prefetch.start(files)
    from etl.trees import LoadOptions, load_trees

    bar, update = _progress()
    options = LoadOptions(mapping=mapping, crs=crs, encoding=encoding, dry_run=dry_run,
                          strict=strict, rejects=rejects, source_name=source_name)
    with bar:
        try:
            result = load_trees(None, files, options, update)
        finally:
            csv_prefetch.release()         # a read not taken (a refused file) is let go
    for f in result.files:
        typer.echo(f"{f.path.name}: {f.rows} rows ({f.source_crs}): inserted {f.inserted}, "
                   f"updated {f.updated}, unchanged {f.unchanged}, refused {f.refused}")
        if f.left_out:
            typer.echo(f"  left out by the mapping's skip rule: {f.left_out} rows")
        if f.all_outside:
            typer.echo(f"  {f.all_outside}")
        if f.rejects_path:
            typer.echo(f"  refused rows and reasons: {f.rejects_path}")
    if result.written and not dry_run:
        carbon_after_load()
    if dry_run:
        typer.echo("dry run: nothing written")
    elif strict and result.total("refused"):
        typer.echo(f"strict: {result.total('refused')} bad row(s), nothing written", err=True)
        raise typer.Exit(1)


def carbon_after_load() -> None:
    """Bring the carbon figures up to date with what the load committed (see the README)."""
    from smarttrees import carbon

    line = carbon.refresh_after_load()
    if line:
        typer.echo(line)


def _seed_command(kind: str) -> Callable[..., None]:
    def command(
        file: Path = typer.Argument(..., help="Input file.", readable=False),
        crs: str = typer.Option(None, "--crs", help="CRS when the file does not declare one."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Check and report; write nothing."),
        strict: bool = typer.Option(False, "--strict", help="Refuse all if any row is bad."),
        rejects: Path = typer.Option(None, "--rejects", help="Where to write refused rows."),
    ) -> None:
        from etl import seed

        result = seed.load(kind, None, file, crs=crs, dry_run=dry_run, strict=strict,
                           rejects=rejects)
        typer.echo(result.summary())
        if strict and result.refused:
            raise typer.Exit(1)

    command.__doc__ = f"Load {kind.replace('_', ' ')} (same checks and report as trees)."
    return command


app.command("nurseries")(_seed_command("nurseries"))
app.command("lots")(_seed_command("lots"))
app.command("stands")(_seed_command("stands"))


@app.command("admin")
def admin(
    file: Path = typer.Argument(..., help="Polygons (GeoJSON, GPKG, SHP) of one level.",
                                readable=False),
    level: str = typer.Option(..., "--level", help="province, district or commune."),
    valid_from: dt.datetime = typer.Option(..., "--valid-from", formats=["%Y-%m-%d"],
                                           help="Date the units came into force."),
    code_field: str = typer.Option(None, "--code-field", help="Column of the unit code."),
    name_field: str = typer.Option(None, "--name-field", help="Column of the unit name."),
) -> None:
    """Load a version of administrative units; the previous version is closed, not deleted."""
    from etl.admin import load_admin

    result = load_admin(None, file, level=level, valid_from=valid_from.date(),
                        code_field=code_field, name_field=name_field)
    typer.echo(result.summary())
    carbon_after_load()  # trees moved to their new communes: the per-commune carbon follows
