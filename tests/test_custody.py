"""Custody rules and the scan store against PostGIS: transitions, totals, idempotency, locks."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection

from barcodes.codes import ItemType, make_code, parse
from barcodes.custody import ScanRejected
from barcodes.events import ScanEvent
from barcodes.store import record_events
from barcodes.tags import issue_tags, label_infos
from barcodes.trace import trace, trace_geojson
from smarttrees.database import SEARCH_PATH

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
INSIDE = (105.80, 21.60)
_ids = itertools.count(1)


def build_world(conn: psycopg.Connection) -> dict[str, Any]:
    """A commune, a nursery with a ready lot of 1,000 seedlings, a stand allowing 10 m³ with
    three 4 m³ logs, a tree; every item tagged. Returns the codes."""
    conn.execute(
        "INSERT INTO smarttrees.admin_units (level, code, name, valid_from, geom) VALUES "
        "('commune', '90001', 'Xã Thử', '2025-07-01', "
        " ST_Multi(ST_MakeEnvelope(105.7, 21.5, 105.9, 21.7, 4326)))"
    )
    keo = conn.execute(
        "SELECT id FROM smarttrees.species WHERE scientific_name ILIKE 'Acacia%%' ORDER BY id LIMIT 1"
    ).fetchone()[0]
    nursery = conn.execute(
        "INSERT INTO smarttrees.nurseries (nursery_code, name, geom) "
        "VALUES ('NS-T1', 'Vườn ươm Đồng Hỷ', ST_SetSRID(ST_MakePoint(105.75, 21.55), 4326)) RETURNING id"
    ).fetchone()[0]
    lot = conn.execute(
        "INSERT INTO smarttrees.seedling_lots (lot_code, nursery_id, species_id, quantity, status, sown_on) "
        "VALUES ('LOT-T1', %s, %s, 1000, 'ready', '2026-01-10') RETURNING id",
        [nursery, keo],
    ).fetchone()[0]
    fresh = conn.execute(
        "INSERT INTO smarttrees.seedling_lots (lot_code, nursery_id, species_id, quantity) "
        "VALUES ('LOT-T2', %s, %s, 500) RETURNING id",
        [nursery, keo],
    ).fetchone()[0]
    stand = conn.execute(
        "INSERT INTO smarttrees.stands (stand_code, species_id, harvest_allowed_m3, commune_code, geom) "
        "VALUES ('ST-90001-0001', %s, 10, '90001', "
        " ST_Multi(ST_MakeEnvelope(105.81, 21.61, 105.82, 21.62, 4326))) RETURNING id",
        [keo],
    ).fetchone()[0]
    logs = [
        conn.execute(
            "INSERT INTO smarttrees.timber_logs (log_code, stand_id, species_id, felled_on, volume_m3) "
            "VALUES (%s, %s, %s, '2026-02-20', 4) RETURNING id",
            [f"LOG-T{n}", stand, keo],
        ).fetchone()[0]
        for n in range(3)
    ]
    tree = conn.execute(
        "INSERT INTO smarttrees.trees (tree_code, category, species_id, commune_code, geom) "
        "VALUES ('90001-U000001', 'urban', %s, '90001', ST_SetSRID(ST_MakePoint(105.8, 21.6), 4326)) "
        "RETURNING id",
        [keo],
    ).fetchone()[0]
    lot_tags = issue_tags(conn, ItemType.SEEDLING_LOT, [lot, fresh])
    log_tags = issue_tags(conn, ItemType.TIMBER_LOG, logs)
    tree_tags = issue_tags(conn, "tree", [tree])
    conn.commit()
    return {
        "lot": lot_tags[lot],
        "fresh_lot": lot_tags[fresh],
        "logs": [log_tags[i] for i in logs],
        "tree": tree_tags[tree],
        "lot_id": lot,
        "stand_id": stand,
    }


def scan(code: str, event_type: str, at: datetime = T0, **fields: Any) -> ScanEvent:
    """A scan event with a fresh client event id, inside the test commune."""
    data: dict[str, Any] = {
        "device_id": fields.pop("device_id", "phone-1"),
        "client_event_id": fields.pop("client_event_id", f"ev-{next(_ids)}"),
        "code": code,
        "event_type": event_type,
        "occurred_at": at,
        "location": {"type": "Point", "coordinates": fields.pop("where", INSIDE)},
    }
    return ScanEvent.model_validate(data | fields)


async def _record(url: str, events: list[ScanEvent], **kw: Any) -> list[dict[str, Any]]:
    async with await AsyncConnection.connect(
        url, autocommit=True, options=f"-c search_path={SEARCH_PATH}"
    ) as conn:
        return await record_events(conn, events, actor="tester", **kw)


def record(url: str, *events: ScanEvent) -> list[dict[str, Any]]:
    return asyncio.run(_record(url, list(events)))


def rejected(url: str, *events: ScanEvent) -> ScanRejected:
    with pytest.raises(ScanRejected) as info:
        record(url, *events)
    return info.value


@pytest.fixture
def world(conn: psycopg.Connection) -> Iterator[dict[str, Any]]:
    yield build_world(conn)


def _count(url: str) -> int:
    with psycopg.connect(url) as c:
        return int(c.execute("SELECT count(*) FROM smarttrees.scan_events").fetchone()[0])


def _lot(url: str, lot_id: int) -> tuple[str, int, int]:
    with psycopg.connect(url) as c:
        row = c.execute(
            "SELECT status, quantity_dispatched, quantity_planted FROM smarttrees.seedling_lots WHERE id = %s",
            [lot_id],
        ).fetchone()
    return row[0], row[1], row[2]


def test_tags_are_issued_once_and_carry_the_item_id(
    conn: psycopg.Connection, world: dict[str, Any]
) -> None:
    assert parse(world["lot"]) == (ItemType.SEEDLING_LOT, world["lot_id"])
    again = issue_tags(conn, ItemType.SEEDLING_LOT, [world["lot_id"]])
    assert again == {world["lot_id"]: world["lot"]}
    from barcodes.tags import TagError

    with pytest.raises(TagError, match="no seedling_lot with id 999999"):
        issue_tags(conn, ItemType.SEEDLING_LOT, [999999])
    (info,) = label_infos(conn, [world["lot"]])
    assert info.species and "Acacia" in info.species
    assert info.origin == "Vườn ươm Đồng Hỷ"
    assert str(info.day) == "2026-01-10"


def test_seedling_lot_partial_dispatches_never_exceed_the_lot(
    db_url: str, world: dict[str, Any]
) -> None:
    lot = world["lot"]
    record(db_url, scan(lot, "dispatched", T0, quantity=600, to_commune="90001"))
    record(
        db_url,
        scan(lot, "dispatched", T0 + timedelta(hours=1), quantity=300, to_stand="ST-90001-0001"),
    )
    error = rejected(
        db_url, scan(lot, "dispatched", T0 + timedelta(hours=2), quantity=101, to_commune="90001")
    )
    assert error.problems[0].rule == "lot_quantity"
    assert "only 100 of 1000 are left" in error.problems[0].message
    record(db_url, scan(lot, "planted", T0 + timedelta(hours=3), quantity=900))
    error = rejected(db_url, scan(lot, "planted", T0 + timedelta(hours=4), quantity=1))
    assert error.problems[0].rule == "planted_quantity"
    # The rest of the lot may still go out after planting began; the status stays "planted".
    (answer,) = record(
        db_url, scan(lot, "dispatched", T0 + timedelta(hours=5), quantity=100, to_commune="90001")
    )
    assert answer["status"] == "planted"
    assert _lot(db_url, world["lot_id"]) == ("planted", 1000, 900)
    assert _count(db_url) == 4


def test_lot_must_be_certified_and_ready_before_dispatch(
    db_url: str, world: dict[str, Any]
) -> None:
    lot = world["fresh_lot"]
    error = rejected(db_url, scan(lot, "dispatched", quantity=5, to_commune="90001"))
    assert error.problems[0].rule == "transition"
    assert (
        "is registered: dispatched needs it to be dispatched or planted or ready"
        in error.problems[0].message
    )
    answers = record(
        db_url,
        scan(lot, "certified", T0, certificate_no="12/CN-GCT"),
        scan(lot, "ready", T0 + timedelta(days=30)),
        scan(lot, "dispatched", T0 + timedelta(days=31), quantity=500, to_commune="90001"),
    )
    assert [a["status"] for a in answers] == ["certified", "ready", "dispatched"]


def test_timber_chain_and_harvest_allowance(db_url: str, world: dict[str, Any]) -> None:
    first, second, third = world["logs"]
    record(
        db_url,
        scan(first, "felled", T0, volume_m3=4.5),
        scan(first, "at_landing", T0 + timedelta(hours=1)),
    )
    record(db_url, scan(second, "at_landing", T0 + timedelta(hours=1)))
    # 4.5 + 4 are out of a stand allowing 10 m³: a third log of 4 m³ would make 12.5.
    error = rejected(db_url, scan(third, "at_landing", T0 + timedelta(hours=2)))
    assert error.problems[0].rule == "harvest_allowance"
    assert "12.5000 m³, more than its harvest allowance of 10.000 m³" in error.problems[0].message
    answers = record(
        db_url,
        scan(
            first,
            "loaded",
            T0 + timedelta(hours=3),
            fpl_number="BK-2026-0001",
            vehicle_plate="20C-12345",
        ),
        scan(second, "loaded", T0 + timedelta(hours=3), fpl_number="BK-2026-0001"),
        scan(
            first,
            "received",
            T0 + timedelta(hours=6),
            destination_kind="mill",
            destination="Nhà máy gỗ Phú Bình",
            where=(105.85, 21.65),
        ),
        scan(first, "sold", T0 + timedelta(days=2), where=(105.86, 21.66)),
    )
    assert [a["status"] for a in answers] == ["loaded", "loaded", "received", "sold"]
    with psycopg.connect(db_url) as c:
        loads = c.execute(
            "SELECT count(*), min(fpl_number) FROM smarttrees.transport_loads"
        ).fetchone()
        assert loads == (1, "BK-2026-0001")
        status, load, x = c.execute(
            "SELECT g.status, g.load_id, ST_X(g.geom) FROM smarttrees.timber_logs g "
            "JOIN smarttrees.tags t ON t.item_id = g.id AND t.item_type = 'timber_log' WHERE t.code = %s",
            [first],
        ).fetchone()
        assert (status, x) == ("sold", 105.86) and load is not None  # where last seen
    error = rejected(db_url, scan(second, "processed", T0 + timedelta(hours=4)))
    assert error.problems[0].rule == "transition"


def test_trace_lists_events_in_order_and_draws_the_route(
    db_url: str, world: dict[str, Any]
) -> None:
    log = world["logs"][0]
    record(
        db_url,
        scan(log, "at_landing", T0, where=(105.815, 21.615)),
        scan(log, "loaded", T0 + timedelta(hours=1), fpl_number="BK-9", where=(105.82, 21.62)),
        scan(
            log,
            "received",
            T0 + timedelta(hours=5),
            destination_kind="yard",
            destination="Bãi gỗ",
            where=(105.88, 21.68),
        ),
    )

    async def go() -> dict[str, Any] | None:
        async with await AsyncConnection.connect(
            db_url, options=f"-c search_path={SEARCH_PATH}"
        ) as c:
            return await trace(c, parse(log))

    result = asyncio.run(go())
    assert result is not None
    assert [e["event_type"] for e in result["events"]] == ["at_landing", "loaded", "received"]
    assert result["item"]["stand_code"] == "ST-90001-0001"
    assert result["item"]["load_code"] and result["item"]["load_code"].startswith("TR-")
    feature = trace_geojson(result)
    assert feature["geometry"]["type"] == "LineString"
    coords = feature["geometry"]["coordinates"]
    assert coords[1:] == [[105.815, 21.615], [105.82, 21.62], [105.88, 21.68]]
    assert 105.81 <= coords[0][0] <= 105.82  # the stand is where the route starts


def test_bad_scans_are_refused_and_nothing_is_stored(db_url: str, world: dict[str, Any]) -> None:
    lot, log, tree = world["lot"], world["logs"][0], world["tree"]
    bad_check = lot[:-1] + ("0" if lot[-1] != "0" else "1")
    cases = [
        (scan(bad_check, "inspected"), "bad_code", "wrong check character"),
        (scan(make_code(ItemType.TIMBER_LOG, 424242), "inspected"), "unknown_code", "no tag"),
        (
            scan(log, "dispatched", quantity=1, to_commune="90001"),
            "wrong_item_type",
            "is for seedling_lot",
        ),
        (scan(tree, "felled"), "wrong_item_type", "but " + tree + " is a tree"),
        (scan(lot, "burned"), "invalid_event", "unknown event type 'burned'"),
        (
            scan(lot, "inspected", datetime.now(UTC) + timedelta(hours=2)),
            "future_time",
            "in the future",
        ),
        (scan(lot, "inspected", where=(2.35, 48.85)), "outside_province", "outside the territory"),
        (scan(lot, "dispatched", to_commune="90001"), "missing_field", "needs quantity"),
        (
            scan(lot, "dispatched", quantity=5, to_commune="99999"),
            "unknown_destination",
            "no commune '99999'",
        ),
        (scan(lot, "inspected", quantity=5), "field_not_used", "quantity is not used"),
        (scan(log, "at_landing", fpl_number="X"), "field_not_used", "fpl_number"),
    ]
    for event, rule, words in cases:
        error = rejected(db_url, event)
        assert (error.problems[0].rule, words in error.problems[0].message) == (rule, True), error
    # A good event in the same batch as a bad one is not stored either.
    error = rejected(
        db_url, scan(lot, "inspected"), scan(lot, "dispatched", quantity=5000, to_commune="90001")
    )
    assert [p.index for p in error.problems] == [1]
    assert _count(db_url) == 0


def test_time_before_the_previous_event_is_refused(db_url: str, world: dict[str, Any]) -> None:
    lot = world["lot"]
    record(db_url, scan(lot, "inspected", T0 + timedelta(hours=5)))
    error = rejected(db_url, scan(lot, "dispatched", T0, quantity=1, to_commune="90001"))
    assert error.problems[0].rule == "before_previous_event"


def test_replayed_batch_is_recorded_once_with_the_same_answer(
    db_url: str, world: dict[str, Any]
) -> None:
    lot = world["lot"]
    batch = [
        scan(lot, "dispatched", T0, quantity=100, to_commune="90001", client_event_id="a1"),
        scan(
            lot,
            "dispatched",
            T0 + timedelta(minutes=1),
            quantity=100,
            to_commune="90001",
            client_event_id="a2",
        ),
    ]
    first = record(db_url, *batch)
    second = record(db_url, *batch)
    assert first == second
    assert _count(db_url) == 2
    assert _lot(db_url, world["lot_id"])[1] == 200
    # Same key, different content: refused as a reused id, not silently ignored.
    error = rejected(
        db_url,
        scan(
            lot, "dispatched", T0, quantity=7, to_commune="90001", client_event_id="a1"
        ).model_copy(update={"event_type": "planted", "to_commune": None}),
    )
    assert error.problems[0].rule == "client_event_id_reused"


def test_two_devices_dispatching_at_once_get_one_winner(db_url: str, world: dict[str, Any]) -> None:
    lot = world["lot"]

    async def race() -> list[Any]:
        return await asyncio.gather(
            _record(
                db_url,
                [scan(lot, "dispatched", T0, quantity=700, to_commune="90001", device_id="A")],
            ),
            _record(
                db_url,
                [scan(lot, "dispatched", T0, quantity=700, to_commune="90001", device_id="B")],
            ),
            return_exceptions=True,
        )

    outcomes = asyncio.run(race())
    winners = [o for o in outcomes if isinstance(o, list)]
    losers = [o for o in outcomes if isinstance(o, ScanRejected)]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0].problems[0].rule == "lot_quantity"
    assert _lot(db_url, world["lot_id"]) == ("dispatched", 700, 0)
    assert _count(db_url) == 1
