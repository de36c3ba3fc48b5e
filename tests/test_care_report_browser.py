"""The public hazard report page in headless Chromium: mark a place, attach a photo, send."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from smarttrees.database import connect
from tests.fixtures.server import seed_api_data, serve_database
from tests.test_webmap_browser import ARGS, CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
]


@pytest.fixture
def served(db_url: str) -> Iterator[tuple[str, str]]:
    seed_api_data(db_url)
    with serve_database(db_url, care_reports_per_hour="100") as base:
        yield base, db_url


@pytest.fixture
def page(served: tuple[str, str]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    base, _ = served
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 600, "height": 900}, reduced_motion="reduce")
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/report?tree=G5")
        page.wait_for_function("window.smarttreesReportMap && smarttreesReportMap.loaded()",
                               timeout=30_000)
        yield page
        browser.close()
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
