"""Load the species catalogue (``data/species.csv``) into ``smarttrees.species``."""

from __future__ import annotations

import csv
from pathlib import Path

import psycopg

from smarttrees.domain import fold

UPSERT = """
INSERT INTO smarttrees.species
    (scientific_name, vietnamese_name, vietnamese_ascii, family, use,
     wood_density, wood_density_source, synonyms)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (scientific_name) DO UPDATE SET
    vietnamese_name = EXCLUDED.vietnamese_name, vietnamese_ascii = EXCLUDED.vietnamese_ascii,
    family = EXCLUDED.family, use = EXCLUDED.use, wood_density = EXCLUDED.wood_density,
    wood_density_source = EXCLUDED.wood_density_source, synonyms = EXCLUDED.synonyms
"""


def default_catalogue() -> Path:
    """The catalogue shipped in the repository's ``data/`` folder."""
    return Path(__file__).resolve().parent.parent / "data" / "species.csv"


def load_species(conn: psycopg.Connection, path: Path | None = None) -> int:
    """Insert or refresh every species of the catalogue; return how many rows it holds."""
    path = path or default_catalogue()
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = [
            (
                r["scientific_name"].strip(),
                r["vietnamese_name"].strip(),
                fold(r["vietnamese_name"]),
                r["family"] or None,
                r["use"] or None,
                float(r["wood_density"]) if r["wood_density"] else None,
                r["wood_density_source"] or None,
                [s.strip() for s in r["synonyms"].split(";") if s.strip()],
            )
            for r in csv.DictReader(handle)
        ]
    with conn.cursor() as cur:
        cur.executemany(UPSERT, rows)
    return len(rows)
