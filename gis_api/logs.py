"""What the server logs: pygeoapi's answers, and one access line per request, not by whom.

pygeoapi logs every exception document it sends at ERROR, with the traceback of whatever it
caught (a CQL parser's, say), so each bad request a client made filled the log with tracebacks.
While :meth:`gis_api.ogc.Pygeoapi.call` runs, pygeoapi's records are held back
(:func:`pygeoapi_records`); once the status is known, :func:`report` logs a 4xx as one INFO line
naming the request and pygeoapi's reason, and passes everything else on unchanged (a 5xx keeps
its traceback). Records pygeoapi makes outside a call (at start-up) pass straight through.

uvicorn's access line names the client's address and the whole query string, where a
``case_no`` or a code can identify a person; :func:`access_log_config` gives ``smarttrees
serve`` uvicorn's own logging configuration with :class:`PrivateAccessLine` on its access
records: no address, and each query parameter's value replaced by ``…`` (the keys stay, so an
operator still sees what kind of request it was).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qsl, quote

log = logging.getLogger(__name__)

# The records of the pygeoapi call under way in this context (None: no call under way).
_HELD: ContextVar[list[logging.LogRecord] | None] = ContextVar("pygeoapi_records", default=None)


def _pass_on(record: logging.LogRecord) -> None:
    """Give a record to the root logger's handlers, as if pygeoapi's logger propagated it."""
    logging.getLogger().handle(record)


class _HoldDuringCalls(logging.Handler):
    """pygeoapi's only handler: holds its records during a call, passes the others on."""

    def emit(self, record: logging.LogRecord) -> None:
        held = _HELD.get()
        if held is None:
            _pass_on(record)
        else:
            held.append(record)


def _install() -> None:
    """Route pygeoapi's records through :class:`_HoldDuringCalls` (once per process)."""
    pygeoapi = logging.getLogger("pygeoapi")
    if any(isinstance(h, _HoldDuringCalls) for h in pygeoapi.handlers):
        return
    pygeoapi.addHandler(_HoldDuringCalls())
    pygeoapi.propagate = False
    # Dozens of "unknown locale 'bbox'" warnings per HTML page: pygeoapi trying config keys
    # as language tags. Nothing an operator can act on.
    logging.getLogger("pygeoapi.l10n").setLevel(logging.ERROR)


@contextmanager
def pygeoapi_records() -> Iterator[list[logging.LogRecord]]:
    """Hold pygeoapi's log records made in this context (worker threads included) until exit.

    ``asyncio.to_thread`` runs its function in a copy of the caller's context, so records
    pygeoapi makes in the worker thread land in the list yielded here.
    """
    _install()
    held: list[logging.LogRecord] = []
    token = _HELD.set(held)
    try:
        yield held
    except BaseException:  # no status to judge by: pass everything on, then the exception
        _HELD.reset(token)
        for record in held:
            _pass_on(record)
        raise
    _HELD.reset(token)


def report(method: str, path: str, status: int, records: list[logging.LogRecord]) -> None:
    """Log the held records of one pygeoapi call that answered ``status``.

    Parameters
    ----------
    method, path
        The request, named in the one line of a client error (no query string: it is the
        client's text, and the access log has it).
    status
        The HTTP status pygeoapi answered.
    records
        What pygeoapi logged during the call.

    """
    if 400 <= status < 500:
        errors = [r for r in records if r.levelno >= logging.ERROR]
        reason = errors[-1].getMessage() if errors else "refused"
        log.info("%s %s: %d from pygeoapi: %s", method, path, status, reason)
        return
    for record in records:
        _pass_on(record)


HIDDEN = "…"  # what a query parameter's value reads as in the access log


def private_path(path: str) -> str:
    """``path`` with every query parameter's value replaced by :data:`HIDDEN`."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    keys = [quote(key, safe="") for key, _ in parse_qsl(query, keep_blank_values=True)]
    return base + sep + "&".join(f"{key}={HIDDEN}" for key in keys)


class PrivateAccessLine(logging.Filter):
    """uvicorn's access records without the client's address and with query values hidden."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's arguments in place; every record is kept."""
        args = record.args
        # uvicorn's access record: (client address, method, path with query, HTTP version, status)
        if isinstance(args, tuple) and len(args) == 5:
            _, method, path, version, status = args
            record.args = ("-", method, private_path(str(path)), version, status)
        return True


def access_log_config() -> dict[str, Any]:
    """The logging configuration of uvicorn, its access lines through :class:`PrivateAccessLine`."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["private"] = {"()": PrivateAccessLine}
    config["handlers"]["access"]["filters"] = ["private"]
    config["formatters"]["access"]["fmt"] = '%(levelprefix)s "%(request_line)s" %(status_code)s'
    return config
