"""No command ever ends in a traceback: each failure is one line and a non-zero exit code.

The real command runs in a subprocess against the test's database (or none); the database is
checked to hold what it held before.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from etl.trees import load_trees
from tests.fixtures.cli import SMARTTREES, Outcome, cli_env, run_cli, without_privileges
from tests.fixtures.survey_writer import make_survey, write_survey

UNREACHABLE = "postgresql://x@127.0.0.1:1/x"


def stored(db_url: str) -> tuple[int, int]:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM smarttrees.trees), "
                           "(SELECT count(*) FROM smarttrees.tree_history)").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


@pytest.fixture
def loaded(db_url: str, tmp_path: Path) -> tuple[int, int]:
    load_trees(db_url, [write_survey(make_survey(10, prefix="OLD", start=8000), tmp_path / "old.csv")])
    return stored(db_url)


@pytest.fixture
def survey(tmp_path: Path) -> Path:
    """A survey of 20 trees, one of them refused (so that a rejects file is written)."""
    frame = make_survey(20).astype(object)
    frame.loc[3, "Tên cây"] = "Cây lạ"
    return write_survey(frame, tmp_path / "survey.csv")


def one_line(outcome: Outcome, code: int) -> str:
    """The one stderr line of a failed command, after checking its code and the absent traceback."""
    assert "Traceback" not in outcome.stderr + outcome.stdout, outcome.stderr
    assert outcome.code == code, outcome.stderr
    assert len(outcome.error_lines) == 1, outcome.stderr
    return outcome.error_lines[0]


@pytest.mark.parametrize("command", [["load", "trees", "{survey}"], ["db", "upgrade"],
                                     ["users", "list"], ["generate", "--scale", "small"]])
def test_unreachable_database(survey: Path, command: list[str]) -> None:
    args = [a.format(survey=survey) for a in command]
    outcome = run_cli(*args, env=cli_env(SMARTTREES_DATABASE_URL=UNREACHABLE))
    line = one_line(outcome, 3)
    assert line.startswith("error: cannot reach the database: connection failed:"), line
    assert "Connection refused" in line


@dataclass
class BlockedLoad:
    """A load waiting on a lock the test holds on the trees."""

    proc: subprocess.Popen[bytes]
    backend: int                        # the load's server process
    holder: psycopg.Connection

    def finish(self) -> Outcome:
        """The lock released, the load's end."""
        self.holder.rollback()
        out, err = self.proc.communicate(timeout=60)
        return Outcome(self.proc.returncode, out.decode(), err.decode(), 0)


@pytest.fixture
def blocked_load(db_url: str, survey: Path) -> Iterator[BlockedLoad]:
    """A load waiting on a lock the test holds on the trees."""
    holder = psycopg.connect(db_url)
    holder.execute("LOCK TABLE smarttrees.trees IN ACCESS EXCLUSIVE MODE")
    proc = subprocess.Popen([*SMARTTREES, "load", "trees", str(survey)],
                            env=cli_env(SMARTTREES_DATABASE_URL=db_url),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with psycopg.connect(db_url, autocommit=True) as watch:
            deadline = time.monotonic() + 60
            backend = None
            while backend is None and time.monotonic() < deadline and proc.poll() is None:
                row = watch.execute(
                    # This database's load: another worker's test may have one waiting too.
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'smarttrees-load' "
                    "AND wait_event_type = 'Lock' AND datname = current_database()").fetchone()
                backend = row[0] if row else None
                time.sleep(0.05)
        assert backend is not None, "the load never waited on the lock"
        yield BlockedLoad(proc, backend, holder)
    finally:
        holder.rollback()
        holder.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_database_lost_mid_load(db_url: str, loaded: tuple[int, int],
                                blocked_load: BlockedLoad) -> None:
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [blocked_load.backend])
    line = one_line(blocked_load.finish(), 3)
    assert line.startswith("error: the database connection was lost: terminating connection "
                           "due to administrator command"), line
    assert stored(db_url) == loaded


