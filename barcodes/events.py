"""A scan event as a phone sends it, and the answer it gets back.

The model only checks the shape of an event (types, ranges, required fields); whether the scan
is allowed given the item's state is :mod:`barcodes.custody`'s job.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

# Above this many events one request is refused: a phone syncs in chunks.
MAX_BATCH = 5_000


class Point(BaseModel):
    """A GeoJSON Point in WGS 84 (longitude, latitude), e.g. ``[105.84, 21.59]``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["Point"]
    coordinates: tuple[float, float]

    @field_validator("coordinates")
    @classmethod
    def _in_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        lon, lat = value
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise ValueError(f"[{lon}, {lat}] is not a longitude, latitude pair")
        return value

    @property
    def lon(self) -> float:
        """Longitude, degrees east."""
        return self.coordinates[0]

    @property
    def lat(self) -> float:
        """Latitude, degrees north."""
        return self.coordinates[1]


# Fields only some event types use (the custody rules say which); kept in scan_events.details.
DETAIL_FIELDS = (
    "to_commune",
    "to_stand",
    "certificate_no",
    "fpl_number",
    "load_code",
    "vehicle_plate",
    "destination_kind",
    "destination",
)


class ScanEvent(BaseModel):
    """One scan of a tag.

    ``(device_id, client_event_id)`` identifies the event: sending it again (an offline batch
    replayed) records nothing new and gets the same answer.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    device_id: str = Field(
        description="the phone or scanner that made the scan", min_length=1, max_length=100
    )
    client_event_id: str = Field(
        description="the device's own id for this event", min_length=1, max_length=100
    )
    code: str = Field(
        description="the scanned code, e.g. SL-00000042-4", min_length=1, max_length=100
    )
    event_type: str = Field(
        description="what happened: dispatched, loaded, …", min_length=1, max_length=100
    )
    occurred_at: AwareDatetime = Field(description="when, with a time zone")
    location: Point = Field(description="where, a GeoJSON Point")
    quantity: int | None = Field(None, gt=0, le=10_000_000, description="seedlings")
    volume_m3: float | None = Field(None, gt=0, le=100, description="measured log volume")
    to_commune: str | None = Field(None, description="dispatch: receiving commune code")
    to_stand: str | None = Field(None, description="dispatch: receiving stand code")
    certificate_no: str | None = Field(None, max_length=100)
    fpl_number: str | None = Field(None, max_length=100, description="forest-product list no.")
    load_code: str | None = Field(None, max_length=100, description="transport load tag")
    vehicle_plate: str | None = Field(None, max_length=20)
    destination_kind: Literal["mill", "yard"] | None = None
    destination: str | None = Field(None, max_length=200, description="mill or yard name")
    note: str | None = Field(None, max_length=500)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL: refused here, by field, not as an SQL error.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("contains a NUL character, which is not allowed")
        return value

    @property
    def key(self) -> tuple[str, str]:
        """The idempotency key."""
        return (self.device_id, self.client_event_id)

    def details(self) -> dict[str, Any]:
        """The event-specific fields, as stored in ``scan_events.details``."""
        fields = (*DETAIL_FIELDS, "note")
        return {name: getattr(self, name) for name in fields if getattr(self, name) is not None}


def utc_text(moment: datetime) -> str:
    """A time as answered by the API: UTC, ISO 8601, ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
