"""64-bit hashes of numbers and byte spans with numpy alone (splitmix64's finaliser).

The row digests of ``etl.digests`` and the line digests of ``etl.line_digests`` are built from
these. This module imports numpy only, so that ``etl.csv_prefetch`` can hash a survey's lines
on its thread while the loader's heavier modules are imported.
"""

from __future__ import annotations

import numpy as np

M1, M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
GOLDEN = 0x9E3779B97F4A7C15
NULL = np.uint64(0x6A09E667F3BCC908)
ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


def mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on a uint64 array (wrapping arithmetic)."""
    h ^= h >> np.uint64(30)
    h *= M1
    h ^= h >> np.uint64(27)
    h *= M2
    h ^= h >> np.uint64(31)
    return h


def padded_words(data: np.ndarray) -> np.ndarray:
    """The little-endian 8-byte word at every byte offset of ``data`` (uint8), for span_hash.

    The bytes past the end read as zeros (the words are a view of a padded copy of ``data``).
    """
    padded = np.concatenate([data, np.zeros(8, np.uint8)])
    return np.ndarray(shape=(len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))


def span_hash(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
              words: np.ndarray | None = None) -> np.ndarray:
    """A uint64 per span of bytes of ``data`` (uint8): ``lengths[i]`` bytes from ``starts[i]``.

    Word j of every span at once, over the spans still that long: a few long spans (a line
    with a long note) cost rounds over themselves, not over every span. While every span
    left has a whole word, the words are taken without a mask and mixed in place (the
    province's 1.13 M survey lines: 0.24 s CPU, 0.34 s with a mask and new arrays each
    round; the digests are the same). Each span's hash depends on its bytes alone, so spans
    may be hashed a part at a time; ``words``: :func:`padded_words` of ``data``, made once.
    """
    if words is None:
        words = padded_words(data)
    h = lengths.astype(np.uint64) * np.uint64(GOLDEN)
    at, cursor, left = (np.arange(len(starts)), starts.astype(np.int64),
                        lengths.astype(np.int64))
    live_h, scratch = h.copy(), np.empty(len(starts), np.uint64)
    while len(at):
        live = left > 0
        if not live.all():
            h[at[~live]] = live_h[~live]
            at, cursor, left, live_h = at[live], cursor[live], left[live], live_h[live]
            if not len(at):
                return h
            scratch = scratch[:len(at)]
        whole = int(left.min()) // 8     # rounds in which every span left has 8 bytes more
        for _ in range(max(whole, 1)):
            word = words[cursor]
            if not whole:                # the last bytes of the shortest spans: masked
                bits = (np.minimum(left, 7) * 8).astype(np.uint64)
                word &= np.where(left >= 8, ALL, (np.uint64(1) << bits) - np.uint64(1))
            live_h ^= word
            _mix_into(live_h, scratch)
            cursor += 8
            left -= 8
    return h


def _mix_into(h: np.ndarray, scratch: np.ndarray) -> None:
    """:func:`mix` of ``h`` in place, with ``scratch`` (as long) for the shifts."""
    for shift, multiplier in ((30, M1), (27, M2), (31, None)):
        np.right_shift(h, np.uint64(shift), out=scratch)
        h ^= scratch
        if multiplier is not None:
            h *= multiplier
