"""`smarttrees load …` end to end, as a person runs it, including a load killed midway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from tests.fixtures.survey_writer import make_survey, write_survey

SMARTTREES = [sys.executable, "-m", "smarttrees"]


def run(*args: str, env_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMARTTREES_DATABASE_URL": env_url}
    return subprocess.run([*SMARTTREES, "load", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def test_load_trees_prints_counts_and_reloads_unchanged(settings_env: str, tmp_path: Path) -> None:
    survey = make_survey(30).astype(object)
    survey.loc[0, "Tên cây"] = "Cây lạ"
    path = write_survey(survey, tmp_path / "khao_sat.csv")
    first = run("trees", str(path), env_url=settings_env)
    assert first.returncode == 0, first.stderr
    assert "khao_sat.csv: 30 rows (EPSG:4326): inserted 29, updated 0, unchanged 0, refused 1" in first.stdout
    assert f"refused rows and reasons: {tmp_path / 'khao_sat.rejects.csv'}" in first.stdout
    dry = run("trees", str(path), "--dry-run", env_url=settings_env)
    assert "inserted 0, updated 0, unchanged 29, refused 1" in dry.stdout and "dry run" in dry.stdout
    strict = run("trees", str(path), "--strict", "--rejects", str(tmp_path / "r.csv"), env_url=settings_env)
    assert strict.returncode == 1 and "nothing written" in strict.stderr
    assert (tmp_path / "r.csv").exists()


def test_bad_file_is_one_clear_line(settings_env: str, tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    result = run("trees", str(tmp_path / "empty.csv"), env_url=settings_env)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: empty.csv: the file is empty"
    assert "Traceback" not in result.stderr


def test_a_killed_load_leaves_nothing(settings_env: str, tmp_path: Path) -> None:
    path = write_survey(make_survey(40_000, lang="en", crs="utm48"), tmp_path / "big.csv")
    env = {**os.environ, "SMARTTREES_DATABASE_URL": settings_env}
    proc = subprocess.Popen([*SMARTTREES, "load", "trees", str(path), "--crs", "utm48"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with psycopg.connect(settings_env, autocommit=True) as conn:
        deadline = time.monotonic() + 60
        # Kill once the loader's transaction is under way (it has staged rows or is checking).
        while time.monotonic() < deadline and proc.poll() is None:
            busy = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                "'smarttrees-load' AND state <> 'idle'").fetchone()[0]
            if busy:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the load ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        while time.monotonic() < deadline and conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'smarttrees-load'"
        ).fetchone()[0]:
            time.sleep(0.1)
        assert conn.execute("SELECT count(*), (SELECT count(*) FROM smarttrees.tree_history) "
                            "FROM smarttrees.trees").fetchone() == (0, 0)


def test_a_load_ends_with_its_code_its_output_and_its_exit_functions(tmp_path: Path) -> None:
    # The loaders end without the interpreter's teardown (smarttrees.cli._end_now): what the
    # teardown would do for a user still happens.
    (tmp_path / "empty.csv").write_bytes(b"")
    script = ("import atexit, sys\n"
              "atexit.register(lambda: print('exit functions ran'))\n"
              "from smarttrees.cli import main\n"
              "sys.argv = ['smarttrees', 'load', 'trees', sys.argv[1]]\n"
              "main()\n")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "empty.csv")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: empty.csv: the file is empty"
    assert result.stdout.strip() == "exit functions ran"
