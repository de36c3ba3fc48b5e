"""The analyst API (`smarttrees.connect()`) against the small generated province."""

from __future__ import annotations

import datetime as dt
import gc

import httpx
import pandas as pd
import psycopg
import pyarrow as pa
import pytest
import shapely

import smarttrees
from smarttrees import catalog
from smarttrees.errors import ArgumentError
from smarttrees.layers import read_layer
from tests.fixtures.databases import copied_database
from tests.fixtures.province import PROVINCE_TEMPLATE
from tests.fixtures.server import serve_database


@pytest.fixture(scope="module")
def shared_province(cluster, province_template):
    """One copy of the province for this module's read-only tests."""
    with copied_database(cluster, PROVINCE_TEMPLATE, "analyst") as url:
        yield url


@pytest.fixture(scope="module")
def db(shared_province):
    with smarttrees.connect(shared_province) as database:
        yield database


def count(url: str, query: str, params: tuple = ()) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchone()[0]


def test_trees_of_the_whole_province_have_the_catalogue_columns(db, province_template):
    trees = db.trees()
    assert len(trees) == province_template.trees
    assert trees.crs.to_epsg() == 4326
    default = [f.name for f in catalog.TREES.default_fields]
    assert list(trees.columns) == ["id", *default, "geometry"]
    assert "carbon_kg" not in default  # a tree's carbon is read on request
    assert trees.geometry.geom_type.eq("Point").all()
    assert trees.id.is_unique
    by_category = trees.category.value_counts().to_dict()
    assert by_category == province_template.trees_by_category


def test_a_tree_reads_as_stored(db, shared_province):
    with psycopg.connect(shared_province) as conn:
        row = conn.execute(
            "SELECT t.tree_code, s.scientific_name, s.vietnamese_name, t.dbh_cm, ST_X(t.geom), ST_Y(t.geom) "
            "FROM smarttrees.trees t JOIN smarttrees.species s ON s.id = t.species_id "
            "WHERE t.stand_id IS NOT NULL ORDER BY t.id LIMIT 1"
        ).fetchone()
    trees = db.trees(bbox=(row[4] - 1e-6, row[5] - 1e-6, row[4] + 1e-6, row[5] + 1e-6))
    tree = trees.loc[trees.tree_code == row[0]].iloc[0]
    assert (tree.species_name, tree.species_vi) == (row[1], row[2])
    assert tree.dbh_cm == pytest.approx(row[3])
    assert (tree.geometry.x, tree.geometry.y) == pytest.approx((row[4], row[5]))
    assert tree.stand_id > 0


def test_bbox_of_the_densest_town_holds_its_street_trees(db, shared_province, province_template):
    box = province_template.densest_town_bbox
    town = db.trees(bbox=box)
    expected = count(
        shared_province,
        "SELECT count(*) FROM smarttrees.trees WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)",
        tuple(box),
    )
    assert len(town) == expected > 1000
    minx, miny, maxx, maxy = town.total_bounds
    assert box[0] <= minx and maxx <= box[2] and box[1] <= miny and maxy <= box[3]


def test_filters_combine_as_sql_would(db, shared_province):
    species = db.species()
    hybrid = species.loc[species.scientific_name.str.startswith("Acacia mangium x")].iloc[0]
    expected = count(
        shared_province,
        "SELECT count(*) FROM smarttrees.trees WHERE commune_code IN ('90001', '90002') "
        "AND species_id = %s AND category = 'plantation'",
        (int(hybrid.id),),
    )
    # by code, by name without diacritics, by Vietnamese name folded
    name = db.communes().set_index("code").loc["90002", "name"]
    found = db.trees(commune=["90001", name.upper()], species="keo lai", category="Plantation")
    assert len(found) == expected
    assert set(found.species_name) <= {hybrid.scientific_name}
    by_id = db.trees(commune=["90001", "90002"], species=int(hybrid.id), category="plantation")
    assert sorted(by_id.tree_code) == sorted(found.tree_code)


