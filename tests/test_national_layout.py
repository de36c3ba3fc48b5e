"""The national layout: `smarttrees db partition-trees` and the same API over the partitions.

Two provinces (19 and 20), each with one commune of the small API data set, and a tree whose
commune is unknown; the command partitions the trees and the server then answers as before:
pages, counts, tiles, writes with their history, a duplicate code refused across provinces.
"""

from __future__ import annotations

import httpx
import psycopg
import pytest
from psycopg import sql

from gis_api import features, provinces
from gis_api.collections import get
from gis_api.database import server_conninfo
from gis_api.items_params import parse_items
from smarttrees.database import connect, with_search_path
from smarttrees.partitioning import PROVINCES_SQL, partition_counts
from smarttrees.settings import Settings
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.server import TREE_COUNT, make_token, seed_api_data, serve_database

pytestmark = pytest.mark.slow

# Trees G100…G149 are moved to commune 00002 (province 20); G0 has no commune.
MOVED = 50


def make_national(url: str) -> str:
    """The small API data set over two provinces in database ``url``, partitioned by the
    command line."""
    seed_api_data(url)
    with connect(url) as conn:
        conn.execute("UPDATE admin_units SET parent_code = CASE code WHEN '00001' THEN '19' "
                     "ELSE '20' END WHERE level = 'commune'")
        conn.execute("UPDATE trees SET commune_code = '00002' "
                     "WHERE substr(tree_code, 2)::int >= %s", [TREE_COUNT - MOVED])
        conn.execute("UPDATE trees SET commune_code = NULL WHERE tree_code = 'G0'")
    outcome = run_cli("db", "partition-trees", env=cli_env(SMARTTREES_DATABASE_URL=url),
                      timeout=120)
    assert outcome.code == 0, outcome.stderr
    assert "trees_p19: 99 trees" in outcome.stdout and "trees_p20: 50 trees" in outcome.stdout
    return url


@pytest.fixture
def national(db_url: str) -> str:
    """The partitioned data set in the test's own database (for a test that writes)."""
    return make_national(db_url)


@pytest.fixture(scope="module")
def read_national(module_db_url: str) -> str:
    """The partitioned data set shared by the module's tests that only read it."""
    return make_national(module_db_url)


def test_partitions_by_province_with_their_indexes(read_national: str) -> None:
    with connect(read_national) as conn:
        assert partition_counts(conn) == {"trees_p19": 99, "trees_p20": MOVED,
                                          "trees_unassigned": 1}
        indexes = {r[0] for r in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'trees_p20'")}
        assert any("USING gist (geom)" in d for d in indexes)
        assert any("UNIQUE INDEX" in d and "(tree_code)" in d for d in indexes)
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT id FROM trees WHERE commune_code = ANY(%s) "
            "AND geom && ST_MakeEnvelope(105.79, 21.49, 105.84, 21.53, 4326)", [["00002"]]))
        assert "trees_p20" in plan and "trees_p19" not in plan and "unassigned" not in plan
        triggers = {r[0] for r in conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'smarttrees.trees'::regclass")}
        assert {"trees_history_insert", "trees_history_update", "trees_history_delete",
                "trees_count_insert", "trees_unique_code_insert"} <= triggers
        views = {r[0] for r in conn.execute(
            "SELECT matviewname FROM pg_matviews WHERE schemaname = 'smarttrees'")}
        assert {"tree_grid", "tree_grid_version"} <= views
        # The counts kept by triggers survived the copy.
        assert conn.execute("SELECT n FROM row_counts WHERE table_name = 'trees'").fetchone() \
            == (TREE_COUNT,)
    again = run_cli("db", "partition-trees", env=cli_env(SMARTTREES_DATABASE_URL=read_national),
                    timeout=60)
    assert again.code == 1 and "partitioned already" in again.stderr


def test_the_api_is_the_same_over_partitions(national: str) -> None:
    token = make_token(national, "editor")
    auth = {"Authorization": f"Bearer {token}"}
    with serve_database(national) as base, httpx.Client(base_url=base, timeout=30) as client:
        page = client.get("/collections/trees/items", params={"limit": 20}).json()
        assert page["numberMatched"] == TREE_COUNT and len(page["features"]) == 20
        everything = client.get("/collections/trees/items", params={"limit": 500}).json()
        assert len({f["id"] for f in everything["features"]}) == TREE_COUNT
        in_20 = client.get("/collections/trees/items",
                           params={"commune_code": "00002", "limit": 500}).json()
        assert len(in_20["features"]) == MOVED
        tile = client.get("/collections/trees/tiles/WebMercatorQuad/15/14378/26015")
        assert tile.status_code == 200 and tile.content
        feature = {"type": "Feature",
                   "geometry": {"type": "Point", "coordinates": [105.85, 21.51]},
                   "properties": {"tree_code": "NEW-20", "category": "urban",
                                  "commune_code": "00002"}}
        created = client.post("/collections/trees/items", json=feature, headers=auth)
        assert created.status_code == 201
        assert client.get(created.headers["location"]).json()["properties"]["tree_code"] \
            == "NEW-20"
        twice = dict(feature, properties={**feature["properties"], "tree_code": "G5"})
        assert client.post("/collections/trees/items", json=twice, headers=auth).status_code \
            == 409  # G5 lives in province 19: refused in province 20's partition too
        g5 = everything["features"][5]["id"]
        moved = client.patch(f"/collections/trees/items/{g5}", headers=auth,
                             json={"type": "Feature", "properties": {"commune_code": "00002"}})
        assert moved.status_code == 204
    with connect(national) as conn:
        assert partition_counts(conn)["trees_p20"] == MOVED + 2
        history = conn.execute(
            "SELECT change, actor FROM tree_history WHERE tree_code IN ('NEW-20', %s) "
            "AND actor IS NOT NULL ORDER BY id",
            [everything["features"][5]["properties"]["tree_code"]]).fetchall()
        assert history == [("insert", "test-editor"), ("update", "test-editor")]
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO trees (tree_code, category, commune_code, geom) VALUES "
                         "('G7', 'urban', NULL, ST_SetSRID(ST_MakePoint(105.8, 21.5), 4326))")


