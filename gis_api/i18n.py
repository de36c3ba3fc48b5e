"""The pages' message catalogues: one JSON file per language in ``gis_api/static/i18n``.

A catalogue maps a message key (``"filter.species"``) to its text, ``{name}`` marking a value
put in by the page; ``"language"`` is the language's own name, shown in the pages' language
picker. Adding a language is adding a file: the pages list the files they find here.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import orjson


@cache
def languages() -> tuple[dict[str, str], ...]:
    """The languages there are catalogues for: ``{"code": "vi", "name": "Tiếng Việt"}``, by code."""
    folder = resources.files("gis_api").joinpath("static/i18n")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            messages = orjson.loads(entry.read_bytes())
            found.append({"code": entry.name.removesuffix(".json"), "name": messages["language"]})
    return tuple(sorted(found, key=lambda lang: lang["code"]))
