"""The synthetic province's chain of custody: realistic, within the rules, and served.

The generated scans are read back as a user would (SQL, the OGC collection, ``/api/trace``), and
replayed through the real scan API on a fresh copy of the province: every one must be accepted
and leave every lot and log exactly as the generator wrote it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import httpx
import numpy as np
import pytest

from barcodes.custody import ScanRejected
from barcodes.events import DETAIL_FIELDS, MAX_BATCH
from etl.synthetic import custody
from etl.synthetic.custody import AS_OF
from etl.synthetic.province import SCALES, build
from smarttrees.database import connect
from tests.fixtures.databases import copied_database
from tests.fixtures.province import PROVINCE_TEMPLATE
from tests.fixtures.server import make_token, serve_database

SMALL = SCALES["small"]


@pytest.fixture(scope="module")
def province_db(province_template, cluster) -> Iterator[str]:
    """One copy of the small province shared by this module's read-only tests."""
    with copied_database(cluster, PROVINCE_TEMPLATE, "custody_readonly") as url:
        yield url


@pytest.fixture(scope="module")
def province_server(province_db: str) -> Iterator[str]:
    with serve_database(province_db) as base:
        yield base


@pytest.fixture(scope="module")
def viewer(province_db: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(province_db, 'viewer')}"}


