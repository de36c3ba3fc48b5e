"""The IOC's loaders, added to ``smarttrees load``: agencies, documents, citizen-support."""

# ruff: noqa: B008 - typer declares options as parameter defaults
from __future__ import annotations

import typer


def add_commands(load: typer.Typer) -> None:
    """Add ``agencies``, ``documents`` and ``citizen-support`` to the ``load`` group."""
