"""The web map's tree-care layers in headless Chromium: risk classes drawn, filtered, toggled."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from tests.fixtures.browser import needs_chromium
from tests.fixtures.server import make_token, seed_api_data, serve_database, tree_position

pytestmark = [pytest.mark.browser, needs_chromium]


@pytest.fixture
def page(browser: Any, db_url: str) -> Iterator[Any]:
    seed_api_data(db_url)
    with serve_database(db_url) as base:
        field = {"Authorization": f"Bearer {make_token(db_url, 'field')}"}
        old = (date.today() - timedelta(days=900)).isoformat()
        batch = [  # G16 extreme and overdue, G17 high and overdue, G18 low and not due
            {"tree_code": "G16", "inspected_on": old, "inspector": "Lan",
             "likelihood_failure": "imminent", "likelihood_impact": "high", "consequences": "severe"},
            {"tree_code": "G17", "inspected_on": old, "inspector": "Lan",
             "likelihood_failure": "probable", "likelihood_impact": "high",
             "consequences": "significant"},
            {"tree_code": "G18", "inspected_on": date.today().isoformat(), "inspector": "Lan",
             "likelihood_failure": "improbable", "likelihood_impact": "low", "consequences": "minor"},
        ]
        assert httpx.post(f"{base}/api/care/inspections", json=batch,
                          headers=field).status_code == 201
        page = browser.new_page(viewport={"width": 900, "height": 650}, reduced_motion="reduce")
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/map")
        page.wait_for_function("window.smarttreesMap && smarttreesMap.loaded()", timeout=30_000)
        yield page
        page.context.close()
        assert errors == []


def shown(page: Any) -> list[str]:
    """Tree codes of the care-due features drawn now, once every tile is in."""
    page.wait_for_function(
        "smarttreesMap.loaded() && smarttreesMap.areTilesLoaded() && !smarttreesMap.isMoving()",
        timeout=30_000)
    page.evaluate("new Promise(done => { smarttreesMap.once('idle', done); "
                  "smarttreesMap.triggerRepaint(); })")
    return sorted({f["properties"]["tree_code"] for f in page.evaluate(
        "smarttreesMap.queryRenderedFeatures({layers: ['care-due']})"
        ".map(f => ({properties: f.properties}))")})


def test_risk_classes_are_drawn_filtered_and_toggled(page: Any) -> None:
    lon, lat = tree_position(17)
    page.evaluate(f"smarttreesMap.jumpTo({{center: [{lon}, {lat}], zoom: 16}})")
    assert shown(page) == []  # off until asked for
    page.check("#care-due-toggle")
    assert shown(page) == ["G16", "G17", "G18"]
    page.check("#care-due-only")
    assert shown(page) == ["G16", "G17"]
    page.select_option("#care-risk", "extreme")
    assert shown(page) == ["G16"]
    page.uncheck("#care-due-toggle")
    assert shown(page) == []
