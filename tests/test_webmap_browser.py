"""The web map in headless Chromium: it draws, a click on a tree opens its popup, search works.

Runs Debian's Chromium through Playwright against a live server over the small province.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from PIL import Image

from tests.fixtures.browser import ARGS, CHROMIUM, SCREENSHOTS, needs_chromium
from tests.fixtures.server import serve_database

__all__ = ["ARGS", "CHROMIUM", "SCREENSHOTS", "drawn_pixels", "wait_idle"]  # used by other modules
BACKGROUND = (0xEE, 0xF1, 0xEA)  # the map's background colour (map.js)

pytestmark = [pytest.mark.browser, needs_chromium]


@pytest.fixture(scope="module")
def map_server(module_province_url: str) -> Iterator[str]:
    """A server over the module's copy of the province, shared by the tests that only read it."""
    with serve_database(module_province_url) as base:
        yield base


def desktop_page(browser: Any, base: str) -> Iterator[Any]:
    """A desktop-sized page on the web map at ``base``, once loaded; no page error after."""
    # Reduced motion: MapLibre then jumps instead of animating (software WebGL draws slowly).
    page = browser.new_page(viewport={"width": 900, "height": 650}, reduced_motion="reduce",
                            locale="en-GB")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/map")
    page.wait_for_function("window.smarttreesMap && window.smarttreesMap.loaded()")
    wait_idle(page)
    yield page
    page.context.close()
    assert errors == []


@pytest.fixture
def page(browser: Any, map_server: str) -> Iterator[Any]:
    """The web map over the module's province, in a fresh browser context."""
    yield from desktop_page(browser, map_server)


def wait_idle(page: Any) -> None:
    """Wait until the map has loaded every tile of the current view and drawn it."""
    page.wait_for_function(
        "smarttreesMap.loaded() && smarttreesMap.areTilesLoaded() && !smarttreesMap.isMoving()",
        timeout=30_000,
    )
    page.evaluate(
        "new Promise(done => { smarttreesMap.once('idle', done); smarttreesMap.triggerRepaint(); })"
    )


def drawn_pixels(page: Any) -> int:
    """Pixels of the map canvas that differ clearly from the plain background."""
    data_url = page.evaluate("smarttreesMap.getCanvas().toDataURL('image/png')")
    image = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB")
    distance = np.abs(np.asarray(image, dtype=np.int16) - np.array(BACKGROUND)).sum(axis=2)
    return int((distance > 40).sum())


