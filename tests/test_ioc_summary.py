"""The IOC province summary (`GET /api/ioc/summary`, `smarttrees ioc summary`) adds up."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from smarttrees import ioc
from smarttrees.database import connect
from smarttrees.settings import Settings
from tests.fixtures.ioc import CASES, seed_known_register
from tests.fixtures.server import serve_database

SMARTTREES = [sys.executable, "-m", "smarttrees"]


def test_summary_adds_up_the_known_register(db_url: str) -> None:
    seed_known_register(db_url)
    with connect(db_url) as conn:
        s = ioc.summary(conn, Settings())
    d, c, t = s["documents"], s["citizen_support"], s["trees"]
    assert s["province"] == {"code": "19", "name": "Thái Nguyên"}
    # Eight documents, six electronic, 4,000 VND each.
    assert (d["total"], d["electronic"], d["courier_cost_saved_vnd"]) == (8, 6, 24_000)
    assert d["electronic_share"] == 0.75
    assert d["period"] == {"from": "2025-01-06", "to": "2025-02-20"}
    # 22 cases (one rejected: any status counts), 1.1 M + 1.2 M + … + 3.2 M VND.
    assert (c["people"], c["amount_vnd"], c["provinces"]) == (22, 47_300_000, 4)
    assert c["period"] == {"from": "2025-08-01", "to": "2025-08-22"}
    assert c["suppressed"] is False
    assert t["total"] == 6
    assert t["by_category"] == {"urban": 2, "scattered": 2, "plantation": 2}
    assert t["by_condition"] == {"good": 3, "fair": 1, "poor": 1, "dead": 1, "removed": 0,
                                 "unknown": 0}
    assert t["target"] == 1_130_000
    counts = {h["month"]: h["trees"] for h in t["history"]}
    assert list(counts) == [f"2025-{m:02d}" for m in range(1, 13)]
    assert [counts["2025-01"], counts["2025-02"], counts["2025-03"], counts["2025-10"],
            counts["2025-11"], counts["2025-12"]] == [3, 3, 5, 5, 6, 6]
    assert sum(h["planted"] for h in t["history"]) == 3


def test_the_courier_rate_and_target_are_settings(db_url: str) -> None:
    seed_known_register(db_url)
    with connect(db_url) as conn:
        s = ioc.summary(conn, Settings(courier_cost_vnd=5_000, planting_target=12))
    assert s["documents"]["courier_cost_saved_vnd"] == 30_000
    assert s["trees"]["progress"] == 0.5


def test_the_summary_follows_new_trees(db_url: str) -> None:
    seed_known_register(db_url)
    with connect(db_url) as conn:
        conn.execute(
            "INSERT INTO trees (tree_code, category, planted_on, commune_code, geom) VALUES "
            "('T7', 'urban', '2025-12-01', '00001', ST_SetSRID(ST_MakePoint(105.75, 21.5), 4326))"
        )
        s = ioc.summary(conn, Settings())
    assert s["trees"]["total"] == 7
    assert s["trees"]["history"][-1] == {"month": "2025-12", "planted": 1, "trees": 7}


def test_the_total_of_too_few_people_is_withheld(db_url: str) -> None:
    seed_known_register(db_url)
    with connect(db_url) as conn:
        conn.execute("DELETE FROM restricted.citizen_support_cases WHERE case_no > 'HT-004'")
        s = ioc.summary(conn, Settings())
    assert s["citizen_support"]["people"] is None
    assert s["citizen_support"]["amount_vnd"] is None
    assert s["citizen_support"]["suppressed"] is True


def test_api_cli_and_openapi_agree(db_url: str) -> None:
    seed_known_register(db_url)
    with serve_database(db_url) as base:
        api = httpx.get(f"{base}/api/ioc/summary", timeout=30)
        doc = httpx.get(f"{base}/openapi", params={"f": "json"}, timeout=30).json()
    assert api.status_code == 200
    assert api.headers["content-type"] == "application/json"
    env = {**os.environ, "SMARTTREES_DATABASE_URL": db_url}
    cli = subprocess.run([*SMARTTREES, "ioc", "summary", "--json"], capture_output=True,
                         text=True, env=env, timeout=120, check=False)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == api.json()
    text = subprocess.run([*SMARTTREES, "ioc", "summary"], capture_output=True, text=True,
                          env=env, timeout=120, check=False).stdout
    assert "Documents (2025-01-06 – 2025-02-20): 8, of which electronic 6 (75.0%)" in text
    assert "Courier cost saved: 24,000 VND" in text
    assert "22 people, 47,300,000 VND, stranded in 4 provinces" in text
    assert CASES[0][1] not in text + api.text
    # The OpenAPI document describes what the route answers.
    operation = doc["paths"]["/api/ioc/summary"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    body = api.json()
    assert set(schema["required"]) <= set(body)
    for part in ("documents", "citizen_support", "trees"):
        assert set(body[part]) == set(schema["properties"][part]["properties"])


def test_the_generated_province_agrees_with_the_report(province_url: str) -> None:
    with connect(province_url) as conn:
        s = ioc.summary(conn, Settings())
        electronic = conn.execute("SELECT count(*) FROM documents WHERE electronic").fetchone()
        trees = conn.execute("SELECT count(*) FROM trees").fetchone()
    d, t = s["documents"], s["trees"]
    assert d["total"] == 10_000 and d["electronic"] == electronic[0] == 9_900
    assert d["courier_cost_saved_vnd"] == 9_900 * 4_000
    assert s["citizen_support"]["people"] == 300
    assert s["citizen_support"]["amount_vnd"] == 600_000_000
    assert s["citizen_support"]["provinces"] == 22
    assert t["total"] == trees[0] == 5_000
    history = [h["trees"] for h in t["history"]]
    assert history == sorted(history) and history[-1] == 5_000
    # 1.08 M of 1.13 M at the start of the year: 4,779 of 5,000 before January's plantings.
    assert history[0] - t["history"][0]["planted"] == round(5_000 * 108 / 113)


def test_a_database_without_the_ioc_layers_is_one_clear_error(db_url: str) -> None:
    with connect(db_url) as conn:
        conn.execute("DROP MATERIALIZED VIEW ioc_documents_agency_month CASCADE")
    env = {**os.environ, "SMARTTREES_DATABASE_URL": db_url}
    run = subprocess.run([*SMARTTREES, "ioc", "summary"], capture_output=True, text=True,
                         env=env, timeout=120, check=False)
    assert run.returncode == 1
    assert "run `smarttrees db upgrade`" in run.stderr and "Traceback" not in run.stderr
