"""The field app (``/field/``): a phone page that scans tags and records custody events offline.

The page, its script and its service worker are static files in ``gis_api/static/field``; the
camera decoder (zxing-wasm) is vendored under ``gis_api/static/vendor``. Everything the page
links is relative, so the app works under any path prefix.

Routes
------
- ``/field``: redirects to ``/field/`` (the service worker's scope is the folder).
- ``/field/``: the page.
- ``/field/sw.js``: the service worker, which caches the app shell and the message catalogues
  (``static/i18n/<code>.json``, the ones the web map and the dashboard use).
- ``/field/manifest.webmanifest`` and ``/field/icons/{192,512}.png``: what makes it installable.
- ``/field/rules.json``: the code and custody rules as data (:func:`barcodes.rules.rules_document`),
  which the page checks codes and events with before queueing them.
- ``/field/care.json``: the tree check's vocabulary and ranges as data (conditions, defects, the
  TRAQ ratings, DBH and height bounds from :class:`smarttrees.care.inspections.Inspection`, the
  photo cap, the storm damage kinds), which the page checks a tree check with before queueing it.
- ``/field/me``: who a field token belongs to (the sign-in check).
- ``/field/tiles/plan``: the vector tiles of an area the phone keeps for offline use, their count
  and size before the download (:mod:`gis_api.field_tiles`).
- ``/field/team``: the account's team, its area and the items issued to it, which the phone
  keeps for scans without signal (:mod:`gis_api.field_team`).
- ``/field/static/...``: the page's script and style, and the vendored decoder.
"""

from __future__ import annotations

import io
from functools import lru_cache
from importlib import resources
from typing import Any

import orjson
from PIL import Image, ImageDraw
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from barcodes.rules import rules_document
from gis_api import field_team, field_tiles
from gis_api.auth import require_role
from gis_api.errors import NotFound
from gis_api.i18n import languages

ICON_SIZES = (192, 512)
# Dark green on white: legible in sunlight, and the colours of the labels.
INK = "#0b3d1f"
PAPER = "#ffffff"

MANIFEST: dict[str, Any] = {
    "name": "SmartTrees – Hiện trường",
    "short_name": "SmartTrees",
    "description": "Quét tem, ghi sự kiện chuỗi hành trình, làm việc không cần mạng",
    "lang": "vi",
    "start_url": "./",
    "scope": "./",
    "display": "standalone",
    "orientation": "portrait",
    "background_color": PAPER,
    "theme_color": INK,
    "icons": [
        {
            "src": f"icons/{size}.png",
            "sizes": f"{size}x{size}",
            "type": "image/png",
            "purpose": "any maskable",
        }
        for size in ICON_SIZES
    ],
}


def _static(name: str) -> str:
    return resources.files("gis_api").joinpath(f"static/field/{name}").read_text(encoding="utf-8")


def _json(doc: Any, media_type: str = "application/json", cache: str = "no-cache") -> Response:
    return Response(orjson.dumps(doc), media_type=media_type, headers={"Cache-Control": cache})


async def redirect_to_folder(request: Request) -> Response:
    """``/field`` → ``/field/``: relative links and the worker's scope need the folder."""
    return RedirectResponse(str(request.url.replace(path=request.url.path + "/")), 308)


def page_config() -> dict[str, Any]:
    """What the page's script needs before it starts: the languages there are catalogues for."""
    return {"languages": list(languages())}


async def page(request: Request) -> Response:
    """The app's page (the app shell), with its config inlined."""
    config = orjson.dumps(page_config()).decode().replace("</", "<\\/")  # in a <script> block
    return Response(
        _static("index.html").replace("__CONFIG__", config),
        media_type="text/html",
        headers={"Cache-Control": "no-cache"},
    )


def catalogue_files() -> list[str]:
    """The message catalogues the service worker keeps (one per language), relative to /field/."""
    return ["static/i18n.js", *(f"static/i18n/{lang['code']}.json" for lang in languages())]


async def service_worker(request: Request) -> Response:
    """The service worker; never cached by HTTP, so a new version is picked up on the next visit.

    The catalogues it keeps are listed in it here, so adding a language file is all it takes.
    """
    listed = orjson.dumps(catalogue_files()).decode()
    script = _static("sw.js").replace('"__CATALOGUES__"', listed[1:-1])
    return Response(script, media_type="text/javascript", headers={"Cache-Control": "no-cache"})


async def manifest(request: Request) -> Response:
    """The web app manifest (Vietnamese names: the app opens in Vietnamese)."""
    return _json(MANIFEST, media_type="application/manifest+json")


@lru_cache(maxsize=len(ICON_SIZES))
def icon_png(size: int) -> bytes:
    """The app icon at ``size`` pixels: a white tree and a tag's hole on dark green.

    Drawn here rather than stored, so there is no binary to keep in step with the colours; the
    shapes stay within the middle 80 % (the safe zone of a maskable icon).
    """
    image = Image.new("RGB", (size, size), INK)
    draw = ImageDraw.Draw(image)
    u = size / 100
    draw.polygon([(50 * u, 18 * u), (74 * u, 58 * u), (26 * u, 58 * u)], fill=PAPER)
    draw.polygon([(50 * u, 32 * u), (80 * u, 72 * u), (20 * u, 72 * u)], fill=PAPER)
    draw.rectangle([44 * u, 72 * u, 56 * u, 84 * u], fill=PAPER)
    draw.ellipse([44 * u, 44 * u, 56 * u, 56 * u], fill=INK)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


