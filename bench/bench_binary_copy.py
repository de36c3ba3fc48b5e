"""Time etl.binary_copy.binary_rows on 1.13 million survey-like tree rows, in COPY chunks.

    .venv/bin/python bench/bench_binary_copy.py                  # this checkout
    .venv/bin/python bench/bench_binary_copy.py --before a584939 # and the encoder of a commit

The rows are those of a tree load: int8 id, text code ('TN-0000001'), text category (three
words), int4 species, three float4, text condition (4-7 letters or NULL), date, text commune
(5 digits or NULL), text source (constant) and a point. ``--before`` loads ``binary_rows`` from
``etl/synthetic/load.py`` at that commit (where it lived until it got its own module), checks
that it gives the same bytes as this checkout's ordered output, and times it the same way.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from etl import binary_copy  # noqa: E402  (after the path is set)

Columns = list[tuple[str, np.ndarray]]


def workload(n: int, seed: int = 1) -> Columns:
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1, dtype=np.int64)
    codes = np.strings.add("TN-", np.strings.zfill(ids.astype(str), 7))
    category = np.array(["urban", "scattered", "plantation"])[rng.integers(0, 3, n)]
    conditions = np.array(["good", "fair", "poor", "dead", "dying", "healthy", ""])
    commune = np.strings.zfill(rng.integers(1, 30_000, n).astype(str), 5)
    return [
        ("int8", ids),
        ("text", codes),
        ("text", category),
        ("int4", rng.integers(1, 400, n).astype(np.int32)),
        ("float4", rng.gamma(2, 10, n).astype(np.float32)),
        ("float4", rng.gamma(3, 3, n).astype(np.float32)),
        ("float4", rng.gamma(2, 2, n).astype(np.float32)),
        ("text", conditions[rng.integers(0, len(conditions), n)]),
        ("date", np.datetime64("1990-01-01") + rng.integers(0, 12_000, n).astype("m8[D]")),
        ("text", np.where(rng.random(n) < 0.1, "", commune)),
        ("text", np.full(n, "survey-2026")),
        ("geometry", np.column_stack([rng.uniform(102, 110, n), rng.uniform(8, 23, n)])),
    ]


def chunks(columns: Columns, size: int) -> list[Columns]:
    n = len(columns[0][1])
    return [[(k, v[s : s + size]) for k, v in columns] for s in range(0, n, size)]


def best_of(repeat: int, encode: Callable[[Columns], bytes], parts: list[Columns]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for part in parts:
            encode(part)
        times.append(time.perf_counter() - start)
    return min(times)


def encoder_at(commit: str) -> Callable[[Columns], bytes]:
    source = subprocess.run(
        ["git", "show", f"{commit}:etl/synthetic/load.py"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    module = types.ModuleType(f"load_at_{commit}")
    exec(compile(source, f"{commit}:etl/synthetic/load.py", "exec"), module.__dict__)
    return module.binary_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_130_000)
    parser.add_argument("--chunk", type=int, default=150_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--before", metavar="COMMIT", help="also time binary_rows at COMMIT")
    args = parser.parse_args()

    parts = chunks(workload(args.rows), args.chunk)
    size = sum(len(binary_copy.binary_rows(p)) for p in parts)
    print(f"numpy {np.__version__}, {args.rows:,} rows in chunks of {args.chunk:,}, "
          f"{size / 1e6:.1f} MB of COPY data, best of {args.repeat}")
    timings = {
        "binary_rows (keep_order=True)": binary_copy.binary_rows,
        "binary_rows (keep_order=False)": lambda p: binary_copy.binary_rows(p, keep_order=False),
    }
    if args.before:
        before = encoder_at(args.before)
        if any(before(p) != binary_copy.binary_rows(p) for p in parts):
            sys.exit(f"binary_rows at {args.before} gives other bytes")
        timings = {f"binary_rows at {args.before}": before, **timings}
    for label, encode in timings.items():
        print(f"{label:36} {best_of(args.repeat, encode, parts):6.3f} s")


if __name__ == "__main__":
    main()
