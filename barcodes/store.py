"""Record scan events: all or nothing, idempotent, under row locks.

Recording a batch is one transaction: the tags of every scanned item are locked
(``SELECT … FOR UPDATE``, in code order so that two batches never deadlock), then the item rows
and, for logs leaving their stand, the stand rows. Two phones scanning the same item at the same
moment are therefore served one after the other: the first wins, the second sees the new state
and gets a clear conflict if its scan no longer fits. The idempotency check runs under the same
locks (and a transaction lock on each device), so a batch replayed while the
original is still being written is recorded once, and one client event id sent twice at once
with different codes is one answer and one conflict.
Everything is set-based (``unnest`` of arrays): a thousand events cost about a dozen statements.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection, sql

from barcodes.codes import Code, CodeError, ItemType, make_code, parse
from barcodes.custody import (
    ItemState,
    Problem,
    ScanRejected,
    StandState,
    apply_batch,
    check_shape,
)
from barcodes.events import ScanEvent, utc_text
from smarttrees.territory import sql_inside

# Phones' clocks drift; a scan up to this far ahead of the server's clock is still "now".
CLOCK_SKEW = timedelta(minutes=5)


def _answer(
    event_id: int,
    device_id: str,
    client_event_id: str,
    code: str,
    item_type: str,
    event_type: str,
    occurred_at: datetime,
    status: str | None,
) -> dict[str, Any]:
    """The answer for one recorded event: the same whether it was new or replayed."""
    return {
        "event_id": event_id,
        "device_id": device_id,
        "client_event_id": client_event_id,
        "code": code,
        "item_type": item_type,
        "event_type": event_type,
        "occurred_at": utc_text(occurred_at),
        "status": status,
    }


def _first_checks(events: Sequence[ScanEvent], now: datetime) -> tuple[list[Code], list[Problem]]:
    """Checks that need no database: code and check character, event shape, clock."""
    codes: list[Code] = []
    problems: list[Problem] = []
    firsts: dict[tuple[str, str], ScanEvent] = {}
    parsed: dict[str, Code] = {}  # a batch often scans one tag several times
    latest = now + CLOCK_SKEW
    for i, event in enumerate(events):

        def problem(rule: str, message: str, i: int = i, event: ScanEvent = event) -> None:
            problems.append(Problem(i, event.client_event_id, event.code, rule, message))

        try:
            code = parsed[event.code] if event.code in parsed else parse(event.code)
        except CodeError as exc:
            problem("bad_code", str(exc))
            codes.append(Code(ItemType.TREE, -1))
            continue
        parsed[event.code] = code
        codes.append(code)
        shape = check_shape(event, code.item_type)
        if shape:
            problem(*shape)
        if event.occurred_at > latest:
            problem("future_time", f"{event.occurred_at.isoformat()} is in the future")
        first = firsts.setdefault(event.key, event)
        if first is not event and first != event:
            problem("client_event_id_reused", "this client_event_id is used twice in the batch")
    return codes, problems


async def record_events(
    conn: AsyncConnection,
    events: Sequence[ScanEvent],
    actor: str | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Record scan events all-or-nothing and return one answer per event, in order.

    An event whose ``(device_id, client_event_id)`` is already stored is not recorded again;
    its answer is the stored one.

    Raises
    ------
    ScanRejected
        Any event breaks a rule: nothing of the batch is stored; every problem is listed.

    """
    now = now or datetime.now(UTC)
    codes, problems = _first_checks(events, now)
    if problems:
        raise ScanRejected(problems)
    canonical = [str(c) for c in codes]
    async with conn.transaction():
        tags = await _lock_tags(conn, sorted(set(canonical)))
        unknown = [
            Problem(i, e.client_event_id, c, "unknown_code", f"no tag {c} has been issued")
            for i, (e, c) in enumerate(zip(events, canonical, strict=True))
            if c not in tags
        ]
        if unknown:
            raise ScanRejected(unknown)
        await _lock_devices(conn, events)
        stored = await _stored(conn, events)
        answers: dict[tuple[str, str], dict[str, Any]] = {}
        reused: list[Problem] = []
        for i, event in enumerate(events):
            row = stored.get(event.key)
            if row is None:
                continue
            if (row["code"], row["event_type"], row["occurred_at"]) != (
                canonical[i],
                event.event_type,
                event.occurred_at,
            ):
                reused.append(
                    Problem(
                        i,
                        event.client_event_id,
                        event.code,
                        "client_event_id_reused",
                        f"device {event.device_id} already used client_event_id "
                        f"{event.client_event_id} for {row['event_type']} of {row['code']}",
                    )
                )
            answers[event.key] = row["answer"]
        if reused:
            raise ScanRejected(reused)
        # An event repeated inside the batch (same key, same content) is recorded once.
        firsts: dict[tuple[str, str], int] = {}
        for i, event in enumerate(events):
            firsts.setdefault(event.key, i)
        new = [(i, e) for i, e in enumerate(events) if e.key not in answers and firsts[e.key] == i]
        if new:
            answers.update(await _record_new(conn, new, canonical, tags, actor))
    return [answers[e.key] for e in events]


