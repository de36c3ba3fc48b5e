"""Tree checks in the field app (/field/) on a phone-sized headless Chromium: a tree's tag looked
up, a check with photos recorded offline, kept through a reload, sent once the signal is back
(photos first, then the inspection naming them); the web map links to the app."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from PIL import Image

from barcodes.codes import make_code
from barcodes.tags import issue_tags
from smarttrees import accounts, teams
from smarttrees.database import connect
from tests.fixtures.browser import SCREENSHOTS, needs_chromium
from tests.test_field_browser import controlled, look_up, open_app, phone, sign_in

STATIC = Path(__file__).parents[1] / "gis_api" / "static"
pytestmark = [pytest.mark.browser, needs_chromium]
GPS = {1: "N", 2: (21.0, 35.0, 24.0), 3: "E", 4: (105.0, 50.0, 6.0)}


def jpeg(colour: tuple[int, int, int], gps: dict[int, Any] | None = None) -> bytes:
    out = io.BytesIO()
    exif = Image.Exif()
    if gps:
        exif[0x8825] = gps
    Image.new("RGB", (120, 90), colour).save(out, format="JPEG", exif=exif)
    return out.getvalue()


def a_tree(url: str) -> tuple[int, str, tuple[float, float]]:
    with psycopg.connect(url) as conn:
        tree_id, code, lon, lat = conn.execute(
            "SELECT id, tree_code, ST_X(geom), ST_Y(geom) FROM smarttrees.trees "
            "WHERE condition <> 'removed' ORDER BY id LIMIT 1").fetchone()
    return tree_id, code, (lon, lat)


def checks(page: Any) -> list[dict[str, Any]]:
    return page.evaluate(  # type: ignore[no-any-return]
        "smarttreesField.checksAll().then(cs => cs.map(c => ({state: c.state, photos: c.photos.length,"
        " inspection: c.inspection, problem: c.problem})))")


def test_a_tree_check_with_photos_recorded_offline_reaches_the_database_once(
    browser: Any, live_server: str, province_url: str, field_token: str
) -> None:
    tree_id, tree_code, where = a_tree(province_url)
    with connect(province_url) as conn:
        (tag,) = issue_tags(conn, "tree", [tree_id]).values()
    context, page, errors = phone(browser, where)
    open_app(page, live_server)
    sign_in(page, field_token)
    controlled(page)
    look_up(page, tag)  # with signal: the tree is kept on the phone

    context.set_offline(True)
    page.click('#event-types button[data-event="tree_check"]')
    page.select_option("#f-condition", "poor")
    page.fill("#f-dbh_cm", "900")  # above the server's 500 cm: refused on the phone
    page.select_option("#f-likelihood_failure", "probable")
    page.select_option("#f-likelihood_impact", "high")
    page.click("#record")
    assert "500" in page.inner_text("#f-dbh_cm-problem")
    assert "Cần điền" in page.inner_text("#f-consequences-problem")  # "required"
    assert checks(page) == []

    page.fill("#f-dbh_cm", "42.5")
    page.fill("#f-height_m", "11")
    page.select_option("#f-consequences", "significant")
    page.check('#f-defects input[value="decay"]')
    page.fill("#f-note", "Thân mục ở gốc")
    page.set_input_files("#f-photos", [
        {"name": "a.jpg", "mimeType": "image/jpeg", "buffer": jpeg((30, 110, 40), GPS)},
        {"name": "b.jpg", "mimeType": "image/jpeg", "buffer": jpeg((150, 90, 20))},
    ])
    page.screenshot(path=str(SCREENSHOTS / "smarttrees-field-tree-check.png"))
    page.click("#record")
    page.locator("#message.info").wait_for()
    queued = checks(page)
    assert [(c["state"], c["photos"]) for c in queued] == [("pending", 2)]
    assert queued[0]["inspection"]["tree_code"] == tree_code

    page.reload()  # offline: the service worker serves the app, IndexedDB kept check and photos
    page.wait_for_function("window.smarttreesField && window.smarttreesField.ready")
    assert page.inner_text("#queue-count") == "1"
    assert "2 ảnh" in page.inner_text("#queue-list")  # "2 photos"

    context.set_offline(False)
    page.evaluate("smarttreesField.sync()")
    page.wait_for_function("smarttreesField.checksAll().then(c => c.length === 0)"
                           " && document.querySelector('#queue-count').textContent === '0'",
                           timeout=60_000)
    page.evaluate("smarttreesField.sync()")  # nothing left to send twice
    with psycopg.connect(province_url) as conn:
        rows = conn.execute(
            "SELECT condition, dbh_cm, height_m, defects, photos, note FROM "
            "smarttrees.care_inspections WHERE client_event_id = %s",
            [queued[0]["inspection"]["client_event_id"]]).fetchall()
        tree = conn.execute("SELECT condition, dbh_cm FROM smarttrees.trees WHERE id = %s",
                            [tree_id]).fetchone()
        assert len(rows) == 1
        photos = conn.execute(
            "SELECT gps_lat IS NOT NULL, uploaded_by FROM restricted.photos "
            "WHERE id = ANY(%s::uuid[]) ORDER BY gps_lat IS NOT NULL", [rows[0][4]]).fetchall()
    condition, dbh, height, defects, photo_ids, note = rows[0]
    assert (condition, float(dbh), float(height), list(defects), note) == (
        "poor", 42.5, 11.0, ["decay"], "Thân mục ở gốc")
    assert len(photo_ids) == 2 and photos == [(False, "test-field"), (True, "test-field")]
    assert (tree[0], float(tree[1])) == ("poor", 42.5)  # written to the tree and its history

    # The web map's popup shows the check, what was found but not who found it or the note.
    page.evaluate("SmartTreesI18n.keep('en')")  # picked here, kept for every page: in English
    page.goto(f"{live_server}/map")
    page.fill("#search-code", tree_code)
    page.click("#search button")
    shown = page.locator(".tree-popup .checks li").first
    shown.wait_for(timeout=60_000)
    text = shown.inner_text()
    assert "poor" in text and "DBH 42.5 cm" in text and "decay" in text and "2 photos" in text
    popup = page.inner_text(".tree-popup")
    assert "Thân mục" not in popup and "test-field" not in popup
    assert "dbh_cm" in page.inner_text(".tree-popup .history")  # the tree's own history
    page.screenshot(path=str(SCREENSHOTS / "smarttrees-map-popup-checks.png"))
    assert errors == []
    context.close()


def test_the_web_map_links_to_the_field_app(browser: Any, live_server: str) -> None:
    context, page, errors = phone(browser, (105.8, 21.6))
    page.goto(f"{live_server}/map")
    page.click("#field-link")
    page.wait_for_function("window.smarttreesField && window.smarttreesField.ready")
    assert page.url.endswith("/field/")
    assert errors == []
    context.close()


def test_storm_damage_recorded_offline_reaches_the_database_once(
    browser: Any, live_server: str, province_url: str, field_token: str
) -> None:
    import httpx

    from tests.fixtures.server import make_token

    editor = {"Authorization": f"Bearer {make_token(province_url, 'editor')}"}
    storm = httpx.post(f"{live_server}/api/care/storms", headers=editor,
                       json={"name": "Yagi", "started_on": "2024-09-07"})
    assert storm.status_code == 201, storm.text
    _, tree_code, where = a_tree(province_url)
    context, page, errors = phone(browser, where)
    open_app(page, live_server)
    sign_in(page, field_token)
    controlled(page)
    device = page.evaluate("smarttreesField.deviceId()")
    page.click("#damage-btn")  # with signal: the storms are kept on the phone
    page.locator('#d-storm option', has_text="Yagi").wait_for(state="attached")

    context.set_offline(True)
    page.click("#d-record")  # no kind chosen: said on the phone, nothing queued
    assert "Cần điền" in page.inner_text("#d-kind-problem")
    assert checks(page) == []
    page.check('#d-kind input[value="fallen"]')
    page.check("#d-road")
    page.fill("#d-tree", tree_code + "9")  # mistyped: no tree has it, which only the server knows
    page.screenshot(path=str(SCREENSHOTS / "smarttrees-field-damage.png"))
    page.click("#d-record")
    page.locator("#message.info").wait_for()
    assert [c["state"] for c in checks(page)] == ["pending"]
    page.reload()  # offline: kept through a reload
    page.wait_for_function("window.smarttreesField && window.smarttreesField.ready")
    assert page.inner_text("#queue-count") == "1"

    context.set_offline(False)
    page.evaluate("smarttreesField.sync()")
    refused = page.locator("#queue-list li.conflict.check")
    refused.wait_for(timeout=60_000)
    assert tree_code + "9" in refused.locator(".problem").inner_text()  # the server's message
    refused.locator("button.edit").click()  # corrected and sent again, where it was seen
    assert page.is_checked('#d-kind input[value="fallen"]') and page.is_checked("#d-road")
    assert page.input_value("#d-tree") == tree_code + "9"
    page.fill("#d-tree", tree_code)
    page.click("#d-record")
    page.wait_for_function("document.querySelector('#queue-count').textContent === '0'",
                           timeout=60_000)
    page.evaluate("smarttreesField.sync()")
    with psycopg.connect(province_url) as conn:
        rows = conn.execute(
            "SELECT d.damage, d.blocks_road, d.hazard_to_people, t.tree_code, d.storm_id "
            "FROM smarttrees.care_damage d LEFT JOIN smarttrees.trees t ON t.id = d.tree_id "
            "WHERE d.device_id = %s", [device]).fetchall()
    assert rows == [("fallen", True, False, tree_code, storm.json()["id"])]
    assert errors == []
    context.close()


MAP_READY = "smarttreesField.area.map && smarttreesField.area.map.loaded()"
TREES_DRAWN = (
    "smarttreesField.area.map.loaded()"
    " && smarttreesField.area.map.queryRenderedFeatures({layers: ['trees']}).length > 0"
)


def test_the_team_area_map_and_items_kept_offline_a_tapped_tree_checked_and_a_refused_check_corrected(
    browser: Any, live_server: str, province_url: str
) -> None:
    _, _, where = a_tree(province_url)
    # A team working around the tree, with a log issued to it that this phone never looked up.
    with connect(province_url) as conn:
        accounts.create_user(conn, "test-field-team", "field")
        team_token = accounts.issue_token(conn, "test-field-team")
        area = (where[0] - 0.003, where[1] - 0.003, where[0] + 0.003, where[1] + 0.003)
        teams.create_team(conn, "around-the-tree", area)
        teams.add_members(conn, "around-the-tree", ["test-field-team"])
        (log,) = conn.execute("SELECT id FROM smarttrees.timber_logs WHERE status = 'felled' "
                              "ORDER BY id DESC LIMIT 1").fetchone()
        (log_code,) = issue_tags(conn, "timber_log", [log]).values()
        # More items than a page of GET /field/team: the phone follows the pages to the last.
        trees = [r[0] for r in conn.execute(
            "SELECT id FROM smarttrees.trees ORDER BY id DESC LIMIT 2500").fetchall()]
        tree_codes = list(issue_tags(conn, "tree", trees).values())
        teams.issue(conn, "around-the-tree", [log_code, *tree_codes])
    context, page, errors = phone(browser, where)
    open_app(page, live_server)
    sign_in(page, team_token)
    controlled(page)
    issued = 1 + len(tree_codes)
    page.locator("#team", has_text=f"around-the-tree: {issued} ").wait_for(timeout=60_000)
    kept = page.evaluate(
        "new Promise(ok => { const r = indexedDB.open('smarttrees-field');"
        " r.onsuccess = () => { const c = r.result.transaction('items').objectStore('items')"
        ".getAllKeys(); c.onsuccess = () => ok(c.result); }; })")
    assert sorted(kept) == sorted([log_code, *tree_codes])  # every item, each once
    page.click("#area-btn")
    page.wait_for_function(MAP_READY, timeout=60_000)

    # Too large an area (the province): refused before any download, saying what to change.
    page.evaluate(f"smarttreesField.area.map.jumpTo({{center: {list(where)}, zoom: 6}})")
    page.select_option("#area-minzoom", "8")
    page.click("#area-plan")
    page.locator("#area-status.bad", has_text="lower maxzoom").wait_for()
    assert page.is_hidden("#area-download")

    # The team's area, zooms 14-16: its count and size shown, then downloaded.
    page.evaluate(f"smarttreesField.area.map.jumpTo({{center: {list(where)}, zoom: 16}})")
    page.select_option("#area-extent", "team")
    page.select_option("#area-minzoom", "14")
    page.click("#area-plan")
    page.locator("#area-status.ok").wait_for()
    plan = page.evaluate("smarttreesField.area.plan")
    assert plan["bbox"] == pytest.approx(list(area), abs=1e-5)
    assert plan["tiles"] > 0 and f"{plan['tiles']} ô bản đồ, khoảng" in page.inner_text(
        "#area-status")  # "N map tiles, about … KB"
    page.click("#area-download")
    page.locator("#area-saved", has_text=f"{plan['tiles']} ô").wait_for(timeout=60_000)
    kept = page.evaluate(
        "caches.open('smarttrees-field-tiles').then(c => c.keys()).then(k => k.length)")
    assert kept == plan["tiles"]
    page.screenshot(path=str(SCREENSHOTS / "smarttrees-field-area-map.png"))

    context.set_offline(True)
    page.reload()  # no signal: the app from the service worker, the tiles from the phone
    page.wait_for_function("window.smarttreesField && window.smarttreesField.ready")
    page.click("#area-btn")
    page.wait_for_function(MAP_READY, timeout=60_000)
    page.evaluate(f"smarttreesField.area.map.jumpTo({{center: {list(where)}, zoom: 16}})")
    page.wait_for_function(TREES_DRAWN, timeout=60_000)
    look_up(page, log_code)  # issued to the team: known offline, with what may happen next
    assert page.inner_text("#item-summary") == "Bản lưu trên máy (không có mạng)"
    offered = page.eval_on_selector_all("#event-types button", "bs => bs.map(b => b.dataset.event)")
    assert "at_landing" in offered and "loaded" not in offered  # a felled log

    # Tapping a tree opens its tree check, recorded offline for that tree.
    tapped = page.evaluate(
        f"(() => {{ const m = smarttreesField.area.map; const p = m.project({list(where)});"
        " const f = m.queryRenderedFeatures(p, {layers: ['trees']})[0];"
        " const box = m.getCanvas().getBoundingClientRect();"
        " return {x: box.left + p.x, y: box.top + p.y, id: f.id, tree_code: f.properties.tree_code};"
        " })()"
    )
    page.mouse.click(tapped["x"], tapped["y"])
    page.locator("#f-likelihood_failure").wait_for()
    offered = page.eval_on_selector_all("#event-types button", "bs => bs.map(b => b.dataset.event)")
    assert offered == ["tree_check"]
    for field, value in (("likelihood_failure", "possible"), ("likelihood_impact", "low"),
                         ("consequences", "minor")):
        page.select_option(f"#f-{field}", value)
    page.click("#record")
    page.locator("#message.info").wait_for()
    assert [c["inspection"]["tree_code"] for c in checks(page)] == [tapped["tree_code"]]
    assert page.inner_text("#item-code") == make_code("tree", tapped["id"])

    # The server refuses it by a rule this phone did not apply (as an older app would not):
    # the refusal stays, through a reload, until the check is corrected and sent again.
    page.evaluate("smarttreesField.checksAll().then(([c]) => smarttreesField.checksPut("
                  "[{...c, inspection: {...c.inspection, dbh_cm: 900}}]))")
    context.set_offline(False)
    page.evaluate("smarttreesField.sync()")
    refused = page.locator("#queue-list li.conflict.check")
    refused.wait_for(timeout=60_000)
    shown = refused.locator(".problem").inner_text()
    assert "dbh_cm" in shown and "500" in shown  # the server's message
    vi = orjson.loads((STATIC / "i18n" / "vi.json").read_bytes())
    assert shown.startswith(f"{vi['fieldapp.rule_invalid_inspection']} (invalid_inspection): ")
    page.reload()
    page.wait_for_function("window.smarttreesField && window.smarttreesField.ready")
    refused.locator("button.edit").click()
    page.locator("#f-dbh_cm").wait_for()
    assert page.input_value("#f-dbh_cm") == "900"
    assert page.input_value("#f-consequences") == "minor"  # what it held, to correct
    page.fill("#f-dbh_cm", "42")
    page.click("#record")
    page.wait_for_function("smarttreesField.checksAll().then(c => c.length === 0)"
                           " && document.querySelector('#queue-count').textContent === '0'",
                           timeout=60_000)
    device = page.evaluate("smarttreesField.deviceId()")
    with psycopg.connect(province_url) as conn:
        stored = conn.execute(
            "SELECT t.tree_code, i.dbh_cm, i.consequences FROM smarttrees.care_inspections i "
            "JOIN smarttrees.trees t ON t.id = i.tree_id WHERE i.device_id = %s", [device]
        ).fetchall()
    assert [(c, float(d), q) for c, d, q in stored] == [(tapped["tree_code"], 42.0, "minor")]
    assert errors == []
    context.close()
