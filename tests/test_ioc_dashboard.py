"""The IOC dashboard (`/ioc`) in headless Chromium: it draws, a commune click updates the charts,
and every figure on the page equals the API's."""

from __future__ import annotations

import base64
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.fixtures.browser import needs_chromium
from tests.fixtures.ioc import seed_known_register
from tests.fixtures.server import serve_database

pytestmark = [pytest.mark.browser, needs_chromium]


@pytest.fixture(scope="module")
def dashboard_server(module_db_url: str, chromium: Any) -> Iterator[tuple[Any, str]]:
    """One server over the known register and the module's browser for the module's tests."""
    seed_known_register(module_db_url)
    with serve_database(module_db_url) as base:
        yield chromium, base


@pytest.fixture
def dashboard(dashboard_server: tuple[Any, str]) -> Iterator[tuple[Any, str]]:
    """The dashboard freshly opened in a new page; no script error, no other host asked."""
    browser, base = dashboard_server
    page = browser.new_page(viewport={"width": 1200, "height": 900}, locale="vi-VN")
    errors: list[str] = []
    outside: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith(base) else outside.append(r.url))
    page.goto(f"{base}/ioc")
    page.wait_for_function("window.smarttreesIoc && window.smarttreesIoc.ready")
    page.evaluate("window.smarttreesIoc.ready")
    yield page, base
    page.close()
    assert errors == []
    assert outside == []  # nothing from a CDN or any other host


def coloured_pixels(page: Any) -> int:
    """Pixels of the map chart that are neither white nor grey: communes filled by value."""
    url = page.evaluate("smarttreesIoc.charts.map.getDataURL({type: 'png'})")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    rgb = np.asarray(image, dtype=np.int16)
    return int((rgb.max(axis=2) - rgb.min(axis=2) > 30).sum())


def by_month(base: str, collection: str, commune: str) -> list[dict[str, Any]]:
    """A commune's features of a monthly collection, in month order, from the API."""
    body = httpx.get(f"{base}/collections/{collection}/items",
                     params={"filter": f"commune_code = '{commune}'"}, timeout=30).json()
    return sorted(body["features"], key=lambda f: f["properties"]["month"])


def series(page: Any, chart: str, series_id: str) -> list[Any]:
    return page.evaluate(
        "([chart, id]) => smarttreesIoc.charts[chart].getOption().series"
        ".find(s => s.id === id).data",
        [chart, series_id],
    )


def test_the_summary_on_the_page_is_the_apis(dashboard: tuple[Any, str]) -> None:
    page, base = dashboard
    api = httpx.get(f"{base}/api/ioc/summary", timeout=30).json()
    shown = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#summary .figure')]"
        ".map(d => [d.dataset.key, d.dataset.value]))")
    for key, value in shown.items():  # every figure shown is the API's
        part, name = key.split(".")
        assert float(value) == api[part][name], key
    assert {k: shown[k] for k in ("documents.total", "documents.electronic",
                                  "documents.courier_cost_saved_vnd", "citizen_support.people",
                                  "citizen_support.amount_vnd", "trees.total")} == {
        "documents.total": "8", "documents.electronic": "6",
        "documents.courier_cost_saved_vnd": "24000", "citizen_support.people": "22",
        "citizen_support.amount_vnd": "47300000", "trees.total": "6"}
    text = page.inner_text("#summary")  # in Vietnamese, the browser's language
    assert "Văn bản điện tử" in text and "Sent electronically" not in text
    assert api["definitions"]["documents.courier_cost_saved_vnd"]["vi"] in text
    assert "2025-01-06 – 2025-02-20" in text


