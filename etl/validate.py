"""What the tree checks share: the file plan, the species index, the checks across rows.

Each row's own checks are made in Arrow by ``etl.direct.Checker`` (the rules of
``etl.rules``); its checked rows are staged in ``load_checked``, every row with the list of its
problems (empty: the row is good). Against a loaded inventory the checks across rows (a code
or a spot used twice in the run, a spot taken in the database) then add theirs here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from pyproj import CRS

from etl.checker import parse_date, parse_year
from etl.mappings import Mapping
from smarttrees.domain import Category, Condition, fold
from smarttrees.territory import Territory

CREATE_SHARED = """
CREATE TEMP TABLE load_checked (
    file_no int NOT NULL, row_no bigint NOT NULL, tree_code text, category text,
    species_id integer, dbh_cm real, height_m real, crown_m real, condition text,
    planted_on date, commune_code text, source text, source_crs text,
    geom geometry(Point, 4326), attributes jsonb, load_digest bigint, gx bigint, gy bigint,
    problems text[] NOT NULL DEFAULT '{}') ON COMMIT DROP;
CREATE TEMP TABLE load_files (file_no int PRIMARY KEY, name text, code_label text,
                              position_label text) ON COMMIT DROP;
"""


@dataclass
class FilePlan:
    """What the checks need to know about one staged file."""

    file_no: int
    name: str
    headers: list[str]
    columns: dict[str, int]            # field → column index
    mapping: Mapping
    source_crs: str
    territory: Territory
    crs: CRS = field(default_factory=lambda: CRS.from_epsg(4326))   # of the coordinates
    labels: dict[str, str] = field(default_factory=dict)
    extra: list[tuple[int, str]] = field(default_factory=list)   # kept as attributes
    geometry: bool = False             # placed by a GIS layer's geometry, not by columns

    def label(self, name: str) -> str:
        """How a field is named in messages: the file's own header when it has one."""
        if name in self.columns:
            return self.headers[self.columns[name]]
        return {"tree_code": "tree code", "dbh": "diameter", "lon": "longitude",
                "lat": "latitude"}.get(name, name.replace("_", " "))

    @property
    def position_label(self) -> str:
        """The coordinates' headers, e.g. ``Kinh độ/Vĩ độ``, or ``geometry``."""
        if self.geometry:
            return "geometry"
        for a, b in (("lon", "lat"), ("x", "y")):
            if a in self.columns and b in self.columns:
                return f"{self.label(a)}/{self.label(b)}"
        return "geometry"


# -- distinct values resolved in Python ------------------------------------------------------


class SpeciesIndex:
    """Folded scientific names, Vietnamese names and synonyms → species id."""

    def __init__(self, rows: Iterable[tuple[int, str, str, list[str]]]) -> None:
        self.keys: dict[str, int] = {}
        self.names: dict[int, str] = {}
        for sid, scientific, vietnamese, synonyms in rows:
            self.names[sid] = f"{vietnamese} ({scientific})"
            for name in (scientific, vietnamese, *synonyms):
                self.keys.setdefault(fold(name), sid)

    @classmethod
    def from_db(cls, conn: psycopg.Connection) -> SpeciesIndex:
        """The catalogue as loaded in the database."""
        rows = conn.execute(
            "SELECT id, scientific_name, vietnamese_name, synonyms FROM smarttrees.species"
        ).fetchall()
        return cls(rows)

    def resolve(self, raw: str) -> int | None:
        """The species id of a name typed any of the known ways, else ``None``."""
        key = fold(raw)
        for candidate in (key, re.sub(r"^cay ", "", key), key.replace(" x ", " × ")):
            if candidate in self.keys:
                return self.keys[candidate]
        return None

    def suggest(self, raw: str, n: int = 3) -> list[str]:
        """The closest catalogue names to an unknown one."""
        close = difflib.get_close_matches(fold(raw), list(self.keys), n=n * 3, cutoff=0.5)
        seen: list[str] = []
        for key in close:
            name = self.names[self.keys[key]]
            if name not in seen:
                seen.append(name)
        return seen[:n]


def resolve_one(name: str, raw: str, mapping: Mapping,
                species: SpeciesIndex) -> tuple[str | None, str | None]:
    """(stored value, problem) of one trimmed raw value of a lookup field."""
    if name == "species":
        sid = species.resolve(raw)
        if sid is not None:
            return str(sid), None
        close = species.suggest(raw)
        hint = f"; closest: {', '.join(close)}" if close else ""
        return None, f"is not in the species catalogue{hint}"
    if name == "planted_on":
        return parse_date(raw)
    if name == "planted_year":
        return parse_year(raw)
    table = mapping.lookup(name)
    value = table.get(fold(raw))
    if name == "height_class":
        return (value, None) if value is not None else (
            None, f"is not a height class (known: {', '.join(sorted(table))})")
    allowed = {"condition": [c.value for c in Condition], "category": [c.value for c in Category]}
    if value is None and fold(raw) in allowed[name]:
        value = fold(raw)
    if value is None:
        known = sorted(set(table) | set(allowed[name]))
        return None, f"is not a known {name} (known: {', '.join(known)})"
    return value, None


# -- checks across rows and against the database ----------------------------------------------

CHECKS = Path(__file__).with_name("checks")     # the set-based checks, one .sql file each


def _sql(name: str) -> str:
    return (CHECKS / f"{name}.sql").read_text(encoding="utf-8")


DUPLICATE_CODES = _sql("duplicate_codes")
SAME_SPOT_IN_RUN = _sql("same_spot_in_run")
SAME_SPOT_IN_DB = _sql("same_spot_in_db")
# Cheap tests first: one hashed pass each (gx, gy: the point on the 1e-6 degree grid, kept by
# the check); the ranking updates above only run when there is something to report.
ANY_DUPLICATE_CODE = _sql("any_duplicate_code")
ANY_SHARED_SPOT = _sql("any_shared_spot")


def cross_checks(conn: psycopg.Connection) -> None:
    """Duplicate codes and shared spots within the run, and spots taken in the database."""
    if conn.execute(ANY_DUPLICATE_CODE).fetchone() == (True,):
        conn.execute(DUPLICATE_CODES)
    if conn.execute(ANY_SHARED_SPOT).fetchone() == (True,):
        conn.execute(SAME_SPOT_IN_RUN)
    if conn.execute("SELECT EXISTS (SELECT 1 FROM smarttrees.trees)").fetchone() == (True,):
        conn.execute(SAME_SPOT_IN_DB)
