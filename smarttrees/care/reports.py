"""Hazard reports from the public: anyone may report a dangerous or fallen tree, no account.

A report holds a position (a point on the map) or a tree (the URL its tag's QR code opens, its
tree code, or its tag code), the kind of hazard, and optionally a photo, a note and a contact.
What the reporter types or sends is kept in the restricted schema and never published; the
contact is personal data, shown only to staff opening the report, and each such reading is
written to ``restricted.access_log``. The public part of a report is its position, kind,
status and the day it came in.

Reports are rate-limited per sender: the address a report comes from is kept only as a salted
hash, and more than ``per_hour`` reports from one hash in an hour are refused (rule
``rate_limited``). Staff triage a new report: accepted, it becomes a work order (origin
``report``); rejected, it is closed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from psycopg import AsyncConnection, sql
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from smarttrees import photos
from smarttrees.accounts import Principal
from smarttrees.care.errors import CareError
from smarttrees.care.orders import OrderRequest, insert_order
from smarttrees.care.vocabulary import WorkType
from smarttrees.territory import sql_inside

HAZARDS: dict[str, tuple[str, str]] = {
    "fallen": ("a fallen tree", "cây đổ"),
    "leaning": ("a leaning tree that may fall", "cây nghiêng, có thể đổ"),
    "broken_branch": ("a broken or hanging branch", "cành gãy, cành treo"),
    "dead": ("a dead tree", "cây chết"),
    "blocking": ("a tree blocking a road or path", "cây chắn đường"),
    "other": ("another danger", "nguy hiểm khác"),
}
STATUSES = ("new", "accepted", "rejected")  # the CHECK of care_reports.status
PHOTO_TYPES = photos.PHOTO_TYPES
_ITEM_URL = re.compile(r"/collections/trees/items/([0-9]{1,18})/?(?:\?.*)?$")


class Report(BaseModel):
    """What a reporter sends (besides the photo)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    hazard: str
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    tree: str | None = Field(None, max_length=300, description="QR code URL, tree or tag code")
    note: str | None = Field(None, max_length=2000)
    contact: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _check(self) -> Report:
        if self.hazard not in HAZARDS:
            raise ValueError(f"hazard: {self.hazard!r}; use one of {', '.join(HAZARDS)}")
        if (self.lon is None) != (self.lat is None):
            raise ValueError("lon and lat go together")
        if self.lon is None and not self.tree:
            raise ValueError("mark the place on the map or give the tree's code")
        return self


def parse_report(fields: dict[str, Any]) -> Report:
    """A checked report; ``invalid_report`` naming each bad field."""
    fields = {k: v for k, v in fields.items() if v not in (None, "")}
    try:
        return Report.model_validate(fields)
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'report'}: "
                    f"{str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors()]
        raise CareError("invalid_report", "; ".join(problems)) from None


def photo_type(photo: bytes) -> str:
    """The media type of a photo Pillow can read (JPEG, PNG, WebP); ``bad_image`` otherwise."""
    try:
        return photos.inspect_photo(photo).media_type
    except photos.PhotoError as exc:
        raise CareError(exc.rule, exc.message) from None


async def _sender_hash(conn: AsyncConnection, sender: str) -> str:
    cur = await conn.execute(
        "SELECT encode(sha256(convert_to(salt || %s, 'UTF8')), 'hex') "
        "FROM restricted.care_report_salt", [sender])
    row = await cur.fetchone()
    assert row is not None, "migration 0012_care_reports makes the salt"
    return str(row[0])


async def _check_rate(conn: AsyncConnection, sender_hash: str, per_hour: int) -> None:
    # One sender at a time, so two reports sent at once cannot both pass the count.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('care report ' || %s, 0))",
                       [sender_hash])
    cur = await conn.execute(
        "SELECT count(*) FROM restricted.care_report_details "
        "WHERE sender_hash = %s AND received_at > now() - interval '1 hour'", [sender_hash])
    row = await cur.fetchone()
    if row is not None and row[0] >= per_hour:
        raise CareError("rate_limited",
                        f"too many reports from this address: at most {per_hour} an hour; "
                        "please try again later")


