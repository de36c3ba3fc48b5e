"""The ISA TRAQ matrices, cell by cell, against the manual's tables transcribed here by hand.

Dunster et al. 2017, *Tree Risk Assessment Manual* (2nd ed., ISA), Tables 6.2 and 6.3; the same
as Smiley et al. 2011, *BMP Tree Risk Assessment*, Tables 1 and 2. Rows and columns are written
the way the manual prints them (rows from the top, columns from the left), independently of
``smarttrees/care/traq.json``.
"""

from __future__ import annotations

import pytest

from smarttrees.care import traq
from smarttrees.care.errors import CareError

# Table 6.2: likelihood of failure (rows) × likelihood of impact (very low, low, medium, high).
MATRIX_1 = """
imminent    | unlikely | somewhat_likely | likely          | very_likely
probable    | unlikely | unlikely        | somewhat_likely | likely
possible    | unlikely | unlikely        | unlikely        | somewhat_likely
improbable  | unlikely | unlikely        | unlikely        | unlikely
"""
IMPACT = ("very_low", "low", "medium", "high")

# Table 6.3: likelihood of failure and impact (rows) × consequences (negligible … severe).
MATRIX_2 = """
very_likely     | low | moderate | high     | extreme
likely          | low | moderate | high     | high
somewhat_likely | low | low      | moderate | moderate
unlikely        | low | low      | low      | low
"""
CONSEQUENCES = ("negligible", "minor", "significant", "severe")


def cells(table: str, columns: tuple[str, ...]) -> list[tuple[str, str, str]]:
    out = []
    for line in table.strip().splitlines():
        row, *values = (part.strip() for part in line.split("|"))
        out += [(row, column, value) for column, value in zip(columns, values, strict=True)]
    return out


@pytest.mark.parametrize(("failure", "impact", "expected"), cells(MATRIX_1, IMPACT))
def test_matrix_1_cell(failure: str, impact: str, expected: str) -> None:
    assert traq.matrices().matrix_1[(failure, impact)] == expected
    # Through the whole rating too: with severe consequences matrix 2 keeps the order.
    assert traq.rate(failure, impact, "severe").likelihood_failure_impact == expected


@pytest.mark.parametrize(("both", "consequences", "expected"), cells(MATRIX_2, CONSEQUENCES))
def test_matrix_2_cell(both: str, consequences: str, expected: str) -> None:
    assert traq.matrices().matrix_2[(both, consequences)] == expected


def test_matrices_have_sixteen_cells_each_and_a_citation() -> None:
    m = traq.matrices()
    assert len(m.matrix_1) == 16 and len(m.matrix_2) == 16
    assert "Tree Risk Assessment Manual" in m.citation and "2017" in m.citation


def test_every_combination_is_rated_by_chaining_the_two_tables() -> None:
    one = {(f, i): v for f, i, v in cells(MATRIX_1, IMPACT)}
    two = {(b, c): v for b, c, v in cells(MATRIX_2, CONSEQUENCES)}
    for (failure, impact), both in one.items():
        for consequences in CONSEQUENCES:
            assert traq.rate(failure, impact, consequences) == (both, two[(both, consequences)])


@pytest.mark.parametrize(("args", "named"), [
    (("likely", "high", "severe"), "likelihood_failure"),
    (("probable", "extreme", "severe"), "likelihood_impact"),
    (("probable", "high", "catastrophic"), "consequences"),
])
def test_a_value_outside_the_vocabulary_is_refused_by_name(args: tuple[str, str, str],
                                                           named: str) -> None:
    with pytest.raises(CareError) as caught:
        traq.rate(*args)
    assert caught.value.rule == "invalid_rating"
    assert str(caught.value).startswith(named)