def lonely_tree(url: str, offset: int = 0) -> tuple[int, str, float, float]:
    """A tree with no other within about 15 m, so a click on it can hit nothing else."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            """
            SELECT t.id, t.tree_code, ST_X(t.geom), ST_Y(t.geom)
            FROM smarttrees.trees t
            WHERE NOT EXISTS (
                SELECT 1 FROM smarttrees.trees o
                WHERE o.id <> t.id AND ST_DWithin(o.geom, t.geom, 0.00015)  -- about 15 m
            )
            ORDER BY t.id
            OFFSET %s LIMIT 1
            """,
            [offset],
        ).fetchone()
    assert row is not None, "the province has no isolated tree to click"
    return row


def test_map_draws_and_a_clicked_tree_shows_its_popup(page: Any, module_province_url: str) -> None:
    assert drawn_pixels(page) > 2_000
    page.screenshot(path=str(SCREENSHOTS / "smarttrees-map-overview.png"))
    assert page.locator("#filter-species option").count() > 1  # filled from /map/options.json

    tree_id, code, lon, lat = lonely_tree(module_province_url)
    page.evaluate(f"smarttreesMap.jumpTo({{center: [{lon}, {lat}], zoom: 18}})")
    wait_idle(page)
    point = page.evaluate(f"smarttreesMap.project([{lon}, {lat}])")
    box = page.locator("#map canvas").bounding_box()
    page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])
    popup = page.locator(".tree-popup")
    popup.locator("h3").wait_for()
    assert popup.locator("h3").inner_text() == code
    popup.locator(".history li").first.wait_for()
    assert "insert" in popup.locator(".history").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "smarttrees-map-popup.png"))

    page.check("input[name=colour-by][value=condition]")
    assert "dead" in page.inner_text("#legend")
    colour = page.evaluate("smarttreesMap.getPaintProperty('trees', 'circle-color')")
    assert colour[1] == ["get", "condition"]


def test_search_by_code_and_filter_by_category(page: Any, module_province_url: str) -> None:
    tree_id, code, lon, lat = lonely_tree(module_province_url, offset=1)
    page.fill("#search-code", code.lower())
    page.click("#search button")
    page.locator(".tree-popup h3").wait_for()
    assert page.locator(".tree-popup h3").inner_text() == code
    center = page.evaluate("smarttreesMap.getCenter().toArray()")
    assert center == pytest.approx([lon, lat], abs=1e-5)

    page.fill("#search-code", "NO-SUCH-TREE")
    page.click("#search button")
    page.wait_for_function("document.getElementById('search-message').textContent !== ''")
    assert "NO-SUCH-TREE" in page.inner_text("#search-message")

    with psycopg.connect(module_province_url) as conn:
        lon, lat = conn.execute(
            "SELECT ST_X(geom), ST_Y(geom) FROM smarttrees.trees WHERE category = 'plantation'"
            " ORDER BY id LIMIT 1"
        ).fetchone()
    page.evaluate(f"smarttreesMap.jumpTo({{center: [{lon}, {lat}], zoom: 15}})")
    wait_idle(page)
    page.select_option("#filter-category", "plantation")
    wait_idle(page)
    shown = page.evaluate(
        "smarttreesMap.queryRenderedFeatures({layers: ['trees']}).map(f => f.properties.category)"
    )
    cells = page.evaluate(
        "smarttreesMap.queryRenderedFeatures({layers: ['tree-cells']})"
        ".map(f => f.properties.urban + f.properties.scattered)"
    )
    assert shown or cells
    assert set(shown) <= {"plantation"}
    assert set(cells) <= {0}


def test_custody_scans_show_where_logs_went(page: Any, module_province_url: str) -> None:
    with psycopg.connect(module_province_url) as conn:
        lon, lat = conn.execute(
            "SELECT ST_X(geom), ST_Y(geom) FROM smarttrees.custody_events"
            " WHERE event_type = 'received' ORDER BY occurred_at LIMIT 1"
        ).fetchone()
    page.evaluate(f"smarttreesMap.jumpTo({{center: [{lon}, {lat}], zoom: 9}})")
    wait_idle(page)
    page.check("#custody-toggle")
    page.wait_for_function("document.getElementById('custody-note').textContent.includes('zoom in')")
    page.evaluate(f"smarttreesMap.jumpTo({{center: [{lon}, {lat}], zoom: 14}})")
    page.wait_for_function("document.getElementById('custody-note').textContent.includes('scans in view')")
    wait_idle(page)
    bounds = page.evaluate("smarttreesMap.getBounds().toArray().flat()")
    with psycopg.connect(module_province_url) as conn:
        expected = conn.execute(
            "SELECT count(*) FROM smarttrees.custody_events WHERE ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
            bounds).fetchone()[0]
    note = page.inner_text("#custody-note")
    assert note.startswith(f"{min(expected, 2000)} custody scans"), note
    steps = page.evaluate(
        "smarttreesMap.queryRenderedFeatures({layers: ['custody']}).map(f => f.properties.event_type)"
    )
    assert "received" in steps


@pytest.fixture
def density_raster(module_province_url: str, tmp_path: Path) -> str:
    """A 30 m density surface registered (with its Web Mercator copy) before the page opens.

    In the module's province: the other tests' maps list it too, hidden, and assert nothing of
    rasters; the trees it is computed from stay as they are."""
    from etl.raster.density import density_surface
    from etl.raster.registry import add_raster
    from smarttrees.database import connect

    with connect(module_province_url) as conn:
        density_surface(conn, 30, tmp_path / "density.tif")
        add_raster(conn, tmp_path / "density.tif", "density_30m", colormap="greens",
                   copies=tmp_path)
    return "density_30m"


def canvas(page: Any) -> np.ndarray:
    data_url = page.evaluate("smarttreesMap.getCanvas().toDataURL('image/png')")
    image = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB")
    return np.asarray(image, dtype=np.int16)


def test_a_registered_raster_is_a_layer_with_legend_and_opacity(
    density_raster: str, page: Any, module_province_url: str
) -> None:
    panel = page.locator("#rasters")
    panel.locator(f"input[data-raster={density_raster}]").wait_for()
    assert "trees/ha" in panel.inner_text()  # the legend's units, with the range's ends
    ramp = panel.locator(".raster-legend .ramp").get_attribute("style")
    assert "linear-gradient" in ramp
    layer = f"raster-{density_raster}"
    assert page.evaluate(f"smarttreesMap.getLayoutProperty('{layer}', 'visibility')") == "none"

    with psycopg.connect(module_province_url) as conn:
        lon, lat = conn.execute("SELECT ST_X(geom), ST_Y(geom) FROM smarttrees.trees"
                                " WHERE category = 'urban' ORDER BY id LIMIT 1").fetchone()
    page.evaluate(f"smarttreesMap.jumpTo({{center: [{lon}, {lat}], zoom: 14}})")
    wait_idle(page)
    before = canvas(page)
    panel.locator(f"input[data-raster={density_raster}]").check()
    wait_idle(page)
    shown = canvas(page)
    # Even cells without trees are tinted (the ramp's palest green); cells with trees darker.
    changed = (np.abs(shown - before).sum(axis=2) > 10).sum()
    darker = (shown.sum(axis=2) < before.sum(axis=2) - 120).sum()
    assert changed > 0.2 * shown.shape[0] * shown.shape[1] and darker > 100
    page.screenshot(path=str(SCREENSHOTS / "smarttrees-map-raster.png"))
    tiles = page.evaluate(
        "performance.getEntriesByType('resource').map(e => e.name)"
        f".filter(n => n.includes('/collections/{density_raster}/tiles/'))"
    )
    assert tiles and all(t.endswith(".png") for t in tiles)

    slider = panel.locator("input[type=range]")
    slider.fill("0")  # opacity to nothing: the map as it was
    wait_idle(page)
    assert page.evaluate(f"smarttreesMap.getPaintProperty('{layer}', 'raster-opacity')") == 0
    assert (np.abs(canvas(page) - before).sum(axis=2) > 10).sum() < changed / 20


PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 1, "is_mobile": True,
         "has_touch": True, "reduced_motion": "reduce"}


def open_map(context: Any, url: str) -> Any:
    """A page of ``context`` on the web map at ``url``, once the map has loaded its view."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("window.smarttreesMap && window.smarttreesMap.loaded()")
    page.locator("#filter-category option").nth(1).wait_for(state="attached")
    wait_idle(page)
    page.errors = errors
    return page


