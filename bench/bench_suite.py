"""The test suite's time: test files run alone, this checkout beside another, in turns.

For each test file and each checkout (``--code DIR`` adds the other one, e.g. an export of the
commit before), pytest runs the file alone (``-p no:cacheprovider -q``) and the script prints:
pytest's wall time, the CPU of pytest and everything it waited for (servers, commands, Chromium:
``RUSAGE_CHILDREN``), the CPU of the test session's PostgreSQL (its postmaster, the backends it
reaped and its helpers, read from /proc just before the cluster is destroyed) and the load
average before and after. The checkouts take turns, file by file, so that both see the same
load; ``--rounds`` repeats the whole.

    .venv/bin/python bench/bench_suite.py tests/test_webmap_browser.py --code /tmp/suite-base

Never ends in a traceback: a file that fails is reported with pytest's last line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from smarttrees.cluster import Cluster

ROOT = Path(__file__).resolve().parents[1]
CLOCK = os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int) -> float:
    """CPU seconds of process ``pid`` and of the children it reaped (utime+stime+cutime+cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / CLOCK


def postgres_cpu(pgdata: Path) -> float:
    """CPU seconds of the cluster of ``pgdata`` so far: postmaster, reaped and live children."""
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    total = _process_cpu(postmaster)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster:
                total += _process_cpu(int(proc.name))
        except (OSError, ValueError):
            continue  # gone meanwhile
    return total


# -- the pytest plugin (``-p bench_suite``): the session cluster's CPU, written at its end --------

@pytest.fixture(scope="session", autouse=True)
def _record_postgres_cpu(cluster: Cluster) -> Iterator[None]:
    yield
    out = os.environ.get("BENCH_SUITE_PG_CPU")
    if out:
        with contextlib.suppress(OSError):  # the figure is then missing, the run still counts
            Path(out).write_text(json.dumps(postgres_cpu(cluster.pgdata)))


# -- the runner -----------------------------------------------------------------------------------

def run_file(code: Path, test_file: str) -> dict[str, object]:
    """Run one test file of checkout ``code`` alone; its figures."""
    with tempfile.NamedTemporaryFile(suffix=".json") as pg_out:
        env = dict(os.environ, PYTHONPATH=f"{code}{os.pathsep}{ROOT / 'bench'}",
                   BENCH_SUITE_PG_CPU=pg_out.name)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_before = os.getloadavg()[0]
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "bench_suite", "-q",
             test_file], cwd=code, env=env, capture_output=True, text=True)
        wall = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        text = Path(pg_out.name).read_text()
    last = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    return {
        "file": test_file, "code": str(code), "ok": proc.returncode == 0, "last_line": last,
        "wall_s": round(wall, 1),
        "client_cpu_s": round(after.ru_utime + after.ru_stime
                              - before.ru_utime - before.ru_stime, 1),
        "postgres_cpu_s": round(float(text), 1) if text else None,
        "load": f"{load_before:.1f} → {os.getloadavg()[0]:.1f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="test files, e.g. tests/test_webmap_browser.py")
    parser.add_argument("--code", type=Path, action="append", default=[],
                        help="another checkout to time beside this one (repeatable)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()
    checkouts = [ROOT, *[c.resolve() for c in args.code]]
    for code in checkouts:
        if not (code / "tests" / "conftest.py").is_file():
            sys.exit(f"bench_suite: {code} holds no tests/conftest.py")
    print(f"python {sys.version.split()[0]}, pytest {pytest.__version__}; checkouts: "
          + ", ".join(str(c) for c in checkouts), flush=True)
    results = []
    for round_ in range(1, args.rounds + 1):
        for test_file in args.files:
            for code in checkouts:
                r = run_file(code, test_file)
                results.append({"round": round_, **r})
                print(f"round {round_} {test_file} [{code}]: wall {r['wall_s']} s, client CPU "
                      f"{r['client_cpu_s']} s, PostgreSQL CPU {r['postgres_cpu_s']} s, load "
                      f"{r['load']}; {'ok' if r['ok'] else 'FAILED'}: {r['last_line']}",
                      flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
