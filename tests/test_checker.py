"""The one checker (etl.checker) over Arrow columns, against the rule tables of etl.rules.

No database: the columns are built here, as the readers build them, and each test states what
a user would read in the rejects file.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from etl import checker
from etl.rules import SEED, TREES


def test_numbers_are_read_as_surveys_write_them_and_the_others_named() -> None:
    problems = checker.Problems(7)
    cells = pa.array(["8,6", " 12.5 ", "1.5e+001", "", None, "21°30'N", "inf"])
    values = checker.numbers(cells, "ĐK (cm)", problems)
    assert values[:3].tolist() == [8.6, 12.5, 15.0]
    assert np.isnan(values[3:]).all()
    assert problems.reasons() == {5: ["ĐK (cm): '21°30''N' is not a number"],
                                  6: ["ĐK (cm): 'inf' is not a number"]}


def test_a_column_of_decimal_commas_is_read_whole() -> None:
    problems = checker.Problems(3)
    values = checker.numbers(pa.array(["8,6", "10", "0,25"]), "Hvn (m)", problems)
    assert values.tolist() == [8.6, 10.0, 0.25] and problems.reasons() == {}


def test_each_distinct_value_is_resolved_once_and_every_row_refused_is_named() -> None:
    asked: list[str] = []

    def resolve(raw: str) -> tuple[object, str | None]:
        asked.append(raw)
        return (raw.upper(), None) if raw != "xx" else (None, "is not known")

    column = pa.array(["a", " a ", "xx", None, "b", "xx"]).dictionary_encode()
    found = checker.lookup(column, 6, "Loài cây", resolve)
    assert found.values.tolist() == ["A", "A", None, None, "B", None]
    assert sorted(asked) == ["a", "a", "b", "xx"]      # " a " is its own dictionary entry
    assert found.finding is not None
    assert found.finding.rows.tolist() == [2, 5]
    assert list(found.finding.reasons) == ["Loài cây: 'xx' is not known"] * 2


def test_a_row_keeps_every_problem_in_the_order_of_the_checks() -> None:
    problems = checker.Problems(3)
    problems.add(np.array([True, False, True]), "Mã: missing")
    problems.add(np.array([True, True, False]), lambda rows: [f"row {i} too big" for i in rows])
    assert problems.bad.tolist() == [True, True, True]
    assert problems.reasons() == {0: ["Mã: missing", "row 0 too big"], 1: ["row 1 too big"],
                                  2: ["Mã: missing"]}


def test_a_table_of_rules_checks_every_field_of_every_row() -> None:
    next_year = str(dt.date.today().year + 1)
    cells = pa.table({
        "code": ["L-1", "L-2", "", "L-4"],
        "quantity": ["500", "12,5", "0", "x"],
        "sown": ["15/03/2024", "2024-02-30", "", "2099-01-01"],
        "year": ["2020", next_year, "1850", ""],
    })
    columns = {"lot_code": 0, "quantity": 1, "sown_on": 2}
    labels = {"lot_code": "Mã lô", "quantity": "Số lượng", "sown_on": "Ngày gieo"}
    result = checker.check(cells, columns, labels, SEED["lots"])
    assert result.values["quantity"].tolist() == [500, None, None, None]
    assert result.values["sown_on"].tolist()[0] == dt.date(2024, 3, 15)
    assert result.problems.reasons() == {
        1: ["Số lượng: '12,5' is not a whole number",
            "Ngày gieo: '2024-02-30' is not a date (YYYY-MM-DD or DD/MM/YYYY)"],
        2: ["Mã lô: missing", "Số lượng: '0' is below 1"],
        3: ["Số lượng: 'x' is not a number",
            "Ngày gieo: '2099-01-01' 2099-01-01 is in the future"],
    }
    stands = checker.check(cells, {"planting_year": 3, "owner_type": 0},
                           {"planting_year": "Năm trồng", "owner_type": "Loại chủ rừng"},
                           SEED["stands"])
    reasons = stands.problems.reasons()
    assert reasons[1][0] == f"Năm trồng: '{next_year}' is not a plausible year"
    assert reasons[2] == ["Năm trồng: '1850' is not a plausible year"]
    assert reasons[0] == ["Loại chủ rừng: 'L-1' is not one of community, company, cooperative, "
                          "household, state"]


@pytest.mark.parametrize(("name", "low", "high", "unit"), [
    ("dbh", 0.0, 500.0, "cm"), ("height", 0.0, 120.0, "m"), ("crown", 0.0, 80.0, "m")])
def test_the_tree_ranges_are_data(name: str, low: float, high: float, unit: str) -> None:
    rule = TREES[name]
    assert (rule.kind, rule.range, rule.unit) == ("number", (low, high), unit)


def _planting_days(typed: checker.Typed | None, cells: list[str | None]) -> tuple[list, dict]:
    """Each row's day and the problems, as the tree checker reads planting dates."""
    def resolve(raw: str) -> tuple[object, str | None]:
        day, problem = checker.parse_date(raw)
        return (np.datetime64(day) if day else None), problem

    column = pa.array(cells, pa.string()).dictionary_encode()
    found = checker.lookup(column, len(cells), "Ngày trồng", resolve,
                           np.datetime64("NaT", "D"), "datetime64[D]", typed=typed)
    problems = checker.Problems(len(cells))
    problems.extend([found.finding])
    return [str(v) for v in found.values], problems.reasons()


@pytest.mark.parametrize("odd", [None, "2008-02-30"])
def test_iso_planting_days_read_at_once_are_the_days_each_cell_gives(odd: str | None) -> None:
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    cells = ["2008-10-30", "2008-02-29", "2007-02-29", "1799-12-31", "1800-01-01", tomorrow,
             dt.date.today().isoformat(), "0000-01-01", " 2008-01-05", "2008-1-5",
             "30/10/2008", "２００８-10-30", "2008-10-30", "", None, "2008-13-01", odd]
    read, which = checker.iso_days(pa.array(["2008-02-29", "1799-12-31", "30/10/2008"]))
    assert [str(v) for v in read] == ["2008-02-29", "NaT", "NaT"]
    assert which.tolist() == [True, False, False]
    assert _planting_days(checker.iso_days, cells) == _planting_days(None, cells)
