"""The species catalogue: the shipped ``data/species.csv``, and a deployment's own file.

:func:`load_species` adds the shipped catalogue's species a database lacks (``db upgrade``);
it never overwrites a species already there, so a catalogue loaded with
:func:`load_catalogue` (``smarttrees load species FILE``) stays as loaded.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from smarttrees.database import connect
from smarttrees.domain import fold

UPSERT = """
INSERT INTO smarttrees.species
    (scientific_name, vietnamese_name, vietnamese_ascii, family, use,
     wood_density, wood_density_source, synonyms, wood_density_level)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s,
        CASE WHEN %s::text IS NULL THEN NULL WHEN %s::text ILIKE '%%genus%%' THEN 'genus'
             ELSE 'species' END)
ON CONFLICT (scientific_name) DO NOTHING
"""


def default_catalogue() -> Path:
    """The catalogue shipped in the repository's ``data/`` folder."""
    return Path(__file__).resolve().parent.parent / "data" / "species.csv"


def load_species(conn: psycopg.Connection, path: Path | None = None) -> int:
    """Insert the catalogue's species the database lacks; return how many rows the file holds."""
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
                r["wood_density"] or None,
                r["wood_density_source"] or "",
            )
            for r in csv.DictReader(handle)
        ]
    with conn.cursor() as cur:
        cur.executemany(UPSERT, rows)
    return len(rows)


# -- a deployment's own catalogue: ``smarttrees load species FILE`` ---------------------------

DENSITY_RANGE = (0.1, 1.5)   # g/cm³: balsa's lightest to lignum vitae's heaviest, about

# Field → headers that feed it, folded (a file's own names in Vietnamese or English).
CATALOGUE_COLUMNS: dict[str, tuple[str, ...]] = {
    "scientific_name": ("scientific_name", "scientific name", "ten khoa hoc", "botanical name",
                        "latin name", "species"),
    "local_names": ("local_names", "local names", "local_name", "local name", "vietnamese_name",
                    "ten viet nam", "ten tieng viet", "ten dia phuong", "common_name",
                    "common name", "common names"),
    "family": ("family", "ho"),
    "use": ("use", "cong dung"),
    "wood_density": ("wood_density", "wood density", "wood density (g/cm3)", "wd",
                     "khoi luong rieng"),
    "synonyms": ("synonyms", "synonym", "ten dong nghia"),
}

UPSERT_CATALOGUE = """
INSERT INTO smarttrees.species AS t
    (scientific_name, vietnamese_name, vietnamese_ascii, family, use, wood_density,
     wood_density_source, wood_density_level, synonyms)
VALUES (%(scientific_name)s, %(name)s, %(ascii)s, %(family)s, %(use)s, %(wd)s, %(wd_source)s,
        %(wd_level)s, %(synonyms)s)
ON CONFLICT (scientific_name) DO UPDATE SET
    vietnamese_name = EXCLUDED.vietnamese_name, vietnamese_ascii = EXCLUDED.vietnamese_ascii,
    family = coalesce(EXCLUDED.family, t.family), use = coalesce(EXCLUDED.use, t.use),
    wood_density = coalesce(EXCLUDED.wood_density, t.wood_density),
    wood_density_source = CASE WHEN EXCLUDED.wood_density IS NULL THEN t.wood_density_source
                               ELSE EXCLUDED.wood_density_source END,
    wood_density_level = CASE WHEN EXCLUDED.wood_density IS NULL THEN t.wood_density_level
                              ELSE EXCLUDED.wood_density_level END,
    synonyms = EXCLUDED.synonyms
WHERE (t.vietnamese_name, t.family, t.use, t.wood_density, t.wood_density_source, t.synonyms)
      IS DISTINCT FROM (EXCLUDED.vietnamese_name, coalesce(EXCLUDED.family, t.family),
                        coalesce(EXCLUDED.use, t.use),
                        coalesce(EXCLUDED.wood_density, t.wood_density),
                        CASE WHEN EXCLUDED.wood_density IS NULL THEN t.wood_density_source
                             ELSE EXCLUDED.wood_density_source END, EXCLUDED.synonyms)
RETURNING (xmax = 0)
"""