def test_ctrl_c_mid_load(db_url: str, loaded: tuple[int, int],
                         blocked_load: BlockedLoad) -> None:
    blocked_load.proc.send_signal(signal.SIGINT)
    # The lock is released only once the load has stopped waiting on it (cancelled).
    with psycopg.connect(db_url, autocommit=True) as watch:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and watch.execute(
                "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s "
                "AND wait_event_type = 'Lock')", [blocked_load.backend]).fetchone() == (True,):
            time.sleep(0.05)
    line = one_line(blocked_load.finish(), 130)
    assert line == "interrupted: work not yet committed was not stored"
    assert stored(db_url) == loaded


def test_disk_full_writing_the_rejects(db_url: str, loaded: tuple[int, int], survey: Path) -> None:
    outcome = run_cli("load", "trees", str(survey), "--rejects", "/dev/full",
                      env=cli_env(SMARTTREES_DATABASE_URL=db_url))
    assert one_line(outcome, 4) == "error: no space left on the disk: /dev/full"
    assert stored(db_url) == loaded


def test_unreadable_survey(db_url: str, loaded: tuple[int, int], survey: Path) -> None:
    survey.chmod(0)
    outcome = run_cli("load", "trees", str(survey), env=cli_env(SMARTTREES_DATABASE_URL=db_url),
                      wrap=without_privileges())
    assert one_line(outcome, 4) == f"error: permission denied: {survey}"
    assert stored(db_url) == loaded


def test_unwritable_rejects_folder(db_url: str, loaded: tuple[int, int], survey: Path,
                                   tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    target = folder / "r.csv"
    outcome = run_cli("load", "trees", str(survey), "--rejects", str(target),
                      env=cli_env(SMARTTREES_DATABASE_URL=db_url), wrap=without_privileges())
    assert one_line(outcome, 4) == f"error: permission denied: {target}"
    assert not target.exists()
    assert stored(db_url) == loaded


def test_schema_missing_says_what_to_run(cluster: object, tmp_path: Path) -> None:
    # A database without the SmartTrees tables (e.g. another folder's fresh cluster).
    from smarttrees.cluster import Cluster

    assert isinstance(cluster, Cluster)
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS loader_empty")
        admin.execute("CREATE DATABASE loader_empty")
    try:
        outcome = run_cli("labels", "seedlings", "--lot", "L-1", "--out", str(tmp_path / "l.pdf"),
                          env=cli_env(SMARTTREES_DATABASE_URL=cluster.url("loader_empty")))
        line = one_line(outcome, 1)
        assert line.startswith("error: the database lacks part of the SmartTrees schema"), line
        assert line.endswith("run `smarttrees db upgrade`")
    finally:
        with psycopg.connect(cluster.url("postgres"), autocommit=True) as admin:
            admin.execute("DROP DATABASE IF EXISTS loader_empty")


SCRIPT = """
import sys
from smarttrees.cli import app, main

@app.command("explode")
def explode() -> None:
    raise ValueError("an unforeseen case")

sys.argv = ["smarttrees", *sys.argv[1:]]
main()
"""


def test_an_internal_error_is_one_line_and_debug_shows_where() -> None:
    env = cli_env()
    plain = subprocess.run([sys.executable, "-c", SCRIPT, "explode"], capture_output=True,
                           text=True, env=env, timeout=60)
    assert plain.returncode == 70 and "Traceback" not in plain.stderr
    assert plain.stderr.strip() == ("internal error: ValueError: an unforeseen case (run again "
                                    "as `smarttrees --debug …` to see where)")
    debug = subprocess.run([sys.executable, "-c", SCRIPT, "--debug", "explode"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "explode" in debug.stderr


def test_usage_errors_are_clicks() -> None:
    outcome = run_cli("load", "trees", "--no-such-option", env=cli_env())
    assert outcome.code == 2 and "Traceback" not in outcome.stderr
    assert "No such option" in outcome.stderr
