"""Field teams: who works together in an area, and the items issued to them.

A field account belongs to at most one team (``users.team_id``). Items are issued to a team by
:func:`issue` (``smarttrees teams issue``) or by the custody events that hand them over (the
trigger of migration 0025: the team of whoever scanned an item holds it; a dispatch hands a lot
to the teams whose area holds the receiving stand or commune). The field app keeps its team's
items on the phone (``GET /field/team``), so a scan without signal still shows the item, its
state and the events allowed next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from barcodes.codes import CodeError, parse
from smarttrees.errors import SmartTreesError


class TeamError(SmartTreesError):
    """A team operation cannot be done: unknown team, user or item, a bad area."""

    rule = "team"


@dataclass(frozen=True)
class TeamInfo:
    """A team as listed: its name, area's bounds, members and items issued."""

    name: str
    bbox: tuple[float, float, float, float] | None
    members: int
    items: int


def team_id(conn: psycopg.Connection, name: str) -> int:
    """The id of team ``name``; :class:`TeamError` when there is none."""
    row = conn.execute("SELECT id FROM smarttrees.teams WHERE name = %s", [name]).fetchone()
    if row is None:
        raise TeamError(f"no team named {name!r} (smarttrees teams list)")
    return int(row[0])


def create_team(
    conn: psycopg.Connection,
    name: str,
    bbox: tuple[float, float, float, float] | None = None,
    communes: Sequence[str] = (),
) -> int:
    """Create team ``name``; return its id.

    Its area is ``bbox`` (west, south, east, north) or the union of ``communes`` (codes of
    communes in force), or none.

    Raises
    ------
    TeamError
        The name is empty or taken, both an area box and communes are given, a commune is
        unknown, or the box is not west < east, south < north.

    """
    if not name.strip():
        raise TeamError("a team name cannot be empty")
    area, params = _area(conn, bbox, communes) if bbox or communes else (sql.SQL("NULL"), [])
    query = sql.SQL(
        "INSERT INTO smarttrees.teams (name, area) VALUES (%s, {area}) "
        "ON CONFLICT (name) DO NOTHING RETURNING id"
    ).format(area=area)
    row = conn.execute(query, [name, *params]).fetchone()
    if row is None:
        raise TeamError(f"team {name!r} already exists")
    return int(row[0])


def set_area(
    conn: psycopg.Connection,
    name: str,
    bbox: tuple[float, float, float, float] | None = None,
    communes: Sequence[str] = (),
    path: Path | None = None,
) -> tuple[float, float, float, float]:
    """Give team ``name`` a new area: a box, the union of communes, or a file's polygons.

    The area bounds the stands its phones keep, the offline map offered, and the dispatches
    handed to it from now on; items already issued stay issued. Returns the area's bounds.

    Raises
    ------
    TeamError
        No such team; not exactly one of ``bbox``, ``communes`` and ``path``; an unknown commune,
        a bad box, or a file that cannot be read or holds no polygons (named, with the row).

    """
    team = team_id(conn, name)
    if (bbox is not None) + bool(communes) + (path is not None) != 1:
        raise TeamError("give the team's area as a FILE, --bbox or --communes: exactly one")
    if path is not None:
        area: sql.Composable = sql.SQL(
            "ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_GeomFromWKB(%s, 4326)), 3))"
        )
        params: list[object] = [_file_area(path)]
    else:
        area, params = _area(conn, bbox, communes)
    row = conn.execute(
        sql.SQL(
            "UPDATE smarttrees.teams SET area = {area} WHERE id = %s "
            "RETURNING ST_XMin(area), ST_YMin(area), ST_XMax(area), ST_YMax(area)"
        ).format(area=area),
        [*params, team],
    ).fetchone()
    assert row is not None  # the team was found above, in this transaction
    return float(row[0]), float(row[1]), float(row[2]), float(row[3])


def _area(
    conn: psycopg.Connection,
    bbox: tuple[float, float, float, float] | None,
    communes: Sequence[str],
) -> tuple[sql.Composable, list[object]]:
    """The SQL of an area given as a box or as communes, and its parameters."""
    if bbox is not None and communes:
        raise TeamError("give the team's area as --bbox or as --communes, not both")
    if bbox is not None:
        west, south, east, north = bbox
        if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
            raise TeamError(f"--bbox: west < east and south < north, got {bbox}")
        return sql.SQL("ST_Multi(ST_MakeEnvelope(%s, %s, %s, %s, 4326))"), [*bbox]
    known = {
        r[0]
        for r in conn.execute(
            "SELECT code FROM smarttrees.communes WHERE code = ANY(%s)", [list(communes)]
        )
    }
    unknown = sorted(set(communes) - known)
    if unknown:
        raise TeamError(f"--communes: no commune in force has code {', '.join(unknown)}")
    return sql.SQL(
        "(SELECT ST_Multi(ST_Union(geom)) FROM smarttrees.communes WHERE code = ANY(%s))"
    ), [list(communes)]


def _file_area(path: Path) -> bytes:
    """The union of a file's polygons (any format GDAL reads) in EPSG:4326, as WKB.

    Raises
    ------
    TeamError
        The file cannot be read, has no coordinate system, or a row is not a polygon.

    """
    import geopandas as gpd
    import shapely

    try:
        frame = gpd.read_file(path)
    except Exception as exc:  # pyogrio raises several kinds; all mean "not an area file"
        raise TeamError(f"{path}: cannot read as an area file ({exc})") from None
    if frame.empty:
        raise TeamError(f"{path}: holds no polygon")
    if frame.crs is None:
        raise TeamError(f"{path}: has no coordinate system (a .prj, or GeoJSON's WGS 84)")
    frame = frame.to_crs(4326)
    for row, geom in enumerate(frame.geometry, start=1):
        if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
            kind = "no geometry" if geom is None or geom.is_empty else f"a {geom.geom_type}"
            raise TeamError(f"{path}: row {row}: {kind}, not a polygon")
    return bytes(shapely.to_wkb(shapely.union_all(frame.geometry.values)))


