"""Work orders over HTTP and the CLI: the steps in order, who may take them, costs, removals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from smarttrees import accounts
from smarttrees.database import connect
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.server import make_token, seed_api_data, serve_database, tree_position

PRICES = Path(__file__).resolve().parent.parent / "data" / "care" / "prices.csv"


@pytest.fixture(scope="module")
def care_db(module_db_url: str) -> str:
    seed_api_data(module_db_url)  # trees G0…G149, dbh 10 + i % 40 cm
    loaded = run_cli("care", "prices", "load", str(PRICES),
                     env=cli_env(SMARTTREES_DATABASE_URL=module_db_url))
    assert loaded.code == 0, loaded.stderr
    assert loaded.stdout.strip() == f"12 prices loaded from {PRICES}"
    return module_db_url


@pytest.fixture(scope="module")
def server(care_db: str) -> Iterator[str]:
    with serve_database(care_db) as base:
        yield base


def bearer(url: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(url, role)}"}


@pytest.fixture(scope="module")
def tokens(care_db: str) -> dict[str, dict[str, str]]:
    with connect(care_db) as conn:
        accounts.create_user(conn, "crew-b", "field")
        other = accounts.issue_token(conn, "crew-b")
    return {"editor": bearer(care_db, "editor"), "field": bearer(care_db, "field"),
            "viewer": bearer(care_db, "viewer"), "crew-b": {"Authorization": f"Bearer {other}"}}


def create(server: str, tokens: dict[str, dict[str, str]], **body: Any) -> httpx.Response:
    return httpx.post(f"{server}/api/care/orders", json=body, headers=tokens["editor"])


def step(server: str, headers: dict[str, str], order_id: int, to: str,
         **body: Any) -> httpx.Response:
    return httpx.post(f"{server}/api/care/orders/{order_id}/transitions",
                      json={"to": to, **body}, headers=headers)


def status_of(url: str, order_id: int) -> str:
    with connect(url) as conn:
        return conn.execute("SELECT status FROM care_work_orders WHERE id = %s",
                            [order_id]).fetchone()[0]


def test_an_order_goes_from_request_to_done_with_every_step_recorded(
        server: str, care_db: str, tokens: dict[str, dict[str, str]]) -> None:
    made = create(server, tokens, work_type="pruning", trees=["G40", "G41", "G40"], priority=2)
    assert made.status_code == 201, made.text
    order = made.json()
    # G40 and G41 measure 10 and 11 cm: the band under 20 cm, 250,000 VND each.
    assert (order["status"], order["trees"], order["estimated_cost_vnd"]) == (
        "requested", ["G40", "G41"], 500_000)
    assert [order["lon"], order["lat"]] == [round(v, 7) for v in tree_position(40)]
    oid = order["id"]
    assert step(server, tokens["editor"], oid, "approved").status_code == 200
    scheduled = step(server, tokens["editor"], oid, "scheduled", crew="test-field",
                     scheduled_on="2026-12-03")
    assert scheduled.status_code == 200, scheduled.text
    done = step(server, tokens["field"], oid, "done", actual_cost_vnd=480_000, note="ok")
    assert done.status_code == 200, done.text
    doc = httpx.get(f"{server}/api/care/orders/{oid}", headers=tokens["viewer"]).json()
    assert (doc["status"], doc["crew"], doc["scheduled_on"], doc["actual_cost_vnd"]) == (
        "done", "test-field", "2026-12-03", 480_000)
    assert [(e["from"], e["to"], e["actor"]) for e in doc["events"]] == [
        (None, "requested", "test-editor"), ("requested", "approved", "test-editor"),
        ("approved", "scheduled", "test-editor"), ("scheduled", "done", "test-field")]
    listed = httpx.get(f"{server}/api/care/orders", params={"status": "done"},
                       headers=tokens["viewer"]).json()["orders"]
    assert oid in [o["id"] for o in listed]


def test_a_skip_or_a_step_back_is_refused_and_changes_nothing(
        server: str, care_db: str, tokens: dict[str, dict[str, str]]) -> None:
    oid = create(server, tokens, work_type="staking", trees=["G42"]).json()["id"]
    skip = step(server, tokens["editor"], oid, "scheduled", crew="test-field",
                scheduled_on="2026-12-03")
    assert skip.status_code == 409
    assert skip.json()["description"] == (
        f"work order {oid} is requested: it can go to approved or cancelled, not scheduled")
    assert step(server, tokens["editor"], oid, "approved").status_code == 200
    back = step(server, tokens["editor"], oid, "requested")
    assert back.status_code == 409 and "not requested" in back.json()["description"]
    assert step(server, tokens["editor"], oid, "cancelled").status_code == 200
    closed = step(server, tokens["editor"], oid, "approved")
    assert closed.status_code == 409 and "closed" in closed.json()["description"]
    unknown = step(server, tokens["editor"], 999_999, "approved")
    assert unknown.status_code == 404 and "no work order 999999" in unknown.json()["description"]
    with connect(care_db) as conn:
        events = conn.execute("SELECT count(*) FROM care_work_order_events WHERE order_id = %s",
                              [oid]).fetchone()[0]
    assert events == 3 and status_of(care_db, oid) == "cancelled"


def test_crews_update_only_their_own_orders_and_create_none(
        server: str, care_db: str, tokens: dict[str, dict[str, str]]) -> None:
    oid = create(server, tokens, work_type="watering", trees=["G43"]).json()["id"]
    assert step(server, tokens["field"], oid, "approved").status_code == 403
    step(server, tokens["editor"], oid, "approved")
    no_crew = step(server, tokens["editor"], oid, "scheduled", scheduled_on="2026-12-04")
    assert no_crew.status_code == 400 and "crew" in no_crew.json()["description"]
    not_field = step(server, tokens["editor"], oid, "scheduled", crew="test-viewer",
                     scheduled_on="2026-12-04")
    assert not_field.status_code == 400
    step(server, tokens["editor"], oid, "scheduled", crew="test-field", scheduled_on="2026-12-04")
    other = step(server, tokens["crew-b"], oid, "done")
    assert other.status_code == 403
    assert other.json()["description"] == f"work order {oid} is not scheduled for crew-b"
    assert status_of(care_db, oid) == "scheduled"
    by_crew = httpx.post(f"{server}/api/care/orders", headers=tokens["field"],
                         json={"work_type": "pruning", "trees": ["G44"]})
    assert by_crew.status_code == 403


def test_finishing_a_removal_removes_the_tree_and_opens_a_planting_at_its_spot(
        server: str, care_db: str, tokens: dict[str, dict[str, str]]) -> None:
    inspect = httpx.post(f"{server}/api/care/inspections", headers=tokens["field"], json={
        "tree_code": "G79", "inspected_on": date.today().isoformat(), "inspector": "Lan",
        "likelihood_failure": "imminent", "likelihood_impact": "high", "consequences": "severe"})
    assert inspect.json()["risk"] == "extreme"
    # G79: dbh 10 + 79 % 40 = 49 cm, the 20–50 cm removal band.
    oid = create(server, tokens, work_type="removal", trees=["G79"], priority=1,
                 origin="inspection", origin_id=inspect.json()["inspection_id"]).json()
    assert oid["estimated_cost_vnd"] == 2_000_000
    step(server, tokens["editor"], oid["id"], "approved")
    step(server, tokens["editor"], oid["id"], "scheduled", crew="test-field",
         scheduled_on="2026-12-05")
    done = step(server, tokens["field"], oid["id"], "done", replant=True)
    assert done.status_code == 200, done.text
    [planting_id] = done.json()["opened"]
    planting = httpx.get(f"{server}/api/care/orders/{planting_id}", headers=tokens["viewer"]).json()
    assert (planting["work_type"], planting["status"], planting["origin"], planting["origin_id"],
            planting["estimated_cost_vnd"]) == ("planting", "requested", "replacement",
                                                oid["id"], 1_200_000)
    assert [planting["lon"], planting["lat"]] == [round(v, 7) for v in tree_position(79)]
    with connect(care_db) as conn:
        condition = conn.execute("SELECT condition FROM trees WHERE tree_code = 'G79'").fetchone()[0]
        actor, changes = conn.execute(
            "SELECT actor, changes FROM tree_history WHERE tree_code = 'G79' "
            "ORDER BY id DESC LIMIT 1").fetchone()
        on_due_list = conn.execute(
            "SELECT count(*) FROM care_tree_status WHERE tree_code = 'G79'").fetchone()[0]
    assert condition == "removed" and on_due_list == 0
    assert actor == "test-field" and changes["condition"]["new"] == "removed"
    again = create(server, tokens, work_type="pruning", trees=["G79"])
    assert again.status_code == 409
    stump = create(server, tokens, work_type="stump_removal", trees=["G79"])
    assert stump.status_code == 201


def test_an_order_naming_an_unknown_tree_or_a_bad_field_stores_nothing(
        server: str, care_db: str, tokens: dict[str, dict[str, str]]) -> None:
    with connect(care_db) as conn:
        before = conn.execute("SELECT count(*) FROM care_work_orders").fetchone()[0]
    unknown = create(server, tokens, work_type="pruning", trees=["G45", "NOPE-9"])
    assert unknown.status_code == 404 and "NOPE-9" in unknown.json()["description"]
    bad = create(server, tokens, work_type="felling", trees=["G45"])
    assert bad.status_code == 422 and bad.json()["description"].startswith("work_type:")
    nowhere = create(server, tokens, work_type="planting")
    assert nowhere.status_code == 422 and "location" in nowhere.json()["description"]
    with connect(care_db) as conn:
        after = conn.execute("SELECT count(*) FROM care_work_orders").fetchone()[0]
    assert after == before


def test_the_cli_creates_moves_and_lists_orders(care_db: str, tmp_path: Path) -> None:
    env = cli_env(SMARTTREES_DATABASE_URL=care_db)
    made = run_cli("care", "orders", "create", "planting", "--at", "105.81,21.51",
                   "--note", "sấu", "--actor", "lan", env=env)
    assert made.code == 0, made.stderr
    oid = int(made.stdout.split("\t")[0])
    assert "planting" in made.stdout and "1,200,000 VND" in made.stdout
    skip = run_cli("care", "orders", "done", str(oid), env=env)
    assert skip.code == 1
    assert skip.error_lines == [
        f"error: work order {oid} is requested: it can go to approved or cancelled, not done"]
    assert run_cli("care", "orders", "approve", str(oid), "--actor", "lan", env=env).code == 0
    listed = json.loads(run_cli("care", "orders", "list", "--status", "approved", "--json",
                                env=env).stdout)
    mine = next(o for o in listed if o["id"] == oid)
    assert (mine["status"], mine["commune_code"], mine["created_by"]) == ("approved", "00001", "lan")
    bad = tmp_path / "prices.csv"
    bad.write_text("work_type,price_vnd\npruning,100\nfelling,-5\n", encoding="utf-8")
    refused = run_cli("care", "prices", "load", str(bad), env=env)
    assert refused.code == 1
    assert f"{bad} row 3, work_type" in refused.error_lines[0]
    assert f"{bad} row 3, price_vnd" in refused.error_lines[0]
    assert len(run_cli("care", "prices", "list", env=env).stdout.splitlines()) == 12
