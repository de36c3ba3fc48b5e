"""The analyst API: every public layer as a GeoDataFrame or DataFrame, read through Arrow.

>>> import smarttrees
>>> db = smarttrees.connect()                                   # doctest: +SKIP
>>> town = db.trees(bbox=(105.758, 21.507, 105.775, 21.523))   # doctest: +SKIP
>>> town.to_arrow()   # GeoArrow, for DuckDB or lonboard           doctest: +SKIP

Rows come from PostgreSQL through the ADBC PostgreSQL driver, which reads a query's binary COPY
output straight into Arrow columns (C++, no Python object per value); geometry comes as
coordinates (points) or WKB (polygons) and becomes shapely geometries in one vectorised call.
``bench/bench_analyst.py`` measures it against ``geopandas.read_postgis``.

What a layer holds is described once, in :mod:`smarttrees.catalog`; only its public fields are
read. Filters become SQL with bound parameters; a filter value that names nothing (an unknown
commune, species or category, a bbox in the wrong order, a date before any commune version)
raises :class:`~smarttrees.errors.ArgumentError` naming the argument and the valid values.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from smarttrees import catalog, collector, packed_read, parallel_read
from smarttrees.arguments import BBox, as_date, as_datetime, as_list, checked_bbox, closest, sample
from smarttrees.arrow_frames import column, geometry
from smarttrees.domain import Category, fold
from smarttrees.errors import ArgumentError, SmartTreesError
from smarttrees.layer_sql import Where, chosen_fields, numbered, output_names, select


def connect(url: str | None = None) -> Database:
    """Open the SmartTrees database for analysis.

    Parameters
    ----------
    url:
        A ``postgresql://`` URL. Default: a healthy replica of ``SMARTTREES_REPLICA_URLS``
        when there is one (analysis only reads), else ``SMARTTREES_DATABASE_URL`` when set,
        otherwise the managed local PostGIS (started if it is not running).

    Returns
    -------
    Database
        Reads layers on demand; close it with :meth:`Database.close` or use it in ``with``.

    """
    if url is None:
        from smarttrees.database import database_url
        from smarttrees.replication import read_url
        from smarttrees.settings import get_settings

        primary = database_url()
        return Database(read_url(primary, get_settings()), primary_url=primary)
    return Database(url)


class Database:
    """The public layers of one SmartTrees database.

    Every method returns a new (Geo)DataFrame in EPSG:4326 whose columns are the layer's
    public fields, named as in the OGC API (``smarttrees.catalog``), with the layer's key
    (``id``, or ``code`` for communes) first.
    """

    def __init__(self, url: str, primary_url: str | None = None, *, parts: int | None = None,
                 packed: bool = False) -> None:
        self.url = url
        # Where writes go (the carbon refresh) when ``url`` is a read replica.
        self.primary_url = primary_url or url
        # Connections a large read is split over (smarttrees.parallel_read): one per core.
        self.parts = max(1, parts if parts is not None else min(4, os.cpu_count() or 1))
        # Whether a large read travels packed (smarttrees.packed_read): a second less of the
        # client's CPU, a second more of the server's (bench/README.md), so not by default.
        self.packed = packed
        self._conn: Any = None
        self._extra: list[Any] = []  # the connections of parts 2, 3…
        self._vocabulary: dict[str, Any] = {}

    # -- connection ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database connection (a later read opens a new one)."""
        for conn in (self._conn, *self._extra):
            if conn is not None:
                conn.close()
        self._conn = None
        self._extra = []

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<smarttrees.Database {_redacted(self.url)}>"

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _connections(self, count: int) -> list[Any]:
        """The main connection and ``count - 1`` more (kept open for the next large read)."""
        while len(self._extra) < count - 1:
            self._extra.append(self._connect())
        return [self._connection(), *self._extra[: count - 1]]

    def _connect(self) -> Any:
        import adbc_driver_postgresql.dbapi as adbc

        try:
            return adbc.connect(self.url, autocommit=True)
        except Exception as exc:  # the driver's errors carry no stable type
            raise SmartTreesError(
                f"cannot connect to {_redacted(self.url)}: {exc}".strip()
            ) from None

    def query_arrow(
        self, query: sql.Composable, params: Sequence[object] = (), *, copy: bool = True
    ) -> pa.Table:
        """Run one SELECT and return its result as an Arrow table.

        Parameters
        ----------
        query:
            A :mod:`psycopg.sql` composition whose values are ``sql.Placeholder()`` (``%s``).
        params:
            The values, in order; they are bound, never written into the SQL text.
        copy:
            False for a statement ``COPY (…) TO STDOUT`` cannot wrap, such as EXPLAIN.

        """
        import adbc_driver_manager

        for attempt in (1, 2):
            try:
                return self._fetch(self._connection(), query, params, copy=copy)
            except adbc_driver_manager.OperationalError:
                self.close()  # the server restarted or the connection dropped: once more
                if attempt == 2:
                    raise SmartTreesError(
                        f"lost the connection to {_redacted(self.url)}; is the database up?"
                    ) from None
        raise AssertionError("unreachable")

    def _fetch(self, conn: Any, query: sql.Composable, params: Sequence[object], *,
               copy: bool = True) -> pa.Table:
        """One query on one connection, as an Arrow table (a missing view says to upgrade).

        ``copy=False`` for a statement that ``COPY (…) TO STDOUT`` cannot wrap (EXPLAIN).
        """
        import adbc_driver_manager
        from adbc_driver_postgresql import StatementOptions

        try:
            with conn.cursor() as cur:
                if not copy:
                    cur.adbc_statement.set_options(**{StatementOptions.USE_COPY.value: "false"})
                cur.execute(numbered(query.as_string(None)),
                            parameters=tuple(params) if params else None)
                return cur.fetch_arrow_table()
        except adbc_driver_manager.ProgrammingError as exc:
            if getattr(exc, "sqlstate", None) == "42P01":  # undefined table
                raise SmartTreesError(
                    f"the database at {_redacted(self.url)} lacks a table or view this "
                    "version reads; run `smarttrees db upgrade`"
                ) from None
            raise

    # -- layers -------------------------------------------------------------------------------

    def trees(
        self,
        *,
        bbox: BBox | None = None,
        commune: str | Iterable[str] | None = None,
        species: str | int | Iterable[str | int] | None = None,
        category: str | Iterable[str] | None = None,
        columns: Sequence[str] | None = None,
        carbon: bool = False,
        limit: int | None = None,
    ) -> gpd.GeoDataFrame:
        """Trees of the inventory (points).

        Parameters
        ----------
        bbox:
            ``(min_lon, min_lat, max_lon, max_lat)`` in degrees (WGS 84): trees inside it.
        commune:
            One commune code or name (or several): trees in the commune(s) in force today.
        species:
            Scientific or Vietnamese name (diacritics optional), synonym or catalogue id, or
            several.
        category:
            ``urban``, ``scattered`` or ``plantation``, or several.
        columns:
            Public fields to read (default all but the carbon ones); ``id`` and the geometry
            always come.
        carbon:
            Also read each tree's carbon: ``agb_kg`` (kg), ``carbon_kg`` (kg C), ``co2e_kg``
            (kg CO₂e), ``carbon_equation`` and ``carbon_outside_range``, recomputed first if the
            trees or the carbon settings changed (see :meth:`carbon`). Naming one of them in
            ``columns`` does the same.
        limit:
            At most this many trees.

        Returns
        -------
        geopandas.GeoDataFrame
            ``id``, ``tree_code``, ``category``, ``species_id``, ``species_name``,
            ``species_vi``, ``dbh_cm`` (cm), ``height_m`` (m), ``crown_m`` (m), ``condition``,
            ``planted_on``, ``commune_code``, ``stand_id``, ``source``, ``updated_at``, the
            carbon fields if asked for, and ``geometry`` (EPSG:4326).

        """
        where = Where()
        self._filter_bbox(where, bbox)
        self._filter_communes(where, commune)
        self._filter_species(where, species)
        self._filter_categories(where, category)
        if carbon:
            if columns is None:
                names = [f.name for f in catalog.TREES.default_fields]
            else:
                names = [columns] if isinstance(columns, str) else list(columns)
            columns = [*names, *(f.name for f in catalog.TREE_CARBON_FIELDS if f.name not in names)]
        return self.read("trees", where=where, columns=columns, limit=limit)

    def stands(
        self,
        *,
        bbox: BBox | None = None,
        commune: str | Iterable[str] | None = None,
        species: str | int | Iterable[str | int] | None = None,
        columns: Sequence[str] | None = None,
    ) -> gpd.GeoDataFrame:
        """Plantation stands (multipolygons); owner names are personal and never read.

        Parameters
        ----------
        bbox, commune, species, columns:
            As for :meth:`trees` (``species``: the stand's main species).

        Returns
        -------
        geopandas.GeoDataFrame
            ``id``, ``stand_code``, ``species_id``, ``planting_year``, ``area_ha`` (ha),
            ``planted_count`` (trees), ``owner_type``, ``forest_function``,
            ``harvest_allowed_m3`` (m³), ``commune_code``, ``geometry``.

        """
        where = Where()
        self._filter_bbox(where, bbox)
        self._filter_communes(where, commune)
        self._filter_species(where, species)
        return self.read("stands", where=where, columns=columns)

    def nurseries(
        self, *, commune: str | Iterable[str] | None = None, columns: Sequence[str] | None = None
    ) -> gpd.GeoDataFrame:
        """Registered seedling nurseries (points); ``capacity`` in seedlings a year."""
        where = Where()
        self._filter_communes(where, commune)
        return self.read("nurseries", where=where, columns=columns)

    def lots(
        self,
        *,
        species: str | int | Iterable[str | int] | None = None,
        columns: Sequence[str] | None = None,
    ) -> gpd.GeoDataFrame:
        """Seedling lots, located at their nursery.

        Returns
        -------
        geopandas.GeoDataFrame
            ``quantity``, ``quantity_dispatched`` and ``quantity_planted`` count seedlings;
            ``status`` is the lot's custody state.

        """
        where = Where()
        self._filter_species(where, species)
        return self.read("seedling_lots", where=where, columns=columns)

    def logs(
        self, *, stand: str | None = None, columns: Sequence[str] | None = None
    ) -> gpd.GeoDataFrame:
        """Felled timber logs, where each was last seen.

        Parameters
        ----------
        stand:
            A stand code (``ST-90001-0001``): only the logs felled in it.
        columns:
            Public fields to read (default all).

        Returns
        -------
        geopandas.GeoDataFrame
            ``length_m`` (m), ``diameter_cm`` (cm), ``volume_m3`` (m³), ``status``…

        """
        where = Where()
        if stand is not None:
            ids = self._vocab("stands", "SELECT stand_code, id FROM smarttrees.stands")
            if stand not in ids:
                raise ArgumentError(
                    "stand", f"no stand {stand!r}", sample(sorted(ids), "stand codes")
                )
            where.add("stand_id = %s", ids[stand])
        return self.read("timber_logs", where=where, columns=columns)

    def communes(
        self,
        *,
        date: dt.date | str | None = None,
        bbox: BBox | None = None,
        columns: Sequence[str] | None = None,
    ) -> gpd.GeoDataFrame:
        """Communes (multipolygons) in force at a date.

        Parameters
        ----------
        date:
            A date (or ``YYYY-MM-DD``); default today. Communes are versioned: the 2025 reform
            merged many, and each version keeps its ``valid_from`` / ``valid_to``.
        bbox, columns:
            As for :meth:`trees`.

        """
        day = as_date("date", date) if date is not None else dt.date.today()
        versions = self._commune_versions()
        if not versions or day < versions[0]:
            raise ArgumentError(
                "date",
                f"{day.isoformat()} is before the first version of the communes",
                tuple(f"from {v.isoformat()}" for v in versions) or ("no communes loaded",),
            )
        where = Where()
        where.add("valid_from <= %s AND (valid_to IS NULL OR valid_to > %s)", day, day)
        return self.read("communes", bbox=bbox, where=where, columns=columns)

    def history(
        self,
        *,
        tree_code: str | None = None,
        since: dt.datetime | dt.date | str | None = None,
    ) -> pd.DataFrame:
        """Changes to trees: inserts, updates (``changes``: field → old, new) and deletes.

        Parameters
        ----------
        tree_code:
            One tree's history (also after it was deleted).
        since:
            Only changes at or after this time (a date means its midnight, UTC).

        Returns
        -------
        pandas.DataFrame
            ``id``, ``tree_id``, ``tree_code``, ``change``, ``changed_at`` (UTC), ``source``,
            ``changes`` (a dict, or None), oldest first. Who made a change is not published.

        """
        if tree_code is None and since is None:
            raise ArgumentError(
                "tree_code", "give tree_code or since (the full history is millions of rows)"
            )
        where = Where()
        if tree_code is not None:
            where.add("tree_code = %s", str(tree_code))
        if since is not None:
            where.add("changed_at >= %s", as_datetime("since", since))
        frame = self.read("tree_history", where=where, order_by=("changed_at", "id"))
        if tree_code is not None and frame.empty:
            raise ArgumentError("tree_code", f"no tree {tree_code!r} in the inventory's history")
        return frame

    def custody(self, *, code: str | None = None) -> gpd.GeoDataFrame:
        """Chain-of-custody scans (who scanned is not published), oldest first.

        Parameters
        ----------
        code:
            A tag code (``TL-00000042-Y``): only that item's events. Default: every event.

        """
        where = Where()
        if code is not None:
            where.add("code = %s", str(code).strip().upper())
        frame = self.read("custody_events", where=where, order_by=("occurred_at", "id"))
        if code is not None and frame.empty:
            tags = self.query_arrow(
                sql.SQL("SELECT 1 FROM smarttrees.tags WHERE code = %s"), [code.strip().upper()]
            )
            if tags.num_rows == 0:
                raise ArgumentError("code", f"no tag {code!r} was issued")
        return frame

    def carbon(
        self,
        by: str = "commune",
        *,
        commune: str | Iterable[str] | None = None,
        refresh: bool = True,
    ) -> gpd.GeoDataFrame | pd.DataFrame:
        """Above-ground biomass and carbon (Chave et al. 2014, see the README's "Carbon").

        Parameters
        ----------
        by:
            ``tree`` (points: the equation used, the height used and where it came from, and
            whether the diameter is outside the equation's validity range), ``stand``
            (multipolygons), ``commune`` (multipolygons) or ``species`` (a table).
        commune:
            Only the trees, stands or commune(s) of these communes (``by`` tree, stand or
            commune).
        refresh:
            Recompute first if the trees, the settings (``SMARTTREES_CARBON_FRACTION``,
            ``SMARTTREES_CARBON_CHAVE_E``), wood densities or equations changed since the last
            computation. With False, the stored figures are read as they are.

        Returns
        -------
        geopandas.GeoDataFrame or pandas.DataFrame
            Biomass in kg (per tree) or t, carbon in kg C or t C, CO₂ equivalent in kg or t
            CO₂e (C × 44/12).

        """
        layers = {"tree": "tree_carbon", "stand": "stand_carbon", "commune": "commune_carbon",
                  "species": "species_carbon"}
        if by not in layers:
            raise ArgumentError("by", f"no grouping {by!r}", tuple(layers))
        where = Where()
        if commune is not None:
            if by == "species":
                raise ArgumentError("commune", "not available with by='species'")
            self._filter_communes(where, commune)
        return self.read(layers[by], where=where, refresh=refresh)

    def ioc(
        self, indicator: str, *, by: str = "commune", commune: str | Iterable[str] | None = None
    ) -> gpd.GeoDataFrame | pd.DataFrame:
        """An IOC indicator: documents, citizen support or trees, per commune and more.

        Parameters
        ----------
        indicator:
            ``documents``, ``citizen_support`` or ``trees``.
        by:
            ``commune`` (all three); documents also by ``commune_month``, ``agency_month`` or
            ``flow`` (sender → receiver lines); citizen support by ``commune_detail`` (status
            and channel) or ``province``; trees by ``month``.
        commune:
            Only these communes (where the layer has a commune).

        Returns
        -------
        geopandas.GeoDataFrame or pandas.DataFrame
            Counts and totals only (VND, documents, people, trees): where fewer people than the
            privacy threshold were supported, figures are withheld (``suppressed``).

        """
        indicators = sorted({i for i, _ in catalog.IOC_LAYERS})
        if indicator not in indicators:
            raise ArgumentError("indicator", f"no IOC indicator {indicator!r}", tuple(indicators))
        layer = catalog.IOC_LAYERS.get((indicator, by))
        if layer is None:
            valid = tuple(b for i, b in catalog.IOC_LAYERS if i == indicator)
            raise ArgumentError("by", f"{indicator} is not available by {by!r}", valid)
        where = Where()
        if commune is not None:
            if layer.field("commune_code") is None:
                raise ArgumentError("commune", f"{indicator} by {by} has no commune")
            self._filter_communes(where, commune)
        return self.read(layer.id, where=where)

    def refresh_carbon(self, *, force: bool = False) -> float | None:
        """Recompute the carbon of every tree if its inputs changed (or ``force``).

        Returns
        -------
        float or None
            Seconds the recomputation took, or None when the figures were current.

        """
        from smarttrees import carbon
        from smarttrees.database import connect as connect_psycopg

        with connect_psycopg(self.primary_url) as conn:
            took = carbon.refresh(conn, force=force)
        if took is not None and self.url != self.primary_url:  # read it back from the replica
            from smarttrees.replication import primary_lsn, wait_for_replay

            lsn = primary_lsn(self.primary_url)
            if lsn is not None:
                wait_for_replay(self.url, lsn)
        return took

    def species(self) -> pd.DataFrame:
        """The species catalogue: names, family, use, wood density (g/cm³) and its source."""
        return self.read("species", order_by=("id",))

    # -- the generic reader -------------------------------------------------------------------

    def read(
        self,
        layer_id: str,
        *,
        bbox: BBox | None = None,
        where: Where | None = None,
        columns: Sequence[str] | None = None,
        order_by: Sequence[str] = (),
        limit: int | None = None,
        refresh: bool = True,
    ) -> gpd.GeoDataFrame | pd.DataFrame:
        """Read any layer of :mod:`smarttrees.catalog` (what the named methods call).

        Parameters
        ----------
        layer_id:
            A catalogue id (``trees``, ``stands``, ``seedling_lots``, ``communes``…).
        bbox:
            ``(min_lon, min_lat, max_lon, max_lat)``, degrees: features intersecting it.
        where:
            Conditions on the layer's columns (built by the named methods).
        columns:
            Public fields to read (default all but the ``on_request`` ones, e.g. a tree's
            carbon).
        order_by:
            Columns to sort by.
        limit:
            At most this many rows.
        refresh:
            For the carbon layers and fields: recompute first if their inputs changed.

        """
        layer = catalog.get(layer_id)
        if layer is None:
            raise ArgumentError(
                "layer", f"no layer {layer_id!r}", tuple(x.id for x in catalog.LAYERS)
            )
        where = where or Where()
        if bbox is not None:
            if layer.geometry is None:
                raise ArgumentError("bbox", f"layer {layer_id} has no geometry")
            self._filter_bbox(where, bbox, column=layer.geometry)
        fields = chosen_fields(layer, columns)
        if refresh and (
            layer in catalog.CARBON_LAYERS or set(fields) & set(catalog.TREE_CARBON_FIELDS)
        ):
            self.refresh_carbon()
        query, params = select(layer, fields, where, order_by, limit)
        with collector.paused():  # a geometry object per row: see smarttrees.collector
            if limit is None and not order_by and self._worth_splitting(layer, query, params):
                table, shapes = self._read_in_parts(layer, fields, where)
            else:
                table = self.query_arrow(query, params)
                shapes = geometry(layer, table)
            return self._frame(layer, fields, table, shapes)

    def _worth_splitting(
        self, layer: catalog.Layer, query: sql.Composable, params: Sequence[object]
    ) -> bool:
        """Whether PostgreSQL expects enough rows for a read in parts (or packed) to pay."""
        if (self.parts < 2 and not self.packed) or layer.key is None or (
                layer.key_type != "integer"):
            return False
        plan = self.query_arrow(sql.SQL("EXPLAIN (FORMAT JSON) ") + query, params, copy=False)
        rows = json.loads(plan.column(0)[0].as_py())[0]["Plan"]["Plan Rows"]
        return bool(rows >= parallel_read.MIN_ROWS)

    def _read_in_parts(
        self, layer: catalog.Layer, fields: Sequence[catalog.Field], where: Where
    ) -> tuple[pa.Table, np.ndarray | None]:
        """A large read: key ranges over :attr:`parts` connections at once, on one snapshot.

        Rows travel packed (:mod:`smarttrees.packed_read`) where the layer's columns allow it,
        else row by row (:mod:`smarttrees.parallel_read`).
        """
        import adbc_driver_manager

        try:
            connections = self._connections(self.parts)
            with parallel_read.one_snapshot(connections, self._statement):
                # The key's bounds too are read in the snapshot: a row committed meanwhile is
                # in the bounds and the ranges, or in neither.
                bounds = self._fetch(connections[0], sql.SQL(
                    "SELECT min({k})::int8, max({k})::int8 FROM {rel} AS layer").format(
                        k=sql.Identifier(layer.key or ""), rel=sql.SQL(layer.relation)), ()
                ).to_pylist()[0]
                if bounds["min"] is None:  # empty: one plain read gives the columns
                    table = self._fetch(connections[0], *select(layer, fields, where, (), None))
                    return table, geometry(layer, table)
                key_range = (bounds["min"], bounds["max"])
                pack = self._packing(connections[0], layer, fields, where)
                if pack is not None:
                    try:
                        return packed_read.read_packed(layer, fields, where, pack, key_range,
                                                       connections, self._fetch)
                    except packed_read.Unpackable:
                        pass  # a value the packing cannot carry exactly: row by row
                return parallel_read.read_in_parts(
                    layer, fields, where, key_range, connections, self._fetch)
        except adbc_driver_manager.OperationalError:
            self.close()  # a connection dropped: read it again in one part, which retries
            table = self.query_arrow(*select(layer, fields, where, (), None))
            return table, geometry(layer, table)

    def _packing(self, conn: Any, layer: catalog.Layer, fields: Sequence[catalog.Field],
                 where: Where) -> packed_read.Packing | None:
        """How the read's columns travel packed, or None (see :func:`packed_read.packing`)."""
        if not self.packed or layer.key is None or layer.geometry_type not in (None, "Point"):
            return None
        if any(f.on_request for f in fields) and layer.ranged_source is None:
            return None  # a joined field: each chunk would scan all of the joined table
        query, params = select(layer, fields, where, (), 0)  # LIMIT 0: the columns' types
        return packed_read.packing(self._fetch(conn, query, params).schema, layer.key)

    def _statement(self, conn: Any, statement: sql.Composable) -> pa.Table:
        """One statement that COPY cannot wrap (BEGIN, SET…) on ``conn``."""
        return self._fetch(conn, statement, (), copy=False)

    # -- building frames ----------------------------------------------------------------------

    def _frame(
        self,
        layer: catalog.Layer,
        fields: Sequence[catalog.Field],
        table: pa.Table,
        points_or_shapes: np.ndarray | None,
    ) -> gpd.GeoDataFrame | pd.DataFrame:
        """The fetched table as a (Geo)DataFrame: columns in catalogue order, lookups mapped."""
        data: dict[str, Any] = {}
        for name in output_names(layer, fields):
            field = layer.field(name)
            if field is not None and field.lookup is not None:
                data[name] = self._lookup(field.lookup, table.column(field.lookup.key))
            else:
                data[name] = column(table.column(name), field)
        frame = pd.DataFrame(data, copy=False)
        if layer.geometry is None:
            return frame
        return gpd.GeoDataFrame(frame, geometry=points_or_shapes, crs="EPSG:4326", copy=False)

    def _lookup(self, lookup: catalog.Lookup, keys: pa.ChunkedArray) -> pd.Categorical:
        """Values of a reference table for a key column, as a categorical."""
        table = self._vocab(
            f"{lookup.table}.{lookup.column}",
            sql.SQL("SELECT id, {col} FROM {tab} ORDER BY id").format(
                col=sql.Identifier(lookup.column), tab=sql.Identifier("smarttrees", lookup.table)
            ),
        )
        ids = np.fromiter(table.keys(), dtype=np.int64, count=len(table))
        position = np.full(int(ids.max(initial=0)) + 2, -1, dtype=np.int64)
        position[ids] = np.arange(len(ids))
        codes = pc.fill_null(keys.cast(pa.int64()), -1).to_numpy()
        known = (codes >= 0) & (codes < len(position) - 1)
        out = np.full(len(codes), -1, dtype=np.int64)
        out[known] = position[codes[known]]
        return pd.Categorical.from_codes(out, categories=pd.Index(list(table.values())))

    # -- filters ------------------------------------------------------------------------------

    def _filter_bbox(self, where: Where, bbox: BBox | None, column: str = "geom") -> None:
        if bbox is None:
            return
        box = checked_bbox(bbox)
        where.parts.append(
            sql.SQL("{} && ST_MakeEnvelope(%s, %s, %s, %s, 4326)").format(sql.Identifier(column))
        )
        where.params.extend(box)

    def _filter_communes(self, where: Where, commune: str | Iterable[str] | None) -> None:
        if commune is None:
            return
        known = self._vocab(
            "communes", "SELECT code, name FROM smarttrees.communes ORDER BY code"
        )
        by_name = {fold(name): code for code, name in known.items()}
        codes = []
        for value in as_list(commune):
            text = str(value).strip()
            code = text if text in known else by_name.get(fold(text))
            if code is None:
                raise ArgumentError(
                    "commune",
                    f"no commune {text!r} in force{closest(text, by_name)}",
                    tuple(f"{c} ({n})" for c, n in known.items()),
                )
            codes.append(code)
        where.add_in("commune_code", codes)

    def _filter_species(
        self, where: Where, species: str | int | Iterable[str | int] | None
    ) -> None:
        if species is None:
            return
        names = self._species_names()
        ids = []
        for value in as_list(species):
            found = names.get(fold(str(value)))
            if found is None:
                labels = {row["id"]: _species_label(row) for row in self._species_rows()}
                close = closest(str(value), names, labels.__getitem__)
                raise ArgumentError(
                    "species",
                    f"no species {value!r} in the catalogue{close}",
                    tuple(sorted(self._vocab_species_scientific())),
                )
            ids.append(found)
        where.add_in("species_id", ids)

    def _filter_categories(self, where: Where, category: str | Iterable[str] | None) -> None:
        if category is None:
            return
        valid = tuple(c.value for c in Category)
        values = [str(v).strip().lower() for v in as_list(category)]
        for value in values:
            if value not in valid:
                raise ArgumentError("category", f"no category {value!r}", valid)
        where.add_in("category", values)

    # -- vocabularies (small, read once per Database) -------------------------------------------

    def _vocab(self, name: str, query: str | sql.Composable) -> dict[Any, Any]:
        """A two-column lookup read once: first column → second column."""
        if name not in self._vocabulary:
            composed = sql.SQL(query) if isinstance(query, str) else query
            table = self.query_arrow(composed)
            keys, values = (table.column(i).to_pylist() for i in range(2))
            self._vocabulary[name] = dict(zip(keys, values, strict=True))
        return dict(self._vocabulary[name])

    def _species_rows(self) -> list[dict[str, Any]]:
        if "species_rows" not in self._vocabulary:
            table = self.query_arrow(
                sql.SQL(
                    "SELECT id, scientific_name, vietnamese_name, synonyms::text[] AS synonyms "
                    "FROM smarttrees.species ORDER BY id"
                )
            )
            self._vocabulary["species_rows"] = table.to_pylist()
        return list(self._vocabulary["species_rows"])

    def _species_names(self) -> dict[str, int]:
        """Folded scientific names, Vietnamese names, synonyms and ids → species id."""
        names: dict[str, int] = {}
        for row in self._species_rows():
            for name in (row["scientific_name"], row["vietnamese_name"], *(row["synonyms"] or [])):
                names.setdefault(fold(name), row["id"])
            names[str(row["id"])] = row["id"]
        return names

    def _vocab_species_scientific(self) -> list[str]:
        return [row["scientific_name"] for row in self._species_rows()]

    def _commune_versions(self) -> list[dt.date]:
        table = self.query_arrow(
            sql.SQL(
                "SELECT DISTINCT valid_from FROM smarttrees.admin_units "
                "WHERE level = 'commune' ORDER BY 1"
            )
        )
        return list(table.column(0).to_pylist())


def _species_label(row: dict[str, Any]) -> str:
    return f"{row['vietnamese_name']} ({row['scientific_name']})"


def _redacted(url: str) -> str:
    """The URL without its password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
