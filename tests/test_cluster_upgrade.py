"""`smarttrees db upgrade-cluster`: a managed folder made by an older PostgreSQL major."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from smarttrees.cluster import Cluster, find_postgres

SMARTTREES = [sys.executable, "-m", "smarttrees"]


def upgrade(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SMARTTREES_DATABASE_URL"}
    env["SMARTTREES_DATA_DIR"] = str(data_dir)
    return subprocess.run([*SMARTTREES, "db", "upgrade-cluster"], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def test_a_current_cluster_needs_nothing(cluster: Cluster) -> None:
    result = upgrade(cluster.folder)
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stdout


def test_a_folder_of_a_missing_major_says_what_to_install(tmp_path: Path) -> None:
    installed = find_postgres().major
    old = installed - 2
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text(f"{old}\n")
    (pgdata / "base").mkdir()
    result = upgrade(tmp_path)
    assert result.returncode == 1
    assert f"install postgresql-{old} and postgresql-{old}-postgis-3" in result.stderr
    assert "Traceback" not in result.stderr
    assert (pgdata / "PG_VERSION").read_text().strip() == str(old)  # untouched
