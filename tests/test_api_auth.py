import httpx
import pytest

from smarttrees import accounts
from smarttrees.accounts import AccountError
from tests.fixtures.accounts import principal_for_token


def test_token_is_stored_hashed_and_resolves_to_its_user(conn):
    accounts.create_user(conn, "lan", "editor")
    token = accounts.issue_token(conn, "lan", label="QGIS")
    stored = conn.execute("SELECT token_hash FROM api_tokens").fetchone()[0]
    assert token not in stored
    assert stored == accounts.hash_token(token)
    who = principal_for_token(conn, token)
    assert (who.username, who.role) == ("lan", "editor")


def test_revoked_expired_and_disabled_tokens_do_not_resolve(conn):
    from datetime import timedelta

    accounts.create_user(conn, "minh", "field")
    revoked = accounts.issue_token(conn, "minh")
    accounts.revoke_token(conn, revoked)
    expired = accounts.issue_token(conn, "minh", expires=timedelta(seconds=-1))
    assert principal_for_token(conn, revoked) is None
    assert principal_for_token(conn, expired) is None
    live = accounts.issue_token(conn, "minh")
    accounts.set_disabled(conn, "minh")
    assert principal_for_token(conn, live) is None


@pytest.mark.parametrize(("name", "role"), [("x", "superuser"), ("", "viewer")])
def test_bad_users_are_refused(conn, name, role):
    with pytest.raises(AccountError):
        accounts.create_user(conn, name, role)


def test_health_and_readiness(api_server):
    assert httpx.get(f"{api_server}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{api_server}/readyz").json() == {"status": "ready"}


def test_unknown_path_is_an_ogc_json_404(api_server):
    r = httpx.get(f"{api_server}/no/such/path")
    assert r.status_code == 404
    assert r.json()["code"] == "NotFound"


WRITES = [
    ("POST", "/collections/trees/items"),
    ("PUT", "/collections/trees/items/1"),
    ("PATCH", "/collections/trees/items/1"),
    ("DELETE", "/collections/trees/items/1"),
]
BODY = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [105.8, 21.5]},
        "properties": {"tree_code": "X", "category": "urban"}}


def tree_one(api_db):
    from smarttrees.database import connect

    with connect(api_db) as conn:
        return conn.execute("SELECT tree_code, dbh_cm FROM trees WHERE id = 1").fetchone()


@pytest.mark.parametrize(("method", "path"), WRITES)
@pytest.mark.parametrize("header", [None, "Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer"])
def test_every_write_refuses_without_a_valid_token(api_server, api_db, method, path, header):
    before = tree_one(api_db)
    headers = {"Authorization": header} if header else {}
    r = httpx.request(method, f"{api_server}{path}", json=BODY, headers=headers)
    assert r.status_code == 401
    assert r.json()["code"] == "Unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert tree_one(api_db) == before


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_viewers_and_field_teams_may_not_edit_trees(api_server, viewer_token, field_token, method, path):
    for token in (viewer_token, field_token):
        r = httpx.request(method, f"{api_server}{path}", json=BODY,
                          headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403
        assert r.json()["code"] == "Forbidden"


def test_a_revoked_token_stops_working(api_server, api_db, editor_token):
    from smarttrees.database import connect

    with connect(api_db) as conn:
        accounts.revoke_token(conn, editor_token)
    r = httpx.delete(f"{api_server}/collections/trees/items/1",
                     headers={"Authorization": f"Bearer {editor_token}"})
    assert r.status_code == 401


def test_reads_are_open(api_server):
    assert httpx.get(f"{api_server}/collections/trees/items?limit=1").status_code == 200


def run_cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "smarttrees", *args], capture_output=True,
                          text=True, timeout=60)


def test_users_and_tokens_commands(settings_env, conn):
    assert run_cli("users", "add", "hoa", "--role", "editor").returncode == 0
    made = run_cli("tokens", "create", "hoa", "--label", "QGIS", "--days", "30")
    assert made.returncode == 0
    token = made.stdout.strip()
    assert principal_for_token(conn, token).username == "hoa"
    listing = run_cli("tokens", "list")
    assert "hoa" in listing.stdout and "QGIS" in listing.stdout and token not in listing.stdout
    token_id = listing.stdout.split()[0]
    assert run_cli("tokens", "revoke", token_id).returncode == 0
    assert principal_for_token(conn, token) is None
    assert "hoa\teditor\tactive" in run_cli("users", "list").stdout
    assert run_cli("users", "disable", "hoa").returncode == 0
    bad = run_cli("users", "add", "x", "--role", "root")
    assert bad.returncode == 1 and "unknown role" in bad.stderr
