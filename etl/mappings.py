"""Column mappings: which file column feeds which tree field, in which unit.

A mapping is a TOML file (format in ``data/mappings/README.md``). Presets ship in
``data/mappings/``; ``--mapping NAME`` picks a preset, ``--mapping FILE`` a file of one's own.
Headers are matched after folding (lower case, no diacritics, single spaces), so
"Đường kính (cm)", "duong kinh (cm)" and "ĐƯỜNG KÍNH (CM)" are one column.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from etl import headers as headers_mod
from etl.errors import MappingError
from smarttrees.domain import fold

PRESETS = Path(__file__).resolve().parent.parent / "data" / "mappings"
# The presets read together when no mapping is given: the survey forms, not the city inventories.
AUTO_PRESETS = ("vi_field_survey", "en_survey")

# Unit → factor to the stored unit (cm for diameters, m for heights and crowns).
LENGTH_UNITS_CM = {"cm": 1.0, "mm": 0.1, "m": 100.0, "in": 2.54, "inch": 2.54, "inches": 2.54}
LENGTH_UNITS_M = {"m": 1.0, "cm": 0.01, "ft": 0.3048, "feet": 0.3048, "dm": 0.1}

# The fields a tree survey can feed and the unit table of each measured one.
FIELDS = (
    "tree_code", "species", "category", "dbh", "circumference", "height", "height_class",
    "crown", "condition", "planted_on", "planted_year", "lon", "lat", "x", "y", "source",
    "point",
)
# The keys a field may set, and the top-level keys of a mapping (anything else is a typo).
FIELD_KEYS = {"columns", "unit", "values", "combine", "separator", "case", "format", "classes"}
TOP_KEYS = {"name", "crs", "fields", "fixed", "defaults", "vocabulary", "exclude", "skip"}
NUMERIC_FIELDS = ("dbh", "circumference", "height", "crown")
# Date-format tokens a person writes ("M/D/YYYY") → strptime directives.
DATE_TOKENS = (("YYYY", "%Y"), ("MM", "%m"), ("DD", "%d"), ("M", "%m"), ("D", "%d"))
UNIT_TABLES = {"dbh": LENGTH_UNITS_CM, "circumference": LENGTH_UNITS_CM,
               "height": LENGTH_UNITS_M, "crown": LENGTH_UNITS_M}
DEFAULT_UNITS = {"dbh": "cm", "circumference": "cm", "height": "m", "crown": "m"}


@dataclass(frozen=True)
class FieldSpec:
    """How one target field is read: candidate headers, unit, value vocabulary."""

    name: str
    columns: tuple[str, ...] = ()
    unit: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    combine: str | None = None      # "join" | "first": the field is built from every column
    separator: str = " "            # between joined columns
    case: str | None = None         # sentence | lower | upper | title, after joining
    format: str | None = None       # planted_on: a strptime format; point: latlon, wkt…
    classes: dict[str, float] = field(default_factory=dict)   # class → representative value

    @property
    def factor(self) -> float:
        """Multiplier from the file's unit to the stored unit."""
        if self.name not in UNIT_TABLES:
            return 1.0
        return UNIT_TABLES[self.name][self.unit or DEFAULT_UNITS[self.name]]


