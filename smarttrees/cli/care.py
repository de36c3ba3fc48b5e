"""``smarttrees care``: inspections, the due list, the TRAQ rating (issue 19).

The care records are written by async functions (:mod:`smarttrees.care`) shared with the HTTP
API; each command here runs one of them on an async connection of its own.
"""

# ruff: noqa: B008 - typer declares options as parameter defaults
from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import typer

app = typer.Typer(help="Tree care: inspections and risk, the due list, work orders.",
                  no_args_is_help=True)

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
    pdf: Path = typer.Option(None, "--pdf", dir_okay=False,
                             help="Write a printable sheet with a map to this file."),
) -> None:
    """The trees due for inspection, soonest first, with the count per risk class."""
    from smarttrees.care.due import DueFilter, due_list
    from smarttrees.care.errors import CareError

    try:
        day = date.fromisoformat(by) if by else date.today()
    except ValueError:
        raise CareError("bad_parameter", f"--by: {by!r} is not a date (YYYY-MM-DD)") from None
    what = DueFilter(day, commune, tuple(risk), tuple(category), limit, never)
    if pdf is not None:
        from gis_api.care_sheets import commune_outlines, due_points, due_sheet

        async def sheet(conn: Any) -> bytes:
            doc = await due_list(conn, what)
            rings = await commune_outlines(conn, due_points(doc))
            return due_sheet(doc, _filters(commune, risk, category), rings)

        pdf.write_bytes(run(sheet))
        typer.echo(f"due list written to {pdf}")
        return
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


def _filters(commune: str | None, risks: Sequence[str], categories: Sequence[str]) -> str:
    """What a sheet lists, in words."""
    parts = [f"xã · commune {commune}" if commune else "toàn tỉnh · whole province"]
    if risks:
        parts.append("rủi ro · risk " + ", ".join(risks))
    if categories:
        parts.append("loại · category " + ", ".join(categories))
    return "; ".join(parts)


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


orders_app = typer.Typer(help="Work orders: create, list, and move one step on.",
                         no_args_is_help=True)
prices_app = typer.Typer(help="The price catalogue of tree work (VND).", no_args_is_help=True)
app.add_typer(orders_app, name="orders")
app.add_typer(prices_app, name="prices")

ACTOR = typer.Option("smarttrees care", "--actor", help="Who does it (order events, history).")


def _staff(actor: str) -> Any:
    """The command line acts with every role (like the database owner it connects as)."""
    from smarttrees.accounts import Principal

    return Principal(0, actor, "admin")


def _vnd(value: int | None) -> str:
    return "no price" if value is None else f"{value:,} VND"


def _order_line(o: dict[str, Any]) -> str:
    trees = f"{len(o['trees'])} trees" if o["trees"] else f"spot {o['lon']}, {o['lat']}"
    crew = f"\t{o['crew']} on {o['scheduled_on']}" if o["crew"] else ""
    return (f"{o['id']}\t{o['status']}\tP{o['priority']}\t{o['work_type']}\t{trees}\t"
            f"est. {_vnd(o['estimated_cost_vnd'])}{crew}")


@orders_app.command("create")
def orders_create(
    work_type: str = typer.Argument(..., help="pruning, removal, planting, stump_removal, "
                                              "staking, watering or cabling."),
    trees: list[str] = typer.Argument(None, help="Tree codes."),
    at: str = typer.Option(None, "--at", help="LON,LAT of a planting without a tree."),
    priority: int = typer.Option(3, help="1 (most urgent) … 5."),
    note: str = typer.Option(None, help="What to do, for the crew."),
    actor: str = ACTOR,
) -> None:
    """Request a work order for trees (or a planting spot)."""
    from smarttrees.care.errors import CareError
    from smarttrees.care.orders import create_order, get_order, parse_order

    location = None
    if at:
        try:
            lon, lat = (float(v) for v in at.split(","))
        except ValueError:
            raise CareError("bad_parameter", f"--at: {at!r} is not LON,LAT") from None
        location = [lon, lat]
    request = parse_order({"work_type": work_type, "trees": trees or [], "location": location,
                           "priority": priority, "note": note})

    async def work(conn: Any) -> dict[str, Any]:
        return await get_order(conn, await create_order(conn, request, _staff(actor)))

    typer.echo(_order_line(run(work)))


