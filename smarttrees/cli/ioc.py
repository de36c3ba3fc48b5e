"""``smarttrees ioc``: the province summary and the refresh of the IOC layers.

The IOC's loaders (agencies, documents, citizen-support) are in ``smarttrees load``
(:mod:`smarttrees.cli.ioc_load`).
"""

# ruff: noqa: B008 - typer declares options as parameter defaults
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

app = typer.Typer(help="The Intelligent Operations Centre: summary and layers.",
                  no_args_is_help=True)


def register(root: typer.Typer) -> None:
    """Add the ``ioc`` group (its loaders join ``load`` in :mod:`smarttrees.cli`)."""
    root.add_typer(app, name="ioc")


@contextmanager
def _database() -> Iterator[Any]:
    """A connection to the database; a database without the IOC layers is one clear error."""
    import psycopg

    from smarttrees.database import connect
    from smarttrees.errors import SmartTreesError

    try:
        with connect() as conn:
            yield conn
    except psycopg.errors.UndefinedTable as exc:
        raise SmartTreesError(
            f"the database has no IOC layers ({exc.diag.message_primary}): "
            "run `smarttrees db upgrade`") from None


def _vnd(value: int | None) -> str:
    return "withheld" if value is None else f"{value:,} VND"


def _period(p: dict[str, str | None]) -> str:
    return f"{p['from']} – {p['to']}" if p["from"] else "no records"


def format_summary(s: dict[str, Any]) -> list[str]:
    """The summary as lines of text, each figure with the period it covers."""
    d, c, t = s["documents"], s["citizen_support"], s["trees"]
    people = "withheld" if c["people"] is None else f"{c['people']:,}"
    share = "" if d["electronic_share"] is None else f" ({d['electronic_share']:.1%})"
    progress = "" if t["progress"] is None else f" ({t['progress']:.1%})"
    lines = [
        f"Province: {s['province']['name'] or '—'}",
        f"Documents ({_period(d['period'])}): {d['total']:,}, of which electronic "
        f"{d['electronic']:,}{share}",
        f"Courier cost saved: {_vnd(d['courier_cost_saved_vnd'])} "
        f"({d['courier_cost_vnd_each']:,} VND per electronic document)",
        f"Citizen support ({_period(c['period'])}): {people} people, {_vnd(c['amount_vnd'])}, "
        f"stranded in {c['provinces']} provinces",
        f"Trees: {t['total']:,} (urban {t['by_category']['urban']:,}, scattered "
        f"{t['by_category']['scattered']:,}, plantation {t['by_category']['plantation']:,})",
        f"Planting target: {t['target']:,}{progress}",
    ]
    if t["history"]:
        first, last = t["history"][0], t["history"][-1]
        lines.append(
            f"Tree count: {first['trees']:,} at the end of {first['month']}, "
            f"{last['trees']:,} at the end of {last['month']}"
        )
    return lines


@app.command("summary")
def summary(
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """The province summary: documents, courier cost saved, citizen support, trees."""
    from smarttrees import ioc
    from smarttrees.settings import get_settings

    settings = get_settings()
    with _database() as conn:
        doc = ioc.summary(conn, settings)
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
        return
    for line in format_summary(doc):
        typer.echo(line)


@app.command("refresh")
def refresh() -> None:
    """Recompute the IOC layers (after changing a setting, or loading outside SmartTrees)."""
    from smarttrees import ioc
    from smarttrees.settings import get_settings

    with _database() as conn:
        ioc.refresh(conn, get_settings())
    typer.echo("IOC layers refreshed")
