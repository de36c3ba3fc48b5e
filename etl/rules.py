"""The field rules of every loader, as data: one table per kind of input.

Each :class:`Rule` says what a field holds (its kind), whether a row needs it, its plausible
range and unit, its longest text, the vocabulary its values come from and the headers that
feed it. The one checker (:mod:`etl.checker`) reads these tables for tree surveys
(:data:`TREES`), nurseries, seedling lots and plantation stands (:data:`SEED`) and
administrative units (:data:`ADMIN`); no loader writes a rule of its own.

Tree headers are matched through the mappings (``data/mappings/*.toml``, which also give unit
conversions and vocabularies); seed and admin files through the aliases here.

>>> TREES["dbh"].range
(0.0, 500.0)
>>> [r.name for r in SEED["lots"] if r.required]
['lot_code', 'nursery_id', 'species_id', 'quantity']
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

# Kinds: text; number (float, NaN for empty); integer (a whole number); date (a day as
# surveys write it); year; lookup (resolved once per distinct value: species, condition,
# category, a height class, a nursery); choice (one of ``vocabulary``); unit_code (an
# administrative code of ``smarttrees.territory``).
KINDS = frozenset({"text", "number", "integer", "date", "year", "lookup", "choice", "unit_code"})


@dataclass(frozen=True)
class Rule:
    """What one field accepts."""

    name: str
    kind: str = "text"
    required: bool = False
    aliases: tuple[str, ...] = ()
    low: float | None = None        # a number must be > low …
    high: float | None = None       # … and <= high (an integer: >= low)
    unit: str | None = None         # stored unit, named in range messages
    max_length: int | None = None
    vocabulary: str | None = None   # lookup: which resolver; choice: a key of VOCABULARIES
    label: str | None = None        # how messages name it when the file has no header for it

    @property
    def range(self) -> tuple[float, float] | None:
        """(low, high) of a number with a plausible range."""
        if self.low is None or self.high is None:
            return None
        return self.low, self.high


@dataclass(frozen=True)
class Rules:
    """The rules of one kind of input, by field name."""

    rules: tuple[Rule, ...]

    def __getitem__(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __contains__(self, name: object) -> bool:
        return any(rule.name == name for rule in self.rules)

    def names(self, *kinds: str) -> tuple[str, ...]:
        """The fields of the given kinds, in table order."""
        return tuple(r.name for r in self.rules if r.kind in kinds)

    def aliases(self) -> dict[str, tuple[str, ...]]:
        """Field → headers that feed it (for :func:`etl.headers.match`)."""
        return {r.name: r.aliases for r in self.rules if r.aliases}


# -- tree surveys ------------------------------------------------------------------------------

TREES = Rules((
    Rule("tree_code", required=True, max_length=64, label="tree code"),
    Rule("species", "lookup", required=True, vocabulary="species"),
    Rule("category", "lookup", required=True, vocabulary="category"),
    Rule("condition", "lookup", vocabulary="condition"),
    Rule("planted_on", "lookup", vocabulary="date"),
    Rule("planted_year", "lookup", vocabulary="year"),
    Rule("height_class", "lookup", vocabulary="height_class"),
    Rule("dbh", "number", low=0.0, high=500.0, unit="cm", label="diameter"),
    Rule("circumference", "number", unit="cm"),
    Rule("height", "number", low=0.0, high=120.0, unit="m"),
    Rule("crown", "number", low=0.0, high=80.0, unit="m"),
    Rule("lon", "number", label="longitude"),
    Rule("lat", "number", label="latitude"),
    Rule("x", "number"),
    Rule("y", "number"),
    Rule("source"),
))

# -- seed data ---------------------------------------------------------------------------------

OWNER_TYPES = {"nha nuoc": "state", "state": "state", "doanh nghiep": "company",
               "cong ty": "company", "company": "company", "hop tac xa": "cooperative",
               "cooperative": "cooperative",
               "ho gia dinh": "household", "household": "household", "cong dong": "community",
               "community": "community"}
FUNCTIONS = {"san xuat": "production", "production": "production", "phong ho": "protection",
             "protection": "protection", "dac dung": "special_use", "special use": "special_use",
             "special_use": "special_use"}
VOCABULARIES = {"owner_type": OWNER_TYPES, "forest_function": FUNCTIONS}

SEED = {
    "nurseries": Rules((
        Rule("nursery_code", required=True, aliases=("nursery_code", "Mã vườn ươm", "code")),
        Rule("name", required=True, aliases=("name", "Tên vườn ươm", "Tên")),
        Rule("operator", aliases=("operator", "Chủ vườn ươm", "Đơn vị quản lý", "Chủ sở hữu")),
        Rule("certificate_no", aliases=("certificate_no", "Số giấy chứng nhận",
                                        "Giấy chứng nhận")),
        Rule("capacity", "integer", low=0,
             aliases=("capacity", "Công suất (cây/năm)", "Công suất")),
    )),
    "lots": Rules((
        Rule("lot_code", required=True, aliases=("lot_code", "Mã lô", "Mã lô cây giống")),
        Rule("nursery_id", "lookup", required=True, vocabulary="nursery",
             aliases=("nursery_code", "Mã vườn ươm")),
        Rule("species_id", "lookup", required=True, vocabulary="species",
             aliases=("species", "Loài", "Tên cây", "Loài cây")),
        Rule("seed_source", aliases=("seed_source", "Nguồn giống")),
        Rule("quantity", "integer", required=True, low=1,
             aliases=("quantity", "Số lượng", "Số lượng (cây)")),
        Rule("certificate_no", aliases=("certificate_no", "Số giấy chứng nhận", "Chứng chỉ")),
        Rule("sown_on", "date", aliases=("sown_on", "Ngày gieo")),
        Rule("ready_on", "date", aliases=("ready_on", "Ngày xuất vườn", "Ngày đủ tiêu chuẩn")),
    )),
    "stands": Rules((
        Rule("stand_code", required=True, aliases=("stand_code", "Mã lô rừng", "Mã lô", "code")),
        Rule("species_id", "lookup", vocabulary="species",
             aliases=("species", "Loài cây", "Loài", "Tên cây")),
        Rule("planting_year", "year", aliases=("planting_year", "Năm trồng")),
        Rule("planted_count", "integer", low=0,
             aliases=("planted_count", "Số cây trồng", "Mật độ trồng")),
        Rule("owner_type", "choice", vocabulary="owner_type",
             aliases=("owner_type", "Loại chủ rừng")),
        Rule("owner_name", aliases=("owner_name", "Chủ rừng")),
        Rule("forest_function", "choice", vocabulary="forest_function",
             aliases=("forest_function", "Chức năng", "Loại rừng")),
    )),
}

# -- administrative units ------------------------------------------------------------------------

# Admin headers are matched by these patterns ({level}: commune…; {vi}: xa…), folded.
ADMIN = Rules((
    Rule("code", "unit_code", required=True,
         aliases=("code", "{level}_code", "ma", "ma_{vi}", "ma_dvhc")),
    Rule("name", required=True, aliases=("name", "name_vi", "{level}_name", "ten", "ten_{vi}")),
    Rule("unit_type", aliases=("division_type", "unit_type", "type", "{level}_type", "loai")),
    Rule("parent_code"),
))
