"""Traceability documents over HTTP: the EUDR geolocation file, the bảng kê, EPCIS events.

- ``GET /api/trace/{code}/eudr``: the plots of origin as GeoJSON (``application/geo+json``);
  when the statement is larger than one file may be (25 MB), the manifest, whose files are
  ``?part=1`` … ``?part=N``.
- ``GET /api/trace/{code}/bangke?f=pdf|xlsx|json``: the forest-product list of a load.
- ``GET /api/epcis/events?since=…&until=…&code=…``: custody events as an EPCIS 2.0 JSON-LD
  document (``application/ld+json``), streamed; ``code`` may be repeated.
- ``GET /api/ledger?place=…&from=…&to=…``: the in/out ledger of a mill or yard (JSON); without
  ``place``, the places.

Any valid token may read them (as a trace). Refusals are raised: :mod:`gis_api.errors` gives
each rule its status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gis_api.auth import require_role
from gis_api.errors import InvalidParameter, NotFound
from gis_api.scans import READ_ROLES


def _json(body: Any, media_type: str = "application/json") -> Response:
    return Response(orjson.dumps(body), media_type=media_type)


async def get_eudr(request: Request) -> Response:
    """The EUDR geolocation file of the plots the code comes from (or its manifest)."""
    await require_role(request, *READ_ROLES)
    from barcodes.eudr import eudr_document, part_name
    from barcodes.origin import resolve

    part_text = request.query_params.get("part")
    async with request.app.state.pool.connection() as conn:
        document = await eudr_document(conn, await resolve(conn, [request.path_params["code"]]))
    count = len(document.parts)
    if part_text is None and count > 1:
        manifest = dict(document.manifest)
        manifest["files"] = [
            {**entry, "href": f"{request.url.path}?part={i + 1}"}
            for i, entry in enumerate(manifest["files"])
        ]
        return _json(manifest)
    try:
        part = int(part_text) if part_text is not None else 1
    except ValueError:
        raise InvalidParameter(f"part={part_text!r}: a number from 1 to {count}") from None
    if not 1 <= part <= count:
        raise NotFound(f"part={part}: this statement has {count} file(s)")
    name = part_name(document.name, part - 1, count)
    return Response(
        document.parts[part - 1], media_type="application/geo+json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def get_bangke(request: Request) -> Response:
    """The forest-product list of a transport load as PDF, XLSX or JSON."""
    await require_role(request, *READ_ROLES)
    fmt = request.query_params.get("f", "pdf")
    if fmt not in ("pdf", "xlsx", "json"):
        raise InvalidParameter(f"f={fmt!r}: use pdf, xlsx or json")
    from barcodes import bangke as bk

    async with request.app.state.pool.connection() as conn:
        document = await bk.bangke(conn, request.path_params["code"])
    if fmt == "json":
        return _json({
            "load_code": document.load_code, "fpl_number": document.fpl_number,
            "vehicle_plate": document.vehicle_plate, "destination": document.destination,
            "loaded_on": document.loaded_on.isoformat() if document.loaded_on else None,
            "rows": [
                {**vars(r), "volume_m3": float(r.volume_m3)} for r in document.rows
            ],
            "log_count": len(document.rows), "volume_m3": float(document.volume_m3),
        })
    import asyncio

    if fmt == "pdf":
        blob, media = await asyncio.to_thread(bk.to_pdf, document), "application/pdf"
    else:
        blob = await asyncio.to_thread(bk.to_xlsx, document)
        media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    filename = f"bangke-{document.load_code}.{fmt}"
    return Response(blob, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _moment(request: Request, name: str) -> datetime | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidParameter(f"{name}={text!r}: a date or time such as 2025-09-01") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def get_epcis(request: Request) -> Response:
    """Custody events as an EPCIS 2.0 document, streamed from a server-side cursor."""
    await require_role(request, *READ_ROLES)
    from barcodes.epcis import Identifiers, item_keys, stream_document

    since, until = _moment(request, "since"), _moment(request, "until")
    codes = request.query_params.getlist("code")
    if since is None and not codes:
        raise InvalidParameter("give since=DATE or at least one code=CODE")
    ids = Identifiers(request.app.state.settings.gs1_company_prefix)
    pool = request.app.state.pool
    keys = None
    if codes:  # a bad code is refused before the first byte is sent
        async with pool.connection() as conn:
            keys = await item_keys(conn, codes)

    async def body() -> AsyncIterator[bytes]:
        async with pool.connection() as conn:
            async for chunk in stream_document(conn, ids, since=since, until=until, keys=keys):
                yield chunk

    return StreamingResponse(body(), media_type="application/ld+json")


async def get_ledger(request: Request) -> Response:
    """The in/out ledger of a mill or yard, day by day, with running balances."""
    await require_role(request, *READ_ROLES)
    from barcodes import ledger as lg

    place = request.query_params.get("place")
    start, end = _moment(request, "from"), _moment(request, "to")
    async with request.app.state.pool.connection() as conn:
        if place is None:
            return _json({"places": await lg.places(conn)})
        book = await lg.ledger(conn, place, start.date() if start else None,
                               end.date() if end else None)
    return _json({
        "place": book.place,
        "from": book.start.isoformat() if book.start else None,
        "to": book.end.isoformat() if book.end else None,
        "opening": {"logs": book.opening_logs, "volume_m3": float(book.opening_m3)},
        "days": [
            {**vars(d), "day": d.day.isoformat(),
             **{k: float(v) for k, v in vars(d).items() if k.endswith("_m3")}}
            for d in book.days
        ],
    })


def openapi_paths() -> dict[str, Any]:
    """OpenAPI 3.0 descriptions of the traceability routes (every one needs a bearer token)."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/smarttreesException"}}}

    def errors(*statuses: int) -> dict[str, Any]:
        return {str(s): {"description": "refused (the description names the rule)",
                         "content": error} for s in statuses}

    def text(name: str, description: str, where: str = "query",
             required: bool = False) -> dict[str, Any]:
        return {"name": name, "in": where, "required": required or where == "path",
                "description": description,
                "schema": {"type": "string", "minLength": 1, "maxLength": 200}}

    code = text("code", "a transport load (TR-), log (TL-), seedling lot (SL-) or stand (ST-)",
                "path")
    any_object = {"schema": {"type": "object"}}
    binary = {"schema": {"type": "string", "format": "binary"}}

    def get(operation_id: str, summary: str, parameters: list[dict[str, Any]],
            content: dict[str, Any], statuses: tuple[int, ...]) -> dict[str, Any]:
        return {"get": {"operationId": operation_id, "summary": summary, "tags": ["trace"],
                        "security": [{"bearerAuth": []}], "parameters": parameters,
                        "responses": {"200": {"description": "OK", "content": content},
                                      **errors(*statuses)}}}

    return {
        "/api/trace/{code}/eudr": get(
            "getEudrGeolocation",
            "The EUDR geolocation GeoJSON of the plots of origin (the manifest when split)",
            [code, {"name": "part", "in": "query", "required": False,
                    "description": "which file of a split statement, from 1",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 10_000}}],
            {"application/geo+json": any_object, "application/json": any_object},
            (400, 401, 403, 404, 422)),
        "/api/trace/{code}/bangke": get(
            "getBangKe", "The forest-product list (bảng kê lâm sản) of a transport load",
            [code, {"name": "f", "in": "query", "required": False, "description": "format",
                    "schema": {"type": "string", "enum": ["pdf", "xlsx", "json"],
                               "default": "pdf"}}],
            {"application/pdf": binary, "application/json": any_object,
             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": binary},
            (400, 401, 403, 404, 422)),
        "/api/epcis/events": get(
            "getEpcisEvents", "Custody events as an EPCIS 2.0 JSON-LD document, streamed",
            [text("since", "from this date or time (ISO 8601), inclusive"),
             text("until", "until this date or time (ISO 8601), exclusive"),
             {"name": "code", "in": "query", "required": False, "explode": True,
              "description": "items whose events to export (repeatable)",
              "schema": {"type": "array", "items": {"type": "string", "maxLength": 200}}}],
            {"application/ld+json": any_object}, (400, 401, 403, 404, 422)),
        "/api/ledger": get(
            "getTimberLedger", "The in/out ledger of a sawmill or timber yard, day by day",
            [text("place", "the mill or yard, as its received scans name it; none: the list"),
             text("from", "first day (ISO 8601), inclusive"),
             text("to", "last day (ISO 8601), exclusive")],
            {"application/json": any_object}, (400, 401, 403, 404, 409)),
    }


def routes() -> list[BaseRoute]:
    """The traceability export routes."""
    return [
        Route("/api/trace/{code}/eudr", get_eudr, methods=["GET"], name="trace_eudr"),
        Route("/api/trace/{code}/bangke", get_bangke, methods=["GET"], name="trace_bangke"),
        Route("/api/epcis/events", get_epcis, methods=["GET"], name="epcis_events"),
        Route("/api/ledger", get_ledger, methods=["GET"], name="timber_ledger"),
    ]
