"""Point tiles encoded by gis_api.tiles.mvt hold what ST_AsMVT wrote: the same features.

The server's trees tile of a point zoom is compared with the tile ST_AsMVT makes of the same
trees (``tests/fixtures/st_asmvt_points.sql``, the statement the server used before), both
decoded by two independent MVT readers: mapbox-vector-tile and GDAL's MVT driver (pyogrio).
The trees include what the encoder must get right: missing species, condition and diameter,
Vietnamese names, diameters whose rounding to one decimal is a close call, ids past 2³², trees
in the tile's edge buffer. The z15 tile holds all 600 trees (encoded by numpy), the z17 tile
fewer than ``render.FEW_POINTS`` (encoded by ST_AsMVT from the statement's tile-space points).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mapbox_vector_tile
import numpy as np
import psycopg
import pyogrio
import pytest
from psycopg import sql

from gis_api.tiles import TileAddress
from gis_api.tiles.mvt import ChoiceColumn, NumberColumn, TextColumn, point_layer
from gis_api.tiles.render import FEW_POINTS
from gis_api.tiles.tree_points import one_decimal
from tests.fixtures.server import serve_database
from tests.fixtures.tiles import tile_of

CENTRE = (105.83679, 21.59104)  # the centre of z15 tile 26017/14370: all 600 trees in it
REFERENCE = Path(__file__).parent / "fixtures" / "st_asmvt_points.sql"


def _seed(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT setseed(0.17)")
        conn.execute(
            """
            INSERT INTO smarttrees.trees (id, tree_code, category, species_id, dbh_cm, condition,
                                          geom)
            SELECT CASE WHEN g %% 7 = 0 THEN 5000000000 + g ELSE g END,
                   format('MVT-%%s', g),
                   (ARRAY['urban', 'scattered', 'plantation'])[1 + g %% 3],
                   CASE WHEN g %% 11 = 0 THEN NULL ELSE 1 + g %% 6 END,
                   CASE WHEN g %% 13 = 0 THEN NULL
                        ELSE (ARRAY[12.25, 2.05, 0.15, 33.35, 7, 499.95, 61.04])[1 + g %% 7] END,
                   CASE WHEN g %% 5 = 0 THEN NULL
                        ELSE (ARRAY['good', 'fair', 'poor', 'dead'])[1 + g %% 4] END,
                   ST_SetSRID(ST_MakePoint(%(lon)s - 0.004 + random() * 0.008,
                                           %(lat)s - 0.004 + random() * 0.008), 4326)
            FROM generate_series(1, 600) g
            """,
            {"lon": CENTRE[0], "lat": CENTRE[1]},
        )
        conn.execute("ANALYZE smarttrees.trees")


@pytest.fixture(scope="module")
def mvt_server(module_db_url: str) -> Iterator[str]:
    _seed(module_db_url)
    with serve_database(module_db_url, tile_cache_mb="0") as base:
        yield base




def served(base: str, tile: TileAddress, query: str = "") -> bytes:
    url = f"{base}/collections/trees/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}"
    response = httpx.get(url + (f"?{query}" if query else ""), timeout=30)
    assert response.status_code == 200
    return response.content


def st_asmvt(url: str, tile: TileAddress, where: str = "") -> bytes:
    """The tile as ST_AsMVT makes it of the same trees (the server's statement before)."""
    text = "\n".join(line for line in REFERENCE.read_text().splitlines()
                     if not line.lstrip().startswith("--"))
    query = sql.SQL(text).format(filters=sql.SQL(where))
    params = {"z": tile.z, "x": tile.x, "y": tile.y, "margin": 32 / 4096, "buffer": 32,
              "limit": 8000}
    with psycopg.connect(url) as conn:
        row = psycopg.ClientCursor(conn).execute(query, params).fetchone()
    assert row is not None and row[0] is not None
    return bytes(row[0])


def features(body: bytes) -> dict[int, Any]:
    """The trees layer's features by id, decoded by mapbox-vector-tile."""
    layer = mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})["trees"]
    assert layer["extent"] == 4096
    return {f["id"]: (f["geometry"], f["properties"]) for f in layer["features"]}


def gdal_rows(body: bytes, tile: TileAddress, folder: Path) -> list[tuple[Any, ...]]:
    """The trees layer read by GDAL's MVT driver (georeferenced from the z/x/y path)."""
    path = folder / str(tile.z) / str(tile.x) / f"{tile.y}.pbf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    frame = pyogrio.read_dataframe(path, layer="trees")
    columns = ["mvt_id", "tree_code", "category", "species_name", "species_vi", "condition",
               "dbh_cm"]
    assert sorted(frame.columns[:-1]) == sorted(columns)  # GDAL orders them as it meets them
    frame = frame[[*columns, "geometry"]]
    frame["x"] = frame.geometry.x.round(3)
    frame["y"] = frame.geometry.y.round(3)
    frame = frame.drop(columns="geometry").sort_values("mvt_id")
    return [tuple(None if v is None or v != v else v for v in row)
            for row in frame.itertuples(index=False)]


