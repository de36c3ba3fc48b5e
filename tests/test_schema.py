import psycopg
import pytest

from smarttrees import schema


def test_migrations_twice_change_nothing(db_url):
    assert schema.pending_migrations(db_url) == []
    assert schema.upgrade(db_url) == []


def test_species_catalogue_is_loaded(conn):
    count, with_density = conn.execute(
        "SELECT count(*), count(wood_density) FROM species"
    ).fetchone()
    assert count >= 40
    assert with_density == count
    name = conn.execute(
        "SELECT vietnamese_name FROM species WHERE scientific_name = 'Acacia mangium'"
    ).fetchone()[0]
    assert name == "Keo tai tượng"


def _insert_tree(conn, code="T1", category="urban", dbh=20.0, lon=105.84, lat=21.59):
    conn.execute(
        "INSERT INTO trees (tree_code, category, dbh_cm, geom) "
        "VALUES (%s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
        [code, category, dbh, lon, lat],
    )


@pytest.mark.parametrize(
    ("kwargs", "constraint"),
    [
        ({"category": "forest"}, "trees_category_check"),
        ({"dbh": -3.0}, "trees_dbh_cm_check"),
    ],
)
def test_tree_constraints_refuse_bad_values(conn, kwargs, constraint):
    with pytest.raises(psycopg.errors.CheckViolation) as exc:
        _insert_tree(conn, **kwargs)
    assert exc.value.diag.constraint_name == constraint


def test_tree_geometry_must_be_a_4326_point(conn):
    with pytest.raises(psycopg.Error):
        conn.execute(
            "INSERT INTO trees (tree_code, category, geom) VALUES "
            "('T2', 'urban', ST_SetSRID(ST_MakePoint(500000, 2400000), 3405))"
        )


def test_tree_codes_are_unique(conn):
    _insert_tree(conn, "T1")
    with pytest.raises(psycopg.errors.UniqueViolation):
        _insert_tree(conn, "T1")


def test_every_change_to_a_tree_is_kept_in_history(conn):
    conn.execute("SELECT set_config('smarttrees.actor', 'surveyor-7', true)")
    conn.execute("SELECT set_config('smarttrees.source', 'survey-2026.csv', true)")
    _insert_tree(conn, "T1", dbh=20.0)
    conn.execute("UPDATE trees SET dbh_cm = 24.5 WHERE tree_code = 'T1'")
    conn.execute("UPDATE trees SET dbh_cm = 24.5 WHERE tree_code = 'T1'")  # no real change
    conn.execute("DELETE FROM trees WHERE tree_code = 'T1'")
    rows = conn.execute(
        "SELECT change, actor, source, changes FROM tree_history WHERE tree_code = 'T1' ORDER BY id"
    ).fetchall()
    assert [r[0] for r in rows] == ["insert", "update", "delete"]
    assert all(r[1] == "surveyor-7" and r[2] == "survey-2026.csv" for r in rows)
    assert rows[1][3] == {"dbh_cm": {"old": 20.0, "new": 24.5}}
    assert rows[2][3]["tree_code"] == "T1"


def test_history_names_a_move_by_its_position_and_keeps_no_geometry(conn):
    _insert_tree(conn, "T2", lon=105.84, lat=21.59)
    conn.execute("UPDATE trees SET geom = ST_SetSRID(ST_MakePoint(105.8412345678, 21.59), 4326) "
                 "WHERE tree_code = 'T2'")
    conn.execute("DELETE FROM trees WHERE tree_code = 'T2'")
    moved, deleted = (r[0] for r in conn.execute(
        "SELECT changes FROM tree_history WHERE tree_code = 'T2' AND change <> 'insert' "
        "ORDER BY id").fetchall())
    assert moved == {"lon": {"old": 105.84, "new": 105.8412346}}
    assert deleted["lon"] == 105.8412346 and deleted["lat"] == 21.59
    assert {"geom", "created_at", "updated_at", "load_digest"}.isdisjoint(deleted)
    assert {"tree_code", "dbh_cm", "category", "attributes"} <= set(deleted)


