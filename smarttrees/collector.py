"""Python's cyclic garbage collector paused through jobs that make millions of objects.

A whole-province read builds a Python object per geometry (1.13 M points) and a zonal job its
WKB, frames and exactextract features. None of them hold reference cycles, so a collection
frees nothing (reference counting frees them as usual), yet the collections their number
triggers walk the whole heap again and again: 8 full ones for the province's points, about
0.6 s of a read's 2.4 s of client CPU, on the GIL, so they held up the read's other thread too.
In a forked zonal worker a collection also writes to the pages of the objects inherited from
the parent, each then copied (a page fault): 61 K → 48 K faults for 4,092 zones with two
workers. Measured in ``bench/README.md``, session 7 (the analyst API, the rasters).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """Run the block with the collector paused, then resume it, unless it was already paused.

    A collector paused by the caller (or an enclosing block) stays paused. The first collection
    after the block walks its new objects once (0.02–0.15 s for the province's points).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
