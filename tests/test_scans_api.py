"""The scan HTTP API end to end: real server, real PostGIS, labels photographed and decoded."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from PIL import Image

from barcodes.codes import ItemType, make_code
from barcodes.labels import render_label
from barcodes.tags import issue_tags, label_infos
from gis_api.errors import ErrorDocument, ScanRejectedDocument
from gis_api.scan_documents import ScanBatchAnswer, Trace, TraceFeature
from smarttrees.database import connect
from tests.test_barcodes_decode import phone_photo
from tests.test_custody import build_world

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
_n = iter(range(1, 1_000_000))


def event(code: str, event_type: str, at: datetime = T0, **fields: Any) -> dict[str, Any]:
    where = fields.pop("where", (105.80, 21.60))
    return {
        "device_id": fields.pop("device_id", "phone-7"),
        "client_event_id": fields.pop("client_event_id", f"c-{next(_n)}"),
        "code": code,
        "event_type": event_type,
        "occurred_at": at.isoformat(),
        "location": {"type": "Point", "coordinates": list(where)},
        **fields,
    }


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def count_events(url: str) -> int:
    with psycopg.connect(url) as c:
        return int(c.execute("SELECT count(*) FROM smarttrees.scan_events").fetchone()[0])


@pytest.fixture(scope="module")
def world(module_db_url: str) -> Iterator[dict[str, Any]]:
    with connect(module_db_url) as conn:
        yield build_world(conn)


# -- round trip over the generated province ---------------------------------------------------


def test_round_trip_generate_label_photo_decode_scan_trace(
    province_url: str, live_server: str, field_token: str
) -> None:
    generated = count_events(province_url)  # the province's own chain of custody
    with connect(province_url) as conn:
        lot_id, lot_left = conn.execute(
            "SELECT id, quantity - quantity_dispatched FROM smarttrees.seedling_lots "
            "WHERE status = 'ready' ORDER BY id LIMIT 1"
        ).fetchone()
        log_ids = [
            r[0]
            for r in conn.execute(
                "SELECT g.id FROM smarttrees.timber_logs g WHERE g.status = 'felled' ORDER BY g.id LIMIT 2"
            )
        ]
        commune, lon, lat, stand_lon, stand_lat = conn.execute(
            "SELECT c.code, ST_X(ST_PointOnSurface(c.geom)), ST_Y(ST_PointOnSurface(c.geom)), "
            "  ST_X(ST_PointOnSurface(s.geom)), ST_Y(ST_PointOnSurface(s.geom)) "
            "FROM smarttrees.timber_logs g JOIN smarttrees.stands s ON s.id = g.stand_id "
            "JOIN smarttrees.communes c ON c.code = s.commune_code WHERE g.id = %s",
            [log_ids[0]],
        ).fetchone()
        lot_code = issue_tags(conn, ItemType.SEEDLING_LOT, [lot_id])[lot_id]
        log_tags = issue_tags(conn, ItemType.TIMBER_LOG, log_ids)
        infos = label_infos(conn, [lot_code, *log_tags.values()])
    assert [i.code for i in infos] == [lot_code, *log_tags.values()]
    assert all(i.species and i.origin and i.day for i in infos)

    # Three labels in one blurred, dim, tilted JPEG, as a phone would send it.
    photo = phone_photo(
        [render_label(i, "png") for i in infos], angle=7, blur=1.0, contrast=0.5, noise=25
    )
    response = httpx.post(
        f"{live_server}/api/scans/decode",
        content=photo,
        headers=auth(field_token) | {"Content-Type": "image/jpeg"},
    )
    assert response.status_code == 200, response.text
    decoded = [c["code"] for c in response.json()["codes"]]
    assert sorted(decoded) == sorted(i.code for i in infos)

    batch = [
        event(
            lot_code,
            "dispatched",
            quantity=min(100, lot_left),
            to_commune=commune,
            where=(lon, lat),
        ),
        *[
            event(code, "at_landing", T0 + timedelta(hours=1), where=(stand_lon, stand_lat))
            for code in decoded
            if code.startswith("TL")
        ],
        event(
            log_tags[log_ids[0]],
            "loaded",
            T0 + timedelta(hours=2),
            fpl_number="BK-TN-2026-77",
            where=(lon, lat),
        ),
    ]
    response = httpx.post(
        f"{live_server}/api/scans", json={"events": batch}, headers=auth(field_token)
    )
    assert response.status_code == 200, response.text
    ScanBatchAnswer.model_validate_json(response.content)
    assert [e["status"] for e in response.json()["events"]] == [
        "dispatched",
        "at_landing",
        "at_landing",
        "loaded",
    ]

    trace = httpx.get(f"{live_server}/api/trace/{log_tags[log_ids[0]]}", headers=auth(field_token))
    assert trace.status_code == 200
    Trace.model_validate_json(trace.content)
    body = trace.json()
    assert [e["event_type"] for e in body["events"]] == ["felled", "at_landing", "loaded"]
    assert body["item"]["status"] == "loaded" and body["item"]["load_code"].startswith("TR-")
    geo = httpx.get(
        f"{live_server}/api/trace/{log_tags[log_ids[0]]}?f=geojson", headers=auth(field_token)
    )
    assert geo.headers["content-type"].startswith("application/geo+json")
    TraceFeature.model_validate_json(geo.content)
    line = geo.json()["geometry"]
    assert line["type"] == "LineString"
    assert line["coordinates"][-1] == pytest.approx([lon, lat])
    # The load got a tag of its own: its trace lists the log.
    load = Trace.model_validate_json(httpx.get(
        f"{live_server}/api/trace/{body['item']['load_code']}", headers=auth(field_token)
    ).content).model_dump()
    assert load["item"]["fpl_number"] == "BK-TN-2026-77"
    assert load["item"]["logs"] == [log_tags[log_ids[0]]]
    # Custody events are an OGC collection too (no device, no actor).
    items = httpx.get(f"{live_server}/collections/custody_events/items?f=json&limit=50")
    assert items.status_code == 200, items.text
    features = items.json()["features"]
    assert len(features) == 50 and count_events(province_url) == generated + 4
    assert all(
        "device_id" not in f["properties"] and "actor" not in f["properties"] for f in features
    )


# -- one shared server over a hand-made world ----------------------------------------------------


def test_roles_gate_scans_and_labels(
    module_server: str, world: dict[str, Any], viewer_token: str, field_token: str
) -> None:
    lot = world["lot"]
    body = event(lot, "inspected")
    assert httpx.post(f"{module_server}/api/scans", json=body).status_code == 401
    denied = httpx.post(f"{module_server}/api/scans", json=body, headers=auth(viewer_token))
    assert denied.status_code == 403 and denied.json()["code"] == "Forbidden"
    assert httpx.get(f"{module_server}/api/labels/{lot}.svg").status_code == 401
    assert (
        httpx.get(f"{module_server}/api/labels/{lot}.svg", headers=auth(viewer_token)).status_code
        == 403
    )
    assert (
        httpx.post(
            f"{module_server}/api/scans/decode", content=b"x", headers=auth(viewer_token)
        ).status_code
        == 403
    )
    assert httpx.get(f"{module_server}/api/trace/{lot}").status_code == 401
    assert (
        httpx.get(f"{module_server}/api/trace/{lot}", headers=auth(viewer_token)).status_code == 200
    )


def test_labels_over_http(module_server: str, world: dict[str, Any], field_token: str) -> None:
    lot = world["lot"]
    svg = httpx.get(f"{module_server}/api/labels/{lot}.svg", headers=auth(field_token))
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert lot.encode() in svg.content and "Vườn ươm Đồng Hỷ".encode() in svg.content
    png = httpx.get(f"{module_server}/api/labels/{lot}.png", headers=auth(field_token))
    import zxingcpp

    assert [b.text for b in zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))] == [lot]
    tree = httpx.get(f"{module_server}/api/labels/{world['tree']}.png", headers=auth(field_token))
    (qr,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(tree.content)))
    assert qr.text.startswith(module_server) and qr.text.endswith("/collections/trees/items/1")
    unknown = httpx.get(
        f"{module_server}/api/labels/{make_code(ItemType.TREE, 999)}.png", headers=auth(field_token)
    )
    assert unknown.status_code == 404 and "no tag" in unknown.json()["description"]
    gs1 = httpx.get(
        f"{module_server}/api/labels/{lot}.png?symbology=gs1", headers=auth(field_token)
    )
    assert gs1.status_code == 400 and "SMARTTREES_GS1_COMPANY_PREFIX" in gs1.json()["description"]
    bad = httpx.get(f"{module_server}/api/labels/{lot[:-1]}Q.svg", headers=auth(field_token))
    assert bad.status_code == 422 and "check character" in bad.json()["description"]


def test_offline_batch_replayed_is_recorded_once_with_the_same_answer(
    module_server: str, module_db_url: str, world: dict[str, Any], field_token: str
) -> None:
    lot = world["fresh_lot"]
    batch = [event(lot, "certified", T0), event(lot, "ready", T0 + timedelta(days=20))]
    before = count_events(module_db_url)
    first = httpx.post(f"{module_server}/api/scans", json=batch, headers=auth(field_token))
    second = httpx.post(f"{module_server}/api/scans", json=batch, headers=auth(field_token))
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert [e["status"] for e in first.json()["events"]] == ["certified", "ready"]
    assert count_events(module_db_url) == before + 2


def test_two_clients_dispatching_at_the_same_moment(
    module_server: str, module_db_url: str, world: dict[str, Any], field_token: str
) -> None:
    lot = world["lot"]
    start = threading.Barrier(2)
    results: list[httpx.Response] = []

    def dispatch(device: str) -> None:
        body = event(lot, "dispatched", T0, quantity=700, to_commune="90001", device_id=device)
        with httpx.Client(headers=auth(field_token)) as client:
            start.wait()
            results.append(client.post(f"{module_server}/api/scans", json=body))

    threads = [threading.Thread(target=dispatch, args=(name,)) for name in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [200, 409]
    winner = next(r for r in results if r.status_code == 200).json()
    assert (winner["event_type"], winner["status"]) == ("dispatched", "dispatched")
    loser = next(r for r in results if r.status_code == 409).json()
    assert loser["code"] == "Conflict" and loser["problems"][0]["rule"] == "lot_quantity"
    assert "only 300 of 1000 are left" in loser["description"]
    with psycopg.connect(module_db_url) as c:
        assert (
            c.execute(
                "SELECT quantity_dispatched FROM smarttrees.seedling_lots WHERE id = %s",
                [world["lot_id"]],
            ).fetchone()[0]
            == 700
        )


def post_at_once(base: str, token: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """POST each body to /api/scans from its own thread, all released at the same instant."""
    start = threading.Barrier(len(bodies))
    results: list[httpx.Response] = []

    def send(body: dict[str, Any]) -> None:
        with httpx.Client(headers=auth(token), timeout=30) as client:
            start.wait()
            results.append(client.post(f"{base}/api/scans", json=body))

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_one_client_event_id_sent_at_once_with_two_codes_is_one_200_and_one_409(
    module_server: str, module_db_url: str, world: dict[str, Any], field_token: str
) -> None:
    # Issue 10: the two requests raced past the idempotency check; the loser got a 500.
    for trial in range(10):
        client_id = f"same-instant-{trial}"
        bodies = [
            event(code, "inspected", T0, device_id="phone-twin", client_event_id=client_id)
            for code in (world["tree"], world["logs"][0])
        ]
        results = post_at_once(module_server, field_token, bodies)
        assert sorted(r.status_code for r in results) == [200, 409], [r.text for r in results]
        loser = next(r for r in results if r.status_code == 409).json()
        assert loser["problems"][0]["rule"] == "client_event_id_reused"
        winner = next(r for r in results if r.status_code == 200).json()
        with psycopg.connect(module_db_url) as c:
            stored = c.execute(
                "SELECT code FROM smarttrees.scan_events "
                "WHERE device_id = 'phone-twin' AND client_event_id = %s",
                [client_id],
            ).fetchall()
        assert stored == [(winner["code"],)]


def test_one_event_sent_twice_at_once_gets_the_same_answer_twice(
    module_server: str, world: dict[str, Any], field_token: str
) -> None:
    for trial in range(3):
        body = event(world["tree"], "inspected", T0, device_id="phone-echo",
                     client_event_id=f"echo-{trial}")
        results = post_at_once(module_server, field_token, [body, body])
        assert [r.status_code for r in results] == [200, 200]
        assert results[0].content == results[1].content


@pytest.mark.parametrize(
    "case",
    [
        "malformed",
        "bad_check",
        "unknown",
        "wrong_type",
        "future",
        "outside",
        "missing_field",
        "not_list",
        "too_many",
    ],
)
def test_bad_scans_get_a_clear_4xx_and_store_nothing(
    case: str, module_server: str, module_db_url: str, world: dict[str, Any], field_token: str
) -> None:
    lot, log = world["lot"], world["logs"][2]
    wrong = lot[:-1] + ("0" if lot[-1] != "0" else "1")
    bodies: dict[str, tuple[Any, int, str]] = {
        "malformed": (b'{"code": "SL-', 400, "not valid JSON"),
        "bad_check": (event(wrong, "inspected"), 422, "wrong check character"),
        "unknown": (event(make_code(ItemType.SEEDLING_LOT, 777), "inspected"), 404, "no tag"),
        "wrong_type": (event(log, "planted", quantity=3), 422, "is for seedling_lot"),
        "future": (
            event(lot, "inspected", datetime.now(UTC) + timedelta(days=1)),
            422,
            "in the future",
        ),
        "outside": (event(lot, "inspected", where=(139.69, 35.68)), 422, "outside the territory"),
        "missing_field": (
            {k: v for k, v in event(lot, "inspected").items() if k != "location"},
            422,
            "location: Field required",
        ),
        "not_list": ({"events": "nope"}, 422, "'events' must be a list"),
        "too_many": ([event(lot, "inspected") for _ in range(5001)], 413, "at most 5,000"),
    }
    body, status, words = bodies[case]
    before = count_events(module_db_url)
    content = body if isinstance(body, bytes) else None
    response = httpx.post(
        f"{module_server}/api/scans",
        content=content,
        json=None if content else body,
        headers=auth(field_token) | {"Content-Type": "application/json"},
    )
    assert response.status_code == status, response.text
    # A refused scan lists its problems; any other refusal is the plain error document.
    model = ScanRejectedDocument if "problems" in response.json() else ErrorDocument
    assert words in model.model_validate_json(response.content).description
    assert count_events(module_db_url) == before


def test_decode_upload_refuses_what_it_cannot_read(
    module_server: str, world: dict[str, Any], field_token: str
) -> None:
    url = f"{module_server}/api/scans/decode"
    headers = auth(field_token) | {"Content-Type": "image/jpeg"}
    blank = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 140, 60)).save(blank, format="JPEG")
    none = httpx.post(url, content=blank.getvalue(), headers=headers)
    assert none.status_code == 422 and "no barcode" in none.json()["description"]
    junk = httpx.post(url, content=b"definitely not a jpeg", headers=headers)
    assert junk.status_code == 422 and "not a readable image" in junk.json()["description"]
    huge = httpx.post(url, content=b"\xff" * (9 * 1024 * 1024), headers=headers)
    assert huge.status_code == 413 and "larger than" in huge.json()["description"]
    text = httpx.post(
        url, content=b"hello", headers=auth(field_token) | {"Content-Type": "text/plain"}
    )
    assert text.status_code == 415
