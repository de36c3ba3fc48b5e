"""The public hazard report page in headless Chromium: mark a place, attach a photo, send."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from smarttrees.database import connect
from tests.fixtures.browser import needs_chromium
from tests.fixtures.server import seed_api_data, serve_database

pytestmark = [pytest.mark.browser, needs_chromium]


@pytest.fixture(scope="module")
def served(module_db_url: str) -> Iterator[tuple[str, str]]:
    """One server over the small API data set for the module: a report sent by one test is
    found by its own id, and the refused ones store nothing."""
    seed_api_data(module_db_url)
    with serve_database(module_db_url, care_reports_per_hour="100") as base:
        yield base, module_db_url


@pytest.fixture
def page(browser: Any, served: tuple[str, str]) -> Iterator[Any]:
    base, _ = served
    page = browser.new_page(viewport={"width": 600, "height": 900}, reduced_motion="reduce")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/report?tree=G5")
    page.wait_for_function("window.smarttreesReportMap && smarttreesReportMap.loaded()",
                           timeout=30_000)
    yield page
    page.context.close()
    assert errors == []


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (80, 60), (30, 110, 30)).save(out, format="JPEG")
    return out.getvalue()


def test_a_reporter_marks_the_place_attaches_a_photo_and_sends(
        page: Any, served: tuple[str, str]) -> None:
    _, url = served
    assert page.input_value("#tree") == "G5"  # from the QR code's link
    page.fill("#tree", "")
    page.wait_for_function("!smarttreesReportMap.isMoving()")
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert page.input_value("#lon") and page.input_value("#lat")
    page.select_option("#hazard", "fallen")
    page.set_input_files("#photo", files=[{"name": "cay.jpg", "mimeType": "image/jpeg",
                                           "buffer": jpeg()}])
    page.fill("#note", "Cây đổ chắn ngõ")
    page.fill("#contact", "0987 654 321")
    page.click("#send")
    page.wait_for_selector("#message.ok")
    text = page.text_content("#message")
    assert text.startswith("Cảm ơn! Mã báo cáo ")
    report_id = int(text.split("Mã báo cáo ")[1].split()[0])
    with connect(url) as conn:
        hazard, commune, contact, note, has_photo = conn.execute(
            "SELECT r.hazard, r.commune_code, d.contact, d.note, d.photo_id IS NOT NULL "
            "FROM care_reports r JOIN restricted.care_report_details d ON d.report_id = r.id "
            "WHERE r.id = %s", [report_id]).fetchone()
    assert (hazard, contact, note, has_photo) == ("fallen", "0987 654 321", "Cây đổ chắn ngõ", True)
    assert commune in ("00001", "00002")
    assert page.input_value("#lon") == ""  # the form is reset after sending


def test_the_page_says_why_a_report_is_refused(page: Any) -> None:
    page.set_input_files("#photo", files=[{"name": "big.jpg", "mimeType": "image/jpeg",
                                           "buffer": b"\xff" * (9 * 1024 * 1024)}])
    page.click("#send")
    page.wait_for_selector("#message.error")
    assert "at most 8 MiB" in page.text_content("#message")
    page.set_input_files("#photo", files=[])
    page.fill("#tree", "NOPE-404")
    page.click("#send")
    page.wait_for_function("document.querySelector('#message').textContent.includes('no tree')")
