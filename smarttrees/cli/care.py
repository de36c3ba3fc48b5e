"""``smarttrees care``: inspections, the due list, the TRAQ rating (issue 19).

The care records are written by async functions (:mod:`smarttrees.care`) shared with the HTTP
API; each command here runs one of them on an async connection of its own.
"""

# ruff: noqa: B008 - typer declares options as parameter defaults
from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import typer

app = typer.Typer(help="Tree care: inspections and risk, the due list.", no_args_is_help=True)

T = TypeVar("T")


def register(root: typer.Typer) -> None:
    """Add the ``care`` group."""
    root.add_typer(app, name="care")


def run(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(conn)`` on an async connection to the configured database (committed)."""
    import psycopg

    from smarttrees.database import database_url, with_search_path

    async def main() -> T:
        url = database_url()
        async with await psycopg.AsyncConnection.connect(
            url, options=with_search_path(url)
        ) as conn:
            return await work(conn)

    return asyncio.run(main())


def _csv_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of an inspections CSV: empty cells left out, lists split on ``;``."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = []
        for row in csv.DictReader(handle):
            item: dict[str, Any] = {k: v.strip() for k, v in row.items() if k and v and v.strip()}
            for key in ("defects", "photos"):
                if key in item:
                    item[key] = [part.strip() for part in item[key].split(";") if part.strip()]
            rows.append(item)
    return rows


def read_inspections(path: Path) -> tuple[list[Any], Callable[[int], str]]:
    """Raw inspections of a CSV or JSON file, and how to name the ``i``-th in messages."""
    from smarttrees.care.errors import CareError

    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise CareError("invalid_inspection", f"{path}: not valid JSON: {exc}") from None
        items = doc.get("inspections") if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            raise CareError("invalid_inspection", f"{path}: expected a list of inspections")
        return items, lambda i: f"{path} item {i + 1}"
    return _csv_rows(path), lambda i: f"{path} row {i + 2}"  # row 1 is the header


@app.command("inspect")
def inspect(
    file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                help="Inspections as CSV (header row) or JSON (a list)."),
    actor: str = typer.Option("smarttrees care", help="Who records them (tree history)."),
) -> None:
    """Record the inspections of a file, all or nothing; print each tree's risk and due date."""
    from smarttrees.care.inspections import parse_inspections, record_inspections
    from smarttrees.settings import get_settings

    items, label = read_inspections(file)
    parsed = parse_inspections(items, label)
    cycle = get_settings().care_cycle_months
    answers = run(lambda conn: record_inspections(conn, parsed, cycle, actor, label))
    for a in answers:
        typer.echo(f"{a['tree_code']}\t{a['inspected_on']}\t{a['risk']}\tnext due {a['next_due']}")
    typer.echo(f"{len(answers)} inspections recorded")


@app.command("due")
def due(
    by: str = typer.Option(None, help="Due on or before this date (YYYY-MM-DD); default today."),
    commune: str = typer.Option(None, help="Only trees of this commune code."),
    risk: list[str] = typer.Option([], help="Only this risk class (repeatable)."),
    category: list[str] = typer.Option([], help="Only this category (repeatable)."),
    limit: int = typer.Option(100, help="Most trees listed (1–10000)."),
    never: bool = typer.Option(False, "--never-inspected",
                               help="List trees never inspected instead."),
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
) -> None:
    """The trees due for inspection, soonest first, with the count per risk class."""
    from smarttrees.care.due import DueFilter, due_list
    from smarttrees.care.errors import CareError

    try:
        day = date.fromisoformat(by) if by else date.today()
    except ValueError:
        raise CareError("bad_parameter", f"--by: {by!r} is not a date (YYYY-MM-DD)") from None
    what = DueFilter(day, commune, tuple(risk), tuple(category), limit, never)
    doc = run(lambda conn: due_list(conn, what))
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
        return
    for t in doc["trees"]:
        typer.echo(f"{t['tree_code']}\t{t['commune_code'] or '-'}\t{t['risk'] or 'not rated'}\t"
                   f"due {t['next_due'] or 'now'}\tlast {t['last_inspected_on'] or 'never'}")
    if doc["total"] is not None:
        per_risk = ", ".join(f"{k} {v:,}" for k, v in doc["by_risk"].items())
        typer.echo(f"{doc['total']:,} trees due by {doc['by']} ({per_risk}); "
                   f"{len(doc['trees']):,} listed")


@app.command("refresh")
def refresh() -> None:
    """Recompute every tree's next due date (after changing SMARTTREES_CARE_CYCLE_MONTHS)."""
    from smarttrees.care.inspections import rebuild_status
    from smarttrees.settings import get_settings

    cycle = get_settings().care_cycle_months
    count = run(lambda conn: rebuild_status(conn, cycle))
    typer.echo(f"{count:,} inspected trees: risk and next due date recomputed")


@app.command("rate")
def rate(
    failure: str = typer.Argument(..., help="Likelihood of failure."),
    impact: str = typer.Argument(..., help="Likelihood of impact."),
    consequences: str = typer.Argument(..., help="Consequences of failure."),
) -> None:
    """The ISA TRAQ risk rating of one assessed part (both matrices)."""
    from smarttrees.care import traq

    rating = traq.rate(failure, impact, consequences)
    typer.echo(f"likelihood of failure and impact: {rating.likelihood_failure_impact}")
    typer.echo(f"risk: {rating.risk}")