def add_members(conn: psycopg.Connection, name: str, usernames: Sequence[str]) -> None:
    """Make field accounts ``usernames`` members of team ``name`` (leaving any other team)."""
    team = team_id(conn, name)
    rows = conn.execute(
        "SELECT username, role FROM smarttrees.users WHERE username = ANY(%s)", [list(usernames)]
    ).fetchall()
    roles: dict[str, str] = {r[0]: r[1] for r in rows}
    unknown = sorted(set(usernames) - set(roles))
    if unknown:
        raise TeamError(f"no user named {', '.join(unknown)} (smarttrees users list)")
    not_field = sorted(u for u, r in roles.items() if r not in ("field", "admin"))
    if not_field:
        raise TeamError(f"{', '.join(not_field)}: only field accounts join a team")
    conn.execute(
        "UPDATE smarttrees.users SET team_id = %s WHERE username = ANY(%s)",
        [team, list(usernames)],
    )


# What a stand or a nursery hands out: (its table, its code column, the items' table, their
# column naming it, their tag's item_type).
_HOLDERS = {
    "stand": ("stands", "stand_code", "timber_logs", "stand_id", "timber_log"),
    "nursery": ("nurseries", "nursery_code", "seedling_lots", "nursery_id", "seedling_lot"),
}


def _tagged_under(conn: psycopg.Connection, holder: str, code: str) -> list[tuple[str, int]]:
    """The tagged items of a stand (its logs) or a nursery (its seedling lots), by its code."""
    table, code_column, items, parent, item_type = _HOLDERS[holder]
    found = conn.execute(
        sql.SQL("SELECT id FROM smarttrees.{} WHERE {} = %s").format(
            sql.Identifier(table), sql.Identifier(code_column)), [code]
    ).fetchone()
    if found is None:
        raise TeamError(f"nothing issued: no {holder} {code!r}")
    return conn.execute(
        sql.SQL("SELECT t.item_type, t.item_id FROM smarttrees.{} i "
                "JOIN smarttrees.tags t ON t.item_type = %s AND t.item_id = i.id "
                "WHERE i.{} = %s").format(sql.Identifier(items), sql.Identifier(parent)),
        [item_type, found[0]],
    ).fetchall()


def issue(
    conn: psycopg.Connection,
    name: str,
    codes: Sequence[str] = (),
    stand: str | None = None,
    nursery: str | None = None,
) -> int:
    """Issue tagged items to team ``name``: ``codes``, a stand's logs, a nursery's lots.

    ``stand`` is a stand's code (its tagged logs), ``nursery`` a nursery's code (its tagged
    seedling lots). Returns how many were newly issued (an item issued before counts once).
    Nothing is issued when any code is malformed or names no tag, or the stand or nursery is
    unknown: the message names them.
    """
    team = team_id(conn, name)
    parsed, bad = [], []
    for text in codes:
        try:
            parsed.append(str(parse(text)))
        except CodeError as exc:
            bad.append(str(exc))  # names the code
    if bad:
        raise TeamError("nothing issued: " + "; ".join(bad[:10]))
    tags = conn.execute(
        "SELECT code, item_type, item_id FROM smarttrees.tags WHERE code = ANY(%s)", [parsed]
    ).fetchall()
    missing = sorted(set(parsed) - {t[0] for t in tags})
    if missing:
        raise TeamError(f"nothing issued: no tag has code {', '.join(missing[:10])}")
    items = [(t[1], t[2]) for t in tags]
    if stand is not None:
        items += _tagged_under(conn, "stand", stand)
    if nursery is not None:
        items += _tagged_under(conn, "nursery", nursery)
    if not items:
        return 0
    cur = conn.execute(
        "INSERT INTO smarttrees.team_items (team_id, item_type, item_id, issued_by) "
        "SELECT %s, i.item_type, i.item_id, 'command' "
        "FROM unnest(%s::text[], %s::bigint[]) AS i(item_type, item_id) "
        "ON CONFLICT DO NOTHING",
        [team, [i[0] for i in items], [i[1] for i in items]],
    )
    return cur.rowcount


def withdraw(conn: psycopg.Connection, name: str, codes: Sequence[str]) -> int:
    """Take the items tagged ``codes`` back from team ``name``; how many it held."""
    team = team_id(conn, name)
    cur = conn.execute(
        "DELETE FROM smarttrees.team_items i USING smarttrees.tags t "
        "WHERE i.team_id = %s AND t.code = ANY(%s) "
        "  AND t.item_type = i.item_type AND t.item_id = i.item_id",
        [team, [c.strip().upper() for c in codes]],
    )
    return cur.rowcount


def list_teams(conn: psycopg.Connection) -> list[TeamInfo]:
    """Every team, by name."""
    rows = conn.execute(
        "SELECT t.name, ST_XMin(t.area), ST_YMin(t.area), ST_XMax(t.area), ST_YMax(t.area), "
        "  (SELECT count(*) FROM smarttrees.users u WHERE u.team_id = t.id), "
        "  (SELECT count(*) FROM smarttrees.team_items i WHERE i.team_id = t.id) "
        "FROM smarttrees.teams t ORDER BY t.name"
    ).fetchall()
    return [
        TeamInfo(r[0], (r[1], r[2], r[3], r[4]) if r[1] is not None else None, r[5], r[6])
        for r in rows
    ]