async def _lock_tags(conn: AsyncConnection, codes: list[str]) -> dict[str, tuple[ItemType, int]]:
    cur = await conn.execute(
        "SELECT code, item_type, item_id FROM smarttrees.tags WHERE code = ANY(%s) "
        "ORDER BY code FOR UPDATE",
        [codes],
    )
    return {r[0]: (ItemType(r[1]), int(r[2])) for r in await cur.fetchall()}


async def _lock_devices(conn: AsyncConnection, events: Sequence[ScanEvent]) -> None:
    """Lock each device of the batch until the transaction ends.

    The tag locks serialise two requests only when they scan the same code; one client event
    id sent at the same instant with two codes would otherwise pass the idempotency check
    twice, and the second insert would break the unique key (a 500 instead of the 409). The
    lock is per device (a batch comes from one or a few), not per event: thousands of locks in
    one transaction could fill PostgreSQL's lock table. Taken in one order (of the device id's
    hash), after the tags and before anything else, so two batches never deadlock.
    """
    await conn.execute(
        "SELECT pg_advisory_xact_lock(k) FROM ("
        "  SELECT DISTINCT hashtextextended('scan device ' || d, 0) AS k "
        "  FROM unnest(%s::text[]) u(d)) AS keys "
        "ORDER BY k",  # pg_advisory_xact_lock is volatile: evaluated after the sort
        [sorted({e.device_id for e in events})],
    )


async def _stored(
    conn: AsyncConnection, events: Sequence[ScanEvent]
) -> dict[tuple[str, str], dict[str, Any]]:
    cur = await conn.execute(
        "SELECT e.id, e.device_id, e.client_event_id, e.code, e.item_type, e.event_type, "
        "e.occurred_at, e.details ->> 'status_after' "
        "FROM smarttrees.scan_events e "
        "JOIN unnest(%s::text[], %s::text[]) k(device_id, client_event_id) "
        "USING (device_id, client_event_id)",
        [[e.device_id for e in events], [e.client_event_id for e in events]],
    )
    stored: dict[tuple[str, str], dict[str, Any]] = {}
    for r in await cur.fetchall():
        stored[(r[1], r[2])] = {
            "code": r[3],
            "event_type": r[5],
            "occurred_at": r[6],
            "answer": _answer(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]),
        }
    return stored


