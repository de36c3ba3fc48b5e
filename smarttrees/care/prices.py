"""The price catalogue of tree work (VND): a loadable table, replaced whole by each load.

A price applies per tree whose diameter falls in its band (``dbh_min_cm`` ≤ dbh <
``dbh_max_cm``; no upper bound when empty); a tree without a diameter takes the lowest band.
Planting is priced per spot. The shipped ``data/care/prices.csv`` is an example to replace
with the department's own contract prices.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smarttrees.care.errors import CareError
from smarttrees.care.vocabulary import WorkType


class Price(BaseModel):
    """One row of the catalogue. Example: ``Price(work_type="pruning", price_vnd=350000)``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    work_type: WorkType
    dbh_min_cm: float = Field(0, ge=0)
    dbh_max_cm: float | None = Field(None, gt=0)
    price_vnd: int = Field(ge=0)
    description: str | None = Field(None, max_length=500)


def read_prices(path: Path) -> list[Price]:
    """The rows of a catalogue CSV; every bad cell named by file, row and field.

    Raises
    ------
    CareError
        ``invalid_price``: a row breaks the vocabulary or a range, bands of one work type
        overlap, or the file holds no row.

    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        raw = [{k: v for k, v in row.items() if k and v is not None and v.strip()}
               for row in csv.DictReader(handle)]
    prices: list[Price] = []
    problems: list[str] = []
    for i, row in enumerate(raw):
        try:
            price = Price.model_validate(row)
        except ValidationError as exc:
            problems += [f"{path} row {i + 2}, {'.'.join(map(str, e['loc']))}: {e['msg']}"
                         for e in exc.errors()]
            continue
        if price.dbh_max_cm is not None and price.dbh_max_cm <= price.dbh_min_cm:
            problems.append(f"{path} row {i + 2}, dbh_max_cm: not above dbh_min_cm")
        prices.append(price)
    problems += _overlaps(prices, path)
    if not raw:
        problems.append(f"{path}: no price rows")
    if problems:
        raise CareError("invalid_price", "nothing loaded: " + "; ".join(problems[:10]))
    return prices


def _overlaps(prices: list[Price], path: Path) -> list[str]:
    by_type: dict[str, list[Price]] = {}
    for p in prices:
        by_type.setdefault(p.work_type, []).append(p)
    problems = []
    for work_type, bands in by_type.items():
        bands.sort(key=lambda p: p.dbh_min_cm)
        for low, high in zip(bands, bands[1:], strict=False):
            if low.dbh_max_cm is None or low.dbh_max_cm > high.dbh_min_cm:
                problems.append(f"{path}: {work_type} bands from {low.dbh_min_cm:g} and "
                                f"{high.dbh_min_cm:g} cm overlap")
    return problems


async def load_prices(conn: AsyncConnection, prices: list[Price]) -> int:
    """Replace the catalogue with ``prices`` in one transaction; return the rows loaded."""
    async with conn.transaction():
        await conn.execute("DELETE FROM smarttrees.care_prices")
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO smarttrees.care_prices (work_type, dbh_min_cm, dbh_max_cm, "
                "price_vnd, description) VALUES (%s, %s, %s, %s, %s)",
                [(p.work_type, p.dbh_min_cm, p.dbh_max_cm, p.price_vnd, p.description)
                 for p in prices],
            )
    return len(prices)


async def list_prices(conn: AsyncConnection) -> list[dict[str, Any]]:
    """The catalogue, by work type and band."""
    cur = await conn.execute(
        "SELECT work_type, dbh_min_cm, dbh_max_cm, price_vnd, description "
        "FROM smarttrees.care_prices ORDER BY work_type, dbh_min_cm")
    names = ("work_type", "dbh_min_cm", "dbh_max_cm", "price_vnd", "description")
    return [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]


# The price of each tree of an order: its band, or the lowest band without a diameter.
TREE_PRICE = """
SELECT p.price_vnd FROM smarttrees.care_prices p
WHERE p.work_type = %(work_type)s
  AND (t.dbh_cm IS NULL OR (p.dbh_min_cm <= t.dbh_cm
       AND (p.dbh_max_cm IS NULL OR t.dbh_cm < p.dbh_max_cm)))
ORDER BY p.dbh_min_cm LIMIT 1
"""
