"""The document register's direct path (Arrow + numpy + binary COPY) against the checked path.

Each register is loaded twice into copies of the same database: as ``smarttrees load
documents`` does (direct path first), and on the checked path only. What is stored, what is
reported and the rejects file must be the same; a register with any refused row must not be
loaded directly.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest

from etl import ioc_load
from smarttrees.database import connect
from tests.fixtures.databases import TEMPLATE, copied_database
from tests.test_ioc_load import (
    AGENCIES,
    AGENCY_HEADERS,
    DOCUMENT_HEADERS,
    DOCUMENTS,
    seed_communes,
    write_csv,
)

STORED = """
SELECT s.code, d.doc_no, r.code, (SELECT array_agg(a.code ORDER BY o) FROM unnest(d.also_to)
       WITH ORDINALITY AS u(id, o) JOIN agencies a ON a.id = u.id),
       d.doc_type, d.electronic, d.sent_on, d.commune_code, d.courier_saving_vnd
FROM documents d JOIN agencies s ON s.id = d.agency_id JOIN agencies r ON r.id = d.receiver_id
ORDER BY 1, 2
"""
LAYERS = """
SELECT (SELECT array_agg(t ORDER BY id) FROM ioc_documents_agency_month t),
       (SELECT array_agg(t ORDER BY id) FROM ioc_documents_commune_month t),
       (SELECT array_agg(t ORDER BY id) FROM ioc_document_flows t)
"""
PERIOD = (__import__("datetime").date(2025, 1, 1), __import__("datetime").date(2025, 9, 30))
# A register with what a real export holds: both date forms, spaces around cells and
# separators, lists of receivers, an empty type, channel words with and without diacritics.
REGISTER = [
    *DOCUMENTS,
    [" 3/UBND-00001 ", "7/2/2025", " UBND-00001", "UBND-TINH ,SNNMT", "", "ĐIỆN TỬ"],
    ["2/UBND-00002", "2025-9-30", "UBND-00002", "SNNMT;UBND-TINH", "Tờ trình", "buu chinh"],
    ["1/SNNMT", "01/03/2025", "SNNMT", "UBND-00002", "Công văn", "electronic"],
]


@pytest.fixture
def two_databases(cluster, tmp_path: Path):
    """Two copies of one database holding the communes and agencies."""
    with copied_database(cluster, TEMPLATE, "ioc_direct_a") as a, \
            copied_database(cluster, TEMPLATE, "ioc_direct_b") as b:
        for url in (a, b):
            seed_communes(url)
            ioc_load.load("agencies", url,
                          write_csv(tmp_path / "a.csv", AGENCY_HEADERS, AGENCIES))
        yield a, b


def _stored(url: str) -> tuple[list[tuple[object, ...]], tuple[object, ...]]:
    with connect(url) as conn:
        return conn.execute(STORED).fetchall(), conn.execute(LAYERS).fetchone() or ()


def _counts(result: ioc_load.SeedResult) -> tuple[int, ...]:
    return (result.rows, result.inserted, result.updated, result.unchanged, result.refused)


def _direct_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "etl.ioc_load"]


def test_a_clean_register_is_loaded_directly_with_the_same_rows(
        two_databases, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    direct_url, checked_url = two_databases
    path = write_csv(tmp_path / "so.csv", DOCUMENT_HEADERS, REGISTER)
    with caplog.at_level(logging.INFO, logger="etl.ioc_load"):
        direct = ioc_load.load("documents", direct_url, path, period=PERIOD)
    assert not any("checked path" in m for m in _direct_log(caplog))
    checked = ioc_load.load("documents", checked_url, path, period=PERIOD, direct=False)
    assert direct.summary() == checked.summary()
    assert (direct.rows, direct.inserted, direct.refused) == (7, 7, 0)
    assert _stored(direct_url) == _stored(checked_url)
    rows, _ = _stored(direct_url)
    assert ("UBND-00001", "3/UBND-00001", "UBND-TINH", ["SNNMT"], "văn bản", True,
            PERIOD[0].replace(month=2, day=7), "00001", 4_000) in rows


def test_a_changed_register_updates_the_same_rows_both_ways(two_databases, tmp_path: Path) -> None:
    direct_url, checked_url = two_databases
    first = write_csv(tmp_path / "so.csv", DOCUMENT_HEADERS, REGISTER)
    changed = [[*REGISTER[0][:5], "Bưu chính"], REGISTER[1], [*REGISTER[2][:3], "SNNMT",
               *REGISTER[2][4:]], *REGISTER[3:6],
               ["9/UBND-TINH", "2025-04-01", "UBND-TINH", "SNNMT", "Công văn", "Điện tử"]]
    second = write_csv(tmp_path / "so2.csv", DOCUMENT_HEADERS, changed)
    results = []
    for url, direct in ((direct_url, True), (checked_url, False)):
        ioc_load.load("documents", url, first, period=PERIOD, direct=direct)
        results.append(ioc_load.load("documents", url, second, period=PERIOD, direct=direct))
    assert results[0].summary() == results[1].summary()
    assert (results[0].inserted, results[0].updated, results[0].unchanged) == (1, 2, 4)
    assert _stored(direct_url) == _stored(checked_url)


@pytest.mark.parametrize("bad", [
    ["5/X", "2025-02-30", "UBND-00001", "UBND-TINH", "Công văn", "Điện tử"],   # no such day
    ["5/X", "2024-12-31", "UBND-00001", "UBND-TINH", "Công văn", "Điện tử"],   # outside
    ["5/X", "2025-03-01", "UBND-9", "UBND-TINH", "Công văn", "Điện tử"],       # sender
    ["5/X", "2025-03-01", "UBND-00001", "UBND-TINH;", "Công văn", "Điện tử"],  # empty receiver
    ["5/X", "2025-03-01", "UBND-00001", "SNNMT; UBND-00001", "Công văn", "Điện tử"],  # own
    ["5/X", "2025-03-01", "UBND-00001", "UBND-TINH", "Công văn", "fax"],       # channel
    ["2/UBND-00001 ", "2025-03-01", "UBND-00001", "UBND-TINH", "", "Điện tử"],  # duplicate
    ["", "2025-03-01", "UBND-00001", "UBND-TINH", "Công văn", "Điện tử"],      # no number
    ["5/X", "", "UBND-00001", "UBND-TINH", "Công văn", "Điện tử"],             # no date
])
def test_a_register_with_a_bad_row_gets_the_checked_paths_rejects(
        two_databases, tmp_path: Path, bad: list[str]) -> None:
    direct_url, checked_url = two_databases
    results, rejects = [], []
    for url, direct in ((direct_url, True), (checked_url, False)):
        folder = tmp_path / ("direct" if direct else "checked")
        folder.mkdir()
        path = write_csv(folder / "so.csv", DOCUMENT_HEADERS, [*REGISTER, bad])
        results.append(ioc_load.load("documents", url, path, period=PERIOD, direct=direct))
        with (folder / "so.rejects.csv").open(encoding="utf-8-sig") as handle:
            rejects.append(list(csv.reader(handle)))
    assert _counts(results[0]) == _counts(results[1])
    assert results[0].refused == 1
    assert rejects[0] == rejects[1]
    assert rejects[0][1][-2] == "9"  # the bad row, as the file numbers it
    assert _stored(direct_url) == _stored(checked_url)
