"""The forest-product list (bảng kê lâm sản) of a transport load, as PDF and XLSX.

Decree 102/2020/NĐ-CP (amended by Decree 120/2024/NĐ-CP) and Circular 26/2022/TT-BNNPTNT make a
bảng kê travel with every load of timber: numbered rows of logs with species, dimensions and
volume, where they came from, totals, and the signatures of whoever drew it up and of the forest
ranger office that certifies it. The rows are the load's logs as custody recorded them
(:mod:`barcodes.origin`), so the totals are the custody totals.

A household owner's name is personal data: the list names the owner by kind only
("Hộ gia đình, cá nhân"); organisations are named.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection

from barcodes.codes import ItemType, parse
from barcodes.origin import NotTimber, Origin, resolve

OWNER_LABELS = {
    "state": "Tổ chức nhà nước",
    "company": "Doanh nghiệp",
    "cooperative": "Hợp tác xã",
    "household": "Hộ gia đình, cá nhân",
    "community": "Cộng đồng dân cư",
}
TITLE = "BẢNG KÊ LÂM SẢN"
HEADERS = (
    "STT", "Mã số lóng gỗ", "Tên loài (phổ thông)", "Tên khoa học", "Dài (m)",
    "Đường kính (cm)", "Khối lượng (m³)", "Nguồn gốc (lô rừng)", "Chủ rừng",
)
SIGNATURES = (
    ("XÁC NHẬN CỦA CƠ QUAN KIỂM LÂM SỞ TẠI", "(Ký, ghi rõ họ tên, đóng dấu)"),
    ("TỔ CHỨC, CÁ NHÂN LẬP BẢNG KÊ", "(Ký, ghi rõ họ tên)"),
)


@dataclass(frozen=True)
class Row:
    """One numbered row of the list: one log."""

    number: int
    log_code: str
    species_vi: str
    species: str
    length_m: float | None
    diameter_cm: float | None
    volume_m3: Decimal
    stand_code: str
    owner: str


@dataclass(frozen=True)
class BangKe:
    """The list of one load: its header, its rows and totals."""

    load_code: str
    fpl_number: str | None
    vehicle_plate: str | None
    destination: str | None
    loaded_on: date | None
    origin_communes: tuple[str, ...]
    rows: tuple[Row, ...]

    @property
    def volume_m3(self) -> Decimal:
        """Total volume of the load."""
        return sum((r.volume_m3 for r in self.rows), Decimal(0))


def _owner(owner_type: str | None, owner_name: str | None) -> str:
    label = OWNER_LABELS.get(owner_type or "", "Không rõ")
    if owner_type in (None, "household") or not owner_name:
        return label
    return f"{label}: {owner_name}"


async def bangke(conn: AsyncConnection, load: str) -> BangKe:
    """The forest-product list of transport load ``load`` (a ``TR-`` code).

    Raises
    ------
    NotTimber
        The code is not a transport load.

    """
    code = parse(load)
    if code.item_type is not ItemType.TRANSPORT_LOAD:
        raise NotTimber(f"{code} is a {code.item_type.value}: a bảng kê is drawn up for a "
                        "transport load (a TR- code) (rule not_timber_item)")
    origin: Origin = await resolve(conn, [str(code)])
    cur = await conn.execute(
        "SELECT lo.fpl_number, lo.vehicle_plate, lo.destination, "
        "  (SELECT min(e.occurred_at) FROM smarttrees.scan_events e "
        "   WHERE e.item_type = 'timber_log' AND e.event_type = 'loaded' "
        "   AND (e.details ->> 'load_id')::bigint = lo.id) "
        "FROM smarttrees.tags t JOIN smarttrees.transport_loads lo ON lo.id = t.item_id "
        "WHERE t.code = %s AND t.item_type = 'transport_load'",
        [str(code)],
    )
    head = await cur.fetchone()
    assert head is not None  # resolve() found the load
    cur = await conn.execute(
        "SELECT id, owner_type, owner_name, commune_code FROM smarttrees.stands "
        "WHERE id = ANY(%s)",
        [list(origin.stand_ids)],
    )
    stands = {int(r[0]): (r[1], r[2], r[3]) for r in await cur.fetchall()}
    rows = tuple(
        Row(
            number=n,
            log_code=log.code,
            species_vi=log.species_vi or "",
            species=log.species or "",
            length_m=log.length_m,
            diameter_cm=log.diameter_cm,
            volume_m3=log.volume_m3,
            stand_code=log.stand_code,
            owner=_owner(stands[log.stand_id][0], stands[log.stand_id][1]),
        )
        for n, log in enumerate(origin.logs, start=1)
    )
    loaded: datetime | None = head[3]
    return BangKe(
        load_code=str(code),
        fpl_number=head[0],
        vehicle_plate=head[1],
        destination=head[2],
        loaded_on=loaded.date() if loaded else None,
        origin_communes=tuple(sorted({s[2] for s in stands.values() if s[2]})),
        rows=rows,
    )


def _cells(row: Row) -> list[Any]:
    return [
        row.number, row.log_code, row.species_vi, row.species,
        row.length_m, row.diameter_cm, row.volume_m3, row.stand_code, row.owner,
    ]


def _header_lines(doc: BangKe) -> list[str]:
    return [
        f"Số: {doc.fpl_number or '—'}    Mã chuyến hàng: {doc.load_code}",
        f"Nguồn gốc lâm sản: gỗ rừng trồng, xã {', '.join(doc.origin_communes) or '—'}",
        f"Phương tiện vận chuyển: ô tô, biển kiểm soát {doc.vehicle_plate or '—'}",
        f"Nơi đến: {doc.destination or '—'}",
        f"Ngày xếp hàng: {doc.loaded_on.strftime('%d/%m/%Y') if doc.loaded_on else '—'}",
    ]


def to_pdf(doc: BangKe) -> bytes:
    """The list as a PDF (A4 landscape), written in a font that has every Vietnamese letter."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    from barcodes.fonts import register_label_font

    font = register_label_font()
    normal = ParagraphStyle("n", fontName=font, fontSize=9, leading=11)
    centred = ParagraphStyle("c", parent=normal, alignment=1)
    title = ParagraphStyle("t", parent=centred, fontSize=14, leading=18)
    story: list[Any] = [
        Paragraph("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", centred),
        Paragraph("Độc lập - Tự do - Hạnh phúc", centred),
        Spacer(1, 4 * mm),
        Paragraph(TITLE, title),
        Spacer(1, 3 * mm),
        *[Paragraph(line, normal) for line in _header_lines(doc)],
        Spacer(1, 3 * mm),
    ]
    heading = ParagraphStyle("h", parent=centred, fontSize=8, leading=10)
    data: list[list[Any]] = [[Paragraph(h, heading) for h in HEADERS]]  # wrapped headings
    for row in doc.rows:
        cells = _cells(row)
        cells[4] = f"{row.length_m:.1f}" if row.length_m is not None else ""
        cells[5] = f"{row.diameter_cm:.1f}" if row.diameter_cm is not None else ""
        cells[6] = f"{row.volume_m3:.4f}"
        # Plain strings: a Paragraph per cell would triple the time of a 500-log list.
        data.append([str(c) for c in cells])
    data.append(["", f"Tổng cộng: {len(doc.rows)} lóng", "", "", "", "",
                 f"{doc.volume_m3:.4f}", "", ""])
    widths = [10, 30, 28, 38, 13, 18, 20, 30, 86]
    table = Table(data, colWidths=[w * mm for w in widths], repeatRows=1)
    table.setStyle(TableStyle([
        ("FONTNAME", (0, 0), (-1, -1), font),
        ("FONTSIZE", (0, 0), (-1, -1), 8),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.black),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
        ("ALIGN", (4, 1), (6, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("SPAN", (1, -1), (5, -1)),  # the totals' label
    ]))
    signatures = Table(
        [[Paragraph(f"{a}<br/>{b}", centred) for a, b in SIGNATURES]],
        colWidths=[130 * mm, 130 * mm], rowHeights=[30 * mm],
    )
    signatures.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story += [table, Spacer(1, 6 * mm), signatures]
    out = io.BytesIO()
    SimpleDocTemplate(
        out, pagesize=landscape(A4), leftMargin=12 * mm, rightMargin=12 * mm,
        topMargin=12 * mm, bottomMargin=12 * mm, title=f"{TITLE} {doc.fpl_number or ''}",
    ).build(story)
    return out.getvalue()


def to_xlsx(doc: BangKe) -> bytes:
    """The list as an XLSX workbook: the header lines, the rows, the totals, the signatures."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Bang ke lam san"
    sheet.append([TITLE])
    sheet["A1"].font = Font(bold=True, size=14)
    for line in _header_lines(doc):
        sheet.append([line])
    sheet.append([])
    sheet.append(list(HEADERS))
    for row in doc.rows:
        cells = _cells(row)
        cells[6] = float(row.volume_m3)
        sheet.append(cells)
        sheet.cell(sheet.max_row, 7).number_format = "0.0000"
    sheet.append(["", "Tổng cộng", len(doc.rows), "", "", "", float(doc.volume_m3)])
    sheet.cell(sheet.max_row, 7).number_format = "0.0000"
    sheet.append([])
    for heading, note in SIGNATURES:
        sheet.append([heading, "", "", "", note])
    for column, width in zip("ABCDEFGHI", (6, 18, 18, 26, 9, 14, 15, 18, 40), strict=True):
        sheet.column_dimensions[column].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
