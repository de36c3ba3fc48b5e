"""Streaming replicas: how far behind a replica is, and making one of the managed cluster.

A replica is *healthy* when it answers, is in recovery (a standby, not a promoted copy) and is
at most ``SMARTTREES_REPLICA_MAX_LAG_S`` behind the primary. Its lag is measured against the
primary's WAL position read just before: a replica that has replayed everything the primary had
written is 0 s behind however long ago the last change was; otherwise it is behind by the age of
the last transaction it replayed (the time since the primary's idle periods end is the standard
reading of ``pg_last_xact_replay_timestamp``, and errs on the late side, which takes a replica
out a little early rather than serving stale reads).

:func:`create_replica` makes a replica of the managed cluster with ``pg_basebackup -R`` as the
same unprivileged user the cluster runs as (:mod:`smarttrees.cluster`), in
``<data_dir>/replicas/<name>``.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from smarttrees.cluster import SUPERUSER, Cluster
from smarttrees.errors import ClusterError
from smarttrees.settings import Settings

PRIMARY_LSN_SQL = "SELECT pg_current_wal_lsn()::text"
# %(lsn)s is the primary's position read just before, or NULL when the primary cannot be asked
# (nothing newer can then be known: the replica counts as current).
REPLICA_STATE_SQL = """
SELECT pg_is_in_recovery(),
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN %(lsn)s::pg_lsn IS NULL OR pg_last_wal_replay_lsn() >= %(lsn)s::pg_lsn THEN 0.0
            ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8,
                          'infinity')
       END
"""
# What the primary needs to stream its WAL to replicas (the managed cluster starts at minimal).
REPLICATION_CONFIG = {"wal_level": "replica", "max_wal_senders": "10", "wal_keep_size": "1GB"}
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
READY_WAIT_S = 60.0


@dataclass(frozen=True)
class ReplicaState:
    """What one check of a replica found.

    Attributes
    ----------
    lag_s
        Seconds behind the primary (0 when it has replayed all the primary had); ``None`` when
        it could not be measured (see ``error``).
    error
        Why the replica cannot serve reads (unreachable, not in recovery), or ``None``.

    """

    lag_s: float | None
    error: str | None = None

    def healthy(self, max_lag_s: float) -> bool:
        """True when the replica answers, is a standby and is at most ``max_lag_s`` behind."""
        return self.error is None and self.lag_s is not None and self.lag_s <= max_lag_s


def redacted(url: str) -> str:
    """``url`` without its password, for logs and status documents."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def state_of(row: tuple[Any, ...] | None) -> ReplicaState:
    """The state a :data:`REPLICA_STATE_SQL` row describes."""
    if row is None or not row[0]:
        return ReplicaState(None, "not a replica (the server is not in recovery)")
    lag = float(row[1]) if row[1] is not None else None
    return ReplicaState(lag)


def primary_lsn(url: str, timeout_s: float = 2.0) -> str | None:
    """The primary's current WAL position, or ``None`` when it cannot be asked."""
    try:
        with psycopg.connect(url, connect_timeout=max(1, round(timeout_s)),
                             autocommit=True) as conn:
            row = conn.execute(PRIMARY_LSN_SQL).fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row else None


def check_replica(url: str, lsn: str | None, timeout_s: float = 2.0) -> ReplicaState:
    """Connect to the replica at ``url`` and measure its lag behind WAL position ``lsn``."""
    try:
        with psycopg.connect(url, connect_timeout=max(1, round(timeout_s)),
                             autocommit=True) as conn:
            row = conn.execute(REPLICA_STATE_SQL, {"lsn": lsn}).fetchone()
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return ReplicaState(None, f"unreachable: {first}")
    return state_of(row)


def read_url(primary_url: str, settings: Settings) -> str:
    """A healthy replica's URL for a long read (the analyst API), else ``primary_url``.

    The replicas are tried in random order, so several analysts spread over them.
    """
    urls = settings.replicas
    if not urls:
        return primary_url
    lsn = primary_lsn(primary_url)
    for url in random.sample(urls, len(urls)):
        if check_replica(url, lsn).healthy(settings.replica_max_lag_s):
            return url
    return primary_url


