"""Tags: issue a code for existing items, and look up what their labels show.

An item's code is derived from its id (:func:`barcodes.codes.make_code`), so issuing is
idempotent: an item that already has a tag keeps it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import AsyncConnection

from barcodes.codes import CodeError, ItemType, make_code, parse
from barcodes.labels import LabelInfo
from smarttrees.errors import SmartTreesError

_TABLES = {
    ItemType.SEEDLING_LOT: "seedling_lots",
    ItemType.TIMBER_LOG: "timber_logs",
    ItemType.TRANSPORT_LOAD: "transport_loads",
    ItemType.TREE: "trees",
}


class TagError(SmartTreesError):
    """Tags cannot be issued (unknown items, unknown stand)."""

    rule = "tag"


def issue_tags(
    conn: psycopg.Connection, item_type: ItemType | str, ids: Sequence[int]
) -> dict[int, str]:
    """Give each item a tag (once: an item keeps its code) and return {item id: code}.

    Raises
    ------
    TagError
        Some ids are not rows of the item type's table (the message lists a few).

    """
    item_type = ItemType(item_type)
    wanted = sorted(set(ids))
    table = psycopg.sql.Identifier("smarttrees", _TABLES[item_type])
    found = {
        r[0]
        for r in conn.execute(
            psycopg.sql.SQL("SELECT id FROM {} WHERE id = ANY(%s)").format(table), [wanted]
        )
    }
    missing = [i for i in wanted if i not in found]
    if missing:
        raise TagError(
            f"no {item_type.value} with id {', '.join(map(str, missing[:5]))}"
            + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else "")
        )
    conn.execute(
        "INSERT INTO smarttrees.tags (code, item_type, item_id) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::int8[]) "
        "ON CONFLICT (item_type, item_id) DO NOTHING",
        [[make_code(item_type, i) for i in wanted], [item_type.value] * len(wanted), wanted],
    )
    rows = conn.execute(
        "SELECT item_id, code FROM smarttrees.tags WHERE item_type = %s AND item_id = ANY(%s)",
        [item_type.value, wanted],
    ).fetchall()
    return {int(r[0]): r[1] for r in rows}


def lot_ids(conn: psycopg.Connection, lot_codes: Sequence[str]) -> list[int]:
    """Ids of seedling lots given by lot code or tag code, in the order given."""
    ids: list[int] = []
    for text in lot_codes:
        row = conn.execute(
            "SELECT id FROM smarttrees.seedling_lots WHERE lot_code = %s", [text]
        ).fetchone()
        if row is None:
            try:
                code = parse(text)
            except CodeError:
                raise TagError(f"no seedling lot {text!r}") from None
            if code.item_type is not ItemType.SEEDLING_LOT:
                raise TagError(f"{text} is a {code.item_type.value}, not a seedling lot")
            row = (code.number,)
        ids.append(int(row[0]))
    return ids


def stand_log_ids(conn: psycopg.Connection, stand_code: str) -> list[int]:
    """Ids of the timber logs of a stand, by id."""
    stand = conn.execute(
        "SELECT id FROM smarttrees.stands WHERE stand_code = %s", [stand_code]
    ).fetchone()
    if stand is None:
        raise TagError(f"no stand {stand_code!r}")
    rows = conn.execute(
        "SELECT id FROM smarttrees.timber_logs WHERE stand_id = %s ORDER BY id", [stand[0]]
    ).fetchall()
    return [int(r[0]) for r in rows]


LABEL_SQL = """
SELECT t.code, t.item_type, t.item_id,
       coalesce(sl.vietnamese_name || ' (' || sl.scientific_name || ')',
                sg.vietnamese_name || ' (' || sg.scientific_name || ')',
                st.vietnamese_name || ' (' || st.scientific_name || ')') AS species,
       coalesce(n.name, s.stand_code || coalesce(' · ' || cs.name, ''),
                tr.commune_code || coalesce(' · ' || ct.name, ''),
                'FPL ' || lo.fpl_number) AS origin,
       coalesce(l.sown_on, g.felled_on, tr.planted_on, lo.created_at::date) AS day
FROM smarttrees.tags t
LEFT JOIN smarttrees.seedling_lots l ON t.item_type = 'seedling_lot' AND l.id = t.item_id
LEFT JOIN smarttrees.species sl ON sl.id = l.species_id
LEFT JOIN smarttrees.nurseries n ON n.id = l.nursery_id
LEFT JOIN smarttrees.timber_logs g ON t.item_type = 'timber_log' AND g.id = t.item_id
LEFT JOIN smarttrees.species sg ON sg.id = g.species_id
LEFT JOIN smarttrees.stands s ON s.id = g.stand_id
LEFT JOIN smarttrees.communes cs ON cs.code = s.commune_code
LEFT JOIN smarttrees.trees tr ON t.item_type = 'tree' AND tr.id = t.item_id
LEFT JOIN smarttrees.species st ON st.id = tr.species_id
LEFT JOIN smarttrees.communes ct ON ct.code = tr.commune_code
LEFT JOIN smarttrees.transport_loads lo ON t.item_type = 'transport_load' AND lo.id = t.item_id
WHERE t.code = ANY(%s)
"""


def _label(row: Sequence[Any], server_url: str | None) -> LabelInfo:
    url = None
    if row[1] == ItemType.TREE.value and server_url:
        url = f"{server_url.rstrip('/')}/collections/trees/items/{row[2]}"
    return LabelInfo(row[0], row[3], row[4], row[5], url)


def label_infos(
    conn: psycopg.Connection, codes: Sequence[str], server_url: str | None = None
) -> list[LabelInfo]:
    """What to print on the tags ``codes`` (issued codes only), in the order given."""
    rows = {r[0]: r for r in conn.execute(LABEL_SQL, [list(codes)])}
    return [_label(rows[c], server_url) for c in codes if c in rows]


async def label_info(
    conn: AsyncConnection, code: str, server_url: str | None = None
) -> LabelInfo | None:
    """What to print on one issued tag, or ``None`` when the code was never issued."""
    cur = await conn.execute(LABEL_SQL, [[code]])
    row = await cur.fetchone()
    return _label(row, server_url) if row else None
