"""The web map's page and JSON endpoints over HTTP (the browser test drives the page itself)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import orjson
import psycopg
import pytest

from tests.fixtures.databases import copied_database
from tests.fixtures.province import PROVINCE_TEMPLATE
from tests.fixtures.server import serve_database


@pytest.fixture(scope="module")
def map_db(province_template, cluster) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A copy of the small province shared by this module."""
    with copied_database(cluster, PROVINCE_TEMPLATE, "webmap_module") as url:
        yield url


@pytest.fixture(scope="module")
def map_server(map_db: str) -> Iterator[str]:
    with serve_database(map_db) as base:
        yield base


def test_page_loads_only_our_own_scripts_and_styles(map_server: str) -> None:
    page = httpx.get(f"{map_server}/map")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    # What the page loads (scripts, styles); links to other pages (the field app) are not assets.
    assets = re.findall(r'<(?:script|link)\b[^>]*?(?:src|href)="([^"]+)"', page.text)
    links = re.findall(r'<a\b[^>]*?href="([^"]+)"', page.text)
    assert links == [f"{map_server}/field/"]
    assert assets and all(a.startswith(f"{map_server}/map/static/") for a in assets)
    assert '"basemapUrl":null' in page.text  # no basemap unless configured: works offline
    for asset in assets:
        assert httpx.get(asset).status_code == 200, asset


def test_basemap_comes_from_the_settings(map_db: str) -> None:
    url = "http://127.0.0.1:9/tiles/{z}/{x}/{y}.png"
    with serve_database(map_db, basemap_url=url) as base:
        assert url in httpx.get(f"{base}/map").text


def test_options_list_species_and_communes(map_server: str, map_db: str) -> None:
    options = httpx.get(f"{map_server}/map/options.json").json()
    with psycopg.connect(map_db) as conn:
        species = conn.execute("SELECT count(*) FROM smarttrees.species").fetchone()[0]
        communes = conn.execute("SELECT code FROM smarttrees.communes ORDER BY code").fetchall()
    assert len(options["species"]) == species
    assert sorted(c["code"] for c in options["communes"]) == [c[0] for c in communes]
    assert options["categories"] == ["urban", "scattered", "plantation"]
    west, south, east, north = options["bounds"]
    assert west < east and south < north


def test_the_filters_come_from_the_catalogue(map_server: str, map_db: str) -> None:
    from gis_api.tiles.params import TreeFilters
    from smarttrees.catalog import TREES

    options = httpx.get(f"{map_server}/map/options.json").json()
    params = [f.param for f in TREES.map_filters]
    assert [f["param"] for f in options["filters"]] == params == list(TreeFilters._fields)
    for definition in TREES.map_filters:
        assert TREES.field(definition.field) is not None, definition  # a public field
        assert options[definition.options_key], definition  # with choices to offer
    by_param = {f["param"]: f for f in options["filters"]}
    assert by_param["species"]["value"] == "id" and by_param["commune"]["bbox"] is True
    # A value outside a filter's choices is a 400 that names the parameter.
    tile = f"{map_server}/collections/trees/tiles/WebMercatorQuad/10/450/813"
    for param, bad in [("category", "forest"), ("species", "oak"), ("commune", "x1")]:
        response = httpx.get(tile, params={param: bad})
        assert response.status_code == 400, param
        assert param in response.json()["description"]
    # (What each filter keeps is checked tile by tile in tests/test_tiles.py.)


def test_every_language_has_every_message_the_pages_use(map_server: str) -> None:
    from pathlib import Path

    static = Path(__file__).parent.parent / "gis_api" / "static"
    page = httpx.get(f"{map_server}/map").text
    languages = re.search(r'"languages":(\[[^\]]*\])', page)
    assert languages is not None
    codes = {lang["code"] for lang in orjson.loads(languages.group(1))}
    assert {"vi", "en"} <= codes  # the files found, each with its own name
    catalogues = {c: httpx.get(f"{map_server}/map/static/i18n/{c}.json").json() for c in codes}
    used = set(re.findall(r'data-i18n="([^"]+)"', page))
    used |= {key for pair in re.findall(r'data-i18n-attr="([^"]+)"', page)
             for key in (p.split(":")[1] for p in pair.split(";"))}
    used |= set(re.findall(r'\bt\("([a-z_.]+)"', (static / "map.js").read_text()))
    assert len(used) > 40
    for code, messages in catalogues.items():
        assert used - set(messages) == set(), code
        assert set(messages) == set(catalogues["en"]), code


def test_search_finds_a_tree_by_code_in_any_case(map_server: str, map_db: str) -> None:
    with psycopg.connect(map_db) as conn:
        tree_id, code, lon, lat = conn.execute(
            "SELECT id, tree_code, ST_X(geom), ST_Y(geom) FROM smarttrees.trees ORDER BY id DESC LIMIT 1"
        ).fetchone()
    found = httpx.get(f"{map_server}/map/search.json", params={"code": f" {code.lower()} "}).json()
    assert (found["id"], found["tree_code"]) == (tree_id, code)
    assert (found["lon"], found["lat"]) == pytest.approx((lon, lat))

    missing = httpx.get(f"{map_server}/map/search.json", params={"code": "90001-U999999"})
    assert missing.status_code == 404
    assert "90001-U999999" in missing.json()["description"]
    assert httpx.get(f"{map_server}/map/search.json").status_code == 400


def test_history_lists_changes_without_who_made_them(map_server: str, map_db: str) -> None:
    with psycopg.connect(map_db) as conn:
        tree_id, old = conn.execute(
            "SELECT id, condition FROM smarttrees.trees ORDER BY id LIMIT 1"
        ).fetchone()
        new = "fair" if old == "poor" else "poor"
        conn.execute("SELECT set_config('smarttrees.actor', 'Nguyễn Thị B', true)")
        conn.execute("UPDATE smarttrees.trees SET condition = %s WHERE id = %s", [new, tree_id])
    body = httpx.get(f"{map_server}/api/trees/{tree_id}/history").json()
    assert [h["change"] for h in body["history"]] == ["insert", "update"]
    assert body["history"][1]["changes"]["condition"] == {"old": old, "new": new}
    assert "Nguyễn" not in str(body)
    assert "actor" not in body["history"][0]


@pytest.mark.parametrize(("tree", "status"), [("0", 404), ("99999999", 404), ("abc", 404)])
def test_history_of_an_unknown_tree_is_an_ogc_error(
    map_server: str, tree: str, status: int
) -> None:
    response = httpx.get(f"{map_server}/api/trees/{tree}/history")
    assert response.status_code == status
    assert response.json()["code"] == "NotFound"  # a non-numeric id names no tree, as on items/{id}
