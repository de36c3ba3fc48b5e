"""How a command that failed tells it: one line on stderr and an exit code, never a traceback.

Every exception that leaves a command comes here (from :func:`smarttrees.cli.main`) and is
worded by its kind. The exit codes, documented in the README:

====  =========================================================================================
1     refused: bad input or a state to fix first (the message says what and where)
2     the command line is wrong (click's usage errors)
3     the database cannot be reached, was lost during the command, or its server failed
4     a file or folder cannot be read or written (permission, disk full, missing)
70    an internal error: a bug; ``smarttrees --debug …`` shows where
130   interrupted (Ctrl-C)
====  =========================================================================================

Database messages carry PostgreSQL's primary message only: its details may quote stored values.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

REFUSED, USAGE, DATABASE, FILES, INTERNAL, INTERRUPTED = 1, 2, 3, 4, 70, 130


@dataclass(frozen=True)
class Failure:
    """What to print and the exit code."""

    message: str
    code: int


def explain(exc: BaseException) -> Failure:
    """The one line and the exit code for an exception that ended a command."""
    from smarttrees.errors import SmartTreesError

    if isinstance(exc, KeyboardInterrupt):
        return Failure("interrupted: work not yet committed was not stored", INTERRUPTED)
    if isinstance(exc, SmartTreesError):
        return Failure(f"error: {exc}", REFUSED)
    setting = _settings_failure(exc)
    if setting is not None:
        return setting
    database = _database_failure(exc)
    if database is not None:
        return database
    if isinstance(exc, OSError):
        return _file_failure(exc)
    if isinstance(exc, MemoryError):
        return Failure("error: out of memory (a smaller SMARTTREES_LOAD_BATCH_BYTES may help)",
                       REFUSED)
    return Failure(f"internal error: {type(exc).__name__}: {_first_line(exc)} "
                   "(run again as `smarttrees --debug …` to see where)", INTERNAL)


def _settings_failure(exc: BaseException) -> Failure | None:
    """A SMARTTREES_ setting that does not validate: its name and the reason."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError) or exc.title != "Settings":
        return None
    problems = "; ".join(
        f"SMARTTREES_{str(e['loc'][0]).upper() if e['loc'] else '?'}: "
        f"{str(e['msg']).removeprefix('Value error, ')}"
        for e in exc.errors()
    )
    return Failure(f"error: a setting is not valid: {problems}", REFUSED)


def _database_failure(exc: BaseException) -> Failure | None:
    import psycopg

    if not isinstance(exc, psycopg.Error):
        return None
    primary = _primary(exc)
    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
        if primary.startswith(("connection failed", "connection to server")):
            return Failure(f"error: cannot reach the database: {primary} "
                           "(is it running? see `smarttrees db status`)", DATABASE)
        return Failure(f"error: the database connection was lost: {primary}; work not yet "
                       "committed was not stored", DATABASE)
    state = exc.sqlstate or ""
    if state.startswith(("57P", "08")):          # shut down, terminated, connection failure
        return Failure(f"error: the database connection was lost: {primary}; work not yet "
                       "committed was not stored", DATABASE)
    if state == "53100":
        return Failure(f"error: the database server's disk is full ({primary}); work not "
                       "yet committed was not stored", DATABASE)
    if state.startswith(("53", "58", "XX")):     # resources, system and internal errors
        return Failure(f"error: the database server failed: {primary}", DATABASE)
    if state in ("42P01", "42703", "42883", "3F000"):  # no such table, column, function, schema
        return Failure(f"error: the database lacks part of the SmartTrees schema ({primary}): "
                       "run `smarttrees db upgrade`", REFUSED)
    if state == "42501":
        return Failure(f"error: the database user may not do this: {primary}", REFUSED)
    if state == "57014":
        return Failure(f"error: the database cancelled the statement: {primary}", DATABASE)
    return Failure(f"internal error: the database refused a statement: {primary} "
                   "(run again as `smarttrees --debug …` to see where)", INTERNAL)


def _file_failure(exc: OSError) -> Failure:
    where = f": {exc.filename}" if exc.filename is not None else ""
    number = exc.errno
    if number in (errno.ENOSPC, errno.EDQUOT):
        text = f"no space left on the disk{where}"
    elif number in (errno.EACCES, errno.EPERM):
        text = f"permission denied{where}"
    elif number == errno.ENOENT:
        text = f"no such file or folder{where}"
    elif number == errno.EROFS:
        text = f"read-only file system{where}"
    elif number == errno.EISDIR:
        text = f"a folder where a file was expected{where}"
    else:
        text = f"{exc.strerror or type(exc).__name__}{where}"
    return Failure(f"error: {text}", FILES)


def _primary(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    return primary or _first_line(exc)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else "").strip()[:300]
