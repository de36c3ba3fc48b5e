"""The read-aheads of ``smarttrees load trees``, started from its command line.

A workbook's sheet (``etl.xlsx_prefetch``) or a CSV's bytes (``etl.csv_prefetch``) are read on
a thread while the loader's modules are imported; each starts only for a load of one file of
its kind. This module and those two import nothing heavy: they run before the loader's imports.
"""

from __future__ import annotations

from pathlib import Path

from etl import csv_prefetch, xlsx_prefetch


def start_from_argv(argv: list[str]) -> None:
    """:func:`start` from the command line, before the command's modules are imported.

    ``argv`` (without the program) as ``load trees [options] FILE…``: the files are the words
    after ``trees`` that name existing files (an option's value that names a file counts as one,
    so that only a load of one file and no other starts a read). :func:`start` with the files
    the command was given then keeps that read or lets it go.
    """
    words = [a for a in argv if not a.startswith("-")]
    if words[:2] != ["load", "trees"] or "--help" in argv:
        return
    try:
        files = [Path(w) for w in words[2:] if Path(w).is_file()]
    except (OSError, ValueError):
        return
    start(files)


def start(paths: list[Path]) -> None:
    """Start the read-ahead of ``paths`` that fits them (none when they are not one file)."""
    xlsx_prefetch.start(paths)
    csv_prefetch.start(paths)
