"""``smarttrees tiles export``: the vector tiles in one PMTiles archive, served and drawn.

One database for the module: two small communes, a stand and 1,500 trees (seeded random
positions, 1,000 of them in a dense block, over the server's feature cap of 400). The archive is
made by the real command and read back with the ``pmtiles`` package; each of its tiles is
compared with what the live server's three tile routes send for the same address.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mapbox_vector_tile
import psycopg
import pytest
from pmtiles.reader import MmapSource, Reader, all_tiles
from pmtiles.tile import Compression, TileType

from tests.fixtures.browser import needs_chromium
from tests.fixtures.cli import Outcome, cli_env, run_cli
from tests.fixtures.server import serve_database

TOWN = (105.84, 21.59)
AREA = (105.80, 21.55, 105.90, 21.65)  # the two communes together
CAP = "400"  # the feature cap of the server and the export alike
COLLECTIONS = ("trees", "stands", "communes")
MAX_ZOOM = 15


def _seed(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT setseed(0.17)")
        conn.execute(
            """
            INSERT INTO smarttrees.admin_units (level, code, name, valid_from, geom)
            VALUES ('commune', '05500', 'Phường Phan Đình Phùng', '2025-07-01',
                    ST_Multi(ST_MakeEnvelope(105.80, 21.55, 105.84, 21.65, 4326))),
                   ('commune', '05501', 'Xã Tân Cương', '2025-07-01',
                    ST_Multi(ST_MakeEnvelope(105.84, 21.55, 105.90, 21.65, 4326)))
            """
        )
        conn.execute(
            """
            INSERT INTO smarttrees.stands (stand_code, species_id, planting_year, area_ha,
                                           owner_type, owner_name, commune_code, geom)
            VALUES ('ST-0001', 1, 2019, 12.5, 'household', 'Nguyễn Văn A', '05501',
                    ST_Multi(ST_MakeEnvelope(105.86, 21.60, 105.87, 21.61, 4326)))
            """
        )
        conn.execute(
            """
            INSERT INTO smarttrees.trees (tree_code, category, species_id, dbh_cm, condition,
                                          commune_code, geom)
            SELECT format('TN-%%s', lpad(g::text, 6, '0')),
                   (ARRAY['urban', 'scattered', 'plantation'])[1 + g %% 3],
                   1 + g %% 5, 10 + (g %% 40),
                   (ARRAY['good', 'fair', 'poor', 'dead'])[1 + g %% 4],
                   CASE WHEN x < 105.84 THEN '05500' ELSE '05501' END,
                   ST_SetSRID(ST_MakePoint(x, y), 4326)
            FROM (
                SELECT g,
                       CASE WHEN g <= 1000 THEN %(lon)s + random() * 0.003
                            ELSE %(lon)s - 0.03 + random() * 0.06 END AS x,
                       CASE WHEN g <= 1000 THEN %(lat)s + random() * 0.003
                            ELSE %(lat)s - 0.03 + random() * 0.06 END AS y
                FROM generate_series(1, 1500) g
            ) p
            """,
            {"lon": TOWN[0], "lat": TOWN[1]},
        )
        conn.execute("ANALYZE smarttrees.trees")


@pytest.fixture(scope="module")
def seeded(module_db_url: str) -> str:
    _seed(module_db_url)
    return module_db_url


def export(url: str, out: Path, *args: str, cap: str = CAP) -> Outcome:
    env = cli_env(SMARTTREES_DATABASE_URL=url, SMARTTREES_TILE_MAX_FEATURES=cap)
    return run_cli("tiles", "export", "--out", str(out), *args, env=env)


@pytest.fixture(scope="module")
def archive(seeded: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Outcome]:
    out = tmp_path_factory.mktemp("archive") / "province.pmtiles"
    outcome = export(seeded, out, "--maxzoom", str(MAX_ZOOM))
    assert outcome.code == 0, outcome.stderr
    return out, outcome


@pytest.fixture(scope="module")
def server(seeded: str, archive: tuple[Path, Outcome]) -> Iterator[str]:
    path, _ = archive
    with serve_database(seeded, tile_max_features=CAP, tiles_archive=str(path),
                        map_tiles_archive_url="/tiles/archive.pmtiles") as base:
        yield base


def archive_tiles(path: Path) -> dict[tuple[int, int, int], bytes]:
    """Every tile of the archive, by (z, x, y), decompressed."""
    with path.open("rb") as f:
        return {zxy: gzip.decompress(data) for zxy, data in all_tiles(MmapSource(f))}


def live_tile(client: httpx.Client, base: str, z: int, x: int, y: int) -> bytes:
    """The three collections' tiles of one address, as the server's tile routes send them."""
    parts = []
    for collection in COLLECTIONS:
        url = f"{base}/collections/{collection}/tiles/WebMercatorQuad/{z}/{y}/{x}"
        response = client.get(url)
        assert response.status_code == 200, (url, response.text)
        parts.append(response.content)
    return b"".join(parts)


def tiles_over(bbox: tuple[float, float, float, float], z: int) -> Iterator[tuple[int, int]]:
    """(x, y) of the tiles of zoom z over a lon/lat box."""
    def xy(lon: float, lat: float) -> tuple[int, int]:
        n = 2**z
        y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
        return int((lon + 180) / 360 * n), int(y)

    x0, y0 = xy(bbox[0], bbox[3])
    x1, y1 = xy(bbox[2], bbox[1])
    last = 2**z - 1
    for x in range(max(x0 - 1, 0), min(x1 + 1, last) + 1):  # one more all round: edge
        for y in range(max(y0 - 1, 0), min(y1 + 1, last) + 1):  # buffers reach there
            yield x, y


def test_archive_holds_exactly_the_live_servers_non_empty_tiles(
    archive: tuple[Path, Outcome], server: str
) -> None:
    path, _ = archive
    stored = archive_tiles(path)
    with httpx.Client(timeout=30) as client:
        for z in range(MAX_ZOOM + 1):
            for x, y in tiles_over(AREA, z):
                live = live_tile(client, server, z, x, y)
                if live:
                    assert stored.get((z, x, y)) == live, f"tile {z}/{x}/{y}"
                else:
                    assert (z, x, y) not in stored, f"empty tile {z}/{x}/{y} stored"
    decoded = mapbox_vector_tile.decode(stored[max(k for k in stored if k[0] == MAX_ZOOM)])
    assert set(decoded) <= {"trees", "trees_grid", "stands", "communes"}
    assert "communes" in decoded


def test_archive_header_and_metadata_describe_the_tiles(archive: tuple[Path, Outcome]) -> None:
    path, outcome = archive
    with path.open("rb") as f:
        reader = Reader(MmapSource(f))
        header, metadata = reader.header(), reader.metadata()
    assert header["tile_type"] == TileType.MVT
    assert header["tile_compression"] == Compression.GZIP
    assert (header["min_zoom"], header["max_zoom"]) == (0, MAX_ZOOM)
    assert header["clustered"]
    west, south = header["min_lon_e7"] / 1e7, header["min_lat_e7"] / 1e7
    east, north = header["max_lon_e7"] / 1e7, header["max_lat_e7"] / 1e7
    assert west <= AREA[0] and south <= AREA[1] and east >= AREA[2] and north >= AREA[3]
    assert {layer["id"] for layer in metadata["vector_layers"]} == {
        "trees", "trees_grid", "stands", "communes"
    }
    assert "owner_name" not in str(metadata)  # personal data stays out of the public tiles
    size = path.stat().st_size
    assert f"{size:,} bytes" in outcome.stdout
    assert f"{header['addressed_tiles_count']:,} tiles" in outcome.stdout


def test_extract_of_an_area_holds_every_tree_in_it(seeded: str, tmp_path: Path) -> None:
    box = (TOWN[0] - 0.02, TOWN[1] - 0.02, TOWN[0] - 0.005, TOWN[1] - 0.005)  # sparse trees
    out = tmp_path / "team.pmtiles"
    outcome = export(seeded, out, "--bbox", ",".join(map(str, box)),
                     "--minzoom", "12", "--maxzoom", "16", cap="8000")
    assert outcome.code == 0, outcome.stderr
    assert f"{out.stat().st_size:,} bytes" in outcome.stdout
    stored = archive_tiles(out)
    assert {z for z, _, _ in stored} == set(range(12, 17))
    z16 = {(x, y) for z, x, y in stored if z == 16}
    assert z16 <= set(tiles_over(box, 16))
    seen: set[int] = set()
    for (z, _, _), body in stored.items():
        if z == 16:
            layer = mapbox_vector_tile.decode(body).get("trees", {"features": []})
            seen |= {f["id"] for f in layer["features"]}
    with psycopg.connect(seeded) as conn:
        inside = {row[0] for row in conn.execute(
            "SELECT id FROM smarttrees.trees WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)",
            box,
        )}
    assert inside and inside <= seen


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--bbox", "105.8,21.5,105.9"], "--bbox"),
        (["--bbox", "105.9,21.5,105.8,21.6"], "--bbox"),
        (["--bbox", "east,21.5,105.9,21.6"], "--bbox"),
        (["--minzoom", "9", "--maxzoom", "4"], "--maxzoom"),
        (["--bbox", "0,0,0.01,0.01", "--maxzoom", "10"], "nothing written"),
    ],
)
def test_bad_requests_are_refused_and_leave_no_file(
    seeded: str, tmp_path: Path, args: list[str], named: str
) -> None:
    out = tmp_path / "bad.pmtiles"
    outcome = export(seeded, out, *args)
    assert outcome.code != 0
    assert any(named in line for line in outcome.error_lines), outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_archive_in_a_missing_folder_is_refused_naming_it(seeded: str, tmp_path: Path) -> None:
    outcome = export(seeded, tmp_path / "missing" / "x.pmtiles", "--maxzoom", "3")
    assert outcome.code != 0
    assert any("missing" in line and "does not exist" in line for line in outcome.error_lines)
    assert list(tmp_path.iterdir()) == []


def test_served_archive_answers_range_requests(
    archive: tuple[Path, Outcome], server: str
) -> None:
    path, _ = archive
    data = path.read_bytes()
    url = f"{server}/tiles/archive.pmtiles"
    whole = httpx.get(url)
    assert whole.status_code == 200
    assert whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"
    head = httpx.get(url, headers={"Range": "bytes=0-126"})
    assert head.status_code == 206
    assert head.headers["content-range"] == f"bytes 0-126/{len(data)}"
    assert head.content == data[:127]
    tail = httpx.get(url, headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == data[-100:]
    beyond = httpx.get(url, headers={"Range": f"bytes={len(data)}-{len(data) + 10}"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(data)}"
    assert httpx.head(url).headers["content-length"] == str(len(data))

    def ranged(offset: int, length: int) -> bytes:
        r = httpx.get(url, headers={"Range": f"bytes={offset}-{offset + length - 1}"})
        assert r.status_code == 206
        return r.content

    z, x, y = next(iter(archive_tiles(path)))
    with path.open("rb") as f:
        assert Reader(ranged).get(z, x, y) == Reader(MmapSource(f)).get(z, x, y)


def test_archive_route_without_an_archive_is_a_clear_404(seeded: str) -> None:
    with serve_database(seeded) as base:
        response = httpx.get(f"{base}/tiles/archive.pmtiles")
    assert response.status_code == 404
    assert "SMARTTREES_TILES_ARCHIVE" in response.json()["description"]


@pytest.mark.browser
@needs_chromium
def test_web_map_draws_from_the_archive(browser: Any, server: str) -> None:
    from tests.test_webmap_browser import drawn_pixels, wait_idle

    requests: list[Any] = []
    page = browser.new_page(viewport={"width": 900, "height": 650}, reduced_motion="reduce")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r))
    page.goto(f"{server}/map")
    page.wait_for_function("window.smarttreesMap && window.smarttreesMap.loaded()")
    page.evaluate(f"smarttreesMap.jumpTo({{center: [{TOWN[0]}, {TOWN[1]}], zoom: 14}})")
    wait_idle(page)
    drawn = drawn_pixels(page)
    trees = page.evaluate(
        "smarttreesMap.queryRenderedFeatures({layers: ['trees', 'tree-cells']}).length"
    )
    ranged = [r for r in requests if r.url.endswith("/tiles/archive.pmtiles")
              and (r.headers.get("range") or "").startswith("bytes=")]
    page.context.close()
    assert errors == []
    assert trees > 0
    assert drawn > 2_000
    assert ranged, "the map asked the archive for no byte range"
    assert not [r.url for r in requests if "/tiles/WebMercatorQuad/" in r.url]
