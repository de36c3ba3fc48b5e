import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from smarttrees.cluster import Cluster, derived_port
from smarttrees.errors import ClusterError


@pytest.fixture
def folder():
    path = Path(tempfile.mkdtemp(prefix="smarttrees-cluster-"))
    path.chmod(0o755)
    yield path


def test_start_is_idempotent_and_serves_postgis(folder):
    cluster = Cluster(folder, extra_config={"fsync": "off"})
    try:
        cluster.start()
        cluster.start()  # already running: a no-op
        assert cluster.is_running()
        with psycopg.connect(cluster.url()) as conn:
            version = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
        assert version.startswith("3.")
        assert "running" in cluster.status()
        cluster.stop()
        assert not cluster.is_running()
        assert cluster.status().startswith("stopped")
    finally:
        cluster.destroy()


def test_two_folders_get_two_clusters(folder, cluster):
    other = Cluster(folder, extra_config={"fsync": "off"})
    try:
        other.start()
        assert other.port != cluster.port
        assert other.pgdata != cluster.pgdata
    finally:
        other.destroy()


def test_busy_port_moves_to_a_free_one(folder, cluster):
    # The session cluster holds its port: a new cluster told to use it takes the next free one.
    other = Cluster(folder, extra_config={"fsync": "off"})
    (folder / "port").parent.mkdir(parents=True, exist_ok=True)
    (folder / "port").write_text(f"{cluster.port}\n")
    try:
        other.start()
        assert other.port != cluster.port
        with psycopg.connect(other.url()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        other.destroy()


def test_stale_pid_file_after_a_crash_is_handled(folder):
    cluster = Cluster(folder, extra_config={"fsync": "off"})
    try:
        cluster.start()
        cluster.stop()
        pidfile = cluster.pgdata / "postmaster.pid"
        pidfile.write_text("999999\n")  # a postmaster that no longer exists
        cluster.start()
        assert cluster.is_running()
    finally:
        cluster.destroy()


def test_data_folder_of_an_uninstalled_version_is_explained(folder):
    cluster = Cluster(folder)
    (cluster.pgdata).mkdir(parents=True)
    (cluster.pgdata / "PG_VERSION").write_text("9\n")
    with pytest.raises(ClusterError, match="PostgreSQL 9"):
        cluster.start()


def test_derived_port_is_stable_per_folder(folder):
    assert derived_port(folder) == derived_port(folder)
    assert 15432 <= derived_port(folder) < 17432


def test_cli_db_url_with_external_server_starts_nothing(db_url, tmp_path):
    env = {"SMARTTREES_DATABASE_URL": db_url, "SMARTTREES_DATA_DIR": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "smarttrees", "db", "url"], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == db_url
    assert not (tmp_path / "none").exists()
    status = subprocess.run(
        [sys.executable, "-m", "smarttrees", "db", "upgrade"], capture_output=True, text=True, env=env
    )
    assert status.returncode == 0, status.stderr
    assert "schema up to date" in status.stdout
