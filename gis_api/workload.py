"""Bounded work: reads whose client has gone are cancelled, and filters share the pool.

Two ASGI middlewares, both outside the routes:

- :class:`CancelOnDisconnect` runs each read (GET, HEAD) in a task and listens for the client's
  ``http.disconnect``. When the client leaves before its answer is complete, the task is
  cancelled; psycopg turns the cancellation of a running query into a cancel request to
  PostgreSQL, so the backend stops and the connection goes back to the pool at once (instead of
  working for nobody until the statement timeout).
- :class:`FilterLane` lets at most ``Settings.filter_slots`` requests with a CQL2 ``filter`` run
  at once per process (the others wait their turn without holding a connection), so the
  expensive kind of request can never take every connection and one-tree requests, tiles and
  scans always find one.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)


# Reads only: a write the server has begun is carried through even when its client has gone
# (cancelling it would only roll it back; a scan's retry then finds it stored).
CANCELLABLE_METHODS = frozenset({"GET", "HEAD"})


INBOX_MESSAGES = 16  # client messages held for the application at most (each one chunk)


class CancelOnDisconnect:
    """Cancel a read's work when its client disconnects before the answer is complete."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: D102
        if scope["type"] != "http" or scope.get("method") not in CANCELLABLE_METHODS:
            await self.app(scope, receive, send)
            return
        await _Exchange(self.app, scope, receive, send).run()


class _Exchange:
    """One read under :class:`CancelOnDisconnect`: a watcher owns the client's channel."""

    def __init__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        self.app, self.scope, self._receive, self._send = app, scope, receive, send
        # Bounded: a GET may carry a chunked body nobody reads; past a few chunks the watcher
        # waits, and the server stops reading the socket, instead of holding it all in memory.
        self.inbox: asyncio.Queue[Message] = asyncio.Queue(maxsize=INBOX_MESSAGES)
        self.answered = False
        self.client_gone = False

    async def run(self) -> None:
        handler = asyncio.create_task(self.serve())
        watcher = asyncio.create_task(self.watch(handler))
        try:
            await handler
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not self.client_gone or (current is not None and current.cancelling()):
                raise  # the server itself is stopping us: not ours to swallow
            log.info(
                "client left before the answer to %s %s: its work was cancelled",
                self.scope.get("method"), self.scope.get("path"),
            )
        finally:
            watcher.cancel()

    async def serve(self) -> None:
        """Run the application on this exchange's channels."""
        await self.app(self.scope, self.receive, self.send)

    async def watch(self, handler: asyncio.Task[None]) -> None:
        """Pass the client's messages on; cancel ``handler`` if the client leaves early."""
        while True:
            message = await self._receive()
            await self.inbox.put(message)
            if message["type"] == "http.disconnect":
                if not self.answered:
                    self.client_gone = True
                    handler.cancel()
                return

    async def receive(self) -> Message:
        """The application's receive channel (fed by the watcher)."""
        return await self.inbox.get()

    async def send(self, message: Message) -> None:
        """The application's send channel; notes when the answer is complete."""
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.answered = True
        await self._send(message)


class FilterLane:
    """At most ``slots`` requests with a ``filter`` query parameter served at once.

    Parameters
    ----------
    app
        The application.
    slots
        How many filtered requests may run at once (``Settings.filter_slots``).

    """

    def __init__(self, app: ASGIApp, slots: int) -> None:
        self.app = app
        self.slots = asyncio.Semaphore(slots)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: D102
        if scope["type"] == "http" and _has_filter(scope):
            async with self.slots:
                await self.app(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _has_filter(scope: Scope) -> bool:
    query = scope.get("query_string", b"").decode("latin-1")
    return any(name == "filter" for name, _ in parse_qsl(query, keep_blank_values=True))
