"""The printable sheets: the due list and a crew's orders as PDF, with a map, over HTTP and CLI."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import numpy as np
import pypdfium2 as pdfium
import pytest

from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.server import make_token, seed_api_data, serve_database

TODAY = date.today()


@pytest.fixture(scope="module")
def care_db(module_db_url: str) -> str:
    seed_api_data(module_db_url)
    return module_db_url


@pytest.fixture(scope="module")
def server(care_db: str) -> Iterator[str]:
    with serve_database(care_db) as base:
        yield base


def pdf_text_and_ink(data: bytes) -> tuple[str, float]:
    """The first page's text, and the share of its upper half that is not white (the map)."""
    document = pdfium.PdfDocument(io.BytesIO(data))
    page = document[0]
    text = page.get_textpage().get_text_range()
    image = np.asarray(page.render(scale=1).to_pil().convert("L"))
    top = image[: image.shape[0] // 2]
    return text, float((top < 200).mean())


def test_the_due_list_sheet_lists_every_due_tree_and_draws_the_map(
        server: str, care_db: str, tmp_path: Path) -> None:
    editor = {"Authorization": f"Bearer {make_token(care_db, 'editor')}"}
    field = {"Authorization": f"Bearer {make_token(care_db, 'field')}"}
    old = (TODAY - timedelta(days=800)).isoformat()
    batch = [{"tree_code": f"G{i}", "inspected_on": old, "inspector": "Lan",
              "likelihood_failure": "probable", "likelihood_impact": "high",
              "consequences": "severe", "defects": ["decay"]} for i in (60, 75, 90)]
    assert httpx.post(f"{server}/api/care/inspections", json=batch,
                      headers=field).status_code == 201
    sheet = httpx.get(f"{server}/api/care/due.pdf", params={"risk": "high"}, headers=editor)
    assert sheet.status_code == 200 and sheet.headers["content-type"] == "application/pdf"
    text, ink = pdf_text_and_ink(sheet.content)
    assert "Trees due for inspection" in text
    assert all(code in text for code in ("G60", "G75", "G90"))
    assert "rủi ro · risk high" in text
    assert ink > 0.01  # outlines and dots drawn

    out = tmp_path / "due.pdf"
    done = run_cli("care", "due", "--pdf", str(out), env=cli_env(SMARTTREES_DATABASE_URL=care_db))
    assert done.code == 0, done.stderr
    assert "G75" in pdf_text_and_ink(out.read_bytes())[0]
    bad = httpx.get(f"{server}/api/care/due.pdf", params={"by": "soon"}, headers=editor)
    assert bad.status_code == 400


def test_a_crews_sheet_lists_its_scheduled_orders(server: str, care_db: str,
                                                   tmp_path: Path) -> None:
    editor = {"Authorization": f"Bearer {make_token(care_db, 'editor')}"}
    make_token(care_db, "field")
    ids = []
    for trees in (["G100", "G101"], ["G120"]):
        oid = httpx.post(f"{server}/api/care/orders", headers=editor,
                         json={"work_type": "pruning", "trees": trees, "note": "dây điện"}).json()["id"]
        for step in ({"to": "approved"}, {"to": "scheduled", "crew": "test-field",
                                          "scheduled_on": "2026-12-10"}):
            assert httpx.post(f"{server}/api/care/orders/{oid}/transitions", json=step,
                              headers=editor).status_code == 200
        ids.append(oid)
    sheet = httpx.get(f"{server}/api/care/orders.pdf", headers=editor,
                      params={"crew": "test-field", "on": "2026-12-10"})
    assert sheet.status_code == 200
    text, ink = pdf_text_and_ink(sheet.content)
    assert "Tree work orders" in text and "test-field" in text
    assert all(str(i) in text for i in ids) and "G120" in text
    assert ink > 0.01
    out = tmp_path / "crew.pdf"
    done = run_cli("care", "orders", "sheet", str(out), "--crew", "test-field",
                   env=cli_env(SMARTTREES_DATABASE_URL=care_db))
    assert done.code == 0, done.stderr
    assert "G101" in pdf_text_and_ink(out.read_bytes())[0]