async def _record_new(
    conn: AsyncConnection,
    new: list[tuple[int, ScanEvent]],
    canonical: list[str],
    tags: dict[str, tuple[ItemType, int]],
    actor: str | None,
) -> dict[tuple[str, str], dict[str, Any]]:
    problems = await _outside_province(conn, new)
    problems += await _unknown_destinations(conn, new)
    items = await _lock_items(conn, {tags[canonical[i]] for i, _ in new})
    stands = await _lock_stands(
        conn, items, [(i, e) for i, e in new if e.event_type == "at_landing"], canonical, tags
    )
    statuses, broken = apply_batch(((i, e, items[tags[canonical[i]]]) for i, e in new), stands)
    problems += broken
    loads, load_problems = await _loads(conn, new)
    problems += load_problems
    if problems:
        raise ScanRejected(sorted(problems))
    ids = await _insert_events(conn, new, canonical, tags, statuses, loads, actor)
    await _write_items(conn, items, new, canonical, tags, loads)
    return {
        event.key: _answer(
            ids[i],
            event.device_id,
            event.client_event_id,
            canonical[i],
            tags[canonical[i]][0].value,
            event.event_type,
            event.occurred_at,
            statuses[i],
        )
        for i, event in new
    }


async def _outside_province(
    conn: AsyncConnection, new: list[tuple[int, ScanEvent]]
) -> list[Problem]:
    # The territory's name comes along: with none set, every location is outside it.
    cur = await conn.execute(
        sql.SQL("SELECT p.o, (SELECT name FROM smarttrees.territory) "
                "FROM unnest(%s::float8[], %s::float8[], %s::int[]) p(lon, lat, o) "
                "WHERE NOT {}").format(sql_inside(sql.SQL("p.lon"), sql.SQL("p.lat"))),
        [[e.location.lon for _, e in new], [e.location.lat for _, e in new], [i for i, _ in new]],
    )
    rows = await cur.fetchall()
    outside = {r[0] for r in rows}
    where = f"the territory ({rows[0][1]})" if rows and rows[0][1] else "the territory (none set)"
    return [
        Problem(
            i,
            e.client_event_id,
            e.code,
            "outside_province",
            f"location [{e.location.lon}, {e.location.lat}] is outside {where}",
        )
        for i, e in new
        if i in outside
    ]


async def _unknown_destinations(
    conn: AsyncConnection, new: list[tuple[int, ScanEvent]]
) -> list[Problem]:
    communes = sorted({e.to_commune for _, e in new if e.to_commune})
    stands = sorted({e.to_stand for _, e in new if e.to_stand})
    known: set[tuple[str, str]] = set()
    if communes:
        cur = await conn.execute(
            "SELECT code FROM smarttrees.communes WHERE code = ANY(%s)", [communes]
        )
        known |= {("commune", r[0]) for r in await cur.fetchall()}
    if stands:
        cur = await conn.execute(
            "SELECT stand_code FROM smarttrees.stands WHERE stand_code = ANY(%s)", [stands]
        )
        known |= {("stand", r[0]) for r in await cur.fetchall()}
    problems = []
    for i, e in new:
        for kind, value in (("commune", e.to_commune), ("stand", e.to_stand)):
            if value and (kind, value) not in known:
                problems.append(
                    Problem(
                        i, e.client_event_id, e.code, "unknown_destination", f"no {kind} {value!r}"
                    )
                )
    return problems


async def _lock_items(
    conn: AsyncConnection, keys: set[tuple[ItemType, int]]
) -> dict[tuple[ItemType, int], ItemState]:
    items = {key: ItemState(key[0], key[1]) for key in keys}
    lots = sorted(i for t, i in keys if t is ItemType.SEEDLING_LOT)
    logs = sorted(i for t, i in keys if t is ItemType.TIMBER_LOG)
    if lots:
        cur = await conn.execute(
            "SELECT id, status, quantity, quantity_dispatched, quantity_planted "
            "FROM smarttrees.seedling_lots WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            [lots],
        )
        for r in await cur.fetchall():
            item = items[(ItemType.SEEDLING_LOT, int(r[0]))]
            item.status, item.quantity, item.dispatched, item.planted = r[1], r[2], r[3], r[4]
    if logs:
        cur = await conn.execute(
            "SELECT id, status, volume_m3, stand_id FROM smarttrees.timber_logs "
            "WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            [logs],
        )
        for r in await cur.fetchall():
            item = items[(ItemType.TIMBER_LOG, int(r[0]))]
            item.status, item.volume_m3, item.stand_id = r[1], Decimal(r[2]), r[3]
    cur = await conn.execute(
        "SELECT e.item_type, e.item_id, max(e.occurred_at) FROM smarttrees.scan_events e "
        "JOIN unnest(%s::text[], %s::int8[]) k(item_type, item_id) USING (item_type, item_id) "
        "GROUP BY 1, 2",
        [[t.value for t, _ in keys], [i for _, i in keys]],
    )
    for r in await cur.fetchall():
        items[(ItemType(r[0]), int(r[1]))].last_at = r[2]
    return items


