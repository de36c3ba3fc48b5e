"""``smarttrees users`` and ``smarttrees tokens``: who may write, and their API tokens."""

from __future__ import annotations

import typer

from smarttrees import accounts

users_app = typer.Typer(help="People who may use the API, and their roles.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (stored hashed; shown once).", no_args_is_help=True)


@users_app.command("add")
def add_user(
    username: str,
    role: str = typer.Option("viewer", help=f"One of: {', '.join(accounts.ROLES)}."),
    database: bool = typer.Option(
        False, "--database",
        help="Editors: also a PostgreSQL login role (st_NAME) to edit trees, stands and "
             "nurseries in QGIS; its password is printed once."),
) -> None:
    """Create a user."""
    from smarttrees.database import connect

    if database and role != "editor":
        raise accounts.AccountError("--database is for editors: give --role editor")
    with connect() as conn:
        accounts.create_user(conn, username, role)
        if database:
            from smarttrees import db_roles

            login, password = db_roles.create_login(conn, username)
    typer.echo(f"user {username} ({role}) created")
    if database:
        typer.echo(f"database login {login}, password (shown once): {password}")


@users_app.command("list")
def list_users() -> None:
    """List users with their roles."""
    from smarttrees.database import connect

    with connect() as conn:
        for name, role, disabled, created in accounts.list_users(conn):
            state = "disabled" if disabled else "active"
            typer.echo(f"{name}\t{role}\t{state}\t{created:%Y-%m-%d}")


@users_app.command("disable")
def disable_user(
    username: str,
    enable: bool = typer.Option(False, "--enable", help="Re-enable instead."),
) -> None:
    """Disable a user (their tokens stop working at once)."""
    from smarttrees.database import connect

    with connect() as conn:
        accounts.set_disabled(conn, username, not enable)
    typer.echo(f"user {username} {'enabled' if enable else 'disabled'}")


@tokens_app.command("create")
def create_token(
    username: str,
    label: str | None = typer.Option(None, help="What the token is for."),
    days: int | None = typer.Option(None, min=1, help="Expire after this many days."),
) -> None:
    """Issue a token and print it: it is shown this once only."""
    from datetime import timedelta

    from smarttrees.database import connect

    with connect() as conn:
        token = accounts.issue_token(
            conn, username, label, timedelta(days=days) if days else None
        )
    typer.echo(token)


@tokens_app.command("revoke")
def revoke_token(token_id: int = typer.Argument(..., help="Id from `tokens list`.")) -> None:
    """Revoke a token by its id."""
    from smarttrees.database import connect

    with connect() as conn:
        accounts.revoke_token(conn, token_id)
    typer.echo(f"token {token_id} revoked")


@tokens_app.command("list")
def list_tokens(username: str | None = typer.Argument(None)) -> None:
    """List tokens (ids, owners, labels, state; never the tokens themselves)."""
    from smarttrees.database import connect

    with connect() as conn:
        for t in accounts.list_tokens(conn, username):
            state = "revoked" if t.revoked_at else "active"
            expires = f"expires {t.expires_at:%Y-%m-%d}" if t.expires_at else "no expiry"
            typer.echo(f"{t.id}\t{t.username}\t{state}\t{expires}\t{t.label or ''}")


def register(app: typer.Typer) -> None:
    """Add the ``users`` and ``tokens`` command groups."""
    app.add_typer(users_app, name="users")
    app.add_typer(tokens_app, name="tokens")
