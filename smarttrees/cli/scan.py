"""``smarttrees scan decode``: read tags from photos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

scan_app = typer.Typer(help="Read tags from photos.", no_args_is_help=True)


@scan_app.command("decode")
def decode(
    images: Annotated[list[Path], typer.Argument(help="Photos (PNG, JPEG, …) of labels.")],
    as_json: bool = typer.Option(False, "--json", help="One JSON object per code found."),
) -> None:
    """Print every code found in each image: IMAGE, CODE, FORMAT (tab-separated).

    A symbol that is not a valid SmartTrees code is listed with the reason. The exit code is 1
    when an image cannot be read or holds no barcode at all.
    """
    from barcodes.decode import ImageError, decode_image
    from smarttrees.cli import err

    failed = False
    for image in images:
        try:
            found = decode_image(image)
        except ImageError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            failed = True
            continue
        if not found:
            err.print(f"[bold red]error:[/] {image}: no barcode or QR code found", highlight=False)
            failed = True
        for symbol in found:
            if as_json:
                typer.echo(
                    json.dumps({"image": str(image), **symbol.as_dict()}, ensure_ascii=False)
                )
            else:
                fields = [str(image), symbol.code or "-", symbol.format, symbol.problem or ""]
                typer.echo("\t".join(fields).rstrip("\t"))
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``smarttrees scan`` to the command."""
    app.add_typer(scan_app, name="scan")
