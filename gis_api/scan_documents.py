"""Models of the scan API's answers: recorded scans and traces (``/api/scans``, ``/api/trace``).

The answers are built in :mod:`barcodes.store` and :mod:`barcodes.trace`; these models state
what a client may count on, and the tests validate real answers against them. Refused scans
answer with :class:`gis_api.errors.ScanRejectedDocument`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")


Position = list[float]  # longitude, latitude (EPSG:4326)


class ScanAnswer(_Document):
    """One recorded scan event: the same answer whether it was new or replayed."""

    event_id: int
    device_id: str
    client_event_id: str
    code: str
    item_type: str
    event_type: str
    occurred_at: str
    status: str | None


class ScanBatchAnswer(_Document):
    """The answer to a batch of scans, in the order they were sent."""

    events: list[ScanAnswer]


class TraceEvent(_Document):
    """One custody event of a traced item."""

    event_id: int
    event_type: str
    occurred_at: str
    device_id: str | None
    quantity: int | None
    volume_m3: float | None
    status: str | None
    details: dict[str, Any]
    location: Position | None = Field(min_length=2, max_length=2)


class Trace(_Document):
    """``/api/trace/{code}``: an item, where its story starts, and every event in order."""

    code: str
    item_type: str
    item: dict[str, Any]
    origin: Position | None = Field(min_length=2, max_length=2)
    events: list[TraceEvent]


class TraceGeometry(_Document):
    """The path of a traced item: a line through its positions, or its one position."""

    type: Literal["Point", "LineString"]
    coordinates: Position | list[Position]


class TraceFeatureEvent(_Document):
    """An event as the GeoJSON trace lists it."""

    event_type: str
    occurred_at: str
    quantity: int | None
    status: str | None


class TraceProperties(_Document):
    """The properties of the GeoJSON trace."""

    code: str
    item_type: str
    status: str | None
    events: list[TraceFeatureEvent]


class TraceFeature(_Document):
    """``/api/trace/{code}?f=geojson``: the trace as one GeoJSON Feature."""

    type: Literal["Feature"]
    id: str
    geometry: TraceGeometry | None
    properties: TraceProperties
