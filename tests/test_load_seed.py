"""Nurseries, seedling lots and plantation stands: same checks, report and keys as trees."""

from __future__ import annotations

import csv
from pathlib import Path

import geopandas as gpd
import psycopg
import pytest
from shapely.geometry import Point, box

from etl import seed
from etl.crs import resolve


def reasons(path: Path) -> dict[int, str]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return {int(r["row"]): r["reason"] for r in csv.DictReader(handle)}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


NURSERIES = (
    "Mã vườn ươm,Tên vườn ươm,Đơn vị quản lý,Số giấy chứng nhận,Công suất (cây/năm),Kinh độ,Vĩ độ\n"
    "VU-01,Vườn ươm Đồng Hỷ,Công ty Lâm nghiệp,GCN-12,500000,105.85,21.65\n"
    "VU-02,Vườn ươm Phú Lương,HTX Lâm sản,GCN-13,nhiều,105.75,21.70\n"
    "VU-03,Vườn ươm Định Hóa,Hộ kinh doanh,,120000,105.64,21.90\n"
)
LOTS = (
    "Mã lô,Mã vườn ươm,Loài,Nguồn giống,Số lượng,Chứng chỉ,Ngày gieo,Ngày xuất vườn\n"
    "LO-1,VU-01,Keo lai,Giống mô hom,20000,CC-1,01/02/2026,2026-05-01\n"
    "LO-2,VU-09,Keo la tram,Hạt,1000,,2026-02-01,\n"
    "LO-3,VU-03,Bach dan uro,Hạt,0,,2026-02-01,2026-01-01\n"
)


def test_nurseries_then_lots(db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    res = seed.load("nurseries", db_url, write(tmp_path / "vuon_uom.csv", NURSERIES))
    assert (res.rows, res.inserted, res.refused) == (3, 2, 1)
    assert reasons(res.rejects_path) == {3: "Công suất (cây/năm): 'nhiều' is not a number"}
    again = seed.load("nurseries", db_url, tmp_path / "vuon_uom.csv")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)

    lots = seed.load("lots", db_url, write(tmp_path / "lo_cay_giong.csv", LOTS))
    assert (lots.inserted, lots.refused) == (1, 2)
    got = reasons(lots.rejects_path)
    assert got[3] == "Mã vườn ươm: 'VU-09' is not a known nursery (load nurseries first)"
    assert got[4] == "Số lượng: '0' is below 1; ready_on: before the sowing date"
    row = conn.execute(
        "SELECT n.nursery_code, s.vietnamese_name, l.quantity, l.sown_on::text, l.ready_on::text "
        "FROM smarttrees.seedling_lots l JOIN smarttrees.nurseries n ON n.id = l.nursery_id "
        "JOIN smarttrees.species s ON s.id = l.species_id").fetchone()
    assert row == ("VU-01", "Keo lai", 20000, "2026-02-01", "2026-05-01")


def test_stands_area_in_a_projected_crs(db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    # Two rectangles drawn in VN-2000 / TM-3 106°30': 100 m × 200 m = 2 ha and 300 m × 500 m = 15 ha.
    x0, y0 = 440_000, 2_400_000
    frame = gpd.GeoDataFrame(
        {"Mã lô rừng": ["LR-1", "LR-2", "LR-3"], "Loài cây": ["Keo tai tượng", "Mỡ", "Keo"],
         "Năm trồng": [2019, 2021, 2020], "Loại chủ rừng": ["Hộ gia đình", "Công ty", "Nhà nước"]},
        geometry=[box(x0, y0, x0 + 100, y0 + 200), box(x0 + 1000, y0, x0 + 1300, y0 + 500),
                  Point(x0, y0)],
        crs=resolve("vn2000-thai-nguyen"))
    frame.to_file(tmp_path / "lo_rung.gpkg", driver="GPKG", geometry_type="Unknown")
    res = seed.load("stands", db_url, tmp_path / "lo_rung.gpkg")
    assert (res.inserted, res.refused) == (2, 1)
    assert reasons(res.rejects_path)[3].startswith("Loài cây: 'Keo' is not in the species catalogue; closest:")
    assert "geometry: Point where a polygon was expected" in reasons(res.rejects_path)[3]
    areas = dict(conn.execute("SELECT stand_code, area_ha FROM smarttrees.stands").fetchall())
    assert float(areas["LR-1"]) == pytest.approx(2.0, abs=0.001)
    assert float(areas["LR-2"]) == pytest.approx(15.0, abs=0.005)
    assert conn.execute("SELECT owner_type FROM smarttrees.stands WHERE stand_code = 'LR-1'").fetchone() == ("household",)


def test_strict_and_dry_run_write_nothing(db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    path = write(tmp_path / "n.csv", NURSERIES)
    assert seed.load("nurseries", db_url, path, strict=True).written is False
    dry = seed.load("nurseries", db_url, path, dry_run=True)
    assert (dry.inserted, dry.refused, dry.written) == (2, 1, False)
    assert conn.execute("SELECT count(*) FROM smarttrees.nurseries").fetchone() == (0,)
