"""Staff edit in QGIS, straight in PostGIS, with a login role of their own (issue 12).

`smarttrees users add NAME --role editor --database` makes the role; Debian's QGIS (python3-qgis,
run by the system Python) opens the trees table on the PostGIS provider with it, adds, moves,
edits and deletes a tree, and the history names the person. The same role cannot read
personal data, write a tree outside the territory, or forge history. Skipped, saying so,
where python3-qgis is not installed.
"""

from __future__ import annotations

import json
import re
import subprocess

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.qgis import SYSTEM_PYTHON, needs_qgis

# Run by the system Python: edits through QGIS's PostGIS provider, prints what it saw as JSON.
QGIS_SCRIPT = r"""
import json, sys
from qgis.core import (QgsApplication, QgsGeometry, QgsPointXY, QgsVectorLayer,
                       QgsVectorLayerUtils)

uri = sys.argv[1]
app = QgsApplication([], False)
app.initQgis()
seen = {}
layer = QgsVectorLayer(uri + ' key=\'id\' srid=4326 type=Point table="smarttrees"."trees" (geom)',
                       "trees", "postgres")
seen["valid"] = layer.isValid()
fields = layer.fields()
seen["fields"] = [f.name() for f in fields]

def commit(what):
    ok = layer.commitChanges()
    seen[what] = ok
    if not ok:
        seen[what + "_errors"] = layer.commitErrors()
        layer.rollBack()

layer.startEditing()
# As the attribute form does: the provider's default clauses (id, created_at) for the rest.
f = QgsVectorLayerUtils.createFeature(
    layer, QgsGeometry.fromPointXY(QgsPointXY(105.84, 21.59)),
    {fields.indexOf("tree_code"): "QGIS-1", fields.indexOf("category"): "urban",
     fields.indexOf("dbh_cm"): 22.5})
layer.addFeature(f)
commit("added")
tree = next(layer.getFeatures("tree_code = 'QGIS-1'"), None)
if tree is None:
    print(json.dumps(seen))
    sys.exit(0)
seen["id"] = tree.id()
layer.startEditing()
layer.changeGeometry(tree.id(), QgsGeometry.fromPointXY(QgsPointXY(105.85, 21.60)))
commit("moved")
layer.startEditing()
layer.changeAttributeValue(tree.id(), fields.indexOf("condition"), "fair")
commit("edited")
layer.startEditing()
layer.changeGeometry(tree.id(), QgsGeometry.fromPointXY(QgsPointXY(2.35, 48.85)))
commit("moved_outside")
layer.startEditing()
layer.deleteFeature(tree.id())
commit("deleted")
cases = QgsVectorLayer(uri + ' key=\'id\' table="restricted"."citizen_support_cases"',
                       "cases", "postgres")
seen["cases_valid"] = cases.isValid() and cases.featureCount() >= 0 and \
    len(list(cases.getFeatures())) > 0
print(json.dumps(seen))
"""

pytestmark = [
    pytest.mark.slow,
    needs_qgis,
]


@pytest.fixture
def editor(db_url: str) -> tuple[str, str]:
    """The login role and password ``users add … --database`` printed."""
    out = run_cli("users", "add", "lan", "--role", "editor", "--database",
                  env=cli_env(SMARTTREES_DATABASE_URL=db_url))
    assert out.code == 0, out.stderr
    found = re.search(r"database login (\S+), password \(shown once\): (\S+)", out.stdout)
    assert found, out.stdout
    return found[1], found[2]


def test_qgis_edits_a_tree_in_postgis_with_history(db_url: str, editor: tuple[str, str]) -> None:
    role, password = editor
    info = conninfo_to_dict(db_url)
    uri = (f"dbname='{info['dbname']}' host={info['host']} port={info['port']} "
           f"user='{role}' password='{password}' sslmode=disable")
    done = subprocess.run([SYSTEM_PYTHON, "-c", QGIS_SCRIPT, uri], capture_output=True,
                          text=True, timeout=300, env={"QT_QPA_PLATFORM": "offscreen",
                                                       "HOME": "/tmp"}, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["valid"] and "tree_code" in seen["fields"]
    assert seen["added"], seen
    assert (seen["added"], seen["moved"], seen["edited"], seen["deleted"]) == (
        True, True, True, True), seen
    assert seen["moved_outside"] is False
    assert "outside the territory" in " ".join(seen["moved_outside_errors"])
    assert seen["cases_valid"] is False
    with psycopg.connect(db_url) as conn:
        history = conn.execute(
            "SELECT change, actor, source, changes FROM smarttrees.tree_history "
            "WHERE tree_code = 'QGIS-1' ORDER BY id").fetchall()
    assert [h[:3] for h in history] == [("insert", "lan", "database"),
                                        ("update", "lan", "database"),
                                        ("update", "lan", "database"),
                                        ("delete", "lan", "database")]
    assert history[2][3] == {"condition": {"old": None, "new": "fair"}}


def test_the_login_role_reaches_no_personal_data(db_url: str, editor: tuple[str, str]) -> None:
    role, password = editor
    info = conninfo_to_dict(db_url)
    login = f"host={info['host']} port={info['port']} dbname={info['dbname']} user={role} " \
            f"password={password}"
    with psycopg.connect(login, autocommit=True) as conn:
        for query in ("SELECT * FROM restricted.citizen_support_cases",
                      "SELECT * FROM smarttrees.users", "SELECT * FROM smarttrees.api_tokens",
                      "SELECT owner_name FROM smarttrees.stands",
                      "INSERT INTO smarttrees.tree_history (tree_id, tree_code, change) "
                      "VALUES (1, 'X', 'insert')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(query)
        assert conn.execute("SELECT count(*) FROM smarttrees.stands").fetchone() == (0,)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("INSERT INTO smarttrees.trees (tree_code, category, species_id, geom) "
                         "VALUES ('X-1', 'urban', 99999, "
                         "ST_SetSRID(ST_MakePoint(105.84, 21.59), 4326))")
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO smarttrees.trees (tree_code, category, geom) "
                         "VALUES ('X-2', 'forest', ST_SetSRID(ST_MakePoint(105.84, 21.59), 4326))")


def test_database_logins_are_for_editors(db_url: str) -> None:
    out = run_cli("users", "add", "minh", "--role", "viewer", "--database",
                  env=cli_env(SMARTTREES_DATABASE_URL=db_url))
    assert out.code != 0
    assert out.error_lines == ["error: --database is for editors: give --role editor"]
