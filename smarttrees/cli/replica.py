"""``smarttrees db replica``: streaming replicas of the managed local PostGIS."""

from __future__ import annotations

import typer

from smarttrees.database import managed_cluster
from smarttrees.errors import ClusterError
from smarttrees.replication import (
    check_replica,
    create_replica,
    managed_replica,
    managed_replicas,
    primary_lsn,
)
from smarttrees.settings import get_settings

app = typer.Typer(
    help="Streaming replicas of the managed local PostGIS (reads for the server).",
    no_args_is_help=True,
)

NAME = typer.Argument("replica1", help="the replica's name (a folder under <data>/replicas)")


def _managed_only() -> None:
    if get_settings().database_url:
        raise ClusterError(
            "SMARTTREES_DATABASE_URL is set: replicas of an external server are made on its "
            "machines (pg_basebackup -R); list them in SMARTTREES_REPLICA_URLS"
        )


@app.command()
def create(name: str = NAME) -> None:
    """Make a replica with pg_basebackup and start it (the primary may restart once)."""
    _managed_only()
    replica = create_replica(managed_cluster(), name)
    typer.echo(f"replica {name!r} streaming: {replica.url()} (data in {replica.pgdata})")
    typer.echo(f"serve reads from it: export SMARTTREES_REPLICA_URLS={replica.url()}")


@app.command()
def start(name: str = NAME) -> None:
    """Start a replica made by `create`."""
    _managed_only()
    replica = managed_replica(managed_cluster(), name)
    if not replica.initialised:
        raise ClusterError(f"no replica {name!r}: `smarttrees db replica create {name}`")
    replica.start()
    typer.echo(replica.status())


@app.command()
def stop(name: str = NAME) -> None:
    """Stop a replica; its data stay and it catches up when started again."""
    _managed_only()
    managed_replica(managed_cluster(), name).stop()
    typer.echo("stopped")


@app.command("list")
def list_() -> None:
    """Each replica of the managed cluster: its URL, and how far behind the primary it is."""
    _managed_only()
    primary = managed_cluster()
    replicas = managed_replicas(primary)
    if not replicas:
        typer.echo("no replicas: `smarttrees db replica create`")
        return
    lsn = primary_lsn(primary.url()) if primary.is_running() else None
    for name, replica in replicas:
        if not replica.is_running():
            typer.echo(f"{name}: stopped ({replica.pgdata})")
            continue
        state = check_replica(replica.url(), lsn)
        said = state.error or f"{state.lag_s:.1f} s behind"
        typer.echo(f"{name}: {replica.url()} — {said}")