async def _lock_stands(
    conn: AsyncConnection,
    items: dict[tuple[ItemType, int], ItemState],
    leaving: list[tuple[int, ScanEvent]],
    canonical: list[str],
    tags: dict[str, tuple[ItemType, int]],
) -> dict[int, StandState]:
    ids = sorted({items[tags[canonical[i]]].stand_id for i, _ in leaving} - {None})  # type: ignore[type-var]
    if not ids:
        return {}
    cur = await conn.execute(
        "SELECT id, stand_code, harvest_allowed_m3 FROM smarttrees.stands "
        "WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
        [ids],
    )
    stands = {int(r[0]): StandState(r[1], r[2], Decimal(0)) for r in await cur.fetchall()}
    cur = await conn.execute(
        "SELECT stand_id, sum(volume_m3) FROM smarttrees.timber_logs "
        "WHERE stand_id = ANY(%s) AND status <> 'felled' GROUP BY stand_id",
        [ids],
    )
    for r in await cur.fetchall():
        stands[int(r[0])].out_m3 = Decimal(r[1])
    return stands


async def _loads(
    conn: AsyncConnection, new: list[tuple[int, ScanEvent]]
) -> tuple[dict[int, tuple[int, str]], list[Problem]]:
    """Transport loads of ``loaded`` events: {event index: (load id, load tag code)}.

    A load named by its tag must exist and carry the event's forest-product list number; without
    a tag, the list number names the load, which is created on its first log.
    """
    loaded = [(i, e) for i, e in new if e.event_type == "loaded" and e.fpl_number]
    if not loaded:
        return {}, []
    problems: list[Problem] = []
    result: dict[int, tuple[int, str]] = {}
    by_tag = [(i, e) for i, e in loaded if e.load_code]
    for i, e in by_tag:
        try:
            code = parse(e.load_code or "")
        except CodeError as exc:
            problems.append(Problem(i, e.client_event_id, e.code, "unknown_load", str(exc)))
            continue
        cur = await conn.execute(
            "SELECT l.id, l.fpl_number FROM smarttrees.tags t "
            "JOIN smarttrees.transport_loads l ON l.id = t.item_id "
            "WHERE t.code = %s AND t.item_type = 'transport_load'",
            [str(code)],
        )
        row = await cur.fetchone()
        if row is None or (row[1] is not None and row[1] != e.fpl_number):
            why = "no such transport load" if row is None else f"it carries list {row[1]}"
            problems.append(
                Problem(i, e.client_event_id, e.code, "unknown_load", f"load {code}: {why}")
            )
            continue
        result[i] = (int(row[0]), str(code))
    by_fpl = [(i, e) for i, e in loaded if not e.load_code]
    if by_fpl:
        fpls = sorted({e.fpl_number for _, e in by_fpl if e.fpl_number})
        plates = {e.fpl_number: e.vehicle_plate for _, e in by_fpl}
        cur = await conn.execute(
            "INSERT INTO smarttrees.transport_loads (load_code, fpl_number, vehicle_plate) "
            "SELECT 'FPL ' || f, f, p FROM unnest(%s::text[], %s::text[]) u(f, p) "
            "ON CONFLICT (fpl_number) WHERE fpl_number IS NOT NULL "
            "DO UPDATE SET vehicle_plate = "
            "  coalesce(transport_loads.vehicle_plate, EXCLUDED.vehicle_plate) "
            "RETURNING id, fpl_number",
            [fpls, [plates[f] for f in fpls]],
        )
        ids = {r[1]: int(r[0]) for r in await cur.fetchall()}
        await conn.execute(
            "INSERT INTO smarttrees.tags (code, item_type, item_id) "
            "SELECT c, 'transport_load', i FROM unnest(%s::text[], %s::int8[]) u(c, i) "
            "ON CONFLICT (item_type, item_id) DO NOTHING",
            [[make_code(ItemType.TRANSPORT_LOAD, n) for n in ids.values()], list(ids.values())],
        )
        for i, e in by_fpl:
            load_id = ids[e.fpl_number or ""]
            result[i] = (load_id, make_code(ItemType.TRANSPORT_LOAD, load_id))
    return result, problems


