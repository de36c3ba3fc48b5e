"""Printable PDF sheets of tree care: the due list, and a crew's work orders, each with a map.

Drawn with reportlab like the bảng kê (:mod:`barcodes.bangke`), in the label font that has
every Vietnamese letter. The map is a reportlab drawing: the outlines of the communes around
the sheet's points (simplified in PostGIS) and one numbered dot per row of the table, coloured
by risk or priority, so a crew can find row 7 on the map and the map's dot 7 in the table.
No basemap is fetched: the sheet prints the same offline.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from barcodes.fonts import register_label_font
from smarttrees.care.vocabulary import WORK_TYPES

RISK_COLOURS = {"low": "#1a9641", "moderate": "#fdae61", "high": "#e66101", "extreme": "#b2182b"}
PRIORITY_COLOURS = {1: "#b2182b", 2: "#e66101", 3: "#fdae61", 4: "#1f78b4", 5: "#7b7b7b"}
RISK_VI = {"low": "thấp", "moderate": "trung bình", "high": "cao", "extreme": "rất cao"}

Point = tuple[str, float, float, str]  # label, lon, lat, colour

# Cut to the map's frame (a drawing does not clip) and simplified to what the sheet shows.
_OUTLINES = """
WITH frame AS (SELECT ST_MakeEnvelope(%(w)s, %(s)s, %(e)s, %(n)s, 4326) AS g)
SELECT ST_AsGeoJSON(ST_CollectionExtract(ST_SimplifyPreserveTopology(
           ST_Intersection(c.geom, f.g), %(tolerance)s), 3), 6)::jsonb
