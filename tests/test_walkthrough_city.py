"""The README's walkthrough, run as a user would: a city outside Vietnam from nothing.

An empty database is migrated (`smarttrees db upgrade`), given Paris's boundary
(`load territory`), a species catalogue built from the inventory itself (`species unmatched
--csv`, completed, `load species`), and the inventory through its mapping (`load trees
--mapping paris_les_arbres`); `smarttrees serve` then serves it, and QGIS (Debian's
python3-qgis) opens the trees layer over OGC API – Features. Every step is a subprocess call of
the real command; the files are those of ``tests/test_open_inventories.py`` (issue 12 point 4).
"""

from __future__ import annotations

import csv
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.cli import SMARTTREES, cli_env, run_cli
from tests.fixtures.databases import copied_database
from tests.fixtures.qgis import SYSTEM_PYTHON, needs_qgis
from tests.fixtures.server import free_port

DATA = Path(__file__).parent / "data" / "open_inventories"
INVENTORY = DATA / "paris_les_arbres.csv"

pytestmark = pytest.mark.slow


def step(env: dict[str, str], *args: str) -> str:
    """Run one command of the walkthrough; it must succeed. Its standard output."""
    out = run_cli(*args, env=env)
    assert out.code == 0, (args, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    return out.stdout


def complete_catalogue(path: Path) -> list[str]:
    """What the newcomer does to the starter file: drop a bad name, give wood densities."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    kept = [r for r in rows if " " in r["scientific_name"]]     # "Acer" alone is not a species
    for r in kept:
        r["wood_density"] = "0.55"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    return [r["scientific_name"] for r in kept]


@pytest.fixture(scope="module")
def city(cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:  # type: ignore[no-untyped-def]
    """The walkthrough up to a running server: its URL, and what each step printed."""
    work = tmp_path_factory.mktemp("paris")
    with copied_database(cluster, "template1", "walk") as url:
        env = cli_env(SMARTTREES_DATABASE_URL=url)
        seen: dict[str, object] = {}
        step(env, "db", "upgrade")
        refused = run_cli("load", "trees", str(INVENTORY), "--mapping", "paris_les_arbres",
                          env=env)
        seen["before_territory"] = (refused.code, refused.error_lines)
        seen["territory"] = step(env, "load", "territory", str(DATA / "paris_boundary.geojson"),
                                 "--name", "Paris")
        starter = work / "paris_species.csv"
        seen["unmatched"] = step(env, "species", "unmatched", str(INVENTORY), "--mapping",
                                 "paris_les_arbres", "--csv", str(starter))
        seen["species"] = complete_catalogue(starter)
        seen["load_species"] = step(env, "load", "species", str(starter))
        seen["load"] = step(env, "load", "trees", str(INVENTORY), "--mapping", "paris_les_arbres",
                            "--rejects", str(work / "rejects.csv"))
        with (work / "rejects.csv").open(encoding="utf-8-sig", newline="") as handle:
            seen["rejects"] = [row[0] for row in list(csv.reader(handle))[1:]]
        port = free_port()
        server = subprocess.Popen([*SMARTTREES, "serve", "--host", "127.0.0.1", "--port",
                                   str(port)], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                assert server.poll() is None, "smarttrees serve exited"
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            seen["base"] = base
            yield seen
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def test_each_step_says_what_it_did(city: dict[str, object]) -> None:
    code, lines = city["before_territory"]      # type: ignore[misc]
    assert code != 0 and any("no territory set" in line for line in lines), lines
    assert "Paris" in str(city["territory"])
    unmatched = str(city["unmatched"])
    assert "Platanus x hispanica (4 row(s))" in unmatched
    assert sorted(city["species"]) == [          # type: ignore[type-var]
        "Acer platanoides", "Aesculus hippocastanum", "Platanus x hispanica",
        "Styphnolobium japonicum", "Tilia tomentosa"]
    assert "paris_les_arbres.csv: 16 rows" in str(city["load"])
    assert "inserted 13, updated 0, unchanged 0, refused 3" in str(city["load"])
    assert city["rejects"] == ["2113", "2114", "2115"]


def test_the_server_serves_the_city(city: dict[str, object]) -> None:
    base = city["base"]
    page = httpx.get(f"{base}/collections/trees/items", params={"limit": 100, "f": "json"},
                     timeout=30).json()
    codes = sorted(f["properties"]["tree_code"] for f in page["features"])
    assert codes == [str(2100 + i) for i in range(13)]
    lon, lat = page["features"][0]["geometry"]["coordinates"]
    assert 2.22 < lon < 2.47 and 48.80 < lat < 48.91


QGIS_SCRIPT = r"""
import json, sys
from qgis.core import QgsApplication, QgsVectorLayer
app = QgsApplication([], False)
app.initQgis()
layer = QgsVectorLayer(f"url='{sys.argv[1]}' typename='trees' pagingEnabled='true'",
                       "trees", "OAPIF")
feats = list(layer.getFeatures()) if layer.isValid() else []
print(json.dumps({"valid": layer.isValid(),
                  "codes": sorted(str(f["tree_code"]) for f in feats)}))
"""


@needs_qgis
def test_qgis_opens_the_city_trees(city: dict[str, object]) -> None:
    run = subprocess.run([SYSTEM_PYTHON, "-c", QGIS_SCRIPT, str(city["base"])],
                         capture_output=True, text=True, timeout=300, check=False,
                         env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin",
                              "HOME": "/tmp"})
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen == {"valid": True, "codes": [str(2100 + i) for i in range(13)]}
