"""Items as files: `/collections/{id}/items?f=gpkg|fgb|csv`, read back by GDAL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pyogrio
import pytest

from smarttrees.cluster import Cluster
from tests.fixtures.databases import copied_database
from tests.fixtures.province import PROVINCE_TEMPLATE
from tests.fixtures.server import serve_database


@pytest.fixture(scope="module")
def province_db(province_template, cluster: Cluster) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with copied_database(cluster, PROVINCE_TEMPLATE, "downloads") as url:
        yield url


@pytest.fixture(scope="module")
def server(province_db: str) -> Iterator[str]:
    with serve_database(province_db, download_max_features="3000") as base:
        yield base


def fetch(server: str, path: str, tmp_path: Path, name: str) -> tuple[httpx.Response, Path]:
    response = httpx.get(f"{server}{path}", timeout=120)
    out = tmp_path / name
    out.write_bytes(response.content)
    return response, out


def test_a_filtered_download_holds_what_the_filter_selects(server: str, province_db: str, tmp_path: Path) -> None:
    path = "/collections/trees/items?f=gpkg&category=urban&filter=dbh_cm > 20"
    response, out = fetch(server, path, tmp_path, "x.gpkg")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/geopackage+sqlite3"
    assert 'filename="trees.gpkg"' in response.headers["content-disposition"]
    frame = pyogrio.read_dataframe(out)
    with psycopg.connect(province_db) as conn:
        expected = {r[0] for r in conn.execute(
            "SELECT tree_code FROM smarttrees.trees WHERE category = 'urban' AND dbh_cm > 20")}
    assert set(frame["tree_code"]) == expected and len(frame) == int(response.headers["x-feature-count"])
    assert frame.crs.to_epsg() == 4326 and frame.total_bounds[0] > 105  # longitude first
    info = pyogrio.read_info(out)
    types = dict(zip(info["fields"], info["dtypes"], strict=True))
    assert types["dbh_cm"].startswith("float") and types["stand_id"].startswith("int")


def test_fgb_and_csv_and_a_vn2000_download(server: str, tmp_path: Path) -> None:
    response, out = fetch(server, "/collections/stands/items?f=fgb", tmp_path, "s.fgb")
    assert response.status_code == 200, response.text
    stands = pyogrio.read_dataframe(out)
    assert len(stands) == 30 and "owner_name" not in stands.columns
    crs = "http://www.opengis.net/def/crs/EPSG/0/9213"
    response, out = fetch(server, f"/collections/nurseries/items?f=csv&crs={crs}", tmp_path, "n.csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    text = out.read_text()
    assert text.splitlines()[0].startswith("WKT,") and "POINT (" in text
    x = float(text.splitlines()[1].split("POINT (")[1].split()[0])
    assert 300_000 < x < 700_000  # metres of VN-2000 / TM-3


def test_a_download_over_the_cap_is_refused(server: str) -> None:
    response = httpx.get(f"{server}/collections/trees/items?f=fgb", timeout=120)
    assert response.status_code == 400
    assert "more than 3,000 features" in response.json()["description"]
    limited = httpx.get(f"{server}/collections/trees/items?f=fgb&limit=100", timeout=120)
    assert limited.status_code == 200 and limited.headers["x-feature-count"] == "100"
