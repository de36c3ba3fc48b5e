"""One fault, one status: each bad input sent to every route that takes it, on a real server.

Each case below is one rule a client can break and the routes that can be asked to break it;
the test sends the same bad input to all of them and asks for one status and an OGC exception
document (``code`` and ``description``) every time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from barcodes.codes import ItemType, make_code
from barcodes.custody import RULES
from gis_api.errors import RULE_STATUS

LOT = make_code(ItemType.SEEDLING_LOT, 42)
WRONG_CHECK = LOT[:-1] + ("0" if LOT[-1] != "0" else "1")  # one character mistyped
NEVER_ISSUED = make_code(ItemType.SEEDLING_LOT, 777_777)
TILE = "tiles/WebMercatorQuad/14/7189/13007"  # a tile over the API data set's grid


def scan(code: str) -> dict[str, Any]:
    return {"device_id": "phone-1", "client_event_id": f"e-{code}", "code": code,
            "event_type": "inspected", "occurred_at": "2026-03-01T08:00:00+07:00",
            "location": {"type": "Point", "coordinates": [105.81, 21.51]}}


@dataclass(frozen=True)
class Call:
    """One request: method, path (with query), and a JSON body or raw content."""

    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    role: str | None = "field"
    headers: dict[str, str] = field(default_factory=dict)


def get(path: str, role: str | None = "field") -> Call:
    return Call("GET", path, role=role)


# rule: (status, the calls that each break it)
CASES: dict[str, tuple[int, list[Call]]] = {
    "a code with a wrong check character": (422, [
        Call("POST", "/api/scans", json=scan(WRONG_CHECK)),
        get(f"/api/trace/{WRONG_CHECK}"),
        get(f"/api/labels/{WRONG_CHECK}.svg"),
        get(f"/api/labels/{WRONG_CHECK}.png"),
        get(f"/api/trace/{WRONG_CHECK}/eudr"),
        get(f"/api/trace/{WRONG_CHECK}/bangke"),
        get(f"/api/epcis/events?code={WRONG_CHECK}"),
    ]),
    "a code never issued": (404, [
        Call("POST", "/api/scans", json=scan(NEVER_ISSUED)),
        get(f"/api/trace/{NEVER_ISSUED}"),
        get(f"/api/labels/{NEVER_ISSUED}.svg"),
        get(f"/api/trace/{NEVER_ISSUED}/eudr"),
        get(f"/api/epcis/events?code={NEVER_ISSUED}"),
    ]),
    "an unknown collection": (404, [
        get("/collections/nowhere", role=None),
        get("/collections/nowhere/items", role=None),
        get("/collections/nowhere/items?f=gpkg", role=None),
        get("/collections/nowhere/items/1", role=None),
        get("/collections/nowhere/queryables", role=None),
        get("/collections/nowhere/schema", role=None),
        get("/collections/nowhere/tiles", role=None),
        get("/collections/nowhere/tiles/WebMercatorQuad", role=None),
        get("/collections/nowhere/tiles/WebMercatorQuad/0/0/0", role=None),
        get("/collections/nowhere/tiles/WebMercatorQuad/0/0/0.png", role=None),
        get("/collections/nowhere/coverage", role=None),
    ]),
    "a resource its collection does not have": (404, [
        get("/collections/trees/coverage", role=None),
        get("/collections/nurseries/tiles", role=None),
        get("/collections/nurseries/tiles/WebMercatorQuad/0/0/0", role=None),
    ]),
    "an unknown item or tree": (404, [
        get("/collections/trees/items/999999", role=None),
        get("/collections/trees/items/not-a-number", role=None),
        get("/api/trees/999999/history", role=None),
        get("/api/trees/not-a-number/history", role=None),
        Call("DELETE", "/collections/trees/items/999999", role="editor"),
    ]),
    "a bbox with three numbers": (400, [
        get("/collections/trees/items?bbox=1,2,3", role=None),
        get("/collections/trees/items?bbox=1,2,3&f=gpkg", role=None),
        get("/collections/stands/items?bbox=1,2,3", role=None),
    ]),
    "a value its property cannot hold": (400, [
        get("/collections/trees/items?species_id=abc", role=None),
        get("/collections/trees/items?species_id=abc&f=gpkg", role=None),
        get("/collections/trees/items?filter=species_id%20%3D%20'abc'", role=None),
        get(f"/collections/trees/{TILE}?species=abc", role=None),
        get("/collections/trees/items?planted_on=yesterday", role=None),
    ]),
    "an unsupported CRS": (400, [
        get("/collections/trees/items?crs=EPSG:2154", role=None),
        get("/collections/trees/items/1?crs=EPSG:2154", role=None),
        get("/collections/trees/items?bbox=105,21,106,22&bbox-crs=EPSG:2154", role=None),
        get("/collections/trees/items?crs=EPSG:2154&f=gpkg", role=None),
    ]),
    "an unknown tile matrix set": (404, [
        get("/tileMatrixSets/Nowhere", role=None),
        get("/collections/trees/tiles/Nowhere", role=None),
        get("/collections/trees/tiles/Nowhere/0/0/0", role=None),
        get("/collections/density/tiles/Nowhere/0/0/0.png", role=None),
    ]),
    "a tile index that is not a number": (400, [
        get("/collections/trees/tiles/WebMercatorQuad/z/0/0", role=None),
        get("/collections/communes/tiles/WebMercatorQuad/0/y/0", role=None),
    ]),
    "a tile outside its tile matrix": (404, [
        get("/collections/trees/tiles/WebMercatorQuad/2/9/9", role=None),
        get("/collections/trees/tiles/WebMercatorQuad/31/0/0", role=None),
    ]),
    "an unknown output format": (400, [
        get("/collections/trees/items?f=xml", role=None),
        get(f"/api/trace/{LOT}?f=xml"),
        get(f"/api/trace/{LOT}/bangke?f=xml"),
    ]),
    "a body that is not JSON": (400, [
        Call("POST", "/api/scans", content=b'{"code": "SL-', headers={"Content-Type": "application/json"}),
        Call("POST", "/collections/trees/items", content=b'{"type": "Feat', role="editor",
             headers={"Content-Type": "application/geo+json"}),
    ]),
    "a NUL character in a query parameter": (400, [
        get("/collections/trees/items?category=%00", role=None),
        get(f"/api/trace/{LOT}?f=%00"),
        get(f"/collections/trees/{TILE}?category=%00", role=None),
    ]),
    "no token where one is needed": (401, [
        Call("POST", "/api/scans", json=scan(LOT), role=None),
        Call("POST", "/api/scans/decode", content=b"x", role=None),
        get(f"/api/trace/{LOT}", role=None),
        get(f"/api/labels/{LOT}.svg", role=None),
        get(f"/api/trace/{LOT}/eudr", role=None),
        get("/api/epcis/events?since=2025-01-01", role=None),
        Call("DELETE", "/collections/trees/items/1", role=None),
    ]),
    "a role that may not do this": (403, [
        Call("POST", "/api/scans", json=scan(LOT), role="viewer"),
        get(f"/api/labels/{LOT}.svg", role="viewer"),
        Call("DELETE", "/collections/trees/items/1", role="viewer"),
    ]),
}


@pytest.fixture(scope="module")
def tokens(api_db: str) -> dict[str, str]:
    from tests.fixtures.server import make_token

    return {role: make_token(api_db, role) for role in ("field", "editor", "viewer")}


def send(base: str, call: Call, tokens: dict[str, str]) -> httpx.Response:
    headers = dict(call.headers)
    if call.role is not None:
        headers["Authorization"] = f"Bearer {tokens[call.role]}"
    return httpx.request(call.method, base + call.path, json=call.json, content=call.content,
                         headers=headers, timeout=30)


@pytest.mark.parametrize("fault", list(CASES))
def test_one_fault_has_one_status_on_every_route(
    fault: str, api_server: str, tokens: dict[str, str]
) -> None:
    status, calls = CASES[fault]
    answers = {f"{c.method} {c.path}": send(api_server, c, tokens) for c in calls}
    statuses = {route: r.status_code for route, r in answers.items()}
    assert set(statuses.values()) == {status}, statuses
    for route, response in answers.items():
        body = response.json()
        assert isinstance(body.get("code"), str) and body["code"], route
        assert isinstance(body.get("description"), str) and body["description"], route


def test_a_refused_scan_names_each_problem_with_its_rule_and_status(
    api_server: str, tokens: dict[str, str]
) -> None:
    later = {**scan(LOT), "client_event_id": "later", "occurred_at": "2999-01-01T00:00:00Z"}
    batch = [scan(WRONG_CHECK), later]
    response = httpx.post(f"{api_server}/api/scans", json={"events": batch},
                          headers={"Authorization": f"Bearer {tokens['field']}"})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "InvalidParameterValue"
    assert body["description"].startswith("event 0: bad_code:"), body["description"]
    problems = body["problems"]
    assert [(p["index"], p["rule"], p["status"]) for p in problems] == [
        (0, "bad_code", 422), (1, "future_time", 422)]
    assert "check character" in problems[0]["message"]
    assert problems[1]["code"] == LOT and problems[1]["client_event_id"] == "later"


def test_every_scan_rule_has_a_status() -> None:
    assert set(RULES) <= set(RULE_STATUS)