@dataclass
class CatalogueResult:
    """What ``load species`` did."""

    path: Path
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    given: int = 0
    filled: dict[str, int] = field(default_factory=lambda: {"species": 0, "genus": 0,
                                                            "family": 0})
    unknown: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Lines for the terminal."""
        filled = sum(self.filled.values())
        text = (f"{self.path.name}: {self.rows} species: inserted {self.inserted}, updated "
                f"{self.updated}, unchanged {self.unchanged}; wood density given for "
                f"{self.given}, filled from the GWDD for {filled} ({self.filled['species']} "
                f"species, {self.filled['genus']} genus, {self.filled['family']} family means)")
        if self.unknown:
            text += (f"\n  no wood density for {len(self.unknown)}: "
                     f"{', '.join(self.unknown[:10])}{' …' if len(self.unknown) > 10 else ''}")
        return text


@dataclass
class _Entry:
    row: int
    scientific_name: str
    names: list[str]
    family: str | None
    use: str | None
    density: float | None
    synonyms: list[str]


def load_catalogue(url: str | None, path: Path, *, wood_densities: Path | None = None,
                   actor: str | None = None) -> CatalogueResult:
    """Merge a species file into the catalogue by scientific name; all or nothing.

    Parameters
    ----------
    url:
        Database URL; ``None`` for the configured one.
    path:
        CSV or XLSX with a scientific name column and any of local names (``;``-separated, the
        first shown), family, use, wood density (g/cm³) and synonyms (``;``-separated).
    wood_densities:
        A Global Wood Density Database table: missing densities are filled with its species
        mean, else genus mean, else family mean (recorded in ``wood_density_level``).
    actor:
        Who loads, for ``species_history`` (default ``load:<user>``).

    Raises
    ------
    InputError
        A missing scientific-name column, a repeated scientific name, a density that is not a
        number or is outside 0.1–1.5 g/cm³: the file, row and field are named; nothing changes.

    """
    import getpass

    from etl.merge import set_provenance
    from etl.wood_density import WoodDensities

    entries = read_catalogue(path)
    table = WoodDensities.from_file(wood_densities) if wood_densities else None
    result = CatalogueResult(path, rows=len(entries))
    with connect(url) as conn:
        set_provenance(conn, actor or f"load:{getpass.getuser()}", path.name)
        for e in entries:
            wd, source, level = e.density, None, None
            if wd is not None:
                source, level = f"given in {path.name}", "given"
                result.given += 1
            elif table is not None and (found := table.find(e.scientific_name, e.family)):
                wd, source, level = found.value, found.source, found.level
                result.filled[found.level] += 1
            else:
                result.unknown.append(e.scientific_name)
            name = e.names[0] if e.names else e.scientific_name
            got = conn.execute(UPSERT_CATALOGUE, {
                "scientific_name": e.scientific_name, "name": name, "ascii": fold(name),
                "family": e.family, "use": e.use, "wd": wd, "wd_source": source,
                "wd_level": level, "synonyms": _unique([*e.names[1:], *e.synonyms])}).fetchone()
            if got is None:
                result.unchanged += 1
            elif got[0]:
                result.inserted += 1
            else:
                result.updated += 1
    return result


def read_catalogue(path: Path) -> list[_Entry]:
    """The rows of a species file, checked; raises :class:`InputError` at the first bad one."""
    from etl.errors import InputError
    from etl.readers import open_table

    table = open_table(path)
    columns = _catalogue_columns(table.headers)
    if "scientific_name" not in columns:
        raise InputError(path, "no scientific name column: expected one of "
                         f"{', '.join(CATALOGUE_COLUMNS['scientific_name'])} "
                         f"(columns: {', '.join(table.headers)})", row=1)
    label = {f: table.headers[i] for f, i in columns.items()}
    entries: list[_Entry] = []
    seen: dict[str, int] = {}
    for chunk in table.chunks():
        cells = chunk.cells.to_numpy(dtype=str).tolist()
        for row_no, row in zip(chunk.row_no.tolist(), cells, strict=True):
            def cell(name: str, row: list[str] = row) -> str:
                return row[columns[name]].strip() if name in columns else ""

            scientific = " ".join(cell("scientific_name").split())
            if not scientific:
                raise InputError(path, "missing", row=row_no, field=label["scientific_name"])
            key = fold(scientific)
            if key in seen:
                raise InputError(path, f"{scientific!r} repeats row {seen[key]}: one row per "
                                 "scientific name", row=row_no, field=label["scientific_name"])
            seen[key] = row_no
            entries.append(_Entry(row_no, scientific, _split(cell("local_names")),
                                  cell("family") or None, cell("use") or None,
                                  _density(cell("wood_density"), path, row_no,
                                           label.get("wood_density")),
                                  _split(cell("synonyms"))))
    if not entries:
        raise InputError(path, "has a header but no species rows")
    return entries


def _catalogue_columns(headers: list[str]) -> dict[str, int]:
    folded = {fold(h): i for i, h in reversed(list(enumerate(headers)))}
    found: dict[str, int] = {}
    for name, aliases in CATALOGUE_COLUMNS.items():
        index = next((folded[a] for a in aliases if a in folded), None)
        if index is not None and index not in found.values():
            found[name] = index
    return found


def _density(raw: str, path: Path, row: int, label: str | None) -> float | None:
    from etl.errors import InputError

    if not raw:
        return None
    try:
        value = float(raw.replace(",", "."))
    except ValueError:
        raise InputError(path, f"{raw!r} is not a number", row=row, field=label) from None
    low, high = DENSITY_RANGE
    if not low <= value <= high:
        raise InputError(path, f"{raw} g/cm³ is outside {low}–{high} g/cm³ (a wood density in "
                         "kg/m³? divide by 1,000)", row=row, field=label)
    return value


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(";") if p.strip()]


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for n in names:
        seen.setdefault(fold(n), n)
    return list(seen.values())


# -- a survey's names the catalogue lacks: ``smarttrees species unmatched FILE`` ---------------

@dataclass
class Unmatched:
    """A species name a survey uses that the catalogue does not know."""

    name: str
    rows: int
    closest: list[str]
    family: str | None = None        # from the survey's own family column, when it has one
    local_name: str | None = None    # from its common-name column, when it has one


def unmatched(url: str | None, path: Path, *, mapping: str | Path | None = None,
              column: str | None = None) -> tuple[str, int, list[Unmatched]]:
    """The names of ``path``'s species column the catalogue lacks, most used first.

    Returns the column read, the number of distinct names in it, and the unknown ones with
    their closest catalogue names (the loader's own suggestions, ``difflib``).

    Raises
    ------
    InputError
        The file cannot be read, or has no species column (``--column`` names a missing one).

    """
    from collections import Counter

    from etl.errors import InputError
    from etl.mapping_rows import derive
    from etl.mappings import load_mapping
    from etl.readers import open_table
    from etl.validate import SpeciesIndex

    table = open_table(path)
    if column is not None:
        if column not in table.headers:
            raise InputError(path, f"no column {column!r} (columns: {', '.join(table.headers)})",
                             field=column)
        index = table.headers.index(column)
    else:
        # The mapping's row work first: a species joined from genus and epithet columns.
        table, read = derive(table, load_mapping(mapping))
        found = read.match(table.headers).get("species")
        if found is None:
            raise InputError(path, "no species column: name it with --column (columns: "
                             f"{', '.join(table.headers)})", row=1)
        index = found
    folded = {fold(h): i for i, h in enumerate(table.headers)}
    family_at = next((folded[a] for a in CATALOGUE_COLUMNS["family"] if a in folded), None)
    local_at = next((folded[a] for a in ("common_name", "common name", "ten viet nam",
                                         "local_name", "local name") if a in folded), None)
    counts: Counter[str] = Counter()
    extra: dict[str, tuple[str | None, str | None]] = {}
    for chunk in table.chunks():
        for row in chunk.cells.to_numpy(dtype=str).tolist():
            name = " ".join(row[index].split())
            if name:
                counts[name] += 1
                if name not in extra:
                    extra[name] = (row[family_at].strip() or None if family_at is not None
                                   else None,
                                   row[local_at].strip() or None if local_at is not None
                                   else None)
    with connect(url) as conn:
        species = SpeciesIndex.from_db(conn)
    unknown = [Unmatched(name, n, species.suggest(name), *extra[name])
               for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
               if species.resolve(name) is None]
    return table.headers[index], len(counts), unknown


def write_starter_catalogue(path: Path, names: list[Unmatched]) -> None:
    """A species file of the unknown names, ready to complete and load with ``load species``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["scientific_name", "local_names", "family", "wood_density", "synonyms",
                         "survey_rows", "closest_in_catalogue"])
        for u in names:
            writer.writerow([u.name, u.local_name or "", u.family or "", "", "", u.rows,
                             "; ".join(u.closest)])
