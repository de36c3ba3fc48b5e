"""The first row of each key seen in a run: tree codes and spots repeated across batches.

A load into an empty inventory refuses a row whose tree code an earlier row of the run had,
or whose spot an earlier good row took (``etl.direct.RunChecks``). Rows stream by in batches,
so each batch's keys are looked up among those of the batches before, and its new keys added.

The keys seen are kept sorted, with the file, row and tree code of each key's first row
beside them: numpy arrays, no Python object per row (a million codes take tens of MB, not
hundreds). A batch's keys, sorted, are found with one ``searchsorted``, and the new ones
merged in at the places it gave. (A hash table of numpy arrays was tried: its random reads of
a table of millions of slots cost twice the sorted arrays' sequential ones.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class FirstSeen:
    """The first row of each key seen so far in a run.

    Sorted keys (int64 numbers, or ``S`` byte strings compared as numpy compares them) and,
    beside them, the file, row and tree code of the row that first had each.
    """

    keys: np.ndarray | None = None
    files: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    codes: np.ndarray = field(default_factory=lambda: np.zeros(0, "S1"))

    def repeats(self, keys: np.ndarray, file_no: int, rows: np.ndarray, codes: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Which keys of a batch were seen before, in the run or earlier in the batch.

        Returns that mask and the file, row and code of the first row of each key (in the
        batch's order); the batch's new keys are recorded.
        """
        n = len(keys)
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        starts = np.ones(n, dtype=bool)
        starts[1:] = ordered[1:] != ordered[:-1]
        first = order[np.maximum.accumulate(np.where(starts, np.arange(n), 0))]
        if self.keys is None:
            self.keys = ordered[:0]
        wide = np.promote_types(self.keys.dtype, ordered.dtype)
        self.keys, ordered = self.keys.astype(wide, copy=False), ordered.astype(wide, copy=False)
        self.codes = self.codes.astype(np.promote_types(self.codes.dtype, codes.dtype),
                                       copy=False)
        where = np.searchsorted(self.keys, ordered)     # also where the new keys go
        hit = np.zeros(n, dtype=bool)
        if len(self.keys):
            hit = self.keys[np.minimum(where, len(self.keys) - 1)] == ordered
        # Each sorted row's first row: in this batch, or (a hit) the one recorded.
        files = np.full(n, file_no, dtype=np.int32)
        first_rows, first_codes = rows[first], codes[first].astype(self.codes.dtype)
        if hit.any():
            at = where[hit]
            files[hit], first_rows[hit], first_codes[hit] = (
                self.files[at], self.rows[at], self.codes[at])
        new = starts & ~hit
        self._record(where[new], ordered[new], file_no, first_rows[new], first_codes[new])
        back = np.empty(n, dtype=np.int64)
        back[order] = np.arange(n)
        return (hit | ~starts)[back], files[back], first_rows[back], first_codes[back]

    def _record(self, where: np.ndarray, keys: np.ndarray, file_no: int, rows: np.ndarray,
                codes: np.ndarray) -> None:
        """Merge new keys (sorted) in at ``where`` (their places among the sorted keys)."""
        assert self.keys is not None
        k, size = len(keys), len(self.keys) + len(keys)
        if not k:
            return
        placed = where + np.arange(k)            # each new key's index once merged
        old = np.ones(size, dtype=bool)
        old[placed] = False

        def merged(kept: np.ndarray, added: np.ndarray | int) -> np.ndarray:
            out = np.empty(size, dtype=kept.dtype)
            out[placed] = added
            out[old] = kept
            return out

        self.keys = merged(self.keys, keys)
        self.files = merged(self.files, file_no)
        self.rows = merged(self.rows, rows)
        self.codes = merged(self.codes, codes)
