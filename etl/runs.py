"""Load runs: a record of each written tree load, and the proof that a rerun changes nothing.

A run's fingerprint covers the bytes of its files, the options (mapping, CRS, encoding, bounds,
source name) and the reference data the checks read (species catalogue, communes in force).
When an earlier run with the same fingerprint refused nothing and no tree has changed since,
loading again would find every row unchanged: :func:`previous_clean_run` finds that run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import psycopg

from etl import csv_prefetch

REFERENCE_DIGEST = """
SELECT md5(coalesce((SELECT string_agg(concat_ws('|', id, scientific_name, vietnamese_ascii,
                                                 array_to_string(synonyms, ';')), ',' ORDER BY id)
                     FROM smarttrees.species), '')),
       md5(coalesce((SELECT string_agg(concat_ws('|', id, valid_to), ',' ORDER BY id)
                     FROM smarttrees.admin_units WHERE level = 'commune'), '')),
       md5(coalesce((SELECT refreshed_at::text FROM smarttrees.territory), ''))
"""
TREE_VERSION = "SELECT coalesce(max(id), 0) FROM smarttrees.tree_history"
# TRUNCATE leaves no history: the number of trees guards against it.
TREE_COUNT = "SELECT count(*) FROM smarttrees.trees"


def file_digest(path: Path) -> str:
    """SHA-256 of a file (and of a Shapefile's sidecar files), read in 1 MB blocks.

    A CSV read ahead by ``etl.csv_prefetch`` is not read again.
    """
    prefetched = csv_prefetch.sha256(path)
    if prefetched is not None:
        return prefetched
    digest = hashlib.sha256()
    paths = [path]
    if path.suffix.lower() == ".shp":
        paths += [path.with_suffix(s) for s in (".dbf", ".prj", ".cpg", ".shx")]
    for p in paths:
        if p.exists():
            with p.open("rb") as handle:
                while block := handle.read(1 << 20):
                    digest.update(block)
    return digest.hexdigest()


def fingerprint(conn: psycopg.Connection, digests: list[tuple[str, str]], options: Any,
                mapping: str) -> str:
    """One hash for the files, the options and the reference data the checks depend on."""
    reference = conn.execute(REFERENCE_DIGEST).fetchone()
    payload = orjson.dumps({
        "files": digests, "reference": list(reference or ()), "mapping": mapping,
        "options": {k: str(v) for k, v in sorted(vars(options).items())
                    if k not in ("dry_run", "rejects", "actor")},
    })
    return hashlib.sha256(payload).hexdigest()


def previous_clean_run(conn: psycopg.Connection, print_: str) -> dict[str, Any] | None:
    """The files record of an earlier run with this fingerprint that still holds, if any."""
    row = conn.execute(
        "SELECT files, tree_version FROM smarttrees.load_runs WHERE kind = 'trees' "
        "AND fingerprint = %s ORDER BY id DESC LIMIT 1", (print_,)).fetchone()
    if row is None:
        return None
    files, version = row
    current = conn.execute(TREE_VERSION).fetchone()
    if current is None or current[0] != version or any(f["refused"] for f in files):
        return None
    count = conn.execute(TREE_COUNT).fetchone()
    if count is None or any(f.get("trees_after") != count[0] for f in files):
        return None
    return {"files": files}


def record(conn: psycopg.Connection, print_: str, files: list[dict[str, Any]], actor: str,
           *, skipped: bool, trees_after: int | None = None) -> None:
    """Write the run's record, in the load's own transaction.

    ``trees_after``: the trees now, when the load knows it (counted before its writes, plus the
    trees it inserted); else they are counted here. Counted after an update, every tree on a
    page the update touched is checked for visibility: 0.1-0.2 s more after 11,300 updates.
    """
    if trees_after is None:
        count = conn.execute(TREE_COUNT).fetchone()
        trees_after = count[0] if count else None
    files = [{**f, "trees_after": trees_after} for f in files]
    conn.execute(
        "INSERT INTO smarttrees.load_runs (kind, fingerprint, files, actor, tree_version, skipped) "
        f"VALUES ('trees', %s, %s, %s, ({TREE_VERSION}), %s)",
        (print_, orjson.dumps(files).decode(), actor, skipped))