@dataclass(frozen=True)
class Mapping:
    """A whole column mapping: field specs, fixed values, defaults and a default CRS."""

    name: str
    fields: dict[str, FieldSpec]
    fixed: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    crs: str | None = None
    vocabulary: dict[str, dict[str, str]] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()      # headers not kept in a tree's attributes
    skip: dict[str, tuple[str, ...]] = field(default_factory=dict)   # header → values left out
    source: str = ""                   # the mapping file's name, for messages

    def column(self, table: Any, header: str, key: str) -> int:
        """The index of the file's column ``header`` (case and diacritics aside).

        Raises
        ------
        MappingError
            The file has no such column; the message names this mapping's file and ``key``.

        """
        headers = list(table.headers)
        for level in headers_mod.LEVELS[:3]:
            keys = [level(h) for h in headers]
            if level(header) in keys:
                return keys.index(level(header))
        raise MappingError(f"{self.source or self.name}: {key}: {table.path.name} has no column "
                           f"{header!r} (columns: {', '.join(headers)})")

    def match(self, headers: list[str], path: Path | str = "input") -> dict[str, int]:
        """Field → index of the header that feeds it (the rule of ``etl.headers``)."""
        return self.for_headers(headers, path)[0]

    def for_headers(self, headers: list[str],
                    path: Path | str = "input") -> tuple[dict[str, int], Mapping]:
        """Field → header index, and this mapping with the units the headers state.

        "Đường kính (mm)" feeds the diameter in millimetres whatever the mapping's unit;
        a header the same as an alias takes the mapping's unit. A header that could mean two
        fields is refused (``InputError``, row 1) by the rule of ``etl.headers``.
        """
        found = headers_mod.match(
            headers, {name: spec.columns for name, spec in self.fields.items()},
            units={name: set(UNIT_TABLES[name]) for name in self.fields if name in UNIT_TABLES},
            path=path)
        fields = dict(self.fields)
        for name, m in found.items():
            if m.unit is not None and m.unit != fields[name].unit:
                fields[name] = replace(fields[name], unit=m.unit)
        return {name: m.index for name, m in found.items()}, replace(self, fields=fields)

    def lookup(self, field_name: str) -> dict[str, str]:
        """Folded vocabulary (raw value → stored value) for a field, shared tables included."""
        table = dict(self.vocabulary.get(field_name, {}))
        spec = self.fields.get(field_name)
        if spec:
            table.update({k: str(v) for k, v in spec.values.items()})
        return {fold(k): v for k, v in table.items()}


def load_mapping(name_or_path: str | Path | None) -> Mapping:
    """A preset by name (``vi_field_survey``, ``en_survey``) or a mapping file by path.

    ``None`` gives the union of the survey-form presets (:data:`AUTO_PRESETS`), which reads
    both Vietnamese and English headers.
    """
    if name_or_path is None:
        # The Vietnamese form first: its aliases are the ones error messages name. The city
        # inventories' mappings are not read without being asked for.
        return merge([load_mapping(PRESETS / f"{p}.toml") for p in AUTO_PRESETS], "auto")
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = PRESETS / f"{name_or_path}.toml"
    if not path.exists():
        known = ", ".join(p.stem for p in sorted(PRESETS.glob("*.toml")))
        raise MappingError(f"no mapping {name_or_path!r}: give a file or one of {known}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path.name}: not valid TOML: {exc}") from exc
    return _parse(raw, path)


def _parse(raw: dict[str, Any], path: Path) -> Mapping:
    _known(path, "", raw, TOP_KEYS)
    fields: dict[str, FieldSpec] = {}
    for name, spec in raw.get("fields", {}).items():
        if name not in FIELDS:
            raise MappingError(f"{path.name}: unknown field {name!r} (known: {', '.join(FIELDS)})")
        _known(path, f"fields.{name}.", spec, FIELD_KEYS)
        columns = spec.get("columns", [])
        if isinstance(columns, str):
            columns = [columns]
        unit = spec.get("unit")
        if unit is not None and (name not in UNIT_TABLES or unit not in UNIT_TABLES[name]):
            units = ", ".join(UNIT_TABLES.get(name, {})) or "none"
            raise MappingError(f"{path.name}: field {name}: unknown unit {unit!r} (known: {units})")
        fields[name] = FieldSpec(name, tuple(columns), unit, dict(spec.get("values", {})),
                                 **_row_options(path, name, spec))
    skip = raw.get("skip", {})
    if not isinstance(skip, dict):
        raise MappingError(f"{path.name}: skip must be a table: column = [values to leave out]")
    return Mapping(
        name=raw.get("name", path.stem),
        fields=fields,
        fixed={k: str(v) for k, v in raw.get("fixed", {}).items()},
        defaults={k: str(v) for k, v in raw.get("defaults", {}).items()},
        crs=raw.get("crs"),
        vocabulary={k: {kk: str(vv) for kk, vv in v.items()}
                    for k, v in raw.get("vocabulary", {}).items()},
        exclude=tuple(_strings(raw.get("exclude", []), path, "exclude")),
        skip={k: tuple(_strings(v, path, f"skip.{k}", "values")) for k, v in skip.items()},
        source=path.name,
    )


