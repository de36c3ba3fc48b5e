"""``smarttrees carbon``: recompute the carbon of every tree (see the README's "Carbon")."""

# ruff: noqa: B008 - typer declares options as parameter defaults
from __future__ import annotations

import typer

app = typer.Typer(help="Above-ground biomass and carbon of the trees.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    """Add the ``carbon`` group."""
    root.add_typer(app, name="carbon")


@app.command("refresh")
def refresh(
    force: bool = typer.Option(False, "--force", help="Recompute even if nothing changed."),
) -> None:
    """Refit the height models and recompute every tree if anything changed (or ``--force``).

    Loads and readers (``db.carbon()``) recompute only the trees that changed, with the models
    as fitted; this command refits them on today's trees. Run it after a settings change, or to
    have the figures ready, e.g. for the OGC API or a dashboard.
    """
    from smarttrees import carbon
    from smarttrees.database import connect

    with connect() as conn:
        carbon.write_parameters(conn)
        stale = force or not carbon.is_fresh(conn)
        seconds = carbon.refresh(conn, force=stale)
        total = conn.execute(
            "SELECT count(*), count(equation), coalesce(sum(carbon_kg), 0) / 1000 "
            "FROM smarttrees.tree_carbon"
        ).fetchone()
    trees, estimated, tonnes = total if total else (0, 0, 0.0)
    done = "already current" if seconds is None else f"recomputed in {seconds:.1f} s"
    typer.echo(f"carbon {done}: {estimated:,} of {trees:,} trees estimated, {tonnes:,.1f} t C")
