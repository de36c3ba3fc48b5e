"""One managed database per installation, whatever the current folder; crashes restart.

The real command runs in a subprocess from different folders, without ``SMARTTREES_DATA_DIR``
or ``SMARTTREES_DATABASE_URL`` unless a test sets one.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from smarttrees.cluster import Cluster
from smarttrees.settings import ROOT_DATA_DIR
from tests.fixtures.cli import cli_env, run_cli


def bare_env(**extra: str) -> dict[str, str]:
    env = cli_env(**extra)
    for name in ("SMARTTREES_DATA_DIR", "SMARTTREES_DATABASE_URL"):
        if name not in extra:
            env.pop(name, None)
    return env


@pytest.fixture
def project() -> Iterator[Path]:
    """A checkout of SmartTrees (its pyproject.toml) with nested folders, reachable by postgres."""
    folder = Path(tempfile.mkdtemp(prefix="smarttrees-project-"))
    folder.chmod(0o755)
    (folder / "pyproject.toml").write_text('[project]\nname = "smarttrees"\nversion = "0"\n')
    (folder / "surveys" / "2025").mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def status_folder(cwd: Path, **env: str) -> str:
    outcome = run_cli("db", "status", env=bare_env(**env), cwd=cwd)
    assert outcome.code == 0, outcome.stderr
    [line] = [x for x in outcome.stdout.splitlines() if x.startswith("data folder: ")]
    return line


def test_the_same_folder_from_the_project_and_below(project: Path) -> None:
    expected = f"data folder: {project / '.smarttrees'} (project folder {project})"
    assert status_folder(project) == expected
    assert status_folder(project / "surveys" / "2025") == expected


def test_a_folder_holding_dot_smarttrees_is_a_project(tmp_path: Path) -> None:
    (tmp_path / "site" / ".smarttrees").mkdir(parents=True)
    (tmp_path / "site" / "inbox").mkdir()
    assert status_folder(tmp_path / "site" / "inbox") == (
        f"data folder: {tmp_path / 'site' / '.smarttrees'} (project folder {tmp_path / 'site'})")


def test_outside_a_project_the_per_user_folder(tmp_path: Path) -> None:
    here = (tmp_path / "downloads").resolve()
    here.mkdir()
    if any((p / ".smarttrees").is_dir() or (p / "pyproject.toml").exists() for p in here.parents):
        pytest.skip("a folder above the test's holds a project")
    line = status_folder(here, XDG_DATA_HOME=str(tmp_path / "xdg"))
    if os.geteuid() == 0:
        assert line == f"data folder: {ROOT_DATA_DIR} (root's folder: no project folder above {here})"
    else:
        assert line == (f"data folder: {tmp_path / 'xdg' / 'smarttrees'} (per-user folder: no "
                        f"project folder above {here})")
    assert not (here / ".smarttrees").exists()


def test_the_setting_overrides(project: Path, tmp_path: Path) -> None:
    assert status_folder(project, SMARTTREES_DATA_DIR=str(tmp_path / "db")) == (
        f"data folder: {tmp_path / 'db'} (from SMARTTREES_DATA_DIR)")


@pytest.mark.slow
def test_a_new_cluster_is_announced_and_a_crashed_one_restarts(project: Path) -> None:
    env = bare_env()
    started = run_cli("db", "start", env=env, cwd=project / "surveys")
    try:
        assert started.code == 0, started.stderr
        data = project / ".smarttrees"
        assert (f"smarttrees: initialising a new local database in {data} "
                f"(project folder {project})") in started.stderr
        cluster = Cluster(data)
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        # A crash: the postmaster killed; its children linger for a moment.
        os.kill(int((cluster.pgdata / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)
        again = run_cli("db", "start", env=env, cwd=project)
        assert again.code == 0, again.stderr
        assert "initialising" not in again.stderr
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            assert conn.execute("SELECT postgis_lib_version()").fetchone() is not None
    finally:
        run_cli("db", "stop", env=env, cwd=project)
