"""Public hazard reports over HTTP: no account, capped, rate-limited, personal data kept apart."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from smarttrees.database import connect
from tests.fixtures.server import make_token, seed_api_data, serve_database, tree_position

CONTACT = "0912 345 678 — chị Hoa"
NOTE = "Cành lớn treo trên cổng trường"


@pytest.fixture(scope="module")
def care_db(module_db_url: str) -> str:
    seed_api_data(module_db_url)
    return module_db_url


@pytest.fixture(scope="module")
def server(care_db: str) -> Iterator[str]:
    with serve_database(care_db, care_reports_per_hour="1000") as base:
        yield base


@pytest.fixture(scope="module")
def editor(care_db: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(care_db, 'editor')}"}


def photo_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (40, 120, 40)).save(out, format="JPEG")
    return out.getvalue()


def send(server: str, photo: bytes | None = None, **fields: Any) -> httpx.Response:
    # Always multipart/form-data, as the page sends it: every field a part, the photo a file.
    parts: dict[str, Any] = {k: (None, str(v)) for k, v in fields.items()}
    if photo is not None:
        parts["photo"] = ("tree.jpg", photo, "image/jpeg")
    return httpx.post(f"{server}/api/care/reports", files=parts, timeout=60)


def stored(url: str) -> int:
    with connect(url) as conn:
        return int(conn.execute("SELECT count(*) FROM care_reports").fetchone()[0])


def test_a_report_with_a_photo_is_kept_and_its_contact_seen_only_by_staff(
        server: str, care_db: str, editor: dict[str, str]) -> None:
    picture = photo_bytes()
    answer = send(server, picture, hazard="broken_branch", lon=105.803, lat=21.507,
                  note=NOTE, contact=CONTACT)
    assert answer.status_code == 201, answer.text
    report_id = answer.json()["report_id"]
    assert answer.json()["status"] == "new"
    listed = httpx.get(f"{server}/api/care/reports", headers=editor)
    mine = next(r for r in listed.json()["reports"] if r["id"] == report_id)
    assert (mine["hazard"], mine["commune_code"], mine["has_photo"]) == ("broken_branch", "00001", True)
    assert CONTACT not in listed.text and NOTE not in listed.text
    opened = httpx.get(f"{server}/api/care/reports/{report_id}", headers=editor).json()
    assert (opened["note"], opened["contact"]) == (NOTE, CONTACT)
    photo = httpx.get(f"{server}/api/care/reports/{report_id}/photo", headers=editor)
    assert photo.content == picture and photo.headers["content-type"] == "image/jpeg"
    with connect(care_db) as conn:
        logged = conn.execute("SELECT username, what, filter FROM restricted.access_log "
                              "ORDER BY id DESC LIMIT 1").fetchone()
        public_columns = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'smarttrees' AND table_name = 'care_reports'")}
    assert logged == ("test-editor", "care_report_details", {"report_id": report_id})
    assert not public_columns & {"contact", "note", "photo", "sender_hash"}
    assert httpx.get(f"{server}/api/care/reports/{report_id}").status_code == 401


def test_the_tree_of_a_qr_code_or_a_code_places_the_report(
        server: str, care_db: str, editor: dict[str, str]) -> None:
    with connect(care_db) as conn:
        tree_id = conn.execute("SELECT id FROM trees WHERE tree_code = 'G7'").fetchone()[0]
    by_qr = send(server, hazard="leaning", tree=f"{server}/collections/trees/items/{tree_id}")
    by_code = send(server, hazard="dead", tree="G8")
    assert by_qr.status_code == by_code.status_code == 201, by_qr.text
    reports = {r["id"]: r for r in httpx.get(f"{server}/api/care/reports",
                                             headers=editor).json()["reports"]}
    qr, code = reports[by_qr.json()["report_id"]], reports[by_code.json()["report_id"]]
    assert (qr["tree_code"], [qr["lon"], qr["lat"]]) == ("G7", [round(v, 7) for v in tree_position(7)])
    assert code["tree_code"] == "G8"
    unknown = send(server, hazard="dead", tree="NOPE-1")
    assert unknown.status_code == 404 and "no tree" in unknown.json()["description"]


@pytest.mark.parametrize(("fields", "status", "named"), [
    ({"hazard": "fallen", "lon": 106.9, "lat": 22.9}, 422, "outside the territory"),
    ({"hazard": "earthquake", "lon": 105.80, "lat": 21.50}, 422, "hazard: 'earthquake'"),
    ({"hazard": "fallen"}, 422, "mark the place on the map"),
    ({"hazard": "fallen", "lon": 105.80}, 422, "lon and lat go together"),
])
def test_a_bad_report_is_refused_naming_the_problem(
        server: str, care_db: str, fields: dict[str, Any], status: int, named: str) -> None:
    before = stored(care_db)
    answer = send(server, **fields)
    assert answer.status_code == status, answer.text
    assert named in answer.json()["description"]
    assert stored(care_db) == before


def test_a_50_mb_photo_is_a_413_that_says_what_to_do(server: str, care_db: str) -> None:
    before = stored(care_db)
    answer = send(server, b"\xff" * (50 * 1024 * 1024), hazard="fallen", lon=105.80, lat=21.50)
    assert answer.status_code == 413
    description = answer.json()["description"]
    assert description.startswith("photo: the report (50.0 MiB) is larger than")
    assert "at most 8 MiB" in description
    junk = send(server, b"not a picture at all", hazard="fallen", lon=105.80, lat=21.50)
    assert junk.status_code == 422 and "photo: not a JPEG" in junk.json()["description"]
    json_body = httpx.post(f"{server}/api/care/reports", json={"hazard": "fallen"})
    assert json_body.status_code == 415
    assert stored(care_db) == before


def test_triage_turns_a_report_into_a_work_order_once(
        server: str, care_db: str, editor: dict[str, str]) -> None:
    report_id = send(server, hazard="fallen", tree="G9").json()["report_id"]
    refused = httpx.post(f"{server}/api/care/reports/{report_id}/triage", headers=editor,
                         json={"accept": True})
    assert refused.status_code == 422 and "work_type" in refused.json()["description"]
    accepted = httpx.post(f"{server}/api/care/reports/{report_id}/triage", headers=editor,
                          json={"accept": True, "work_type": "removal", "priority": 1})
    assert accepted.status_code == 200, accepted.text
    order = httpx.get(f"{server}/api/care/orders/{accepted.json()['work_order_id']}",
                      headers=editor).json()
    assert (order["work_type"], order["trees"], order["origin"], order["origin_id"]) == (
        "removal", ["G9"], "report", report_id)
    again = httpx.post(f"{server}/api/care/reports/{report_id}/triage", headers=editor,
                       json={"accept": False})
    assert again.status_code == 409 and "already accepted" in again.json()["description"]


def test_more_reports_than_the_hourly_limit_are_a_429(db_url: str) -> None:
    seed_api_data(db_url)
    with serve_database(db_url, care_reports_per_hour="2") as base:
        answers = [send(base, hazard="fallen", lon=105.80, lat=21.50).status_code
                   for _ in range(3)]
        last = send(base, hazard="fallen", lon=105.80, lat=21.50)
    assert answers == [201, 201, 429]
    assert last.json()["description"].startswith("too many reports from this address")
    with connect(db_url) as conn:
        hashes = conn.execute("SELECT DISTINCT sender_hash FROM restricted.care_report_details").fetchall()
    assert len(hashes) == 1 and "127.0.0.1" not in hashes[0][0]