def test_columns_choose_fields_and_keep_id_and_geometry(db):
    trees = db.trees(columns=["tree_code", "species_vi"], limit=10)
    assert list(trees.columns) == ["id", "tree_code", "species_vi", "geometry"]
    assert trees.species_vi.notna().all()


def test_every_layer_reads(db, province_template):
    assert len(db.stands()) == province_template.stands
    assert len(db.nurseries()) == province_template.nurseries
    assert len(db.lots()) == province_template.seedling_lots
    assert len(db.logs()) == province_template.timber_logs
    assert len(db.communes()) == province_template.communes
    assert db.stands().area_ha.dtype == "float64"  # numeric arrives as a number
    assert db.lots().geometry.notna().all()


def test_no_personal_field_is_read(db, shared_province):
    assert "owner_name" not in db.stands().columns
    some_tree = db.trees(limit=1).tree_code.iloc[0]
    history = db.history(tree_code=some_tree)
    assert "actor" not in history.columns
    assert list(history.change) == ["insert"]
    support = db.read("citizen_support_by_commune")
    assert not {"full_name", "national_id", "case_no"} & set(support.columns)


def test_history_since_and_updates(db, shared_province):
    code = db.trees(limit=1).tree_code.iloc[0]
    with psycopg.connect(shared_province) as conn:
        conn.execute("UPDATE smarttrees.trees SET dbh_cm = 77 WHERE tree_code = %s", (code,))
    history = db.history(tree_code=code)
    assert list(history.change) == ["insert", "update"]
    assert history.changes.iloc[-1]["dbh_cm"]["new"] == 77
    recent = db.history(since=history.changed_at.iloc[-1])
    assert code in set(recent.tree_code)
    with psycopg.connect(shared_province) as conn:  # migration 0028: read through its index
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = conn.execute(
            "EXPLAIN (FORMAT JSON) SELECT * FROM smarttrees.tree_history "
            "WHERE changed_at >= %s ORDER BY changed_at, id", (history.changed_at.iloc[-1],)
        ).fetchone()[0]
    assert "tree_history_changed_idx" in str(plan)


def test_communes_at_a_date(db):
    assert len(db.communes(date="2025-07-01")) == len(db.communes())
    assert db.communes(date=dt.date(2026, 1, 1)).valid_to.isna().all()


def test_custody_of_one_code(db, shared_province):
    everything = db.custody()
    assert list(everything.columns) == ["id", *catalog.CUSTODY_EVENTS.field_names, "geometry"]
    with pytest.raises(ArgumentError, match="code: no tag 'TL-99999999-X'"):
        db.custody(code="TL-99999999-X")


@pytest.mark.parametrize(
    ("kwargs", "argument", "listed"),
    [
        ({"commune": "Atlantis"}, "commune", "90001"),
        ({"species": "Keo la trm"}, "species", "Acacia auriculiformis"),
        ({"category": "forest"}, "category", "plantation"),
        ({"columns": ["owner_name"]}, "columns", "tree_code"),
    ],
)
def test_unknown_values_name_the_argument_and_the_valid_ones(db, kwargs, argument, listed):
    with pytest.raises(ArgumentError) as caught:
        db.trees(**kwargs)
    assert caught.value.argument == argument
    assert str(caught.value).startswith(f"{argument}: ")
    assert any(listed in v for v in caught.value.valid)


def test_a_misspelt_species_gets_the_closest_name(db):
    with pytest.raises(ArgumentError, match=r"closest: Keo lá tràm \(Acacia auriculiformis\)"):
        db.trees(species="Keo la trm")


def test_bbox_in_the_wrong_order_is_explained(db, province_template):
    minx, miny, maxx, maxy = province_template.densest_town_bbox
    with pytest.raises(ArgumentError, match=r"bbox: latitudes .* latitude first\?"):
        db.trees(bbox=(miny, minx, maxy, maxx))
    with pytest.raises(ArgumentError, match=r"bbox: minimum above maximum"):
        db.trees(bbox=(maxx, maxy, minx, miny))
    with pytest.raises(ArgumentError, match="bbox: expected four"):
        db.trees(bbox=(1, 2, 3))


