"""A pygeoapi feature provider over the collections registry.

pygeoapi uses it for what it renders itself (HTML pages of items, queryables, schemas, the
OpenAPI document); the JSON hot paths are served by :mod:`gis_api.ogc` without pygeoapi, from
the same SQL (:mod:`gis_api.features`). Fields come from the registry, so describing a
collection never touches the database.
"""

from __future__ import annotations

from typing import Any

import orjson
from pygeoapi.provider.base import (
    BaseProvider,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
    SchemaType,
)

from gis_api import cql2, features, provinces
from gis_api.collections import Collection, get
from gis_api.crs import CRS84
from gis_api.errors import InvalidFilter
from gis_api.items_params import ItemsQuery, parse_id
from smarttrees.database import connect
from smarttrees.partitioning import PROVINCES_SQL


class SmartTreesProvider(BaseProvider):
    """Features of one registry collection (``table`` in the provider definition)."""

    def __init__(self, provider_def: dict[str, Any]) -> None:
        super().__init__(provider_def)
        collection = get(provider_def["table"])
        if collection is None:
            raise RuntimeError(f"no collection {provider_def['table']!r} in the registry")
        self.collection: Collection = collection
        self.id_field = collection.id_column
        self.max_limit = int(provider_def.get("max_limit", 10_000))
        self._fields = self.get_fields()

    def get_fields(self) -> dict[str, dict[str, str]]:
        """Published properties as JSON Schema types."""
        fields: dict[str, dict[str, str]] = {}
        for p in self.collection.properties:
            fields[p.name] = {"type": p.type, **({"format": p.format} if p.format else {})}
        return fields

    def get_schema(
        self, schema_type: SchemaType = SchemaType.item
    ) -> tuple[str, dict[str, Any]]:
        """JSON Schema of a feature's properties."""
        props: dict[str, Any] = {k: dict(v) for k, v in self.get_fields().items()}
        if self.collection.geometry_column:
            props["geometry"] = {"$ref": "https://geojson.org/schema/Geometry.json"}
        return "application/geo+json", {"type": "object", "properties": props}

    def query(  # noqa: D417 - pygeoapi's keyword interface
        self,
        offset: int = 0,
        limit: int = 10,
        resulttype: str = "results",
        bbox: list[float] | None = None,
        skip_geometry: bool = False,
        filterq: Any = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """A page of features, as pygeoapi's HTML pages ask for them."""
        query = ItemsQuery(
            self.collection,
            limit=max(1, min(int(limit), self.max_limit)),
            offset=int(offset),
            bbox=tuple(bbox[:4]) if bbox else None,  # type: ignore[arg-type]
            skip_geometry=bool(skip_geometry),
        )
        if filterq is not None:
            communes = self._province_communes()
            query.filter = cql2.Translator(self.collection, CRS84, communes).where(filterq)
        statement, params = features.page_sql(query)
        try:
            with connect(self.data) as conn, features.evaluating(query):
                rows = conn.execute(statement, params).fetchall()
        except InvalidFilter as exc:  # pygeoapi answers its own exceptions (400 here)
            raise ProviderInvalidQueryError(exc.description) from None
        items = [orjson.loads(r[0]) for r in rows[: query.limit]]
        return {
            "type": "FeatureCollection",
            "features": [] if resulttype == "hits" else items,
            "numberReturned": 0 if resulttype == "hits" else len(items),
        }

    def _province_communes(self) -> provinces.Provinces | None:
        """Each province's communes, when the collection takes a province filter."""
        if not provinces.offered(self.collection):
            return None
        with connect(self.data) as conn:
            return provinces.from_rows(conn.execute(PROVINCES_SQL).fetchall())

    def get(self, identifier: str, **kwargs: Any) -> dict[str, Any]:
        """One feature by id."""
        key = parse_id(self.collection, str(identifier))
        row = None
        if key is not None:
            with connect(self.data) as conn:
                row = conn.execute(features.item_sql(self.collection, CRS84), [key]).fetchone()
        if row is None:
            raise ProviderItemNotFoundError(f"no item {identifier!r} in {self.collection.id}")
        feature: dict[str, Any] = orjson.loads(row[0])
        return feature
