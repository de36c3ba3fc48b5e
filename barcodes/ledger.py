"""The in/out ledger (sổ nhập, xuất lâm sản) of a sawmill or timber yard, day by day.

Circular 26/2022/TT-BNNPTNT asks every stage that holds timber to keep a ledger of what came in
and went out. Ours is read from the custody chain: a log comes in with its ``received`` scan at
the place, and goes out when it is ``processed`` or ``sold`` there. Days are local days
(Asia/Ho_Chi_Minh); volumes are the logs' recorded volumes (m³). The balance after each day is
the opening balance plus what came in minus what went out; it can never go negative, since a log
must be received before it is processed or sold — if it ever did, the records are inconsistent
and the ledger is refused rather than printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from psycopg import AsyncConnection

from barcodes.origin import TraceError

TIME_ZONE = "Asia/Ho_Chi_Minh"


class UnknownPlace(TraceError):
    """No log was ever received at the named mill or yard."""

    rule = "unknown_place"


class LedgerInconsistent(TraceError):
    """The records would make a balance negative: more went out than came in."""

    rule = "ledger_negative"


@dataclass(frozen=True)
class Day:
    """One line of the ledger: a day's movements and the balance after them."""

    day: date
    in_logs: int
    in_m3: Decimal
    processed_logs: int
    processed_m3: Decimal
    sold_logs: int
    sold_m3: Decimal
    balance_logs: int
    balance_m3: Decimal


@dataclass(frozen=True)
class Ledger:
    """The ledger of one place over ``[start, end)`` (either open), with its opening balance."""

    place: str
    start: date | None
    end: date | None
    opening_logs: int
    opening_m3: Decimal
    days: tuple[Day, ...]


_MOVES_SQL = """
WITH came AS (
    SELECT e.item_id, e.occurred_at FROM smarttrees.scan_events e
    WHERE e.item_type = 'timber_log' AND e.event_type = 'received'
      AND e.details ->> 'destination' = %(place)s
), moves AS (
    SELECT item_id, occurred_at, 'in' AS kind FROM came
    UNION ALL
    SELECT e.item_id, e.occurred_at, e.event_type FROM smarttrees.scan_events e
    JOIN came USING (item_id)
    WHERE e.item_type = 'timber_log' AND e.event_type IN ('processed', 'sold')
)
SELECT (m.occurred_at AT TIME ZONE %(tz)s)::date AS day, m.kind, count(*), sum(g.volume_m3)
FROM moves m JOIN smarttrees.timber_logs g ON g.id = m.item_id
GROUP BY 1, 2 ORDER BY 1, 2
"""


async def places(conn: AsyncConnection) -> list[str]:
    """Every mill or yard that has received a log."""
    cur = await conn.execute(
        "SELECT DISTINCT details ->> 'destination' FROM smarttrees.scan_events "
        "WHERE item_type = 'timber_log' AND event_type = 'received' ORDER BY 1"
    )
    return [r[0] for r in await cur.fetchall() if r[0]]


async def ledger(
    conn: AsyncConnection, place: str, start: date | None = None, end: date | None = None
) -> Ledger:
    """The ledger of ``place`` (a mill or yard's name, as its ``received`` scans give it).

    Raises
    ------
    UnknownPlace
        No log was received at ``place`` (the message lists the places that exist).
    LedgerInconsistent
        A balance would go negative.

    """
    cur = await conn.execute(_MOVES_SQL, {"place": place, "tz": TIME_ZONE})
    rows = await cur.fetchall()
    if not rows:
        known = "; ".join(await places(conn)) or "none yet"
        raise UnknownPlace(f"{place!r}: no log was received there (rule unknown_place); "
                           f"places: {known}")
    moves: dict[date, dict[str, tuple[int, Decimal]]] = {}
    for day, kind, count, volume in rows:
        moves.setdefault(day, {})[kind] = (int(count), Decimal(volume))
    logs, m3 = 0, Decimal(0)
    opening: tuple[int, Decimal] | None = None
    days: list[Day] = []
    for day in sorted(moves):
        if end is not None and day >= end:
            break
        if start is not None and day >= start and opening is None:
            opening = (logs, m3)
        got = moves[day]
        came, processed, sold = (got.get(k, (0, Decimal(0))) for k in ("in", "processed", "sold"))
        logs += came[0] - processed[0] - sold[0]
        m3 += came[1] - processed[1] - sold[1]
        if logs < 0 or m3 < 0:
            raise LedgerInconsistent(f"{place}: on {day} more logs went out than came in "
                                     "(rule ledger_negative)")
        if start is None or day >= start:
            days.append(Day(day, came[0], came[1], processed[0], processed[1], sold[0], sold[1],
                            logs, m3))
    if opening is None:  # the period starts after the last movement, or none was asked
        opening = (logs, m3) if start is not None else (0, Decimal(0))
    return Ledger(place, start, end, opening[0], opening[1], tuple(days))


COLUMNS = ("Ngày", "Nhập (lóng)", "Nhập (m³)", "Xuất chế biến (lóng)", "Xuất chế biến (m³)",
           "Xuất bán (lóng)", "Xuất bán (m³)", "Tồn (lóng)", "Tồn (m³)")


def table(book: Ledger) -> list[list[object]]:
    """The ledger as rows: the header, the opening balance, one row a day."""
    rows: list[list[object]] = [list(COLUMNS)]
    opened = book.start.isoformat() if book.start else "—"
    rows.append([f"Tồn đầu kỳ {opened}", "", "", "", "", "", "", book.opening_logs,
                 book.opening_m3])
    for d in book.days:
        rows.append([d.day.isoformat(), d.in_logs, d.in_m3, d.processed_logs, d.processed_m3,
                     d.sold_logs, d.sold_m3, d.balance_logs, d.balance_m3])
    return rows


def to_csv(book: Ledger) -> bytes:
    """The ledger as UTF-8 CSV (with a BOM, so spreadsheet programs read the diacritics)."""
    import csv
    import io

    text = io.StringIO()
    csv.writer(text).writerows(table(book))
    return ("\ufeff" + text.getvalue()).encode()


def to_xlsx(book: Ledger) -> bytes:
    """The ledger as an XLSX workbook, volumes as numbers."""
    import io

    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "So nhap xuat"
    sheet.append([f"SỔ NHẬP, XUẤT LÂM SẢN — {book.place}"])
    for row in table(book):
        sheet.append([float(c) if isinstance(c, Decimal) else c for c in row])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
