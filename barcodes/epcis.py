"""Custody events as a GS1 EPCIS 2.0 JSON-LD document, streamed.

Each scan is one EPCIS event, in the order it happened:

=============================  ===================  ==========================================
scan                           EPCIS event          CBV business step / disposition
=============================  ===================  ==========================================
log felled (first scan)        ObjectEvent ADD      commissioning / active
log felled again (re-measure)  ObjectEvent OBSERVE  commissioning / active
log at the stand's landing     ObjectEvent OBSERVE  staging_outbound / in_progress
log loaded on a truck          AggregationEvent ADD loading / in_transit (parent: the load)
log received at a mill, yard   ObjectEvent OBSERVE  receiving / in_progress (bizLocation)
log processed at the mill      TransformationEvent  creating_class_instance / inactive
log sold                       ObjectEvent OBSERVE  retail_selling / retail_sold
lot certified                  ObjectEvent OBSERVE  inspecting / conformant
lot ready                      ObjectEvent OBSERVE  storing / available
lot dispatched                 ObjectEvent OBSERVE  shipping / in_transit (quantity)
lot planted                    ObjectEvent OBSERVE  installing / active (quantity)
anything inspected             ObjectEvent OBSERVE  inspecting
=============================  ===================  ==========================================

Identifiers are GS1 Digital Link URIs when a GS1 company prefix is set (the GTINs of
:func:`barcodes.gs1.gtin14`, our code as serial ``21`` or, for a seedling lot, as batch ``10``:
the same element strings the labels carry), else our own URNs (``urn:smarttrees:timber_log:TL-…``).
Read points are ``geo:`` URIs (latitude first, RFC 5870). The volume of a log travels as
``st:volume_m3`` (m³) on its felling and loading events, the forest-product list as a
business transaction of the loading. Device ids and users are never written: the event id is a
name-based UUID of the scan's idempotency key.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import orjson
from psycopg import AsyncConnection, sql

from barcodes.codes import CodeError, ItemType, parse
from barcodes.gs1 import gtin14
from barcodes.origin import NotTimber, UnknownItem

GS1_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
NAMESPACE = "https://smarttrees.example.org/epcis#"  # our extension fields (st:volume_m3)
CONTEXT: list[Any] = [GS1_CONTEXT, {"st": NAMESPACE}]
TIME_ZONE = "+07:00"  # Indochina Time: where every scan of the province happens
_EVENT_NS = uuid.UUID("6f1c4a52-5d0e-4a8f-9d57-0c1a3a1b8e21")
FETCH_ROWS = 2_000

# (item type, event type) → (EPCIS type, action, bizStep, disposition)
MAPPING: dict[tuple[str, str], tuple[str, str | None, str, str | None]] = {
    ("timber_log", "felled"): ("ObjectEvent", "ADD", "commissioning", "active"),
    ("timber_log", "at_landing"): ("ObjectEvent", "OBSERVE", "staging_outbound", "in_progress"),
    ("timber_log", "loaded"): ("AggregationEvent", "ADD", "loading", "in_transit"),
    ("timber_log", "received"): ("ObjectEvent", "OBSERVE", "receiving", "in_progress"),
    ("timber_log", "processed"): ("TransformationEvent", None, "creating_class_instance",
                                  "inactive"),
    ("timber_log", "sold"): ("ObjectEvent", "OBSERVE", "retail_selling", "retail_sold"),
    ("seedling_lot", "certified"): ("ObjectEvent", "OBSERVE", "inspecting", "conformant"),
    ("seedling_lot", "ready"): ("ObjectEvent", "OBSERVE", "storing", "available"),
    ("seedling_lot", "dispatched"): ("ObjectEvent", "OBSERVE", "shipping", "in_transit"),
    ("seedling_lot", "planted"): ("ObjectEvent", "OBSERVE", "installing", "active"),
}
INSPECTED = ("ObjectEvent", "OBSERVE", "inspecting", None)


@dataclass(frozen=True)
class Identifiers:
    """How items are named: GS1 Digital Link under a company prefix, else our URNs."""

    company_prefix: str | None = None

    def __post_init__(self) -> None:
        if self.company_prefix is not None:  # a bad prefix is refused before any output
            for item_type in ItemType:
                gtin14(self.company_prefix, item_type)

    def item(self, item_type: str, code: str) -> str:
        """The URI of one item (for a seedling lot: its class, the lot)."""
        if self.company_prefix is None:
            return f"urn:smarttrees:{item_type}:{code}"
        gtin = gtin14(self.company_prefix, ItemType(item_type))
        ai = "10" if item_type == ItemType.SEEDLING_LOT else "21"
        return f"https://id.gs1.org/01/{gtin}/{ai}/{quote(code, safe='')}"


def event_id(device_id: str, client_event_id: str) -> str:
    """A stable, opaque event id: the same scan gives the same id in every export."""
    return f"urn:uuid:{uuid.uuid5(_EVENT_NS, device_id + chr(0) + client_event_id)}"


def geo_uri(lon: float | None, lat: float | None) -> str | None:
    """An RFC 5870 geo URI, latitude first, six decimals."""
    return None if lon is None or lat is None else f"geo:{lat:.6f},{lon:.6f}"


def _urn(kind: str, value: str) -> str:
    return f"urn:smarttrees:{kind}:{quote(value, safe='')}"


def to_event(row: dict[str, Any], ids: Identifiers) -> dict[str, Any]:
    """One custody scan (a row of :data:`_EVENTS_SQL`) as an EPCIS event."""
    item_type, event_type = row["item_type"], row["event_type"]
    kind, action, biz_step, disposition = MAPPING.get((item_type, event_type), INSPECTED)
    if event_type == "felled" and not row["first_felling"]:
        action = "OBSERVE"
    item = ids.item(item_type, row["code"])
    event: dict[str, Any] = {
        "type": kind,
        "eventTime": row["occurred_at"].astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "eventTimeZoneOffset": TIME_ZONE,
        "eventID": event_id(row["device_id"], row["client_event_id"]),
    }
    if action is not None:
        event["action"] = action
    details = row["details"]
    if kind == "AggregationEvent":
        event["parentID"] = ids.item("transport_load", details["load_code"])
        event["childEPCs"] = [item]
    elif kind == "TransformationEvent":
        event["inputEPCList"] = [item]
        event["transformationID"] = _urn("transformation", row["code"])
    elif item_type == ItemType.SEEDLING_LOT:
        quantity: dict[str, Any] = {"epcClass": item}
        if row["quantity"] is not None:
            quantity |= {"quantity": row["quantity"], "uom": "H87"}  # H87: piece (UN/ECE 20)
        event["quantityList"] = [quantity]
    else:
        event["epcList"] = [item]
    event["bizStep"] = biz_step
    if disposition is not None:
        event["disposition"] = disposition
    where = geo_uri(row["lon"], row["lat"])
    if where is not None:
        event["readPoint"] = {"id": where}
    if event_type == "received" and details.get("destination"):
        event["bizLocation"] = {"id": _urn("location", details["destination"])}
    if event_type == "loaded" and details.get("fpl_number"):
        event["bizTransactionList"] = [
            {"type": "desadv", "bizTransaction": _urn("bkls", details["fpl_number"])}
        ]
    if event_type == "dispatched" and details.get("destination"):
        event["destinationList"] = [
            {"type": "location", "destination": _urn("location", details["destination"])}
        ]
    if item_type == ItemType.TIMBER_LOG and event_type in ("felled", "loaded"):
        volume = row["volume_m3"] if event_type == "felled" else row["log_volume_m3"]
        event["st:volume_m3"] = float(Decimal(volume))
        if row["stand_code"]:
            event["st:stand"] = row["stand_code"]
    return event


_EVENTS_SQL = sql.SQL("""
SELECT e.id, e.device_id, e.client_event_id, e.code, e.item_type, e.event_type, e.occurred_at,
       e.quantity, e.volume_m3, e.details, ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat,
       g.volume_m3 AS log_volume_m3, st.stand_code,
       (e.event_type = 'felled' AND NOT EXISTS (
           SELECT 1 FROM smarttrees.scan_events p
           WHERE p.item_type = e.item_type AND p.item_id = e.item_id
             AND p.event_type = 'felled'
             AND (p.occurred_at, p.id) < (e.occurred_at, e.id))) AS first_felling
