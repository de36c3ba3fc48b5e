"""The first row of each key in a run (etl.first_seen) against a plain dictionary of the rows."""

from __future__ import annotations

import numpy as np
import pytest

from etl.first_seen import FirstSeen


def _by_dict(batches: list[tuple[np.ndarray, int, np.ndarray, np.ndarray]]) -> list[tuple]:
    """What each batch's rows repeat, written row by row."""
    seen: dict[object, tuple[int, int, bytes]] = {}
    out = []
    for keys, file_no, rows, codes in batches:
        repeated, files, first_rows, first_codes = [], [], [], []
        for key, row, code in zip(keys.tolist(), rows.tolist(), codes.tolist(), strict=True):
            repeated.append(key in seen)
            seen.setdefault(key, (file_no, row, code))
            files.append(seen[key][0])
            first_rows.append(seen[key][1])
            first_codes.append(seen[key][2])
        out.append((repeated, files, first_rows, first_codes))
    return out


def _run(batches: list[tuple[np.ndarray, int, np.ndarray, np.ndarray]]) -> list[tuple]:
    table = FirstSeen()
    return [tuple(a.tolist() for a in table.repeats(*batch)) for batch in batches]


@pytest.mark.parametrize("kind", ["codes", "spots"])
def test_repeats_across_batches_are_those_a_dictionary_finds(kind: str) -> None:
    rng = np.random.default_rng(11)
    batches = []
    row = 2
    for file_no, size in enumerate([1, 40, 300, 7, 1_000, 0, 2_500]):
        numbers = rng.integers(0, 3_000, size)
        # Codes of several widths (and one with a zero byte inside), the array widened later.
        codes = np.array([b"T%d" % v if v % 7 else b"TREE-\x00-%09d" % v for v in numbers],
                         dtype="S")
        keys = codes if kind == "codes" else (numbers - 1_500) * 1_000_000_007
        rows = np.arange(row, row + size, dtype=np.int64)
        row += size
        batches.append((keys, file_no % 3, rows, codes))
    assert _run(batches) == _by_dict(batches)
    assert any(any(b[0]) for b in _by_dict(batches))      # some rows repeat, some do not