def wait_for_replay(url: str, lsn: str, wait_s: float = 30.0) -> bool:
    """Wait until the replica at ``url`` has replayed WAL position ``lsn``; False on time-out."""
    deadline = time.monotonic() + wait_s
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn]).fetchone()
            if row is None or row[0] is None or row[0]:  # None: not a replica, nothing to wait for
                return True
            time.sleep(0.05)
    return False


# -- replicas of the managed cluster ------------------------------------------------------------


def replica_folder(primary: Cluster, name: str) -> Path:
    """Where the managed replica ``name`` of ``primary`` lives."""
    if not NAME_PATTERN.match(name):
        raise ClusterError(
            f"replica name {name!r}: use up to 32 lower-case letters, digits, '-' or '_'"
        )
    return primary.folder / "replicas" / name


def managed_replica(primary: Cluster, name: str) -> Cluster:
    """The managed replica ``name`` of ``primary`` (made or not)."""
    return Cluster(replica_folder(primary, name), dbname=primary.dbname)


def managed_replicas(primary: Cluster) -> list[tuple[str, Cluster]]:
    """Every managed replica of ``primary`` that was made, by name."""
    root = primary.folder / "replicas"
    if not root.is_dir():
        return []
    return [(p.name, managed_replica(primary, p.name)) for p in sorted(root.iterdir())
            if (p / "pgdata" / "PG_VERSION").exists()]


def enable_replication(primary: Cluster) -> bool:
    """Make the running ``primary`` stream WAL; True when it had to be restarted for that.

    The managed cluster starts with ``wal_level = minimal`` (bulk loads write less WAL); a
    replica needs ``replica``, which takes a restart. Sessions of the primary end then.
    """
    with psycopg.connect(primary.url("postgres"), autocommit=True) as conn:
        level = str(conn.execute("SHOW wal_level").fetchone()[0])  # type: ignore[index]
        senders = int(conn.execute("SHOW max_wal_senders").fetchone()[0])  # type: ignore[index]
        if level != "minimal" and senders >= 2:
            return False
        for key, value in REPLICATION_CONFIG.items():
            # ALTER SYSTEM takes no bound parameters; the values are our constants above.
            conn.execute(f"ALTER SYSTEM SET {key} = '{value}'")
    primary.stop()
    primary.start()
    return True


def create_replica(primary: Cluster, name: str) -> Cluster:
    """Make and start a streaming replica of the managed ``primary`` named ``name``.

    ``pg_basebackup -R`` copies the primary and writes ``standby.signal`` and
    ``primary_conninfo``; the replica then runs like the primary's cluster (127.0.0.1 only,
    its own port, as the unprivileged server user when we are root).

    Raises
    ------
    ClusterError
        The name is not usable, the replica exists already, or pg_basebackup failed (its
        message is given, and the half-made folder removed).

    """
    replica = managed_replica(primary, name)
    if replica.initialised:
        raise ClusterError(f"replica {name!r} exists already ({replica.pgdata})")
    primary.start()
    enable_replication(primary)
    pg = primary._install()  # the replica must run the primary's major version
    replica.folder.mkdir(parents=True, exist_ok=True)
    replica._hand_over(replica.folder)
    try:
        replica._run([
            pg.program("pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
            "-U", SUPERUSER, "-D", str(replica.pgdata), "-R", "-X", "stream", "-c", "fast",
            "--no-password",
        ])
        replica.start()
    except ClusterError:
        replica.destroy()
        raise
    wait_until_streaming(replica)
    return replica


def wait_until_streaming(replica: Cluster, wait_s: float = READY_WAIT_S) -> None:
    """Return once ``replica`` accepts connections as a standby."""
    deadline = time.monotonic() + wait_s
    while True:
        state = check_replica(replica.url(), None)
        if state.error is None:
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"the replica in {replica.pgdata} is not serving: {state.error}")
        time.sleep(0.25)
