"""bench/bench_national.py --reuse: a folder it cannot measure is refused in one line.

The benchmark's generation and measurement run apart (``--keep DIR`` then ``--reuse DIR``); a
person pointing ``--reuse`` at the wrong or an unfinished folder gets the reason, not a traceback
(the measurement itself needs generated provinces: it is the benchmark's, not the suite's).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "bench_national.py"), *args],
                          capture_output=True, text=True, timeout=60, check=False)


def nothing(folder: Path) -> Path:
    return folder


def empty(folder: Path) -> Path:
    folder.mkdir()
    return folder


def started_keep(folder: Path) -> Path:
    """What ``--keep`` leaves when stopped after the one-province databases (no cluster here)."""
    folder.mkdir()
    databases = {f"national_1_{kind}": {"provinces": 1, "layout": layout, "trees": 20000,
                                        "complete": True}
                 for kind, layout in (("table", "one table"), ("partitioned", "partitioned"))}
    (folder / "manifest.json").write_text(json.dumps(
        {"format": 1, "trees_per_province": 20000, "databases": databases, "steps": []}))
    return folder


@pytest.mark.parametrize(("make", "args", "said"), [
    (nothing, (), "no such folder"),
    (empty, (), "no manifest.json there"),
    (started_keep, ("--provinces", "1,10"),
     "incomplete: 10 province(s) one table, 10 province(s) partitioned not generated"),
    (started_keep, (), "no PostgreSQL cluster in"),
])
def test_reuse_refuses_what_it_cannot_measure(
    tmp_path: Path, make: Callable[[Path], Path], args: tuple[str, ...], said: str
) -> None:
    folder = make(tmp_path / "kept")
    outcome = run_bench("--reuse", str(folder), *args)
    assert outcome.returncode == 2
    assert said in outcome.stderr and str(folder) in outcome.stderr
    assert "Traceback" not in outcome.stderr + outcome.stdout


def test_keep_refuses_a_folder_in_use(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("not ours")
    outcome = run_bench("--keep", str(tmp_path), "--generate-only")
    assert outcome.returncode == 2
    assert "exists and is not empty" in outcome.stderr and "Traceback" not in outcome.stderr
    assert (tmp_path / "something").read_text() == "not ours"