def generic_plan(conninfo: str, params: dict[str, str]) -> str:
    """The plan of a trees page once PostgreSQL plans it generically, in a server session.

    psycopg prepares a statement from its fifth run; PostgreSQL may then plan it once for any
    values (a generic plan), without the box's row estimate. Parallel workers are made to look
    free, as they do to the planner on a table of millions of trees.
    """
    with psycopg.connect(conninfo, options=with_search_path(conninfo)) as conn:
        communes = provinces.from_rows(conn.execute(PROVINCES_SQL).fetchall())
        query = parse_items(get("trees"), params, 100, 10_000, province_communes=communes)
        statement, args = features.page_text_sql(query)  # what the server runs
        conn.execute("SET parallel_setup_cost = 0")
        conn.execute("SET parallel_tuple_cost = 0")
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(statement, args, prepare=True).fetchall()
        name = conn.execute("SELECT name FROM pg_prepared_statements").fetchone()
        assert name is not None
        explain = sql.SQL("EXPLAIN EXECUTE {}({})").format(
            sql.Identifier(name[0]), sql.SQL(", ").join(sql.Literal(a) for a in args))
        return "\n".join(r[0] for r in conn.execute(explain))


def test_bbox_pages_over_partitions_start_no_workers_and_prune_by_province(read_national: str) -> None:
    server = server_conninfo(read_national, Settings())
    box = "105.79,21.49,105.84,21.53"
    # Without a province every partition is read, each through its own GIST index, in the
    # server's process: a Gather of workers cost 50-60 ms for a 1 ms page.
    plan = generic_plan(server, {"bbox": box, "limit": "100"})
    assert "Gather" not in plan and "Parallel" not in plan, plan
    for partition in ("trees_p19", "trees_p20"):
        assert f"{partition}_geom_idx on {partition}" in plan, plan
    # With one, only its partition is read, in a generic plan too (pruned as it starts).
    plan = generic_plan(server, {"bbox": box, "limit": "100", "province": "20"})
    assert "on trees_p20" in plan and "trees_p19" not in plan and "unassigned" not in plan, plan
    with psycopg.connect(read_national, options=with_search_path(read_national)) as conn:
        query = parse_items(get("trees"), {"bbox": box, "province": "20"}, 100, 10_000,
                            province_communes={"20": ("00002",)})
        statement, args = features.page_text_sql(query)  # what the server runs
        custom = "\n".join(r[0] for r in conn.execute(sql.SQL("EXPLAIN ") + statement, args))
    assert "on trees_p20" in custom and "trees_p19" not in custom, custom


def test_a_province_filter_in_items_and_queryables(read_national: str) -> None:
    with serve_database(read_national) as base, httpx.Client(base_url=base, timeout=30) as client:
        def ids(**params: str) -> set[str]:
            response = client.get("/collections/trees/items", params={"limit": 500, **params})
            assert response.status_code == 200, response.text
            return {f["properties"]["tree_code"] for f in response.json()["features"]}

        in_20 = ids(province="20")
        assert len(in_20) == MOVED and in_20 == ids(commune_code="00002")
        assert len(ids(province="19")) == TREE_COUNT - MOVED - 1  # G0 has no commune
        assert ids(province="99") == set()
        assert ids(filter="province = '20'") == in_20
        assert ids(filter="province IN ('19', '20')") == ids(filter="commune_code IS NOT NULL")
        assert ids(filter="province <> '19'") == in_20
        assert ids(filter="province = '20' AND dbh_cm > 0") == ids(
            commune_code="00002", filter="dbh_cm > 0")
        # The same over a bbox, and the trees' download as a file too.
        box = "105.0,21.0,107.0,23.0"
        assert ids(province="20", bbox=box) == in_20
        csv = client.get("/collections/trees/items", params={"province": "20", "f": "csv",
                                                             "limit": 500})
        assert csv.status_code == 200 and len(csv.text.strip().splitlines()) == MOVED + 1

        refused = client.get("/collections/trees/items", params={"filter": "province > '19'"})
        assert refused.status_code == 400 and "province" in refused.json()["description"]
        no_communes = client.get("/collections/seedling_lots/items", params={"province": "19"})
        assert no_communes.status_code == 400 and "province" in no_communes.json()["description"]

        queryables = client.get("/collections/trees/queryables", params={"f": "json"}).json()
        assert queryables["properties"]["province"]["type"] == "string"
        schema = client.get("/collections/trees/schema", params={"f": "json"}).json()
        assert "province" not in schema["properties"]  # a filter, not a property of a tree
        api = client.get("/openapi", params={"f": "json"}).json()
        parameters = api["paths"]["/collections/trees/items"]["get"]["parameters"]
        assert "province" in {p.get("name") for p in parameters}
