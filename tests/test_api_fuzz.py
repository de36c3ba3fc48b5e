"""Schemathesis fuzzes every operation of our OpenAPI document: no answer may be a 5xx.

Driven through hypothesis directly (schemathesis' pytest plugin does not load under this
pytest); a few derandomised examples per operation keep the run short and repeatable. The
document must describe every route the app serves (tiles, web map, health and scan API
included), or the fuzzer would never reach them.
"""

from __future__ import annotations

import re

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from starlette.routing import Route

from tests.fixtures.server import make_token

# Three derandomised examples of every operation (four before session 8): each is called, and
# every check runs on every answer; `make fuzz` (schemathesis, 30 examples) goes deeper.
EXAMPLES_PER_OPERATION = 3


def _fuzz(schema, api_server, operations, headers=None, check=None):
    """Call each operation with a few generated requests; the failures and the statuses seen."""
    failures, statuses = [], []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
                  database=None, suppress_health_check=list(HealthCheck))
        def call(case):
            if headers:
                case.headers = {**(case.headers or {}), **headers}
            response = case.call(base_url=api_server, timeout=30)
            statuses.append(response.status_code)
            problem = None
            if response.status_code >= 500:
                problem = "server error"
            elif check:
                problem = check(case, response)
            if problem:
                failures.append(f"{problem}: {case.method} {case.formatted_path} {case.query} "
                                f"-> {response.status_code} {response.text[:200]}")

        call()
    return failures, statuses


def _secured(operation) -> bool:
    return bool(operation.definition.raw.get("security"))


def test_no_server_errors_and_tokens_enforced(api_server, api_db):
    schema = schemathesis.openapi.from_url(f"{api_server}/openapi?f=json")
    operations = [result.ok() for result in schema.get_all_operations()]
    secured = [op for op in operations if _secured(op)]
    assert {op.path for op in secured} >= {"/api/scans", "/api/scans/decode",
                                           "/api/trace/{code}", "/api/labels/{code}.svg"}

    def refused_without_token(case, response):
        # A generated Authorization header can only hold an unknown token: 401 too.
        if _secured(case.operation) and response.status_code != 401:
            return "a token-protected operation answered without a valid token"
        return None

    failures, statuses = _fuzz(schema, api_server, operations, check=refused_without_token)
    assert len(statuses) > 100
    # With a field token the scan API itself is reached: bad input is a 4xx, never a 5xx.
    token = make_token(api_db, "field")
    scan_ops = [op for op in secured if op.path.startswith("/api/")]
    more, scan_statuses = _fuzz(schema, api_server, scan_ops,
                                headers={"Authorization": f"Bearer {token}"})
    assert set(scan_statuses) - {401, 403}  # past the token check, into the handlers
    failures += more
    assert not failures, "\n".join(failures[:20])


def _as_pattern(route_path: str) -> re.Pattern[str]:
    """A Starlette path as a pattern over documented paths ({x} matches one segment or part)."""
    parts = re.split(r"\{[^}]+\}", route_path)
    return re.compile("[^/]+".join(re.escape(p) for p in parts))


def test_openapi_describes_every_route(api_server):
    from gis_api.app import create_app
    from smarttrees.settings import Settings

    doc = httpx.get(f"{api_server}/openapi", params={"f": "json"}).json()
    documented = list(doc["paths"])
    app = create_app(Settings(database_url="postgresql://unused/none"))
    routes = [r for r in app.routes if isinstance(r, Route)]
    assert len(routes) > 20
    missing = [
        r.path for r in routes
        if not any(_as_pattern(r.path).fullmatch(p) for p in documented)
    ]
    assert missing == []
    operation_ids = [
        op["operationId"] for path in doc["paths"].values() for op in path.values()
        if isinstance(op, dict) and "responses" in op
    ]
    assert len(operation_ids) == len(set(operation_ids))
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    tile = doc["paths"]["/collections/trees/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"]
    params = {p["name"]: p for p in tile["get"]["parameters"]}
    assert params["tileMatrixSetId"]["schema"]["enum"] == ["WebMercatorQuad"]
    assert params["tileMatrix"]["schema"] == {"type": "integer", "minimum": 0, "maximum": 24}
    assert "application/vnd.mapbox-vector-tile" in tile["get"]["responses"]["200"]["content"]
