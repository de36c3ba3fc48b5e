"""Who a request acts for: ``Authorization: Bearer <token>`` checked against hashed tokens.

Reads of public collections are open; every write path calls :func:`require_role`. Tokens never
appear in a log line or an error message.
"""

from __future__ import annotations

from starlette.requests import Request

from gis_api.errors import Forbidden, Unauthorized
from smarttrees.accounts import PRINCIPAL_SQL, Principal, hash_token


def bearer_token(request: Request) -> str | None:
    """The bearer token of a request, or ``None`` when there is none."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def principal(request: Request) -> Principal | None:
    """The principal of a request's token, or ``None`` (no token, or an invalid one)."""
    token = bearer_token(request)
    if token is None:
        return None
    async with request.app.state.pool.connection() as conn:
        cur = await conn.execute(PRINCIPAL_SQL, [hash_token(token)])
        row = await cur.fetchone()
    return Principal(int(row[0]), row[1], row[2]) if row else None


async def require_role(request: Request, *roles: str) -> Principal:
    """The request's principal, who must hold one of ``roles`` (admins hold every role).

    Raises
    ------
    Unauthorized
        No token, or one that is unknown, revoked, expired or of a disabled user (401).
    Forbidden
        A valid token whose role is not among ``roles`` (403).

    """
    if bearer_token(request) is None:
        raise Unauthorized("this needs a token: send 'Authorization: Bearer <token>'")
    who = await principal(request)
    if who is None:
        raise Unauthorized("the token is unknown, revoked or expired")
    if not who.has_role(*roles):
        raise Forbidden(f"role {who.role!r} may not do this; needs one of: {', '.join(roles)}")
    return who
