"""Checks every request passes before any route sees it: no NUL characters, a bounded body.

- A NUL character (``%00``) in the path or in a query parameter's name or value is a 400 that
  names the parameter. PostgreSQL text cannot hold NUL, so without this check every route that
  binds a string parameter would answer a 500 (``PostgreSQL text fields cannot contain NUL``).
- A request body larger than ``settings.max_body_mb`` is a 413: at once when ``Content-Length``
  says so (before a byte of the body is read), else as soon as the streamed body passes the cap.
  Routes with a cap of their own (the photo uploads of ``/api/scans/decode`` and of a public
  hazard report, ``/api/care/reports``) are left to it.

One ASGI middleware (:class:`RequestGuards`), registered in :func:`gis_api.app.create_app`;
its answers are the API's usual OGC exception documents (:mod:`gis_api.errors`).
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gis_api.errors import ApiError, InvalidParameter, PayloadTooLarge, api_error_response

# Routes that check their body size themselves (with a cap of their own).
OWN_BODY_CAP = frozenset({"/api/scans/decode", "/api/care/reports", "/api/photos"})


def check_no_nul(scope: Scope) -> None:
    """Refuse a NUL character in the path or in any query parameter (400 naming it)."""
    if "\x00" in scope.get("path", ""):
        raise InvalidParameter("path: contains a NUL character (%00)")
    query = scope.get("query_string", b"").decode("latin-1")
    if "%00" not in query and "\x00" not in query:
        return
    for name, value in parse_qsl(query, keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            shown = name.replace("\x00", "%00")
            raise InvalidParameter(f"{shown}: contains a NUL character (%00), which is not allowed")


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``, if it sends one that is a number."""
    for key, value in scope.get("headers", ()):
        if key == b"content-length" and value.strip().isdigit():
            return int(value)
    return None


def too_large(limit: int) -> PayloadTooLarge:
    """The error of a body over ``limit`` bytes."""
    return PayloadTooLarge(f"body: larger than the {limit:,} bytes this server accepts")


def capped_receive(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises :class:`PayloadTooLarge` once the body passes ``limit`` bytes.

    The error rises in the route reading the body, so the app's handlers answer it (413).
    """
    received = 0

    async def receive_capped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large(limit)
        return message

    return receive_capped


class RequestGuards:
    """ASGI middleware: the NUL check and the body cap, before the routes.

    Parameters
    ----------
    app
        The application to guard.
    max_body_bytes
        Largest request body accepted, in bytes.
    own_cap
        Paths whose routes cap their bodies themselves.

    """

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, own_cap: Collection[str] = OWN_BODY_CAP
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.own_cap = own_cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a guarded-against request at once; pass the others on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            check_no_nul(scope)
            if scope.get("path") not in self.own_cap:
                length = declared_length(scope)
                if length is not None and length > self.max_body_bytes:
                    raise too_large(self.max_body_bytes)
                receive = capped_receive(receive, self.max_body_bytes)
        except ApiError as exc:
            await api_error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)
