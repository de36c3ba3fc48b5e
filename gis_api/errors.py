"""Errors the API answers with, as OGC API exception documents: the one place statuses are set.

Two kinds of error reach a client. The API's own (:class:`ApiError` and its subclasses, raised
while reading a request) carry their OGC exception code; ``STATUS`` maps them to HTTP statuses.
The domain's (:class:`smarttrees.errors.SmartTreesError`, raised by etl, barcodes and smarttrees)
know nothing of HTTP and name a ``rule``; ``RULE_STATUS`` maps each rule a client can cause to
its status, the same on every route (a code with a wrong check character is a 422 whether it
comes in a scan, a trace or a label request). A refused scan (:class:`ScanRejected`) also lists
its problems. :func:`exception_handlers` is registered once on the app; anything unexpected,
a domain error whose rule is not the client's doing included, becomes a 500 whose body says
nothing about internals (the traceback goes to the log).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from barcodes.custody import Problem, ScanRejected
from smarttrees.errors import SmartTreesError

log = logging.getLogger(__name__)


class ErrorDocument(BaseModel):
    """The body of every error answer: an OGC API exception document.

    ``rule`` is the domain rule that refused the request (``invalid_inspection``,
    ``unknown_tree``…), a stable name a client can test and translate; left out of answers that
    no domain rule gave.
    """

    model_config = ConfigDict(extra="forbid")

    code: str
    description: str
    rule: str | None = None


class ScanProblemDocument(BaseModel):
    """One refused event of a scan request, with the status its rule maps to."""

    model_config = ConfigDict(extra="forbid")

    index: int
    client_event_id: str | None
    code: str | None
    rule: str
    message: str
    status: int


class ScanRejectedDocument(ErrorDocument):
    """A refused scan request: the exception document and every problem found."""

    problems: list[ScanProblemDocument] = Field(min_length=1)


class ApiError(Exception):
    """Base of the errors a client is told about; ``code`` is the OGC exception code."""

    code = "ServerError"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class InvalidParameter(ApiError):
    """A query parameter or body value is malformed or out of range."""

    code = "InvalidParameterValue"


class InvalidFilter(InvalidParameter):
    """A CQL2 filter that cannot be parsed or names an unknown property."""

    code = "InvalidFilter"


class NotFound(ApiError):
    """An unknown collection, item or path."""

    code = "NotFound"


class Unauthorized(ApiError):
    """No token, or a token that is unknown, revoked or expired."""

    code = "Unauthorized"


class Forbidden(ApiError):
    """A valid token whose role may not do this."""

    code = "Forbidden"


class NotAllowed(ApiError):
    """The method is not offered on this resource (a write to a read-only collection)."""

    code = "MethodNotAllowed"


class Conflict(ApiError):
    """The request clashes with stored data (a duplicate code, say)."""

    code = "Conflict"


class Unprocessable(ApiError):
    """A well-formed request that holds nothing to act on (an empty batch, an empty body)."""

    code = "InvalidParameterValue"


class NoBarcode(Unprocessable):
    """An image in which no barcode or QR code was found."""

    code = "NoBarcode"


class UnsupportedMediaType(ApiError):
    """A body of a media type the route does not take."""

    code = "UnsupportedMediaType"


class PayloadTooLarge(ApiError):
    """The request body is larger than the route accepts."""

    code = "PayloadTooLarge"


class NotAcceptable(ApiError):
    """No representation in the requested format or CRS."""

    code = "NotAcceptable"


class Unavailable(ApiError):
    """The database cannot serve the request now; ``retry_after`` seconds, if worth retrying."""

    code = "ServiceUnavailable"
    retry_after: int | None = 2


class Unreachable(Unavailable):
    """PostgreSQL cannot be reached: down, restarting, or the connection was lost."""


class Busy(Unavailable):
    """Every database connection is in use."""


class QueryTimeout(Unavailable):
    """A query ran past the statement timeout: the same request would fail again."""

    retry_after = None


STATUS: dict[type[ApiError], int] = {
    ApiError: 500,
    InvalidParameter: 400,
    InvalidFilter: 400,
    NotFound: 404,
    Unauthorized: 401,
    Forbidden: 403,
    NotAllowed: 405,
    Conflict: 409,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    Unprocessable: 422,
    NotAcceptable: 406,
    Unavailable: 503,
}

# The status of each domain rule a client's request can break. A rule not listed is the
# server's fault (a cluster that cannot start, say): a 500.
RULE_STATUS: dict[str, int] = {
    # A value that is well-formed but refused: a tag code with a wrong check character, an
    # event that does not fit its item, an image that cannot be read.
    "bad_code": 422,
    "bad_image": 422,
    "invalid_event": 422,
    "wrong_item_type": 422,
    "missing_field": 422,
    "field_not_used": 422,
    "future_time": 422,
    "before_previous_event": 422,
    "outside_province": 422,
    "unknown_destination": 422,
    "unknown_load": 422,
    # Traceability exports: a code with no plot of origin, a plot that breaks the EUDR rules.
    "not_timber_item": 422,
    "plot_without_polygon": 422,
    "invalid_plot_geometry": 422,
    "eudr_file_too_large": 422,
    "trace_refused": 422,
    "unknown_place": 404,
    "ledger_negative": 409,
    # Something the request names does not exist.
    "unknown_code": 404,
    # The request clashes with what is stored: the chain of custody, its totals, a replay.
    "transition": 409,
    "lot_quantity": 409,
    "planted_quantity": 409,
    "harvest_allowance": 409,
    "client_event_id_reused": 409,
    # Tree care (smarttrees.care): a record naming a tree that is not there or was removed,
    # a rating outside the TRAQ vocabulary, an order moved out of turn or by the wrong crew.
    "unknown_tree": 404,
    "tree_removed": 409,
    "invalid_inspection": 422,
    "invalid_rating": 422,
    "bad_parameter": 400,
    "invalid_order": 422,
    "invalid_price": 422,
    "unknown_order": 404,
    "forbidden": 403,
    "not_your_order": 403,
    "invalid_storm": 422,
    "invalid_damage": 422,
    "unknown_storm": 404,
    "storm_exists": 409,
    "invalid_report": 422,
    "unknown_report": 404,
    "unknown_photo": 404,
    "photo_too_large": 413,
    "rate_limited": 429,
}

# The OGC exception code of a status (for answers that are not an ApiError).
_HTTP_CODES = {
    400: "InvalidParameterValue",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "InvalidParameterValue",
    429: "TooManyRequests",
}


def status_of(error: ApiError) -> int:
    """HTTP status of an error: that of its closest class in ``STATUS``."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(
    status: int, code: str, description: str, *, retry_after: int | None = None,
    headers: Mapping[str, str] | None = None, rule: str | None = None,
) -> Response:
    """An OGC API exception document (with ``Retry-After`` when ``retry_after`` is given).

    ``headers``: more headers, e.g. the ``Allow`` of a 405; ``rule``: the domain rule refused.
    """
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="smarttrees"'
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    document = ErrorDocument(code=code, description=description, rule=rule)
    body = orjson.dumps(document.model_dump(exclude_none=True))
    return Response(body, status, headers=headers, media_type="application/json")


