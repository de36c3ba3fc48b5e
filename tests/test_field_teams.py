"""Field teams: made and filled with `smarttrees teams`, and by the custody events that hand
items over; a team's phone gets its items from GET /field/team."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import psycopg
from psycopg import sql

from barcodes.tags import issue_tags
from gis_api.field_team import DEFAULT_LIMIT
from smarttrees import accounts, teams
from smarttrees.database import connect
from tests.fixtures.cli import cli_env, run_cli


def a_felled_log_a_ready_lot_and_two_stands(url: str) -> tuple[int, int, str, list[float]]:
    """A felled log, a ready lot, the code of a stand other than the log's and a box around it."""
    with psycopg.connect(url) as conn:
        log, stand_id = conn.execute(
            "SELECT id, stand_id FROM smarttrees.timber_logs WHERE status = 'felled' "
            "ORDER BY id LIMIT 1").fetchone()
        lot = conn.execute("SELECT id FROM smarttrees.seedling_lots WHERE status = 'ready' "
                           "ORDER BY id DESC LIMIT 1").fetchone()[0]
        code, *box = conn.execute(
            "SELECT stand_code, ST_XMin(geom) - 0.001, ST_YMin(geom) - 0.001, "
            "  ST_XMax(geom) + 0.001, ST_YMax(geom) + 0.001 FROM smarttrees.stands "
            "WHERE id <> %s AND NOT ST_IsEmpty(geom) ORDER BY id DESC LIMIT 1",
            [stand_id]).fetchone()
    return log, lot, code, box