async def _insert_events(
    conn: AsyncConnection,
    new: list[tuple[int, ScanEvent]],
    canonical: list[str],
    tags: dict[str, tuple[ItemType, int]],
    statuses: dict[int, str | None],
    loads: dict[int, tuple[int, str]],
    actor: str | None,
) -> dict[int, int]:
    details = [
        json.dumps(event_details(e, statuses[i], loads.get(i)), ensure_ascii=False) for i, e in new
    ]
    cur = await conn.execute(
        "INSERT INTO smarttrees.scan_events (device_id, client_event_id, code, item_type, item_id, "
        "  event_type, occurred_at, actor, quantity, volume_m3, details, geom) "
        "SELECT d, c, code, t, item, ev, at, %s, q, v, det::jsonb, "
        "       ST_SetSRID(ST_MakePoint(lon, lat), 4326) "
        "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::int8[], %s::text[], "
        "  %s::timestamptz[], %s::int4[], %s::numeric[], %s::text[], %s::float8[], %s::float8[], "
        "  %s::int[]) AS u(d, c, code, t, item, ev, at, q, v, det, lon, lat, o) "
        "ORDER BY o RETURNING id, device_id, client_event_id",
        [
            actor,
            [e.device_id for _, e in new],
            [e.client_event_id for _, e in new],
            [canonical[i] for i, _ in new],
            [tags[canonical[i]][0].value for i, _ in new],
            [tags[canonical[i]][1] for i, _ in new],
            [e.event_type for _, e in new],
            [e.occurred_at for _, e in new],
            [e.quantity for _, e in new],
            [e.volume_m3 for _, e in new],
            details,
            [e.location.lon for _, e in new],
            [e.location.lat for _, e in new],
            [i for i, _ in new],
        ],
    )
    by_key = {(r[1], r[2]): int(r[0]) for r in await cur.fetchall()}
    return {i: by_key[e.key] for i, e in new}


