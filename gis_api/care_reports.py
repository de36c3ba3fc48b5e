"""Public hazard reports: the page anyone can use, its POST, and the staff's triage routes.

- ``/report`` (no account): a page with a map (MapLibre, vendored), a tree code field filled
  from ``?tree=`` (the URL a tag's QR code opens works too), the kind of hazard, a photo, a
  note and an optional contact. ``/report/static/...``: its script and style.
- ``POST /api/care/reports`` (no account): ``multipart/form-data`` with ``hazard``, ``lon`` and
  ``lat`` or ``tree``, ``note``, ``contact`` and a ``photo`` file. Capped here, not by
  :mod:`gis_api.guards`: a photo over ``settings.care_report_photo_mb`` is a 413 that says so;
  rate-limited per sender (429). 201 ``{"report_id", "status", "received_at"}``.
- ``GET /api/care/reports?status=`` (editor): reports to triage, without what reporters typed.
- ``GET /api/care/reports/{id}`` (editor): one report with its note and contact (the reading
  is logged in ``restricted.access_log``); ``/photo``: its photo.
- ``POST /api/care/reports/{id}/triage`` (editor): ``{"accept", "work_type", "priority",
  "note"}``; accepted, the report becomes a work order.
"""

from __future__ import annotations

import html
from collections.abc import AsyncGenerator
from importlib import resources

import orjson
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gis_api import guards
from gis_api.auth import require_role
from gis_api.care import json_response, query_list, read_json
from gis_api.errors import InvalidParameter, NotFound, PayloadTooLarge, UnsupportedMediaType
from gis_api.links import base_url
from smarttrees.care.reports import (
    HAZARDS,
    list_reports,
    open_report,
    parse_report,
    parse_triage,
    report_photo,
    submit_report,
    triage,
)
from smarttrees.care.reports import (
    STATUSES as REPORT_STATUSES,
)
from smarttrees.settings import Settings

MIB = 1024 * 1024
FORM_OVERHEAD = MIB  # the text fields and multipart boundaries beside the photo
FIELDS = ("hazard", "lon", "lat", "tree", "note", "contact")


async def report_page(request: Request) -> Response:
    """The public report page."""
    settings: Settings = request.app.state.settings
    template = resources.files("gis_api").joinpath("static/report/index.html").read_text(
        encoding="utf-8")
    config = orjson.dumps({
        "base": base_url(request, settings), "basemapUrl": settings.basemap_url,
        "photoMb": settings.care_report_photo_mb,
        "hazards": {k: {"en": en, "vi": vi} for k, (en, vi) in HAZARDS.items()},
    }).decode()
    page = template.replace("__CONFIG__", config.replace("</", "<\\/"))
    page = page.replace("__BASE__", html.escape(base_url(request, settings)))
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


def _too_large(size_mb: float | None, photo_mb: float) -> PayloadTooLarge:
    sent = f" ({size_mb:.1f} MiB)" if size_mb is not None else ""
    return PayloadTooLarge(
        f"photo: the report{sent} is larger than this server accepts; a photo may be at most "
        f"{photo_mb:g} MiB: send a smaller photo (a phone's 'medium' size is enough)")


async def _capped_stream(
    request: Request, limit: int, photo_mb: float
) -> AsyncGenerator[bytes, None]:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(None, photo_mb)
        yield chunk


async def _form(request: Request, photo_mb: float) -> tuple[dict[str, str], bytes | None]:
    media = request.headers.get("content-type", "")
    if not media.startswith("multipart/form-data"):
        raise UnsupportedMediaType("send the report as multipart/form-data (an HTML form)")
    limit = int(photo_mb * MIB) + FORM_OVERHEAD
    declared = guards.declared_length(request.scope)
    if declared is not None and declared > limit:
        raise _too_large(declared / MIB, photo_mb)
    parser = MultiPartParser(request.headers, _capped_stream(request, limit, photo_mb),
                             max_files=1, max_fields=len(FIELDS), max_part_size=64 * 1024)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidParameter(f"the form cannot be read: {exc.message}") from None
    fields: dict[str, str] = {}
    photo: bytes | None = None
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name != "photo":
                raise InvalidParameter(f"{name}: only the photo may be a file")
            data = await value.read()
            await value.close()
            if len(data) > photo_mb * MIB:
                raise _too_large(len(data) / MIB, photo_mb)
            photo = data or None
        elif name in FIELDS:
            fields[name] = value
        else:
            raise InvalidParameter(f"{name}: not a field of a report ({', '.join(FIELDS)}, photo)")
    return fields, photo


async def post_report(request: Request) -> Response:
    """Receive a public hazard report (no account)."""
    settings: Settings = request.app.state.settings
    fields, photo = await _form(request, settings.care_report_photo_mb)
    report = parse_report(fields)
    sender = request.client.host if request.client else "unknown"
    async with request.app.state.pool.connection() as conn:
        answer = await submit_report(conn, report, photo, sender, settings.care_reports_per_hour)
    return json_response(answer, 201)


def _report_id(request: Request) -> int:
    return int(request.path_params["report_id"])


async def get_reports(request: Request) -> Response:
    """Reports to triage (no note, contact or photo)."""
    await require_role(request, "editor")
    statuses = query_list(request, "status")
    unknown = [s for s in statuses if s not in REPORT_STATUSES]
    if unknown:
        raise InvalidParameter(f"status: {unknown[0]!r}; use one of {', '.join(REPORT_STATUSES)}")
    async with request.app.state.pool.connection() as conn:
        reports = await list_reports(conn, statuses)
    return json_response({"reports": reports})


async def get_report(request: Request) -> Response:
    """One report with what its reporter typed (the reading is logged)."""
    who = await require_role(request, "editor")
    async with request.app.state.pool.connection() as conn:
        return json_response(await open_report(conn, _report_id(request), who))


async def get_report_photo(request: Request) -> Response:
    """A report's photo."""
    await require_role(request, "editor")
    async with request.app.state.pool.connection() as conn:
        found = await report_photo(conn, _report_id(request))
    if found is None:
        raise NotFound(f"report {_report_id(request)} has no photo")
    return Response(found[0], media_type=found[1], headers={"Cache-Control": "no-store"})


async def post_triage(request: Request) -> Response:
    """Accept (a work order) or reject a new report."""
    who = await require_role(request, "editor")
    decision = parse_triage(await read_json(request))
    async with request.app.state.pool.connection() as conn:
        order_id = await triage(conn, _report_id(request), decision, who)
    return json_response({"report_id": _report_id(request),
                          "status": "accepted" if decision.accept else "rejected",
                          "work_order_id": order_id})


def routes() -> list[BaseRoute]:
    """The report page and the report routes (mounted before the OGC APIs)."""
    static = str(resources.files("gis_api").joinpath("static/report"))
    return [
        Route("/report", report_page, methods=["GET"], name="report_page"),
        Mount("/report/static", app=StaticFiles(directory=static), name="report_static"),
        Route("/api/care/reports", post_report, methods=["POST"], name="care_report_submit"),
        Route("/api/care/reports", get_reports, methods=["GET"], name="care_reports"),
        Route("/api/care/reports/{report_id:int}", get_report, methods=["GET"],
              name="care_report"),
        Route("/api/care/reports/{report_id:int}/photo", get_report_photo, methods=["GET"],
              name="care_report_photo"),
        Route("/api/care/reports/{report_id:int}/triage", post_triage, methods=["POST"],
              name="care_report_triage"),
    ]
