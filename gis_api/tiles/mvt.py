"""A Mapbox Vector Tile layer of points, encoded with numpy from columns of values.

ST_AsMVT spends most of a point tile's time encoding properties (measured in
``bench/bench_tile_profile.py``: 60 % of the densest z15 tile). PostgreSQL sends the tile's
points as columns instead (tile-space x and y, feature ids, property values; see
``gis_api/sql/tiles_trees_points.sql``) and this module writes the layer, every feature at once:
each field of a feature is a varint (protobuf's base-128 integers, keys included), laid out in a
row of bytes per feature, and one boolean mask over the rows drops the unused bytes.

No maintained fast MVT encoder for Python exists on PyPI (``mapbox-vector-tile`` is pure
Python, about a hundred times slower); the format (MVT 2.1, a protobuf message) is small enough
for points: a feature is ``id``, ``tags`` (packed key/value indices), ``type`` POINT and
``geometry`` ``[MoveTo(1), zigzag(x), zigzag(y)]``.

Values are typed as ST_AsMVT types them, so a decoder reads the same properties: text as
``string_value``, float8 as ``double_value``, integers as ``uint_value`` (negative ones
``sint_value``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

EXTENT = 4096

# Protobuf keys (field number << 3 | wire type) of the vector tile schema.
_TILE_LAYER = 3 << 3 | 2
_LAYER_NAME = 1 << 3 | 2
_LAYER_FEATURE = 2 << 3 | 2
_LAYER_KEY = 3 << 3 | 2
_LAYER_VALUE = 4 << 3 | 2
_LAYER_EXTENT = 5 << 3 | 0
_LAYER_VERSION = 15 << 3 | 0
_FEATURE_ID = 1 << 3 | 0
_FEATURE_TAGS = 2 << 3 | 2
_FEATURE_TYPE = 3 << 3 | 0
_FEATURE_GEOMETRY = 4 << 3 | 2
_VALUE_STRING = 1 << 3 | 2
_VALUE_DOUBLE = 3 << 3 | 1
_VALUE_UINT = 5 << 3 | 0
_VALUE_SINT = 6 << 3 | 0
_POINT = 1
_MOVE_TO_ONE = 1 | 1 << 3  # command MoveTo, count 1

UInt64s = npt.NDArray[np.uint64]


@dataclass(frozen=True)
class TextColumn:
    """Text values of the features, one per feature: UTF-8 bytes back to back, and lengths.

    Attributes
    ----------
    data
        The values' UTF-8 bytes, concatenated in feature order.
    lengths
        Bytes of each feature's value; -1 where it has none (the property is left out).
    distinct
        True when no two features share a value (a unique code): the values are then written
        as they come, without looking for repeats.

    """

    data: bytes
    lengths: npt.NDArray[np.int64]
    distinct: bool = False


@dataclass(frozen=True)
class NumberColumn:
    """Numbers of the features, one per feature; NaN where a feature has none.

    Attributes
    ----------
    values
        float64 (written as ``double_value``) or integers (``uint_value`` / ``sint_value``).

    """

    values: npt.NDArray[np.float64] | npt.NDArray[np.int64]


@dataclass(frozen=True)
class ChoiceColumn:
    """Text values of the features chosen from a few: the choices, and each feature's index.

    Attributes
    ----------
    choices
        The values (``None``: the features choosing it have no value).
    index
        Each feature's index in ``choices``; -1 where it has no value.

    """

    choices: Sequence[str | None]
    index: npt.NDArray[np.int64]


Column = TextColumn | NumberColumn | ChoiceColumn


def _varint_lengths(values: UInt64s, largest: int | None = None) -> npt.NDArray[np.int64]:
    """Bytes of each value as a protobuf varint (1 to 10); ``largest``: their maximum."""
    lengths = np.ones(values.shape, np.int64)
    if largest is None:
        largest = int(values.max(initial=0))
    for bits in range(7, 64, 7):
        if largest < 1 << bits:
            break
        lengths += values >= np.uint64(1 << bits)
    return lengths


def varint(value: int) -> bytes:
    """One non-negative integer as a protobuf varint."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def zigzag(values: npt.NDArray[np.int64]) -> UInt64s:
    """Signed integers mapped to unsigned ones as protobuf's sint (0, -1, 1, -2 → 0, 1, 2, 3)."""
    v = values.astype(np.int64)
    return ((v << 1) ^ (v >> 63)).astype(np.uint64)


