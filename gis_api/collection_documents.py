"""Models of the collection documents: ``/collections`` and ``/collections/{id}``.

pygeoapi writes these documents; the server amends them (a tiled collection links to its
vector tilesets, :mod:`gis_api.ogc`). The models state what a client may count on in both,
and the tests validate the real answers against them. Members pygeoapi adds beyond these
(``keywords``, ``storageCrs``…) are allowed.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gis_api.links import Link

TILESETS_VECTOR_REL = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"


class SpatialExtent(BaseModel):
    """The bounding boxes of a collection (the first one covers all of it)."""

    model_config = ConfigDict(extra="allow")

    bbox: list[list[float]] = Field(min_length=1)


class Extent(BaseModel):
    """Where (and when) a collection's features lie."""

    model_config = ConfigDict(extra="allow")

    spatial: SpatialExtent


class CollectionDocument(BaseModel):
    """One collection: its id, title, extent and links (items, queryables, tilesets…)."""

    model_config = ConfigDict(extra="allow")

    id: str
    title: str
    description: str | None = None
    links: list[Link] = Field(min_length=1)
    extent: Extent | None = None
    itemType: str | None = None
    crs: list[str] | None = None

    def link(self, rel: str) -> Link | None:
        """The first link of relation ``rel``, if any."""
        return next((link for link in self.links if link.rel == rel), None)


class CollectionsDocument(BaseModel):
    """The collections the server publishes."""

    model_config = ConfigDict(extra="allow")

    links: list[Link]
    collections: list[CollectionDocument]
