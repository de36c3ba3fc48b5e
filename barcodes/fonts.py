"""The label font: one that has every Vietnamese letter (ồ, ỷ, ự…).

DejaVu Sans has them; the DejaVu Sans Mono bundled with python-barcode lacks the Latin Extended
Additional block, so it is only the last resort.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

FONT_NAME = "SmartTreesLabel"
_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",  # Debian/Ubuntu fonts-dejavu-core
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",  # Fedora
    "/usr/share/fonts/TTF/DejaVuSans.ttf",  # Arch
)


@lru_cache(maxsize=1)
def label_font_path() -> str:
    """Path of the TrueType font labels are written in."""
    for candidate in _CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    try:  # matplotlib ships DejaVu Sans
        import matplotlib

        bundled = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        if bundled.is_file():
            return str(bundled)
    except ImportError:
        pass
    from barcode.writer import ImageWriter

    return str(ImageWriter().font_path)


@lru_cache(maxsize=1)
def register_label_font() -> str:
    """Register the label font with reportlab once and return its name."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    pdfmetrics.registerFont(TTFont(FONT_NAME, label_font_path()))
    return FONT_NAME
