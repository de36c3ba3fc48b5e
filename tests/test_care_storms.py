"""Storm response over HTTP and the CLI: damage batches (offline replays), counts, orders."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from smarttrees.database import connect
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.server import make_token, seed_api_data, serve_database

SEEN = datetime(2026, 9, 7, 14, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def care_db(module_db_url: str) -> str:
    seed_api_data(module_db_url)  # communes 00001 (trees G0…G149) and 00002 (no trees)
    return module_db_url


@pytest.fixture(scope="module")
def server(care_db: str) -> Iterator[str]:
    with serve_database(care_db) as base:
        yield base


@pytest.fixture(scope="module")
def tokens(care_db: str) -> dict[str, dict[str, str]]:
    return {role: {"Authorization": f"Bearer {make_token(care_db, role)}"}
            for role in ("editor", "field", "viewer")}


@pytest.fixture(scope="module")
def storm(server: str, tokens: dict[str, dict[str, str]]) -> int:
    made = httpx.post(f"{server}/api/care/storms", headers=tokens["editor"],
                      json={"name": "Yagi", "started_on": "2026-09-06", "ended_on": "2026-09-08"})
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def record(key: str, damage: str, **fields: Any) -> dict[str, Any]:
    return {"device_id": "phone-9", "client_event_id": key, "damage": damage,
            "observed_at": fields.pop("at", SEEN).isoformat(), **fields}


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


BATCH = [
    record("d-1", "fallen", tree_code="G50", hazard_to_people=True, note="on a house"),
    record("d-2", "leaning", location=point(105.86, 21.51), blocks_road=True),
    record("d-3", "broken", tree_code="G51"),
]


def damage_count(url: str) -> int:
    with connect(url) as conn:
        return int(conn.execute("SELECT count(*) FROM care_damage").fetchone()[0])


def test_a_batch_of_damage_is_stored_once_with_its_priorities(
        server: str, care_db: str, tokens: dict[str, dict[str, str]], storm: int) -> None:
    url = f"{server}/api/care/storms/{storm}/damage"
    first = httpx.post(url, json={"records": BATCH}, headers=tokens["field"])
    assert first.status_code == 201, first.text
    assert [(r["client_event_id"], r["priority"]) for r in first.json()["records"]] == [
        ("d-1", 1), ("d-2", 2), ("d-3", 4)]
    again = httpx.post(url, json={"records": BATCH}, headers=tokens["field"])
    assert again.status_code == 201 and again.json() == first.json()
    assert damage_count(care_db) == 3
    other = httpx.post(url, json=[record("d-1", "uprooted", tree_code="G50")],
                       headers=tokens["field"])
    assert other.status_code == 409
    assert "already used client_event_id d-1" in other.json()["description"]
    assert damage_count(care_db) == 3


@pytest.mark.parametrize(("bad", "status", "named"), [
    (record("x-1", "fallen", location=point(106.5, 22.5)), 422, "records[1].location: outside"),
    (record("x-1", "fallen", tree_code="NOPE"), 404, "records[1].tree_code: no tree NOPE"),
    (record("x-1", "flattened", tree_code="G52"), 422, "records[1].damage"),
    (record("x-1", "fallen"), 422, "give a location or a tree_code"),
    (record("x-1", "fallen", tree_code="G52", at=datetime.now(UTC) + timedelta(hours=2)), 422,
     "is in the future"),
])
def test_a_bad_record_refuses_the_whole_batch(
        server: str, care_db: str, tokens: dict[str, dict[str, str]], storm: int,
        bad: dict[str, Any], status: int, named: str) -> None:
    before = damage_count(care_db)
    answer = httpx.post(f"{server}/api/care/storms/{storm}/damage", headers=tokens["field"],
                        json=[record("x-0", "broken", tree_code="G53"), bad])
    assert answer.status_code == status, answer.text
    assert named in answer.json()["description"]
    assert damage_count(care_db) == before


def test_storm_names_roles_and_unknown_storms(server: str, tokens: dict[str, dict[str, str]],
                                               storm: int) -> None:
    twice = httpx.post(f"{server}/api/care/storms", headers=tokens["editor"],
                       json={"name": "Yagi", "started_on": "2026-09-06"})
    assert twice.status_code == 409
    assert httpx.post(f"{server}/api/care/storms", headers=tokens["field"],
                      json={"name": "Other", "started_on": "2026-09-06"}).status_code == 403
    backwards = httpx.post(f"{server}/api/care/storms", headers=tokens["editor"],
                           json={"name": "B", "started_on": "2026-09-06", "ended_on": "2026-09-01"})
    assert backwards.status_code == 422 and "ended_on" in backwards.json()["description"]
    missing = httpx.post(f"{server}/api/care/storms/999/damage", headers=tokens["field"],
                         json=[record("m-1", "fallen", tree_code="G60")])
    assert missing.status_code == 404 and "no storm event 999" in missing.json()["description"]


def test_damage_is_mapped_and_counted_per_commune_without_devices_or_accounts(
        server: str, care_db: str, tokens: dict[str, dict[str, str]], storm: int) -> None:
    httpx.post(f"{server}/api/care/storms/{storm}/damage", json=BATCH, headers=tokens["field"])
    live = httpx.get(f"{server}/api/care/storms/{storm}/damage", headers=tokens["viewer"])
    assert live.headers["content-type"] == "application/geo+json"
    features = live.json()["features"]
    assert [f["properties"]["damage"] for f in features[:3]] == ["fallen", "leaning", "broken"]
    assert "phone-9" not in live.text and "test-field" not in live.text
    counts = httpx.get(f"{server}/api/care/storms/{storm}/communes",
                       headers=tokens["viewer"]).json()["communes"]
    by_code = {c["commune_code"]: c for c in counts}
    assert (by_code["00001"]["records"], by_code["00001"]["fallen"], by_code["00001"]["broken"],
            by_code["00001"]["hazards_to_people"]) == (2, 1, 1, 1)
    assert (by_code["00002"]["records"], by_code["00002"]["leaning"],
            by_code["00002"]["blocking_roads"]) == (1, 1, 1)
    cli = run_cli("care", "storms", "communes", str(storm), "--json",
                  env=cli_env(SMARTTREES_DATABASE_URL=care_db))
    assert json.loads(cli.stdout) == counts


def test_work_orders_are_opened_from_damage_most_urgent_first(
        server: str, care_db: str, tokens: dict[str, dict[str, str]], storm: int) -> None:
    httpx.post(f"{server}/api/care/storms/{storm}/damage", json=BATCH, headers=tokens["field"])
    opened = httpx.post(f"{server}/api/care/storms/{storm}/orders", headers=tokens["editor"])
    assert opened.status_code == 201, opened.text
    orders = [httpx.get(f"{server}/api/care/orders/{i}", headers=tokens["viewer"]).json()
              for i in opened.json()["opened"]]
    assert [(o["work_type"], o["priority"], o["trees"], o["origin"]) for o in orders] == [
        ("removal", 1, ["G50"], "storm"), ("staking", 2, [], "storm"),
        ("pruning", 4, ["G51"], "storm")]
    assert [orders[1]["lon"], orders[1]["lat"]] == [105.86, 21.51]
    assert orders[0]["note"] == "storm Yagi: fallen, hazard to people"
    assert orders[1]["commune_code"] == "00002"
    again = run_cli("care", "storms", "orders", str(storm),
                    env=cli_env(SMARTTREES_DATABASE_URL=care_db))
    assert again.stdout.strip() == "0 work orders requested"


def test_the_damage_tiles_follow_new_records(
        server: str, care_db: str, tokens: dict[str, dict[str, str]], storm: int) -> None:
    import math

    import mapbox_vector_tile

    lon, lat, z = 105.875, 21.515, 14
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    url = f"{server}/collections/care_storm_damage/tiles/WebMercatorQuad/{z}/{y}/{x}"

    def kinds() -> list[str]:
        body = httpx.get(url).content
        layer = mapbox_vector_tile.decode(body).get("care_storm_damage", {"features": []})
        return sorted(f["properties"]["damage"] for f in layer["features"])

    before = kinds()  # cached now
    added = httpx.post(f"{server}/api/care/storms/{storm}/damage", headers=tokens["field"],
                       json=[record("t-1", "uprooted", location=point(lon, lat))])
    assert added.status_code == 201
    assert kinds() == sorted([*before, "uprooted"])
