"""The synthetic province: counts, geometry, determinism, exact totals, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from etl.synthetic import SCALES, ProvinceAlreadyLoaded, generate_province, loaded_province
from etl.synthetic.ioc import split_total
from etl.synthetic.province import build
from smarttrees.database import connect
from smarttrees.errors import SmartTreesError
from smarttrees.settings import Settings
from tests.fixtures.databases import copied_database
from tests.fixtures.province import PROVINCE_TEMPLATE

SMALL = SCALES["small"]


@pytest.fixture(scope="module")
def province_db(province_template, cluster):
    """One copy of the small province shared by this module's read-only tests."""
    with copied_database(cluster, PROVINCE_TEMPLATE, "synthetic_readonly") as url:
        yield url


def _count(conn, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_counts_match_the_summary(province_template, province_db):
    s = province_template
    with connect(province_db) as conn:
        assert _count(conn, "communes") == s.communes == SMALL.communes
        assert _count(conn, "admin_units WHERE level = 'province'") == 1
        assert _count(conn, "communes WHERE unit_type = 'phường'") == s.urban_communes >= 2
        assert _count(conn, "trees") == s.trees == SMALL.trees
        by_category = dict(
            conn.execute("SELECT category, count(*) FROM trees GROUP BY 1").fetchall()
        )
        assert by_category == s.trees_by_category
        assert by_category == {
            "urban": SMALL.urban_trees,
            "scattered": SMALL.scattered_trees,
            "plantation": SMALL.plantation_trees,
        }
        assert (
            _count(conn, "tree_history WHERE change = 'insert' AND source = 'generator'") == s.trees
        )
        assert _count(conn, "stands") == s.stands
        assert _count(conn, "stands WHERE harvest_allowed_m3 IS NOT NULL") == s.harvest_stands >= 1
        assert _count(conn, "nurseries") == s.nurseries
        assert _count(conn, "seedling_lots") == s.seedling_lots
        assert _count(conn, "timber_logs") == s.timber_logs
        assert _count(conn, "agencies") == s.agencies
        assert _count(conn, "documents") == s.documents == SMALL.documents
        assert loaded_province(province_db) == s


def test_every_tree_lies_in_its_commune_and_stand(province_db):
    with connect(province_db) as conn:
        outside = conn.execute(
            "SELECT count(*) FROM trees t LEFT JOIN communes c ON c.code = t.commune_code "
            "WHERE c.geom IS NULL OR NOT ST_Within(t.geom, c.geom)"
        ).fetchone()[0]
        assert outside == 0
        plantation_outside = conn.execute(
            "SELECT count(*) FROM trees t LEFT JOIN stands s ON s.id = t.stand_id "
            "WHERE t.category = 'plantation' AND (s.id IS NULL OR NOT ST_Within(t.geom, s.geom))"
        ).fetchone()[0]
        assert plantation_outside == 0
        assert _count(conn, "trees WHERE category <> 'plantation' AND stand_id IS NOT NULL") == 0
        stands_outside = conn.execute(
            "SELECT count(*) FROM stands s JOIN communes c ON c.code = s.commune_code "
            "WHERE NOT ST_Within(s.geom, c.geom)"
        ).fetchone()[0]
        assert stands_outside == 0
        overlapping = conn.execute(
            "SELECT count(*) FROM stands a JOIN stands b ON a.id < b.id AND ST_Overlaps(a.geom, b.geom)"
        ).fetchone()[0]
        assert overlapping == 0


def test_densest_town_bbox_holds_its_street_trees(province_template, province_db):
    xmin, ymin, xmax, ymax = province_template.densest_town_bbox
    with connect(province_db) as conn:
        inside, town, busiest = conn.execute(
            "SELECT count(*) FILTER (WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)), "
            "count(*), (SELECT max(n) FROM (SELECT count(*) AS n FROM trees "
            "  WHERE category = 'urban' GROUP BY commune_code) x) "
            "FROM trees WHERE category = 'urban' AND commune_code = %s",
            [xmin, ymin, xmax, ymax, province_template.densest_town_commune],
        ).fetchone()
    assert inside == town == busiest
    assert town >= SMALL.urban_trees // 3


def test_sizes_are_plausible_and_conditions_mostly_good(province_db):
    with connect(province_db) as conn:
        good, total = conn.execute(
            "SELECT count(*) FILTER (WHERE condition = 'good'), count(*) FROM trees"
        ).fetchone()
        assert good / total > 0.7
        # Young plantations are thinner than old street trees.
        plantation, urban = conn.execute(
            "SELECT avg(dbh_cm) FILTER (WHERE category = 'plantation'), "
            "avg(dbh_cm) FILTER (WHERE category = 'urban') FROM trees"
        ).fetchone()
        assert 5 < plantation < urban < 150
        species = dict(
            conn.execute(
                "SELECT s.vietnamese_name, count(*) FROM trees t JOIN species s ON s.id = t.species_id "
                "WHERE t.category = 'plantation' GROUP BY 1"
            ).fetchall()
        )
        keo = sum(n for name, n in species.items() if name.startswith("Keo"))
        assert keo > 0.3 * SMALL.plantation_trees


def test_tree_codes_are_unique_and_well_formed(province_db):
    with connect(province_db) as conn:
        bad = conn.execute(
            r"SELECT count(*) FROM trees WHERE tree_code !~ ('^' || commune_code || '-[USP]\d{6}$')"
        ).fetchone()[0]
        distinct = conn.execute("SELECT count(DISTINCT tree_code) FROM trees").fetchone()[0]
    assert bad == 0
    assert distinct == SMALL.trees


def test_timber_volumes_stay_within_the_harvest_allowance(province_db):
    with connect(province_db) as conn:
        over = conn.execute(
            "SELECT count(*) FROM (SELECT s.id, s.harvest_allowed_m3, sum(l.volume_m3) AS felled "
            "FROM timber_logs l JOIN stands s ON s.id = l.stand_id GROUP BY s.id) x "
            "WHERE harvest_allowed_m3 IS NULL OR felled > harvest_allowed_m3"
        ).fetchone()[0]
        # A log lies where it was last scanned: those still where they were felled, in their stand.
        logs_outside = conn.execute(
            "SELECT count(*) FROM timber_logs l JOIN stands s ON s.id = l.stand_id "
            "WHERE l.status = 'felled' AND NOT ST_Within(l.geom, s.geom)"
        ).fetchone()[0]
    assert over == 0
    assert logs_outside == 0


def test_citizen_support_adds_up_exactly(province_db):
    with connect(province_db) as conn:
        count, total, smallest = conn.execute(
            "SELECT count(*), sum(amount_vnd), min(amount_vnd) FROM restricted.citizen_support_cases"
        ).fetchone()
        public_total = conn.execute(
            "SELECT sum(amount_vnd) FROM citizen_support_by_commune"
        ).fetchone()[0]
        fake_ids = _count(conn, "restricted.citizen_support_cases WHERE national_id LIKE '999%'")
    assert count == SMALL.support_cases
    assert total == SMALL.support_total_vnd
    assert smallest > 0
    assert public_total <= total
    assert fake_ids == count


def test_documents_cover_nine_months_and_count_courier_savings(province_db):
    with connect(province_db) as conn:
        first, last, electronic, saved = conn.execute(
            "SELECT min(sent_on), max(sent_on), count(*) FILTER (WHERE electronic), "
            "sum(courier_saving_vnd) FROM documents"
        ).fetchone()
    assert (first.year, first.month) == (2025, 1)
    assert (last.year, last.month) == (2025, 9)
    assert electronic > 0.9 * SMALL.documents
    assert saved == 4_000 * electronic


def test_generate_applies_the_ioc_settings(db_url):
    """A configured courier cost and privacy threshold are what the generated layers apply."""
    generate_province(db_url, scale="small", settings=Settings(courier_cost_vnd=5_000,
                                                               privacy_min_count=7))
    with connect(db_url) as conn:
        parameters = dict(conn.execute("SELECT name, value FROM ioc_parameters").fetchall())
        electronic, stored = conn.execute(
            "SELECT count(*) FILTER (WHERE electronic), sum(courier_saving_vnd) FROM documents"
        ).fetchone()
        layer = conn.execute("SELECT sum(sent_electronic), sum(courier_saving_vnd) "
                             "FROM ioc_documents_agency_month").fetchone()
        smallest_shown = conn.execute(
            "SELECT min(people) FROM citizen_support_by_commune WHERE NOT suppressed"
        ).fetchone()[0]
    assert parameters == {"courier_cost_vnd": 5_000, "privacy_min_count": 7}
    assert stored == 5_000 * electronic
    assert layer == (electronic, 5_000 * electronic)
    assert smallest_shown is None or smallest_shown >= 7


def test_the_full_total_splits_exactly():
    amounts = split_total(23_300_000_000, np.random.default_rng(1).lognormal(0, 0.5, 11_669))
    assert len(amounts) == 11_669
    assert int(amounts.sum()) == 23_300_000_000
    assert amounts.min() >= 1_000
    assert not (amounts % 1_000).any()


def test_the_database_holds_exactly_what_the_seed_generates(province_db):
    with connect(province_db) as conn:
        catalogue = dict(conn.execute("SELECT scientific_name, id FROM species").fetchall())
        rows = conn.execute(
            "SELECT tree_code, ST_X(geom), ST_Y(geom), dbh_cm FROM trees ORDER BY id"
        ).fetchall()
    again = build(SMALL, 2025, catalogue)
    assert [r[0] for r in rows] == again.tree_codes.tolist()
    assert [r[1] for r in rows] == again.trees.lon.tolist()
    assert [r[2] for r in rows] == again.trees.lat.tolist()
    assert (np.array([r[3] for r in rows], dtype=np.float32) == again.trees.dbh_cm).all()


def test_same_seed_same_province_other_seed_other(db_url):
    with connect(db_url) as conn:
        catalogue = dict(conn.execute("SELECT scientific_name, id FROM species").fetchall())
    a, b = build(SMALL, 7, catalogue), build(SMALL, 7, catalogue)
    c = build(SMALL, 8, catalogue)
    assert (a.tree_codes == b.tree_codes).all()
    assert (a.trees.lon == b.trees.lon).all() and (a.trees.lat == b.trees.lat).all()
    assert (a.cases.amount_vnd == b.cases.amount_vnd).all()
    assert not (a.trees.lon[:100] == c.trees.lon[:100]).all()


def test_a_second_generation_is_refused_and_changes_nothing(province_url):
    with pytest.raises(ProvinceAlreadyLoaded):
        generate_province(province_url, scale="small")
    with connect(province_url) as conn:
        assert _count(conn, "trees") == SMALL.trees


def test_real_communes_file(db_url, shared_data: Path):
    path = shared_data / "admin" / "communes_2025_approx.geojson"
    summary = generate_province(db_url, scale="small", seed=3, communes=path)
    assert summary.communes == 92
    assert summary.communes_source == path.name
    with connect(db_url) as conn:
        assert _count(conn, "communes WHERE code = '05809' AND name = 'An Khánh'") == 1
        assert _count(conn, "communes WHERE unit_type = 'phường'") == summary.urban_communes == 15
        outside = conn.execute(
            "SELECT count(*) FROM trees t JOIN communes c ON c.code = t.commune_code "
            "WHERE NOT ST_Within(t.geom, c.geom)"
        ).fetchone()[0]
        assert outside == 0
        assert _count(conn, "trees") == SMALL.trees


def test_a_communes_file_without_codes_is_refused(db_url, tmp_path):
    bad = tmp_path / "communes.geojson"
    bad.write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"ten": "A"},'
        ' "geometry": {"type": "Polygon", "coordinates": [[[105, 21], [106, 21], [106, 22], [105, 21]]]}}]}'
    )
    with pytest.raises(Exception, match=r"communes.geojson: no commune code column"):
        generate_province(db_url, scale="small", communes=bad)
    with connect(db_url) as conn:
        assert _count(conn, "admin_units") == 0
        assert _count(conn, "datasets") == 0


