"""Planting targets per commune (`smarttrees load targets`) and the IOC's vector tiles.

On the known register (tests/fixtures/ioc.py: trees 3 in 00001, 3 in 00002, none in 00003;
citizen support 12 people in 00001, 3 in 00002, 7 in 00003 with k = 5): targets are loaded with
the ETL's rules, the progress towards them is in the trees_by_commune collection, its tiles and
the summary, and the tiles of the IOC's area layers hold the collections' figures — withheld
where the collections withhold them — and follow a new load.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import httpx
import mapbox_vector_tile
import morecantile
import pytest

from etl import ioc_load
from tests.fixtures.ioc import PERSONAL_VALUES, seed_known_register
from tests.fixtures.server import serve_database
from tests.test_ioc_load import cli, write_csv

HEADERS = ["Mã xã", "Chỉ tiêu trồng cây"]
TARGETS = [["00001", "4"], ["00002", "1.000"]]
BAD = [["99999", "10"], ["00001", "7"], ["00003", "-5"], ["", "3"]]
IOC_TILED = ("documents_by_commune", "citizen_support_by_commune", "trees_by_commune")


def _items(base: str, collection: str) -> dict[str, dict[str, Any]]:
    r = httpx.get(f"{base}/collections/{collection}/items", params={"limit": 1000}, timeout=30)
    assert r.status_code == 200, r.text
    return {str(f["id"]): f["properties"] for f in r.json()["features"]}


def _tile(base: str, collection: str) -> tuple[dict[str, dict[str, Any]], httpx.Response]:
    """The z8 tile over the three communes, decoded: commune code → properties."""
    tile = morecantile.tms.get("WebMercatorQuad").tile(105.85, 21.5, 8)
    r = httpx.get(f"{base}/collections/{collection}/tiles/WebMercatorQuad/8/{tile.y}/{tile.x}",
                  timeout=30)
    assert r.status_code == 200, r.text
    layer = mapbox_vector_tile.decode(r.content)[collection]
    return {f["properties"]["commune_code"]: f["properties"] for f in layer["features"]}, r


def test_targets_load_with_reasons_and_are_keyed(db_url: str, tmp_path: Path) -> None:
    seed_known_register(db_url)
    path = write_csv(tmp_path / "chi_tieu.csv", HEADERS, TARGETS + BAD)
    run = cli(db_url, "targets", str(path))
    assert run.returncode == 0, run.stderr
    assert "6 targets: inserted 2, updated 0, unchanged 0, refused 4" in run.stdout
    assert "Traceback" not in run.stderr
    with (tmp_path / "chi_tieu.rejects.csv").open(encoding="utf-8-sig") as handle:
        reasons = {r["row"]: r["reason"] for r in csv.DictReader(handle)}
    assert reasons == {
        "4": "Mã xã: 99999 is not a commune in force",
        "5": "Mã xã: 00001 already appears in row 2",
        "6": "Chỉ tiêu trồng cây: '-5' is not a whole number of trees (0 to 999,999,999)",
        "7": "Mã xã: missing",
    }
    again = ioc_load.load("targets", db_url, path)
    assert (again.inserted, again.updated, again.unchanged, again.refused) == (0, 0, 2, 4)
    changed = write_csv(tmp_path / "chi_tieu_2.csv", HEADERS, [["00001", "6"], TARGETS[1]])
    third = ioc_load.load("targets", db_url, changed, strict=True)
    assert (third.inserted, third.updated, third.unchanged) == (0, 1, 1)


def test_progress_in_the_collection_tiles_and_summary(db_url: str, tmp_path: Path) -> None:
    seed_known_register(db_url)
    ioc_load.load("targets", db_url, write_csv(tmp_path / "t.csv", HEADERS, TARGETS))
    with serve_database(db_url) as base:
        communes = _items(base, "trees_by_commune")
        tiled, _ = _tile(base, "trees_by_commune")
        summary = httpx.get(f"{base}/api/ioc/summary", timeout=30).json()["trees"]
    assert {c: (v["trees"], v["target"], v["progress"]) for c, v in communes.items()} == {
        "00001": (3, 4, 0.75), "00002": (3, 1000, 0.003), "00003": (0, None, None)}
    for code, row in communes.items():
        shown = {k: v for k, v in row.items() if v is not None and k in tiled[code]}
        assert tiled[code] == pytest_approx({**shown, "commune_code": code}), code
    assert "target" not in tiled["00003"] and "progress" not in tiled["00003"]
    assert summary["commune_targets"] == {"communes": 2, "target": 1004, "trees": 6,
                                          "progress": round(6 / 1004, 4)}
    assert summary["target"] == 1_130_000  # the province's own, a setting


def test_ioc_tiles_hold_the_collections_figures_and_follow_a_load(
        db_url: str, tmp_path: Path) -> None:
    seed_known_register(db_url)
    ioc_load.load("targets", db_url, write_csv(tmp_path / "t.csv", HEADERS, TARGETS))
    with serve_database(db_url) as base:
        for collection in IOC_TILED:
            tiled, response = _tile(base, collection)
            rows = _items(base, collection)
            assert set(tiled) == set(rows) == {"00001", "00002", "00003"}
            for code, properties in tiled.items():
                shown = {k: v for k, v in rows[code].items() if v is not None}
                tile_only = set(properties) - set(shown) - {"commune_code"}
                assert not tile_only, (collection, code, tile_only)  # nothing the items hide
                expected = {k: shown.get(k, code) for k in properties}
                assert properties == pytest_approx(expected), (collection, code)
            text = response.content.decode("latin-1")
            assert not any(value in text for value in PERSONAL_VALUES)
        support, _ = _tile(base, "citizen_support_by_commune")
        # 00002 (3 people) and 00003 (7, or 22 − 12 − 7 would give 3 away) are withheld.
        assert support["00001"]["people"] == 12
        for code in ("00002", "00003"):
            assert support[code]["suppressed"] is True
            assert "people" not in support[code] and "amount_vnd" not in support[code]
        before, first = _tile(base, "trees_by_commune")
        ioc_load.load("targets", db_url,
                      write_csv(tmp_path / "t2.csv", HEADERS, [["00001", "6"]]))
        after, second = _tile(base, "trees_by_commune")
    assert (before["00001"]["progress"], after["00001"]["progress"]) == (0.75, 0.5)
    assert first.headers["etag"] != second.headers["etag"]


def pytest_approx(values: dict[str, Any]) -> Any:
    """Numbers compared as MVT stores them (doubles), everything else exactly."""
    return {k: pytest.approx(v) if isinstance(v, float) else v for k, v in values.items()}
