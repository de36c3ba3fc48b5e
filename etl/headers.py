"""Which column of a file feeds which field: headers matched to aliases, most specific first.

A header is compared with every alias of every field at four levels, from the most specific:

0. the same text (spaces trimmed and runs of spaces made one, Unicode NFC);
1. the same apart from case;
2. the same apart from case and diacritics (``smarttrees.domain.fold``);
3. the same once a trailing bracketed suffix is set aside on both sides — "Kinh độ (E)" is
   "Kinh độ", "Đường kính (mm)" is "Đường kính (cm)" — where a suffix naming a unit of the
   field gives that field its unit for the file.

The rule is **most specific alias wins**. A header is taken at the first level where it
matches anything: "Loài cây" (species) is the same text as a species alias, and only without
diacritics the same as "Loại cây" (category), so it is species. A header matching aliases of
two fields at its best level ("Loai cay") is refused with one message naming both fields,
unless each of those fields is fed by a more specific header of the file. Among several
headers for one field the most specific wins, then the alias listed first, then the leftmost
header.

>>> found = match(["Loài cây", "ĐK (mm)"], {"species": ("Loài cây",),
...                                          "category": ("Loại cây",),
...                                          "dbh": ("ĐK (cm)",)}, units={"dbh": {"cm", "mm"}})
>>> {name: (m.index, m.unit) for name, m in found.items()}
{'species': (0, None), 'dbh': (1, 'mm')}
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from etl.errors import InputError
from smarttrees.domain import fold

# A trailing "(…)" or "[…]": a unit, a hemisphere, a note.
SUFFIX = re.compile(r"\s*[(\[]\s*([^()\[\]]*?)\s*[)\]]\s*$")


def _spaced(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def _base(text: str) -> str:
    return fold(SUFFIX.sub("", text))


LEVELS: tuple[Callable[[str], str], ...] = (
    _spaced,
    lambda text: _spaced(text).casefold(),
    fold,
    _base,
)
LEVEL_NAMES = ("as written", "apart from case", "apart from case and diacritics",
               "apart from a bracketed suffix")


def suffix(text: str) -> str | None:
    """The folded text of a header's trailing bracketed suffix, if it has one."""
    found = SUFFIX.search(text)
    return fold(found.group(1)) if found else None


@dataclass(frozen=True)
class HeaderMatch:
    """The header feeding one field: its index, the level and alias it matched by, its unit."""

    index: int
    level: int
    alias: str
    rank: int                 # the alias's position in the field's list
    unit: str | None = None   # a unit read from the header's suffix (level 3 only)


def match(headers: list[str], aliases: Mapping[str, tuple[str, ...]], *,
          units: Mapping[str, Collection[str]] | None = None,
          path: Path | str = "input") -> dict[str, HeaderMatch]:
    """Field → the header that feeds it, by the rule of this module.

    Parameters
    ----------
    headers:
        The file's headers, in order.
    aliases:
        Field → the headers that may feed it, most usual first.
    units:
        Field → the unit names a header suffix may give it ("cm", "mm"…).
    path:
        The file, named in the error.

    Raises
    ------
    InputError
        A header matches two fields equally well and neither has a better header; row 1.

    """
    # Per level: field → {alias key → the alias's rank} (the first alias of a key kept).
    keys = [{name: {level(a): rank for rank, a in reversed(list(enumerate(names)))}
             for name, names in aliases.items()} for level in LEVELS]
    candidates: dict[int, tuple[int, dict[str, int]]] = {}   # header → level, field → rank
    for index, header in enumerate(headers):
        for level, func in enumerate(LEVELS):
            key = func(header)
            if not key:
                break
            hits = {name: table[key] for name, table in keys[level].items() if key in table}
            if hits:
                candidates[index] = (level, hits)
                break
    best: dict[str, HeaderMatch] = {}
    for index, (level, hits) in candidates.items():
        for name, rank in hits.items():
            old = best.get(name)
            if old is None or (level, rank, index) < (old.level, old.rank, old.index):
                best[name] = HeaderMatch(index, level, aliases[name][rank], rank)
    for index, (level, hits) in candidates.items():
        if len(hits) > 1 and any(best[name].index == index for name in hits):
            _refuse(path, headers[index], level, hits, aliases)
    found = dict(best)
    for name, m in best.items():
        unit = suffix(headers[m.index]) if m.level == 3 else None
        if unit is not None and units and unit in units.get(name, ()):
            found[name] = HeaderMatch(m.index, m.level, m.alias, m.rank, unit)
    return found


def _refuse(path: Path | str, header: str, level: int, hits: dict[str, int],
            aliases: Mapping[str, tuple[str, ...]]) -> None:
    meanings = " or ".join(f"{name.replace('_', ' ')} ({aliases[name][rank]!r})"
                           for name, rank in sorted(hits.items()))
    raise InputError(path, f"header {header!r} could mean {meanings} (the same "
                     f"{LEVEL_NAMES[level]}): write it as one of them, or give a --mapping",
                     row=1, field=header)
