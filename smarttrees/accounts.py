"""People and their API tokens.

A token is a random string shown once when issued; only its SHA-256 is stored, so a database
dump never yields a usable token. Roles gate the write paths: ``viewer`` reads, ``editor`` edits
the public layers, ``field`` records scans, ``admin`` may do everything.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from smarttrees.errors import SmartTreesError

ROLES = ("viewer", "editor", "field", "admin")

# Shared with the async check in gis_api.auth, so both paths agree on what a valid token is.
PRINCIPAL_SQL = """
    SELECT u.id, u.username, u.role
    FROM smarttrees.api_tokens t JOIN smarttrees.users u ON u.id = t.user_id
    WHERE t.token_hash = %s AND t.revoked_at IS NULL AND NOT u.disabled
      AND (t.expires_at IS NULL OR t.expires_at > now())
"""


class AccountError(SmartTreesError):
    """A user or token operation cannot be done (unknown user, bad role, duplicate name)."""

    rule = "account"


@dataclass(frozen=True)
class Principal:
    """The person a request acts for.

    Example: ``Principal(user_id=3, username="lan", role="editor")``.
    """

    user_id: int
    username: str
    role: str

    def has_role(self, *roles: str) -> bool:
        """True when the principal holds one of ``roles``; admins hold them all."""
        return self.role == "admin" or self.role in roles


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: never the token itself."""

    id: int
    username: str
    label: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


def hash_token(token: str) -> str:
    """Hex SHA-256 of a token, the form stored in ``api_tokens.token_hash``."""
    return hashlib.sha256(token.encode()).hexdigest()


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")


def create_user(conn: psycopg.Connection, username: str, role: str) -> int:
    """Create a user with ``role``; return their id.

    Raises
    ------
    AccountError
        The role is unknown, the name is empty or already taken.

    """
    _check_role(role)
    if not username.strip():
        raise AccountError("a username cannot be empty")
    row = conn.execute(
        "INSERT INTO smarttrees.users (username, role) VALUES (%s, %s) "
        "ON CONFLICT (username) DO NOTHING RETURNING id",
        [username, role],
    ).fetchone()
    if row is None:
        raise AccountError(f"user {username!r} already exists")
    return int(row[0])


def set_disabled(conn: psycopg.Connection, username: str, disabled: bool = True) -> None:
    """Disable (or re-enable) a user; their tokens stop working at once."""
    cur = conn.execute(
        "UPDATE smarttrees.users SET disabled = %s WHERE username = %s", [disabled, username]
    )
    if cur.rowcount == 0:
        raise AccountError(f"no user named {username!r}")


def list_users(conn: psycopg.Connection) -> list[tuple[str, str, bool, datetime]]:
    """Every user as (username, role, disabled, created_at), by name."""
    rows = conn.execute(
        "SELECT username, role, disabled, created_at FROM smarttrees.users ORDER BY username"
    ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def issue_token(
    conn: psycopg.Connection,
    username: str,
    label: str | None = None,
    expires: datetime | timedelta | None = None,
) -> str:
    """Issue a new token for ``username`` and return it (the only time it is seen).

    Parameters
    ----------
    conn
        An open connection; the caller commits.
    username
        An existing, enabled user.
    label
        Free text to recognise the token by in listings ("QGIS office PC").
    expires
        An absolute time, or a lifetime from now; ``None`` never expires.

    """
    if isinstance(expires, timedelta):
        expires = datetime.now(UTC) + expires
    row = conn.execute(
        "SELECT id, disabled FROM smarttrees.users WHERE username = %s", [username]
    ).fetchone()
    if row is None:
        raise AccountError(f"no user named {username!r}")
    if row[1]:
        raise AccountError(f"user {username!r} is disabled")
    token = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO smarttrees.api_tokens (user_id, token_hash, label, expires_at) "
        "VALUES (%s, %s, %s, %s)",
        [row[0], hash_token(token), label, expires],
    )
    return token


def revoke_token(conn: psycopg.Connection, token: str | int) -> None:
    """Revoke a token, given as the token itself or as its listed id."""
    if isinstance(token, int):
        cur = conn.execute(
            "UPDATE smarttrees.api_tokens SET revoked_at = now() "
            "WHERE id = %s AND revoked_at IS NULL",
            [token],
        )
    else:
        cur = conn.execute(
            "UPDATE smarttrees.api_tokens SET revoked_at = now() "
            "WHERE token_hash = %s AND revoked_at IS NULL",
            [hash_token(token)],
        )
    if cur.rowcount == 0:
        raise AccountError("no such active token")


def list_tokens(conn: psycopg.Connection, username: str | None = None) -> list[TokenInfo]:
    """Tokens (never their value), newest first, optionally of one user."""
    rows = conn.execute(
        "SELECT t.id, u.username, t.label, t.created_at, t.expires_at, t.revoked_at "
        "FROM smarttrees.api_tokens t JOIN smarttrees.users u ON u.id = t.user_id "
        "WHERE %s::text IS NULL OR u.username = %s ORDER BY t.id DESC",
        [username, username],
    ).fetchall()
    return [TokenInfo(*r) for r in rows]

