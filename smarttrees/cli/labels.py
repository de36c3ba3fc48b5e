"""``smarttrees labels``: issue tags for seedling lots and timber logs and print their labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

labels_app = typer.Typer(
    help="Issue tags and print labels: an A4 PDF sheet, or one SVG/PNG file per label.",
    no_args_is_help=True,
)

_OUT = typer.Option(
    Path("labels.pdf"),
    "--out",
    "-o",
    help="A .pdf file for a printable sheet, or a folder for one SVG/PNG per label.",
)
_GRID = typer.Option("3x8", "--grid", help="Labels per A4 page, COLUMNSxROWS.")
_FORMAT = typer.Option("svg", "--format", help="svg or png, when --out is a folder.")
_GS1 = typer.Option(False, "--gs1", help="GS1-128 bars (needs SMARTTREES_GS1_COMPANY_PREFIX).")


def _write(codes: list[str], out: Path, grid: str, fmt: str, gs1: bool) -> None:
    """Render the labels of issued ``codes`` to a PDF sheet or a folder of files."""
    from barcodes.labels import render_label
    from barcodes.sheets import Grid, render_sheet
    from barcodes.tags import label_infos
    from smarttrees.database import connect
    from smarttrees.errors import SmartTreesError
    from smarttrees.settings import get_settings

    settings = get_settings()
    prefix = settings.gs1_company_prefix if gs1 else None
    if gs1 and not prefix:
        raise SmartTreesError("--gs1 needs SMARTTREES_GS1_COMPANY_PREFIX (6-12 digits)")
    if fmt not in ("svg", "png"):
        raise SmartTreesError(f"--format {fmt!r}: use svg or png")
    with connect() as conn:
        infos = label_infos(conn, codes, settings.server_url)
    if out.suffix.lower() == ".pdf":
        count = render_sheet(infos, out, Grid.parse(grid), prefix)
        typer.echo(f"wrote {count} labels to {out}")
        return
    out.mkdir(parents=True, exist_ok=True)
    for info in infos:
        (out / f"{info.code}.{fmt}").write_bytes(render_label(info, fmt, prefix))  # type: ignore[arg-type]
    typer.echo(f"wrote {len(infos)} {fmt.upper()} labels to {out}/")


@labels_app.command("seedlings")
def seedlings(
    lot: Annotated[
        list[str] | None,
        typer.Option("--lot", help="Lot code (LOT-00001) or tag code; repeat for several."),
    ] = None,
    all_lots: bool = typer.Option(False, "--all", help="Every seedling lot."),
    out: Path = _OUT,
    grid: str = _GRID,
    fmt: str = _FORMAT,
    gs1: bool = _GS1,
) -> None:
    """Labels for seedling lots (tags are issued for lots that have none yet)."""
    from barcodes.codes import ItemType
    from barcodes.tags import issue_tags, lot_ids
    from smarttrees.database import connect
    from smarttrees.errors import SmartTreesError

    if not lot and not all_lots:
        raise SmartTreesError("name lots with --lot CODE (repeatable) or use --all")
    with connect() as conn:
        if all_lots:
            ids = [
                int(r[0])
                for r in conn.execute("SELECT id FROM smarttrees.seedling_lots ORDER BY id")
            ]
        else:
            ids = lot_ids(conn, lot or [])
        tags = issue_tags(conn, ItemType.SEEDLING_LOT, ids)
    _write([tags[i] for i in ids], out, grid, fmt, gs1)


@labels_app.command("timber")
def timber(
    stand: str = typer.Option(..., "--stand", help="Stand code: labels for all of its logs."),
    out: Path = _OUT,
    grid: str = _GRID,
    fmt: str = _FORMAT,
    gs1: bool = _GS1,
) -> None:
    """Labels for every timber log of a stand (tags are issued for logs that have none yet)."""
    from barcodes.codes import ItemType
    from barcodes.tags import issue_tags, stand_log_ids
    from smarttrees.database import connect
    from smarttrees.errors import SmartTreesError

    with connect() as conn:
        ids = stand_log_ids(conn, stand)
        if not ids:
            raise SmartTreesError(f"stand {stand} has no timber logs")
        tags = issue_tags(conn, ItemType.TIMBER_LOG, ids)
    _write([tags[i] for i in ids], out, grid, fmt, gs1)


def register(app: typer.Typer) -> None:
    """Add ``smarttrees labels`` to the command."""
    app.add_typer(labels_app, name="labels")
