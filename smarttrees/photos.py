"""One photo store for the whole project: public hazard reports and the field app's tree checks.

A photo is checked with Pillow (JPEG, PNG or WebP only, capped in size by the caller's
setting ``care_report_photo_mb``), stored in ``restricted.photos`` with its bytes unchanged (the
EXIF block stays in the file) and, when the camera wrote one, its EXIF GPS position and time in
columns. A photo is named by a random id, never by the file name it was sent with (a name may be
a person's), and known by its SHA-256: the same photo sent twice, as a phone resends after a cut
in the middle of an upload, is stored once and answered with the same id.

Reading a photo back is for authorised users only; the HTTP routes (``gis_api.photos``) check
the role, this module does not.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from smarttrees.errors import SmartTreesError

PHOTO_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
SOURCES = ("report", "field")
PHOTO_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MIB = 1024 * 1024

_GPS_IFD = 0x8825
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003


class PhotoError(SmartTreesError):
    """A photo refused: ``rule`` (``bad_image``, ``photo_too_large``, ``unknown_photo``)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


@dataclass(frozen=True)
class PhotoInfo:
    """What a photo's bytes say about it: media type, size in pixels, EXIF position and time."""

    media_type: str
    width: int
    height: int
    lon: float | None
    lat: float | None
    taken_at: str | None


def _degrees(value: Any, ref: Any, negative: str) -> float | None:
    """Degrees from EXIF's (degrees, minutes, seconds) rationals and N/S or E/W reference."""
    try:
        d, m, s = (float(v) for v in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    degrees = d + m / 60 + s / 3600
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    return -degrees if str(ref).strip().upper() == negative else degrees


def _exif(image: Any) -> tuple[float | None, float | None, str | None]:
    exif = image.getexif()
    gps = exif.get_ifd(_GPS_IFD)
    lat = _degrees(gps.get(2), gps.get(1), "S") if gps.get(2) else None
    lon = _degrees(gps.get(4), gps.get(3), "W") if gps.get(4) else None
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        lat = lon = None
    taken = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL)
    return lon, lat, str(taken)[:32] if taken else None


def inspect_photo(photo: bytes, field: str = "photo") -> PhotoInfo:
    """Check that ``photo`` is a JPEG, PNG or WebP image Pillow reads, and read its EXIF.

    Raises
    ------
    PhotoError
        ``bad_image`` naming ``field``: not an image, a damaged one, or another format.

    """
    from PIL import Image, UnidentifiedImageError

    try:
        # Pillow's verify() must come straight after open (reading the EXIF first makes some
        # PNGs raise RuntimeError), so the photo is opened twice: checked, then read.
        with Image.open(io.BytesIO(photo)) as image:
            image.verify()
        with Image.open(io.BytesIO(photo)) as image:
            kind = image.format or ""
            width, height = image.size
            lon, lat, taken = _exif(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, KeyError, RuntimeError):
        raise PhotoError("bad_image", f"{field}: not a JPEG, PNG or WebP image") from None
    if kind not in PHOTO_TYPES:
        raise PhotoError("bad_image", f"{field}: a {kind} image; send JPEG, PNG or WebP")
    return PhotoInfo(PHOTO_TYPES[kind], width, height, lon, lat, taken)


def check_size(size: int, cap_mb: float, field: str = "photo") -> None:
    """Refuse a photo of more than ``cap_mb`` MiB (rule ``photo_too_large``, the HTTP 413)."""
    if size > cap_mb * MIB:
        raise PhotoError("photo_too_large", f"{field}: {size / MIB:.1f} MiB is larger than the "
                         f"{cap_mb:g} MiB a photo may be; send a smaller photo (a phone's "
                         "'medium' size is enough)")


async def store_photo(conn: AsyncConnection, photo: bytes, source: str,
                      uploaded_by: str | None) -> dict[str, Any]:
    """Store a checked photo (or find it stored already); its id and what was read from it.

    Parameters
    ----------
    conn
        An async connection; the caller's transaction, if any, holds the insert.
    photo
        The bytes, already capped by the caller (:func:`check_size`).
    source
        ``report`` (a public hazard report) or ``field`` (the field app and editors).
    uploaded_by
        The account's username, or ``None`` for the public.

    Returns
    -------
    dict
        ``id``, ``media_type``, ``size_bytes``, ``width``, ``height``, ``lon``, ``lat``,
        ``taken_at`` and ``stored`` (false when the same photo was already there).

    """
    if source not in SOURCES:
        raise ValueError(f"source {source!r}: one of {SOURCES}")
    info = inspect_photo(photo)
    digest = hashlib.sha256(photo).hexdigest()
    cur = await conn.execute(
        "INSERT INTO restricted.photos (sha256, media_type, size_bytes, width, height, gps_lon, "
        "gps_lat, taken_at, source, uploaded_by, data) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (sha256) DO NOTHING RETURNING id",
        [digest, info.media_type, len(photo), info.width, info.height, info.lon, info.lat,
         info.taken_at, source, uploaded_by, photo])
    row = await cur.fetchone()
    stored = row is not None
    if row is None:
        cur = await conn.execute("SELECT id FROM restricted.photos WHERE sha256 = %s", [digest])
        row = await cur.fetchone()
        assert row is not None, "the conflicting photo is there"
    return {"id": str(row[0]), "media_type": info.media_type, "size_bytes": len(photo),
            "width": info.width, "height": info.height, "lon": info.lon, "lat": info.lat,
            "taken_at": info.taken_at, "stored": stored}


async def read_photo(conn: AsyncConnection, photo_id: str) -> tuple[bytes, str]:
    """A stored photo's bytes and media type; ``unknown_photo`` when there is none."""
    if not PHOTO_ID.match(photo_id):
        raise PhotoError("unknown_photo", f"photo {photo_id!r}: not a photo id")
    cur = await conn.execute("SELECT data, media_type FROM restricted.photos WHERE id = %s",
                             [photo_id])
    row = await cur.fetchone()
    if row is None:
        raise PhotoError("unknown_photo", f"photo {photo_id}: no such photo")
    return bytes(row[0]), str(row[1])


async def missing_photos(conn: AsyncConnection, photo_ids: list[str]) -> list[str]:
    """Which of ``photo_ids`` (strings that look like photo ids) are not in the store."""
    wanted = sorted({p for p in photo_ids if PHOTO_ID.match(p)})
    if not wanted:
        return []
    cur = await conn.execute("SELECT id::text FROM restricted.photos WHERE id = ANY(%s::uuid[])",
                             [wanted])
    found = {r[0] for r in await cur.fetchall()}
    return [p for p in wanted if p not in found]
