"""The IOC's loaders in ``smarttrees load``: agencies, documents, citizen-support, targets."""

# ruff: noqa: B008 - typer declares options as parameter defaults
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import typer


def _command(kind: str, key: str) -> Callable[..., None]:
    def command(
        file: Path = typer.Argument(..., help="CSV or XLSX file (Vietnamese or English headers)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Check and report; write nothing."),
        strict: bool = typer.Option(False, "--strict", help="Refuse all if any row is bad."),
        rejects: Path = typer.Option(None, "--rejects", help="Where to write refused rows."),
        first: dt.datetime = typer.Option(None, "--from", formats=["%Y-%m-%d"],
                                          help="First date the records may have (2000-01-01)."),
        last: dt.datetime = typer.Option(None, "--to", formats=["%Y-%m-%d"],
                                         help="Last date the records may have (today)."),
    ) -> None:
        from etl import ioc_load

        period = ((first or dt.datetime(2000, 1, 1)).date(), (last or dt.datetime.now()).date())
        result = ioc_load.load(kind, None, file, dry_run=dry_run, strict=strict,
                               rejects=rejects, period=period)
        typer.echo(result.summary())
        if dry_run:
            typer.echo("dry run: nothing written")
        elif strict and result.refused:
            typer.echo(f"strict: {result.refused} bad row(s), nothing written", err=True)
            raise typer.Exit(1)

    command.__doc__ = (f"Load {kind.replace('-', ' ')} for the IOC; {key} is the key. "
                       "All or nothing; the IOC layers are refreshed.")
    return command


def add_commands(load: typer.Typer) -> None:
    """Add ``agencies``, ``documents``, ``citizen-support`` and ``targets`` to ``load``."""
    load.command("agencies")(_command("agencies", "the agency code"))
    load.command("documents")(_command("documents", "the sender and document number"))
    load.command("citizen-support")(_command("citizen-support", "the case number"))
    load.command("targets")(_command("targets", "the commune code"))
