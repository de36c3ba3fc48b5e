"""Carbon per tree (migration 0010) against values computed by hand from the stored trees."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pandas as pd
import psycopg
import pytest

import smarttrees
from smarttrees import carbon
from smarttrees.errors import ArgumentError
from smarttrees.settings import get_settings


@pytest.fixture
def db(province_url):
    with smarttrees.connect(province_url) as database:
        yield database


@pytest.fixture
def sql(province_url):
    with psycopg.connect(province_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def carbon_settings(monkeypatch):
    """Set SMARTTREES_CARBON_* for one test."""

    def apply(**values):
        for name, value in values.items():
            monkeypatch.setenv(f"SMARTTREES_CARBON_{name.upper()}", str(value))
        get_settings.cache_clear()

    yield apply
    get_settings.cache_clear()


def tree(sql, where: str, params=()):
    """(id, dbh, height, wood density, species id) of the first tree matching ``where``.

    Diameter and height are stored as ``real``: their float32 values are what SQL computes
    with (psycopg reads them as the shortest decimal, a slightly different double).
    """
    row = sql.execute(
        "SELECT t.id, t.dbh_cm, t.height_m, s.wood_density::float8, t.species_id "
        "FROM smarttrees.trees t JOIN smarttrees.species s ON s.id = t.species_id "
        f"WHERE {where} ORDER BY t.id LIMIT 1",
        params,
    ).fetchone()
    tree_id, dbh, height, rho, species_id = row
    return tree_id, f32(dbh), f32(height), rho, species_id


def f32(value):
    return None if value is None else float(np.float32(value))


def carbon_of(db, tree_id):
    trees = db.carbon(by="tree")
    return trees.set_index("tree_id").loc[tree_id]


def chave_eq4(wood_density, dbh, height):
    return 0.0673 * (wood_density * dbh**2 * height) ** 0.976


def chave_eq7(wood_density, dbh, e):
    ln_d = math.log(dbh)
    return math.exp(-1.803 - 0.976 * e + 0.976 * math.log(wood_density) + 2.673 * ln_d
                    - 0.0299 * ln_d**2)


def test_measured_height_uses_chave_eq4(db, sql):
    tree_id, dbh, height, rho, _ = tree(sql, "t.height_m IS NOT NULL AND t.dbh_cm > 10")
    row = carbon_of(db, tree_id)
    agb = chave_eq4(rho, dbh, height)
    assert row.equation == "chave2014_eq4" and row.height_source == "measured"
    assert row.agb_kg == pytest.approx(agb, rel=1e-9)
    assert row.carbon_kg == pytest.approx(agb * 0.47, rel=1e-9)
    assert row.co2e_kg == pytest.approx(agb * 0.47 * 44 / 12, rel=1e-9)
    assert not row.outside_range


def test_missing_height_comes_from_the_species_height_diameter_model(db, sql):
    species_id = sql.execute(
        "SELECT species_id FROM smarttrees.trees GROUP BY 1 HAVING count(*) > 100 ORDER BY 1 LIMIT 1"
    ).fetchone()[0]
    tree_id, dbh, _, rho, _ = tree(sql, "t.species_id = %s", (species_id,))
    db.refresh_carbon(force=True)  # the model, fitted on the trees as they are
    measured = np.array(sql.execute(
        "SELECT dbh_cm, height_m FROM smarttrees.trees WHERE species_id = %s "
        "AND height_m IS NOT NULL AND condition IS DISTINCT FROM 'removed'", (species_id,)
    ).fetchall(), dtype=np.float32).astype(np.float64)
    # One measured tree fewer in 100+ is within the refit share: the model stays as fitted.
    sql.execute("UPDATE smarttrees.trees SET height_m = NULL WHERE id = %s", (tree_id,))
    x, y = np.log(measured[:, 0]), np.log(measured[:, 1])
    b, a = np.polyfit(x, y, 1)
    rse2 = ((y - (a + b * x)) ** 2).sum() / (len(x) - 2)
    height = math.exp(a + b * math.log(dbh) + rse2 / 2)

    row = carbon_of(db, tree_id)
    assert (row.equation, row.height_source) == ("chave2014_eq4", "hd_model")
    assert row.height_m == pytest.approx(height, rel=1e-6)
    assert row.agb_kg == pytest.approx(chave_eq4(rho, dbh, height), rel=1e-6)


def test_no_height_model_falls_back_to_chave_eq7_with_e_a_setting(db, sql, carbon_settings):
    tree_id, dbh, _, rho, species_id = tree(sql, "t.dbh_cm > 5")
    sql.execute("UPDATE smarttrees.trees SET height_m = NULL WHERE species_id = %s", (species_id,))
    row = carbon_of(db, tree_id)
    assert row.equation == "chave2014_eq7" and pd.isna(row.height_source)
    assert row.agb_kg == pytest.approx(chave_eq7(rho, dbh, 0.0), rel=1e-9)

    carbon_settings(chave_e=0.25, fraction=0.5)
    row = carbon_of(db, tree_id)  # the settings changed: recomputed
    assert row.agb_kg == pytest.approx(chave_eq7(rho, dbh, 0.25), rel=1e-9)
    assert row.carbon_kg == pytest.approx(chave_eq7(rho, dbh, 0.25) * 0.5, rel=1e-9)


def test_a_species_equation_is_used_and_its_range_flagged(db, sql):
    species_id, median = sql.execute(
        "SELECT s.id, percentile_disc(0.5) WITHIN GROUP (ORDER BY t.dbh_cm)::float8 "
        "FROM smarttrees.species s JOIN smarttrees.trees t ON t.species_id = s.id "
        "WHERE t.category = 'plantation' GROUP BY s.id ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()  # e.g. Keo lai, Acacia hybrid
    sql.execute(
        "INSERT INTO smarttrees.allometric_equations "
        "(species_id, name, form, a, b, dbh_min_cm, dbh_max_cm, source) "
        "VALUES (%s, 'test_mangium', 'a*D^b', 0.1, 2.4, 1, %s, 'made up by this test')",
        (species_id, median),
    )
    inside = tree(sql, "t.species_id = %s AND t.dbh_cm < %s", (species_id, median))
    outside = tree(sql, "t.species_id = %s AND t.dbh_cm > %s", (species_id, median))
    trees = db.carbon(by="tree").set_index("tree_id")
    for (tree_id, dbh, *_), flagged in ((inside, False), (outside, True)):
        row = trees.loc[tree_id]
        assert row.equation == "test_mangium"
        assert row.agb_kg == pytest.approx(0.1 * dbh**2.4, rel=1e-9)
        assert bool(row.outside_range) is flagged


def test_removed_trees_and_unknown_species_get_no_estimate(db, sql):
    tree_id, *_ = tree(sql, "true")
    sql.execute("UPDATE smarttrees.trees SET condition = 'removed' WHERE id = %s", (tree_id,))
    row = carbon_of(db, tree_id)
    assert pd.isna(row.equation) and pd.isna(row.agb_kg)


def test_an_edit_is_seen_by_the_next_read(db, sql):
    tree_id, dbh, height, rho, _ = tree(sql, "t.height_m IS NOT NULL")
    before = carbon_of(db, tree_id).agb_kg
    sql.execute("UPDATE smarttrees.trees SET dbh_cm = dbh_cm * 2 WHERE id = %s", (tree_id,))
    after = carbon_of(db, tree_id).agb_kg
    assert after == pytest.approx(chave_eq4(rho, f32(dbh * 2), height), rel=1e-6)
    assert after > before


def test_an_edit_committed_after_a_later_ones_refresh_is_not_missed(db, sql, province_url):
    """The first of two edits commits last, after a refresh began: its tree is recomputed."""
    db.refresh_carbon()
    first = tree(sql, "t.height_m IS NOT NULL")[0]
    second = tree(sql, "t.height_m IS NOT NULL AND t.id > %s", (first,))[0]
    edit = "UPDATE smarttrees.trees SET dbh_cm = dbh_cm * 2 WHERE id = %s"
    with psycopg.connect(province_url) as slow, psycopg.connect(province_url) as other:
        slow.execute(edit, (first,))        # draws the lower history id, not committed yet
        sql.execute(edit, (second,))        # the higher one, committed
        refresh = threading.Thread(target=carbon.refresh, args=(other,))
        refresh.start()
        deadline = time.monotonic() + 20
        while refresh.is_alive() and time.monotonic() < deadline and not sql.execute(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND pid = %s", (other.info.backend_pid,)).fetchone():
            time.sleep(0.05)
        slow.commit()
        refresh.join(20)
    db.refresh_carbon()
    stored = _frame(sql, "SELECT * FROM smarttrees.tree_carbon WHERE tree_id IN "
                         f"({first}, {second}) ORDER BY tree_id")
    fresh = _frame(sql, "SELECT * FROM smarttrees.tree_carbon_computed WHERE tree_id IN "
                        f"({first}, {second}) ORDER BY tree_id")
    pd.testing.assert_frame_equal(stored, fresh)


def test_communes_and_species_add_up_to_the_trees(db):
    trees = db.carbon(by="tree")
    communes = db.carbon(by="commune")
    assert communes.carbon_t.sum() == pytest.approx(trees.carbon_kg.sum() / 1000, rel=1e-9)
    per_commune = trees.groupby("commune_code").carbon_kg.sum() / 1000
    joined = communes.set_index("commune_code").carbon_t
    assert joined.loc[per_commune.index].to_numpy() == pytest.approx(per_commune.to_numpy())
    species = db.carbon(by="species")
    assert species.co2e_t.sum() == pytest.approx(trees.co2e_kg.sum() / 1000, rel=1e-9)
    assert communes.crs.to_epsg() == 4326
    one = db.carbon(by="commune", commune="90001")
    assert list(one.commune_code) == ["90001"]


def test_a_stand_without_trees_is_estimated_from_its_planted_count(db, sql):
    pair = sql.execute(
        "SELECT a.id, b.id FROM smarttrees.stands a JOIN smarttrees.stands b "
        "ON a.species_id = b.species_id AND a.planting_year = b.planting_year AND a.id < b.id "
        "WHERE a.planted_count IS NOT NULL ORDER BY a.id LIMIT 1"
    ).fetchone()
    if pair is None:
        pytest.skip("no two stands of the same species and year in this province")
    empty, other = pair
    sql.execute("DELETE FROM smarttrees.trees WHERE stand_id = %s", (empty,))
    stands = db.carbon(by="stand").set_index("stand_id")
    trees = db.carbon(by="tree")
    siblings = stands.loc[
        (stands.species_id == stands.loc[empty, "species_id"])
        & (stands.planting_year == stands.loc[empty, "planting_year"])
        & (stands.method == "inventoried trees")
    ].index
    of_siblings = trees.loc[trees.stand_id.isin(siblings) & trees.equation.notna()]
    mean_tree_kg = of_siblings.carbon_kg.sum() / len(of_siblings)
    row = stands.loc[empty]
    assert row.method.startswith("planted count")
    assert row.carbon_t == pytest.approx(row.planted_count * mean_tree_kg / 1000, rel=1e-9)
    assert row.carbon_t_per_ha == pytest.approx(row.carbon_t / row.area_ha, rel=1e-9)
    assert stands.loc[other, "method"] == "inventoried trees"


def test_an_unknown_grouping_lists_the_choices(db):
    with pytest.raises(ArgumentError, match="by: no grouping 'district'.*commune"):
        db.carbon(by="district")


def test_the_refresh_command(province_env):
    import subprocess
    import sys

    def run(*extra):
        done = subprocess.run([sys.executable, "-m", "smarttrees", "carbon", "refresh", *extra],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "carbon recomputed in" in run("--force")
    assert "carbon already current" in run()
    with psycopg.connect(province_env, autocommit=True) as conn:
        conn.execute("UPDATE smarttrees.trees SET dbh_cm = 50 WHERE id = (SELECT min(id) FROM smarttrees.trees)")
    assert "carbon recomputed in" in run()  # the edit made the figures stale


def test_trees_read_with_their_carbon_on_request(db, sql):
    tree_id, dbh, height, rho, _ = tree(sql, "t.height_m IS NOT NULL AND t.dbh_cm > 5")
    plain = db.trees(limit=3)
    assert "carbon_kg" not in plain.columns
    trees = db.trees(carbon=True).set_index("id")
    assert trees.loc[tree_id, "agb_kg"] == pytest.approx(chave_eq4(rho, dbh, height), rel=1e-6)
    assert trees.loc[tree_id, "carbon_equation"] == "chave2014_eq4"
    assert not trees.loc[tree_id, "carbon_outside_range"]
    by_tree = db.carbon(by="tree").set_index("tree_id")
    assert trees.carbon_kg.sum() == pytest.approx(by_tree.carbon_kg.sum(), rel=1e-9)
    # An edit is seen by the next read: naming a carbon field refreshes the figures first.
    sql.execute("UPDATE smarttrees.trees SET dbh_cm = dbh_cm * 2 WHERE id = %s", (tree_id,))
    one = db.trees(columns=["tree_code", "agb_kg"]).set_index("id")
    assert one.loc[tree_id, "agb_kg"] == pytest.approx(chave_eq4(rho, f32(dbh * 2), height),
                                                     rel=1e-6)


def test_ogc_items_carry_the_carbon_of_the_last_refresh(db, sql, province_url):
    import httpx

    from tests.fixtures.server import serve_database

    *_, species_id = tree(sql, "t.dbh_cm > 5")  # a species without heights: equation 7
    sql.execute("UPDATE smarttrees.trees SET height_m = NULL WHERE species_id = %s", (species_id,))
    db.refresh_carbon()
    by_tree = db.carbon(by="tree", refresh=False).set_index("tree_id")
    by_commune = db.carbon(by="commune", refresh=False).set_index("commune_code")
    eq7 = by_tree.loc[by_tree.equation == "chave2014_eq7"]
    assert len(eq7), "the province has no tree without a height model"
    with serve_database(province_url) as base:
        items = httpx.get(f"{base}/collections/trees/items", timeout=60,
                          params={"limit": 20, "f": "json"}).json()["features"]
        for feature in items:
            row, props = by_tree.loc[feature["id"]], feature["properties"]
            assert props["carbon_kg"] == pytest.approx(row.carbon_kg, rel=1e-9)
            assert props["co2e_kg"] == pytest.approx(row.carbon_kg * 44 / 12, rel=1e-9)
            assert props["carbon_equation"] == row.equation
            assert props["carbon_outside_range"] == bool(row.outside_range)
        queryables = httpx.get(f"{base}/collections/trees/queryables", timeout=60).json()
        assert {"agb_kg", "carbon_kg", "co2e_kg", "carbon_equation"} <= set(
            queryables["properties"])
        filtered = httpx.get(f"{base}/collections/trees/items", timeout=60, params={
            "filter": "carbon_equation = 'chave2014_eq7'", "limit": 500, "f": "json"}).json()
        assert len(filtered["features"]) == min(len(eq7), 500)
        assert {f["id"] for f in filtered["features"]} <= set(eq7.index)
        ioc = httpx.get(f"{base}/collections/trees_by_commune/items", timeout=60,
                        params={"limit": 200, "f": "json", "skipGeometry": "true"}).json()
        assert ioc["features"]
        for feature in ioc["features"]:
            expected = by_commune.loc[feature["id"], "carbon_t"]
            assert feature["properties"]["carbon_t"] == pytest.approx(expected, rel=1e-9)
        # An edited tree shows no carbon until the next refresh, rather than its old figures.
        edited = items[0]["id"]
        sql.execute("UPDATE smarttrees.trees SET dbh_cm = dbh_cm + 1 WHERE id = %s", (edited,))
        item = httpx.get(f"{base}/collections/trees/items/{edited}", timeout=60,
                         params={"f": "json"}).json()
        assert item["properties"]["carbon_kg"] is None
        assert item["properties"]["dbh_cm"] is not None
        db.refresh_carbon()
        item = httpx.get(f"{base}/collections/trees/items/{edited}", timeout=60,
                         params={"f": "json"}).json()
        assert item["properties"]["carbon_kg"] == pytest.approx(
            db.carbon(by="tree", refresh=False).set_index("tree_id").loc[edited, "carbon_kg"])


def test_a_load_brings_the_stored_carbon_up_to_date(db, province_env, tmp_path):
    from tests.fixtures.cli import cli_env, run_cli
    from tests.fixtures.survey_writer import make_survey, write_survey

    db.refresh_carbon()
    before = db.carbon(by="commune", refresh=False).carbon_t.sum()
    path = write_survey(make_survey(40, lang="en", prefix="CL"), tmp_path / "new_trees.csv")
    done = run_cli("load", "trees", str(path), env=cli_env())
    assert done.code == 0, done.stderr
    assert "inserted 40" in done.stdout and "carbon: " in done.stdout
    assert "recomputed in" in done.stdout
    # What the OGC API and the IOC layer serve, read without refreshing: the new trees count.
    after = db.carbon(by="commune", refresh=False).carbon_t.sum()
    new = db.carbon(by="tree", refresh=False)
    added = new.loc[new.tree_code.str.startswith("CL-"), "carbon_kg"]
    assert len(added) == 40 and added.notna().all()
    assert after - before == pytest.approx(added.sum() / 1000, rel=1e-6)
    again = run_cli("load", "trees", str(path), env=cli_env())
    assert "unchanged 40" in again.stdout and "carbon: already current" in again.stdout
    off = run_cli("load", "trees", str(path), env=cli_env(SMARTTREES_CARBON_AFTER_LOAD="false"))
    assert off.code == 0 and "carbon" not in off.stdout



# The stored figures against the same computation from scratch (the models as stored).
_STORED_SUMS = "SELECT * FROM smarttrees.tree_carbon_by_commune ORDER BY commune_code"
_FRESH_SUMS = """
SELECT coalesce(commune_code, '') AS commune_code, count(*) AS trees,
       count(equation) AS estimated, sum(agb_kg) / 1000 AS agb_t,
       sum(carbon_kg) / 1000 AS carbon_t, sum(co2e_kg) / 1000 AS co2e_t
