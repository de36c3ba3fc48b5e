"""``smarttrees teams``: field teams, their members and the items issued to them."""

from __future__ import annotations

from pathlib import Path

import typer

teams_app = typer.Typer(
    help="Field teams: their area, members and the items issued to them (kept on their phones).",
    no_args_is_help=True,
)


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    from smarttrees.teams import TeamError

    if text is None:
        return None
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError:
        raise TeamError(
            f"--bbox must be four numbers west,south,east,north, got {text!r}"
        ) from None
    return west, south, east, north


def _codes(text: str | None) -> list[str]:
    """Commune codes given as ``--communes A,B``; none when not given."""
    return [c.strip() for c in text.split(",") if c.strip()] if text else []


@teams_app.command("add")
def add_team(
    name: str,
    bbox: str | None = typer.Option(None, help="The team's area: west,south,east,north."),
    communes: str | None = typer.Option(
        None, help="The team's area: the union of these communes (codes, commas between)."
    ),
) -> None:
    """Create a team, working in an area (its stands, its offline map)."""
    from smarttrees import teams
    from smarttrees.database import connect

    with connect() as conn:
        teams.create_team(conn, name, _bbox(bbox), _codes(communes))
    typer.echo(f"team {name} created")


@teams_app.command("area")
def set_area(
    name: str,
    file: Path | None = typer.Argument(  # noqa: B008
        None, help="A file of polygons (GeoJSON, GeoPackage, shapefile…): their union."
    ),
    bbox: str | None = typer.Option(None, help="The area: west,south,east,north."),
    communes: str | None = typer.Option(
        None, help="The area: the union of these communes (codes, commas between)."
    ),
) -> None:
    """Change a team's area (its stands, its offline map, the dispatches handed to it)."""
    from smarttrees import teams
    from smarttrees.database import connect

    with connect() as conn:
        box = teams.set_area(conn, name, _bbox(bbox), _codes(communes), file)
    typer.echo(f"team {name}: area {','.join(f'{v:.5f}' for v in box)}")


@teams_app.command("member")
def add_members(name: str, usernames: list[str]) -> None:
    """Make field accounts members of a team (leaving any team they were in)."""
    from smarttrees import teams
    from smarttrees.database import connect

    with connect() as conn:
        teams.add_members(conn, name, usernames)
    typer.echo(f"{', '.join(usernames)} in team {name}")


@teams_app.command("issue")
def issue(
    name: str,
    codes: list[str] = typer.Argument(None, help="Tag codes (SL-…, TL-…, TR-…, TC-…)."),  # noqa: B008
    stand: str | None = typer.Option(None, help="Also every tagged log of this stand."),
    nursery: str | None = typer.Option(
        None, help="Also every tagged seedling lot of this nursery (its code)."
    ),
) -> None:
    """Issue items to a team: its phones keep them for scans without signal."""
    from smarttrees import teams
    from smarttrees.database import connect

    with connect() as conn:
        count = teams.issue(conn, name, codes or [], stand, nursery)
    typer.echo(f"{count} item(s) issued to team {name}")


@teams_app.command("withdraw")
def withdraw(name: str, codes: list[str]) -> None:
    """Take items back from a team."""
    from smarttrees import teams
    from smarttrees.database import connect

    with connect() as conn:
        count = teams.withdraw(conn, name, codes)
    typer.echo(f"{count} item(s) withdrawn from team {name}")


@teams_app.command("list")
def list_teams() -> None:
    """List the teams: area, members, items issued."""
    from smarttrees import teams
    from smarttrees.database import connect

    with connect() as conn:
        for team in teams.list_teams(conn):
            area = ",".join(f"{v:.5f}" for v in team.bbox) if team.bbox else "no area"
            typer.echo(f"{team.name}\t{area}\t{team.members} member(s)\t{team.items} item(s)")


def register(app: typer.Typer) -> None:
    """Add the ``teams`` command group."""
    app.add_typer(teams_app, name="teams")