def test_the_map_draws_and_a_commune_click_updates_the_charts(
    dashboard: tuple[Any, str]
) -> None:
    page, base = dashboard
    drawn = page.evaluate("smarttreesIoc.charts.map.getOption().series[0].data")
    values = {d["name"]: d["value"] for d in drawn}
    assert (values["00001"], values["00002"]) == (3, 2)
    assert values["00003"] != values["00003"]  # NaN: no agency there, no documents
    assert coloured_pixels(page) > 10_000  # the communes are drawn
    assert series(page, "documents", "sent") == [5, 3]  # the province: January, February
    assert series(page, "trees", "trees") == [3, 3, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6]
    # Click the middle of commune 00002 on the map canvas.
    x, y = page.evaluate(
        "smarttreesIoc.charts.map.convertToPixel({seriesIndex: 0}, [105.85, 21.5])")
    box = page.locator("#map canvas").first.bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.wait_for_function("smarttreesIoc.state.commune === '00002'")
    months = by_month(base, "documents_by_commune_month", "00002")
    assert series(page, "documents", "sent") == [f["properties"]["sent"] for f in months]
    assert series(page, "documents", "received") == [f["properties"]["received"]
                                                     for f in months] == [2, 0]
    counts = by_month(base, "tree_count_by_month", "00002")
    assert series(page, "trees", "trees") == [f["properties"]["trees"] for f in counts]
    assert page.inner_text("#trend-title") == "Bình Sơn"
    assert page.input_value("#commune") == "00002"


def test_the_picker_and_the_indicators(dashboard: tuple[Any, str]) -> None:
    page, base = dashboard
    page.select_option("#commune", "00001")
    assert series(page, "documents", "sent") == [2, 1]
    page.select_option("#indicator", "support_people")
    values = {d["name"]: d["value"] for d in
              page.evaluate("smarttreesIoc.charts.map.getOption().series[0].data")}
    assert values["00001"] == 12
    assert values["00002"] != values["00002"]  # NaN: withheld, drawn grey
    page.select_option("#indicator", "trees_per_km2")
    trees = httpx.get(f"{base}/collections/trees_by_commune/items/00001", timeout=30).json()
    values = {d["name"]: d["value"] for d in
              page.evaluate("smarttreesIoc.charts.map.getOption().series[0].data")}
    assert values["00001"] == trees["properties"]["trees_per_km2"]


def test_the_tree_chart_is_drawn_against_the_target(dashboard: tuple[Any, str]) -> None:
    page, base = dashboard

    def target_line() -> list[Any]:
        return [d["yAxis"] for d in page.evaluate(
            "smarttreesIoc.charts.trees.getOption().series"
            ".find((s) => s.id === 'trees').markLine.data")]

    summary = httpx.get(f"{base}/api/ioc/summary", timeout=30).json()
    assert target_line() == [summary["trees"]["target"]]  # the province's
    page.select_option("#commune", "00001")  # no target of its own in the known register
    assert target_line() == []


def test_in_english_on_a_phone(dashboard_server: tuple[Any, str]) -> None:
    """An English browser gets the dashboard in English, and the page fits a 390 px screen."""
    browser, base = dashboard_server
    page = browser.new_page(viewport={"width": 390, "height": 844}, locale="en-GB",
                            is_mobile=True, has_touch=True)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/ioc")
    page.wait_for_function("window.smarttreesIoc && window.smarttreesIoc.ready")
    page.evaluate("window.smarttreesIoc.ready")
    api = httpx.get(f"{base}/api/ioc/summary", timeout=30).json()
    text = page.inner_text("#summary")
    assert "Sent electronically" in text and "Văn bản điện tử" not in text
    assert api["definitions"]["documents.courier_cost_saved_vnd"]["en"] in text
    assert page.inner_text("h1") == "Intelligent Operations Centre"
    assert page.inner_text("#trend-title") == "Whole province"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sideways
    assert coloured_pixels(page) > 3_000  # the communes are drawn at phone width too
    page.screenshot(path=str(Path(tempfile.gettempdir()) / "smarttrees-ioc-phone-en.png"))
    # Picked Vietnamese is kept for the next visit.
    with page.expect_navigation():
        page.select_option("#lang", "vi")
    page.wait_for_function("window.smarttreesIoc && window.smarttreesIoc.ready")
    page.evaluate("window.smarttreesIoc.ready")
    assert page.inner_text("#trend-title") == "Toàn tỉnh"
    assert "Văn bản điện tử" in page.inner_text("#summary")
    page.close()
    assert errors == []
