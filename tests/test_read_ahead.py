"""Items read ahead on a thread (smarttrees.read_ahead): in order, errors in order, no thread left."""

from __future__ import annotations

import threading

import pytest

from smarttrees import read_ahead


def test_items_read_ahead_come_in_order_then_what_their_source_raised() -> None:
    def source():
        yield from range(5)
        raise ValueError("row 7: not a number")

    seen = []
    with pytest.raises(ValueError, match="row 7"):
        for item in read_ahead.ahead(source(), depth=2):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]
    early = read_ahead.ahead(iter(range(1_000)), name="early")
    assert [next(early), next(early)] == [0, 1]
    early.close()                         # the thread stops: nothing waits on it
    assert not [t for t in threading.enumerate() if t.name == "early"]
