"""Column mappings: which file column feeds which tree field, in which unit.

A mapping is a TOML file (format in ``data/mappings/README.md``). Presets ship in
``data/mappings/``; ``--mapping NAME`` picks a preset, ``--mapping FILE`` a file of one's own.
Headers are matched after folding (lower case, no diacritics, single spaces), so
"Đường kính (cm)", "duong kinh (cm)" and "ĐƯỜNG KÍNH (CM)" are one column.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from etl import headers as headers_mod
from etl.errors import MappingError
from smarttrees.domain import fold

PRESETS = Path(__file__).resolve().parent.parent / "data" / "mappings"

# Unit → factor to the stored unit (cm for diameters, m for heights and crowns).
LENGTH_UNITS_CM = {"cm": 1.0, "mm": 0.1, "m": 100.0, "in": 2.54, "inch": 2.54, "inches": 2.54}
LENGTH_UNITS_M = {"m": 1.0, "cm": 0.01, "ft": 0.3048, "feet": 0.3048, "dm": 0.1}

# The fields a tree survey can feed and the unit table of each measured one.
FIELDS = (
    "tree_code", "species", "category", "dbh", "circumference", "height", "height_class",
    "crown", "condition", "planted_on", "planted_year", "lon", "lat", "x", "y", "source",
)
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

    ``None`` gives the union of the shipped presets, which reads both Vietnamese and English
    headers.
    """
    if name_or_path is None:
        # The Vietnamese form first: its aliases are the ones error messages name.
        presets = sorted(PRESETS.glob("*.toml"), key=lambda p: (p.stem != "vi_field_survey", p))
        return merge([load_mapping(p) for p in presets], "auto")
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
    fields: dict[str, FieldSpec] = {}
    for name, spec in raw.get("fields", {}).items():
        if name not in FIELDS:
            raise MappingError(f"{path.name}: unknown field {name!r} (known: {', '.join(FIELDS)})")
        columns = spec.get("columns", [])
        if isinstance(columns, str):
            columns = [columns]
        unit = spec.get("unit")
        if unit is not None and (name not in UNIT_TABLES or unit not in UNIT_TABLES[name]):
            units = ", ".join(UNIT_TABLES.get(name, {})) or "none"
            raise MappingError(f"{path.name}: field {name}: unknown unit {unit!r} (known: {units})")
        fields[name] = FieldSpec(name, tuple(columns), unit, dict(spec.get("values", {})))
    return Mapping(
        name=raw.get("name", path.stem),
        fields=fields,
        fixed={k: str(v) for k, v in raw.get("fixed", {}).items()},
        defaults={k: str(v) for k, v in raw.get("defaults", {}).items()},
        crs=raw.get("crs"),
        vocabulary={k: {kk: str(vv) for kk, vv in v.items()}
                    for k, v in raw.get("vocabulary", {}).items()},
        exclude=tuple(_strings(raw.get("exclude", []), path, "exclude")),
    )


def _strings(value: Any, path: Path, key: str) -> list[str]:
    """A TOML value that must be a list of strings (one string is a list of one)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise MappingError(f"{path.name}: {key} must be a list of column headers")
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
