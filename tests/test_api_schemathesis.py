"""Schemathesis 4 with every check over the whole OpenAPI document, against a real server.

The server is the app in a subprocess (tests/fixtures/server.py) over a copy of the small
generated province; schemathesis runs as its CLI (``st run``), as a user would, with an admin
token so that writes and the scan API are reached past their token checks (its ``ignored_auth``
check then also proves they refuse a request without one). The run is bounded — a few examples
per operation, the fuzzing and stateful phases, a time limit — and must end with no failure of
any check and no 5xx. ``make fuzz`` runs the same deeper: every phase, more examples, no time
limit.

What the document cannot state is said once, with its reason: in tests/schemathesis.toml
(operations whose valid input depends on stored data; no stateful walk into tile templates) and
tests/fixtures/schemathesis_hooks.py (bbox corner order and CQL2 grammar, positive cases only).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.fixtures.server import ROOT, make_token, serve_database

ST = Path(sys.executable).with_name("st")
HOOKS = "tests.fixtures.schemathesis_hooks"
CONFIG = ROOT / "tests" / "schemathesis.toml"
# Pages of at most 100 features keep each response small: the checks validate every feature.
FUZZ_SETTINGS = {"max_page_size": "100"}
# `make fuzz` sets FUZZ=deep: every phase (coverage too), 30 examples per operation, no time
# limit. The suite's run: up to 3 examples per operation, no coverage phase, a budget of 40 s
# (`--max-time` is spent whole: the fuzzing and stateful phases repeat until it is; 60 s before
# session 8, for about 500 test cases under load and every one of the 221 operations tested).
SUITE_MAX_TIME_S = 40
DEEP = os.environ.get("FUZZ") == "deep"


def schemathesis_command(base: str, token: str, *, examples: int, max_time: int | None,
                         phases: str | None, report: Path) -> list[str]:
    """The ``st run`` command line of a run against ``base`` (shared with ``make fuzz``)."""
    command = [
        str(ST), "--config-file", str(CONFIG), "run", f"{base}/openapi?f=json",
        "--checks", "all",
        "--max-examples", str(examples),
        "--seed", "2025",
        "--workers", "1",
        "--generation-database", "none",
        "--header", f"Authorization: Bearer {token}",
        "--request-timeout", "30",
        "--report", "junit", "--report-junit-path", str(report),
        "--no-color",
    ]
    if max_time is not None:
        command += ["--max-time", str(max_time)]
    if phases is not None:
        command += ["--phases", phases]
    return command


def run_schemathesis(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``st`` with our hooks importable; its output is returned, not printed."""
    env = dict(os.environ, SCHEMATHESIS_HOOKS=HOOKS, PYTHONPATH=str(ROOT))
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=7200 if DEEP else 600, check=False)


@pytest.mark.slow
def test_schemathesis_finds_nothing(province_url, tmp_path):
    token = make_token(province_url, "admin")
    report = tmp_path / "schemathesis.xml"
    with serve_database(province_url, **FUZZ_SETTINGS) as base:
        if DEEP:
            command = schemathesis_command(base, token, examples=30, max_time=None,
                                           phases=None, report=report)
        else:
            command = schemathesis_command(base, token, examples=3, max_time=SUITE_MAX_TIME_S,
                                           phases="examples,fuzzing,stateful", report=report)
        result = run_schemathesis(command, tmp_path)
        if DEEP:
            print(result.stdout[-4000:])
        still_up = httpx.get(f"{base}/readyz", timeout=10).status_code
    output = result.stdout + result.stderr
    tested = re.search(r"Tested: (\d+)", output)
    assert tested and int(tested.group(1)) >= 80, output[-3000:]  # the whole document ran
    assert "ST101" not in output, output[-6000:]  # "Server error": no 5xx at all
    assert result.returncode == 0, output[-6000:]  # and no failure of any other check
    assert still_up == 200


# -- the document says what is served ----------------------------------------------------------


@pytest.fixture(scope="module")
def document(api_server):
    return httpx.get(f"{api_server}/openapi", params={"f": "json"}).json()


def _operations(doc):
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_the_document_is_valid_openapi(document):
    from openapi_spec_validator import validate

    validate(document)


def test_item_operations_declare_their_feature_id(document):
    item_ops = [(p, m, op) for p, m, op in _operations(document) if p.endswith("/{featureId}")]
    assert len(item_ops) >= 12  # GET on every collection, PUT/PATCH/DELETE on trees
    for path, method, op in item_ops:
        declared = [p for p in op.get("parameters", []) if p.get("in") == "path"]
        assert [p["name"] for p in declared] == ["featureId"], (method, path)


def test_only_methods_that_are_served_are_declared(document, api_server):
    methods = {m for _, m, _ in _operations(document)}
    assert methods <= {"get", "post", "put", "patch", "delete"}  # no OPTIONS answering 405
    assert not [p for p in document["paths"] if p.startswith(("/jobs", "/processes"))]
    for path in ("/collections/communes/items", "/collections/communes/items/00001"):
        r = httpx.post(f"{api_server}{path}", json={})
        assert r.status_code == 405
        assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_features_are_documented_as_geojson(document, api_server):
    for path in ("/collections/trees/items", "/collections/trees/items/{featureId}"):
        media = document["paths"][path]["get"]["responses"]["200"]["content"]
        assert "application/geo+json" in media and "application/json" not in media
    r = httpx.get(f"{api_server}/collections/trees/items/1")
    assert r.headers["content-type"] == "application/geo+json"


# Writes anyone may send: the public hazard report form (rate-limited, capped; issue 19).
PUBLIC_WRITES = {("post", "/api/care/reports")}


def test_writes_document_their_token(document):
    writes = [(p, m, op) for p, m, op in _operations(document) if m != "get"]
    assert {m for _, m, _ in writes} == {"post", "put", "patch", "delete"}
    for path, method, op in writes:
        if (method, path) in PUBLIC_WRITES:
            assert "security" not in op and "429" in op["responses"], (method, path)
            continue
        assert op["security"] == [{"bearerAuth": []}], (method, path)
        assert {"401", "403"} <= set(op["responses"]), (method, path)
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_lang_is_as_documented(document, api_server):
    lang = next(p for p in document["paths"]["/collections"]["get"]["parameters"]
                if p["name"] == "lang")
    assert "enum" not in lang["schema"]  # any value is answered, in the one language served
    assert httpx.get(f"{api_server}/collections", params={"lang": "AAA"}).status_code == 200
    assert httpx.get(f"{api_server}/collections", params={"f": "AAA"}).status_code == 400


def test_what_the_fuzzer_found_is_a_4xx(api_server):
    vn2000 = "http://www.opengis.net/def/crs/EPSG/0/9213"
    far = {"bbox": "1e16,1e16,2e16,2e16", "bbox-crs": vn2000}
    for params in (far, {**far, "f": "csv"}, {"f": "fgb", "skipGeometry": "true"},
                   {"skipGeometry": "yes"}, {"filter-lang": "AAA"}, {"filter-crs": "x"}):
        r = httpx.get(f"{api_server}/collections/trees/items", params=params)
        assert r.status_code == 400, (params, r.text)
    page = httpx.get(f"{api_server}/collections/trees/items",
                     params={"properties": "dbh_cm,dbh_cm", "limit": 1})
    assert page.text.count('"dbh_cm"') == 1
