"""The server's one route table and the command's explicit registrations miss nothing."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
import re
import subprocess
import sys

from starlette.routing import BaseRoute, Mount, Route

import gis_api
import smarttrees.cli
from gis_api.app import create_app
from smarttrees.settings import Settings


def _paths(routes: list[BaseRoute]) -> list[tuple[str, frozenset[str]]]:
    found = []
    for route in routes:
        if isinstance(route, Route):
            found.append((route.path, frozenset(route.methods or ())))
        elif isinstance(route, Mount):
            found.append((route.path, frozenset()))
    return found


def test_every_route_module_is_in_the_route_table_once() -> None:
    served = _paths(create_app(Settings()).routes)
    twice = sorted({path for path in served if served.count(path) > 1})
    assert not twice, f"routes registered twice: {twice}"
    modules = [importlib.import_module(info.name)
               for info in pkgutil.iter_modules(gis_api.__path__, "gis_api.")]
    with_routes = [module for module in modules if callable(getattr(module, "routes", None))]
    assert {m.__name__ for m in with_routes} >= {"gis_api.tiles", "gis_api.scans", "gis_api.items"}
    for module in with_routes:
        own = module.routes(Settings()) if module.__name__ == "gis_api.ogc" else module.routes()
        missing = [path for path in _paths(own) if path not in served]
        assert not missing, f"{module.__name__} routes not served: {missing}"


def test_every_command_module_is_registered() -> None:
    help_text = subprocess.run([sys.executable, "-m", "smarttrees", "--help"], capture_output=True,
                               text=True, check=True, env={**os.environ, "COLUMNS": "200"}).stdout
    commands = set(re.findall(r"^│ (\S+) ", help_text, flags=re.MULTILINE))
    families = {info.name for info in pkgutil.iter_modules(smarttrees.cli.__path__, "smarttrees.cli.")
                if hasattr(importlib.import_module(info.name), "register")}
    names = {name.rpartition(".")[2] for name in families}
    # backup's commands are under db; every other family is a top-level command of its name.
    assert names - {"backup"} <= commands, help_text


def test_version_is_the_installed_one() -> None:
    done = subprocess.run([sys.executable, "-m", "smarttrees", "--version"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"smarttrees {importlib.metadata.version('smarttrees')}"
