"""Errors the API answers with, as OGC API exception documents.

Each error class carries its OGC exception code; ``STATUS`` maps classes to HTTP status codes in
one place, and :func:`exception_handlers` is registered once on the app. Anything unexpected
becomes a 500 whose body says nothing about internals (the traceback goes to the log).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

log = logging.getLogger(__name__)


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


class NotAcceptable(ApiError):
    """No representation in the requested format or CRS."""

    code = "NotAcceptable"


class Unavailable(ApiError):
    """The database cannot be reached."""

    code = "ServiceUnavailable"


STATUS: dict[type[ApiError], int] = {
    ApiError: 500,
    InvalidParameter: 400,
    InvalidFilter: 400,
    NotFound: 404,
    Unauthorized: 401,
    Forbidden: 403,
    NotAllowed: 405,
    Conflict: 409,
    NotAcceptable: 406,
    Unavailable: 503,
}

_HTTP_CODES = {400: "InvalidParameterValue", 404: "NotFound", 405: "MethodNotAllowed"}


def status_of(error: ApiError) -> int:
    """HTTP status of an error: that of its closest class in ``STATUS``."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(status: int, code: str, description: str) -> Response:
    """An OGC API exception document."""
    headers = {"WWW-Authenticate": 'Bearer realm="smarttrees"'} if status == 401 else None
    body = orjson.dumps({"code": code, "description": description})
    return Response(body, status, headers=headers, media_type="application/json")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(status_of(exc), exc.code, exc.description)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HttpError")
    return error_response(exc.status_code, code, str(exc.detail))


async def _pool_timeout(request: Request, exc: Exception) -> Response:
    log.warning("no database connection free for %s %s", request.method, request.url.path)
    return error_response(503, "ServiceUnavailable", "the server is busy; retry shortly")


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "ServerError", "internal error; see the server log")


Handler = Callable[[Request, Exception], Awaitable[Response]]


def exception_handlers() -> Mapping[type[Exception] | int, Handler]:
    """The handlers to give ``Starlette(exception_handlers=...)``."""
    from psycopg_pool import PoolTimeout

    return {
        ApiError: _api_error,
        HTTPException: _http_error,
        PoolTimeout: _pool_timeout,
        Exception: _unexpected,
    }
