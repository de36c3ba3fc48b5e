"""``smarttrees load species`` and ``smarttrees species unmatched``: the species catalogue."""

# ruff: noqa: B008 - typer declares options as parameter defaults
from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="The species catalogue: what a survey's names resolve to.",
                  no_args_is_help=True)


def register(root: typer.Typer, load: typer.Typer) -> None:
    """Add ``species`` to the root command and ``species`` to ``load``."""
    root.add_typer(app, name="species")
    load.command("species")(load_species)


def load_species(
    file: Path = typer.Argument(..., help="Species file (CSV or XLSX).", readable=False),
    wood_densities: Path = typer.Option(
        None, "--wood-densities", readable=False,
        help="Global Wood Density Database table (CSV): fills missing wood densities with the "
             "species, else genus, else family mean."),
) -> None:
    """Merge a species file into the catalogue by scientific name, with history."""
    from etl.species import load_catalogue
    from smarttrees.cli.load import carbon_after_load

    typer.echo(load_catalogue(None, file, wood_densities=wood_densities).summary())
    carbon_after_load()  # wood densities feed the carbon of every tree of their species


@app.command()
def unmatched(
    file: Path = typer.Argument(..., help="A survey or inventory (CSV, XLSX, GIS file).",
                                readable=False),
    mapping: str = typer.Option(None, "--mapping", "-m",
                                help="Mapping that finds its species column (as load trees)."),
    column: str = typer.Option(None, "--column", help="The species column, by its header."),
    out: Path = typer.Option(None, "--csv",
                             help="Also write the unknown names as a species file to complete "
                                  "and load with `smarttrees load species`."),
) -> None:
    """List the species names a survey uses that the catalogue lacks, with the closest ones."""
    from etl.species import unmatched as find_unmatched
    from etl.species import write_starter_catalogue

    read, distinct, unknown = find_unmatched(None, file, mapping=mapping, column=column)
    typer.echo(f"{file.name}: column {read!r}: {distinct} distinct name(s), "
               f"{len(unknown)} not in the catalogue")
    for u in unknown:
        closest = f"closest: {', '.join(u.closest)}" if u.closest else "no close name"
        typer.echo(f"  {u.name} ({u.rows} row(s)): {closest}")
    if out is not None:
        write_starter_catalogue(out, unknown)
        typer.echo(f"species file to complete: {out}")