@orders_app.command("list")
def orders_list(
    status: list[str] = typer.Option([], help="Only this status (repeatable)."),
    crew: str = typer.Option(None, help="Only orders of this crew."),
    commune: str = typer.Option(None, help="Only orders in this commune code."),
    as_json: bool = typer.Option(False, "--json", help="Print the orders as JSON."),
) -> None:
    """Work orders, most urgent first."""
    from smarttrees.care.orders import list_orders

    orders = run(lambda conn: list_orders(conn, tuple(status), crew, commune))
    if as_json:
        typer.echo(json.dumps(orders, ensure_ascii=False, indent=2))
        return
    for o in orders:
        typer.echo(_order_line(o))


@orders_app.command("sheet")
def orders_sheet(
    pdf: Path = typer.Argument(..., dir_okay=False, help="The PDF file to write."),
    crew: str = typer.Option(None, help="Only orders of this crew."),
    on: str = typer.Option(None, help="Only orders scheduled on this day (YYYY-MM-DD)."),
    status: list[str] = typer.Option(["scheduled"], help="Orders of this status (repeatable)."),
) -> None:
    """Print a crew's orders as a PDF sheet with a map (default: every scheduled order)."""
    from gis_api.care_sheets import commune_outlines, order_points, orders_sheet
    from smarttrees.care.errors import CareError
    from smarttrees.care.orders import list_orders

    try:
        day = date.fromisoformat(on).isoformat() if on else None
    except ValueError:
        raise CareError("bad_parameter", f"--on: {on!r} is not a date (YYYY-MM-DD)") from None

    async def sheet(conn: Any) -> bytes:
        orders = await list_orders(conn, tuple(status), crew)
        orders = [o for o in orders if day is None or o["scheduled_on"] == day]
        rings = await commune_outlines(conn, order_points(orders))
        heading = f"Tổ · Crew: {crew or 'tất cả · all'}; ngày · day: {day or 'mọi ngày · any'}"
        return orders_sheet(orders, heading, rings)

    pdf.write_bytes(run(sheet))
    typer.echo(f"work orders written to {pdf}")


@orders_app.command("show")
def orders_show(order_id: int = typer.Argument(...)) -> None:
    """One work order with its trees and every transition, as JSON."""
    from smarttrees.care.orders import get_order

    typer.echo(json.dumps(run(lambda conn: get_order(conn, order_id)), ensure_ascii=False,
                          indent=2))


def _move(order_id: int, to: str, actor: str, **fields: Any) -> None:
    from smarttrees.care.orders import get_order, move

    async def work(conn: Any) -> tuple[dict[str, Any], list[int]]:
        opened = await move(conn, order_id, to, _staff(actor), **fields)
        return await get_order(conn, order_id), opened

    order, opened = run(work)
    typer.echo(_order_line(order))
    for new_id in opened:
        typer.echo(f"planting order {new_id} requested at the removed tree's spot")


@orders_app.command("approve")
def orders_approve(order_id: int = typer.Argument(...), note: str = typer.Option(None),
                   actor: str = ACTOR) -> None:
    """Approve a requested order."""
    _move(order_id, "approved", actor, note=note)


@orders_app.command("schedule")
def orders_schedule(
    order_id: int = typer.Argument(...),
    crew: str = typer.Option(..., help="The field account that does the work."),
    on: str = typer.Option(..., help="The day (YYYY-MM-DD)."),
    note: str = typer.Option(None),
    actor: str = ACTOR,
) -> None:
    """Schedule an approved order for a crew on a day."""
    from smarttrees.care.errors import CareError

    try:
        day = date.fromisoformat(on)
    except ValueError:
        raise CareError("bad_parameter", f"--on: {on!r} is not a date (YYYY-MM-DD)") from None
    _move(order_id, "scheduled", actor, crew=crew, scheduled_on=day, note=note)


