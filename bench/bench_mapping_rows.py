"""The row work of open-inventory mappings (``etl.mapping_rows``): rows per second, no database.

Each worked mapping's test file (``tests/data/open_inventories``) is repeated to ``--rows`` rows
and read chunk by chunk as a load reads it: joins, point columns, classes and skip rules applied,
against the same file read with no mapping row work. Prints the figures and the versions.

    .venv/bin/python bench/bench_mapping_rows.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from etl.mapping_rows import derive  # noqa: E402
from etl.mappings import load_mapping  # noqa: E402
from etl.readers import open_table  # noqa: E402

CASES = {"nyc_street_tree_census_2015": "nyc_street_trees_2015.csv",
         "paris_les_arbres": "paris_les_arbres.csv",
         "vienna_baumkataster": "vienna_baumkataster.csv"}


def read_all(table: object) -> tuple[int, float]:
    start = time.perf_counter()
    rows = sum(len(c.cells) for c in table.chunks())  # type: ignore[attr-defined]
    return rows, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, pandas {pd.__version__}, "
          f"shapely {shapely.__version__}; {args.rows:,} rows per file")
    with tempfile.TemporaryDirectory() as tmp:
        for name, file in CASES.items():
            source = ROOT / "tests" / "data" / "open_inventories" / file
            lines = source.read_text(encoding="utf-8").splitlines()
            body = lines[1:]
            path = Path(tmp) / file
            with path.open("w", encoding="utf-8") as out:
                out.write(lines[0] + "\n")
                for i in range(args.rows):
                    out.write(body[i % len(body)] + "\n")
            plain = open_table(path)
            table, _ = derive(open_table(path), load_mapping(name))
            n0, t0 = read_all(plain)
            n1, t1 = read_all(table)
            left = table.derivation.left_out if table.derivation else 0
            print(f"{name:30s} read only {n0 / t0:>10,.0f} rows/s | with the mapping's row "
                  f"work {n1 / t1:>10,.0f} rows/s ({n1:,} rows, {left:,} left out)")


if __name__ == "__main__":
    main()
