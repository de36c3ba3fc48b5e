"""Traceability exports of the test province's custody chain: EUDR GeoJSON, bảng kê, EPCIS 2.0.

The documents come from the real command and the real server; their rules are checked with
independent tools: shapely and pyproj's geodesic areas for the GeoJSON, openpyxl and pdfium for
the bảng kê, the EPCIS 2.0 JSON schema GS1 publishes (tests/data/epcis, with its licence) for
the events. The rows and totals are compared with the custody records in the database.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import openpyxl
import psycopg
import pypdfium2
import pytest
import shapely
from pyproj import Geod

from tests.fixtures.cli import cli_env, run_cli

SCHEMA = Path(__file__).parent / "data" / "epcis" / "EPCIS-JSON-Schema.json"
GEOD = Geod(ellps="WGS84")


def _largest_load(url: str) -> tuple[str, list[dict[str, Any]]]:
    """The transport load with the most logs, and its logs as custody recorded them."""
    with psycopg.connect(url) as conn:
        load_id, code = conn.execute(
            "SELECT lo.id, t.code FROM smarttrees.transport_loads lo "
            "JOIN smarttrees.tags t ON t.item_type = 'transport_load' AND t.item_id = lo.id "
            "ORDER BY (SELECT count(*) FROM smarttrees.timber_logs g WHERE g.load_id = lo.id) "
            "DESC, lo.id LIMIT 1"
        ).fetchone()  # type: ignore[misc]
        # The logs the custody chain put on the load: their `loaded` scans, and the volume
        # measured at their (last) felling scan.
        rows = conn.execute(
            "SELECT e.code, st.stand_code, g.felled_on, st.owner_name, st.owner_type, "
            "  (SELECT f.volume_m3 FROM smarttrees.scan_events f WHERE f.item_type = "
            "   'timber_log' AND f.item_id = e.item_id AND f.event_type = 'felled' "
            "   ORDER BY f.occurred_at DESC, f.id DESC LIMIT 1) "
            "FROM smarttrees.scan_events e JOIN smarttrees.timber_logs g ON g.id = e.item_id "
            "JOIN smarttrees.stands st ON st.id = g.stand_id "
            "WHERE e.item_type = 'timber_log' AND e.event_type = 'loaded' "
            "AND (e.details ->> 'load_id')::bigint = %s ORDER BY e.code",
            [load_id],
        ).fetchall()
    logs = [
        {"code": r[0], "stand": r[1], "felled_on": r[2], "owner_name": r[3], "owner_type": r[4],
         "volume": Decimal(r[5])}
        for r in rows
    ]
    assert len(logs) > 10, "the test province's largest load should carry a truckful"
    return code, logs


def _run(url: str, *args: str, **env: str) -> Any:
    return run_cli(*args, env=cli_env(SMARTTREES_DATABASE_URL=url, **env))


def _decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text else 0


def _check_plot(feature: dict[str, Any]) -> None:
    """The EUDR geometry rules, checked independently of the exporter."""
    geometry = feature["geometry"]
    assert geometry["type"] in ("Polygon", "MultiPolygon")
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else \
        geometry["coordinates"]
    for polygon in polygons:
        for ring in polygon:
            assert ring[0] == ring[-1] and len(ring) >= 4, "rings are closed"
            for lon, lat in ring:
                assert 102 < lon < 110 and 8 < lat < 24, "longitude first, in Vietnam"
                assert _decimals(lon) <= 6 and _decimals(lat) <= 6
    shape = shapely.geometry.shape(geometry)
    assert shape.is_valid, shapely.is_valid_reason(shape)
    area_ha = abs(GEOD.geometry_area_perimeter(shape)[0]) / 10_000
    assert feature["properties"]["area_ha"] == pytest.approx(area_ha, rel=1e-3)
    if area_ha > 4:
        assert geometry["type"] in ("Polygon", "MultiPolygon"), "over 4 ha a polygon is needed"


def test_eudr_file_of_a_load_meets_the_rules(province_url: str, tmp_path: Path) -> None:
    load, logs = _largest_load(province_url)
    result = _run(province_url, "trace", "eudr", load, "--out", str(tmp_path))
    assert result.code == 0, result.stderr
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == [f"eudr-{load}.geojson"]
    document = json.loads(files[0].read_text())
    assert document["type"] == "FeatureCollection"
    assert "crs" not in document, "RFC 7946: WGS 84 lon/lat, no other CRS"
    by_plot = {f["properties"]["ProductionPlace"]: f for f in document["features"]}
    assert set(by_plot) == {log["stand"] for log in logs}, "every plot, and only those"
    for plot, feature in by_plot.items():
        _check_plot(feature)
        mine = [log for log in logs if log["stand"] == plot]
        props = feature["properties"]
        assert props["log_count"] == len(mine)
        assert Decimal(str(props["volume_m3"])) == sum(log["volume"] for log in mine)
        assert props["harvest_start"] == min(log["felled_on"] for log in mine).isoformat()
        assert props["harvest_end"] == max(log["felled_on"] for log in mine).isoformat()
        assert props["species"] and props["ProducerCountry"] == "VN"
        assert "owner_name" not in props
    assert len(files[0].read_bytes()) < 25_000_000


def test_eudr_split_into_parts_with_a_manifest(province_url: str, tmp_path: Path) -> None:
    with psycopg.connect(province_url) as conn:
        stands = [r[0] for r in conn.execute(
            "SELECT stand_code FROM smarttrees.stands ORDER BY stand_code LIMIT 6").fetchall()]
    whole = _run(province_url, "trace", "eudr", *stands, "--out", str(tmp_path / "whole"))
    assert whole.code == 0, whole.stderr
    [single] = list((tmp_path / "whole").iterdir())
    features = json.loads(single.read_text())["features"]
    cap = max(len(json.dumps(f)) for f in features) * 2 + 100
    split = _run(province_url, "trace", "eudr", *stands, "--out", str(tmp_path / "split"),
                 "--max-mb", str(cap / 1_000_000))
    assert split.code == 0, split.stderr
    [manifest_file] = list((tmp_path / "split").glob("*manifest.json"))
    manifest = json.loads(manifest_file.read_text())
    assert len(manifest["files"]) > 1
    joined = []
    import hashlib

    for entry in manifest["files"]:
        blob = (tmp_path / "split" / entry["file"]).read_bytes()
        assert len(blob) <= cap and entry["bytes"] == len(blob)
        assert hashlib.sha256(blob).hexdigest() == entry["sha256"]
        joined += json.loads(blob)["features"]
    assert joined == features, "the parts hold every plot once, in order"
    assert manifest["plots"] == len(stands)


def test_eudr_flags_plots_for_review(province_url: str, tmp_path: Path) -> None:
    with psycopg.connect(province_url) as conn:
        code, area = conn.execute(
            "SELECT stand_code, area_ha FROM smarttrees.stands ORDER BY stand_code LIMIT 1"
        ).fetchone()  # type: ignore[misc]
        conn.execute("UPDATE smarttrees.stands SET planting_year = 2022, area_ha = area_ha * 2 "
                     "WHERE stand_code = %s", [code])
        conn.execute(
            "INSERT INTO smarttrees.stands (stand_code, area_ha, geom) "
            "SELECT 'ST-OVERLAP-0001', area_ha, ST_Multi(ST_Translate(geom, 0.0005, 0)) "
            "FROM smarttrees.stands WHERE stand_code = %s", [code])
    result = _run(province_url, "trace", "eudr", code, "--out", str(tmp_path))
    assert result.code == 0, result.stderr
    [feature] = json.loads(next(tmp_path.iterdir()).read_text())["features"]
    props = feature["properties"]
    assert set(props["flags"]) == {"planted_after_cutoff", "area_mismatch", "overlap"}
    assert props["overlaps"] == ["ST-OVERLAP-0001"]
    assert props["area_ha_recorded"] == pytest.approx(float(area) * 2)
    assert code in result.stderr, "the summary names the flagged plots"


def test_eudr_refuses_a_load_whose_stand_has_no_polygon(province_url: str,
                                                         tmp_path: Path) -> None:
    load, logs = _largest_load(province_url)
    with psycopg.connect(province_url) as conn:
        conn.execute("UPDATE smarttrees.stands SET geom = 'SRID=4326;MULTIPOLYGON EMPTY' "
                     "WHERE stand_code = %s", [logs[0]["stand"]])
    result = _run(province_url, "trace", "eudr", load, "--out", str(tmp_path))
    assert result.code == 1
    message = " ".join(result.error_lines)
    assert logs[0]["stand"] in message and logs[0]["code"] in message
    assert "plot_without_polygon" in message and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == [], "no document with a plot left out"


def test_a_tree_is_not_a_timber_item(province_url: str, tmp_path: Path) -> None:
    with psycopg.connect(province_url) as conn:
        [tree] = conn.execute(
            "SELECT code FROM smarttrees.tags WHERE item_type = 'tree' LIMIT 1").fetchone() or [
            None]
    if tree is None:
        from barcodes.codes import ItemType, make_code

        with psycopg.connect(province_url) as conn:
            tree_id = conn.execute("SELECT min(id) FROM smarttrees.trees").fetchone()[0]  # type: ignore[index]
            tree = make_code(ItemType.TREE, tree_id)
            conn.execute("INSERT INTO smarttrees.tags (code, item_type, item_id) "
                         "VALUES (%s, 'tree', %s)", [tree, tree_id])
    for command in (["eudr", tree, "--out", str(tmp_path)], ["bangke", tree]):
        result = _run(province_url, "trace", *command)
        assert result.code == 1
        assert tree in result.stderr and "not_timber_item" in result.stderr
    bad = _run(province_url, "trace", "eudr", "TR-00000001-0", "--out", str(tmp_path))
    assert bad.code == 1 and "check character" in bad.stderr
    assert list(tmp_path.iterdir()) == []


def _pdf_text(path: Path) -> str:
    pdf = pypdfium2.PdfDocument(str(path))
    try:
        text = " ".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
        return " ".join(text.split())  # wrapped headings read as one line
    finally:
        pdf.close()


def test_bangke_rows_and_totals_match_custody(province_url: str, tmp_path: Path) -> None:
    load, logs = _largest_load(province_url)
    result = _run(province_url, "trace", "bangke", load, "--out", str(tmp_path))
    assert result.code == 0, result.stderr
    book = openpyxl.load_workbook(tmp_path / f"bangke-{load}.xlsx", read_only=True)
    sheet = book.active
    assert sheet is not None
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    header = next(i for i, r in enumerate(values) if r and r[0] == "STT")
    rows = values[header + 1: header + 1 + len(logs)]
    assert [r[0] for r in rows] == list(range(1, len(logs) + 1)), "numbered rows"
    assert [r[1] for r in rows] == [log["code"] for log in logs]
    for row, log in zip(rows, logs, strict=True):
        assert Decimal(str(row[6])).quantize(Decimal("0.0001")) == log["volume"]
        assert row[7] == log["stand"]
        if log["owner_type"] == "household":
            assert row[8] == "Hộ gia đình, cá nhân"
    total = values[header + 1 + len(logs)]
    assert total[1] == "Tổng cộng" and total[2] == len(logs)
    assert Decimal(str(total[6])).quantize(Decimal("0.0001")) == sum(x["volume"] for x in logs)
    assert any(r and r[0] == "TỔ CHỨC, CÁ NHÂN LẬP BẢNG KÊ" for r in values[header:])

    text = _pdf_text(tmp_path / f"bangke-{load}.pdf")
    for words in ("BẢNG KÊ LÂM SẢN", "Tổng cộng", "XÁC NHẬN CỦA CƠ QUAN KIỂM LÂM SỞ TẠI",
                  "Khối lượng (m³)", f"{sum(x['volume'] for x in logs):.4f}"):
        assert words in text, words
    assert all(log["code"] in text for log in logs), "every log is on the list"
    for log in logs:
        if log["owner_type"] == "household" and log["owner_name"]:
            assert log["owner_name"] not in text, "a household's name is personal"


def _epcis(url: str, *args: str, **env: str) -> dict[str, Any]:
    result = _run(url, "trace", "epcis", *args, **env)
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def _schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema_rs.Draft7Validator(json.loads(SCHEMA.read_text()),
                                              validate_formats=True)
    return [e.message for e in validator.iter_errors(document)]


def test_epcis_document_of_a_load_is_valid(province_url: str) -> None:
    load, logs = _largest_load(province_url)
    document = _epcis(province_url, load, SMARTTREES_GS1_COMPANY_PREFIX="8930001")
    assert _schema_errors(document) == []
    events = document["epcisBody"]["eventList"]
    kinds = {e["type"] for e in events}
    assert {"ObjectEvent", "AggregationEvent"} <= kinds
    loading = [e for e in events if e["type"] == "AggregationEvent"]
    assert len(loading) == len(logs)
    assert all(e["parentID"].startswith("https://id.gs1.org/01/") and
               e["parentID"].endswith(f"/21/{load}") for e in loading)
    assert all(e["readPoint"]["id"].startswith("geo:2") for e in events), "geo:lat,lon"
    times = [e["eventTime"] for e in events]
    assert times == sorted(times)
    serialised = json.dumps(document)
    assert "device" not in serialised and "ranger" not in serialised, "no device ids"


def test_epcis_of_the_whole_province_is_valid(province_url: str, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonld"
    result = _run(province_url, "trace", "epcis", "--since", "2000-01-01", "--out", str(out))
    assert result.code == 0, result.stderr
    document = json.loads(out.read_text())
    assert _schema_errors(document) == []
    with psycopg.connect(province_url) as conn:
        counts = dict(conn.execute(
            "SELECT event_type, count(*) FROM smarttrees.scan_events GROUP BY 1").fetchall())
    events = document["epcisBody"]["eventList"]
    assert len(events) == sum(counts.values())
    kinds = [e["type"] for e in events]
    assert kinds.count("TransformationEvent") == counts.get("processed", 0)
    assert kinds.count("AggregationEvent") == counts.get("loaded", 0)
    assert all(e["eventID"].startswith("urn:uuid:") for e in events)
    assert len({e["eventID"] for e in events}) == len(events)
    assert any(e["epcList"][0].startswith("urn:smarttrees:timber_log:TL-")
               for e in events if "epcList" in e), "our URNs without a GS1 prefix"


def test_epcis_refuses_a_bad_gs1_prefix(province_url: str) -> None:
    load, _ = _largest_load(province_url)
    result = _run(province_url, "trace", "epcis", load, SMARTTREES_GS1_COMPANY_PREFIX="12345")
    assert result.code == 1 and result.stdout == ""
    assert "SMARTTREES_GS1_COMPANY_PREFIX" in result.stderr and "6 to 12 digits" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_three_documents_of_a_load_agree(province_url: str, tmp_path: Path) -> None:
    load, logs = _largest_load(province_url)
    custody = sum(log["volume"] for log in logs)
    assert _run(province_url, "trace", "eudr", load, "--out", str(tmp_path)).code == 0
    plots = json.loads((tmp_path / f"eudr-{load}.geojson").read_text())["features"]
    eudr = sum(Decimal(str(f["properties"]["volume_m3"])) for f in plots)
    assert _run(province_url, "trace", "bangke", load, "--out", str(tmp_path),
                "--format", "xlsx").code == 0
    sheet = openpyxl.load_workbook(tmp_path / f"bangke-{load}.xlsx").active
    assert sheet is not None
    total_row = next(r for r in sheet.iter_rows(values_only=True) if r[1] == "Tổng cộng")
    bangke = Decimal(str(total_row[6])).quantize(Decimal("0.0001"))
    events = _epcis(province_url, load)["epcisBody"]["eventList"]
    loaded = [e for e in events if e["type"] == "AggregationEvent"]
    epcis = sum(Decimal(str(e["st:volume_m3"])) for e in loaded)
    assert eudr == bangke == epcis == custody
    assert sorted(e["childEPCs"][0].rsplit(":", 1)[1] for e in loaded) == \
        [log["code"] for log in logs]


def test_http_routes(province_url: str, live_server: str, viewer_token: str) -> None:
    load, logs = _largest_load(province_url)
    auth = {"Authorization": f"Bearer {viewer_token}"}
    with httpx.Client(base_url=live_server, headers=auth, timeout=60) as client:
        eudr = client.get(f"/api/trace/{load}/eudr")
        assert eudr.status_code == 200, eudr.text
        assert eudr.headers["content-type"].startswith("application/geo+json")
        for feature in eudr.json()["features"]:
            _check_plot(feature)
        listing = client.get(f"/api/trace/{load}/bangke", params={"f": "json"}).json()
        assert [r["log_code"] for r in listing["rows"]] == [log["code"] for log in logs]
        assert Decimal(str(listing["volume_m3"])).quantize(Decimal("0.0001")) == \
            sum(log["volume"] for log in logs)
        pdf = client.get(f"/api/trace/{load}/bangke")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        events = client.get("/api/epcis/events", params={"code": load})
        assert events.status_code == 200
        assert events.headers["content-type"].startswith("application/ld+json")
        assert _schema_errors(events.json()) == []
        since = client.get("/api/epcis/events", params={"since": "2025-09-01"}).json()
        assert all(e["eventTime"] >= "2025-09-01" for e in since["epcisBody"]["eventList"])
        # Bad input: named, with its rule's status, never a 500.
        assert client.get("/api/trace/TR-00000001-0/eudr").status_code == 422
        nursery = client.get("/api/trace/ST-NOPE-0001/eudr")
        assert nursery.status_code == 422 and "not_timber_item" in nursery.json()["description"]
        assert client.get(f"/api/trace/{logs[0]['code']}/bangke").status_code == 422
        assert client.get("/api/epcis/events").status_code == 400
        assert client.get("/api/epcis/events", params={"since": "soon"}).status_code == 400
        assert client.get(f"/api/trace/{load}/eudr", params={"part": 2}).status_code == 404
        places = client.get("/api/ledger").json()["places"]
        book = client.get("/api/ledger", params={"place": places[0]}).json()
        assert book["days"] and all(d["balance_logs"] >= 0 for d in book["days"])
        assert client.get("/api/ledger", params={"place": "nowhere"}).status_code == 404
        with psycopg.connect(province_url) as conn:
            conn.execute("UPDATE smarttrees.stands SET geom = 'SRID=4326;MULTIPOLYGON EMPTY' "
                         "WHERE stand_code = %s", [logs[0]["stand"]])
        refused = client.get(f"/api/trace/{load}/eudr")
        assert refused.status_code == 422
        assert "plot_without_polygon" in refused.json()["description"]
        assert logs[0]["stand"] in refused.json()["description"]


def _ledger_csv(url: str, tmp_path: Path, *args: str) -> list[list[str]]:
    import csv

    out = tmp_path / f"ledger{len(list(tmp_path.iterdir()))}.csv"
    result = _run(url, "trace", "ledger", *args, "--out", str(out))
    assert result.code == 0, result.stderr
    return list(csv.reader(out.read_text(encoding="utf-8-sig").splitlines()))


def test_ledger_of_a_mill_balances_with_custody(province_url: str, tmp_path: Path) -> None:
    with psycopg.connect(province_url) as conn:
        place, received = conn.execute(
            "SELECT details ->> 'destination', count(*) FROM smarttrees.scan_events "
            "WHERE event_type = 'received' GROUP BY 1 ORDER BY 2 DESC LIMIT 1").fetchone()  # type: ignore[misc]
        out = dict(conn.execute(
            "SELECT o.event_type, count(*) FROM smarttrees.scan_events o JOIN "
            "smarttrees.scan_events r ON r.item_id = o.item_id AND r.item_type = o.item_type "
            "AND r.event_type = 'received' AND r.details ->> 'destination' = %s "
            "WHERE o.event_type IN ('processed', 'sold') GROUP BY 1", [place]).fetchall())
        held = conn.execute(
            "SELECT count(*), sum(g.volume_m3) FROM smarttrees.timber_logs g JOIN "
            "smarttrees.scan_events r ON r.item_id = g.id AND r.item_type = 'timber_log' "
            "AND r.event_type = 'received' AND r.details ->> 'destination' = %s "
            "WHERE g.status = 'received'", [place]).fetchone()  # type: ignore[misc]
    listed = _run(province_url, "trace", "ledger")
    assert place in listed.stdout.splitlines()
    rows = _ledger_csv(province_url, tmp_path, place)
    assert rows[0][0] == "Ngày" and rows[1][7:] == ["0", "0"]
    days = rows[2:]
    assert sum(int(r[1]) for r in days) == received
    assert sum(int(r[3]) for r in days) == out.get("processed", 0)
    assert sum(int(r[5]) for r in days) == out.get("sold", 0)
    balance, m3 = 0, Decimal(0)
    for r in days:
        balance += int(r[1]) - int(r[3]) - int(r[5])
        m3 += Decimal(r[2]) - Decimal(r[4]) - Decimal(r[6])
        assert (int(r[7]), Decimal(r[8])) == (balance, m3) and balance >= 0 and m3 >= 0
    assert (balance, m3) == (held[0], Decimal(held[1] or 0)), "what is left is what is held"
    middle = days[len(days) // 2]
    later = _ledger_csv(province_url, tmp_path, place, "--from", middle[0])
    before = days[len(days) // 2 - 1]
    assert later[1][7:] == before[7:], "the opening balance is the balance the day before"
    assert later[2:] == days[len(days) // 2:]
    unknown = _run(province_url, "trace", "ledger", "Xưởng không có")
    assert unknown.code == 1 and "unknown_place" in unknown.stderr and place in unknown.stderr


def test_eudr_flags_forest_loss_from_a_registered_raster(province_url: str,
                                                         tmp_path: Path) -> None:
    import numpy as np
    import rasterio
    from rasterio.features import rasterize
    from rasterio.transform import from_origin

    with psycopg.connect(province_url) as conn:
        stands = conn.execute(
            "SELECT DISTINCT ON (commune_code) stand_code, ST_AsGeoJSON(geom) "
            "FROM smarttrees.stands ORDER BY commune_code, stand_code LIMIT 2").fetchall()
    (lost_code, lost_geom), (kept_code, kept_geom) = stands
    shapes = [shapely.from_geojson(lost_geom), shapely.from_geojson(kept_geom)]
    west, south, east, north = shapely.union_all(shapes).buffer(0.01).bounds
    size = 0.0005
    width, height = int((east - west) / size) + 1, int((north - south) / size) + 1
    transform = from_origin(west, north, size, size)
    # Hansen-style loss years: the first stand lost forest in 2022, the second in 2015.
    cells = rasterize([(shapes[0], 22), (shapes[1], 15)], out_shape=(height, width),
                      transform=transform, dtype="uint8")
    assert np.count_nonzero(cells == 22) > 0
    tif = tmp_path / "lossyear.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=width, height=height, count=1,
                       dtype="uint8", crs="EPSG:4326", transform=transform, nodata=255) as dst:
        dst.write(cells, 1)
    added = _run(province_url, "raster", "add", str(tif), "--name", "forest_loss")
    assert added.code == 0, added.stderr
    out = tmp_path / "out"
    result = _run(province_url, "trace", "eudr", lost_code, kept_code, "--out", str(out))
    assert result.code == 0, result.stderr
    [file] = list(out.iterdir())
    plots = {f["properties"]["ProductionPlace"]: f["properties"]
             for f in json.loads(file.read_text())["features"]}
    assert "forest_loss_after_cutoff" in plots[lost_code]["flags"]
    assert plots[lost_code]["forest_loss_share"] > 0.5
    assert "forest_loss_after_cutoff" not in plots[kept_code]["flags"], "2015 is before 2021"
    assert plots[kept_code]["forest_loss_share"] == 0


def test_eudr_of_a_seedling_lot_gives_the_stands_it_was_planted_in(province_url: str,
                                                                   tmp_path: Path) -> None:
    with psycopg.connect(province_url) as conn:
        row = conn.execute(
            "SELECT e.code, array_agg(DISTINCT e.details ->> 'to_stand') "
            "FROM smarttrees.scan_events e WHERE e.event_type = 'dispatched' "
            "AND e.details ? 'to_stand' GROUP BY e.code ORDER BY e.code LIMIT 1").fetchone()
    if row is None:
        pytest.skip("no lot of the test province went to a stand")
    lot, stands = row
    result = _run(province_url, "trace", "eudr", lot, "--out", str(tmp_path))
    assert result.code == 0, result.stderr
    [file] = list(tmp_path.iterdir())
    features = json.loads(file.read_text())["features"]
    assert sorted(f["properties"]["ProductionPlace"] for f in features) == sorted(stands)
    for feature in features:
        _check_plot(feature)