def test_items_issued_by_command_and_handed_over_by_custody_reach_the_teams_phones(
    live_server: str, province_url: str
) -> None:
    log, lot, stand, box = a_felled_log_a_ready_lot_and_two_stands(province_url)
    with connect(province_url) as conn:
        (log_code,) = issue_tags(conn, "timber_log", [log]).values()
        (lot_code,) = issue_tags(conn, "seedling_lot", [lot]).values()
        accounts.create_user(conn, "team-landing-1", "field")
        accounts.create_user(conn, "team-planting-1", "field")
        landing_token = accounts.issue_token(conn, "team-landing-1")
        planting_token = accounts.issue_token(conn, "team-planting-1")
    env = cli_env(SMARTTREES_DATABASE_URL=province_url)

    bbox = ",".join(f"{v:.6f}" for v in box)
    for args in (("add", "landing"), ("add", "planting", "--bbox", bbox),
                 ("member", "landing", "team-landing-1"),
                 ("member", "planting", "team-planting-1"),
                 ("issue", "landing", log_code)):
        done = run_cli("teams", *args, env=env)
        assert done.code == 0, (args, done.stderr)
    wrong = log_code[:-1] + ("A" if log_code[-1] != "A" else "B")
    refused = run_cli("teams", "issue", "landing", wrong, env=env)
    assert refused.code == 1 and refused.error_lines[0].startswith("error: nothing issued")
    assert wrong in refused.error_lines[0] and "Traceback" not in refused.stderr

    def phone(token: str) -> dict:
        answer = httpx.get(f"{live_server}/field/team",
                           headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        return answer.json()

    got = phone(landing_token)
    assert got["team"] == {"name": "landing", "bbox": None}
    assert [(i["code"], i["item"]["status"]) for i in got["items"]] == [(log_code, "felled")]
    assert httpx.get(f"{live_server}/field/team").status_code == 401

    # A landing team member dispatches the lot to a stand in the planting team's area: the
    # member's team holds it now, and the planting team receives it.
    with psycopg.connect(province_url) as conn:
        left, lon, lat = conn.execute(
            "SELECT l.quantity - l.quantity_dispatched, ST_X(n.geom), ST_Y(n.geom) "
            "FROM smarttrees.seedling_lots l JOIN smarttrees.nurseries n ON n.id = l.nursery_id "
            "WHERE l.id = %s", [lot]).fetchone()
    event = {"device_id": "team-phone", "client_event_id": "dispatch-1", "code": lot_code,
             "event_type": "dispatched", "occurred_at": "2026-01-02T08:00:00Z",
             "location": {"type": "Point", "coordinates": [lon, lat]},
             "quantity": left, "to_stand": stand}
    answer = httpx.post(f"{live_server}/api/scans", json=event,
                        headers={"Authorization": f"Bearer {landing_token}"})
    assert answer.status_code == 200, answer.text
    assert sorted(i["code"] for i in phone(landing_token)["items"]) == sorted([log_code, lot_code])
    planting = phone(planting_token)
    assert planting["team"]["name"] == "planting"
    assert [round(v, 6) for v in planting["team"]["bbox"]] == [round(v, 6) for v in box]
    assert [(i["code"], i["item"]["status"]) for i in planting["items"]] == [
        (lot_code, "dispatched")]
    assert all("device_id" not in e for i in planting["items"] for e in i["events"])

    listing = run_cli("teams", "list", env=env).stdout
    assert "landing\tno area\t1 member(s)\t2 item(s)" in listing
    assert "planting\t" in listing and "\t1 member(s)\t1 item(s)" in listing


def test_a_team_holding_thousands_of_items_gets_every_one_page_by_page(
    live_server: str, province_url: str
) -> None:
    with connect(province_url) as conn:
        trees = [r[0] for r in conn.execute(
            "SELECT id FROM smarttrees.trees ORDER BY id LIMIT 3000").fetchall()]
        codes = list(issue_tags(conn, "tree", trees).values())
        teams.create_team(conn, "street-trees")
        accounts.create_user(conn, "team-street-1", "field")
        teams.add_members(conn, "street-trees", ["team-street-1"])
        assert teams.issue(conn, "street-trees", codes) == len(codes)
        token = accounts.issue_token(conn, "team-street-1")
    assert len(codes) > DEFAULT_LIMIT  # more than a page of the default size
    headers = {"Authorization": f"Bearer {token}"}

    got: list[dict] = []
    after = None
    pages = 0
    while True:
        params = {"limit": 1000, **({"after": after} if after else {})}
        answer = httpx.get(f"{live_server}/field/team", params=params, headers=headers,
                           timeout=60)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert page["team"]["name"] == "street-trees"
        got += page["items"]
        pages += 1
        after = page["next"]
        if after is None:
            break
    assert pages == -(-len(codes) // 1000)
    assert sorted(i["code"] for i in got) == sorted(codes)  # each once, none missing
    with psycopg.connect(province_url) as conn:
        tree_codes = dict(conn.execute(
            "SELECT id, tree_code FROM smarttrees.trees WHERE id = ANY(%s)", [trees]).fetchall())
    by_code = {c: tree_codes[t] for t, c in zip(trees, codes, strict=True)}
    assert all(i["item"]["tree_code"] == by_code[i["code"]] for i in got)
    # The page is what /api/trace answers for its code, without the devices' ids.
    one = httpx.get(f"{live_server}/api/trace/{got[-1]['code']}", headers=headers).json()
    for event in one["events"]:
        event.pop("device_id")
    assert one == got[-1]

    for bad in ({"after": "tree"}, {"limit": "0"}, {"limit": "100000"}, {"offset": "5"}):
        refused = httpx.get(f"{live_server}/field/team", params=bad, headers=headers)
        assert refused.status_code == 400, bad
        assert next(iter(bad)) in refused.json()["description"]


# The tables of a nursery's lots and a stand's logs: (parent table, child table, its key).
_UNDER = {("nursery", "seedling_lot"): ("nurseries", "seedling_lots", "nursery_id"),
          ("stand", "timber_log"): ("stands", "timber_logs", "stand_id")}


def tagged_under(conn: psycopg.Connection, parent: str, kind: str) -> tuple[str, list[str]]:
    """The first ``parent`` (nursery, stand) holding items of ``kind``; their tag codes."""
    parents, children, key = _UNDER[(parent, kind)]
    code, parent_id = conn.execute(sql.SQL(
        "SELECT p.{code}, p.id FROM smarttrees.{parents} p WHERE EXISTS "
        "(SELECT FROM smarttrees.{children} c WHERE c.{key} = p.id) ORDER BY p.id LIMIT 1"
    ).format(code=sql.Identifier(f"{parent}_code"), parents=sql.Identifier(parents),
             children=sql.Identifier(children), key=sql.Identifier(key))).fetchone()
    ids = [r[0] for r in conn.execute(sql.SQL(
        "SELECT id FROM smarttrees.{} WHERE {} = %s").format(
            sql.Identifier(children), sql.Identifier(key)), [parent_id])]
    return code, list(issue_tags(conn, kind, ids).values())


def test_a_teams_area_changed_from_a_file_or_communes_and_a_nurserys_lots_issued(
    live_server: str, province_url: str, tmp_path: Path
) -> None:
    with connect(province_url) as conn:
        nursery, lot_codes = tagged_under(conn, "nursery", "seedling_lot")
        communes = [r[0] for r in conn.execute(
            "SELECT code FROM smarttrees.communes ORDER BY code LIMIT 2")]
        communes_box = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT "
            "ST_Extent(geom)::geometry AS e FROM smarttrees.communes WHERE code = ANY(%s)) x",
            [communes]).fetchone()
        accounts.create_user(conn, "team-nursery-1", "field")
        token = accounts.issue_token(conn, "team-nursery-1")
    env = cli_env(SMARTTREES_DATABASE_URL=province_url)
    for args in (("add", "nursery-crew"), ("member", "nursery-crew", "team-nursery-1")):
        assert run_cli("teams", *args, env=env).code == 0

    def bbox() -> list[float]:
        answer = httpx.get(f"{live_server}/field/team",
                           headers={"Authorization": f"Bearer {token}"})
        return [round(v, 5) for v in answer.json()["team"]["bbox"]]

    # Two squares in a GeoJSON file (WGS 84): the area is their union.
    squares = [[[105.80, 21.50], [105.82, 21.50], [105.82, 21.52], [105.80, 21.52],
                [105.80, 21.50]],
               [[105.85, 21.55], [105.86, 21.55], [105.86, 21.57], [105.85, 21.57],
                [105.85, 21.55]]]
    area = tmp_path / "area.geojson"
    area.write_bytes(orjson.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [s]}}
        for s in squares]}))
    done = run_cli("teams", "area", "nursery-crew", str(area), env=env)
    assert done.code == 0, done.stderr
    assert bbox() == [105.80, 21.50, 105.86, 21.57]
    done = run_cli("teams", "area", "nursery-crew", "--communes", ",".join(communes), env=env)
    assert done.code == 0, done.stderr
    assert bbox() == [round(v, 5) for v in communes_box]

    # A point is no area: refused naming the file and row, the area kept; so is no area at all.
    point = tmp_path / "point.geojson"
    point.write_bytes(orjson.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {},
         "geometry": {"type": "Point", "coordinates": [105.8, 21.5]}}]}))
    refused = run_cli("teams", "area", "nursery-crew", str(point), env=env)
    assert refused.code == 1 and f"{point}: row 1: a Point" in refused.error_lines[0]
    assert "Traceback" not in refused.stderr
    assert run_cli("teams", "area", "nursery-crew", env=env).code == 1
    assert bbox() == [round(v, 5) for v in communes_box]

    done = run_cli("teams", "issue", "nursery-crew", "--nursery", nursery, env=env)
    assert done.code == 0 and f"{len(lot_codes)} item(s) issued" in done.stdout
    answer = httpx.get(f"{live_server}/field/team", headers={"Authorization": f"Bearer {token}"})
    assert sorted(i["code"] for i in answer.json()["items"]) == sorted(lot_codes)
    refused = run_cli("teams", "issue", "nursery-crew", "--nursery", "NO-SUCH", env=env)
    assert refused.code == 1 and "no nursery 'NO-SUCH'" in refused.error_lines[0]

    # A stand's tagged logs, the same way.
    with connect(province_url) as conn:
        stand, log_codes = tagged_under(conn, "stand", "timber_log")
    done = run_cli("teams", "issue", "nursery-crew", "--stand", stand, env=env)
    assert done.code == 0, done.stderr
    answer = httpx.get(f"{live_server}/field/team", headers={"Authorization": f"Bearer {token}"})
    assert set(log_codes) <= {i["code"] for i in answer.json()["items"]}
    refused = run_cli("teams", "issue", "nursery-crew", "--stand", "NO-SUCH", env=env)
    assert refused.code == 1 and "no stand 'NO-SUCH'" in refused.error_lines[0]
