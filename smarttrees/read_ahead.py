"""Items of an iterator produced on a thread, a few ahead of the caller that uses them.

For sources that let go of Python's lock while they work: Arrow parsing a CSV's next batch
while the loader checks this one (``etl.direct``), ADBC reading the next batch of an export
while GDAL writes this one (``smarttrees.export``). The queue between them holds at most
``depth`` items, which bounds the memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")
PUT_WAIT_S = 0.1   # how often a producer waiting on a full queue checks that it may go on


def ahead(items: Iterator[T], depth: int = 1, name: str = "read-ahead"
          ) -> Generator[T, None, None]:
    """``items``, each produced on a thread (called ``name``) while the caller uses the one before.

    At most ``depth`` items wait; what ``items`` raises is raised here, in order. Leaving
    early (``close()``, or the generator dropped) stops the thread after the item it is
    producing and waits for it, so no thread is left behind. The thread starts with the first
    item asked for.
    """
    waiting: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(entry: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                waiting.put(entry, timeout=PUT_WAIT_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, done))
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
            put((False, exc))

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            ok, item = waiting.get()
            if not ok:
                assert isinstance(item, BaseException)
                raise item
            if item is done:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