async def _tree(conn: AsyncConnection, text: str) -> tuple[int, Any]:
    """The tree a QR code URL, tree code or tag code names: (id, position)."""
    match = _ITEM_URL.search(text)
    cur = await conn.execute(
        "SELECT t.id, t.geom, t.condition FROM smarttrees.trees t "
        "WHERE (%(id)s::bigint IS NOT NULL AND t.id = %(id)s) "
        "   OR (%(id)s::bigint IS NULL AND (t.tree_code = %(code)s OR t.id = "
        "       (SELECT g.item_id FROM smarttrees.tags g "
        "        WHERE g.code = %(code)s AND g.item_type = 'tree'))) "
        "LIMIT 1",
        {"id": int(match.group(1)) if match else None, "code": text.strip()})
    row = await cur.fetchone()
    if row is None:
        raise CareError("unknown_tree", "tree: no tree with this code")
    if row[2] == "removed":
        raise CareError("tree_removed", "tree: this tree has already been removed")
    return int(row[0]), row[1]


# Whether the report's point lies in the territory (smarttrees.territory, its one home).
_INSIDE = sql.SQL("SELECT {}").format(sql_inside(
    sql.SQL("ST_X(%(pt)s::geometry)"), sql.SQL("ST_Y(%(pt)s::geometry)")))


async def submit_report(
    conn: AsyncConnection,
    report: Report,
    photo: bytes | None,
    sender: str,
    per_hour: int,
) -> dict[str, Any]:
    """Store a public report (status ``new``); its number and status.

    Parameters
    ----------
    conn
        An async connection; the report is one transaction of its own.
    report
        The checked fields (:func:`parse_report`).
    photo
        The photo's bytes (capped by the caller), or ``None``.
    sender
        The address the report came from: only its salted hash is kept.
    per_hour
        Most reports one sender may send in an hour.

    Raises
    ------
    CareError
        ``rate_limited`` (429), ``unknown_tree`` (404), ``tree_removed`` (409),
        ``outside_province`` (422), ``bad_image`` (422); nothing is stored.

    """
    if photo:
        photo_type(photo)  # refused before anything else, as a bad field is
    async with conn.transaction():
        sender_hash = await _sender_hash(conn, sender)
        await _check_rate(conn, sender_hash, per_hour)
        tree_id, geom = await _tree(conn, report.tree) if report.tree else (None, None)
        if report.lon is not None:
            cur = await conn.execute("SELECT ST_SetSRID(ST_MakePoint(%s, %s), 4326)",
                                     [report.lon, report.lat])
            row = await cur.fetchone()
            geom = row[0] if row else None
        cur = await conn.execute(_INSIDE, {"pt": geom})
        inside = await cur.fetchone()
        if not (inside and inside[0]):
            raise CareError("outside_province",
                            "location: outside the territory this department looks after")
        cur = await conn.execute(
            "INSERT INTO smarttrees.care_reports (hazard, tree_id, commune_code, geom) "
            "VALUES (%(hazard)s, %(tree)s, smarttrees.commune_at(%(pt)s::geometry), "
            "%(pt)s::geometry) RETURNING id, received_at",
            {"hazard": report.hazard, "tree": tree_id, "pt": geom})
        row = await cur.fetchone()
        assert row is not None
        photo_id = (await photos.store_photo(conn, photo, "report", None))["id"] if photo else None
        await conn.execute(
            "INSERT INTO restricted.care_report_details (report_id, note, contact, photo_id, "
            "sender_hash) VALUES (%s, %s, %s, %s, %s)",
            [row[0], report.note, report.contact, photo_id, sender_hash])
    return {"report_id": int(row[0]), "status": "new", "received_at": row[1].isoformat()}


_PUBLIC = """
SELECT r.id, r.received_at, r.hazard, r.status, r.commune_code, t.tree_code, r.work_order_id,
       round(ST_X(r.geom)::numeric, 7)::float8, round(ST_Y(r.geom)::numeric, 7)::float8,
       d.photo_id IS NOT NULL
FROM smarttrees.care_reports r
JOIN restricted.care_report_details d ON d.report_id = r.id
LEFT JOIN smarttrees.trees t ON t.id = r.tree_id
"""
_PUBLIC_NAMES = ("id", "received_at", "hazard", "status", "commune_code", "tree_code",
                 "work_order_id", "lon", "lat", "has_photo")