def test_admin_unit_versions_cannot_overlap(conn):
    sql = (
        "INSERT INTO admin_units (level, code, name, valid_from, valid_to) "
        "VALUES ('commune', '05809', 'An Khánh', %s, %s)"
    )
    conn.execute(sql, ["2008-01-01", "2025-07-01"])
    conn.execute(sql, ["2025-07-01", None])
    with pytest.raises(psycopg.errors.ExclusionViolation):
        conn.execute(sql, ["2020-01-01", None])


def test_commune_at_follows_the_reform(conn):
    square = "ST_Multi(ST_MakeEnvelope(105.0, 21.0, 106.0, 22.0, 4326))"
    conn.execute(
        f"INSERT INTO admin_units (level, code, name, valid_from, valid_to, geom) VALUES "
        f"('commune', '00001', 'Old', '2000-01-01', '2025-07-01', {square}),"
        f"('commune', '00002', 'New', '2025-07-01', NULL, {square})"
    )
    point = "ST_SetSRID(ST_MakePoint(105.5, 21.5), 4326)"
    before, after = conn.execute(
        f"SELECT commune_at({point}, '2024-01-01'), commune_at({point}, '2026-01-01')"
    ).fetchone()
    assert (before, after) == ("00001", "00002")


def test_citizen_support_is_public_only_as_suppressed_aggregates(conn):
    conn.execute(
        "INSERT INTO admin_units (level, code, name, valid_from, geom) VALUES "
        "('commune', '00001', 'A', '2025-07-01', ST_Multi(ST_MakeEnvelope(105, 21, 105.1, 21.1, 4326))),"
        "('commune', '00002', 'B', '2025-07-01', ST_Multi(ST_MakeEnvelope(105.1, 21, 105.2, 21.1, 4326)))"
    )
    for i in range(7):
        commune = "00001" if i < 5 else "00002"
        conn.execute(
            "INSERT INTO restricted.citizen_support_cases "
            "(case_no, full_name, commune_code, support_type, amount_vnd, paid_on) "
            "VALUES (%s, 'Nguyễn Văn A', %s, 'elderly', 2000000, '2026-01-15')",
            [f"C{i}", commune],
        )
    rows = dict(
        (r[0], r[1:])
        for r in conn.execute(
            "SELECT commune_code, people, amount_vnd, suppressed FROM citizen_support_by_commune"
        )
    )
    # 00002's 2 people are withheld, and so are 00001's 5: the province's total (7) minus
    # 00001's figure would give 00002's away (complementary suppression, migration 0011).
    assert rows["00002"] == (None, None, True)
    assert rows["00001"] == (None, None, True)
    columns = [
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'citizen_support_by_commune'"
        )
    ]
    assert "full_name" not in columns and "national_id" not in columns


def test_vn2000_zones_are_registered_and_transform_as_pyproj_does(db_url: str) -> None:
    import pyproj

    from smarttrees.schema import VN2000_TM3_ZONES, register_projections

    assert register_projections(db_url) == []  # the template's upgrade registered them all
    with psycopg.connect(db_url) as conn:
        codes = {r[0] for r in conn.execute(
            "SELECT srid FROM public.spatial_ref_sys WHERE srid = ANY(%s)", [list(VN2000_TM3_ZONES)])}
        x, y = conn.execute(
            "SELECT ST_X(g), ST_Y(g) FROM ST_Transform(ST_SetSRID(ST_MakePoint(105.84, 21.59), 4326), 9213) g"
        ).fetchone()
    assert codes == set(VN2000_TM3_ZONES)
    ex, ey = pyproj.Transformer.from_crs(4326, 9213, always_xy=True).transform(105.84, 21.59)
    assert abs(x - ex) < 0.01 and abs(y - ey) < 0.01
