"""The in-process cache of rendered tiles and their ETags.

Entries are kept per app (``settings.tile_cache_mb``) under the tile, its filters and, for
versioned collections, the trees' data version (the newest ``tree_history`` id, which every
change to a tree advances): an edited tree never shows stale. Other entries expire after a
few minutes.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any

CACHE_SECONDS = 300  # entries not keyed by a data version expire after this


class TileCache:
    """A byte-bounded LRU of rendered tiles; entries expire after ``ttl`` seconds."""

    def __init__(self, max_bytes: int, ttl: float = CACHE_SECONDS) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._entries: OrderedDict[tuple[Any, ...], tuple[float, bytes, str]] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[Any, ...]) -> tuple[bytes, str] | None:
        """The cached tile and its ETag, or None (missing or expired)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored, body, etag = entry
        if time.monotonic() - stored > self.ttl:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return body, etag

    def put(self, key: tuple[Any, ...], body: bytes, etag: str) -> None:
        """Keep a tile, evicting the least recently used ones beyond the byte budget."""
        if self.max_bytes == 0 or len(body) > self.max_bytes // 4:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (time.monotonic(), body, etag)
        self._bytes += len(body)
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: tuple[Any, ...]) -> None:
        _, body, _ = self._entries.pop(key)
        self._bytes -= len(body)


def etag_of(body: bytes) -> str:
    """A strong ETag from the tile bytes.

    SHA-256 (the CPU's SHA instructions through OpenSSL), cut to 12 bytes: a third of
    blake2b's time on a 170 KB tile (0.11 against 0.33 ms), every uncached request pays it.
    """
    return '"' + hashlib.sha256(body).hexdigest()[:24] + '"'


def etags(header: str) -> set[str]:
    """The entity tags of an ``If-None-Match`` header, weak ones compared as strong."""
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}
