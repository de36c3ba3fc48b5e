"""``smarttrees demo``: migrates, generates once, serves, and Ctrl-C leaves the data in place."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from smarttrees.database import connect


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_demo(url: str) -> tuple[str, dict]:
    """Start the demo, fetch two trees once it answers, stop it with Ctrl-C; (output, page)."""
    port = _free_port()
    env = {**os.environ, "SMARTTREES_DATABASE_URL": url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "smarttrees", "demo", "--scale", "small", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        page = None
        deadline = time.monotonic() + 120
        while page is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/collections/trees/items", params={"limit": 2}
                )
                if response.status_code == 200:
                    page = response.json()
            except httpx.TransportError:
                time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert page is not None, f"the demo never answered:\n{proc.stdout and output}"
    assert proc.returncode == 0, output
    return output, page


def test_demo_generates_once_serves_and_keeps_the_data(db_url):
    output, page = _run_demo(db_url)
    assert "generated the small province" in output
    port_urls = [line.split()[-1] for line in output.splitlines() if "http://" in line]
    assert any(u.endswith("/collections/trees/items") for u in port_urls)
    assert any(u.endswith("/map") for u in port_urls)
    assert len(page["features"]) == 2
    assert page["features"][0]["geometry"]["type"] == "Point"
    with connect(db_url) as conn:
        trees, history = conn.execute(
            "SELECT (SELECT count(*) FROM trees), (SELECT count(*) FROM tree_history)"
        ).fetchone()
    assert trees == 5_000

    again, _ = _run_demo(db_url)
    assert "province already loaded" in again
    assert "generated" not in again
    with connect(db_url) as conn:
        assert conn.execute(
            "SELECT (SELECT count(*) FROM trees), (SELECT count(*) FROM tree_history)"
        ).fetchone() == (trees, history)
