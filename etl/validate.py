"""Checks on staged tree rows, set-based in SQL, each problem named by field and value.

A file's staged text cells become typed tree values in one ``INSERT … SELECT`` into
``load_checked``; every row carries the list of its problems (empty: the row is good). Values with
few distinct forms (species, condition, category, dates, height classes) are resolved once per
distinct value in Python and joined back through ``load_lookup``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from pyproj import CRS

from etl import attributes
from etl.mappings import Mapping
from etl.stage import cell, raw_table
from smarttrees.domain import Category, Condition, fold
from smarttrees.territory import Territory, sql_inside

# Non-capturing groups: PostgreSQL matches them a third faster than capturing ones.
# Exponents of up to two digits, or three with a leading zero as printf writes them (1.5e+001);
# longer ones could overflow float8. The direct path (Arrow's parser) reads more, but what it
# reads beyond this is out of every plausible range, so such a file comes here all the same.
NUMBER_RE = r"^[+-]?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)(?:[eE][+-]?0?[0-9]{1,2})?$"
RANGES = {"dbh": (0.0, 500.0, "cm"), "height": (0.0, 120.0, "m"), "crown": (0.0, 80.0, "m")}
TEXT_FIELDS = ("tree_code", "species", "category", "condition", "planted_on", "planted_year",
               "height_class", "source")
NUMBER_FIELDS = ("dbh", "circumference", "height", "crown", "lon", "lat", "x", "y")
LOOKUP_FIELDS = ("species", "category", "condition", "planted_on", "planted_year", "height_class")

CREATE_SHARED = """
CREATE TEMP TABLE load_lookup (file_no int, field text, raw text, value text, problem text)
    ON COMMIT DROP;
-- A hash index: a b-tree key cannot hold a cell of more than about 2,700 bytes.
CREATE INDEX ON load_lookup USING hash (raw);
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

    def label(self, name: str) -> str:
        """How a field is named in messages: the file's own header when it has one."""
        if name in self.columns:
            return self.headers[self.columns[name]]
        return {"tree_code": "tree code", "dbh": "diameter", "lon": "longitude",
                "lat": "latitude"}.get(name, name.replace("_", " "))

    @property
    def position_label(self) -> str:
        """The coordinates' headers, e.g. ``Kinh độ/Vĩ độ``, or ``geometry``."""
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


def parse_date(raw: str) -> tuple[str | None, str | None]:
    """(ISO date, None) of a date as surveys write it, or (None, what is wrong with it)."""
    text = raw.strip()
    for pattern in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y/%m/%d", "%Y-%m-%dT%H:%M:%S",
                    "%Y-%m-%d %H:%M:%S"):
        try:
            day = dt.datetime.strptime(text, pattern).date()
        except ValueError:
            continue
        return _check_day(day)
    return None, "is not a date (YYYY-MM-DD or DD/MM/YYYY)"


def _check_day(day: dt.date) -> tuple[str | None, str | None]:
    if day.year < 1800:
        return None, f"{day.isoformat()} is before 1800"
    if day > dt.date.today():
        return None, f"{day.isoformat()} is in the future"
    return day.isoformat(), None


def _parse_year(raw: str) -> tuple[str | None, str | None]:
    text = raw.strip().removesuffix(".0")
    if not text.isdigit():
        return None, "is not a year"
    if not 1 <= int(text) <= 9999:
        return None, "is not a year"
    return _check_day(dt.date(int(text), 1, 1))


def resolve_lookups(conn: psycopg.Connection, plan: FilePlan, species: SpeciesIndex) -> None:
    """Resolve each distinct value of the lookup fields and stage the answers."""
    rows: list[tuple[int, str, str, str | None, str | None]] = []
    names = [n for n in LOOKUP_FIELDS if n in plan.columns]
    if not names:
        return
    # One scan for all fields: a grouping set per field, tagged by its position.
    sets = [sql.SQL("btrim({})").format(cell(plan.columns[n])) for n in names]
    tag = sql.SQL(" ").join(
        sql.SQL("WHEN GROUPING({e}) = 0 THEN {i}").format(e=e, i=sql.Literal(i))
        for i, e in enumerate(sets))
    distinct = conn.execute(sql.SQL(
        "SELECT CASE {tag} END, coalesce({values}) FROM {t} "
        "GROUP BY GROUPING SETS ({sets})"
    ).format(tag=tag, values=sql.SQL(", ").join(sets), t=raw_table(plan.file_no),
             sets=sql.SQL(", ").join(sql.SQL("({})").format(e) for e in sets))).fetchall()
    for index, raw in distinct:
        if not raw:
            continue
        name = names[index]
        value, problem = resolve_one(name, raw, plan.mapping, species)
        rows.append((plan.file_no, name, raw,
                     value, f"{plan.label(name)}: {shown(raw)} {problem}" if problem else None))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO load_lookup VALUES (%s, %s, %s, %s, %s)", rows)


