"""Links in the server's documents: the one base URL they start with, and their model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
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


class Link(BaseModel):
    """A link of an OGC API document (RFC 8288 members as OGC API Common writes them)."""

    model_config = ConfigDict(extra="forbid")

    rel: str
    type: str | None = None
    href: str
    title: str | None = None
    hreflang: str | None = None
    templated: bool | None = None