@orders_app.command("done")
def orders_done(
    order_id: int = typer.Argument(...),
    cost: int = typer.Option(None, help="What the work cost, VND."),
    replant: bool = typer.Option(False, help="A removal: open a planting order at each spot."),
    note: str = typer.Option(None),
    actor: str = ACTOR,
) -> None:
    """Mark a scheduled order done (a removal marks its trees removed)."""
    _move(order_id, "done", actor, actual_cost_vnd=cost, replant=replant, note=note)


@orders_app.command("cancel")
def orders_cancel(order_id: int = typer.Argument(...), note: str = typer.Option(None),
                  actor: str = ACTOR) -> None:
    """Cancel an order that is not done."""
    _move(order_id, "cancelled", actor, note=note)


@prices_app.command("load")
def prices_load(
    file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                help="CSV: work_type, dbh_min_cm, dbh_max_cm, price_vnd, "
                                     "description (e.g. data/care/prices.csv)."),
) -> None:
    """Replace the price catalogue with a CSV file, all or nothing."""
    from smarttrees.care.prices import load_prices, read_prices

    prices = read_prices(file)
    count = run(lambda conn: load_prices(conn, prices))
    typer.echo(f"{count} prices loaded from {file}")


@prices_app.command("list")
def prices_list() -> None:
    """The price catalogue."""
    from smarttrees.care.prices import list_prices

    for p in run(list_prices):
        top = "" if p["dbh_max_cm"] is None else format(p["dbh_max_cm"], "g")
        band = f"{p['dbh_min_cm']:g}–{top} cm"
        typer.echo(f"{p['work_type']}\t{band}\t{p['price_vnd']:,} VND\t{p['description'] or ''}")


storms_app = typer.Typer(help="Storm events, their damage per commune, orders from damage.",
                         no_args_is_help=True)
app.add_typer(storms_app, name="storms")


@storms_app.command("create")
def storms_create(
    name: str = typer.Argument(..., help="The storm's name (e.g. Yagi 2024)."),
    started: str = typer.Option(..., "--from", help="First day (YYYY-MM-DD)."),
    ended: str = typer.Option(None, "--to", help="Last day (YYYY-MM-DD)."),
    note: str = typer.Option(None),
    actor: str = ACTOR,
) -> None:
    """Open a storm event for field teams to record damage under."""
    from smarttrees.care.storms import create_storm, parse_storm

    storm = parse_storm({"name": name, "started_on": started, "ended_on": ended, "note": note})
    storm_id = run(lambda conn: create_storm(conn, storm, _staff(actor)))
    typer.echo(f"storm {storm_id}: {storm.name}")


@storms_app.command("list")
def storms_list() -> None:
    """Every storm event with its number of damage records."""
    from smarttrees.care.storms import list_storms

    for s in run(list_storms):
        typer.echo(f"{s['id']}\t{s['name']}\t{s['started_on']} – {s['ended_on'] or ''}\t"
                   f"{s['records']:,} records")


@storms_app.command("communes")
def storms_communes(
    storm_id: int = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    """A storm's damage counted per commune."""
    from smarttrees.care.storms import damage_by_commune

    rows = run(lambda conn: damage_by_commune(conn, storm_id))
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['commune_code']}\t{r['commune_name']}\t{r['records']} records, "
                   f"{r['blocking_roads']} blocking roads, {r['hazards_to_people']} hazards")


@storms_app.command("orders")
def storms_orders(storm_id: int = typer.Argument(...), actor: str = ACTOR) -> None:
    """Open a work order for every damage record without one, most urgent first."""
    from smarttrees.care.storms import orders_from_damage

    opened = run(lambda conn: orders_from_damage(conn, storm_id, _staff(actor)))
    typer.echo(f"{len(opened)} work orders requested")