FROM smarttrees.communes c, frame f
WHERE c.geom && f.g
"""


def _bbox(points: Sequence[Point]) -> tuple[float, float, float, float]:
    lons = [p[1] for p in points]
    lats = [p[2] for p in points]
    pad = max(max(lons) - min(lons), max(lats) - min(lats), 0.002) * 0.08
    return min(lons) - pad, min(lats) - pad, max(lons) + pad, max(lats) + pad


async def commune_outlines(
    conn: AsyncConnection, points: Sequence[Point]
) -> list[list[tuple[float, float]]]:
    """The rings of the communes in force around ``points`` (none when there are no points)."""
    if not points:
        return []
    w, s, e, n = _bbox(points)
    cur = await conn.execute(_OUTLINES, {"w": w, "s": s, "e": e, "n": n,
                                         "tolerance": max(e - w, n - s) / 500})
    rings = []
    for (geometry,) in await cur.fetchall():
        if geometry["type"] not in ("Polygon", "MultiPolygon"):
            continue
        polygons = geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [
            geometry["coordinates"]]
        for polygon in polygons:
            rings += [[(x, y) for x, y in ring] for ring in polygon]
    return rings


def _map(points: Sequence[Point], rings: list[list[tuple[float, float]]], width: float,
         height: float) -> Any:
    """A drawing of the outlines and numbered dots, ``width`` × ``height`` points large."""
    from reportlab.graphics.shapes import Circle, Drawing, PolyLine, Rect, String
    from reportlab.lib import colors

    drawing = Drawing(width, height)
    drawing.add(Rect(0, 0, width, height, fillColor=colors.HexColor("#f4f6f0"),
                     strokeColor=colors.grey, strokeWidth=0.5))
    if not points:
        return drawing
    w, s, e, n = _bbox(points)
    # Equirectangular at the sheet's latitude: true enough for a town or a commune.
    shrink = math.cos(math.radians((s + n) / 2))
    scale = min(width / ((e - w) * shrink), height / (n - s))
    x0 = (width - (e - w) * shrink * scale) / 2
    y0 = (height - (n - s) * scale) / 2

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return x0 + (lon - w) * shrink * scale, y0 + (lat - s) * scale

    for ring in rings:
        flat = [v for lon, lat in ring for v in xy(lon, lat)]
        drawing.add(PolyLine(flat, strokeColor=colors.HexColor("#8a9a8a"), strokeWidth=0.6))
    font = register_label_font()
    for label, lon, lat, colour in points:
        x, y = xy(lon, lat)
        drawing.add(Circle(x, y, 3.2, fillColor=colors.HexColor(colour), strokeColor=colors.white,
                           strokeWidth=0.5))
        drawing.add(String(x + 4, y + 2, label, fontName=font, fontSize=6))
    return drawing


def _table(rows: list[list[str]], widths: Sequence[float], font: str) -> Any:
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.platypus import Table, TableStyle

    table = Table(rows, colWidths=[w * mm for w in widths], repeatRows=1)
    table.setStyle(TableStyle([
        ("FONTNAME", (0, 0), (-1, -1), font),
        ("FONTSIZE", (0, 0), (-1, -1), 7.5),
        ("GRID", (0, 0), (-1, -1), 0.3, colors.black),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]))
    return table


def _pdf(title: str, lines: list[str], drawing: Any, table: Any) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    font = register_label_font()
    normal = ParagraphStyle("n", fontName=font, fontSize=9, leading=11)
    heading = ParagraphStyle("t", parent=normal, fontSize=13, leading=17)
    story: list[Any] = [Paragraph(title, heading), *[Paragraph(x, normal) for x in lines],
                        Spacer(1, 3 * mm), drawing, Spacer(1, 3 * mm), table]
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=A4, leftMargin=12 * mm, rightMargin=12 * mm,
                      topMargin=12 * mm, bottomMargin=12 * mm, title=title).build(story)
    return out.getvalue()


def due_points(doc: dict[str, Any]) -> list[Point]:
    """One numbered dot per tree of a due list (:func:`smarttrees.care.due.due_list`)."""
    return [(str(i), t["lon"], t["lat"], RISK_COLOURS.get(t["risk"] or "", "#555555"))
            for i, t in enumerate(doc["trees"], 1)]


def due_sheet(doc: dict[str, Any], filters: str, rings: list[list[tuple[float, float]]]) -> bytes:
    """The due list as an A4 PDF: what it lists, the map, then one numbered row per tree."""
    from reportlab.lib.units import mm

    font = register_label_font()
    rows = [["#", "Mã cây · Tree", "Xã · Commune", "Rủi ro · Risk", "Lần trước · Last",
             "Hạn · Due", "Khuyết tật · Defects"]]
    for i, t in enumerate(doc["trees"], 1):
        risk = f"{RISK_VI.get(t['risk'], '')} · {t['risk']}" if t["risk"] else "chưa đánh giá"
        rows.append([str(i), t["tree_code"], t["commune_code"] or "", risk,
                     t["last_inspected_on"] or "—", t["next_due"] or "ngay · now",
                     ", ".join(t["defects"])])
    counts = doc["by_risk"] or {}
    lines = [f"Đến hạn trước ngày · Due by {doc['by']}; {filters}",
             f"Tổng số · Total: {doc['total'] if doc['total'] is not None else '—'} "
             f"({', '.join(f'{k} {v}' for k, v in counts.items())}); "
             f"trên tờ này · on this sheet: {len(doc['trees'])}"]
    drawing = _map(due_points(doc), rings, 186 * mm, 110 * mm)
    table = _table(rows, (8, 32, 20, 30, 22, 22, 52), font)
    return _pdf("DANH SÁCH CÂY ĐẾN HẠN KIỂM TRA · Trees due for inspection", lines, drawing,
                table)


def order_points(orders: list[dict[str, Any]]) -> list[Point]:
    """One numbered dot per work order, at its first tree or spot."""
    return [(str(i), o["lon"], o["lat"], PRIORITY_COLOURS.get(o["priority"], "#555555"))
            for i, o in enumerate(orders, 1) if o["lon"] is not None]


def orders_sheet(orders: list[dict[str, Any]], heading: str,
                 rings: list[list[tuple[float, float]]]) -> bytes:
    """A crew's work orders as an A4 PDF: the map, one numbered row per order, a sign-off."""
    from reportlab.lib.units import mm

    font = register_label_font()
    rows = [["#", "Lệnh · Order", "Việc · Work", "Ưu tiên · Priority", "Cây · Trees",
             "Ngày · Day", "Ghi chú · Note", "Xong · Done"]]
    for i, o in enumerate(orders, 1):
        vi = WORK_TYPES.get(o["work_type"], (o["work_type"], o["work_type"]))[1]
        trees = ", ".join(o["trees"][:6]) + (" …" if len(o["trees"]) > 6 else "")
        rows.append([str(i), str(o["id"]), f"{vi} · {o['work_type']}", str(o["priority"]),
                     trees or f"{o['lat']:.5f}, {o['lon']:.5f}", o["scheduled_on"] or "",
                     (o["note"] or "")[:60], "☐"])
    lines = [heading, f"Số lệnh · Orders: {len(orders)}"]
    drawing = _map(order_points(orders), rings, 186 * mm, 110 * mm)
    table = _table(rows, (8, 14, 34, 18, 46, 20, 34, 12), font)
    return _pdf("LỆNH CÔNG VIỆC CHĂM SÓC CÂY · Tree work orders", lines, drawing, table)
