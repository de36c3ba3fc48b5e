"""No public response and no log line carries the personal values of the citizen-support cases."""

from __future__ import annotations

import json

import httpx
import pytest

from gis_api.collections import COLLECTIONS
from tests.fixtures.ioc import PERSONAL_VALUES, seed_known_register
from tests.fixtures.server import serve_database

TILE = "8/112/203"  # WebMercatorQuad tile holding the known register's communes


def _public_paths() -> list[str]:
    paths = ["/", "/collections", "/conformance", "/openapi?f=json", "/api/ioc/summary",
             "/map/options.json", f"/collections/communes/tiles/WebMercatorQuad/{TILE}",
             f"/collections/trees/tiles/WebMercatorQuad/{TILE}", "/ioc",
             "/api/ioc/cases?commune=00001", "/api/ioc/access-log"]  # no token: refused
    for c in COLLECTIONS:
        root = f"/collections/{c.id}"
        paths += [root, f"{root}?f=html", f"{root}/items?limit=1000",
                  f"{root}/items?f=html&limit=1000", f"{root}/queryables"]
    # Asking for personal fields or values is refused or finds nothing, and says nothing.
    support = "/collections/citizen_support_by_commune/items"
    paths += [f"{support}?filter=full_name%20%3D%20%27x%27",
              f"{support}?properties=full_name,national_id",
              f"{support}?sortby=national_id",
              "/collections/citizen_support_by_commune_detail/items?filter=value%20LIKE%20%27%25%27"]
    return paths


def test_no_public_response_or_log_line_holds_personal_data(
    db_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    seed_known_register(db_url)
    seen: list[tuple[str, int, bytes]] = []
    with serve_database(db_url) as base:
        for path in _public_paths():
            r = httpx.get(f"{base}{path}", timeout=30)
            assert r.status_code < 500, (path, r.status_code)
            seen.append((path, r.status_code, r.content))
    log = capfd.readouterr()
    assert sum(status == 200 for _, status, _ in seen) > 3 * len(COLLECTIONS)
    for value in PERSONAL_VALUES:
        forms = {value.encode(), json.dumps(value)[1:-1].encode()}  # as is, or JSON-escaped
        for path, _, body in seen:
            assert not any(f in body for f in forms), f"{path} holds a personal value"
        assert value not in log.out + log.err, "the server log holds a personal value"
