"""The managed local PostgreSQL + PostGIS cluster: the embedded default.

With no ``SMARTTREES_DATABASE_URL``, SmartTrees owns a private cluster in ``<data_dir>/pgdata``,
listening on 127.0.0.1 only, on a port derived from the folder's path so that two project folders
get two clusters. PostgreSQL refuses to run as root, so when we are root the cluster is created
and run as the unprivileged ``postgres`` user (or ``nobody``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from smarttrees.errors import ClusterError, MissingSoftwareError

SUPERUSER = "smarttrees"
START_WAIT = 30.0   # seconds `start` waits for a crashed cluster's processes to go
# What the log says when the processes of a crashed server still hold its data folder.
STILL_IN_USE = ("pre-existing shared memory block", "lock file", "already in use",
                "is another postmaster")
INSTALL_HINT = (
    "install PostgreSQL and PostGIS, e.g. on Debian/Ubuntu: "
    "sudo apt-get install postgresql postgresql-15-postgis-3 (any matching major version works)"
)

# Tuned for one machine loading a province: bulk loads, few connections, local only.
SERVER_CONFIG = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "max_connections": "100",
    "shared_buffers": "512MB",
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "4GB",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    # synchronous_commit stays on: the API acknowledges writes. A bulk load opts out for its
    # own transaction (etl.trees), which a crash rolls back whole.
    "jit": "off",
    "logging_collector": "off",
}


@dataclass(frozen=True)
class PgInstall:
    """Where the PostgreSQL programs are and which major version they are."""

    bindir: Path
    major: int

    def program(self, name: str) -> str:
        """Absolute path of one PostgreSQL program."""
        return str(self.bindir / name)


def find_postgres(major: int | None = None) -> PgInstall:
    """Find the PostgreSQL server programs, preferring the newest (or the given) major version."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    on_path = shutil.which("pg_config")
    if on_path:
        bindir = subprocess.run(
            [on_path, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if bindir and (Path(bindir) / "postgres").exists():
            candidates.append(Path(bindir) / "postgres")
    for postgres in candidates:
        version = _major_version(postgres)
        if version is not None and (major is None or version == major):
            return PgInstall(postgres.parent, version)
    wanted = f"PostgreSQL {major}" if major else "the PostgreSQL server"
    raise MissingSoftwareError(f"{wanted} is not installed: {INSTALL_HINT}")


def _major_version(postgres: Path) -> int | None:
    out = subprocess.run([str(postgres), "--version"], capture_output=True, text=True, check=False)
    try:
        return int(out.stdout.split()[-1].split(".")[0])
    except (IndexError, ValueError):
        return None


def check_postgis(pg: PgInstall) -> None:
    """Raise a clear error when the PostGIS extension is not installed for this PostgreSQL."""
    sharedir = subprocess.run(
        [pg.program("pg_config"), "--sharedir"], capture_output=True, text=True, check=False
    ).stdout.strip() or f"/usr/share/postgresql/{pg.major}"
    if not (Path(sharedir) / "extension" / "postgis.control").exists():
        raise MissingSoftwareError(
            f"PostGIS is not installed for PostgreSQL {pg.major}: "
            f"sudo apt-get install postgresql-{pg.major}-postgis-3"
        )


def derived_port(folder: Path) -> int:
    """A stable port in 15432–17431 chosen from the folder's absolute path."""
    return 15432 + zlib.crc32(str(folder.resolve()).encode()) % 2000


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _commit_synchronously(conn: object) -> None:
    """Undo the ``synchronous_commit = off`` that earlier versions wrote into a cluster."""
    import psycopg

    assert isinstance(conn, psycopg.Connection)
    row = conn.execute("SELECT setting, sourcefile FROM pg_settings "
                       "WHERE name = 'synchronous_commit'").fetchone()
    if row and row[0] == "off" and str(row[1] or "").endswith("postgresql.auto.conf"):
        conn.execute("ALTER SYSTEM RESET synchronous_commit")
        conn.execute("SELECT pg_reload_conf()")


class Cluster:
    """A private PostgreSQL cluster living in ``folder/pgdata``.

    Parameters
    ----------
    folder:
        The local state folder (``Settings.data_dir``).
    port:
        TCP port; ``None`` derives one from the folder's path.
    dbname:
        The database created (with PostGIS) on first start.
    extra_config:
        Further ``postgresql.conf`` settings, e.g. ``{"fsync": "off"}`` for a test cluster.
    origin:
        Why this folder (e.g. ``project folder /x``), said when a new cluster is initialised.

    """

    def __init__(
        self,
        folder: Path,
        port: int | None = None,
        dbname: str = "smarttrees",
        extra_config: dict[str, str] | None = None,
        origin: str | None = None,
    ) -> None:
        self.folder = folder.resolve()
        self.origin = origin
        self.pgdata = self.folder / "pgdata"
        self.logfile = self.folder / "postgres.log"
        self.dbname = dbname
        self._port = port
        self._extra_config = extra_config or {}

    # -- facts --------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the cluster listens (or will listen) on."""
        if self._port is not None:
            return self._port
        recorded = self.folder / "port"
        if recorded.exists():
            return int(recorded.read_text().strip())
        return derived_port(self.folder)

    def url(self, dbname: str | None = None) -> str:
        """Libpq URL of a database in this cluster."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname or self.dbname}"

    @property
    def initialised(self) -> bool:
        """True when ``initdb`` has run in the data folder."""
        return (self.pgdata / "PG_VERSION").exists()

    @property
    def is_standby(self) -> bool:
        """True for a streaming replica (``standby.signal``, see :mod:`smarttrees.replication`)."""
        return (self.pgdata / "standby.signal").exists()

    def is_running(self) -> bool:
        """True when the cluster's postmaster is alive."""
        if not self.initialised:
            return False
        pg = self._install()
        result = self._run([pg.program("pg_ctl"), "-D", str(self.pgdata), "status"], check=False)
        return result.returncode == 0

    def status(self) -> str:
        """One line for a person: where the cluster is and whether it runs."""
        if not self.initialised:
            return f"not initialised ({self.pgdata})"
        state = "running" if self.is_running() else "stopped"
        return f"{state}: {self.url()} (data in {self.pgdata})"

    # -- actions ------------------------------------------------------------------------------

    def start(self, wait: float = START_WAIT) -> None:
        """Initialise if needed, start if not running, and make sure the database has PostGIS.

        After a crash the old server's processes may hold the data folder for a few seconds:
        the start is retried until they are gone, for at most ``wait`` seconds, and the call
        returns once the server accepts connections.
        """
        if not self.initialised:
            self._initdb()
        pg = self._install()
        check_postgis(pg)
        deadline = time.monotonic() + wait
        while True:
            if not self.is_running():
                result = self._start_once(pg)
                if result is not None:
                    if time.monotonic() < deadline and self._held_by_old_processes():
                        time.sleep(0.5)
                        continue
                    raise ClusterError(
                        f"PostgreSQL did not start (data in {self.pgdata}); last lines of "
                        f"{self.logfile}:\n{self._log_tail()}"
                    )
            if self._accepts_connections():
                break
            if time.monotonic() >= deadline:
                raise ClusterError(
                    f"PostgreSQL runs but accepts no connection after {wait:.0f} s (data in "
                    f"{self.pgdata}); last lines of {self.logfile}:\n{self._log_tail()}"
                )
            time.sleep(0.25)
        if not self.is_standby:  # a replica's databases come from its primary, read-only
            self._create_database()

    def _start_once(self, pg: PgInstall) -> str | None:
        """Run ``pg_ctl start``; ``None`` when the server started, else pg_ctl's complaint."""
        self._remove_stale_pid()
        port = self._free_port()
        result = self._run(
            [
                pg.program("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.logfile),
                "-w", "-t", "60", "-o", f"-p {port}", "start",
            ],
            check=False,
        )
        return None if result.returncode == 0 else (result.stderr or result.stdout)

    def _held_by_old_processes(self) -> bool:
        """True when the last start failed because a crashed server's processes remain."""
        tail = self._log_tail(5)
        return any(sign in tail for sign in STILL_IN_USE)

    def _accepts_connections(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=3):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """Stop the cluster if it runs (fast shutdown: sessions end, data stay)."""
        if self.is_running():
            pg = self._install()
            self._run([pg.program("pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"])

    def destroy(self) -> None:
        """Stop the cluster and delete its data folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------------

    def _install(self) -> PgInstall:
        """The PostgreSQL install matching the data folder's version."""
        if not self.initialised:
            return find_postgres()
        major = int((self.pgdata / "PG_VERSION").read_text().strip().split(".")[0])
        try:
            return find_postgres(major)
        except MissingSoftwareError as exc:
            raise ClusterError(
                f"{self.pgdata} was made by PostgreSQL {major}, which is not installed. "
                f"Install postgresql-{major}, or move that folder away to start afresh "
                f"(its data will not be read by another major version)."
            ) from exc

    def _initdb(self) -> None:
        pg = find_postgres()
        check_postgis(pg)
        # Never silently: a new, empty database where one was expected is a surprise.
        why = f" ({self.origin})" if self.origin else ""
        print(f"smarttrees: initialising a new local database in {self.folder}{why}",
              file=sys.stderr)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._hand_over(self.folder)
        self._run(
            [
                pg.program("initdb"), "-D", str(self.pgdata), "-U", SUPERUSER, "--auth=trust",
                "-E", "UTF8", "--locale=C.UTF-8",
            ]
        )
        settings = {**SERVER_CONFIG, **self._extra_config}
        with (self.pgdata / "postgresql.auto.conf").open("a") as conf:
            conf.write("# written by smarttrees.cluster\n")
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    def _free_port(self) -> int:
        """The recorded or derived port, or the next free one when something else holds it."""
        port = self.port
        for candidate in range(port, port + 200):
            if port_is_free(candidate):
                if candidate != port or not (self.folder / "port").exists():
                    (self.folder / "port").write_text(f"{candidate}\n")
                return candidate
        raise ClusterError(f"no free TCP port in {port}-{port + 199} for the local PostgreSQL")

    def _remove_stale_pid(self) -> None:
        """Remove a postmaster.pid left by a crash, so that pg_ctl can start afresh."""
        pidfile = self.pgdata / "postmaster.pid"
        if not pidfile.exists():
            return
        try:
            pid = int(pidfile.read_text().splitlines()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            pidfile.unlink(missing_ok=True)
        except PermissionError:
            pass  # alive and someone else's: pg_ctl will explain

    def _create_database(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", [self.dbname]
                ).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{self.dbname}"')
                _commit_synchronously(conn)
            with psycopg.connect(self.url(), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
                conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        except psycopg.Error as exc:
            raise ClusterError(f"cannot prepare database {self.dbname!r}: {exc}") from exc

    def _log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    # -- running as an unprivileged user when we are root -----------------------------------

    @staticmethod
    def _server_user() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                return pwd.getpwnam(name)
        raise ClusterError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL")

    def _hand_over(self, folder: Path) -> None:
        """As root, give the folder to the server user and check it can reach it."""
        user = self._server_user()
        if user is None:
            return
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
        for parent in folder.parents:
            if not os.stat(parent).st_mode & 0o001:
                raise ClusterError(
                    f"PostgreSQL runs as {user.pw_name!r} (not root) and cannot enter {parent}; "
                    f"choose SMARTTREES_DATA_DIR elsewhere or `chmod o+x {parent}`"
                )

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        user = self._server_user()
        demote: Callable[[], None] | None = None
        env = dict(os.environ, LC_ALL="C.UTF-8")
        if user is not None:
            uid, gid = user.pw_uid, user.pw_gid

            def demote() -> None:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)

            env["HOME"] = user.pw_dir
        result = subprocess.run(
            args, capture_output=True, text=True, check=False, preexec_fn=demote, env=env,
            cwd="/",
        )
        if check and result.returncode != 0:
            raise ClusterError(f"{Path(args[0]).name} failed: {result.stderr.strip()}")
        return result
