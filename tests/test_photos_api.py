"""The one photo store over HTTP: field uploads with their EXIF position, the cap, who reads them,
and tree-check inspections that reference photos uploaded first."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from PIL import Image

from smarttrees.database import connect
from tests.fixtures.server import make_token, seed_api_data, serve_database

# A tree in Thái Nguyên city, as a phone camera writes it: degrees, minutes, seconds.
GPS = {1: "N", 2: (21.0, 35.0, 24.0), 3: "E", 4: (105.0, 50.0, 6.0)}
LAT, LON = 21 + 35 / 60 + 24 / 3600, 105 + 50 / 60 + 6 / 3600


@pytest.fixture(scope="module")
def photo_db(module_db_url: str) -> str:
    seed_api_data(module_db_url)  # trees G0…G149
    return module_db_url


@pytest.fixture(scope="module")
def server(photo_db: str) -> Iterator[str]:
    with serve_database(photo_db, care_report_photo_mb="1") as base:
        yield base


def bearer(url: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(url, role)}"}


def jpeg(colour: tuple[int, int, int], gps: dict[int, Any] | None = None,
         size: tuple[int, int] = (80, 60)) -> bytes:
    out = io.BytesIO()
    exif = Image.Exif()
    if gps:
        exif[0x8825] = gps
    Image.new("RGB", size, colour).save(out, format="JPEG", exif=exif)
    return out.getvalue()


def upload(server: str, data: bytes, headers: dict[str, str],
           media: str = "image/jpeg") -> httpx.Response:
    return httpx.post(f"{server}/api/photos", content=data, timeout=60,
                      headers={**headers, "Content-Type": media})


def test_a_field_photo_keeps_its_gps_position_and_is_stored_once(
        server: str, photo_db: str) -> None:
    field = bearer(photo_db, "field")
    picture = jpeg((10, 120, 30), GPS)
    first = upload(server, picture, field)
    assert first.status_code == 201, first.text
    doc = first.json()
    assert doc["media_type"] == "image/jpeg" and (doc["width"], doc["height"]) == (80, 60)
    assert doc["lat"] == pytest.approx(LAT, abs=1e-6)
    assert doc["lon"] == pytest.approx(LON, abs=1e-6)
    again = upload(server, picture, field)  # a resend after a cut
    assert again.status_code == 200 and again.json()["id"] == doc["id"]
    with connect(photo_db) as conn:
        rows = conn.execute("SELECT count(*), min(uploaded_by) FROM restricted.photos "
                            "WHERE id = %s", [doc["id"]]).fetchone()
    assert rows == (1, "test-field")
    back = httpx.get(f"{server}{doc['url']}", headers=bearer(photo_db, "editor"))
    assert back.status_code == 200 and back.content == picture  # EXIF and all
    assert back.headers["content-type"] == "image/jpeg"


def test_photos_are_for_authorised_users_only(server: str, photo_db: str) -> None:
    doc = upload(server, jpeg((200, 10, 10)), bearer(photo_db, "field")).json()
    assert httpx.get(f"{server}{doc['url']}").status_code == 401
    assert httpx.get(f"{server}{doc['url']}", headers=bearer(photo_db, "viewer")).status_code == 403
    assert upload(server, jpeg((1, 2, 3)), {}).status_code == 401
    assert upload(server, jpeg((1, 2, 3)), bearer(photo_db, "viewer")).status_code == 403
    unknown = httpx.get(f"{server}/api/photos/00000000-0000-4000-8000-000000000000",
                        headers=bearer(photo_db, "field"))
    assert unknown.status_code == 404 and "no such photo" in unknown.json()["description"]


def test_a_photo_over_the_cap_or_not_an_image_is_refused_and_nothing_stored(
        server: str, photo_db: str) -> None:
    field = bearer(photo_db, "field")
    with connect(photo_db) as conn:
        before = conn.execute("SELECT count(*) FROM restricted.photos").fetchone()[0]
    big = upload(server, b"\xff\xd8" + b"\0" * (1024 * 1024 + 10), field)
    assert big.status_code == 413
    assert "1 MiB" in big.json()["description"] and "smaller photo" in big.json()["description"]
    text = upload(server, b"not a picture at all", field)
    assert text.status_code == 422 and "photo: not a JPEG, PNG or WebP" in text.json()["description"]
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, format="GIF")
    assert upload(server, gif.getvalue(), field).status_code == 422
    assert upload(server, jpeg((5, 5, 5)), field, media="text/plain").status_code == 415
    with connect(photo_db) as conn:
        assert conn.execute("SELECT count(*) FROM restricted.photos").fetchone()[0] == before


def test_a_tree_check_references_its_uploaded_photos(server: str, photo_db: str) -> None:
    field = bearer(photo_db, "field")
    ids = [upload(server, jpeg((i * 40, 90, 20)), field).json()["id"] for i in range(3)]
    check = {"tree_code": "G7", "inspected_on": date.today().isoformat(), "inspector": "Lan",
             "likelihood_failure": "possible", "likelihood_impact": "medium",
             "consequences": "significant", "condition": "fair", "photos": ids,
             "device_id": "phone-1", "client_event_id": "check-1"}
    answer = httpx.post(f"{server}/api/care/inspections", json=check, headers=field)
    assert answer.status_code == 201, answer.text
    with connect(photo_db) as conn:
        stored = conn.execute("SELECT photos FROM smarttrees.care_inspections "
                              "WHERE client_event_id = 'check-1'").fetchone()[0]
    assert stored == ids
    missing = "11111111-1111-4111-8111-111111111111"
    bad = httpx.post(f"{server}/api/care/inspections", headers=field,
                     json={**check, "client_event_id": "check-2", "photos": [ids[0], missing]})
    assert bad.status_code == 422
    assert f"inspections[0].photos: photo {missing} was not uploaded" in bad.json()["description"]
    with connect(photo_db) as conn:
        assert conn.execute("SELECT count(*) FROM smarttrees.care_inspections "
                            "WHERE client_event_id = 'check-2'").fetchone()[0] == 0
