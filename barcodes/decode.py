"""Read tags back from photos with zxing-cpp: several per image, rotated, blurred or dim.

zxing-cpp already searches every orientation and scale. When a photo yields nothing we try
again on a contrast-stretched, sharpened copy, which rescues dim or slightly blurred shots
without slowing down the clean ones.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

from barcodes.codes import CodeError, ItemType, make_code, parse
from barcodes.gs1 import GS1Error, parse_element_string
from smarttrees.errors import SmartTreesError

# A phone photo is a few megapixels; anything far larger is refused rather than decoded.
MAX_PIXELS = 40_000_000
TREE_URL_PATTERN = r"/collections/trees/items/(\d+)/?(?:\?.*)?$"  # a tree tag's QR
_TREE_URL = re.compile(TREE_URL_PATTERN)


class ImageError(SmartTreesError):
    """The data is not an image we can read, or is too large."""

    rule = "bad_image"


@dataclass(frozen=True)
class Decoded:
    """One symbol found in an image.

    ``code`` is the canonical SmartTrees code when the symbol carries one with a valid check
    character; otherwise ``None`` and ``problem`` says why (a foreign barcode, a bad check).
    Example: ``Decoded(text="SL-00000042-4", format="Code128", code="SL-00000042-4")``.
    """

    text: str
    format: str
    code: str | None
    problem: str | None = None
    position: tuple[tuple[int, int], ...] = ()

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "text": self.text,
            "format": self.format,
            "code": self.code,
            "problem": self.problem,
            "position": [list(p) for p in self.position],
        }


def open_image(data: bytes | Path | str) -> object:
    """A Pillow image from bytes or a file, refusing non-images and oversized pictures."""
    from PIL import Image, UnidentifiedImageError

    source = io.BytesIO(data) if isinstance(data, bytes) else Path(data)
    try:
        image = Image.open(source)
        if image.width * image.height > MAX_PIXELS:
            raise ImageError(
                f"image of {image.width}x{image.height} pixels is larger than {MAX_PIXELS:,}"
            )
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        name = "the upload" if isinstance(data, bytes) else str(data)
        raise ImageError(f"{name} is not a readable image (PNG, JPEG, …): {exc}") from exc
    return image.convert("L")


def code_from_text(text: str) -> tuple[str | None, str | None]:
    """Our code in a symbol's text (plain, GS1 lot/serial, or tree URL) and any problem."""
    candidate = text
    if text.startswith("(") or text.startswith("\x1d"):
        try:
            fields = parse_element_string(text)
        except GS1Error as exc:
            return None, str(exc)
        candidate = fields.get("21") or fields.get("10") or ""
    else:
        match = _TREE_URL.search(text)
        if match:
            return make_code(ItemType.TREE, int(match.group(1))), None
    try:
        return str(parse(candidate)), None
    except CodeError as exc:
        return None, str(exc)


def decode_image(data: bytes | Path | str) -> list[Decoded]:
    """Every barcode and QR code in an image, each once, in reading order.

    Parameters
    ----------
    data
        Image bytes (PNG, JPEG, …) or a path to an image file.

    Raises
    ------
    ImageError
        Not an image, or more than ``MAX_PIXELS`` pixels.

    """
    import zxingcpp
    from PIL import ImageFilter, ImageOps

    image = open_image(data)
    found = zxingcpp.read_barcodes(image)
    if not found:
        # Dim or soft photos: stretch the contrast and sharpen, then try once more.
        enhanced = ImageOps.autocontrast(image, cutoff=1).filter(ImageFilter.SHARPEN)  # type: ignore[arg-type]
        found = zxingcpp.read_barcodes(enhanced)
    results: dict[str, Decoded] = {}
    for symbol in found:
        code, problem = code_from_text(symbol.text)
        position = tuple(
            (p.x, p.y)
            for p in (
                symbol.position.top_left,
                symbol.position.top_right,
                symbol.position.bottom_right,
                symbol.position.bottom_left,
            )
        )
        results.setdefault(
            symbol.text, Decoded(symbol.text, str(symbol.format.name), code, problem, position)
        )
    return sorted(
        results.values(), key=lambda d: (min(y for _, y in d.position or ((0, 0),)), d.text)
    )
