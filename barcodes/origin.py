"""What a traceability document covers: the timber logs a code names, and the stands they came from.

The three documents of a load (the EUDR geolocation file, the EPCIS events, the forest-product
list) start from the same question — which logs, from which plots — so they share this answer,
and their volumes agree by construction. A code is a tag code (``TR-`` a transport load, ``TL-``
a log, ``SL-`` a seedling lot) or a stand code (``ST-…``). A tree or a code that names nothing
is refused with the rule it breaks; a document is never made of what was left after dropping
the items that did not fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from psycopg import AsyncConnection

from barcodes.codes import CodeError, ItemType, parse
from smarttrees.errors import SmartTreesError


class TraceError(SmartTreesError):
    """A traceability document cannot be made; the message names the item and the rule."""

    rule = "trace_refused"


class NotTimber(TraceError):
    """The code names something that has no plot of origin (a tree, an unknown stand)."""

    rule = "not_timber_item"


class UnknownItem(TraceError):
    """A well-formed tag code that was never issued."""

    rule = "unknown_code"


@dataclass(frozen=True)
class Log:
    """One timber log as the documents list it (volume in m³, dimensions in m and cm)."""

    log_id: int
    code: str  # the tag code, TL-…
    log_code: str
    species: str | None  # scientific name
    species_vi: str | None
    felled_on: date
    length_m: float | None
    diameter_cm: float | None
    volume_m3: Decimal
    status: str
    stand_id: int
    stand_code: str
    load_code: str | None


@dataclass(frozen=True)
class Origin:
    """What a set of codes covers: its logs (in code order) and the stands they came from.

    ``stand_ids`` also holds stands named directly or planted from a lot, which may have no log.
    """

    codes: tuple[str, ...]
    logs: tuple[Log, ...]
    stand_ids: tuple[int, ...]

    @property
    def volume_m3(self) -> Decimal:
        """The volume of every log covered."""
        return sum((log.volume_m3 for log in self.logs), Decimal(0))


_LOG_SELECT = (
    "SELECT g.id, t.code, g.log_code, s.scientific_name, s.vietnamese_name, g.felled_on, "
    "  g.length_m, g.diameter_cm, g.volume_m3, g.status, g.stand_id, st.stand_code, lt.code "
    "FROM smarttrees.timber_logs g "
    "JOIN smarttrees.tags t ON t.item_type = 'timber_log' AND t.item_id = g.id "
    "JOIN smarttrees.stands st ON st.id = g.stand_id "
    "LEFT JOIN smarttrees.species s ON s.id = g.species_id "
    "LEFT JOIN smarttrees.tags lt ON lt.item_type = 'transport_load' AND lt.item_id = g.load_id "
)


async def resolve(conn: AsyncConnection, codes: Sequence[str]) -> Origin:
    """The logs and stands ``codes`` cover.

    Raises
    ------
    CodeError
        A code is neither a stand code nor a valid tag code (rule ``bad_code``).
    NotTimber
        A code names a tree, or a stand code that is not recorded.
    UnknownItem
        A tag code that was never issued.

    """
    if not codes:
        raise TraceError("name at least one code: a transport load, a log, a lot or a stand")
    log_ids: set[int] = set()
    stand_ids: set[int] = set()
    canonical: list[str] = []
    for text in codes:
        name, their_logs, their_stands = await _one(conn, text)
        canonical.append(name)
        log_ids |= their_logs
        stand_ids |= their_stands
    cur = await conn.execute(
        _LOG_SELECT + "WHERE g.id = ANY(%s) ORDER BY t.code", [sorted(log_ids)]
    )
    logs = tuple(
        Log(
            log_id=int(r[0]), code=r[1], log_code=r[2], species=r[3], species_vi=r[4],
            felled_on=r[5], length_m=r[6], diameter_cm=r[7], volume_m3=Decimal(r[8]),
            status=r[9], stand_id=int(r[10]), stand_code=r[11], load_code=r[12],
        )
        for r in await cur.fetchall()
    )
    stand_ids |= {log.stand_id for log in logs}
    return Origin(tuple(canonical), logs, tuple(sorted(stand_ids)))


async def _one(conn: AsyncConnection, text: str) -> tuple[str, set[int], set[int]]:
    """(canonical code, log ids, stand ids) of one code."""
    if text.strip().upper().startswith("ST-"):
        cur = await conn.execute(
            "SELECT id FROM smarttrees.stands WHERE stand_code = %s", [text.strip().upper()]
        )
        row = await cur.fetchone()
        if row is None:
            raise NotTimber(f"{text}: no stand has this code (rule not_timber_item)")
        cur = await conn.execute(
            "SELECT id FROM smarttrees.timber_logs WHERE stand_id = %s", [row[0]]
        )
        return text.strip().upper(), {int(r[0]) for r in await cur.fetchall()}, {int(row[0])}
    try:
        code = parse(text)
    except CodeError as exc:
        raise CodeError(f"{exc}; or give a stand code such as ST-90001-0001") from None
    cur = await conn.execute(
        "SELECT item_id FROM smarttrees.tags WHERE code = %s", [str(code)]
    )
    tag = await cur.fetchone()
    if tag is None:
        raise UnknownItem(f"{code}: no tag with this code has been issued (rule unknown_code)")
    item_id = int(tag[0])
    if code.item_type is ItemType.TIMBER_LOG:
        return str(code), {item_id}, set()
    if code.item_type is ItemType.TRANSPORT_LOAD:
        cur = await conn.execute(
            "SELECT id FROM smarttrees.timber_logs WHERE load_id = %s", [item_id]
        )
        logs = {int(r[0]) for r in await cur.fetchall()}
        if not logs:
            raise NotTimber(f"{code}: this transport load carries no logs (rule not_timber_item)")
        return str(code), logs, set()
    if code.item_type is ItemType.SEEDLING_LOT:
        # A lot's plots are the stands it was planted in: where its timber will come from.
        cur = await conn.execute(
            "SELECT DISTINCT st.id FROM smarttrees.scan_events e "
            "JOIN smarttrees.stands st ON st.stand_code = e.details ->> 'to_stand' "
            "WHERE e.item_type = 'seedling_lot' AND e.item_id = %s "
            "AND e.event_type = 'dispatched'",
            [item_id],
        )
        stands = {int(r[0]) for r in await cur.fetchall()}
        if not stands:
            raise NotTimber(
                f"{code}: this seedling lot was not dispatched to any stand, so it has no plot "
                "(rule not_timber_item)"
            )
        return str(code), set(), stands
    raise NotTimber(
        f"{code} is a {code.item_type.value}, not a timber item: give a transport load (TR-), "
        "a log (TL-), a seedling lot (SL-) or a stand (ST-) (rule not_timber_item)"
    )
