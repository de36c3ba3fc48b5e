"""OpenAPI 3.0 descriptions of the tree-care routes (gis_api.care, gis_api.care_reports).

Request bodies are the care models' own JSON Schemas, so the document and the checks the server
applies cannot drift apart. Every route but the public report form needs a bearer token.
"""

from __future__ import annotations

from typing import Any

from gis_api.openapi_paths import ANY_OBJECT, BEARER, EXCEPTION, model_schema
from smarttrees.care.orders import STATUSES
from smarttrees.care.reports import STATUSES as REPORT_STATUSES
from smarttrees.care.vocabulary import CATEGORIES, RISKS

_TAGS = ["tree care"]
_JSON = {"application/json": {"schema": ANY_OBJECT}}
_PDF = {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}
_ID = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
_TEXT = {"type": "string", "minLength": 1, "maxLength": 200}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": "refused (the description names the rule)",
                     "content": {"application/json": {"schema": EXCEPTION}}} for s in statuses}


def _query(name: str, description: str, schema: dict[str, Any] = _TEXT) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema, "allowEmptyValue": True}


def _listed(*values: str) -> dict[str, Any]:
    """A comma-separated list of ``values`` (any order, spaces allowed around commas)."""
    one = "(" + "|".join(values) + ")"
    return {"type": "string", "pattern": f"^ *{one} *(, *{one} *)*$", "maxLength": 200}


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": _ID}


def _operation(operation_id: str, summary: str, content: dict[str, Any], statuses: tuple[int, ...],
               *, ok: str = "200", parameters: list[dict[str, Any]] | None = None,
               body: dict[str, Any] | None = None, secured: bool = True) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": _TAGS,
                          "responses": {ok: {"description": "OK", "content": content},
                                        **_errors(*statuses)}}
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    if secured:
        op["security"] = [{BEARER: []}]
    return op


def _one_or_batch(item: dict[str, Any], key: str) -> dict[str, Any]:
    batch = {"type": "array", "items": item, "minItems": 1, "maxItems": 1000}
    return {"application/json": {"schema": {"oneOf": [
        item, {"type": "object", "required": [key], "properties": {key: batch},
               "additionalProperties": False},
    ]}}}


