"""The ISA TRAQ risk rating: two matrices, kept as data in ``traq.json`` with their citation.

Matrix 1 combines the likelihood of failure with the likelihood of impact into the likelihood
of failure and impact; matrix 2 combines that with the consequences of failure into the risk
rating (low, moderate, high, extreme). Nothing here is computed: both matrices are looked up as
published, so a reader can check ``traq.json`` against the manual cell by cell.

Example::

    >>> rate("probable", "high", "significant")
    Rating(likelihood_failure_impact='likely', risk='high')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any, NamedTuple

from smarttrees.care.errors import CareError


class Rating(NamedTuple):
    """The outcome of the two matrices for one tree part."""

    likelihood_failure_impact: str
    risk: str


@dataclass(frozen=True)
class Matrices:
    """Both TRAQ matrices and their vocabularies, as read from ``traq.json``."""

    citation: str
    failure: tuple[str, ...]
    impact: tuple[str, ...]
    failure_and_impact: tuple[str, ...]
    consequences: tuple[str, ...]
    risks: tuple[str, ...]
    matrix_1: dict[tuple[str, str], str]
    matrix_2: dict[tuple[str, str], str]


def _matrix(doc: dict[str, Any], rows: tuple[str, ...], columns: tuple[str, ...],
            values: tuple[str, ...]) -> dict[tuple[str, str], str]:
    cells: dict[tuple[str, str], str] = {}
    for row in rows:
        line = doc[row]
        if len(line) != len(columns) or not set(line) <= set(values):
            raise ValueError(f"traq.json: row {row!r} does not fit the vocabulary")
        cells.update({(row, column): value for column, value in zip(columns, line, strict=True)})
    return cells


@lru_cache(maxsize=1)
def matrices() -> Matrices:
    """The matrices shipped in ``smarttrees/care/traq.json`` (read once)."""
    doc = json.loads((files("smarttrees.care") / "traq.json").read_text(encoding="utf-8"))
    failure = tuple(doc["likelihood_of_failure"])
    impact = tuple(doc["likelihood_of_impact"])
    both = tuple(doc["likelihood_of_failure_and_impact"])
    consequences = tuple(doc["consequences"])
    risks = tuple(doc["risk"])
    return Matrices(
        citation=doc["citation"],
        failure=failure,
        impact=impact,
        failure_and_impact=both,
        consequences=consequences,
        risks=risks,
        matrix_1=_matrix(doc["matrix_1"], failure, impact, both),
        matrix_2=_matrix(doc["matrix_2"], both, consequences, risks),
    )


def _check(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise CareError("invalid_rating",
                        f"{name}: {value!r} is not a TRAQ rating; use one of {', '.join(valid)}")


def rate(failure: str, impact: str, consequences: str) -> Rating:
    """The TRAQ risk rating of one assessed part.

    Parameters
    ----------
    failure
        Likelihood of failure: improbable, possible, probable or imminent.
    impact
        Likelihood of impacting a target: very_low, low, medium or high.
    consequences
        Consequences of the failure: negligible, minor, significant or severe.

    Raises
    ------
    CareError
        A value outside the vocabulary (rule ``invalid_rating``); the message names it.

    """
    m = matrices()
    _check("likelihood_failure", failure, m.failure)
    _check("likelihood_impact", impact, m.impact)
    _check("consequences", consequences, m.consequences)
    both = m.matrix_1[(failure, impact)]
    return Rating(both, m.matrix_2[(both, consequences)])


def risk_order(risk: str | None) -> int:
    """0 for low … 3 for extreme (-1 for no rating): to sort by severity."""
    return matrices().risks.index(risk) if risk in matrices().risks else -1