class _Rows:
    """Rows of bytes, one per feature, built field by field; ``bytes`` joins them in order.

    Each added field is a varint per row (absent where its mask is False) or a fixed run of
    bytes. The bytes are held column by column (the k-th byte of a field, for every row, is
    one contiguous array: numpy works on whole columns), transposed into rows at the end,
    where the bytes past each row's varints are dropped.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.columns: list[npt.NDArray[np.uint8] | int] = []
        self.valid: list[npt.NDArray[np.bool_] | None] = []  # None: a byte in every row
        self.lengths = np.zeros(n, np.int64)

    def add(self, values: npt.ArrayLike, present: npt.NDArray[np.bool_] | None = None) -> _Rows:
        """One varint per row (a scalar: the same in every row); none where not ``present``."""
        if isinstance(values, int):
            encoded = varint(values)
            self.columns += list(encoded)
            self.valid += [present] * len(encoded)
            self.lengths += len(encoded) if present is None else present * len(encoded)
            return self
        array = np.asarray(values)
        if array.dtype != np.uint64:
            array = array.astype(np.uint64)
        largest = int(array.max(initial=0))
        if largest < 0x80:  # one byte each, no continuation bits: the common case
            self.columns.append(array.astype(np.uint8))
            self.valid.append(present)
            self.lengths += 1 if present is None else present
            return self
        lengths = _varint_lengths(array, largest)
        if present is not None:
            lengths = np.where(present, lengths, 0)
        everywhere = int(lengths.min(initial=0))  # bytes that every row has
        rest = array.copy()
        for k in range(int(lengths.max(initial=0))):
            more = (rest > 0x7F).astype(np.uint8) << np.uint8(7)  # the continuation bit
            self.columns.append((rest & np.uint64(0x7F)).astype(np.uint8) | more)
            self.valid.append(None if k < everywhere else lengths > k)
            rest >>= np.uint64(7)
        self.lengths += lengths
        return self

    def add_fixed(self, block: npt.NDArray[np.uint8]) -> _Rows:
        """The same number of bytes in each row (``block``: one row per feature)."""
        self.columns += [np.ascontiguousarray(block[:, j]) for j in range(block.shape[1])]
        self.valid += [None] * block.shape[1]
        self.lengths += block.shape[1]
        return self

    def extend(self, other: _Rows) -> _Rows:
        """The other rows' fields after these (both of the same features)."""
        self.columns += other.columns
        self.valid += other.valid
        self.lengths += other.lengths
        return self

    def bytes(self) -> bytes:
        if self.n == 0 or not self.columns:
            return b""
        table = np.empty((len(self.columns), self.n), np.uint8)
        for i, column in enumerate(self.columns):
            table[i] = column
        rows = np.ascontiguousarray(table.T).reshape(-1)
        if all(v is None for v in self.valid):
            return rows.tobytes()
        keep = np.ones(table.shape, np.bool_)
        for i, valid in enumerate(self.valid):
            if valid is not None:
                keep[i] = valid
        return rows[np.ascontiguousarray(keep.T).reshape(-1)].tobytes()


def _ragged(heads: bytes, head_lengths: npt.NDArray[np.int64], data: bytes,
            data_lengths: npt.NDArray[np.int64]) -> bytes:
    """Each row's head bytes followed by its data bytes, rows in order."""
    head = np.frombuffer(heads, np.uint8)
    body = np.frombuffer(data, np.uint8)
    row_lengths = head_lengths + data_lengths
    starts = np.cumsum(row_lengths) - row_lengths
    out = np.empty(int(row_lengths.sum()), np.uint8)
    head_starts = np.cumsum(head_lengths) - head_lengths
    out[np.repeat(starts - head_starts, head_lengths) + np.arange(len(head))] = head
    data_starts = np.cumsum(data_lengths) - data_lengths
    out[np.repeat(starts + head_lengths - data_starts, data_lengths) + np.arange(len(body))] = body
    return out.tobytes()