@pytest.mark.parametrize("z", [15, 16, 17])
def test_the_served_point_tile_decodes_as_st_asmvts(
    mvt_server: str, module_db_url: str, tmp_path: Path, z: int
) -> None:
    tile = tile_of(*CENTRE, z)
    ours, reference = served(mvt_server, tile), st_asmvt(module_db_url, tile)
    decoded = features(ours)
    assert len(decoded) > 20
    if z == 15:
        assert len(decoded) == 600 > FEW_POINTS
    if z == 17:
        assert len(decoded) <= FEW_POINTS
    assert decoded == features(reference)
    assert gdal_rows(ours, tile, tmp_path / "ours") == gdal_rows(reference, tile, tmp_path / "ref")


@pytest.mark.parametrize("z", [15, 17])
def test_a_point_tiles_bytes_do_not_depend_on_how_its_trees_were_found(
    mvt_server: str, module_db_url: str, z: int
) -> None:
    """Found by the GiST's order or the heap's, the same trees give the same tile's bytes."""
    import asyncio

    from gis_api.tiles import render
    from gis_api.tiles.params import TreeFilters
    from smarttrees.settings import get_settings

    tile = tile_of(*CENTRE, z)

    async def rendered(scan_off: str) -> bytes:
        async with await psycopg.AsyncConnection.connect(module_db_url, autocommit=True) as conn:
            for setting in ("enable_seqscan", scan_off):
                await conn.execute(sql.SQL("SET {} = off").format(sql.Identifier(setting)))
            return await render.render_trees(conn, tile, TreeFilters(), get_settings())

    by_bitmap = asyncio.run(rendered("enable_indexscan"))  # rows in heap order
    by_index = asyncio.run(rendered("enable_bitmapscan"))  # rows in the GiST's order
    assert len(features(by_index)) > 20
    assert by_index == by_bitmap


def test_missing_values_are_left_out_and_close_roundings_kept(
    mvt_server: str, module_db_url: str
) -> None:
    tile = tile_of(*CENTRE, 15)
    decoded = features(served(mvt_server, tile))
    properties = {tree_id: props for tree_id, (_, props) in decoded.items()}
    assert any("species_name" not in p and "species_vi" not in p for p in properties.values())
    assert any("condition" not in p for p in properties.values())
    assert any("dbh_cm" not in p for p in properties.values())
    assert {p.get("dbh_cm") for p in properties.values()} >= {12.3, 2.1, 0.2, 33.4, 500.0}
    assert any(tree_id > 2**32 for tree_id in decoded)


def test_a_filtered_point_tile_decodes_as_st_asmvts(mvt_server: str, module_db_url: str) -> None:
    tile = tile_of(*CENTRE, 15)
    ours = features(served(mvt_server, tile, "species=4&category=urban"))
    reference = features(st_asmvt(
        module_db_url, tile, "AND t.species_id = 4 AND t.category = 'urban'"))
    assert ours == reference
    assert ours and all(p["category"] == "urban" for _, p in ours.values())


def test_the_encoder_writes_what_a_decoder_reads() -> None:
    codes = ["A-1", "Cây đa", "B-22"]
    data = "".join(codes).encode()
    lengths = np.array([len(c.encode()) for c in codes])
    layer = point_layer(
        "things",
        np.array([3, 2**40, 0]),
        np.array([-32, 4128, 200]),
        np.array([0, 17, -5]),
        [
            ("code", TextColumn(data, lengths, distinct=True)),
            ("kind", TextColumn(b"aab", np.array([1, -1, 2]))),
            ("height", NumberColumn(np.array([1.5, np.nan, 300.25]))),
            ("count", NumberColumn(np.array([0, -7, 1_000_000]))),
            ("place", ChoiceColumn(["here", None], np.array([0, 1, -1]))),
        ],
    )
    decoded = mapbox_vector_tile.decode(layer, default_options={"y_coord_down": True})["things"]
    got = [(f["id"], f["geometry"]["coordinates"], f["properties"]) for f in decoded["features"]]
    assert got == [
        (3, [-32, 0], {"code": "A-1", "kind": "a", "height": 1.5, "count": 0, "place": "here"}),
        (2**40, [4128, 17], {"code": "Cây đa", "count": -7}),
        (0, [200, -5], {"code": "B-22", "kind": "ab", "height": 300.25, "count": 1_000_000}),
    ]
    assert point_layer("things", np.array([], np.int64), np.array([], np.int64),
                       np.array([], np.int64), []) == b""


def test_diameters_round_to_one_decimal_as_postgresql_does(module_db_url: str) -> None:
    rng = np.random.default_rng(5)
    values = np.concatenate([
        rng.uniform(0.01, 500, 5000), np.round(rng.uniform(0, 500, 3000), 2),
        np.round(rng.uniform(0, 5, 2000), 3), [12.25, 2.05, 0.15, 0.05, 1024.125, 3e7, 1e-6, 0],
    ]).astype(np.float32)
    with psycopg.connect(module_db_url) as conn:
        row = conn.execute(
            "SELECT array_agg(round(v::numeric, 1)::float8 ORDER BY i)"
            " FROM unnest(%s::real[]) WITH ORDINALITY u(v, i)", [values.tolist()]).fetchone()
    assert row is not None
    assert one_decimal(values.astype(np.float64)).tolist() == row[0]
