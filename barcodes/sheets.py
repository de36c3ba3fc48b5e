"""Printable A4 sheets of labels (PDF, reportlab), for any number of labels on a grid.

Bars are drawn as vector rectangles from python-barcode's own module pattern, so a sheet of a
thousand labels prints sharp at any resolution and is written in seconds (no raster images).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import barcode

from barcodes.labels import LabelInfo, symbol_data
from smarttrees.errors import SmartTreesError


class SheetError(SmartTreesError):
    """A sheet cannot be laid out (bad grid, nothing to print)."""

    rule = "label_sheet"


@dataclass(frozen=True)
class Grid:
    """Label stock: columns x rows on an A4 page, with page margins in mm.

    Example: ``Grid(3, 8)`` is the common 70 x 37 mm stock (24 labels a page).
    """

    columns: int = 3
    rows: int = 8
    margin_mm: float = 5.0

    @classmethod
    def parse(cls, text: str) -> Grid:
        """A grid from ``"3x8"`` (columns x rows)."""
        match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
        if not match:
            raise SheetError(f"grid {text!r} is not COLUMNSxROWS, e.g. 3x8")
        columns, rows = int(match.group(1)), int(match.group(2))
        if not (1 <= columns <= 10 and 1 <= rows <= 20):
            raise SheetError(f"grid {text!r}: use 1-10 columns and 1-20 rows")
        return cls(columns, rows)


def render_sheet(
    labels: Iterable[LabelInfo],
    out: Path | io.BytesIO,
    grid: Grid | None = None,
    gs1_company_prefix: str | None = None,
) -> int:
    """Lay labels out on A4 pages and write the PDF; return how many labels were placed.

    Parameters
    ----------
    labels
        The labels in print order.
    out
        A file path or a binary buffer.
    grid
        Columns x rows per page; 3 x 8 by default.
    gs1_company_prefix
        When given, the bars carry GS1-128 element strings.

    """
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfgen.canvas import Canvas

    from barcodes.fonts import register_label_font

    grid = grid or Grid()
    font = register_label_font()
    page_w, page_h = A4
    cell_w = (page_w - 2 * grid.margin_mm * mm) / grid.columns
    cell_h = (page_h - 2 * grid.margin_mm * mm) / grid.rows
    canvas = Canvas(str(out) if isinstance(out, Path) else out, pagesize=A4)
    canvas.setTitle("SmartTrees labels")
    count = 0
    per_page = grid.columns * grid.rows
    for count, info in enumerate(labels, start=1):
        slot = (count - 1) % per_page
        if slot == 0 and count > 1:
            canvas.showPage()
        column, row = slot % grid.columns, slot // grid.columns
        x = grid.margin_mm * mm + column * cell_w
        y = page_h - grid.margin_mm * mm - (row + 1) * cell_h
        _draw_label(canvas, info, x, y, cell_w, cell_h, font, gs1_company_prefix)
    if count == 0:
        raise SheetError("no labels to print")
    canvas.save()
    return count


def _draw_label(
    canvas: object,
    info: LabelInfo,
    x: float,
    y: float,
    width: float,
    height: float,
    font: str,
    gs1_company_prefix: str | None,
) -> None:
    """Bars in the upper part of a cell, the text lines below, with a quiet zone around."""
    from reportlab.pdfgen.canvas import Canvas

    assert isinstance(canvas, Canvas)
    name, data = symbol_data(info, gs1_company_prefix)
    modules = barcode.get(name, data).build()[0]
    pad = width * 0.06
    lines = info.text_lines()
    line_h = min(height * 0.11, 9.0)
    bar_h = height - 2 * pad - line_h * len(lines)
    module_w = (width - 2 * pad) / len(modules)
    canvas.setFillGray(0)
    # Draw runs of dark modules as single rectangles: fewer PDF operators, smaller files.
    for match in re.finditer(r"1+", modules):
        canvas.rect(
            x + pad + match.start() * module_w,
            y + height - pad - bar_h,
            (match.end() - match.start()) * module_w,
            bar_h,
            stroke=0,
            fill=1,
        )
    canvas.setFont(font, line_h * 0.85)
    for i, line in enumerate(lines):
        canvas.drawCentredString(x + width / 2, y + height - pad - bar_h - line_h * (i + 1), line)
