"""What the server writes to its log: one line per client error, tracebacks only for 5xx.

Issue 10: every 4xx pygeoapi answered after catching a parser's exception was logged with the
whole traceback. The server here is started the way operators start it (``smarttrees serve``,
whose logging configuration lets pygeoapi's records through), and its log is read back.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gis_api import logs
from tests.fixtures.server import ROOT, free_port

CQL2_JSON = json.dumps({"op": "=", "args": [{"property": "category"}, "urban"]})
CLIENT_ERRORS = [  # answered by pygeoapi, each after catching an exception
    {"f": "html", "filter-lang": "cql2-json", "filter": CQL2_JSON},
    {"f": "html", "filter": "S_INTERSECTS(geom,BBOX(105.8,21.5,105.9,21.6))"},
]


def serve_and_log(url: str, log_path: Path, requests: list[dict[str, str]],
                  path: str = "/collections/trees/items") -> list[int]:
    """Run ``smarttrees serve`` over ``url``, send the requests to ``path``, stop; their statuses."""
    port = free_port()
    env = dict(os.environ, SMARTTREES_DATABASE_URL=url, SMARTTREES_PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from smarttrees.cli import main; main()", "serve"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            return [httpx.get(base + path, params=p, timeout=30).status_code for p in requests]
        finally:
            proc.terminate()
            proc.wait(20)


def test_client_errors_are_one_line_each_without_a_traceback(api_db: str, tmp_path: Path) -> None:
    log_path = tmp_path / "server.log"
    statuses = serve_and_log(api_db, log_path, CLIENT_ERRORS)
    assert statuses == [400] * len(CLIENT_ERRORS)
    text = log_path.read_text()
    assert "Traceback" not in text
    lines = [ln for ln in text.splitlines() if "400 from pygeoapi" in ln]
    assert len(lines) == len(CLIENT_ERRORS)
    assert all("GET /collections/trees/items" in ln for ln in lines)


def test_access_lines_name_neither_the_client_nor_a_query_value(api_db: str,
                                                                tmp_path: Path) -> None:
    log_path = tmp_path / "server.log"
    statuses = serve_and_log(api_db, log_path, [{"case_no": "HT-2025-00042"},
                                                {"commune": "TN-0123", "case_no": ""}],
                             path="/api/ioc/cases")
    assert statuses == [401, 401]  # no login: refused, and still logged
    text = log_path.read_text()
    access = [ln for ln in text.splitlines() if "/api/ioc/cases" in ln]
    assert access == [
        'INFO:     "GET /api/ioc/cases?case_no=… HTTP/1.1" 401 Unauthorized',
        'INFO:     "GET /api/ioc/cases?commune=…&case_no=… HTTP/1.1" 401 Unauthorized',
    ]
    assert "HT-2025-00042" not in text and "TN-0123" not in text
    assert re.search(r'[\d.]+:\d+ - "GET', text) is None  # uvicorn's "ADDRESS:PORT - "


def test_server_errors_keep_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    pygeoapi = logging.getLogger("pygeoapi.api")
    caplog.set_level(logging.INFO)
    for status in (400, 500):
        with logs.pygeoapi_records() as records:
            try:
                raise ValueError("the provider broke")
            except ValueError:
                pygeoapi.error("provider failed", exc_info=True)
        logs.report("GET", "/collections/trees/items", status, records)
    client, server = caplog.records[-2:]
    assert client.exc_info is None and "400 from pygeoapi: provider failed" in client.getMessage()
    assert server.exc_info is not None and server.name == "pygeoapi.api"
