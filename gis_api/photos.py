"""The photo store over HTTP (:mod:`smarttrees.photos`), for the field app and editors.

- ``POST /api/photos`` (field or editor token): the photo's bytes as the body, with
  ``Content-Type: image/jpeg``, ``image/png`` or ``image/webp``. Capped here, not by
  :mod:`gis_api.guards`: more than ``settings.care_report_photo_mb`` is a 413 that says so, before
  the rest is read. 201 ``{"id", "url", "media_type", "size_bytes", "width", "height", "lon",
  "lat", "taken_at"}`` (``lon``/``lat``: the EXIF GPS position, when the camera wrote one); the
  same photo sent again answers 200 with the same id, so a resend after a cut stores nothing new.
  An inspection then names the photo by its id (``photos: [id, …]``).
- ``GET /api/photos/{id}`` (field or editor token): the photo, never cached by shared caches.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gis_api import guards
from gis_api.auth import require_role
from gis_api.care import json_response
from gis_api.errors import PayloadTooLarge, UnsupportedMediaType
from smarttrees import photos
from smarttrees.settings import Settings

ROLES = ("field", "editor")  # admins hold every role


def _too_large(cap_mb: float) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"photo: larger than the {cap_mb:g} MiB a photo may be; send a smaller photo "
        "(a phone's 'medium' size is enough)")


async def _body(request: Request, cap_mb: float) -> bytes:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in photos.PHOTO_TYPES.values():
        raise UnsupportedMediaType(
            "send the photo's bytes as the body with Content-Type image/jpeg, image/png or "
            "image/webp")
    limit = int(cap_mb * photos.MIB)
    declared = guards.declared_length(request.scope)
    if declared is not None and declared > limit:
        raise _too_large(cap_mb)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(cap_mb)
        chunks.append(chunk)
    return b"".join(chunks)


async def post_photo(request: Request) -> Response:
    """Store one photo (or find it stored); its id."""
    who = await require_role(request, *ROLES)
    settings: Settings = request.app.state.settings
    data = await _body(request, settings.care_report_photo_mb)
    if not data:
        raise photos.PhotoError("bad_image", "photo: the body is empty")
    photos.inspect_photo(data)  # refused before a connection is taken
    async with request.app.state.pool.connection() as conn:
        stored = await photos.store_photo(conn, data, "field", who.username)
    stored["url"] = str(request.url_for("photo", photo_id=stored["id"]).path)
    return json_response(stored, 201 if stored.pop("stored") else 200)


async def get_photo(request: Request) -> Response:
    """One stored photo, for authorised users only."""
    await require_role(request, *ROLES)
    async with request.app.state.pool.connection() as conn:
        data, media = await photos.read_photo(conn, request.path_params["photo_id"])
    return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=86400"})


def routes() -> list[BaseRoute]:
    """The photo routes."""
    return [
        Route("/api/photos", post_photo, methods=["POST"], name="photos"),
        Route("/api/photos/{photo_id}", get_photo, methods=["GET"], name="photo"),
    ]


def openapi_paths() -> dict[str, Any]:
    """OpenAPI 3.0 descriptions of the photo routes (field and editor tokens)."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/smarttreesException"}}}

    def errors(*statuses: int) -> dict[str, Any]:
        return {str(s): {"description": "refused (the description names the rule)",
                         "content": error} for s in statuses}

    image = {"schema": {"type": "string", "format": "binary"}}
    stored = {"application/json": {"schema": {"type": "object"}}}
    return {
        "/api/photos": {"post": {
            "operationId": "postPhoto", "summary": "Store a photo (JPEG, PNG or WebP); its id",
            "tags": ["photos"], "security": [{"bearerAuth": []}],
            "requestBody": {"required": True,
                            "content": {media: image for media in photos.PHOTO_TYPES.values()}},
            "responses": {"201": {"description": "stored", "content": stored},
                          "200": {"description": "already stored", "content": stored},
                          **errors(400, 401, 403, 413, 415, 422)},
        }},
        "/api/photos/{photo_id}": {"get": {
            "operationId": "getPhoto", "summary": "A stored photo", "tags": ["photos"],
            "security": [{"bearerAuth": []}],
            "parameters": [{"name": "photo_id", "in": "path", "required": True,
                            "description": "the id POST /api/photos gave",
                            "schema": {"type": "string", "format": "uuid"}}],
            "responses": {"200": {"description": "the photo",
                                  "content": {m: image for m in photos.PHOTO_TYPES.values()}},
                          **errors(401, 403, 404)},
        }},
    }

