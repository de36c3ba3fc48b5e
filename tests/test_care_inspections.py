"""Inspections end to end: HTTP and CLI over a real PostGIS, the tree's history, the due list."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from smarttrees.database import connect
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.server import make_token, seed_api_data, serve_database

TODAY = date.today()


@pytest.fixture(scope="module")
def care_db(module_db_url: str) -> str:
    seed_api_data(module_db_url)  # trees G0…G149, category urban/scattered/plantation by i % 3
    return module_db_url


@pytest.fixture(scope="module")
def server(care_db: str) -> Iterator[str]:
    with serve_database(care_db) as base:
        yield base


@pytest.fixture(scope="module")
def field(care_db: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(care_db, 'field')}"}


def inspection(tree: str, **fields: Any) -> dict[str, Any]:
    return {
        "tree_code": tree, "inspected_on": fields.pop("on", TODAY).isoformat(),
        "inspector": "Lan", "likelihood_failure": "possible", "likelihood_impact": "medium",
        "consequences": "significant", **fields,
    }


def count(url: str, sql: str, *params: Any) -> Any:
    with connect(url) as conn:
        return conn.execute(sql, params).fetchone()[0]


def add_months(url: str, day: date, months: int) -> date:
    return count(url, "SELECT (%s::date + make_interval(months => %s))::date", day, months)


def test_an_inspection_is_rated_updates_the_tree_and_its_history(
        server: str, care_db: str, field: dict[str, str]) -> None:
    body = inspection("G1", dbh_cm=55.5, height_m=12, condition="poor",
                      likelihood_failure="probable", likelihood_impact="high",
                      defects=["decay", "wire_conflict"], on=TODAY - timedelta(days=10))
    answer = httpx.post(f"{server}/api/care/inspections", json=body, headers=field)
    assert answer.status_code == 201, answer.text
    doc = answer.json()
    # probable × high → likely; likely × significant → high. G1 is scattered: high = 6 months.
    assert (doc["tree_code"], doc["likelihood_failure_impact"], doc["risk"]) == ("G1", "likely", "high")
    assert doc["next_due"] == add_months(care_db, TODAY - timedelta(days=10), 6).isoformat()
    with connect(care_db) as conn:
        dbh, height, condition = conn.execute(
            "SELECT dbh_cm, height_m, condition FROM trees WHERE tree_code = 'G1'").fetchone()
        actor, source, changes = conn.execute(
            "SELECT actor, source, changes FROM tree_history WHERE tree_code = 'G1' "
            "AND change = 'update' ORDER BY id DESC LIMIT 1").fetchone()
    assert (dbh, height, condition) == (55.5, 12.0, "poor")
    assert (actor, source) == ("test-field", "inspection")
    assert changes["dbh_cm"]["new"] == 55.5 and changes["dbh_cm"]["old"] == 11.0
    assert changes["condition"] == {"old": "fair", "new": "poor"}


def test_a_batch_naming_an_unknown_tree_stores_nothing(
        server: str, care_db: str, field: dict[str, str]) -> None:
    before = count(care_db, "SELECT count(*) FROM care_inspections")
    answer = httpx.post(f"{server}/api/care/inspections", headers=field,
                        json=[inspection("G2"), inspection("NOPE-1")])
    assert answer.status_code == 404
    assert "inspections[1], tree_code: no tree NOPE-1" in answer.json()["description"]
    assert answer.json()["rule"] == "unknown_tree"  # the rule, for a client to name it
    assert count(care_db, "SELECT count(*) FROM care_inspections") == before
    assert count(care_db, "SELECT count(*) FROM care_tree_status WHERE tree_code = 'G2'") == 0


def test_a_removed_tree_cannot_be_inspected(server: str, care_db: str,
                                            field: dict[str, str]) -> None:
    with connect(care_db) as conn:
        conn.execute("UPDATE trees SET condition = 'removed' WHERE tree_code = 'G149'")
    answer = httpx.post(f"{server}/api/care/inspections", headers=field,
                        json={"inspections": [inspection("G148"), inspection("G149")]})
    assert answer.status_code == 409
    assert "tree G149 was removed" in answer.json()["description"]
    assert answer.json()["rule"] == "tree_removed"
    assert count(care_db, "SELECT count(*) FROM care_tree_status WHERE tree_code = 'G148'") == 0


@pytest.mark.parametrize(("change", "named"), [
    ({"likelihood_failure": "likely"}, "likelihood_failure: 'likely' is not a TRAQ likelihood of failure"),
    ({"consequences": "catastrophic"}, "consequences: 'catastrophic' is not a TRAQ consequences"),
    ({"defects": ["termites"]}, "defects.0"),
    ({"condition": "removed"}, "condition"),
    ({"dbh_cm": 0}, "dbh_cm"),
    ({"on": TODAY + timedelta(days=30)}, "inspected_on"),
])
def test_a_value_outside_the_vocabulary_is_a_422_naming_the_field(
        server: str, care_db: str, field: dict[str, str], change: dict[str, Any],
        named: str) -> None:
    before = count(care_db, "SELECT count(*) FROM care_inspections")
    answer = httpx.post(f"{server}/api/care/inspections", headers=field,
                        json=[inspection("G3"), inspection("G4", **change)])
    assert answer.status_code == 422, answer.text
    assert f"inspections[1], {named}" in answer.json()["description"]
    assert answer.json()["rule"] == "invalid_inspection"
    assert count(care_db, "SELECT count(*) FROM care_inspections") == before


def test_a_viewer_may_not_record_and_a_stranger_not_read(server: str, care_db: str) -> None:
    viewer = {"Authorization": f"Bearer {make_token(care_db, 'viewer')}"}
    answer = httpx.post(f"{server}/api/care/inspections", json=inspection("G5"), headers=viewer)
    assert answer.status_code == 403
    assert httpx.get(f"{server}/api/care/due").status_code == 401


def test_an_offline_batch_sent_twice_is_recorded_once(server: str, care_db: str,
                                                      field: dict[str, str]) -> None:
    batch = [inspection(f"G{i}", device_id="phone-1", client_event_id=f"insp-{i}")
             for i in (10, 11)]
    first = httpx.post(f"{server}/api/care/inspections", json=batch, headers=field)
    again = httpx.post(f"{server}/api/care/inspections", json=batch, headers=field)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert count(care_db, "SELECT count(*) FROM care_inspections WHERE device_id = 'phone-1'") == 2


def test_an_older_inspection_sent_late_leaves_the_latest_in_force(
        server: str, care_db: str, field: dict[str, str]) -> None:
    recent = inspection("G20", on=TODAY - timedelta(days=5), likelihood_failure="imminent",
                        likelihood_impact="high", consequences="severe", dbh_cm=30)
    older = inspection("G20", on=TODAY - timedelta(days=400), dbh_cm=20)
    assert httpx.post(f"{server}/api/care/inspections", json=recent, headers=field).json()["risk"] == "extreme"
    late = httpx.post(f"{server}/api/care/inspections", json=older, headers=field).json()
    assert late["risk"] == "low"  # its own rating: possible × medium → unlikely → low
    with connect(care_db) as conn:
        risk, last = conn.execute("SELECT risk, last_inspected_on FROM care_tree_status "
                                  "WHERE tree_code = 'G20'").fetchone()
        dbh = conn.execute("SELECT dbh_cm FROM trees WHERE tree_code = 'G20'").fetchone()[0]
    assert (risk, last, dbh) == ("extreme", TODAY - timedelta(days=5), 30.0)


CSV_HEADER = ("tree_code,inspected_on,inspector,condition,dbh_cm,defects,"
              "likelihood_failure,likelihood_impact,consequences,note\n")


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text(CSV_HEADER + "".join(f"{r}\n" for r in rows), encoding="utf-8")
    return path


def test_the_due_list_from_a_file_of_inspections_cli_and_http(
        db_url: str, tmp_path: Path) -> None:
    seed_api_data(db_url)
    env = cli_env(SMARTTREES_DATABASE_URL=db_url)
    ago = {name: add_months(db_url, TODAY, -m) for name, m in
           (("G30", 40), ("G33", 13), ("G31", 7))}
    ago["G32"] = TODAY - timedelta(days=10)
    ago["G34"] = TODAY
    rows = [
        f"G30,{ago['G30']},Lan,good,,,improbable,low,minor,",
        f"G33,{ago['G33']},Lan,fair,31.5,dead_wood;lean,probable,medium,significant,",
        f"G31,{ago['G31']},Minh,poor,,crack,probable,high,significant,near the school",
        f"G32,{ago['G32']},Minh,poor,,decay,imminent,high,severe,",
        f"G34,{ago['G34']},Minh,good,,,improbable,very_low,negligible,",
    ]
    bad = write_csv(tmp_path / "bad.csv", [rows[0], "G35,2026-01-05,Lan,,,,likely,low,minor,"])
    refused = run_cli("care", "inspect", str(bad), env=env)
    assert refused.code == 1
    assert refused.error_lines == [
        f"error: nothing stored: {bad} row 3, likelihood_failure: 'likely' is not a TRAQ "
        "likelihood of failure; use one of improbable, possible, probable, imminent"]
    assert count(db_url, "SELECT count(*) FROM care_inspections") == 0

    good = run_cli("care", "inspect", str(write_csv(tmp_path / "ok.csv", rows)), env=env)
    assert good.code == 0, good.stderr
    assert good.stdout.splitlines()[-1] == "5 inspections recorded"
    assert count(db_url, "SELECT dbh_cm FROM trees WHERE tree_code = 'G33'") == 31.5

    due = {t: add_months(db_url, ago[t], m) for t, m in (("G30", 36), ("G33", 12), ("G31", 6))}
    expected = sorted(due, key=lambda t: (due[t], int(t[1:])))
    listed = run_cli("care", "due", "--json", env=env)
    assert listed.code == 0, listed.stderr
    doc = json.loads(listed.stdout)
    assert [t["tree_code"] for t in doc["trees"]] == expected
    assert [t["next_due"] for t in doc["trees"]] == [due[t].isoformat() for t in expected]
    assert doc["by_risk"] == {"low": 1, "moderate": 1, "high": 1, "extreme": 0}
    assert doc["total"] == 3

    with serve_database(db_url) as base:
        viewer = {"Authorization": f"Bearer {make_token(db_url, 'viewer')}"}
        high = httpx.get(f"{base}/api/care/due", params={"risk": "high,extreme"}, headers=viewer)
        soon = httpx.get(f"{base}/api/care/due", headers=viewer,
                         params={"by": (TODAY + timedelta(days=30)).isoformat(),
                                 "category": "plantation"})
        elsewhere = httpx.get(f"{base}/api/care/due", params={"commune": "00002"}, headers=viewer)
        wrong = httpx.get(f"{base}/api/care/due", params={"risk": "severe"}, headers=viewer)
        never = httpx.get(f"{base}/api/care/due", params={"never_inspected": "true", "limit": 3},
                          headers=viewer)
    assert [t["tree_code"] for t in high.json()["trees"]] == ["G31"]
    assert [(t["tree_code"], t["risk"]) for t in soon.json()["trees"]] == [("G32", "extreme")]
    assert elsewhere.json()["total"] == 0 and elsewhere.json()["trees"] == []
    assert wrong.status_code == 400 and "risk: 'severe'" in wrong.json()["description"]
    assert [t["tree_code"] for t in never.json()["trees"]] == ["G0", "G1", "G2"]

    # A longer cycle for low-risk urban trees: after a refresh, G30 is no longer due.
    cycle = {"urban": {"low": 48, "moderate": 12, "high": 6, "extreme": 1},
             "scattered": {"low": 60, "moderate": 24, "high": 6, "extreme": 1},
             "plantation": {"low": 60, "moderate": 36, "high": 12, "extreme": 1}}
    env_cycle = {**env, "SMARTTREES_CARE_CYCLE_MONTHS": json.dumps(cycle)}
    assert run_cli("care", "refresh", env=env_cycle).stdout.startswith("5 inspected trees")
    after = json.loads(run_cli("care", "due", "--json", env=env_cycle).stdout)
    assert [t["tree_code"] for t in after["trees"]] == [t for t in expected if t != "G30"]
    wrong_cycle = run_cli("care", "due", env={**env, "SMARTTREES_CARE_CYCLE_MONTHS": '{"urban": {}}'})
    assert wrong_cycle.code == 1
    assert wrong_cycle.error_lines[0].startswith(
        "error: a setting is not valid: SMARTTREES_CARE_CYCLE_MONTHS: care_cycle_months: needs")