FROM smarttrees.tree_carbon_computed GROUP BY 1 ORDER BY 1
"""


def _frame(sql, query):
    cur = sql.execute(query)
    return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def test_a_reload_of_a_few_changed_trees_recomputes_exactly_them(db, sql, province_env, tmp_path):
    from tests.fixtures.cli import cli_env, run_cli
    from tests.fixtures.survey_writer import make_survey, write_survey

    survey = make_survey(40, lang="en", prefix="CI")
    path = write_survey(survey, tmp_path / "survey.csv")
    assert run_cli("load", "trees", str(path), env=cli_env()).code == 0
    db.refresh_carbon(force=True)
    before = db.carbon(by="tree", refresh=False).set_index("tree_id")
    models = _frame(sql, "SELECT * FROM smarttrees.species_height_models ORDER BY species_id")

    measured = survey.index[survey.height_m.notna()][:3]
    survey.loc[measured, "height_m"] += 1.0
    survey.loc[survey.index[-1], "dbh_cm"] += 2.0
    write_survey(survey, path)
    done = run_cli("load", "trees", str(path), env=cli_env())
    assert done.code == 0, done.stderr
    assert "updated 4" in done.stdout and "(4 trees changed)" in done.stdout

    after = db.carbon(by="tree", refresh=False).set_index("tree_id").sort_index()
    before = before.sort_index()
    changed_codes = set(survey.tree_code[[*measured, survey.index[-1]]])
    same = [(before[c] == after[c]) | (before[c].isna() & after[c].isna())
            for c in ("agb_kg", "height_m", "dbh_cm")]
    differ = ~(same[0] & same[1] & same[2])
    assert set(after.tree_code[differ]) == changed_codes
    # Equal to a computation of every tree from scratch, with the models kept as fitted.
    stored = _frame(sql, "SELECT * FROM smarttrees.tree_carbon ORDER BY tree_id")
    fresh = _frame(sql, "SELECT * FROM smarttrees.tree_carbon_computed ORDER BY tree_id")
    pd.testing.assert_frame_equal(stored, fresh)
    pd.testing.assert_frame_equal(_frame(sql, _STORED_SUMS), _frame(sql, _FRESH_SUMS),
                                  check_dtype=False, rtol=1e-12)
    assert _frame(sql, "SELECT * FROM smarttrees.species_height_models ORDER BY species_id"
                  ).equals(models)


def test_models_are_refitted_when_a_species_measured_trees_move_by_the_share(db, sql):
    db.refresh_carbon(force=True)
    species_id, fitted = sql.execute(
        "SELECT species_id, trees FROM smarttrees.species_height_models "
        "ORDER BY trees DESC LIMIT 1").fetchone()
    # A fifth of the species' measured trees lose their height: more than the 10 % share.
    sql.execute("UPDATE smarttrees.trees SET height_m = NULL WHERE id IN (SELECT id FROM "
                "smarttrees.trees WHERE species_id = %s AND height_m IS NOT NULL "
                "ORDER BY id LIMIT %s)", (species_id, fitted // 5))
    db.refresh_carbon()
    trees = sql.execute("SELECT trees FROM smarttrees.species_height_models "
                        "WHERE species_id = %s", (species_id,)).fetchone()[0]
    assert trees == fitted - fitted // 5