def shown(raw: str, width: int = 80) -> str:
    """A cell quoted in a message: its first ``width`` characters (a cell may hold a megabyte)."""
    return repr(raw if len(raw) <= width else raw[:width] + "…")


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
        return _parse_year(raw)
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


# -- the per-file check -----------------------------------------------------------------------


def _text(plan: FilePlan, name: str) -> sql.Composable:
    if name in plan.mapping.fixed:
        return sql.Literal(plan.mapping.fixed[name])
    if name in plan.columns:
        return sql.SQL("nullif(btrim({}), '')").format(cell(plan.columns[name]))
    return sql.SQL("NULL::text")


def _num(expr: sql.Composable) -> sql.Composable:
    return sql.SQL("CASE WHEN {e} ~ {re} THEN replace({e}, ',', '.')::float8 END").format(
        e=expr, re=sql.Literal(NUMBER_RE))


def check_sql(plan: FilePlan, communes: bool) -> sql.Composed:
    """The ``INSERT INTO load_checked … SELECT`` that types and checks one staged file."""
    m = plan.mapping
    lit = sql.Literal
    texts = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(_text(plan, f), sql.Identifier(f"t_{f}"))
        for f in TEXT_FIELDS + NUMBER_FIELDS
    )
    f = {name: m.fields[name].factor if name in m.fields else 1.0 for name in NUMBER_FIELDS}
    numbers = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(_num(sql.Identifier(f"t_{n}")), sql.Identifier(f"n_{n}"))
        for n in NUMBER_FIELDS
    )
    not_number = [
        sql.SQL("CASE WHEN t_{n} IS NOT NULL AND n_{n} IS NULL "
                "THEN format('%s: %L is not a number', {lab}, t_{n}) END").format(
            n=sql.SQL(n), lab=lit(plan.label(n)))
        for n in NUMBER_FIELDS if n in plan.columns
    ]
    ranges = [
        sql.SQL("CASE WHEN {v} IS NOT NULL AND NOT ({v} > {lo} AND {v} <= {hi}) "
                "THEN format('%s: %s {u} is outside the plausible range ({lo}–{hi} {u})', "
                "{lab}, round({v}::numeric, 1)) END").format(
            v=sql.Identifier(f"v_{n}"), lo=lit(lo), hi=lit(hi), u=sql.SQL(unit),
            lab=lit(plan.label(n if n in plan.columns else "circumference")))
        for n, (lo, hi, unit) in RANGES.items()
    ]
    lookup_problems = sql.SQL(", ").join(
        sql.SQL("CASE WHEN t_{n} IS NOT NULL AND {a}.value IS NULL THEN {a}.problem END "
                "AS {p}").format(n=sql.SQL(n), a=sql.Identifier(f"l_{n}"),
                                 p=sql.Identifier(f"lp_{n}"))
        for n in LOOKUP_FIELDS
    )
    lookups = [sql.Identifier(f"lp_{n}") for n in LOOKUP_FIELDS
               if n in plan.columns and n not in m.fixed]
    # Only fields the file has are looked up; the others resolve to nothing, and a subquery
    # without FROM is folded into constants by the planner (no join at all).
    joins = sql.SQL(" ").join(
        sql.SQL("LEFT JOIN load_lookup {a} ON {a}.file_no = {fn} AND {a}.field = {n} "
                "AND {a}.raw = q.t_{c}").format(
            a=sql.Identifier(f"l_{n}"), fn=lit(plan.file_no), n=lit(n), c=sql.SQL(n))
        if n in plan.columns else
        sql.SQL("CROSS JOIN (SELECT NULL::text AS value, NULL::text AS problem) {a}").format(
            a=sql.Identifier(f"l_{n}"))
        for n in LOOKUP_FIELDS
    )
    category = sql.SQL("coalesce({fixed}, l_category.value, {default})").format(
        fixed=lit(m.fixed.get("category")) if "category" in m.fixed else sql.SQL("NULL"),
        default=lit(m.defaults.get("category")))
    inside = sql_inside(sql.SQL("lon"), sql.SQL("lat"))
    swapped = sql_inside(sql.SQL("lat"), sql.SQL("lon"))
    pos = lit(plan.position_label)
    code_label = lit(plan.label("tree_code"))
    species_missing = (
        sql.SQL("CASE WHEN t_species IS NULL THEN format('%s: missing', {}) END").format(
            lit(plan.label("species")))
    )
    problems = sql.SQL(", ").join([
        sql.SQL("CASE WHEN t_tree_code IS NULL THEN format('%s: missing', {}) END").format(
            code_label),
        sql.SQL("CASE WHEN length(t_tree_code) > 64 THEN format('%s: longer than 64 characters', "
                "{}) END").format(code_label),
        species_missing,
        sql.SQL("CASE WHEN category IS NULL AND t_category IS NULL "
                "THEN format('%s: missing', {}) END").format(lit(plan.label("category"))),
        *not_number, *ranges, *lookups,
        sql.SQL("g_problem"),
        sql.SQL("CASE WHEN g_problem IS NULL AND (lon IS NULL OR lat IS NULL) AND NOT coord_bad "
                "THEN format('%s: missing', {pos}) END").format(pos=pos),
        sql.SQL("CASE WHEN lon IS NOT NULL AND lat IS NOT NULL AND NOT {inside} THEN "
                "format('%s: %s, %s is outside the territory%s', {pos}, round(lon::numeric, 6), "
                "round(lat::numeric, 6), coalesce('; ' || g_hint, CASE WHEN {swapped} THEN "
                "'; longitude and latitude look swapped' END, '')) END").format(
            inside=inside, pos=pos, swapped=swapped),
    ])
    coord_bad = sql.SQL(" OR ").join(
        [sql.SQL("(t_{n} IS NOT NULL AND n_{n} IS NULL)").format(n=sql.SQL(n))
         for n in ("lon", "lat", "x", "y") if n in plan.columns]
        or [sql.Composed([sql.SQL("false")])])
    height = sql.SQL("coalesce(n_height * {}, l_height_class.value::float8)").format(
        lit(f["height"]))
    dbh = sql.SQL("coalesce(n_dbh * {}, n_circumference * {} / pi())").format(
        lit(f["dbh"]), lit(f["circumference"]))
    commune = sql.SQL(
        "(SELECT c.code FROM smarttrees.communes c WHERE ST_Intersects(c.geom, "
        "ST_SetSRID(ST_MakePoint(lon, lat), 4326)) ORDER BY c.code LIMIT 1)"
        if communes else "NULL::text")
    return sql.SQL("""
INSERT INTO load_checked (file_no, row_no, tree_code, category, species_id, dbh_cm, height_m,
    crown_m, condition, planted_on, commune_code, source, source_crs, geom, gx, gy, problems,
    attributes)
SELECT {fn}, row_no, t_tree_code, category, species_id, v_dbh, v_height, v_crown, condition,
       planted_on, CASE WHEN ok_position THEN {commune} END, source, {crs},
       CASE WHEN ok_position THEN ST_SetSRID(ST_MakePoint(lon, lat), 4326) END,
       CASE WHEN ok_position THEN round(lon * 1e6)::bigint END,
       CASE WHEN ok_position THEN round(lat * 1e6)::bigint END, problems, attributes
FROM (
    SELECT w.*, array_remove(ARRAY[{problems}], NULL) AS problems,
           (lon IS NOT NULL AND lat IS NOT NULL AND {inside}) AS ok_position
    -- OFFSET 0 keeps each level a separate step: otherwise the planner inlines every
    -- expression into its users and parses each cell many times over.
    FROM (
        SELECT q.*, {category} AS category, l_species.value::integer AS species_id,
               l_condition.value AS condition,
               coalesce(l_planted_on.value, l_planted_year.value)::date AS planted_on,
               coalesce(t_source, {default_source}) AS source,
               ({dbh})::real AS v_dbh, ({height})::real AS v_height,
               (n_crown * {crown_f})::real AS v_crown,
               coalesce(g_lon, n_lon) AS lon, coalesce(g_lat, n_lat) AS lat,
               ({coord_bad}) AS coord_bad, {lookup_problems}
        FROM (
            SELECT p.*, {numbers}
            FROM (SELECT row_no, g_lon, g_lat, g_problem, g_hint, {texts},
                         {attributes} AS attributes FROM {raw} OFFSET 0) p
            OFFSET 0
        ) q {joins}
        OFFSET 0
    ) w
    OFFSET 0
) v
""").format(
        fn=lit(plan.file_no), commune=commune, crs=lit(plan.source_crs), problems=problems,
        inside=inside, category=category, default_source=lit(plan.name), dbh=dbh, height=height,
        crown_f=lit(f["crown"]), coord_bad=coord_bad, numbers=numbers, texts=texts,
        raw=raw_table(plan.file_no), joins=joins, lookup_problems=lookup_problems,
        attributes=attributes.sql_object(plan.extra, cells=[cell(i) for i, _ in plan.extra]),
    )


