import httpx
import pytest

from smarttrees import accounts
from smarttrees.accounts import AccountError


def test_token_is_stored_hashed_and_resolves_to_its_user(conn):
    accounts.create_user(conn, "lan", "editor")
    token = accounts.issue_token(conn, "lan", label="QGIS")
    stored = conn.execute("SELECT token_hash FROM api_tokens").fetchone()[0]
    assert token not in stored
    assert stored == accounts.hash_token(token)
    who = accounts.principal_for_token(conn, token)
    assert (who.username, who.role) == ("lan", "editor")


def test_revoked_expired_and_disabled_tokens_do_not_resolve(conn):
    from datetime import timedelta

    accounts.create_user(conn, "minh", "field")
    revoked = accounts.issue_token(conn, "minh")
    accounts.revoke_token(conn, revoked)
    expired = accounts.issue_token(conn, "minh", expires=timedelta(seconds=-1))
    assert accounts.principal_for_token(conn, revoked) is None
    assert accounts.principal_for_token(conn, expired) is None
    live = accounts.issue_token(conn, "minh")
    accounts.set_disabled(conn, "minh")
    assert accounts.principal_for_token(conn, live) is None


@pytest.mark.parametrize(("name", "role"), [("x", "superuser"), ("", "viewer")])
def test_bad_users_are_refused(conn, name, role):
    with pytest.raises(AccountError):
        accounts.create_user(conn, name, role)


def test_health_and_readiness(live_server):
    assert httpx.get(f"{live_server}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{live_server}/readyz").json() == {"status": "ready"}


def test_unknown_path_is_an_ogc_json_404(live_server):
    r = httpx.get(f"{live_server}/no/such/path")
    assert r.status_code == 404
    assert r.json()["code"] == "NotFound"