def test_on_a_phone_the_panel_folds_away_in_the_browsers_language(
    browser: Any, map_server: str, module_province_url: str
) -> None:
    context = browser.new_context(locale="vi-VN", **PHONE)
    page = open_map(context, f"{map_server}/map")
    # On a phone the panel is a sheet over the lower part of the map; one button hides it
    # (the whole screen is then the map) and shows it again.
    box = page.locator("#panel").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert box["y"] > 844 / 2 and box["height"] <= 0.5 * 844
    page.click("#panel-toggle")
    assert not page.locator("#panel").is_visible()
    assert page.get_attribute("#panel-toggle", "aria-expanded") == "false"
    assert drawn_pixels(page) > 1_000
    page.click("#panel-toggle")
    assert page.locator("#panel").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sideways
    page.screenshot(path=str(SCREENSHOTS / "smarttrees-map-phone-vi.png"))
    # Vietnamese, as the browser asks: labels, choices and the legend of every symbol.
    assert page.evaluate("document.documentElement.lang") == "vi"
    assert page.inner_text("label[for=filter-category]") == "Loại cây"
    assert "rừng trồng" in page.inner_text("#filter-category")
    assert "chết" not in page.inner_text("#legend") and "rừng trồng" in page.inner_text("#legend")
    legend = page.inner_text("#legend-layers")
    for name in ("vườn ươm", "lô rừng trồng", "ranh giới xã, phường"):
        assert name in legend, name
    page.check("#care-due-toggle")
    assert "rất cao" in page.inner_text("#legend-layers")  # the risk classes, while shown
    # Switching to English is kept: the next visit opens in English.
    with page.expect_navigation():
        page.select_option("#lang", "en")
    page.wait_for_function("document.documentElement.lang === 'en'")
    page.locator("label[for=filter-category]").wait_for(state="attached")
    assert page.inner_text("label[for=filter-category]") == "Category"
    again = open_map(context, f"{map_server}/map")
    assert "nurseries" in again.inner_text("#legend-layers")
    assert again.inner_text("#search button") == "Find"
    again.screenshot(path=str(SCREENSHOTS / "smarttrees-map-phone-en.png"))
    assert page.errors == [] and again.errors == []


def test_a_link_opens_the_same_view(
    browser: Any, map_server: str, module_province_url: str
) -> None:
    with psycopg.connect(module_province_url) as conn:
        lon, lat = conn.execute(
            "SELECT ST_X(geom), ST_Y(geom) FROM smarttrees.trees WHERE category = 'plantation'"
            " ORDER BY id LIMIT 1"
        ).fetchone()
    context = browser.new_context(locale="en-GB", reduced_motion="reduce",
                                  viewport={"width": 900, "height": 650})
    page = open_map(context, f"{map_server}/map")
    page.evaluate(f"smarttreesMap.jumpTo({{center: [{lon}, {lat}], zoom: 15.5}})")
    wait_idle(page)
    page.select_option("#filter-category", "plantation")
    page.uncheck("input[data-layers=nurseries]")
    page.check("#care-damage-toggle")
    page.check("input[name=colour-by][value=condition]")
    link = page.url
    assert "#" in link and "category=plantation" in link

    other = open_map(browser.new_context(locale="vi-VN", reduced_motion="reduce",
                                         viewport={"width": 900, "height": 650}), link)
    assert other.evaluate("smarttreesMap.getZoom()") == pytest.approx(15.5, abs=0.01)
    center = other.evaluate("smarttreesMap.getCenter().toArray()")
    assert center == pytest.approx([lon, lat], abs=1e-4)
    assert other.input_value("#filter-category") == "plantation"
    visibility = other.evaluate(
        "['nurseries', 'care-damage', 'stands-fill'].map("
        "id => smarttreesMap.getLayoutProperty(id, 'visibility') || 'visible')")
    assert visibility == ["none", "visible", "visible"]
    assert other.evaluate("smarttreesMap.getPaintProperty('trees', 'circle-color')[1]") == [
        "get", "condition"]
    tiles = other.evaluate("smarttreesMap.getSource('trees').tiles[0]")
    assert tiles.endswith("?category=plantation")
    assert other.inner_text("label[for=filter-category]") == "Loại cây"  # its own language
    assert page.errors == [] and other.errors == []
