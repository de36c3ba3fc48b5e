"""``smarttrees load territory`` and ``smarttrees territory``: the area a deployment covers."""

# ruff: noqa: B008 - typer declares options as parameter defaults
from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="The territory: a loaded boundary, else the units in force.",
                  no_args_is_help=True)


def register(root: typer.Typer, load: typer.Typer) -> None:
    """Add ``territory`` to the root command and ``territory`` to ``load``."""
    root.add_typer(app, name="territory")
    load.command("territory")(load_territory)


def load_territory(
    file: Path = typer.Argument(..., help="Polygons (GeoJSON, GPKG, SHP…) of the boundary.",
                                readable=False),
    name: str = typer.Option(None, "--name", help="Its name in messages (default: file name)."),
) -> None:
    """Make a boundary file the territory; it takes precedence over the units in force."""
    from etl.boundary import load_boundary

    territory = load_boundary(None, file, name=name)
    typer.echo(f"territory: {territory.describe()}")


@app.command()
def show() -> None:
    """Say what the territory is, or how to set one."""
    from smarttrees import territory
    from smarttrees.database import connect

    with connect() as conn:
        typer.echo(f"territory: {territory.current(conn).describe()}")


@app.command()
def clear() -> None:
    """Retire the loaded boundary: the administrative units in force are the territory again."""
    from smarttrees import territory
    from smarttrees.database import connect

    with connect() as conn:
        found = territory.clear_boundary(conn)
    typer.echo(f"territory: {found.describe()}" if found
               else f"no territory set now: {territory.HOW_TO_SET}")
