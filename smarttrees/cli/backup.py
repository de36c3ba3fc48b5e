"""``smarttrees db backup|restore|verify|upgrade-cluster``: the data kept safe.

Backups that restore, checked against a manifest, and the managed cluster moved to a new
PostgreSQL major version without losing a row.
"""

# ruff: noqa: B008 - typer declares options as parameter defaults
from __future__ import annotations

from pathlib import Path

import typer

DEFAULT_DIR = "backups"


def register(db_app: typer.Typer) -> None:
    """Add the backup commands to ``smarttrees db``."""
    db_app.command("backup")(backup)
    db_app.command("restore")(restore)
    db_app.command("verify")(verify)
    db_app.command("upgrade-cluster")(upgrade_cluster)


def _default_out() -> Path:
    from smarttrees.settings import get_settings

    return get_settings().data_dir / DEFAULT_DIR


def backup(
    out: Path = typer.Option(None, "--out", help="Folder of backups (default: DATA_DIR/backups)."),
    jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="Parallel pg_dump workers."),
    keep: int = typer.Option(None, "--keep", min=1, help="Keep only the newest N backups."),
) -> None:
    """Back up the whole database while it keeps serving (pg_dump, with a manifest)."""
    from smarttrees import backup as backups
    from smarttrees.database import database_url

    made = backups.backup(database_url(), out or _default_out(), jobs=jobs, keep=keep)
    tables = made.manifest["tables"]
    rows = sum(t["rows"] for t in tables.values())
    size = sum(f["bytes"] for f in made.manifest["files"].values())
    typer.echo(f"backup {made.path}: {len(tables)} tables, {rows:,} rows, {size / 1e6:,.1f} MB")
    if made.manifest["contains_personal_data"]:
        typer.echo(
            "this backup holds personal data ("
            + ", ".join(made.manifest["personal_tables"])
            + "): keep it encrypted and readable only by the department (README: Backups)"
        )


def verify(path: Path = typer.Argument(..., help="A backup folder.")) -> None:
    """Check every file of a backup against its manifest."""
    from smarttrees import backup as backups

    found = backups.open_backup(path)
    typer.echo(f"{found.path.name}: {len(found.manifest['files'])} files match the manifest")


def restore(
    path: Path = typer.Argument(..., help="A backup folder made by `smarttrees db backup`."),
    force: bool = typer.Option(False, "--force", help="Replace a database that holds data."),
    jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="Parallel pg_restore workers."),
) -> None:
    """Restore a backup into the configured database, checked before it replaces anything."""
    from smarttrees import backup as backups
    from smarttrees.database import database_url

    found = backups.restore(path, database_url(), force=force, jobs=jobs)
    tables = found.manifest["tables"]
    typer.echo(
        f"restored {found.path.name}: {len(tables)} tables, "
        f"{sum(t['rows'] for t in tables.values()):,} rows, every row count and checksum "
        "matches the manifest"
    )


def upgrade_cluster() -> None:
    """Move the managed cluster to the installed PostgreSQL major version (pg_upgrade)."""
    from smarttrees.cluster_upgrade import upgrade_cluster as upgrade
    from smarttrees.database import managed_cluster
    from smarttrees.settings import get_settings

    if get_settings().database_url:
        typer.echo("SMARTTREES_DATABASE_URL is set: upgrade that server with its own tools.")
        return
    done = upgrade(managed_cluster())
    if done is None:
        typer.echo("the managed cluster already runs the installed PostgreSQL: nothing to do")
        return
    typer.echo(
        f"upgraded PostgreSQL {done.old_major} → {done.new_major}: {done.tables} tables, every "
        f"row count and checksum unchanged; the old folder is kept at {done.kept} "
        "(delete it when you are satisfied)"
    )
