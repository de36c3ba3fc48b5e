"""``smarttrees db``: the managed local PostGIS and the schema."""

from __future__ import annotations

import typer

from smarttrees import schema
from smarttrees.cli import replica
from smarttrees.database import database_url, managed_cluster
from smarttrees.settings import get_settings

app = typer.Typer(
    help="The database: the managed local PostGIS and the schema.", no_args_is_help=True
)
app.add_typer(replica.app, name="replica")


def _refuse_when_external(action: str) -> bool:
    settings = get_settings()
    if settings.database_url:
        typer.echo(f"SMARTTREES_DATABASE_URL is set: nothing local to {action}.")
        return True
    return False


@app.command()
def start() -> None:
    """Start the local PostGIS (initialising it on first use); a no-op when it runs."""
    if _refuse_when_external("start"):
        return
    cluster = managed_cluster()
    cluster.start()
    typer.echo(cluster.status())


@app.command()
def stop() -> None:
    """Stop the local PostGIS; the data stay."""
    if _refuse_when_external("stop"):
        return
    managed_cluster().stop()
    typer.echo("stopped")


@app.command()
def status() -> None:
    """Say where the database is and whether it runs."""
    settings = get_settings()
    if settings.database_url:
        typer.echo("external server (SMARTTREES_DATABASE_URL)")
        return
    typer.echo(managed_cluster().status())
    typer.echo(f"data folder: {settings.data_dir.resolve()} ({settings.data_dir_origin})")


@app.command()
def url() -> None:
    """Print the database URL (starting the local PostGIS if needed)."""
    typer.echo(database_url())


@app.command()
def upgrade() -> None:
    """Apply pending schema migrations; running it twice changes nothing."""
    from etl import bulk
    from etl.species import load_species
    from smarttrees.database import connect

    url_ = database_url()
    applied = schema.upgrade(url_)
    if applied:
        typer.echo(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        typer.echo("schema up to date")
    with connect(url_) as conn:
        typer.echo(f"species catalogue: {load_species(conn)} species")
        unbuilt = bulk.deferred(conn)
    if unbuilt:
        # A first load killed after its commit left indexes that only speed reads unbuilt;
        # the maintenance command builds them too, not only the next load.
        typer.echo(f"indexes a first load left unbuilt: {bulk.build_deferred(url_)} built")


@app.command("pgbouncer-config")
def pgbouncer_config(
    port: int = typer.Option(6432, help="the port PgBouncer listens on (127.0.0.1)"),
    pool_size: int = typer.Option(20, help="server connections PgBouncer keeps per database"),
) -> None:
    """Print a pgbouncer.ini for this database in transaction mode (README: PgBouncer)."""
    from smarttrees.pooler import pgbouncer_ini

    settings = get_settings()
    typer.echo(pgbouncer_ini(database_url(), listen_port=port, pool_size=pool_size,
                             statement_timeout_ms=settings.statement_timeout_ms), nl=False)


@app.command("partition-trees")
def partition_trees() -> None:
    """Partition the trees by province (the national layout; README: Scale). One transaction."""
    from smarttrees.database import connect
    from smarttrees.partitioning import partition_trees as partition

    with connect(database_url()) as conn:
        report = partition(conn)
    for name, rows in report.rows.items():
        typer.echo(f"{name}: {rows:,} trees")
    typer.echo(f"smarttrees.trees is partitioned by province: {report.total:,} trees in "
               f"{len(report.rows)} partitions")