def _public(row: tuple[Any, ...]) -> dict[str, Any]:
    doc = dict(zip(_PUBLIC_NAMES, row, strict=True))
    doc["received_at"] = doc["received_at"].isoformat()
    return doc


async def list_reports(conn: AsyncConnection, status: tuple[str, ...] = (),
                       limit: int = 1000) -> list[dict[str, Any]]:
    """Reports for triage, oldest new first; never the note, the contact or the photo."""
    cur = await conn.execute(
        _PUBLIC + " WHERE (%(s)s::text[] IS NULL OR r.status = ANY(%(s)s::text[])) "
        "ORDER BY r.received_at, r.id LIMIT %(limit)s", {"s": list(status) or None,
                                                           "limit": limit})
    return [_public(r) for r in await cur.fetchall()]


async def open_report(conn: AsyncConnection, report_id: int, who: Principal) -> dict[str, Any]:
    """One report with what its reporter typed; the reading is written to the access log."""
    async with conn.transaction():
        cur = await conn.execute(
            _PUBLIC.replace("d.photo_id IS NOT NULL", "d.photo_id IS NOT NULL, d.note, d.contact")
            + " WHERE r.id = %s", [report_id])
        row = await cur.fetchone()
        if row is None:
            raise CareError("unknown_report", f"no report {report_id}")
        await conn.execute(
            "INSERT INTO restricted.access_log (user_id, username, role, what, filter, rows) "
            "VALUES (%s, %s, %s, 'care_report_details', %s, 1)",
            [who.user_id, who.username, who.role, json.dumps({"report_id": report_id})])
    return {**_public(row[:10]), "note": row[10], "contact": row[11]}


async def report_photo(conn: AsyncConnection, report_id: int) -> tuple[bytes, str] | None:
    """A report's photo and its media type, or ``None`` when it has none."""
    cur = await conn.execute("SELECT photo_id::text FROM restricted.care_report_details "
                             "WHERE report_id = %s", [report_id])
    row = await cur.fetchone()
    if row is None:
        raise CareError("unknown_report", f"no report {report_id}")
    return await photos.read_photo(conn, row[0]) if row[0] is not None else None


class Triage(BaseModel):
    """A staff decision on a new report."""

    model_config = ConfigDict(extra="forbid")

    accept: bool
    work_type: WorkType | None = None
    priority: int = Field(3, ge=1, le=5)
    note: str | None = Field(None, max_length=4000)

    @model_validator(mode="after")
    def _work(self) -> Triage:
        if self.accept and self.work_type is None:
            raise ValueError("work_type: an accepted report needs the work to order")
        return self


def parse_triage(doc: Any) -> Triage:
    """A checked triage decision; ``invalid_report`` naming each bad field."""
    try:
        return Triage.model_validate(doc)
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'body'}: "
                    f"{str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors()]
        raise CareError("invalid_report", "; ".join(problems)) from None


async def triage(conn: AsyncConnection, report_id: int, decision: Triage,
                 who: Principal) -> int | None:
    """Accept a new report (a work order; its id) or reject it (``None``)."""
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT r.status, t.tree_code, ST_X(r.geom), ST_Y(r.geom) "
            "FROM smarttrees.care_reports r LEFT JOIN smarttrees.trees t ON t.id = r.tree_id "
            "WHERE r.id = %s FOR UPDATE OF r", [report_id])
        row = await cur.fetchone()
        if row is None:
            raise CareError("unknown_report", f"no report {report_id}")
        if row[0] != "new":
            raise CareError("transition", f"report {report_id} was already {row[0]}")
        order_id = None
        if decision.accept:
            assert decision.work_type is not None
            request = OrderRequest(
                work_type=decision.work_type, trees=[row[1]] if row[1] else [],
                location=None if row[1] else (row[2], row[3]), priority=decision.priority,
                origin="report", origin_id=report_id, note=decision.note)
            order_id = await insert_order(conn, request, who)
        await conn.execute(
            "UPDATE smarttrees.care_reports SET status = %s, work_order_id = %s, "
            "triaged_by = %s, triaged_at = now() WHERE id = %s",
            ["accepted" if decision.accept else "rejected", order_id, who.username, report_id])
    return order_id