async def icon(request: Request) -> Response:
    """One of the app icons, ``/field/icons/192.png`` or ``512.png``."""
    name: str = request.path_params["filename"]
    size = name.removesuffix(".png")
    if not name.endswith(".png") or not size.isdigit() or int(size) not in ICON_SIZES:
        raise NotFound(f"no icon {name!r}: there are {', '.join(f'{s}.png' for s in ICON_SIZES)}")
    return Response(
        icon_png(int(size)), media_type="image/png", headers={"Cache-Control": "max-age=86400"}
    )


async def rules(request: Request) -> Response:
    """The code and custody rules the page checks with (public: they hold no data)."""
    return _json(rules_document())


MAX_CHECK_PHOTOS = 3


def care_document(photo_mb: float) -> dict[str, Any]:
    """The tree check's rules as data: the server's own models, not rewritten in JavaScript."""
    from smarttrees.care.inspections import Inspection
    from smarttrees.care.traq import matrices
    from smarttrees.care.vocabulary import DEFECTS

    props = Inspection.model_json_schema()["properties"]

    def plain(name: str) -> dict[str, Any]:  # the non-null branch of an optional field
        schema = props[name]
        return next((s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"), {})

    traq = matrices()
    return {
        "fields": {name: plain(name) for name in ("condition", "dbh_cm", "height_m", "note")},
        "defects": {code: {"en": en, "vi": vi} for code, (en, vi) in DEFECTS.items()},
        "traq": {"likelihood_failure": list(traq.failure),
                 "likelihood_impact": list(traq.impact),
                 "consequences": list(traq.consequences)},
        "damage": damage_rules(),
        "max_photos": MAX_CHECK_PHOTOS,
        "photo_mb": photo_mb,
    }


def damage_rules() -> dict[str, Any]:
    """A storm damage record's kinds and note length, from :class:`DamageRecord` itself."""
    from typing import get_args

    from smarttrees.care.storms import Damage, DamageRecord

    note = DamageRecord.model_json_schema()["properties"]["note"]
    length = next(s["maxLength"] for s in note["anyOf"] if "maxLength" in s)
    return {"kinds": list(get_args(Damage)), "note_max_length": length}


async def care(request: Request) -> Response:
    """The tree check's vocabulary and ranges (public: they hold no data)."""
    return _json(care_document(request.app.state.settings.care_report_photo_mb))


async def me(request: Request) -> Response:
    """Who the request's token belongs to; 401/403 unless it is a field (or admin) token."""
    who = await require_role(request, "field")
    return _json({"username": who.username, "role": who.role}, cache="no-store")


def openapi_paths() -> dict[str, Any]:
    """OpenAPI 3.0 descriptions of the field app's routes (its static files are not listed)."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/smarttreesException"}}}

    def get(operation_id: str, summary: str, media: str, **more: Any) -> dict[str, Any]:
        responses = {
            "200": {
                "description": "OK",
                "content": {media: {"schema": more.pop("schema", {"type": "string"})}},
            }
        }
        responses.update(
            {str(s): {"description": "error", "content": error} for s in more.pop("errors", ())}
        )
        return {
            "get": {
                "operationId": operation_id,
                "summary": summary,
                "tags": ["field app"],
                "responses": responses,
                **more,
            }
        }

    page = {"type": "string"}
    return {
        **field_tiles.openapi_paths(),
        **field_team.openapi_paths(),
        "/field": {
            "get": {
                "operationId": "redirectFieldApp",
                "summary": "Redirects to /field/",
                "tags": ["field app"],
                "responses": {"308": {"description": "to /field/"}},
            }
        },
        "/field/": get("getFieldApp", "The field app's page", "text/html", schema=page),
        "/field/sw.js": get(
            "getFieldServiceWorker",
            "The field app's service worker",
            "text/javascript",
            schema=page,
        ),
        "/field/manifest.webmanifest": get(
            "getFieldManifest",
            "The web app manifest",
            "application/manifest+json",
            schema={"type": "object"},
        ),
        "/field/icons/{filename}": get(
            "getFieldIcon",
            "An app icon",
            "image/png",
            schema={"type": "string", "format": "binary"},
            errors=(404,),
            parameters=[
                {
                    "name": "filename",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": [f"{s}.png" for s in ICON_SIZES]},
                }
            ],
        ),
        "/field/rules.json": get(
            "getFieldRules",
            "The code and custody rules as data",
            "application/json",
            schema={"type": "object"},
        ),
        "/field/care.json": get(
            "getFieldCare",
            "The tree check's vocabulary and ranges as data",
            "application/json",
            schema={"type": "object"},
        ),
        "/field/me": get(
            "getFieldMe",
            "Who a field token belongs to",
            "application/json",
            schema={"type": "object"},
            errors=(401, 403),
            security=[{"bearerAuth": []}],
        ),
    }


def routes() -> list[BaseRoute]:
    """The field app's routes."""
    static = StaticFiles(packages=[("gis_api", "static")])
    return [
        Route("/field", redirect_to_folder, methods=["GET"], name="field_redirect"),
        Route("/field/", page, methods=["GET"], name="field"),
        Route("/field/sw.js", service_worker, methods=["GET"], name="field_sw"),
        Route("/field/manifest.webmanifest", manifest, methods=["GET"], name="field_manifest"),
        Route("/field/icons/{filename}", icon, methods=["GET"], name="field_icon"),
        Route("/field/rules.json", rules, methods=["GET"], name="field_rules"),
        Route("/field/care.json", care, methods=["GET"], name="field_care"),
        Route("/field/me", me, methods=["GET"], name="field_me"),
        Route("/field/tiles/plan", field_tiles.plan, methods=["GET"], name="field_tiles_plan"),
        Route("/field/team", field_team.team, methods=["GET"], name="field_team"),
        Mount("/field/static", static, name="field_static"),
    ]
