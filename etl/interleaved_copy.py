"""Binary COPYs into several tables of one transaction, sent from a thread in the caller's order.

A first load writes each batch of trees and the batch's insert history. One long COPY per
table would leave the history for after the trees: the server then stores it while the
client, done, waits. Here a thread owns the connection and runs one COPY per run of
consecutive batches for the same table, so the server stores a batch of history while the
caller checks the next batch of trees (the phase is the client's: the server waits for rows
about a third of it).

>>> with InterleavedCopy(conn, {"trees": (table, columns, True)}) as copy:   # doctest: +SKIP
...     copy.write("trees", binary_copy.binary_rows(...))
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

from etl import binary_copy

# Batches waiting for the thread: enough that the caller never waits on a quick COPY, few
# enough that memory stays bounded (a batch of trees is about 13 MB).
DEPTH = 4
_END = None


class InterleavedCopy:
    """COPY rows into the tables of ``targets`` (name → table, columns, freeze), in order.

    :meth:`write` queues encoded rows (:func:`etl.binary_copy.binary_rows`) for one target;
    a thread sends them, one COPY statement per run of writes to the same target. The caller
    must leave the connection alone until the ``with`` block ends; leaving the block waits
    for the last COPY and raises what a COPY raised. A COPY that failed makes the next
    :meth:`write` raise.
    """

    def __init__(self, conn: psycopg.Connection[Any],
                 targets: Mapping[str, tuple[sql.Composable, Sequence[str], bool]]) -> None:
        self.conn = conn
        self.targets = targets
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize=DEPTH)
        self._failed: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._send, name="interleaved-copy", daemon=True)

    def __enter__(self) -> InterleavedCopy:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._closed = True
        self._put(_END)
        self._thread.join()
        if self._failed is not None and exc is None:
            raise self._failed

    def write(self, target: str, rows: bytes) -> None:
        """Queue encoded rows for ``target``; raise what an earlier COPY raised."""
        if target not in self.targets:
            raise KeyError(target)
        if self._closed or not self._thread.ident:
            raise RuntimeError("InterleavedCopy.write outside its with block")
        self._put((target, rows))
        if self._failed is not None:
            raise self._failed

    def _put(self, item: tuple[str, bytes] | None) -> None:
        # The thread stops taking items once a COPY failed: never wait on a full queue then.
        while self._thread.is_alive() or not self._thread.ident:
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _send(self) -> None:
        try:
            item = self._queue.get()
            while item is not None:
                name = item[0]
                table, columns, freeze = self.targets[name]
                with self.conn.cursor() as cur, binary_copy.open_copy(
                        cur, table, columns, freeze=freeze) as copy:
                    while item is not None and item[0] == name:
                        copy.write(item[1])
                        item = self._queue.get()
        except BaseException as exc:  # noqa: BLE001  # handed to the caller's thread
            self._failed = exc
