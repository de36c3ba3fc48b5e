"""The vector tiles of an area in one PMTiles archive (``smarttrees tiles export``).

Each tile address of the area, from ``minzoom`` to ``maxzoom``, is rendered by the live server's
own code (:func:`render.render_trees` and :func:`render.render_features`), so the archive holds
what the tile routes send. The trees, stands and communes tiles of one address are joined into
one tile by concatenation: an MVT tile is a protobuf message whose layers are a repeated field,
and concatenated messages are one message holding every layer. Addresses where all three are
empty are left out. Tiles are gzip-compressed (what PMTiles readers expect of MVT) and written
by the ``pmtiles`` package in tile-id order (the archive is "clustered").

Several connections render at once; they share one snapshot (``pg_export_snapshot``), so the
whole archive shows one data version of the trees, whichever connection made a tile. Memory is
bounded by the tiles in flight (``BATCH``); the tile bytes go to a temporary file as they come
and only the archive's directory (a few dozen bytes per tile) grows with the area. The archive
is written beside ``out`` and renamed into place at the end: a failed export leaves no file.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer
from psycopg import AsyncConnection, IsolationLevel, sql

from gis_api.tiles import render
from gis_api.tiles.coverage import Bounds, ZoomCoverage, coverage
from gis_api.tiles.grid import TileAddress
from gis_api.tiles.layers import MAX_ZOOM, TileCollection, tile_collections
from gis_api.tiles.params import TreeFilters
from smarttrees.errors import ExportError
from smarttrees.settings import Settings

log = logging.getLogger(__name__)

BATCH = 256  # tiles rendered between two writes: what bounds the memory in flight
# zlib level 4: measured on seven dense tiles (280 kB), 2.5 times faster than the default 6
# for 4 % more bytes (level 1: 3.5 times, 12 % more); gzip was half the export's Python CPU.
GZIP_LEVEL = 4

Progress = Callable[[int, int], None]  # (tiles rendered, tiles to render)


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote.

    Attributes
    ----------
    path
        The archive.
    tiles
        Tiles in it (addresses with at least one feature).
    rendered
        Tile addresses rendered (empty ones included).
    size
        Bytes of the archive.
    seconds
        Wall time of the export.
    minzoom, maxzoom
        The zoom levels asked for.
    bounds
        The area covered.
    version
        The trees' data version the tiles show (newest ``tree_history`` id).

    """

    path: Path
    tiles: int
    rendered: int
    size: int
    seconds: float
    minzoom: int
    maxzoom: int
    bounds: Bounds
    version: int