def openapi_paths() -> dict[str, Any]:
    """Paths of the inspections, due list, work orders, storms and hazard reports."""
    from gis_api.care import Transition
    from smarttrees.care.inspections import Inspection
    from smarttrees.care.orders import OrderRequest
    from smarttrees.care.reports import Report, Triage
    from smarttrees.care.storms import DamageRecord, Storm

    due = [
        _query("by", "due by this day (default today)", {"type": "string", "format": "date"}),
        _query("commune", "commune code"),
        _query("risk", "risk classes, comma-separated",
               _listed(*RISKS)),
        _query("category", "tree categories, comma-separated",
               _listed(*CATEGORIES)),
        _query("limit", "most trees listed", {"type": "integer", "minimum": 1, "maximum": 10000}),
        _query("never_inspected", "only trees never inspected",
               {"type": "string", "enum": ["true", "false"]}),
    ]
    orders = [_query("status", "statuses, comma-separated",
                     _listed(*STATUSES)),
              _query("crew", "crew name"),
              _query("commune", "commune code")]
    order_id = _path("order_id", "work order id")
    storm_id = _path("storm_id", "storm event id")
    report_id = _path("report_id", "hazard report id")
    form = {"multipart/form-data": {"schema": {
        **model_schema(Report),
        "properties": {**model_schema(Report)["properties"],
                       "photo": {"type": "string", "format": "binary"}},
    }}}
    return {
        "/api/care/inspections": {"post": _operation(
            "postCareInspections", "Record one inspection or a batch, all or nothing", _JSON,
            (400, 401, 403, 404, 409, 413, 422), ok="201",
            body=_one_or_batch(model_schema(Inspection), "inspections"))},
        "/api/care/due": {"get": _operation(
            "getCareDue", "Trees due for inspection, most urgent first", _JSON,
            (400, 401, 403), parameters=due)},
        "/api/care/due.pdf": {"get": _operation(
            "getCareDuePdf", "The due list as a printable sheet with a map", _PDF,
            (400, 401, 403), parameters=due)},
        "/api/care/orders": {
            "get": _operation("getCareOrders", "Work orders, most urgent first", _JSON,
                              (400, 401, 403), parameters=[
                                  *orders, _query("limit", "most orders listed", {
                                      "type": "integer", "minimum": 1, "maximum": 10000})]),
            "post": _operation("postCareOrder", "Request a work order", _JSON,
                               (400, 401, 403, 404, 409, 413, 422), ok="201",
                               body={"application/json": {"schema": model_schema(OrderRequest)}}),
        },
        "/api/care/orders.pdf": {"get": _operation(
            "getCareOrdersPdf", "Work orders (default: scheduled) as a crew's sheet with a map",
            _PDF, (400, 401, 403), parameters=[
                *orders, _query("on", "scheduled day", {"type": "string", "format": "date"})])},
        "/api/care/orders/{order_id}": {"get": _operation(
            "getCareOrder", "One work order with its trees and transitions", _JSON,
            (400, 401, 403, 404), parameters=[order_id])},
        "/api/care/orders/{order_id}/transitions": {"post": _operation(
            "postCareOrderTransition", "Move a work order one step on", _JSON,
            (400, 401, 403, 404, 409, 413, 422), parameters=[order_id],
            body={"application/json": {"schema": model_schema(Transition)}})},
        "/api/care/storms": {
            "get": _operation("getCareStorms", "Every storm event", _JSON, (401, 403)),
            "post": _operation("postCareStorm", "Open a storm event", _JSON,
                               (400, 401, 403, 409, 413, 422), ok="201",
                               body={"application/json": {"schema": model_schema(Storm)}}),
        },
        "/api/care/storms/{storm_id}/damage": {
            "get": _operation("getCareStormDamage", "The storm's damage records as GeoJSON",
                              {"application/geo+json": {"schema": ANY_OBJECT}},
                              (400, 401, 403, 404), parameters=[storm_id]),
            "post": _operation("postCareStormDamage",
                               "Record damage under the storm (one record or an offline batch)",
                               _JSON, (400, 401, 403, 404, 409, 413, 422), ok="201",
                               parameters=[storm_id],
                               body=_one_or_batch(model_schema(DamageRecord), "records")),
        },
        "/api/care/storms/{storm_id}/communes": {"get": _operation(
            "getCareStormCommunes", "The storm's damage counted per commune", _JSON,
            (400, 401, 403, 404), parameters=[storm_id])},
        "/api/care/storms/{storm_id}/orders": {"post": _operation(
            "postCareStormOrders", "Open work orders from the storm's damage, most urgent first",
            _JSON, (400, 401, 403, 404, 409), ok="201", parameters=[storm_id])},
        "/report": {"get": _operation(
            "getHazardReportPage", "The public hazard report page",
            {"text/html": {"schema": {"type": "string"}}}, (), secured=False)},
        "/api/care/reports": {
            "get": _operation("getCareReports", "Hazard reports to triage (nothing the "
                              "reporter typed)", _JSON, (400, 401, 403),
                              parameters=[_query("status", "statuses, comma-separated",
                                                 _listed(*REPORT_STATUSES))]),
            "post": _operation("postHazardReport", "Report a dangerous or fallen tree (no "
                               "account; rate-limited, the photo capped)", _JSON,
                               (400, 413, 415, 422, 429), ok="201", body=form, secured=False),
        },
        "/api/care/reports/{report_id}": {"get": _operation(
            "getCareReport", "One report with what its reporter typed (the reading is logged)",
            _JSON, (400, 401, 403, 404), parameters=[report_id])},
        "/api/care/reports/{report_id}/photo": {"get": _operation(
            "getCareReportPhoto", "A report's photo",
            {"image/*": {"schema": {"type": "string", "format": "binary"}}},
            (400, 401, 403, 404), parameters=[report_id])},
        "/api/care/reports/{report_id}/triage": {"post": _operation(
            "postCareReportTriage", "Accept a report (a work order) or reject it", _JSON,
            (400, 401, 403, 404, 409, 413, 422), parameters=[report_id],
            body={"application/json": {"schema": model_schema(Triage)}})},
    }
