"""One label as SVG or PNG: Code 128 (or GS1-128) bars over the code, species, origin and date.

Bars and text are drawn by python-barcode's writers in DejaVu Sans, which has every
Vietnamese letter (see :mod:`barcodes.fonts`). Tree tags carry a QR code of the tree's public
URL instead, drawn with ``qrcode``, because a phone camera opens a URL directly.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import barcode
from barcode.writer import ImageWriter, SVGWriter

from barcodes.codes import ItemType, parse
from barcodes.fonts import label_font_path
from barcodes.gs1 import element_string

Format = Literal["svg", "png"]

# Sizes in mm for 0.25 mm modules: fits a 70 x 37 mm label (3 x 8 on A4) with a quiet zone.
_WRITER_OPTIONS: dict[str, Any] = {
    "module_width": 0.25,
    "module_height": 12.0,
    "quiet_zone": 3.0,
    "font_size": 7,
    "text_distance": 3.0,
    "dpi": 300,
}


@dataclass(frozen=True)
class LabelInfo:
    """What is printed on one tag.

    Example: ``LabelInfo("SL-00000042-4", "Keo lai (Acacia hybrid)", "Vườn ươm Đồng Hỷ",
    date(2026, 3, 1))``.
    """

    code: str
    species: str | None = None
    origin: str | None = None
    day: date | None = None
    public_url: str | None = None  # trees: the page the QR code opens

    @property
    def item_type(self) -> ItemType:
        """What the code names (from its prefix)."""
        return parse(self.code).item_type

    def text_lines(self) -> list[str]:
        """The human-readable lines under the bars, the code first."""
        lines = [self.code, self.species or "", self.origin or ""]
        lines.append(self.day.isoformat() if self.day else "")
        return [line for line in lines if line]


def symbol_data(info: LabelInfo, gs1_company_prefix: str | None = None) -> tuple[str, str]:
    """The python-barcode symbology and data of a label: GS1-128 when a company prefix is set."""
    if gs1_company_prefix:
        fields = element_string(gs1_company_prefix, info.item_type, info.code, info.day)
        return "gs1_128", fields.barcode_data()
    return "code128", info.code


def render_label(
    info: LabelInfo, fmt: Format = "svg", gs1_company_prefix: str | None = None
) -> bytes:
    """The label as SVG (UTF-8 bytes) or PNG bytes.

    Parameters
    ----------
    info
        The code and the lines printed under it.
    fmt
        ``"svg"`` (vector, for print shops) or ``"png"`` (300 dpi raster).
    gs1_company_prefix
        When given, the bars carry a GS1-128 element string with the code as lot or serial.

    """
    if info.item_type is ItemType.TREE and info.public_url:
        return render_tree_tag(info, fmt)
    name, data = symbol_data(info, gs1_company_prefix)
    text = "\n".join(info.text_lines())
    options = {**_WRITER_OPTIONS, "font_path": label_font_path()}
    if fmt == "svg":
        svg: bytes = barcode.get(name, data, writer=SVGWriter()).render(options, text=text)
        return svg
    picture = barcode.get(name, data, writer=ImageWriter()).render(options, text=text)
    out = io.BytesIO()
    picture.save(out, format="PNG", dpi=(300, 300))
    return out.getvalue()


def render_tree_tag(info: LabelInfo, fmt: Format = "svg") -> bytes:
    """A tree tag: a QR code of the tree's public URL, with the code and species beneath."""
    import qrcode
    import qrcode.image.svg
    from PIL import Image, ImageDraw, ImageFont

    if not info.public_url:
        raise ValueError(f"tree tag {info.code} needs the tree's public URL")
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=8, border=4)
    qr.add_data(info.public_url)
    qr.make(fit=True)
    lines = info.text_lines()
    if fmt == "svg":
        picture = qr.make_image(image_factory=qrcode.image.svg.SvgPathImage)
        body = picture.to_string(encoding="unicode")
        return _svg_with_caption(body, lines).encode()
    qr_image = qr.make_image().get_image().convert("L")
    font = ImageFont.truetype(label_font_path(), 22)
    caption_height = 28 * len(lines) + 8
    canvas = Image.new("L", (qr_image.width, qr_image.height + caption_height), 255)
    canvas.paste(qr_image, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((canvas.width // 2, qr_image.height + 4 + 28 * i), line, font=font, anchor="mt")
    out = io.BytesIO()
    canvas.save(out, format="PNG", dpi=(300, 300))
    return out.getvalue()


def _svg_with_caption(qr_svg: str, lines: list[str]) -> str:
    """Nest the QR SVG in a taller one with the caption lines as text."""
    from xml.sax.saxutils import escape

    size = re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', qr_svg)
    width = float(size.group(1)) if size else 41.0
    height = float(size.group(2)) if size else 41.0
    line_height = width / 14
    total = height + line_height * (len(lines) + 0.5)
    inner = re.sub(r"^<\?xml[^>]*>\s*", "", qr_svg)
    texts = "".join(
        f'<text x="{width / 2}" y="{height + line_height * (i + 1)}"'
        ' font-family="DejaVu Sans,sans-serif"'
        f' font-size="{line_height * 0.8:.2f}" text-anchor="middle">{escape(line)}</text>'
        for i, line in enumerate(lines)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {total:.2f}" '
        f'width="{width}mm" height="{total:.2f}mm">{inner}{texts}</svg>'
    )
