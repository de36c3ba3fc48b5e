"""The field app's server side: the rules it checks with, its manifest and icons, the sign-in."""

from __future__ import annotations

import io
import re
from importlib import resources

import httpx
import orjson
from PIL import Image

from barcodes import custody
from barcodes.codes import make_code, parse
from barcodes.custody import MACHINES
from barcodes.rules import rules_document
from gis_api.errors import RULE_STATUS

# The rules the tree-care routes the phone sends to (inspections, storm damage, photos) refuse by.
PHONE_CARE_RULES = ("unknown_tree", "tree_removed", "invalid_inspection", "invalid_rating",
                    "invalid_damage", "invalid_storm", "unknown_storm", "unknown_photo",
                    "photo_too_large", "bad_image")


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


def test_every_message_the_app_shows_is_in_every_catalogue() -> None:
    """The app's texts are the catalogues' ``fieldapp.*`` keys: the ones written in its page and
    script, and the ones it names from the rules (events, states, fields, choices)."""
    from gis_api.field import care_document

    static = resources.files("gis_api").joinpath("static")
    script = static.joinpath("field/app.js").read_text(encoding="utf-8")
    page = static.joinpath("field/index.html").read_text(encoding="utf-8")
    assert "const TEXT" not in script  # no second catalogue in the script

    keys = set(re.findall(r'\bt\("([a-z0-9_]+)"', script))
    keys |= set(re.findall(r'"(code_[a-z]+)"', script))  # the code check's reasons
    used = set(re.findall(r'data-i18n="([^"]+)"', page))
    used |= {pair.split(":")[1] for pair in re.findall(r'data-i18n-attr="([^"]+)"', page)}
    rules, care = rules_document(), care_document(8)
    for item_type, spec in rules["item_types"].items():
        keys.add(item_type)
        keys |= {f"ev_{name}" for name in (*spec["events"], *spec["states"])}
    for name, schema in rules["fields"].items():
        keys.add(f"f_{name}")
        keys |= set(schema.get("enum", []))
    keys |= {f"f_{name}" for name in (*care["fields"], *care["traq"], "defects", "photos")}
    keys |= set(care["fields"]["condition"]["enum"]) | set(care["damage"]["kinds"])
    keys |= {value for values in care["traq"].values() for value in values}
    keys |= {"ev_tree_check", "ev_damage", "pending", "conflict"}
    # A refusal names its rule in the page's language: every scan rule, and those of the tree
    # checks, storm damage and photos the phone sends.
    assert set(PHONE_CARE_RULES) <= set(RULE_STATUS)
    keys |= {f"rule_{rule}" for rule in (*custody.RULES, *PHONE_CARE_RULES)}
    assert len(keys) > 100
    used |= {f"fieldapp.{key}" for key in keys}

    for code in ("vi", "en"):
        messages = orjson.loads(static.joinpath(f"i18n/{code}.json").read_bytes())
        missing = sorted(used - set(messages))
        assert not missing, f"{code}.json lacks {missing}"


def test_the_offline_map_plan_counts_sizes_and_caps_an_area(
    live_server: str, province_url: str, field_token: str
) -> None:
    """The tiles a phone keeps of an area: each one a tile the map asks for, their size known
    before the download, and an area too large refused with what to change."""
    import psycopg

    from gis_api.field_tiles import SAMPLE

    auth = {"Authorization": f"Bearer {field_token}"}
    plan_url = f"{live_server}/field/tiles/plan"
    with psycopg.connect(province_url) as conn:
        lon, lat = conn.execute(
            "SELECT ST_X(geom), ST_Y(geom) FROM smarttrees.trees ORDER BY id LIMIT 1"
        ).fetchone()
        west, south, east, north = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
            "FROM (SELECT ST_Extent(geom) e FROM smarttrees.communes) x"
        ).fetchone()
    small = f"{lon - 0.002},{lat - 0.002},{lon + 0.002},{lat + 0.002}"
    query = {"bbox": small, "minzoom": "14", "maxzoom": "16"}

    assert httpx.get(plan_url, params=query).status_code == 401
    answer = httpx.get(plan_url, params=query, headers=auth)
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    assert 0 < plan["tiles"] == len(plan["urls"]) <= SAMPLE  # every tile sampled: the size exact
    sizes = []
    for url in plan["urls"]:
        tile = httpx.get(f"{live_server}/{url}")
        assert tile.status_code == 200 and tile.headers["content-type"].startswith(
            "application/vnd.mapbox-vector-tile"
        ), url
        sizes.append(len(tile.content))
    assert plan["bytes"] == sum(sizes)
    assert any("/trees/tiles/WebMercatorQuad/16/" in url for url in plan["urls"])

    whole = {"bbox": f"{west},{south},{east},{north}", "minzoom": "8", "maxzoom": "16"}
    refused = httpx.get(plan_url, params=whole, headers=auth)
    assert refused.status_code == 400
    text = refused.json()["description"]
    assert f"more than the {plan['max_tiles']}" in text and "lower maxzoom" in text
    for bad, named in (({"bbox": "1,2,3"}, "bbox"), ({**query, "minzoom": "17"}, "maxzoom")):
        answer = httpx.get(plan_url, params=bad, headers=auth)
        assert answer.status_code == 400 and named in answer.json()["description"], bad