def test_a_date_before_any_commune_version_lists_the_versions(db):
    with pytest.raises(ArgumentError, match=r"date: 2020-01-01 is before .*valid: from 2025-07-01"):
        db.communes(date="2020-01-01")
    with pytest.raises(ArgumentError, match="date: 'yesterday' is not a date"):
        db.communes(date="yesterday")


def test_to_arrow_gives_geoarrow_for_duckdb_or_lonboard(db, province_template):
    town = db.trees(bbox=province_template.densest_town_bbox, columns=["tree_code"])
    table = pa.table(town.to_arrow(geometry_encoding="geoarrow"))
    assert table.num_rows == len(town)
    assert table.schema.field("geometry").metadata[b"ARROW:extension:name"] == b"geoarrow.point"
    wkb = pa.table(town.to_arrow())
    assert shapely.from_wkb(wkb.column("geometry").to_pylist()[0]).equals(town.geometry.iloc[0])


def test_connect_uses_the_configured_database(province_env, province_template):
    with smarttrees.connect() as database:
        assert len(database.nurseries()) == province_template.nurseries


def test_read_layer_is_an_alias(shared_province):
    trees = read_layer("trees", limit=5, url=shared_province)
    assert list(trees.columns) == ["id", *(f.name for f in catalog.TREES.default_fields),
                                   "geometry"]
    with pytest.raises(ArgumentError, match="layer: no layer 'citizens'.*trees"):
        read_layer("citizens", url=shared_province)


def test_catalogue_fields_match_the_ogc_items(shared_province):
    with serve_database(shared_province) as base:
        for layer in (catalog.TREES, catalog.STANDS):
            feature = httpx.get(f"{base}/collections/{layer.id}/items", params={"limit": 1}).json()[
                "features"
            ][0]
            assert set(feature["properties"]) == set(layer.field_names), layer.id


def test_ioc_totals_read_as_integers(db, province_template):
    support = db.read("citizen_support_by_commune")
    documents = db.read("documents_by_commune")
    assert support.people.dtype.kind == "i" or str(support.people.dtype) == "Int64"
    assert 0 < support.amount_vnd.sum() <= province_template.support_total_vnd
    assert documents.documents.sum() > 0 and documents.courier_saving_vnd.dtype.kind == "i"


def test_a_dropped_connection_is_reopened(db_url):
    with smarttrees.connect(db_url) as database:
        assert len(database.species()) > 0
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        assert len(database.species()) > 0
        with psycopg.connect(db_url, autocommit=True) as conn:  # again, before a plain read
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        assert database.trees().empty


