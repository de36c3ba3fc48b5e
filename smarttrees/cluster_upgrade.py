"""Move a managed data folder made by an older PostgreSQL major version to the installed one.

``pg_upgrade`` (copy mode) writes a new cluster beside the old one; the new one takes the name
``pgdata`` only after it started and every table's row count and checksum equal the old
cluster's. The old folder is kept as ``pgdata.pg<old major>`` until a person deletes it, so an
upgrade that goes wrong can always be undone by moving the folders back.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import psycopg

from smarttrees.backup import TableFacts, table_facts
from smarttrees.cluster import SUPERUSER, Cluster, PgInstall, check_postgis, find_postgres
from smarttrees.errors import ClusterError, MissingSoftwareError


@dataclass(frozen=True)
class Upgrade:
    """What an upgrade did."""

    old_major: int
    new_major: int
    kept: Path  # the old data folder, kept for a person to delete
    tables: int


def data_major(cluster: Cluster) -> int:
    """The PostgreSQL major version that made the cluster's data folder."""
    return int((cluster.pgdata / "PG_VERSION").read_text().strip().split(".")[0])


def upgrade_cluster(cluster: Cluster) -> Upgrade | None:
    """Upgrade ``cluster`` to the newest installed PostgreSQL; ``None`` when it already runs it.

    Raises
    ------
    ClusterError
        The old or the new PostgreSQL (or its PostGIS) is missing, pg_upgrade refused, or the
        new cluster's data differ from the old; the old folder is then back in place.

    """
    if not cluster.initialised:
        raise ClusterError(f"no cluster to upgrade in {cluster.pgdata}")
    new = find_postgres()
    old_major = data_major(cluster)
    if old_major == new.major:
        return None
    if old_major > new.major:
        raise ClusterError(
            f"{cluster.pgdata} was made by PostgreSQL {old_major}, newer than the installed "
            f"{new.major}: install postgresql-{old_major} instead"
        )
    old = _old_install(old_major)
    check_postgis(new)
    before = _facts(cluster)  # starts the old server with its own programs, then stops it
    cluster.stop()
    staging = Cluster(cluster.folder / f"upgrade-to-{new.major}", dbname=cluster.dbname)
    shutil.rmtree(staging.folder, ignore_errors=True)
    staging._initdb()  # the same initdb options and settings as a new managed cluster
    _pg_upgrade(cluster, old, staging, new)
    kept = cluster.folder / f"pgdata.pg{old_major}"
    cluster.pgdata.rename(kept)
    (staging.pgdata).rename(cluster.pgdata)
    try:
        after = _facts(cluster)
        if after != before:
            wrong = sorted(k for k in before if before[k] != after.get(k))
            raise ClusterError(
                f"the upgraded cluster differs from the old one in {', '.join(wrong[:5])}"
            )
    except BaseException:
        cluster.stop()
        shutil.rmtree(cluster.pgdata, ignore_errors=True)
        kept.rename(cluster.pgdata)
        raise
    finally:
        shutil.rmtree(staging.folder, ignore_errors=True)
    return Upgrade(old_major, new.major, kept, len(after))


def _old_install(major: int) -> PgInstall:
    try:
        return find_postgres(major)
    except MissingSoftwareError:
        raise ClusterError(
            f"the data folder was made by PostgreSQL {major}, whose programs pg_upgrade needs: "
            f"install postgresql-{major} and postgresql-{major}-postgis-3 (Debian keeps them "
            "installable beside the new version), then run this again"
        ) from None


def _facts(cluster: Cluster) -> dict[str, TableFacts]:
    cluster.start()
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return table_facts(conn)


def _pg_upgrade(old_cluster: Cluster, old: PgInstall, staging: Cluster, new: PgInstall) -> None:
    result = staging._run(  # as the server's user, like every other PostgreSQL program here
        [
            new.program("pg_upgrade"),
            f"--old-bindir={old.bindir}", f"--new-bindir={new.bindir}",
            f"--old-datadir={old_cluster.pgdata}", f"--new-datadir={staging.pgdata}",
            f"--username={SUPERUSER}", f"--old-port={old_cluster.port}",
            f"--new-port={staging.port}",
        ],
        check=False,
    )
    if result.returncode != 0:
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        raise ClusterError(
            "pg_upgrade refused; the old cluster is untouched: "
            + (lines[-1] if lines else result.stderr.strip())
        )
