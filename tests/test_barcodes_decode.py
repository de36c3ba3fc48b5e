"""Decoding photos of our labels: rotated, blurred, dim, noisy, JPEG, several per photo."""

from __future__ import annotations

import io
import random
from datetime import date

import pytest
from PIL import Image, ImageEnhance, ImageFilter

from barcodes.codes import ItemType, make_code
from barcodes.decode import ImageError, decode_image
from barcodes.labels import LabelInfo, render_label


def phone_photo(
    labels: list[bytes],
    *,
    angle: float = 0.0,
    blur: float = 0.0,
    contrast: float = 1.0,
    noise: int = 0,
    quality: int = 75,
    seed: int = 1,
) -> bytes:
    """Paste PNG labels on a grey background and spoil the picture like a phone camera would."""
    rng = random.Random(seed)
    pictures = [Image.open(io.BytesIO(png)).convert("L") for png in labels]
    width = max(p.width for p in pictures) + 160
    height = sum(p.height + 60 for p in pictures) + 100
    photo = Image.new("L", (width, height), 170)
    y = 60
    for picture in pictures:
        photo.paste(picture, (80 + rng.randint(-20, 20), y))
        y += picture.height + 60
    if angle:
        photo = photo.rotate(angle, expand=True, fillcolor=170, resample=Image.Resampling.BICUBIC)
    if blur:
        photo = photo.filter(ImageFilter.GaussianBlur(blur))
    if contrast != 1.0:
        photo = ImageEnhance.Contrast(photo).enhance(contrast)
    if noise:
        pixels = photo.load()
        assert pixels is not None
        for _ in range(photo.width * photo.height // 8):
            x, yy = rng.randrange(photo.width), rng.randrange(photo.height)
            value = pixels[x, yy]
            assert isinstance(value, int)
            pixels[x, yy] = max(0, min(255, value + rng.randint(-noise, noise)))
    out = io.BytesIO()
    photo.convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _label(item_type: ItemType, number: int) -> tuple[str, bytes]:
    code = make_code(item_type, number)
    return code, render_label(LabelInfo(code, "Keo lai", "Đồng Hỷ", date(2026, 3, 1)), "png")


@pytest.mark.parametrize(
    "spoil",
    [
        {"angle": 90},
        {"angle": 17},
        {"angle": 183},
        {"blur": 1.5},
        {"contrast": 0.25},
        {"noise": 60, "quality": 40},
        {"angle": 8, "blur": 1.0, "contrast": 0.4, "noise": 30, "quality": 50},
    ],
    ids=["rot90", "rot17", "upside-down", "blur", "dim", "noisy-jpeg", "everything"],
)
def test_degraded_photo_of_one_label_decodes(spoil: dict[str, float]) -> None:
    code, png = _label(ItemType.TIMBER_LOG, 31337)
    found = decode_image(phone_photo([png], **spoil))  # type: ignore[arg-type]
    assert [d.code for d in found] == [code]
    assert found[0].format == "Code128"


def test_several_labels_in_one_photo_each_decode_once() -> None:
    labels = [_label(ItemType.SEEDLING_LOT, n) for n in (3, 14, 159)]
    photo = phone_photo([png for _, png in labels], angle=5, blur=0.8, contrast=0.6)
    found = decode_image(photo)
    assert sorted(d.code for d in found if d.code) == sorted(code for code, _ in labels)


def test_foreign_barcode_and_bad_check_are_reported_not_guessed() -> None:
    import barcode
    from barcode.writer import ImageWriter

    good = make_code(ItemType.SEEDLING_LOT, 8)
    bad = good[:-1] + ("A" if good[-1] != "A" else "B")
    pictures = []
    for text in (bad, "HELLO-WORLD"):
        picture = barcode.get("code128", text, writer=ImageWriter()).render(
            {"module_width": 0.25, "dpi": 300}
        )
        out = io.BytesIO()
        picture.save(out, format="PNG")
        pictures.append(out.getvalue())
    found = {d.text: d for d in decode_image(phone_photo(pictures))}
    assert found[bad].code is None and "wrong check character" in (found[bad].problem or "")
    assert found["HELLO-WORLD"].code is None and "not a SmartTrees code" in (
        found["HELLO-WORLD"].problem or ""
    )


def test_photo_without_barcode_gives_nothing() -> None:
    blank = io.BytesIO()
    Image.new("RGB", (640, 480), (120, 160, 90)).save(blank, format="JPEG")
    assert decode_image(blank.getvalue()) == []


def test_non_image_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ImageError, match="not a readable image"):
        decode_image(b"%PDF-1.4 this is not a photo")
