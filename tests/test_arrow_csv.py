"""A refusal found while Arrow reads a stream is raised after Arrow has let go of the stream.

Raised on Arrow's own reading thread, a refusal left that thread holding the Python stream; its
release during Python's finalisation aborted the command (exit −6) after the right message,
about once in a hundred refused loads (see etl.arrow_csv).
"""

from __future__ import annotations

import io
import weakref

import pyarrow.csv as pacsv
import pytest

from etl import arrow_csv


class Refusing(io.RawIOBase):
    """A CSV stream whose checks refuse what follows its first block."""

    def __init__(self, first: bytes) -> None:
        super().__init__()
        self.first: bytes | None = first
        self.refusal: Exception | None = None
        self.done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        if self.first is None:
            self.refusal = ValueError("row 3: refused")
            return 0
        data, self.first = self.first, None
        buffer[:len(data)] = data
        self.done += len(data)
        return len(data)

    def tell(self) -> int:
        return self.done


def test_the_refusal_comes_after_the_rows_before_it_and_the_stream_is_released() -> None:
    stream = Refusing(b"a,b\n1,2\n")
    gone = weakref.ref(stream)
    read = arrow_csv.batches(stream, read_options=pacsv.ReadOptions(use_threads=False))
    del stream
    rows = []
    with pytest.raises(ValueError, match="row 3: refused") as caught:
        for batch, _ in read:
            rows += batch.to_pylist()
    assert rows == [{"a": 1, "b": 2}]
    assert gone() is None          # released before the refusal reached us
    assert caught.value.__traceback__ is not None


def test_a_stream_read_to_its_end_gives_every_row_and_its_position() -> None:
    data = b"a,b\n" + b"".join(b"%d,x\n" % i for i in range(1000))
    read = list(arrow_csv.batches(io.BytesIO(data),
                                  read_options=pacsv.ReadOptions(use_threads=False)))
    assert sum(b.num_rows for b, _ in read) == 1000
    assert read[-1][1] == len(data)

