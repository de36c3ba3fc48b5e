"""The field app (/field/) on a phone-sized headless Chromium against the real server and PostGIS.

A wrong check character is refused as it is typed; events recorded with the network cut reach
the database exactly once after reconnecting, through a reload and an upload whose answer is
lost; an event another phone got in first comes back as a conflict that stays until dropped.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from barcodes.codes import PREFIXES, check_character, make_code
from barcodes.gs1 import GS, element_string
from barcodes.labels import render_label
from barcodes.tags import issue_tags, label_infos
from smarttrees.database import connect
from tests.fixtures.browser import ARGS, CHROMIUM, SCREENSHOTS, needs_chromium

pytestmark = [pytest.mark.browser, needs_chromium]
PHONE = {"width": 390, "height": 844}


def phone(
    browser: Any, where: tuple[float, float], locale: str = "vi-VN"
) -> tuple[Any, Any, list[str]]:
    """A phone-sized page with a GPS fix at ``where`` (lon, lat), set to ``locale``; also its
    page errors."""
    context = browser.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        locale=locale,
        geolocation={"longitude": where[0], "latitude": where[1]},
        permissions=["geolocation"],
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return context, page, errors


def open_app(page: Any, server: str) -> None:
    page.goto(f"{server}/field")
    page.wait_for_function("window.smarttreesField && window.smarttreesField.ready")


def sign_in(page: Any, token: str) -> None:
    page.fill("#token", token)
    page.click("#signin-btn")
    page.locator("#code").wait_for()


def controlled(page: Any) -> None:
    """Wait until the service worker controls the page (the app then opens offline).

    The worker claims the open page once it is active (``clients.claim`` in sw.js), so no
    reload is needed; reloading while it installs (its shell is a few MB) only restarts the
    page, and a reload still in flight could leave the next step on a page being replaced.
    """
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    page.wait_for_function("window.smarttreesField && window.smarttreesField.ready")


def look_up(page: Any, code: str) -> None:
    page.fill("#code", "")
    page.type("#code", code.lower().replace("-", " "))  # as typed: lower case, spaces
    page.click("#lookup")
    page.locator("#item-code", has_text=code).wait_for()


def record(page: Any, event: str, **fields: str) -> None:
    page.click(f'#event-types button[data-event="{event}"]')
    for name, value in fields.items():
        field = page.locator(f"#f-{name}")
        if field.evaluate("e => e.tagName") == "SELECT":  # reference data kept on the phone
            field.select_option(value)
        else:
            field.fill(value)
    page.click("#record")
    page.locator("#message.info").wait_for()


def queue(page: Any) -> list[dict[str, Any]]:
    return page.evaluate("smarttreesField.queueAll()")  # type: ignore[no-any-return]


def test_codes_are_checked_as_typed_with_the_servers_rules(
    browser: Any, live_server: str, field_token: str
) -> None:
    context, page, errors = phone(browser, (105.8, 21.6), locale="fr-FR")
    open_app(page, live_server)
    assert page.evaluate("document.documentElement.lang") == "vi"  # no French: Vietnamese
    page.screenshot(path=str(SCREENSHOTS / "smarttrees-field-signin.png"))
    sign_in(page, field_token)

    # The page's MOD 37-36 agrees with barcodes.codes on many codes of every type.
    rng = random.Random(16)
    bodies = [p + f"{rng.randrange(10**9):08d}" for p in PREFIXES.values() for _ in range(500)]
    ours = page.evaluate(
        "bodies => bodies.map(b => smarttreesField.checkCharacter(b, '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ'))",
        bodies,
    )
    assert ours == [check_character(b) for b in bodies]

    good = make_code("timber_log", 4242)
    wrong = good[:-1] + ("A" if good[-1] != "A" else "B")
    page.type("#code", wrong)
    assert "ký tự kiểm tra" in page.inner_text("#code-status")  # "wrong check character"
    assert page.is_disabled("#lookup")
    assert page.get_attribute("#code", "aria-invalid") == "true"
    page.screenshot(path=str(SCREENSHOTS / "smarttrees-field-wrong-check.png"))
    page.fill("#code", "")
    page.type("#code", good.lower())
    assert page.inner_text("#code-status").startswith("✓")
    assert page.is_enabled("#lookup")

    page.click("#lang")  # English on request
    page.locator("#code-status", has_text="✓ Valid code").wait_for()

    # Scanned symbols: GS1-128 (bracketed and raw with group separators) and a tree tag's URL.
    fields = element_string("8934567", "seedling_lot", make_code("seedling_lot", 42))
    raw = fields.barcode_data().replace("\xf1", GS)
    for text in (fields.human_readable(), raw):
        assert page.evaluate("t => smarttreesField.codeFromSymbol(t)", text) == make_code(
            "seedling_lot", 42
        )
    url = f"{live_server}/collections/trees/items/77"
    assert page.evaluate("t => smarttreesField.codeFromSymbol(t)", url) == make_code("tree", 77)
    page.fill("#code", "")
    page.type("#code", good)  # well formed, but no tag has been issued with it
    page.click("#lookup")
    page.locator("#message", has_text="No tag has this code").wait_for()
    assert page.is_hidden("#item")
    assert queue(page) == []
    assert errors == []
    context.close()


def logs_at_one_stand(url: str) -> tuple[list[int], tuple[float, float], int, str]:
    """Two felled logs of a stand whose allowance covers them, a point in it, a ready lot and
    a commune."""
    with psycopg.connect(url) as conn:
        stand, lon, lat = conn.execute(
            "SELECT s.id, ST_X(ST_PointOnSurface(s.geom)), ST_Y(ST_PointOnSurface(s.geom)) "
            "FROM smarttrees.stands s JOIN smarttrees.timber_logs g ON g.stand_id = s.id "
            "WHERE g.status = 'felled' GROUP BY s.id HAVING count(*) >= 2 ORDER BY s.id LIMIT 1"
        ).fetchone()
        logs = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM smarttrees.timber_logs WHERE stand_id = %s AND status = 'felled' "
                "ORDER BY id LIMIT 2",
                [stand],
            )
        ]
        conn.execute(  # room for both logs, so only the custody order can refuse them
            "UPDATE smarttrees.stands SET harvest_allowed_m3 = 1e6 WHERE id = %s", [stand]
        )
        lot = conn.execute(
            "SELECT id FROM smarttrees.seedling_lots WHERE status = 'ready' ORDER BY id LIMIT 1"
        ).fetchone()[0]
        commune = conn.execute("SELECT min(code) FROM smarttrees.communes").fetchone()[0]
    return logs, (lon, lat), lot, commune


def lot_left(url: str, lot: int) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT quantity - quantity_dispatched FROM smarttrees.seedling_lots "
                           "WHERE id = %s", [lot]).fetchone()
    return int(row[0])


def stored(url: str, device: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT t.code, e.event_type, e.client_event_id FROM smarttrees.scan_events e "
            "JOIN smarttrees.tags t ON t.item_type = e.item_type AND t.item_id = e.item_id "
            "WHERE e.device_id = %s ORDER BY t.code",
            [device],
        ).fetchall()


def test_offline_events_reach_the_database_once_and_conflicts_stay_visible(
    browser: Any, live_server: str, province_url: str, field_token: str
) -> None:
    logs, where, lot, commune = logs_at_one_stand(province_url)
    with connect(province_url) as conn:
        log_a, log_b = issue_tags(conn, "timber_log", logs).values()
        (lot_code,) = issue_tags(conn, "seedling_lot", [lot]).values()
    context, page, errors = phone(browser, where)
    open_app(page, live_server)
    sign_in(page, field_token)
    controlled(page)
    device = page.evaluate("smarttreesField.deviceId()")

    for code in (log_b, lot_code, log_a):  # looked up with signal: kept on the phone
        look_up(page, code)
    offered = page.eval_on_selector_all("#event-types button", "bs => bs.map(b => b.dataset.event)")
    assert "at_landing" in offered and "loaded" not in offered  # a felled log
    page.locator("#item-map canvas").wait_for()  # where it has been: its stand, on a map
    page.screenshot(path=str(SCREENSHOTS / "smarttrees-field-item.png"))

    context.set_offline(True)
    record(page, "at_landing")
    offered = page.eval_on_selector_all("#event-types button", "bs => bs.map(b => b.dataset.event)")
    assert "loaded" in offered and "at_landing" not in offered  # the queued event moved it on
    look_up(page, lot_code)
    page.click('#event-types button[data-event="dispatched"]')
    assert page.locator(f'#f-to_commune option[value="{commune}"]').count() == 1  # kept offline
    with psycopg.connect(province_url) as conn:
        (stand_code,) = conn.execute(
            "SELECT stand_code FROM smarttrees.stands "
            "WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) LIMIT 1", where
        ).fetchone()
    assert page.locator(f'#f-to_stand option[value="{stand_code}"]').count() == 1  # around here
    # More than the lot holds: refused on the phone by the server's own rule, nothing queued.
    page.fill("#f-quantity", "9999999")
    page.select_option("#f-to_commune", commune)
    page.click("#record")
    page.locator("#f-quantity-problem", has_text="(lot_quantity): ").wait_for()
    assert len(queue(page)) == 1
    left = lot_left(province_url, lot)
    record(page, "dispatched", quantity=str(left), to_commune=commune)  # all that is left
    look_up(page, log_b)
    record(page, "at_landing")
    assert [r["state"] for r in queue(page)] == ["pending"] * 3
    assert stored(province_url, device) == []

    page.reload()  # offline: the service worker serves the app, IndexedDB kept the queue
    page.wait_for_function("window.smarttreesField && window.smarttreesField.ready")
    assert page.inner_text("#queue-count") == "3"
    page.screenshot(path=str(SCREENSHOTS / "smarttrees-field-queue.png"))
    # ... and its words, from the catalogues the map uses, in either language.
    catalogues = {c: httpx.get(f"{live_server}/field/static/i18n/{c}.json").json() for c in ("vi", "en")}
    heading = page.locator("#queue h2 [data-i18n]")
    assert heading.inner_text() == catalogues["vi"]["fieldapp.queue_title"]
    page.click("#lang")
    page.wait_for_function("document.documentElement.lang === 'en'")
    assert heading.inner_text() == catalogues["en"]["fieldapp.queue_title"]
    assert page.inner_text("#net") == catalogues["en"]["fieldapp.offline"]
    page.click("#lang")  # back to Vietnamese, which the rest of the test reads
    page.wait_for_function("document.documentElement.lang === 'vi'")

    # Meanwhile another phone brings log B to the landing first.
    other = {
        "device_id": "phone-other",
        "client_event_id": "other-1",
        "code": log_b,
        "event_type": "at_landing",
        "occurred_at": "2026-01-01T00:00:00Z",
        "location": {"type": "Point", "coordinates": list(where)},
    }
    answer = httpx.post(
        f"{live_server}/api/scans", json=other, headers={"Authorization": f"Bearer {field_token}"}
    )
    assert answer.status_code == 200, answer.text
    # ... and dispatches one seedling of the lot: the phone's dispatch is now one too many.
    part = {**other, "client_event_id": "other-2", "code": lot_code, "event_type": "dispatched",
            "quantity": 1, "to_commune": commune}
    answer = httpx.post(
        f"{live_server}/api/scans", json=part, headers={"Authorization": f"Bearer {field_token}"}
    )
    assert answer.status_code == 200, answer.text

    # An upload cut after the server stored it: the server has the phone's first event, the
    # phone never heard so (a page served by a service worker cannot be routed by Playwright,
    # so the upload is made here with the phone's own queued event).
    first = queue(page)[0]["event"]
    assert first["code"] == log_a
    answer = httpx.post(
        f"{live_server}/api/scans",
        json={"events": [first]},
        headers={"Authorization": f"Bearer {field_token}"},
    )
    assert answer.status_code == 200, answer.text

    context.set_offline(False)
    page.evaluate("smarttreesField.sync()")
    page.wait_for_function(
        "document.querySelectorAll('#queue-list li.conflict').length === 2"
        " && document.querySelectorAll('#queue-list li').length === 2",
        timeout=60_000,
    )
    assert stored(province_url, device) == [(log_a, "at_landing", first["client_event_id"])]
    refused = {r["event"]["code"]: r["problem"]["rule"] for r in queue(page)}
    assert refused == {lot_code: "lot_quantity", log_b: "transition"}
    shown = page.inner_text("#queue-list")
    assert "lot_quantity" in shown and f"{log_b} is at_landing" in shown
    page.screenshot(path=str(SCREENSHOTS / "smarttrees-field-conflict.png"))

    page.reload()  # conflicts stay until the user decides: drop one, edit and resend the other
    page.wait_for_function("window.smarttreesField && window.smarttreesField.ready")
    page.locator(
        f'#queue-list li.conflict[data-id="{refused_id(page, lot_code)}"] button.drop'
    ).click()
    page.locator(
        f'#queue-list li.conflict[data-id="{refused_id(page, log_b)}"] button.edit'
    ).click()
    page.locator("#item-code", has_text=log_b).wait_for()
    offered = page.eval_on_selector_all("#event-types button", "bs => bs.map(b => b.dataset.event)")
    assert "loaded" in offered and "at_landing" not in offered  # the server's state now
    record(page, "loaded", fpl_number="BK-TN-2026-16")
    page.wait_for_function("document.getElementById('queue-count').textContent === '0'")
    events = stored(province_url, device)
    assert sorted((c, e) for c, e, _ in events) == [(log_a, "at_landing"), (log_b, "loaded")]
    assert len({i for _, _, i in events}) == 2  # nothing sent twice
    assert errors == []
    context.close()


def refused_id(page: Any, code: str) -> str:
    (found,) = [r["client_event_id"] for r in queue(page) if r["event"]["code"] == code]
    return str(found)


def write_y4m(png: bytes, path: Path, size: tuple[int, int] = (1280, 720)) -> None:
    """A one-frame Y4M video (Chromium's fake camera loops it) of ``png`` centred on white."""
    from PIL import Image

    label = Image.open(io.BytesIO(png)).convert("L")
    label.thumbnail((size[0] - 80, size[1] - 80))
    frame = Image.new("L", size, 255)
    frame.paste(label, ((size[0] - label.width) // 2, (size[1] - label.height) // 2))
    chroma = bytes([128]) * (size[0] // 2 * size[1] // 2)  # grey: no colour
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{size[0]} H{size[1]} F10:1 Ip A1:1 C420jpeg\n".encode())
        out.write(b"FRAME\n" + frame.tobytes() + chroma + chroma)


def test_a_label_shown_to_the_camera_is_decoded_and_looked_up(
    playwright: Any, live_server: str, province_url: str, field_token: str, tmp_path: Path
) -> None:
    with connect(province_url) as conn:
        log = conn.execute(
            "SELECT id FROM smarttrees.timber_logs WHERE status = 'felled' ORDER BY id LIMIT 1"
        ).fetchone()[0]
        (code,) = issue_tags(conn, "timber_log", [log]).values()
        (info,) = label_infos(conn, [code])
    video = tmp_path / "label.y4m"
    write_y4m(render_label(info, "png", gs1_company_prefix="8934567"), video)  # GS1-128
    camera = [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]
    # A browser of its own: the fake camera is a launch flag, playing this test's video.
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS + camera)
    try:
        context, page, errors = phone(browser, (105.8, 21.6))
        context.grant_permissions(["camera"])
        open_app(page, live_server)
        sign_in(page, field_token)
        page.click("#camera-btn")
        page.locator("#item-code", has_text=code).wait_for(timeout=60_000)
        assert page.input_value("#code") == code
        assert "at_landing" in page.eval_on_selector_all(
            "#event-types button", "bs => bs.map(b => b.dataset.event)"
        )
        assert page.is_hidden("#camera")  # stopped once the code was read

        context.clear_permissions()  # no GPS fix: said so, and nothing queued
        page.click('#event-types button[data-event="at_landing"]')
        page.click("#record")
        page.locator("#message", has_text="GPS").wait_for(timeout=30_000)
        assert queue(page) == []
        assert errors == []
    finally:
        browser.close()


def test_an_upload_cut_after_the_server_stored_it_is_resent_and_recorded_once(
    browser: Any, live_server: str, province_url: str, field_token: str
) -> None:
    logs, where, _, _ = logs_at_one_stand(province_url)
    with connect(province_url) as conn:
        (code,) = issue_tags(conn, "timber_log", logs[:1]).values()
    # Without the service worker, so that Playwright can cut the real upload.
    context = browser.new_context(
        viewport=PHONE,
        service_workers="block",
        geolocation={"longitude": where[0], "latitude": where[1]},
        permissions=["geolocation"],
    )
    page = context.new_page()
    uploads: list[int] = []

    def cut_first_answer(route: Any) -> None:
        if route.request.method != "POST":
            return route.continue_()
        response = route.fetch()  # the server takes the batch…
        uploads.append(response.status)
        if len(uploads) == 1:
            return route.abort("connectionreset")  # …and the phone never hears so
        return route.fulfill(response=response)

    page.route("**/api/scans", cut_first_answer)
    open_app(page, live_server)
    sign_in(page, field_token)
    device = page.evaluate("smarttreesField.deviceId()")
    look_up(page, code)
    record(page, "at_landing")
    page.wait_for_function(
        "document.getElementById('queue-count').textContent === '0'", timeout=60_000
    )
    assert uploads[:2] == [200, 200]  # sent again after the cut (and answered as before)
    assert [(c, e) for c, e, _ in stored(province_url, device)] == [(code, "at_landing")]
    context.close()
