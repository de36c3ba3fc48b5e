"""The IOC layers (migration 0011) add up exactly on the known register, through the OGC API.

Citizen support is checked against the subtraction attacks: in every published table, a total
minus the cells shown never gives one withheld cell away.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from gis_api.collections import IOC_COLLECTIONS
from smarttrees import ioc
from smarttrees.database import connect
from smarttrees.settings import Settings
from tests.fixtures.ioc import seed_known_register
from tests.fixtures.server import serve_database


@pytest.fixture(scope="module")
def ioc_server(module_db_url: str) -> Iterator[str]:
    """A server over the known register (read-only tests)."""
    seed_known_register(module_db_url)
    with serve_database(module_db_url) as base:
        yield base


def items(base: str, collection: str, **params: Any) -> dict[str, dict[str, Any]]:
    """Every feature of a collection: id → properties (with the geometry under "_geometry")."""
    r = httpx.get(f"{base}/collections/{collection}/items", params={"limit": 1000, **params},
                  timeout=30)
    assert r.status_code == 200, r.text
    return {f["id"]: {**f["properties"], "_geometry": f["geometry"]} for f in r.json()["features"]}


def test_documents_per_agency_and_month(ioc_server: str) -> None:
    rows = items(ioc_server, "documents_by_agency_month")
    figures = {k: (v["sent"], v["sent_electronic"], v["received"], v["courier_saving_vnd"])
               for k, v in rows.items()}
    assert figures == {
        "UBND-00001:2025-01": (2, 2, 1, 8_000),
        "UBND-00001:2025-02": (1, 1, 0, 4_000),
        "UBND-00002:2025-01": (1, 0, 2, 0),
        "UBND-00002:2025-02": (1, 1, 0, 4_000),
        "UBND-TINH:2025-01": (1, 1, 2, 4_000),
        "UBND-TINH:2025-02": (1, 0, 1, 0),
        "SNNMT:2025-01": (1, 1, 1, 4_000),
        "SNNMT:2025-02": (0, 0, 2, 0),
    }
    assert rows["UBND-00001:2025-01"]["month"] == "2025-01-01"
    assert rows["UBND-TINH:2025-02"]["electronic_share"] == 0
    assert rows["UBND-00001:2025-01"]["_geometry"]["coordinates"] == [105.75, 21.5]


def test_documents_per_commune_and_month(ioc_server: str) -> None:
    rows = items(ioc_server, "documents_by_commune_month")
    figures = {k: (v["sent"], v["received"], v["electronic_share"], v["courier_saving_vnd"])
               for k, v in rows.items()}
    assert figures == {
        "00001:2025-01": (2, 1, 1.0, 8_000),
        "00001:2025-02": (1, 0, 1.0, 4_000),
        "00002:2025-01": (1, 2, 0.0, 0),
        "00002:2025-02": (1, 0, 1.0, 4_000),
    }
    assert rows["00002:2025-01"]["_geometry"]["type"] == "MultiPolygon"


def test_document_flows_are_lines_per_pair_and_month(ioc_server: str) -> None:
    rows = items(ioc_server, "document_flows")
    assert sum(r["documents"] for r in rows.values()) == 9  # 8 documents, one to two receivers
    assert sum(r["electronic"] for r in rows.values()) == 7
    flow = rows["UBND-TINH>UBND-00002:2025-01"]
    assert (flow["documents"], flow["electronic"]) == (1, 1)
    assert flow["_geometry"] == {"type": "LineString",
                                 "coordinates": [[105.85, 21.59], [105.85, 21.5]]}
    only_feb = items(ioc_server, "document_flows", filter="month = DATE('2025-02-01')")
    assert set(only_feb) == {"UBND-00001>UBND-TINH:2025-02", "UBND-00002>SNNMT:2025-02",
                             "UBND-TINH>SNNMT:2025-02"}


def test_trees_per_commune_by_category_condition_and_area(ioc_server: str) -> None:
    rows = items(ioc_server, "trees_by_commune")
    one, two, three = rows["00001"], rows["00002"], rows["00003"]
    assert (one["trees"], one["urban"], one["scattered"], one["plantation"]) == (3, 2, 1, 0)
    assert (one["good"], one["fair"], one["poor"], one["dead"]) == (2, 1, 0, 0)
    assert (two["trees"], two["plantation"], two["poor"], two["dead"], two["good"]) == (
        3, 2, 1, 1, 1)
    assert three["trees"] == 0
    # 0.1° × 0.2° at 21.5° N: about 10.36 km × 22.1 km.
    assert one["area_km2"] == pytest.approx(229, abs=2)
    assert one["trees_per_km2"] == round(3 / one["area_km2"], 1)


def test_the_tree_count_by_month_is_a_curve(ioc_server: str) -> None:
    rows = items(ioc_server, "tree_count_by_month")
    assert len(rows) == 2 * 12  # two communes with trees, twelve months of 2025
    one = [rows[f"00001:2025-{m:02d}"]["trees"] for m in range(1, 13)]
    two = [rows[f"00002:2025-{m:02d}"]["trees"] for m in range(1, 13)]
    assert one == [2, 2] + [3] * 10
    assert two == [1, 1] + [2] * 8 + [3, 3]
    assert rows["00002:2025-11"]["planted"] == 1


def test_citizen_support_figures_and_withheld_cells(ioc_server: str) -> None:
    communes = items(ioc_server, "citizen_support_by_commune")
    assert (communes["00001"]["people"], communes["00001"]["amount_vnd"]) == (
        12, 12 * 1_000_000 + 100_000 * sum(range(1, 13)))
    # 00002 has 3 people (< 5): withheld; so is 00003 (7), or 22 − 12 − 7 would give 3.
    for code in ("00002", "00003"):
        assert communes[code]["people"] is None and communes[code]["amount_vnd"] is None
        assert communes[code]["suppressed"] is True
    provinces = items(ioc_server, "citizen_support_by_province")
    assert len(provinces) == 22
    assert provinces["79"]["people"] == 12
    assert all(provinces[c]["suppressed"] for c in ("74", "75", "77"))  # 7 withheld with 2 + 1
    assert provinces["80"]["people"] == 0 and provinces["80"]["suppressed"] is False
    detail = items(ioc_server, "citizen_support_by_commune_detail")
    # In 00001: 1 rejected, 11 paid → both withheld; 6 on the web and 6 by the app → shown.
    assert detail["00001:status:rejected"]["suppressed"] is True
    assert detail["00001:status:paid"]["people"] is None
    assert (detail["00001:channel:web"]["people"], detail["00001:channel:app"]["people"]) == (6, 6)
    # Every cell of a withheld commune is withheld.
    assert all(v["suppressed"] for k, v in detail.items() if not k.startswith("00001:"))


def _attack(total: int | None, cells: list[dict[str, Any]], k: int) -> None:
    """The checks an attacker would run on one table adding up to ``total``."""
    withheld = [c for c in cells if c["suppressed"]]
    assert all(c["people"] is None and c["amount_vnd"] is None for c in withheld)
    if total is not None:
        assert len(withheld) != 1, "one withheld cell is its total minus the cells shown"
        residual = total - sum(c["people"] for c in cells if not c["suppressed"])
        assert residual == 0 or residual >= k, f"{residual} people singled out by subtraction"


def _attack_everything(base: str, k: int) -> None:
    summary = httpx.get(f"{base}/api/ioc/summary", timeout=30).json()
    total = summary["citizen_support"]["people"]
    communes = items(base, "citizen_support_by_commune")
    _attack(total, list(communes.values()), k)
    _attack(total, list(items(base, "citizen_support_by_province").values()), k)
    detail = items(base, "citizen_support_by_commune_detail")
    for code, commune in communes.items():
        for dimension in ("status", "channel"):
            cells = [v for v in detail.values()
                     if v["commune_code"] == code and v["dimension"] == dimension]
            _attack(commune["people"], cells, k)
    # A filter is another way to the same rows: it never shows what the table withholds.
    for query in ({"filter": "suppressed = true"}, {"filter": "people IS NULL"},
                  {"filter": "commune_code = '00002'"}, {"properties": "people,amount_vnd"}):
        for code, row in items(base, "citizen_support_by_commune", **query).items():
            if communes[code]["suppressed"]:
                assert row.get("people") is None and row.get("amount_vnd") is None


def test_no_subtraction_reveals_a_withheld_figure(ioc_server: str) -> None:
    _attack_everything(ioc_server, 5)


def test_a_higher_threshold_withholds_more_and_still_holds(db_url: str) -> None:
    settings = Settings(privacy_min_count=8)
    seed_known_register(db_url, settings)
    with serve_database(db_url, privacy_min_count="8") as base:
        communes = items(base, "citizen_support_by_commune")
        _attack_everything(base, 8)
    assert communes["00001"]["people"] == 12  # 3 and 7 withheld: 10 ≥ 8 people
    detail_k8 = None
    with connect(db_url) as conn:
        detail_k8 = conn.execute(
            "SELECT count(*) FILTER (WHERE suppressed) FROM citizen_support_by_commune_detail "
            "WHERE commune_code = '00001' AND dimension = 'channel'"
        ).fetchone()
    assert detail_k8 == (2,)  # 6 and 6 are both under 8


def test_layers_refresh_without_blocking_readers(db_url: str) -> None:
    seed_known_register(db_url)
    with connect(db_url) as writer, psycopg.connect(db_url, autocommit=True) as reader:
        writer.execute(
            "INSERT INTO documents (agency_id, receiver_id, doc_no, doc_type, electronic, sent_on, "
            "commune_code) SELECT a.id, r.id, '9/UBND-00001', 'công văn', true, '2025-03-02', "
            "'00001' FROM agencies a, agencies r "
            "WHERE a.code = 'UBND-00001' AND r.code = 'UBND-TINH'"
        )
        ioc.refresh(writer, Settings())  # not committed yet: its locks are held
        reader.execute("SET lock_timeout = '2s'")
        before = reader.execute(
            "SELECT sum(sent) FROM smarttrees.ioc_documents_commune_month").fetchone()
        writer.commit()
        after = reader.execute(
            "SELECT sum(sent) FROM smarttrees.ioc_documents_commune_month").fetchone()
    assert (before, after) == ((5,), (6,))


@pytest.mark.parametrize("collection", [c.id for c in IOC_COLLECTIONS])
def test_gdal_pages_through_the_ioc_layers(ioc_server: str, collection: str) -> None:
    import pyogrio

    df = pyogrio.read_dataframe(f"OAPIF:{ioc_server}/collections/{collection}", PAGE_SIZE=3)
    expected = items(ioc_server, collection)
    assert len(df) == len(expected) > 0
    # A string id is GDAL's "id" column (the layers do not repeat it as a property).
    assert sorted(df["id"].astype(str)) == sorted(expected)  # every feature once
