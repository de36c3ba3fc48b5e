"""Scan and label endpoints: record scans, trace an item, print a label, decode a photo.

- ``POST /api/scans``: one event object, a JSON list of events, or ``{"events": [...]}``; all
  or nothing; an event already recorded (same device and client event id) is answered as before.
- ``GET /api/trace/{code}``: the item's events in order (JSON), or ``?f=geojson`` for a Feature
  whose LineString runs from the item's origin through every scan location.
- ``GET /api/labels/{code}.svg`` / ``.png``: one label (GS1-128 when a GS1 company prefix is set,
  unless ``?symbology=code128``).
- ``POST /api/scans/decode``: an image as the request body (``Content-Type: image/jpeg`` …);
  answers every code found.

Scans, labels and decoding need a field or admin token; a trace needs any valid token.
Refusals are raised, never answered here: :mod:`gis_api.errors` gives each its status (a
refused scan lists its problems, each with its rule).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from barcodes.codes import parse
from barcodes.custody import Problem, ScanRejected
from barcodes.events import MAX_BATCH, ScanEvent
from gis_api import guards
from gis_api.auth import require_role
from gis_api.errors import (
    InvalidParameter,
    NoBarcode,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
)

# A phone photo; the photo route has its own cap (gis_api.guards leaves it alone). Every other
# body, a batch of MAX_BATCH events included, is capped by settings.max_body_mb (gis_api.guards).
MAX_IMAGE_BYTES = 8 * 1024 * 1024
SCAN_ROLES = ("field",)  # admins hold every role
READ_ROLES = ("viewer", "editor", "field")


def _json(body: Any, status: int = 200, media_type: str = "application/json") -> Response:
    return Response(orjson.dumps(body), status, media_type=media_type)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body; a 413 once it passes ``limit`` bytes (declared, or as it streams)."""
    declared = guards.declared_length(request.scope)
    if declared is not None and declared > limit:
        raise guards.too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise guards.too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _events(payload: Any) -> tuple[list[ScanEvent], bool, list[Problem]]:
    """Validate the body: (events, was it a batch, problems)."""
    batch = isinstance(payload, list) or (isinstance(payload, dict) and "events" in payload)
    items = (
        payload
        if isinstance(payload, list)
        else (payload.get("events") if isinstance(payload, dict) and batch else [payload])
    )
    if not isinstance(items, list):
        return [], batch, [Problem(0, None, None, "invalid_event", "'events' must be a list")]
    events: list[ScanEvent] = []
    problems: list[Problem] = []
    for i, item in enumerate(items):
        try:
            events.append(ScanEvent.model_validate(item))
        except ValidationError as exc:
            client_id = item.get("client_event_id") if isinstance(item, dict) else None
            code = item.get("code") if isinstance(item, dict) else None
            for error in exc.errors():
                where = ".".join(str(part) for part in error["loc"]) or "event"
                problems.append(
                    Problem(i, client_id, code, "invalid_event", f"{where}: {error['msg']}")
                )
    return events, batch, problems


async def post_scans(request: Request) -> Response:
    """Record one scan event or a batch (offline sync), all or nothing."""
    who = await require_role(request, *SCAN_ROLES)
    body = await request.body()  # capped by gis_api.guards
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameter(f"the body is not valid JSON: {exc}") from None
    events, batch, problems = _events(payload)
    if problems:
        raise ScanRejected(problems)
    if not events:
        raise Unprocessable("the batch holds no events")
    if len(events) > MAX_BATCH:
        raise PayloadTooLarge(f"{len(events)} events: send at most {MAX_BATCH:,} per request")
    from barcodes.store import record_events

    async with request.app.state.pool.connection() as conn:
        answers = await record_events(conn, events, actor=who.username)  # or ScanRejected
    return _json({"events": answers} if batch else answers[0])


async def get_trace(request: Request) -> Response:
    """Every event of an item in order; ``?f=geojson`` for the route as a GeoJSON Feature."""
    await require_role(request, *READ_ROLES)
    text = request.path_params["code"]
    fmt = request.query_params.get("f", "json")
    if fmt not in ("json", "geojson"):
        raise InvalidParameter(f"f={fmt!r}: use json or geojson")
    code = parse(text)  # a CodeError (bad_code) is answered as on every route taking a code
    from barcodes.trace import trace, trace_geojson

    async with request.app.state.pool.connection() as conn:
        result = await trace(conn, code)
    if result is None:
        raise NotFound(f"no tag {code} has been issued")
    if fmt == "geojson":
        return _json(trace_geojson(result), media_type="application/geo+json")
    return _json(result)


async def get_label(request: Request) -> Response:
    """One label as SVG or PNG."""
    await require_role(request, *SCAN_ROLES)
    name: str = request.path_params["filename"]
    stem, _, suffix = name.rpartition(".")
    if suffix not in ("svg", "png") or not stem:
        raise NotFound(f"{name}: ask for CODE.svg or CODE.png")
    symbology = request.query_params.get("symbology", "auto")
    if symbology not in ("auto", "code128", "gs1"):
        raise InvalidParameter(f"symbology={symbology!r}: use auto, code128 or gs1")
    code = parse(stem)
    settings = request.app.state.settings
    prefix = settings.gs1_company_prefix if symbology != "code128" else None
    if symbology == "gs1" and not prefix:
        raise InvalidParameter("GS1-128 needs SMARTTREES_GS1_COMPANY_PREFIX to be set")
    from barcodes.labels import render_label
    from barcodes.tags import label_info

    async with request.app.state.pool.connection() as conn:
        info = await label_info(conn, str(code), settings.server_url)
    if info is None:
        raise NotFound(f"no tag {code} has been issued")
    data = await asyncio.to_thread(render_label, info, suffix, prefix)  # type: ignore[arg-type]
    media = "image/svg+xml" if suffix == "svg" else "image/png"
    return Response(data, media_type=media, headers={"Cache-Control": "no-store"})


async def post_decode(request: Request) -> Response:
    """Decode every barcode and QR code in an uploaded photo (the request body)."""
    await require_role(request, *SCAN_ROLES)
    media = request.headers.get("content-type", "").split(";")[0].strip()
    if media and not (media.startswith("image/") or media == "application/octet-stream"):
        raise UnsupportedMediaType(f"send an image, not {media}")
    body = await _read_body(request, MAX_IMAGE_BYTES)
    if not body:
        raise Unprocessable("the request body holds no image")
    from barcodes.decode import decode_image

    found = await asyncio.to_thread(decode_image, body)  # an ImageError is a bad_image
    if not found:
        raise NoBarcode("no barcode or QR code was found in the image")
    return _json({"codes": [d.as_dict() for d in found]})


def routes() -> list[BaseRoute]:
    """The scan, trace, label and decode routes (mounted before the OGC APIs)."""
    return [
        Route("/api/scans", post_scans, methods=["POST"], name="post_scans"),
        Route("/api/scans/decode", post_decode, methods=["POST"], name="decode_image"),
        Route("/api/trace/{code}", get_trace, methods=["GET"], name="trace"),
        Route("/api/labels/{filename}", get_label, methods=["GET"], name="label"),
    ]