# -- checks across rows and against the database ----------------------------------------------

DUPLICATE_CODES = """
UPDATE load_checked c SET problems = c.problems || d.problem
FROM (
    SELECT x.file_no, x.row_no,
           format('%s: %s already appears in %srow %s', f.code_label, x.tree_code,
                  CASE WHEN x.first_file <> x.file_no THEN ff.name || ' ' ELSE '' END,
                  x.first_row) AS problem
    FROM (
        SELECT file_no, row_no, tree_code,
               first_value(file_no) OVER w AS first_file, first_value(row_no) OVER w AS first_row,
               row_number() OVER w AS n
        FROM load_checked
        WHERE tree_code IN (SELECT tree_code FROM load_checked WHERE tree_code IS NOT NULL
                            GROUP BY tree_code HAVING count(*) > 1)
        WINDOW w AS (PARTITION BY tree_code ORDER BY file_no, row_no)
    ) x
    JOIN load_files f ON f.file_no = x.file_no
    JOIN load_files ff ON ff.file_no = x.first_file
    WHERE x.n > 1
) d
WHERE c.file_no = d.file_no AND c.row_no = d.row_no
"""

# Distinct codes at one spot (within about 10 cm): the later row is refused.
SAME_SPOT_IN_RUN = """
WITH spots AS (
    SELECT file_no, row_no, tree_code, gx, gy
    FROM load_checked WHERE gx IS NOT NULL AND problems = '{}'
), shared AS (
    SELECT gx, gy FROM spots GROUP BY gx, gy HAVING count(*) > 1
), ranked AS (
    SELECT s.*, first_value(tree_code) OVER w AS first_code,
           first_value(row_no) OVER w AS first_row,
           row_number() OVER w AS n
    FROM spots s JOIN shared USING (gx, gy)
    WINDOW w AS (PARTITION BY gx, gy ORDER BY file_no, row_no)
)
UPDATE load_checked c
SET problems = c.problems || format('%s: same spot as tree %s (row %s)', f.position_label,
                                    r.first_code, r.first_row)
FROM ranked r JOIN load_files f USING (file_no)
WHERE r.n > 1 AND c.file_no = r.file_no AND c.row_no = r.row_no
"""