FROM smarttrees.scan_events e
LEFT JOIN smarttrees.timber_logs g ON e.item_type = 'timber_log' AND g.id = e.item_id
LEFT JOIN smarttrees.stands st ON st.id = g.stand_id
WHERE {where}
ORDER BY e.occurred_at, e.id
""")


async def item_keys(conn: AsyncConnection, codes: Sequence[str]) -> list[tuple[str, int]]:
    """(item type, id) of every item whose events ``codes`` cover.

    A transport load covers its own scans and those of its logs; a stand code, its logs.
    """
    keys: set[tuple[str, int]] = set()
    for text in codes:
        if text.strip().upper().startswith("ST-"):
            cur = await conn.execute(
                "SELECT g.id FROM smarttrees.timber_logs g JOIN smarttrees.stands st "
                "ON st.id = g.stand_id WHERE st.stand_code = %s", [text.strip().upper()]
            )
            found = [("timber_log", int(r[0])) for r in await cur.fetchall()]
            if not found:
                raise NotTimber(f"{text}: no stand with logs has this code (rule not_timber_item)")
            keys.update(found)
            continue
        try:
            code = parse(text)
        except CodeError as exc:
            raise CodeError(f"{exc}; or give a stand code such as ST-90001-0001") from None
        cur = await conn.execute(
            "SELECT item_type, item_id FROM smarttrees.tags WHERE code = %s", [str(code)]
        )
        tag = await cur.fetchone()
        if tag is None:
            raise UnknownItem(f"{code}: no tag with this code has been issued (rule unknown_code)")
        keys.add((tag[0], int(tag[1])))
        if tag[0] == "transport_load":
            cur = await conn.execute(
                "SELECT id FROM smarttrees.timber_logs WHERE load_id = %s", [tag[1]]
            )
            keys.update(("timber_log", int(r[0])) for r in await cur.fetchall())
    return sorted(keys)


def _where(
    since: datetime | None, until: datetime | None, keys: list[tuple[str, int]] | None
) -> tuple[sql.Composable, list[Any]]:
    parts: list[sql.Composable] = [sql.SQL("TRUE")]
    params: list[Any] = []
    if since is not None:
        parts.append(sql.SQL("e.occurred_at >= %s"))
        params.append(since)
    if until is not None:
        parts.append(sql.SQL("e.occurred_at < %s"))
        params.append(until)
    if keys is not None:
        parts.append(sql.SQL(
            "(e.item_type, e.item_id) IN (SELECT * FROM unnest(%s::text[], %s::int8[]))"
        ))
        params += [[k[0] for k in keys], [k[1] for k in keys]]
    return sql.SQL(" AND ").join(parts), params


async def stream_document(
    conn: AsyncConnection,
    ids: Identifiers,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    keys: list[tuple[str, int]] | None = None,
    now: datetime | None = None,
) -> AsyncIterator[bytes]:
    """The EPCIS document of the events in ``[since, until)`` (of ``keys``' items), in chunks.

    Rows come through a server-side cursor, so memory stays flat however many events match.
    The connection must not be in autocommit mode for the cursor to live (a transaction is
    opened here).
    """
    created = (now or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    head = {
        "@context": CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": created,
    }
    yield orjson.dumps(head)[:-1] + b',"epcisBody":{"eventList":['
    where, params = _where(since, until, keys)
    first = True
    async with conn.transaction(), conn.cursor(name="epcis_events") as cur:
        await cur.execute(_EVENTS_SQL.format(where=where), params)
        names = None
        while True:
            rows = await cur.fetchmany(FETCH_ROWS)
            if not rows:
                break
            if names is None:
                names = [d.name for d in cur.description or ()]
            chunk = b",".join(
                orjson.dumps(to_event(dict(zip(names, r, strict=True)), ids)) for r in rows
            )
            yield (chunk if first else b"," + chunk)
            first = False
    yield b"]}}"