def api_error_response(error: ApiError) -> Response:
    """The answer to an :class:`ApiError` (for middleware, which runs outside the handlers)."""
    retry_after = error.retry_after if isinstance(error, Unavailable) else None
    return error_response(status_of(error), error.code, error.description, retry_after=retry_after)


def problem_status(problem: Problem) -> int:
    """The HTTP status of one refused scan event."""
    return RULE_STATUS[problem.rule]


def scan_rejected_response(error: ScanRejected) -> Response:
    """A refused scan: the exception document with every problem, at the first one's status."""
    status = problem_status(error.problems[0])
    body = ScanRejectedDocument(
        code=_HTTP_CODES[status],
        description=str(error),
        problems=[
            # Member by member: the document is the API's contract, a new member goes here.
            ScanProblemDocument(
                index=p.index, client_event_id=p.client_event_id, code=p.code, rule=p.rule,
                message=p.message, status=problem_status(p),
            )
            for p in error.problems
        ],
    )
    # Its rules are its problems' (the one ``rule`` of a domain error is left out here).
    document = body.model_dump(exclude={"rule"})
    return Response(orjson.dumps(document), status, media_type="application/json")


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SmartTreesError)
    if isinstance(exc, ScanRejected):
        return scan_rejected_response(exc)
    status = RULE_STATUS.get(exc.rule)
    if status is None:
        return await _unexpected(request, exc)
    return error_response(status, _HTTP_CODES[status], str(exc), rule=exc.rule)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return api_error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HttpError")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _pool_timeout(request: Request, exc: Exception) -> Response:
    log.warning("no database connection free for %s %s", request.method, request.url.path)
    return error_response(
        503, "ServiceUnavailable", "the server is busy; retry shortly",
        retry_after=Busy.retry_after,
    )


async def _query_canceled(request: Request, exc: Exception) -> Response:
    # QueryCanceled is an OperationalError: this handler is found first (closest class). Our own
    # cancellation (the client left) ends as CancelledError and never comes here, so this is the
    # statement timeout (PostGIS words it "due to user request" when it interrupts GEOS).
    seconds = request.app.state.settings.statement_timeout_ms / 1000
    log.warning("statement timeout (%g s) on %s %s", seconds, request.method, request.url.path)
    error = QueryTimeout(
        f"the query took longer than {seconds:g} s; narrow the request"
        " (a smaller bbox, a simpler filter or a lower limit)"
    )
    return await _api_error(request, error)


async def _database_lost(request: Request, exc: Exception) -> Response:
    # PostgreSQL stopped, restarted or crashed under the query (no SQLSTATE: the connection broke;
    # 08: connection exception; 57P: shut down), or it cannot serve now (out of disk or memory,
    # too many connections, a lock timeout): no traceback, a 503.
    sqlstate = getattr(exc, "sqlstate", None)
    lost = sqlstate is None or sqlstate.startswith(("08", "57P"))
    first_line = (str(exc).strip().splitlines() or [""])[0]
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, first_line)
    pool = getattr(request.app.state, "pool", None)
    if lost and pool is not None and hasattr(pool, "connection_lost"):  # idle ones are dead too
        await pool.connection_lost()
    if lost:
        error: Unavailable = Unreachable("the database is unavailable (connection lost); retry")
    else:
        error = Unavailable(f"the database cannot serve this now (SQLSTATE {sqlstate}); retry")
    return await _api_error(request, error)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "ServerError", "internal error; see the server log")


Handler = Callable[[Request, Exception], Awaitable[Response]]


def exception_handlers() -> Mapping[type[Exception] | int, Handler]:
    """The handlers to give ``Starlette(exception_handlers=...)``."""
    from psycopg import OperationalError
    from psycopg.errors import QueryCanceled
    from psycopg_pool import PoolTimeout

    return {
        ApiError: _api_error,
        SmartTreesError: _domain_error,
        HTTPException: _http_error,
        PoolTimeout: _pool_timeout,
        QueryCanceled: _query_canceled,
        OperationalError: _database_lost,
        Exception: _unexpected,
    }
