"""Arrow's streaming CSV reader over a Python stream, let go of before the process can end.

Arrow reads the stream ahead on a thread of its own, calling the Python object (``readinto``)
and, when the reader is dropped, releasing it under the GIL from that thread. If that release
comes after the command has printed a refusal and Python has begun to finalise, the thread is
ended by ``pthread_exit`` inside Arrow's C++ frames, which calls ``std::terminate``: the
command aborts (exit −6, "terminate called without an active exception") after the right
message, now and then on a busy machine (a reproducer that only exits: 7 aborts in 700 runs).
So a refusal found while reading is kept by the stream (:class:`etl.readers.CheckedStream`)
instead of raised on Arrow's thread, the stream reads as ended, and :func:`batches` raises it
once Arrow has let go of the stream.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

RELEASE_WAIT_S = 5.0   # a bound, never reached in practice: the release follows the reader's end


def batches(stream: Any, **options: Any) -> Iterator[tuple[pa.RecordBatch, int]]:
    """Each batch of the CSV ``stream`` with the stream's position after it.

    The caller hands the stream over and keeps no reference to it: the generator waits, when it
    ends, until Arrow's thread has released it, then raises the stream's ``refusal`` (if any)
    in place of whatever Arrow made of the stream's early end.
    """
    released = threading.Event()
    weakref.finalize(stream, released.set)
    refusal: BaseException | None = None
    reader = pacsv.open_csv(stream, **options)
    try:
        for batch in reader:
            yield batch, stream.tell()
    except pa.ArrowException:
        if getattr(stream, "refusal", None) is None:
            raise
    finally:
        refusal = getattr(stream, "refusal", None)
        del reader, stream
        released.wait(RELEASE_WAIT_S)
    if refusal is not None:
        raise refusal