def _cli(args: list[str], url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMARTTREES_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "smarttrees", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_generate_is_idempotent(db_url):
    first = _cli(["generate", "--scale", "small", "--seed", "11"], db_url)
    assert first.returncode == 0, first.stderr
    assert "5,000 trees" in first.stdout
    with connect(db_url) as conn:
        before = conn.execute("SELECT count(*), max(id) FROM tree_history").fetchone()
    second = _cli(["generate", "--scale", "small", "--seed", "11"], db_url)
    assert second.returncode == 0, second.stderr
    assert "already loaded" in second.stdout
    with connect(db_url) as conn:
        assert conn.execute("SELECT count(*), max(id) FROM tree_history").fetchone() == before
        assert _count(conn, "trees") == SMALL.trees


def test_cli_generate_rejects_an_unknown_scale(db_url):
    result = _cli(["generate", "--scale", "huge"], db_url)
    assert result.returncode != 0
    assert "huge" in result.stderr + result.stdout


def test_materialised_views_are_fresh_after_the_load(province_db):
    with connect(province_db) as conn:
        views = [
            r[0]
            for r in conn.execute(
                "SELECT matviewname FROM pg_matviews WHERE schemaname = 'smarttrees'"
            )
        ]
        if "tree_grid" not in views:
            pytest.skip("no tree_grid view in this schema")
        counted = conn.execute("SELECT sum(n) FROM tree_grid").fetchone()[0]
        version, newest = conn.execute(
            "SELECT (SELECT version FROM tree_grid_version), (SELECT max(id) FROM tree_history)"
        ).fetchone()
    assert counted == SMALL.trees
    assert version == newest


def test_communes_already_in_force_stop_the_load_cleanly(db_url):
    with connect(db_url) as conn:
        conn.execute(
            "INSERT INTO admin_units (level, code, name, valid_from) "
            "VALUES ('commune', '90003', 'Xã Có Sẵn', '2025-07-01')"
        )
    with pytest.raises(SmartTreesError, match=r"admin_units"):
        generate_province(db_url, scale="small")
    with connect(db_url) as conn:
        assert _count(conn, "admin_units") == 1
        assert _count(conn, "trees") == 0
        assert _count(conn, "datasets") == 0


def test_rank_within_numbers_each_group_in_order():
    from etl.synthetic.arrays import rank_within

    assert rank_within(np.array(["b", "a", "b", "a", "b"])).tolist() == [0, 0, 1, 1, 2]


def test_street_trees_spill_over_from_full_wards():
    from etl.synthetic.trees import share_within

    rng = np.random.default_rng(0)
    shares = share_within(100, np.array([10.0, 1.0, 1.0]), np.array([20, 100, 100]), rng)
    assert shares.tolist()[0] == 20
    assert shares.sum() == 100
    with pytest.raises(SmartTreesError, match=r"too small for 500 street trees"):
        share_within(500, np.array([1.0, 1.0, 1.0]), np.array([20, 100, 100]), rng)


def test_cli_names_the_bad_communes_file_without_a_traceback(db_url, tmp_path):
    bad = tmp_path / "wards.geojson"
    bad.write_text("this is not GeoJSON")
    result = _cli(["generate", "--communes", str(bad)], db_url)
    assert result.returncode == 1
    # The CLI's error console wraps long lines (a long temporary path may be split).
    assert str(bad) in result.stderr.replace("\n", "")
    assert "Traceback" not in result.stderr
    with connect(db_url) as conn:
        assert _count(conn, "admin_units") == 0
