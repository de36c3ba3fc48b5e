"""`smarttrees export`: every format read back by GDAL with the right rows, types and CRS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pyogrio
import pytest

from smarttrees.errors import ExportError
from smarttrees.export import export_layer

SMARTTREES = [sys.executable, "-m", "smarttrees"]


def export(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMARTTREES_DATABASE_URL": url}
    return subprocess.run([*SMARTTREES, "export", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)


@pytest.mark.parametrize("suffix", [".gpkg", ".fgb", ".shp", ".geojson", ".csv", ".xlsx"])
def test_trees_export_opens_in_gdal_with_every_tree(province_url: str, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"trees{suffix}"
    fmt = {".shp": "shp", ".fgb": "fgb", ".gpkg": "gpkg"}.get(suffix, suffix[1:])
    result = export_layer(province_url, "trees", fmt, out)
    assert result.rows == 5000
    frame = pyogrio.read_dataframe(out, read_geometry=suffix not in (".csv", ".xlsx"))
    if suffix == ".xlsx":
        assert {"x", "y"} <= set(frame.columns) and frame["x"].between(105, 107).all()
    assert len(frame) == 5000
    names = {"species_name", "species_vi", "dbh_cm", "commune_code"}
    if suffix == ".shp":
        names = {n[:10] for n in names}  # dBase field names
    assert names <= set(frame.columns)
    assert frame["species_vi"].notna().all()
    codes = set(frame["tree_code"])
    with psycopg.connect(province_url) as conn:
        assert codes == {r[0] for r in conn.execute("SELECT tree_code FROM smarttrees.trees")}
    if suffix in (".gpkg", ".fgb", ".geojson"):
        info = pyogrio.read_info(out)
        types = dict(zip(info["fields"], info["dtypes"], strict=True))
        assert types["dbh_cm"].startswith("float") and types["tree_code"] == "object"
        assert types["stand_id"].startswith("int"), types["stand_id"]
        assert info["geometry_type"] == "Point" and frame.crs.to_epsg() == 4326
        assert frame.total_bounds[0] > 105 and frame.total_bounds[3] < 23


def test_shapefile_has_prj_cpg_and_warns_of_cut_names(province_url: str, tmp_path: Path) -> None:
    out = tmp_path / "cay.shp"
    result = export("trees", "--out", str(out), url=province_url)
    assert result.returncode == 0, result.stderr
    for side in (".shx", ".dbf", ".prj", ".cpg"):
        assert out.with_suffix(side).exists(), side
    assert "UTF-8" in out.with_suffix(".cpg").read_text()
    assert "species_name → species_na" in result.stderr
    assert not list(tmp_path.glob(".export-*"))


def test_export_in_vn2000_and_a_bbox(province_url: str, province_template, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "town.gpkg"
    bbox = ",".join(str(v) for v in province_template.densest_town_bbox)
    result = export("trees", "--out", str(out), "--bbox", bbox, "--crs", "EPSG:9213", url=province_url)
    assert result.returncode == 0, result.stderr
    frame = pyogrio.read_dataframe(out)
    with psycopg.connect(province_url) as conn:
        expected = conn.execute(
            "SELECT count(*) FROM smarttrees.trees WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)",
            list(province_template.densest_town_bbox)).fetchone()[0]
    assert len(frame) == expected >= 1010
    assert frame.crs.to_epsg() == 9213
    x0, y0, _, _ = frame.total_bounds
    assert 300_000 < x0 < 700_000 and 2_000_000 < y0 < 2_600_000  # metres in TM-3


def test_polygons_and_communes_export(province_url: str, tmp_path: Path) -> None:
    with psycopg.connect(province_url) as conn:
        stands = conn.execute("SELECT count(*) FROM smarttrees.stands").fetchone()[0]
    for layer in ("stands", "communes", "nurseries", "timber_logs", "custody_events"):
        out = tmp_path / f"{layer}.fgb"
        export_layer(province_url, layer, "fgb", out)
        frame = pyogrio.read_dataframe(out)
        assert len(frame) > 0 or layer == "custody_events"
    stands_frame = pyogrio.read_dataframe(tmp_path / "stands.fgb")
    assert len(stands_frame) == stands and "owner_name" not in stands_frame.columns  # personal


def test_attribute_layers_export_as_tables(province_url: str, tmp_path: Path) -> None:
    out = tmp_path / "species.csv"
    export_layer(province_url, "species", "csv", out)
    frame = pyogrio.read_dataframe(out, read_geometry=False)
    assert "Acacia mangium" in set(frame["scientific_name"])
    with pytest.raises(ExportError, match="has no geometry"):
        export_layer(province_url, "species", "fgb", tmp_path / "species.fgb")


@pytest.mark.parametrize(
    ("layer", "options", "message"),
    [
        ("citizen_support_cases", {}, "unknown layer 'citizen_support_cases'; layers:"),
        ("trees", {"bbox": (106, 22, 105, 21)}, "minimum first"),
        ("trees", {"crs": "EPSG:99999999"}, "not a coordinate system"),
    ],
)
def test_bad_export_arguments_name_the_problem(province_url: str, tmp_path: Path, layer: str,
                                               options: dict[str, object], message: str) -> None:
    with pytest.raises(ExportError, match=message):
        export_layer(province_url, layer, "gpkg", tmp_path / "x.gpkg", **options)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trees", "--out", "x.gpkg", "--bbox", "a,b"], "four numbers"),
        (["trees", "--out", "x.doc"], "--format is needed"),
        (["trees", "--out", "/nonexistent/dir/x.gpkg"], "does not exist"),
    ],
)
def test_bad_export_commands_are_one_line(province_url: str, tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run([*SMARTTREES, "export", *args], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "SMARTTREES_DATABASE_URL": province_url}, timeout=120)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not list(tmp_path.iterdir())


def test_a_writer_that_stops_early_leaves_no_reader_behind() -> None:
    import threading

    import pyarrow as pa

    from smarttrees.export import _prefetched

    batch = pa.record_batch({"x": list(range(1000))})
    source = pa.RecordBatchReader.from_batches(batch.schema, (batch for _ in range(10_000)))
    counter = [0]
    with _prefetched(source, counter) as stream:
        next(iter(stream))  # the writer takes one batch, then fails (a full disk, say)
    assert counter == [1000]
    assert not [t for t in threading.enumerate() if t.name == "export-reader"]
