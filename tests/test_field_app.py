"""The field app's server side: the rules it checks with, its manifest and icons, the sign-in."""

from __future__ import annotations

import io

import httpx
from PIL import Image

from barcodes.codes import make_code, parse
from barcodes.custody import MACHINES
from barcodes.rules import rules_document


def test_rules_manifest_icons_and_sign_in(live_server: str, field_token: str) -> None:
    moved = httpx.get(f"{live_server}/field")
    assert moved.status_code == 308 and moved.headers["location"].endswith("/field/")
    page = httpx.get(f"{live_server}/field/")
    assert page.status_code == 200 and 'lang="vi"' in page.text

    rules = httpx.get(f"{live_server}/field/rules.json").json()
    assert rules == rules_document()
    log = rules["item_types"]["timber_log"]["events"]
    assert log["loaded"]["from"] == ["at_landing"] and log["loaded"]["needs"] == ["fpl_number"]
    assert set(rules["item_types"]["seedling_lot"]["events"]) == set(MACHINES["seedling_lot"])
    assert rules["fields"]["destination_kind"]["enum"] == ["mill", "yard"]
    code = make_code("seedling_lot", 42)
    assert parse(code).number == 42 and len(rules["code"]["check_alphabet"]) == 36

    manifest = httpx.get(f"{live_server}/field/manifest.webmanifest").json()
    assert manifest["lang"] == "vi" and manifest["display"] == "standalone"
    for entry in manifest["icons"]:
        icon = httpx.get(f"{live_server}/field/{entry['src']}")
        assert icon.headers["content-type"] == "image/png"
        size = Image.open(io.BytesIO(icon.content)).size
        assert f"{size[0]}x{size[1]}" == entry["sizes"]
    assert httpx.get(f"{live_server}/field/icons/100.png").status_code == 404
    worker = httpx.get(f"{live_server}/field/sw.js")
    assert worker.headers["content-type"].startswith("text/javascript")
    for name in ("static/field/app.js", "static/vendor/zxing-wasm/zxing_reader.wasm"):
        assert httpx.get(f"{live_server}/field/{name}").status_code == 200

    assert httpx.get(f"{live_server}/field/me").status_code == 401
    me = httpx.get(f"{live_server}/field/me", headers={"Authorization": f"Bearer {field_token}"})
    assert me.status_code == 200 and me.json()["role"] == "field"
