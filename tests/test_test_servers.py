"""The test servers (tests/fixtures/server.py): forked from one warm parent, each its own.

Every server of the suite is forked from a process that imported the app once; each must still
read its own settings (no leak from the parent or from another server) and a server that cannot
start must say why.
"""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.server import free_port, serve_database


def test_two_servers_at_once_each_serve_with_their_own_settings(db_url: str) -> None:
    with serve_database(db_url) as first, serve_database(db_url, max_page_size="7") as second:
        assert first != second
        for base in (first, second):
            links = httpx.get(f"{base}/collections", params={"f": "json"}).json()["links"]
            assert links and all(link["href"].startswith(base) for link in links)
        big = {"limit": 8, "f": "json"}
        assert httpx.get(f"{first}/collections/trees/items", params=big).status_code == 200
        assert httpx.get(f"{second}/collections/trees/items", params=big).status_code == 400
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{first}/healthz")  # stopped on leaving the block


def test_a_server_that_cannot_start_says_why() -> None:
    nowhere = f"postgresql://smarttrees@127.0.0.1:{free_port()}/none"
    with (pytest.raises(RuntimeError, match="the server exited; its log ends"),
          serve_database(nowhere)):
        pass
