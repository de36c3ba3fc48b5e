"""``smarttrees trace``: the custody chain in the forms buyers, partners and authorities read.

- ``trace eudr CODE…``: the EUDR geolocation file(s) of the plots of origin;
- ``trace bangke LOAD``: the forest-product list (bảng kê lâm sản) of a load, PDF and XLSX;
- ``trace epcis (--since DATE | CODE…)``: the custody events as an EPCIS 2.0 document;
- ``trace ledger PLACE``: the in/out ledger of a sawmill or timber yard, day by day.
"""

# ruff: noqa: B008 - typer declares options as parameter defaults
from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from barcodes.epcis import Identifiers

app = typer.Typer(help="Traceability documents from the chain of custody.", no_args_is_help=True)
T = TypeVar("T")


def register(root: typer.Typer) -> None:
    """Add the ``trace`` group."""
    root.add_typer(app, name="trace")


def _run(work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run ``work`` on one async connection to the SmartTrees database."""
    from psycopg import AsyncConnection

    from smarttrees.database import database_url, with_search_path

    url = database_url()

    async def main() -> T:
        async with await AsyncConnection.connect(url, options=with_search_path(url)) as conn:
            return await work(conn)

    return asyncio.run(main())


def _identifiers() -> Identifiers:
    """Identifiers from the settings; a malformed GS1 company prefix is one clear error."""
    from pydantic import ValidationError

    from barcodes.epcis import Identifiers
    from barcodes.gs1 import GS1Error
    from smarttrees.settings import get_settings

    try:
        prefix = get_settings().gs1_company_prefix
    except ValidationError as exc:
        bad = [e for e in exc.errors() if "gs1_company_prefix" in e["loc"]]
        if not bad:
            raise
        raise GS1Error(
            f"SMARTTREES_GS1_COMPANY_PREFIX={bad[0]['input']!r}: a GS1 company prefix has 6 to "
            "12 digits (rule bad_gs1)"
        ) from None
    return Identifiers(prefix)


def _day(text: str | None, option: str) -> datetime | None:
    from smarttrees.errors import ArgumentError

    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ArgumentError(option, f"{text!r} is not a date or time (2025-09-01, "
                            "2025-09-01T08:00+07:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


@app.command("eudr")
def eudr(
    codes: list[str] = typer.Argument(..., help="Transport loads (TR-), logs (TL-), lots "
                                      "(SL-) or stands (ST-)."),
    out: Path = typer.Option(Path("."), "--out", help="Folder the files are written to."),
    max_mb: float = typer.Option(25.0, "--max-mb", min=0.001,
                                 help="Largest file, MB; a larger statement is split."),
) -> None:
    """Write the EUDR geolocation file of the plots the codes come from (a manifest if split).

    Every plot is checked (valid closed rings, six decimals, lon/lat) and flagged for review:
    planted after 2020-12-31, area not matching the stand record, overlapping another plot.
    """
    from barcodes.eudr import eudr_document
    from barcodes.origin import resolve

    async def work(conn: AsyncConnection) -> Any:
        return await eudr_document(conn, await resolve(conn, codes), int(max_mb * 1_000_000))

    document = _run(work)
    out.mkdir(parents=True, exist_ok=True)
    for entry, blob in zip(document.manifest["files"], document.parts, strict=True):
        path = out / _safe(entry["file"])
        path.write_bytes(blob)
        typer.echo(path)
    if len(document.parts) > 1:
        import orjson

        path = out / _safe(f"eudr-{document.name}-manifest.json")
        path.write_bytes(orjson.dumps(document.manifest, option=orjson.OPT_INDENT_2))
        typer.echo(path)
    m = document.manifest
    typer.echo(f"{m['plots']} plots, {m['area_ha']:.4f} ha, {m['log_count']} logs, "
               f"{m['volume_m3']:.4f} m³; flagged for review: {', '.join(m['flagged']) or 'none'}",
               err=True)


@app.command("bangke")
def bangke(
    load: str = typer.Argument(..., help="The transport load's code (TR-…)."),
    out: Path = typer.Option(Path("."), "--out", help="Folder the files are written to."),
    fmt: str = typer.Option("pdf,xlsx", "--format", help="pdf, xlsx or both (pdf,xlsx)."),
) -> None:
    """Write the forest-product list (bảng kê lâm sản) of a load as PDF and/or XLSX."""
    from barcodes import bangke as bk
    from smarttrees.errors import ArgumentError

    formats = [f.strip() for f in fmt.split(",") if f.strip()]
    if not formats or set(formats) - {"pdf", "xlsx"}:
        raise ArgumentError("--format", f"{fmt!r}", ("pdf", "xlsx", "pdf,xlsx"))

    async def work(conn: AsyncConnection) -> bk.BangKe:
        return await bk.bangke(conn, load)

    document = _run(work)
    out.mkdir(parents=True, exist_ok=True)
    for kind in formats:
        path = out / _safe(f"bangke-{document.load_code}.{kind}")
        path.write_bytes(bk.to_pdf(document) if kind == "pdf" else bk.to_xlsx(document))
        typer.echo(path)
    typer.echo(f"{len(document.rows)} logs, {document.volume_m3:.4f} m³", err=True)


@app.command("epcis")
def epcis(
    codes: list[str] = typer.Argument(None, help="Items whose events to export (a load "
                                      "brings its logs'); none: every item."),
    since: str = typer.Option(None, "--since", help="From this date or time (inclusive)."),
    until: str = typer.Option(None, "--until", help="Until this date or time (exclusive)."),
    out: Path = typer.Option(None, "--out", help="File to write; default: standard output."),
) -> None:
    """Write custody events as an EPCIS 2.0 JSON-LD document, streamed."""
    from barcodes.epcis import item_keys, stream_document
    from smarttrees.errors import ArgumentError

    if not codes and since is None:
        raise ArgumentError("--since", "give --since DATE or at least one CODE")
    start, end = _day(since, "--since"), _day(until, "--until")
    ids = _identifiers()
    # A file is written beside its name and renamed once whole: never half a document.
    partial = out.with_name(out.name + ".partial") if out is not None else None
    sink = partial.open("wb") if partial is not None else sys.stdout.buffer

    async def work(conn: AsyncConnection) -> None:
        keys = await item_keys(conn, codes) if codes else None
        async for chunk in stream_document(conn, ids, since=start, until=end, keys=keys):
            sink.write(chunk)

    try:
        _run(work)
    except BaseException:
        if partial is not None:
            sink.close()
            partial.unlink(missing_ok=True)
        raise
    if out is not None and partial is not None:
        sink.close()
        partial.replace(out)


@app.command("ledger")
def ledger(
    place: str = typer.Argument(None, help="The mill or yard, as its received scans name it; "
                                "none: list the places."),
    start: str = typer.Option(None, "--from", help="First day (inclusive), e.g. 2025-09-01."),
    end: str = typer.Option(None, "--to", help="Last day (exclusive)."),
    out: Path = typer.Option(None, "--out", help="Write a .csv or .xlsx file instead."),
) -> None:
    """Print the in/out ledger (sổ nhập, xuất) of a mill or yard: one line a day, balances."""
    from barcodes import ledger as lg
    from smarttrees.errors import ArgumentError

    if place is None:
        for name in _run(lg.places):
            typer.echo(name)
        return
    first, last = _day(start, "--from"), _day(end, "--to")
    if out is not None and out.suffix not in (".csv", ".xlsx"):
        raise ArgumentError("--out", f"{out.name}: write a .csv or an .xlsx file")

    async def work(conn: AsyncConnection) -> lg.Ledger:
        return await lg.ledger(conn, place, first.date() if first else None,
                               last.date() if last else None)

    book = _run(work)
    if out is None:
        lines = lg.table(book)
        typer.echo("\n".join("\t".join(str(c) for c in line) for line in lines))
        return
    out.write_bytes(lg.to_xlsx(book) if out.suffix == ".xlsx" else lg.to_csv(book))
    typer.echo(out)
