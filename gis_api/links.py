"""The base URL of every link the server writes into a document."""

from __future__ import annotations

from starlette.requests import Request

from smarttrees.settings import Settings


def base_url(request: Request, settings: Settings) -> str:
    """The URL clients reach the server at: ``public_url`` if set, else this request's host.

    Behind a proxy the request's host is the proxy's upstream address, which clients cannot
    reach: ``SMARTTREES_PUBLIC_URL`` names the address they see, and every link (tiles, web
    map, IOC, OGC documents) starts with it.
    """
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")