def _unique_text(column: TextColumn) -> tuple[bytes, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The distinct values (bytes, lengths) and each feature's index among them (-1: none)."""
    lengths = column.lengths
    present = lengths >= 0
    if column.distinct:
        index = np.full(len(lengths), -1, np.int64)
        index[present] = np.arange(int(present.sum()))
        return column.data, lengths[present], index
    few = _few_distinct(column.data, lengths)
    if few is not None:
        return few
    sizes = np.maximum(lengths, 0)
    width = 8 * max(1, -(-int(sizes.max(initial=0)) // 8))
    # Each value NUL-padded to whole 8-byte words (PostgreSQL text holds no NUL), hashed to
    # one word: numpy finds the distinct words fast; a row unlike its word's first holder
    # (a collision) falls back to comparing the whole values.
    padded = np.zeros((len(lengths), width), np.uint8)
    padded[np.arange(width)[None, :] < sizes[:, None]] = np.frombuffer(column.data, np.uint8)
    words = padded.view(np.uint64)
    hashed = (words * _HASH[: words.shape[1]]).sum(axis=1, dtype=np.uint64)
    hashed ^= sizes.astype(np.uint64)
    rows = np.flatnonzero(present)
    first, inverse = _distinct(hashed[rows])
    holders = rows[first]
    if not np.array_equal(words[rows], words[holders[inverse]]):
        keys = padded.view(f"S{width}").reshape(-1)[rows]
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        holders = rows[first]
    index = np.full(len(lengths), -1, np.int64)
    index[rows] = inverse
    unique_lengths = lengths[holders]
    keep = np.arange(width)[None, :] < unique_lengths[:, None]
    return padded[holders][keep].tobytes(), unique_lengths, index


def _few_distinct(
    data: bytes, lengths: npt.NDArray[np.int64]
) -> tuple[bytes, npt.NDArray[np.int64], npt.NDArray[np.int64]] | None:
    """:func:`_unique_text`'s answer where there are fewer than 32 distinct values, else None.

    A category or a condition: each value is found by comparing the bytes of the rows of its
    length with it (in order of first appearance, as :func:`_distinct` finds few keys), without
    padding and hashing every row (0.57 → 0.15 ms for a tile of 3,363 categories).
    """
    buffer = np.frombuffer(data, np.uint8)
    sizes = np.maximum(lengths, 0)
    starts = np.cumsum(sizes) - sizes
    index = np.full(len(lengths), -1, np.int64)
    left = np.flatnonzero(lengths >= 0)
    values: list[bytes] = []
    while len(left):
        if len(values) == 31:  # 32 or more: _distinct sorts them (its order, not this one)
            return None
        size, start = int(sizes[left[0]]), int(starts[left[0]])
        value = buffer[start:start + size]
        same = left[sizes[left] == size]
        if size:
            same = same[(buffer[starts[same][:, None] + np.arange(size)] == value).all(axis=1)]
        index[same] = len(values)
        values.append(value.tobytes())
        left = left[index[left] < 0]
    return b"".join(values), np.array([len(v) for v in values], np.int64), index


def _distinct(keys: UInt64s) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Where each distinct key first appears, and each key's index among the distinct ones.

    A category or a condition has a handful of values: each is found by one comparison over
    all keys, much faster than sorting them; past a few dozen values, they are sorted.
    """
    inverse = np.full(len(keys), -1, np.int64)
    first: list[int] = []
    while len(first) < 32:
        left = np.flatnonzero(inverse < 0)
        if not len(left):
            return np.array(first, np.int64), inverse
        first.append(int(left[0]))
        inverse[keys == keys[left[0]]] = len(first) - 1
    _, where, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return where.astype(np.int64), inverse.reshape(-1).astype(np.int64)


# Odd multipliers (fixed, from a seeded generator) of the words hashed in _unique_text.
_HASH = np.random.default_rng(17).integers(1, 2**63, 64, dtype=np.uint64) * 2 + 1


def _text_values(column: TextColumn) -> tuple[bytes, int, npt.NDArray[np.int64]]:
    """The layer's ``values`` for a text column, how many, and each feature's index."""
    data, lengths, index = _unique_text(column)
    if len(lengths) < 32:  # a few (a category): entries made once per process, joined
        ends = np.cumsum(lengths).tolist()
        entries = [_string_entry(data[end - size:end]) for end, size in zip(ends, lengths.tolist(),
                                                                           strict=True)]
        return b"".join(entries), len(entries), index
    # value entry: key, length of the Value message, then the Value: key, length, the bytes
    value_sizes = 1 + _varint_lengths(lengths.astype(np.uint64)) + lengths
    heads = (_Rows(len(lengths)).add(_LAYER_VALUE).add(value_sizes.astype(np.uint64))
             .add(_VALUE_STRING).add(lengths.astype(np.uint64)))
    return _ragged(heads.bytes(), heads.lengths, data, lengths), len(lengths), index


def _choice_values(column: ChoiceColumn) -> tuple[bytes, int, npt.NDArray[np.int64]]:
    """The layer's ``values`` for a choice column, how many, and each feature's index."""
    kept = [i for i, value in enumerate(column.choices) if value is not None]
    position = np.full(len(column.choices) + 1, -1, np.int64)  # the last: index -1
    position[kept] = np.arange(len(kept))
    encoded = b"".join(_string_value(str(column.choices[i])) for i in kept)
    return encoded, len(kept), position[column.index]


def _string_value(text: str) -> bytes:
    """One entry of a layer's ``values``: a Value message holding a string."""
    return _string_entry(text.encode())


@lru_cache(maxsize=4096)  # the same species and categories come back tile after tile
def _string_entry(data: bytes) -> bytes:
    """:func:`_string_value` of a string's UTF-8 bytes."""
    value = bytes([_VALUE_STRING]) + varint(len(data)) + data
    return bytes([_LAYER_VALUE]) + varint(len(value)) + value


def _values(column: Column) -> tuple[bytes, int, npt.NDArray[np.int64]]:
    """The layer's ``values`` for a column, how many, and each feature's index among them."""
    if isinstance(column, TextColumn):
        return _text_values(column)
    if isinstance(column, ChoiceColumn):
        return _choice_values(column)
    return _number_values(column)


def _number_values(column: NumberColumn) -> tuple[bytes, int, npt.NDArray[np.int64]]:
    """The layer's ``values`` for a number column, how many, and each feature's index."""
    values = column.values
    if values.dtype.kind == "f":
        present = ~np.isnan(values)
        uniques, inverse = np.unique(values[present], return_inverse=True)
        rows = _Rows(len(uniques)).add(_LAYER_VALUE).add(9).add(_VALUE_DOUBLE)
        rows.add_fixed(uniques.astype("<f8").view(np.uint8).reshape(-1, 8))
    else:
        present = np.ones(len(values), np.bool_)
        uniques, inverse = np.unique(values, return_inverse=True)
        negative = uniques < 0
        encoded = np.where(negative, zigzag(uniques.astype(np.int64)), uniques.astype(np.uint64))
        rows = (_Rows(len(uniques)).add(_LAYER_VALUE)
                .add(1 + _varint_lengths(encoded)).add(np.where(negative, _VALUE_SINT, _VALUE_UINT))
                .add(encoded))
    index = np.full(len(values), -1, np.int64)
    index[present] = inverse.reshape(-1)
    return rows.bytes(), len(uniques), index


def point_layer(
    name: str,
    ids: npt.NDArray[np.int64],
    x: npt.NDArray[np.int64],
    y: npt.NDArray[np.int64],
    properties: Sequence[tuple[str, Column]],
    extent: int = EXTENT,
) -> bytes:
    """A tile holding one layer of point features (b"" when there are none).

    Parameters
    ----------
    name
        The layer's name.
    ids
        Feature ids (non-negative).
    x, y
        Tile-space coordinates of the points (0..extent inside the tile, y down).
    properties
        The properties, in order: name and one value per feature.
    extent
        Tile units per side.

    Returns
    -------
    bytes
        The tile (a ``Tile`` message with one layer), as ST_AsMVT would send it.

    """
    n = len(ids)
    if n == 0:
        return b""
    features = _Rows(n).add(_FEATURE_ID).add(ids.astype(np.uint64))
    encoded = [_values(column) for _, column in properties]
    # The fewest distinct values first: their indices stay below 128, one byte in each feature.
    order = sorted(range(len(encoded)), key=lambda k: encoded[k][1])
    offsets = dict(zip(order, np.cumsum([0] + [encoded[k][1] for k in order]).tolist(),
                       strict=False))
    tags = _Rows(n)
    for key, (_, _, index) in enumerate(encoded):
        present: npt.NDArray[np.bool_] | None = index >= 0
        if present is not None and present.all():
            present = None  # every feature has it: no mask to apply
            tags.add(key).add(offsets[key] + index.astype(np.uint64))
        else:
            tags.add(key, present).add(offsets[key] + np.maximum(index, 0).astype(np.uint64),
                                       present)
    values = [encoded[k][0] for k in order]
    features.add(_FEATURE_TAGS).add(tags.lengths.astype(np.uint64)).extend(tags)
    zx, zy = zigzag(x), zigzag(y)
    geometry_size = 1 + _varint_lengths(zx) + _varint_lengths(zy)
    features.add(_FEATURE_TYPE).add(_POINT).add(_FEATURE_GEOMETRY).add(geometry_size.astype(np.uint64))
    features.add(_MOVE_TO_ONE).add(zx).add(zy)
    framed = _Rows(n).add(_LAYER_FEATURE).add(features.lengths.astype(np.uint64)).extend(features)
    keys = b"".join(bytes([_LAYER_KEY]) + varint(len(k.encode())) + k.encode()
                    for k, _ in properties)
    encoded_name = name.encode()
    layer = b"".join([
        bytes([_LAYER_VERSION]), varint(2),
        bytes([_LAYER_NAME]), varint(len(encoded_name)), encoded_name,
        framed.bytes(), keys, *values,
        bytes([_LAYER_EXTENT]), varint(extent),
    ])
    return bytes([_TILE_LAYER]) + varint(len(layer)) + layer