async def _write_items(
    conn: AsyncConnection,
    items: dict[tuple[ItemType, int], ItemState],
    new: list[tuple[int, ScanEvent]],
    canonical: list[str],
    tags: dict[str, tuple[ItemType, int]],
    loads: dict[int, tuple[int, str]],
) -> None:
    lots = [s for s in items.values() if s.item_type is ItemType.SEEDLING_LOT and s.changed]
    if lots:
        certificates = {tags[canonical[i]][1]: e.certificate_no for i, e in new if e.certificate_no}
        await conn.execute(
            "UPDATE smarttrees.seedling_lots l SET status = u.s, quantity_dispatched = u.d, "
            "  quantity_planted = u.p, certificate_no = coalesce(u.c, l.certificate_no) "
            "FROM unnest(%s::int8[], %s::text[], %s::int4[], %s::int4[], %s::text[]) "
            "  u(id, s, d, p, c) WHERE l.id = u.id",
            [
                [s.item_id for s in lots],
                [s.status for s in lots],
                [s.dispatched for s in lots],
                [s.planted for s in lots],
                [certificates.get(s.item_id) for s in lots],
            ],
        )
    # A log's position is where it was last seen: the last of its events in this batch.
    seen: dict[int, ScanEvent] = {}
    load_of: dict[int, int] = {}
    for i, e in new:
        item_type, item_id = tags[canonical[i]]
        if item_type is ItemType.TIMBER_LOG:
            seen[item_id] = e
            if i in loads:
                load_of[item_id] = loads[i][0]
    if seen:
        ids = sorted(seen)
        await conn.execute(
            "UPDATE smarttrees.timber_logs g SET status = u.s, volume_m3 = u.v, "
            "  load_id = coalesce(u.l, g.load_id), geom = ST_SetSRID(ST_MakePoint(u.x, u.y), 4326) "
            "FROM unnest(%s::int8[], %s::text[], %s::numeric[], %s::int8[], %s::float8[], "
            "  %s::float8[]) u(id, s, v, l, x, y) WHERE g.id = u.id",
            [
                ids,
                [items[(ItemType.TIMBER_LOG, i)].status for i in ids],
                [items[(ItemType.TIMBER_LOG, i)].volume_m3 for i in ids],
                [load_of.get(i) for i in ids],
                [seen[i].location.lon for i in ids],
                [seen[i].location.lat for i in ids],
            ],
        )


# -- bulk writers ---------------------------------------------------------------------------------


def event_details(
    event: ScanEvent, status_after: str | None, load: tuple[int, str] | None = None
) -> dict[str, Any]:
    """What ``scan_events.details`` holds for an event.

    Its own fields, the item's status after it, where a dispatch went, and the transport load
    (id, tag code) a ``loaded`` event joined.
    """
    extra = event.details() | {"status_after": status_after}
    if event.event_type == "dispatched":
        extra["destination"] = event.to_commune or event.to_stand
    if load is not None:
        extra["load_id"], extra["load_code"] = load
    return extra


def replay_in_memory(
    events: Sequence[ScanEvent],
    states: dict[str, ItemState],
    stands: dict[int, StandState],
    now: datetime | None = None,
) -> list[str | None]:
    """Check events as :func:`record_events` checks one batch, against states held in memory.

    For a bulk writer that makes the items itself (the synthetic province) and so knows every
    item's state: ``states`` (by canonical code) stands for the tags issued and the rows
    :func:`record_events` locks, ``stands`` for the stands' harvest allowances and the volume out
    of them. The checks on each event (code and check character, shape, clock, one
    ``client_event_id`` per event) and every custody rule are the ones the scan API runs; the
    states are updated in place. Where an event was scanned, whether its destination exists and
    which transport load it joins are the writer's to get right, as the database checks them.

    Returns
    -------
    list
        The item's status after each event, in order (``details.status_after``).

    Raises
    ------
    ScanRejected
        Any event breaks a rule, or a ``(device_id, client_event_id)`` comes twice.

    """
    codes, problems = _first_checks(events, now or datetime.now(UTC))
    if problems:
        raise ScanRejected(problems)
    texts = {c: str(c) for c in set(codes)}
    canonical = [texts[c] for c in codes]
    seen: set[tuple[str, str]] = set()
    for i, (event, code) in enumerate(zip(events, canonical, strict=True)):
        if code not in states:
            problems.append(
                Problem(i, event.client_event_id, code, "unknown_code", f"no tag {code}")
            )
        if event.key in seen:
            problems.append(
                Problem(
                    i, event.client_event_id, code, "client_event_id_reused", "sent twice"
                )
            )
        seen.add(event.key)
    if problems:
        raise ScanRejected(problems)
    statuses, problems = apply_batch(
        ((i, e, states[c]) for i, (e, c) in enumerate(zip(events, canonical, strict=True))),
        stands,
    )
    if problems:
        raise ScanRejected(sorted(problems))
    return [statuses[i] for i in range(len(events))]