def _rows(url: str, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connect(url) as conn:
        return conn.execute(query, params or []).fetchall()


def test_the_province_has_custody_events_of_every_kind(province_template, province_db):
    counts = dict(_rows(province_db, "SELECT event_type, count(*) FROM custody_events GROUP BY 1"))
    assert sum(counts.values()) == province_template.scan_events > 0
    for event in (
        "certified",
        "ready",
        "dispatched",
        "planted",
        "felled",
        "at_landing",
        "loaded",
        "received",
        "processed",
        "sold",
        "inspected",
    ):
        assert counts.get(event, 0) > 0, event
    assert counts["felled"] == province_template.timber_logs  # every log is tagged as it is cut
    (loads,) = _rows(province_db, "SELECT count(*) FROM transport_loads")[0]
    assert loads == province_template.transport_loads > 0
    # Nothing happens after the end of the survey, nor before the first sowing.
    first, last = _rows(province_db, "SELECT min(occurred_at), max(occurred_at) FROM scan_events")[
        0
    ]
    assert np.datetime64(last.astimezone(UTC).replace(tzinfo=None), "s") <= AS_OF
    assert first.year >= 2024


def test_lots_never_plant_more_than_dispatched_nor_dispatch_more_than_they_hold(province_db):
    lots = _rows(
        province_db,
        "SELECT l.id, l.quantity, l.quantity_dispatched, l.quantity_planted, l.status, "
        "  coalesce(sum(e.quantity) FILTER (WHERE e.event_type = 'dispatched'), 0), "
        "  coalesce(sum(e.quantity) FILTER (WHERE e.event_type = 'planted'), 0), "
        "  count(e.id) FILTER (WHERE e.event_type = 'dispatched') "
        "FROM seedling_lots l LEFT JOIN scan_events e "
        "  ON e.item_type = 'seedling_lot' AND e.item_id = l.id GROUP BY l.id ORDER BY l.id",
    )
    assert len(lots) == SMALL.seedling_lots
    for _, quantity, dispatched, planted, _, sent, grown, _ in lots:
        assert planted <= dispatched <= quantity
        assert (sent, grown) == (dispatched, planted)  # the table says what the scans say
    assert any(parts > 1 for *_, parts in lots)  # lots go out in several dispatches
    assert {status for _, _, _, _, status, *_ in lots} >= {"ready", "planted"}
    # Planting never runs ahead of the dispatches at any moment, in time order.
    ahead = _rows(
        province_db,
        "SELECT count(*) FROM (SELECT sum(CASE event_type WHEN 'dispatched' THEN quantity "
        "  ELSE -quantity END) OVER (PARTITION BY item_id ORDER BY occurred_at, id) AS left_over "
        "  FROM scan_events WHERE item_type = 'seedling_lot' "
        "  AND event_type IN ('dispatched', 'planted')) x WHERE left_over < 0",
    )
    assert ahead == [(0,)]


def test_dispatches_go_to_known_communes_and_stands_and_are_planted_there(province_db):
    rows = _rows(
        province_db,
        "SELECT e.details ->> 'to_commune', e.details ->> 'to_stand', "
        "  (SELECT code FROM communes c WHERE c.code = e.details ->> 'to_commune'), "
        "  (SELECT stand_code FROM stands s WHERE s.stand_code = e.details ->> 'to_stand') "
        "FROM scan_events e WHERE e.event_type = 'dispatched'",
    )
    assert rows
    for to_commune, to_stand, commune, stand in rows:
        assert (to_commune or to_stand) and (to_commune == commune) and (to_stand == stand)
    assert any(r[0] for r in rows) and any(r[1] for r in rows)
    # Each planting happens where one of the lot's earlier dispatches went.
    misplaced = _rows(
        province_db,
        "SELECT count(*) FROM scan_events p WHERE p.event_type = 'planted' AND NOT EXISTS ("
        "  SELECT 1 FROM scan_events d "
        "  LEFT JOIN communes c ON c.code = d.details ->> 'to_commune' "
        "  LEFT JOIN stands s ON s.stand_code = d.details ->> 'to_stand' "
        "  WHERE d.item_type = 'seedling_lot' AND d.item_id = p.item_id "
        "  AND d.event_type = 'dispatched' AND d.occurred_at < p.occurred_at "
        "  AND ST_Intersects(coalesce(s.geom, c.geom), p.geom))",
    )
    assert misplaced == [(0,)]


def test_every_received_log_was_landed_and_loaded_first_within_the_allowance(province_db):
    chains = _rows(
        province_db,
        "SELECT g.id, g.status, g.load_id, array_agg(e.event_type ORDER BY e.occurred_at, e.id), "
        "  array_agg(e.details ->> 'fpl_number' ORDER BY e.occurred_at, e.id), "
        "  array_agg(e.details ->> 'load_code' ORDER BY e.occurred_at, e.id), lt.code, "
        "  lo.fpl_number "
        "FROM timber_logs g JOIN scan_events e ON e.item_type = 'timber_log' AND e.item_id = g.id "
        "LEFT JOIN transport_loads lo ON lo.id = g.load_id "
        "LEFT JOIN tags lt ON lt.item_type = 'transport_load' AND lt.item_id = g.load_id "
        "GROUP BY g.id, lt.code, lo.fpl_number",
    )
    assert len(chains) == SMALL.timber_logs
    received = 0
    for _, status, load_id, events, fpls, load_codes, load_tag, load_fpl in chains:
        chain = [e for e in events if e != "inspected"]
        assert chain[0] == "felled"
        assert chain[-1] == status
        if "received" in chain:
            received += 1
            assert chain[:4] == ["felled", "at_landing", "loaded", "received"]
            loaded = events.index("loaded")
            # Loaded with its forest-product list, onto the load it names, which has a TR tag.
            assert fpls[loaded] == load_fpl and load_id is not None
            assert load_codes[loaded] == load_tag and load_tag.startswith("TR-")
    assert received > SMALL.timber_logs // 2
    over = _rows(
        province_db,
        "SELECT count(*) FROM (SELECT s.harvest_allowed_m3, sum(g.volume_m3) AS out "
        "FROM timber_logs g JOIN stands s ON s.id = g.stand_id WHERE g.status <> 'felled' "
        "GROUP BY s.id) x WHERE harvest_allowed_m3 IS NULL OR out > harvest_allowed_m3",
    )
    assert over == [(0,)]


def test_scans_happen_where_the_items_are(province_db):
    # A lot's nursery scans happen at the nursery; a log's last scan is where the log lies.
    lots_away = _rows(
        province_db,
        "SELECT count(*) FROM scan_events e JOIN seedling_lots l ON l.id = e.item_id "
        "JOIN nurseries n ON n.id = l.nursery_id WHERE e.item_type = 'seedling_lot' "
        "AND e.event_type IN ('certified', 'ready', 'dispatched') AND NOT ST_Equals(e.geom, n.geom)",
    )
    assert lots_away == [(0,)]
    logs = _rows(
        province_db,
        "SELECT g.status, ST_Within(g.geom, s.geom), ST_Equals(g.geom, last.geom), "
        "  ST_Within(felled.geom, s.geom) "
        "FROM timber_logs g JOIN stands s ON s.id = g.stand_id "
        "CROSS JOIN LATERAL (SELECT geom FROM scan_events e WHERE e.item_type = 'timber_log' "
        "  AND e.item_id = g.id ORDER BY occurred_at DESC, id DESC LIMIT 1) last "
        "CROSS JOIN LATERAL (SELECT geom FROM scan_events e WHERE e.item_type = 'timber_log' "
        "  AND e.item_id = g.id AND event_type = 'felled') felled",
    )
    for status, in_stand, at_last_scan, felled_in_stand in logs:
        assert at_last_scan and felled_in_stand
        if status in ("felled", "at_landing", "loaded"):
            assert in_stand  # the landing is on the stand's edge
        else:
            assert not in_stand  # at a mill or yard
    outside = _rows(
        province_db,
        "SELECT count(*) FROM scan_events e WHERE NOT EXISTS (SELECT 1 FROM communes c "
        "WHERE ST_Intersects(c.geom, e.geom))",
    )
    assert outside == [(0,)]


def test_custody_events_collection_has_features_fields_and_an_extent(
    province_server: str, province_db: str
):
    page = httpx.get(f"{province_server}/collections/custody_events/items?f=json&limit=500")
    assert page.status_code == 200, page.text
    features = page.json()["features"]
    assert len(features) == 500
    assert {f["geometry"]["type"] for f in features} == {"Point"}
    kinds = Counter(f["properties"]["event_type"] for f in features)
    assert len(kinds) >= 5
    assert all("device_id" not in f["properties"] for f in features)
    loaded = next(f for f in features if f["properties"]["event_type"] == "loaded")
    assert loaded["properties"]["fpl_number"] and loaded["properties"]["stand_code"]
    meta = httpx.get(f"{province_server}/collections/custody_events?f=json").json()
    (box,) = meta["extent"]["spatial"]["bbox"]
    ((xmin, ymin, xmax, ymax),) = _rows(
        province_db,
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
        "FROM (SELECT ST_Extent(geom) e FROM communes) x",
    )
    assert xmin <= box[0] < box[2] <= xmax and ymin <= box[1] < box[3] <= ymax


def test_trace_of_a_generated_log_runs_from_its_stand_to_the_mill(
    province_server: str, province_db: str, viewer: dict[str, str]
):
    code, stand_code = _rows(
        province_db,
        "SELECT t.code, s.stand_code FROM timber_logs g JOIN stands s ON s.id = g.stand_id "
        "JOIN tags t ON t.item_type = 'timber_log' AND t.item_id = g.id "
        "WHERE g.status = 'processed' ORDER BY g.id LIMIT 1",
    )[0]
    trace = httpx.get(f"{province_server}/api/trace/{code}", headers=viewer)
    assert trace.status_code == 200, trace.text
    body = trace.json()
    route = [e["event_type"] for e in body["events"] if e["event_type"] != "inspected"]
    assert route == ["felled", "at_landing", "loaded", "received", "processed"]
    assert body["item"]["stand_code"] == stand_code and body["item"]["status"] == "processed"
    received = next(e for e in body["events"] if e["event_type"] == "received")
    assert received["details"]["destination_kind"] in ("mill", "yard")
    geo = httpx.get(f"{province_server}/api/trace/{code}?f=geojson", headers=viewer).json()
    assert geo["geometry"]["type"] == "LineString"
    assert geo["geometry"]["coordinates"][-1] == pytest.approx(received["location"])
    # The truck's own tag traces back to the logs it carried.
    load = httpx.get(f"{province_server}/api/trace/{body['item']['load_code']}", headers=viewer)
    assert load.status_code == 200 and code in load.json()["item"]["logs"]


def _request_bodies(url: str) -> list[dict[str, Any]]:
    """Every stored scan as the phone would have sent it."""
    rows = _rows(
        url,
        "SELECT device_id, client_event_id, code, event_type, occurred_at, ST_X(geom), "
        "ST_Y(geom), quantity, volume_m3, details FROM scan_events ORDER BY id",
    )
    bodies = []
    for device, client_id, code, event_type, at, lon, lat, quantity, volume, details in rows:
        body: dict[str, Any] = {
            "device_id": device,
            "client_event_id": client_id,
            "code": code,
            "event_type": event_type,
            "occurred_at": at.isoformat(),
            "location": {"type": "Point", "coordinates": [lon, lat]},
        }
        if quantity is not None:
            body["quantity"] = quantity
        if volume is not None:
            body["volume_m3"] = float(volume)
        for name in DETAIL_FIELDS:
            derived = name == "destination" and event_type == "dispatched"
            if name in details and not derived and name != "load_code":
                body[name] = details[name]
        bodies.append(body)
    return bodies


STATE_SQL = (
    "SELECT 'lot', l.id, l.status, l.quantity_dispatched, l.quantity_planted, l.certificate_no, "
    "  NULL, NULL FROM seedling_lots l "
    "UNION ALL SELECT 'log', g.id, g.status, NULL, NULL, g.volume_m3::text, lo.fpl_number, "
    "  ST_AsText(g.geom) FROM timber_logs g LEFT JOIN transport_loads lo ON lo.id = g.load_id "
    "ORDER BY 1, 2"
)


def test_the_scan_api_accepts_every_generated_scan_with_the_same_outcome(
    province_url: str, live_server: str, field_token: str
):
    bodies = _request_bodies(province_url)
    generated = _rows(province_url, STATE_SQL)
    statuses = dict(
        _rows(province_url, "SELECT client_event_id, details->>'status_after' FROM scan_events")
    )
    load_fpl = dict(
        _rows(
            province_url,
            "SELECT t.code, lo.fpl_number FROM tags t JOIN transport_loads lo ON lo.id = t.item_id "
            "WHERE t.item_type = 'transport_load'",
        )
    )
    with connect(province_url) as conn:  # back to the day the tags were nailed on
        conn.execute("DELETE FROM scan_events")
        conn.execute(
            "UPDATE seedling_lots SET status = 'registered', quantity_dispatched = 0, "
            "quantity_planted = 0, certificate_no = NULL"
        )
        conn.execute("UPDATE timber_logs SET status = 'felled', load_id = NULL, geom = NULL")
        conn.execute("DELETE FROM tags WHERE item_type = 'transport_load'")
        conn.execute("DELETE FROM transport_loads")
    headers = {"Authorization": f"Bearer {field_token}"}

    def post(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        response = httpx.post(
            f"{live_server}/api/scans", json={"events": batch}, headers=headers, timeout=60
        )
        assert response.status_code == 200, response.text[:2000]
        return response.json()["events"]

    # Lots and logs in time order, as the phones synced; the trucks' inspections once the
    # scan API has made the loads (their tags are new, found by forest-product list).
    trucks = [b for b in bodies if b["code"].startswith("TR-")]
    others = [b for b in bodies if not b["code"].startswith("TR-")]
    answers = []
    for start in range(0, len(others), MAX_BATCH):
        answers += post(others[start : start + MAX_BATCH])
    new_code = dict(
        _rows(
            province_url,
            "SELECT lo.fpl_number, t.code FROM transport_loads lo JOIN tags t "
            "ON t.item_type = 'transport_load' AND t.item_id = lo.id",
        )
    )
    for body in trucks:
        body["code"] = new_code[load_fpl[body["code"]]]
    answers += post(trucks) if trucks else []
    assert len(answers) == len(bodies)
    assert {a["client_event_id"]: a["status"] for a in answers} == statuses
    assert _rows(province_url, STATE_SQL) == generated


def test_the_custody_history_is_the_same_for_the_same_seed(province_db):
    with connect(province_db) as conn:
        catalogue = dict(conn.execute("SELECT scientific_name, id FROM species").fetchall())
    stored = _rows(
        province_db,
        "SELECT event_type, occurred_at, ST_X(geom), ST_Y(geom) FROM scan_events ORDER BY id",
    )
    again = build(SMALL, 2025, catalogue).custody
    assert [r[0] for r in stored] == again.event_type.tolist()
    moments = [m.replace(tzinfo=UTC) for m in again.at.astype("datetime64[us]").tolist()]
    assert [r[1] for r in stored] == moments
    assert [r[2] for r in stored] == again.lon.tolist()
    other = build(SMALL, 2026, catalogue).custody
    assert other.at.tolist() != again.at.tolist()


def test_a_plan_that_breaks_a_custody_rule_is_refused_before_anything_is_written(province_db):
    with connect(province_db) as conn:
        catalogue = dict(conn.execute("SELECT scientific_name, id FROM species").fetchall())
    p = build(SMALL, 2025, catalogue)
    ids = custody.Ids(
        np.arange(1, len(p.lots.codes) + 1),
        np.arange(1, len(p.logs.codes) + 1),
        np.arange(1, len(p.custody.loads) + 1),
    )
    stand_ids = np.arange(1, len(p.stands) + 1)
    assert custody.replay(p.custody, ids, p.lots, p.logs, p.stands, stand_ids).count == len(
        p.custody
    )
    # Plant more seedlings than the lot's dispatches brought: the scan API's rule says no.
    planted = np.flatnonzero(p.custody.event_type == "planted")[0]
    p.custody.fields["quantity"][planted] = 10_000_000
    with pytest.raises(ScanRejected) as refused:
        custody.replay(p.custody, ids, p.lots, p.logs, p.stands, stand_ids)
    assert [problem.rule for problem in refused.value.problems] == ["planted_quantity"]