SAME_SPOT_IN_DB = """
WITH new_rows AS MATERIALIZED (
    SELECT n.file_no, n.row_no, n.tree_code, n.geom
    FROM load_checked n
    WHERE n.geom IS NOT NULL AND n.problems = '{}'
      AND NOT EXISTS (SELECT 1 FROM smarttrees.trees e WHERE e.tree_code = n.tree_code)
), hits AS MATERIALIZED (
    SELECT r.file_no, r.row_no,
           (SELECT t.tree_code FROM smarttrees.trees t
            WHERE t.geom && ST_Expand(r.geom, 1e-6) AND t.tree_code <> r.tree_code
            LIMIT 1) AS other
    FROM new_rows r
)
UPDATE load_checked c
SET problems = c.problems || format('%s: same spot as tree %s already in the database',
                                    f.position_label, h.other)
FROM hits h JOIN load_files f USING (file_no)
WHERE h.other IS NOT NULL AND c.file_no = h.file_no AND c.row_no = h.row_no
"""


# Cheap tests first: one hashed pass each (gx, gy: the point on the 1e-6 degree grid, kept by
# the check); the ranking updates above only run when there is something to report.
ANY_DUPLICATE_CODE = """
SELECT EXISTS (SELECT FROM load_checked WHERE tree_code IS NOT NULL
               GROUP BY tree_code HAVING count(*) > 1)
"""
ANY_SHARED_SPOT = """
SELECT EXISTS (SELECT FROM load_checked WHERE gx IS NOT NULL AND problems = '{}'
               GROUP BY gx, gy HAVING count(*) > 1)
"""


def cross_checks(conn: psycopg.Connection) -> None:
    """Duplicate codes and shared spots within the run, and spots taken in the database."""
    if conn.execute(ANY_DUPLICATE_CODE).fetchone() == (True,):
        conn.execute(DUPLICATE_CODES)
    if conn.execute(ANY_SHARED_SPOT).fetchone() == (True,):
        conn.execute(SAME_SPOT_IN_RUN)
    if conn.execute("SELECT EXISTS (SELECT 1 FROM smarttrees.trees)").fetchone() == (True,):
        conn.execute(SAME_SPOT_IN_DB)