def test_a_database_without_the_carbon_views_says_to_upgrade(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP VIEW smarttrees.commune_carbon")
    from smarttrees.errors import SmartTreesError

    with smarttrees.connect(db_url) as database, pytest.raises(
        SmartTreesError, match="smarttrees db upgrade"
    ):
        database.carbon(by="commune", refresh=False)


def test_every_layer_shared_with_the_ogc_api_has_its_field_names():
    from gis_api import collections

    ogc = {c.id: c for c in (*collections.COLLECTIONS, *getattr(collections, "IOC_COLLECTIONS", ()))}
    shared = [layer for layer in catalog.LAYERS if layer.id in ogc]
    assert {"trees", "stands", "seedling_lots", "documents_by_commune_month"} <= {x.id for x in shared}
    for layer in shared:
        extra = {"valid_to"} if layer.id == "communes" else set()  # the API reads every version
        assert set(layer.field_names) - extra == set(ogc[layer.id].property_names), layer.id


def test_ioc_indicators(db, province_template):
    for (indicator, by), layer in catalog.IOC_LAYERS.items():
        frame = db.ioc(indicator, by=by)
        assert [c for c in frame.columns if c != "geometry"][-len(layer.field_names):] == list(
            layer.field_names
        ), (indicator, by)
    trees = db.ioc("trees", commune="90001")
    assert list(trees.commune_code) == ["90001"]
    assert db.ioc("trees").trees.sum() <= province_template.trees
    with pytest.raises(ArgumentError, match="indicator: no IOC indicator 'weather'.*documents"):
        db.ioc("weather")
    with pytest.raises(ArgumentError, match="by: trees is not available by 'agency_month'.*month"):
        db.ioc("trees", by="agency_month")


def test_keys_keep_their_type(db):
    assert "90001" in set(db.carbon(by="commune", refresh=False).commune_code)
    assert db.ioc("trees").commune_code.map(type).eq(str).all()
    assert db.trees(limit=3).id.dtype.kind == "i"


def test_a_read_leaves_the_garbage_collector_as_it_found_it(db):
    from smarttrees.layer_sql import Where

    assert gc.isenabled()
    assert len(db.trees(columns=["tree_code"])) > 0
    assert gc.isenabled()
    broken = Where()
    broken.add("no_such_column = %s", 1)
    with pytest.raises(Exception, match="no_such_column"):  # fails inside the read
        db.read("trees", where=broken)
    assert gc.isenabled()
    gc.disable()  # a caller who paused it keeps it paused
    try:
        assert len(db.trees(limit=3)) == 3
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_read_in_parts_gives_the_same_trees(shared_province, monkeypatch):
    from smarttrees import parallel_read
    from smarttrees.api import Database

    for kwargs in ({"category": ["urban", "plantation"]}, {"carbon": True}):
        with Database(shared_province, parts=1) as one:
            whole = one.trees(**kwargs)
        with monkeypatch.context() as patched:
            patched.setattr(parallel_read, "MIN_ROWS", 1)  # the small province is below it
            with Database(shared_province, parts=3) as three:
                split = three.trees(**kwargs)
                assert len(three._extra) == 2, "the read was not split"
        split = split.sort_values("id", ignore_index=True)
        whole = whole.sort_values("id", ignore_index=True)
        assert split.drop(columns="geometry").equals(whole.drop(columns="geometry"))
        assert split.geometry.geom_equals_exact(whole.geometry, 0).all()
    # Each part joined its own range of tree_carbon (catalog.TREES.ranged_source).
    assert split.agb_kg.notna().all() and split.carbon_equation.notna().all()


def test_a_read_in_parts_keeps_the_row_without_a_key(province_url, monkeypatch):
    from smarttrees import parallel_read
    from smarttrees.api import Database

    with psycopg.connect(province_url) as conn:  # a tree of no known species: key NULL
        conn.execute("UPDATE smarttrees.trees SET species_id = NULL "
                     "WHERE id = (SELECT min(id) FROM smarttrees.trees)")
    with Database(province_url, parts=1) as one:
        whole = one.carbon(by="species")
    monkeypatch.setattr(parallel_read, "MIN_ROWS", 1)
    with Database(province_url, parts=2) as two:
        split = two.carbon(by="species", refresh=False)
    assert whole.species_id.isna().sum() == 1
    # The same sums, added up in another order by the parts' plans: equal to rounding.
    pd.testing.assert_frame_equal(split.sort_values("species_id", ignore_index=True),
                                  whole.sort_values("species_id", ignore_index=True))


def test_ewkb_points_decode_like_shapely():
    from smarttrees.arrow_frames import ewkb_points

    shapes = [shapely.Point(105.8, 21.6), shapely.Point(106.1, 21.4)]
    plain = pa.array(shapely.to_wkb(shapely.set_srid(shapes, 4326), include_srid=True,
                                    byte_order=1, flavor="extended"), pa.binary())
    decoded = ewkb_points(plain)
    assert [(p.x, p.y) for p in decoded] == [(105.8, 21.6), (106.1, 21.4)]
    # Anything else goes through shapely: big-endian, missing, empty.
    mixed = pa.array([shapely.to_wkb(shapes[0], byte_order=0), None,
                      shapely.to_wkb(shapely.Point(), include_srid=False)], pa.binary())
    first, missing, empty = ewkb_points(mixed)
    assert (first.x, first.y) == (105.8, 21.6) and missing is None and empty is None


def test_a_read_in_parts_reads_one_snapshot(province_url, monkeypatch):
    """A change committed after a split read began shows in none of its parts."""
    import threading

    from smarttrees import parallel_read
    from smarttrees.api import Database

    with psycopg.connect(province_url) as conn:
        first, last = conn.execute("SELECT min(id), max(id) FROM smarttrees.trees").fetchone()
    monkeypatch.setattr(parallel_read, "MIN_ROWS", 1)
    changed = threading.Lock()
    done = []
    with Database(province_url, parts=2) as db:
        fetch = db._fetch

        def change_then_fetch(conn, query, params, **options):
            with changed:  # before the first part's query: both ends of the key range change
                if not done and " >= " in query.as_string(None):
                    with psycopg.connect(province_url, autocommit=True) as other:
                        other.execute("UPDATE smarttrees.trees SET dbh_cm = 321 "
                                      "WHERE id IN (%s, %s)", (first, last))
                    done.append(True)
            return fetch(conn, query, params, **options)

        monkeypatch.setattr(db, "_fetch", change_then_fetch)
        during = db.trees(columns=["dbh_cm"]).set_index("id").dbh_cm
        assert done, "the read was not split"
        after = db.trees(columns=["dbh_cm"]).set_index("id").dbh_cm
    assert during[first] != 321 and during[last] != 321
    assert after[first] == after[last] == 321


def test_a_packed_read_gives_the_frame_read_row_by_row(province_url, monkeypatch):
    from smarttrees import packed_read, parallel_read
    from smarttrees.api import Database

    monkeypatch.setattr(parallel_read, "MIN_ROWS", 1)
    monkeypatch.setattr(packed_read, "CHUNK", 1000)  # several chunks a part
    ways: dict[str, list[bool]] = {"packed": [], "row by row": []}

    def counting(way, real):
        def counted(*args, **kwargs):
            ways[way].append(True)
            return real(*args, **kwargs)
        return counted

    monkeypatch.setattr(packed_read, "read_packed", counting("packed", packed_read.read_packed))
    monkeypatch.setattr(parallel_read, "read_in_parts",
                        counting("row by row", parallel_read.read_in_parts))

    def same(**kwargs):
        with Database(province_url, parts=2) as rows, \
                Database(province_url, parts=2, packed=True) as packed:
            one, other = rows.trees(**kwargs), packed.trees(**kwargs)
        one, other = (f.sort_values("id", ignore_index=True) for f in (one, other))
        pd.testing.assert_frame_equal(other.drop(columns="geometry"), one.drop(columns="geometry"))
        assert other.geometry.geom_equals_exact(one.geometry, 0).all()
        return other

    packed = same(columns=["planted_on", "stand_id", "updated_at"])
    assert packed.stand_id.isna().any() and list(packed.columns) == [
        "id", "planted_on", "stand_id", "updated_at", "geometry"]
    with psycopg.connect(province_url) as conn:  # NULLs in numbers, dates and texts
        conn.execute("UPDATE smarttrees.trees SET dbh_cm = NULL, condition = NULL, "
                     "planted_on = NULL, source = '' WHERE id % 7 = 0")
        conn.execute("""UPDATE smarttrees.trees SET attributes = '{"Ghi chú": "a, b"}' """
                     "WHERE id % 11 = 0")
    packed = same()
    assert packed.dbh_cm.isna().any() and packed.condition.isna().any()
    assert packed.attributes.notna().any() and len(packed) > 1000
    assert len(ways["packed"]) == 2 and len(ways["row by row"]) == 2

    # A text holding the packing's separator cannot travel packed: the read goes row by row.
    with psycopg.connect(province_url) as conn:
        code = conn.execute("UPDATE smarttrees.trees SET source = E'a\\x1fb' "
                            "WHERE id = (SELECT max(id) FROM smarttrees.trees) "
                            "RETURNING tree_code").fetchone()[0]
    packed = same()
    assert len(ways["packed"]) == 3 and len(ways["row by row"]) == 4
    assert packed.set_index("tree_code").source[code] == "a\x1fb"
