"""Personal records of citizen support: admins only, every read recorded (who, what, when)."""

from __future__ import annotations

import httpx

from smarttrees.database import connect
from tests.fixtures.ioc import CASES, seed_known_register
from tests.fixtures.server import make_token, serve_database


def test_only_admins_read_cases_and_every_read_is_logged(db_url: str) -> None:
    seed_known_register(db_url)
    admin, viewer = make_token(db_url, "admin"), make_token(db_url, "viewer")
    with serve_database(db_url) as base:
        url = f"{base}/api/ioc/cases"
        anonymous = httpx.get(url, params={"commune": "00001"}, timeout=30)
        as_viewer = httpx.get(url, params={"commune": "00001"}, timeout=30,
                              headers={"Authorization": f"Bearer {viewer}"})
        auth = {"Authorization": f"Bearer {admin}"}
        everything = httpx.get(url, headers=auth, timeout=30)
        odd = httpx.get(url, params={"national_id": "x"}, headers=auth, timeout=30)
        read = httpx.get(url, params={"commune": "00001"}, headers=auth, timeout=30)
        log = httpx.get(f"{base}/api/ioc/access-log", headers=auth, timeout=30)
        log_anonymous = httpx.get(f"{base}/api/ioc/access-log", timeout=30)
    assert (anonymous.status_code, as_viewer.status_code) == (401, 403)
    assert (everything.status_code, odd.status_code, log_anonymous.status_code) == (400, 400, 401)
    for refused in (anonymous, as_viewer, everything, odd, log_anonymous):
        assert all(case[1] not in refused.text and case[2] not in refused.text for case in CASES)
    assert read.status_code == 200 and read.headers["cache-control"] == "no-store"
    body = read.json()
    assert body["count"] == 12
    first = body["cases"][0]
    assert (first["case_no"], first["full_name"], first["national_id"]) == CASES[0][:3]
    with connect(db_url) as conn:
        rows = conn.execute("SELECT username, role, what, filter, rows FROM "
                            "restricted.access_log").fetchall()
    assert rows == [("test-admin", "admin", "citizen_support_cases", {"commune": "00001"}, 12)]
    assert log.json()["reads"][0]["username"] == "test-admin"