def _known(path: Path, prefix: str, table: Any, allowed: set[str]) -> None:
    """Refuse a key the format does not have (a typo would otherwise be silently ignored)."""
    if not isinstance(table, dict):
        raise MappingError(f"{path.name}: {prefix.rstrip('.') or 'the file'} must be a table")
    for key in table:
        if key not in allowed:
            raise MappingError(f"{path.name}: {prefix}{key}: unknown option "
                               f"(known: {', '.join(sorted(allowed))})")


def _row_options(path: Path, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The open-inventory options of one field (``etl.mapping_rows``), checked."""
    from etl.mapping_rows import CASES, POINT_FORMATS

    key = f"{path.name}: fields.{name}"
    out: dict[str, Any] = {}
    combine = spec.get("combine")
    if combine is not None:
        if combine not in ("join", "first"):
            raise MappingError(f"{key}.combine: {combine!r} is not join or first")
        if not isinstance(spec.get("columns"), list) or len(spec["columns"]) < 2:
            raise MappingError(f"{key}.combine: needs columns = [two or more headers]")
        out["combine"] = combine
    if "separator" in spec:
        out["separator"] = str(spec["separator"])
    case = spec.get("case")
    if case is not None:
        if case not in CASES:
            raise MappingError(f"{key}.case: {case!r} is not one of {', '.join(CASES)}")
        out["case"] = case
    fmt = spec.get("format")
    if fmt is not None:
        if name == "point":
            if fmt not in POINT_FORMATS:
                raise MappingError(f"{key}.format: {fmt!r} is not one of "
                                   f"{', '.join(POINT_FORMATS)}")
            out["format"] = fmt
        elif name == "planted_on":
            out["format"] = _date_format(str(fmt))
        else:
            raise MappingError(f"{key}.format: only planted_on and point take a format")
    classes = spec.get("classes")
    if classes is not None:
        if name not in NUMERIC_FIELDS:
            raise MappingError(f"{key}.classes: only {', '.join(NUMERIC_FIELDS)} take classes")
        if not isinstance(classes, dict) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in classes.values()):
            raise MappingError(f"{key}.classes: give class = representative number")
        out["classes"] = {str(k): float(v) for k, v in classes.items()}
    return out


def _date_format(text: str) -> str:
    """"M/D/YYYY" or a strptime format as a strptime format."""
    if "%" in text:
        return text
    out = text
    for token, directive in DATE_TOKENS:
        out = re.sub(rf"(?<![A-Z%]){token}(?![A-Z])", directive, out)
    return out


def _strings(value: Any, path: Path, key: str, what: str = "column headers") -> list[str]:
    """A TOML value that must be a list of strings (one string is a list of one)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise MappingError(f"{path.name}: {key} must be a list of {what}")
    return items


def merge(mappings: list[Mapping], name: str) -> Mapping:
    """One mapping reading every alias, vocabulary entry and default of several."""
    fields: dict[str, FieldSpec] = {}
    vocabulary: dict[str, dict[str, str]] = {}
    defaults: dict[str, str] = {}
    exclude: tuple[str, ...] = ()
    for m in mappings:
        exclude += m.exclude
        for fname, spec in m.fields.items():
            old = fields.get(fname)
            if old is None:
                fields[fname] = spec
            elif old.unit == spec.unit:
                fields[fname] = FieldSpec(fname, old.columns + spec.columns, old.unit,
                                          {**old.values, **spec.values})
        for vocab_name, table in m.vocabulary.items():
            vocabulary.setdefault(vocab_name, {}).update(table)
        for key, value in m.defaults.items():
            defaults.setdefault(key, value)
    return Mapping(name, fields, {}, defaults, None, vocabulary, exclude)