def parse_bbox(text: str) -> Bounds:
    """``west,south,east,north`` in degrees, checked; ExportError says what is wrong."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ExportError(
            f"--bbox must be four numbers west,south,east,north, got {text!r}"
        ) from None
    if len(values) != 4:
        raise ExportError(
            f"--bbox must be four numbers west,south,east,north, got {len(values)} in {text!r}"
        )
    bounds = Bounds(*values)
    if not (-180 <= bounds.west < bounds.east <= 180):
        raise ExportError(f"--bbox: west must be below east, both within -180..180, got {text!r}")
    if not (-90 <= bounds.south < bounds.north <= 90):
        raise ExportError(f"--bbox: south must be below north, both within -90..90, got {text!r}")
    return bounds


def check_zooms(minzoom: int, maxzoom: int) -> None:
    """Raise an :class:`ExportError` unless ``0 <= minzoom <= maxzoom <= MAX_ZOOM``."""
    if not 0 <= minzoom <= maxzoom <= MAX_ZOOM:
        raise ExportError(
            f"zooms must satisfy 0 <= --minzoom <= --maxzoom <= {MAX_ZOOM}, "
            f"got --minzoom {minzoom} --maxzoom {maxzoom}"
        )


class PlannedTile(NamedTuple):
    """A tile address to render and the collections that may have features in it."""

    tile_id: int
    tile: TileAddress
    collections: list[str]


def planned_tiles(zooms: Sequence[ZoomCoverage]) -> Iterator[PlannedTile]:
    """The tiles some collection may have features in, in PMTiles id order (the archive's)."""
    for zoom in zooms:
        r = zoom.range
        rows, cols = np.nonzero(zoom.any())
        planned = sorted(
            (zxy_to_tileid(r.z, int(c) + r.x0, int(y) + r.y0), int(c) + r.x0, int(y) + r.y0)
            for y, c in zip(rows, cols, strict=True)
        )
        for tile_id, x, y in planned:
            yield PlannedTile(tile_id, TileAddress(r.z, y, x), zoom.collections_at(x, y))


class _Renderer:
    """Renders every collection's tile of one address on one connection."""

    def __init__(
        self,
        conn: AsyncConnection,
        collections: Sequence[TileCollection],
        settings: Settings,
        grid_current: bool,
    ) -> None:
        self.conn = conn
        self.collections = collections
        self.settings = settings
        self.grid_current = grid_current

    async def tile(self, planned: PlannedTile) -> bytes:
        """The address's tile: the collections' tiles concatenated (b"" when all are empty).

        Each collection's tile is one statement and one round trip (:mod:`render`), inside
        this connection's snapshot transaction.
        """
        parts = []
        tile = planned.tile
        for collection in self.collections:
            if collection.id not in planned.collections:
                continue
            if collection.versioned:
                body = await render.render_trees(
                    self.conn, tile, TreeFilters(), self.settings, self.grid_current
                )
            else:
                body = await render.render_features(self.conn, collection, tile, self.settings)
            parts.append(body)
        return b"".join(parts)


async def _snapshot_connection(url: str, options: str, snapshot: str | None) -> AsyncConnection:
    """A connection in a repeatable-read transaction, on ``snapshot`` when one is given."""
    conn = await AsyncConnection.connect(url, options=options)
    await conn.set_isolation_level(IsolationLevel.REPEATABLE_READ)
    if snapshot is not None:  # must be the transaction's first statement
        await conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
    return conn


async def data_bounds(
    conn: AsyncConnection, collections: Sequence[TileCollection]
) -> Bounds | None:
    """The exact lon/lat extent of every tiled collection together (None when all are empty)."""
    boxes = []
    for collection in collections:
        box = await render.collection_bounds(conn, replace(collection, estimated_extent=False))
        if box is not None:
            boxes.append(box)
    if not boxes:
        return None
    return Bounds(
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _metadata(
    collections: Sequence[TileCollection], bounds: Bounds, version: int
) -> dict[str, Any]:
    """The archive's JSON metadata: TileJSON-style vector layers, and what the tiles show."""
    return {
        "name": "SmartTrees",
        "description": "Trees, plantation stands and communes (SmartTrees vector tiles)",
        "format": "pbf",
        "bounds": list(bounds),
        "vector_layers": [
            {
                "id": layer.id,
                "description": layer.description or collection.title,
                "minzoom": layer.minzoom,
                "maxzoom": layer.maxzoom,
                "fields": dict(layer.fields),
            }
            for collection in collections
            for layer in collection.layers
        ],
        "smarttrees:trees_version": version,
        "smarttrees:generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _header(bounds: Bounds, minzoom: int, maxzoom: int) -> dict[str, Any]:
    """The header fields the writer does not fill in itself."""
    e7 = 10_000_000
    return {
        "tile_type": TileType.MVT,
        "tile_compression": Compression.GZIP,
        "min_lon_e7": round(bounds.west * e7),
        "min_lat_e7": round(bounds.south * e7),
        "max_lon_e7": round(bounds.east * e7),
        "max_lat_e7": round(bounds.north * e7),
        "center_zoom": max(minzoom, min(maxzoom, 12)),
        "center_lon_e7": round((bounds.west + bounds.east) / 2 * e7),
        "center_lat_e7": round((bounds.south + bounds.north) / 2 * e7),
    }


def _batches(tiles: Iterator[PlannedTile], size: int) -> Iterator[list[PlannedTile]]:
    batch: list[PlannedTile] = []
    for tile in tiles:
        batch.append(tile)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _render_batch(renderers: Sequence[_Renderer], batch: list[PlannedTile]) -> list[bytes]:
    """The batch's tiles, in its order, rendered by every renderer at once."""
    results: list[bytes] = [b""] * len(batch)
    cursor = iter(range(len(batch)))

    async def work(renderer: _Renderer) -> None:
        for i in cursor:  # shared: each index is taken by exactly one renderer
            results[i] = await renderer.tile(batch[i])

    await asyncio.gather(*(work(r) for r in renderers))
    return results


async def export_archive(
    url: str,
    out: Path,
    settings: Settings,
    *,
    minzoom: int = 0,
    maxzoom: int = 16,
    bbox: Bounds | None = None,
    connections: int = 4,
    progress: Progress | None = None,
) -> ExportReport:
    """Write the trees, stands and communes tiles of ``bbox`` into the PMTiles file ``out``.

    Parameters
    ----------
    url
        The database (libpq URL or key=value string).
    out
        The archive to write; replaced only once the new one is complete.
    settings
        Point zoom, feature cap (the tiles are those the server would send with them).
    minzoom, maxzoom
        Zoom levels to include (both ends included).
    bbox
        The area; ``None``: the extent of the trees, stands and communes.
    connections
        Database connections rendering at once (each one PostgreSQL backend, i.e. one core).
    progress
        Called with (tiles rendered, tiles to render) after every batch.

    Returns
    -------
    ExportReport
        What was written.

    """
    from smarttrees.database import with_search_path

    check_zooms(minzoom, maxzoom)
    if not out.parent.is_dir():
        raise ExportError(f"--out {out}: the folder {out.parent} does not exist")
    started = time.perf_counter()
    # The IOC's layers change at every IOC load: they are served live, not archived.
    collections = [c for c in tile_collections(settings).values() if c.version_sql is None]
    options = with_search_path(url)
    lead = await _snapshot_connection(url, options, None)
    conns = [lead]
    try:
        await _refresh_stale_grid(lead)
        async with lead.transaction():
            snapshot = await _one(lead, "SELECT pg_export_snapshot()")
            version = await render.trees_version(lead)
            grid_current = await render.grid_version(lead) == version
            bounds = bbox or await data_bounds(lead, collections)
            if bounds is None:
                raise ExportError("there is nothing to export: no trees, stands or communes")
            zooms = await coverage(lead, collections, bounds, minzoom, maxzoom)
            for _ in range(max(1, connections) - 1):
                conns.append(await _snapshot_connection(url, options, str(snapshot)))
            renderers = [_Renderer(c, collections, settings, grid_current) for c in conns]
            plan = _Plan(zooms, bounds, minzoom, maxzoom, version)
            written = await _write(out, renderers, plan, progress)
    finally:
        for conn in conns:
            await conn.close()
    return ExportReport(
        path=out,
        tiles=written,
        rendered=plan.total,
        size=out.stat().st_size,
        seconds=time.perf_counter() - started,
        minzoom=minzoom,
        maxzoom=maxzoom,
        bounds=bounds,
        version=version,
    )


async def _refresh_stale_grid(conn: AsyncConnection) -> None:
    """Recompute ``smarttrees.tree_grid`` if the trees changed since (as the server would).

    The server makes its low-zoom tiles from the trees while the grid is stale and refreshes
    it in the background; an archive made afterwards holds the tiles it then sends.
    """
    async with conn.transaction():
        stale = await render.grid_version(conn) != await render.trees_version(conn)
    if stale:
        log.info("smarttrees.tree_grid is older than the trees: refreshing it first")
        await render.refresh_tree_grid(conn)


async def _one(conn: AsyncConnection, query: str) -> Any:
    cur = await conn.execute(query)
    row = await cur.fetchone()
    assert row is not None
    return row[0]


@dataclass(frozen=True)
class _Plan:
    """What one export renders: the zooms' coverage of the area, and what it describes."""

    zooms: list[ZoomCoverage]
    bounds: Bounds
    minzoom: int
    maxzoom: int
    version: int

    @property
    def total(self) -> int:
        """Tile addresses to render."""
        return sum(int(zoom.any().sum()) for zoom in self.zooms)


async def _write(
    out: Path, renderers: Sequence[_Renderer], plan: _Plan, progress: Progress | None
) -> int:
    """Render and write the archive to a temporary file beside ``out``, then rename it."""
    partial = out.with_name(f".{out.name}.partial")
    written = done = 0
    total = plan.total
    try:
        with partial.open("wb") as f:
            writer = Writer(f)
            for batch in _batches(planned_tiles(plan.zooms), BATCH):
                bodies = await _render_batch(renderers, batch)
                for planned, body in zip(batch, bodies, strict=True):
                    if body:
                        compressed = gzip.compress(body, GZIP_LEVEL, mtime=0)
                        writer.write_tile(planned.tile_id, compressed)
                        written += 1
                done += len(batch)
                if progress is not None:
                    progress(done, total)
            if written == 0:
                area = ",".join(map(str, plan.bounds))
                raise ExportError(
                    f"no tile between zoom {plan.minzoom} and {plan.maxzoom} in {area} holds "
                    "a tree, stand or commune: nothing written"
                )
            metadata = _metadata(renderers[0].collections, plan.bounds, plan.version)
            writer.finalize(_header(plan.bounds, plan.minzoom, plan.maxzoom), metadata)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return written
