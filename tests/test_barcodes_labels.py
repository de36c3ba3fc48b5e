"""Labels (SVG, PNG, GS1-128, QR tree tags) and A4 sheets, read back with a real decoder."""

from __future__ import annotations

import io
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import psycopg
import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image

from barcodes.codes import ItemType, make_code
from barcodes.gs1 import parse_element_string
from barcodes.labels import LabelInfo, render_label
from barcodes.sheets import Grid, SheetError, render_sheet

LOT = LabelInfo(
    make_code(ItemType.SEEDLING_LOT, 42),
    "Keo lai (Acacia hybrid)",
    "Vườn ươm Đồng Hỷ",
    date(2026, 3, 1),
)


def _texts(png: bytes | Image.Image) -> list[str]:
    image = png if isinstance(png, Image.Image) else Image.open(io.BytesIO(png))
    return sorted(b.text for b in zxingcpp.read_barcodes(image))


def test_png_label_decodes_to_its_code() -> None:
    png = render_label(LOT, "png")
    assert png.startswith(b"\x89PNG")
    assert _texts(png) == [LOT.code]


def test_svg_label_is_xml_with_bars_and_human_readable_lines() -> None:
    svg = render_label(LOT, "svg")
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    text = "".join(root.itertext())
    for line in (LOT.code, "Keo lai (Acacia hybrid)", "Vườn ươm Đồng Hỷ", "2026-03-01"):
        assert line in text
    rects = [e for e in root.iter() if e.tag.endswith("rect")]
    assert len(rects) > 20  # the bars


def test_gs1_label_carries_gtin_date_and_code() -> None:
    png = render_label(LOT, "png", gs1_company_prefix="8934567")
    (text,) = _texts(png)
    fields = parse_element_string(text)
    assert fields["10"] == LOT.code
    assert fields["11"] == "260301"
    assert fields["01"].startswith("08934567")
    timber = LabelInfo(make_code(ItemType.TIMBER_LOG, 9), "Keo", "ĐH-01", date(2026, 1, 5))
    (text,) = _texts(render_label(timber, "png", gs1_company_prefix="8934567"))
    assert parse_element_string(text)["21"] == timber.code


def test_tree_tag_is_a_qr_code_of_the_public_url() -> None:
    url = "https://trees.example.vn/collections/trees/items/77"
    tag = LabelInfo(make_code(ItemType.TREE, 77), "Sấu", "Phường Phan Đình Phùng", public_url=url)
    assert _texts(render_label(tag, "png")) == [url]
    svg = render_label(tag, "svg")
    root = ET.fromstring(svg)
    assert tag.code in "".join(root.itertext())


def test_sheet_lays_out_pages_and_every_label_reads_back(tmp_path: Path) -> None:
    labels = [
        LabelInfo(
            make_code(ItemType.TIMBER_LOG, n), "Keo lai", "Lô ĐH-0012 · Đồng Hỷ", date(2026, 3, 1)
        )
        for n in range(1, 51)
    ]
    out = tmp_path / "sheet.pdf"
    assert render_sheet(labels, out, Grid.parse("3x8")) == 50
    pdf = pdfium.PdfDocument(out)
    assert len(pdf) == 3  # 24 + 24 + 2
    first = pdf[0].render(scale=300 / 72).to_pil()
    assert _texts(first) == sorted(label.code for label in labels[:24])
    text = pdf[0].get_textpage().get_text_range()
    assert "Đồng Hỷ" in text
    last = pdf[2].render(scale=300 / 72).to_pil()
    assert _texts(last) == sorted(label.code for label in labels[48:])


def test_sheet_refuses_bad_grid_and_empty_input(tmp_path: Path) -> None:
    with pytest.raises(SheetError, match="COLUMNSxROWS"):
        Grid.parse("three by eight")
    with pytest.raises(SheetError, match="1-10 columns"):
        Grid.parse("30x8")
    with pytest.raises(SheetError, match="no labels"):
        render_sheet([], tmp_path / "empty.pdf")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smarttrees", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_issues_tags_and_prints_sheets_and_files(
    settings_env: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    from tests.test_custody import build_world

    world = build_world(conn)
    sheet = tmp_path / "lots.pdf"
    done = _cli(
        "labels",
        "seedlings",
        "--lot",
        "LOT-T1",
        "--lot",
        "LOT-T2",
        "--out",
        str(sheet),
        "--grid",
        "2x5",
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 2 labels" in done.stdout
    page = pdfium.PdfDocument(sheet)[0].render(scale=300 / 72).to_pil()
    assert _texts(page) == sorted([world["lot"], world["fresh_lot"]])

    folder = tmp_path / "logs"
    done = _cli(
        "labels", "timber", "--stand", "ST-90001-0001", "--out", str(folder), "--format", "png"
    )
    assert done.returncode == 0, done.stderr
    files = sorted(folder.glob("*.png"))
    assert [f.stem for f in files] == sorted(world["logs"])
    decoded = _cli("scan", "decode", *map(str, files))
    assert decoded.returncode == 0, decoded.stderr
    assert [line.split("\t")[1] for line in decoded.stdout.splitlines()] == sorted(world["logs"])

    missing = _cli("labels", "timber", "--stand", "ST-NOPE", "--out", str(tmp_path / "x.pdf"))
    assert missing.returncode == 1 and "no stand 'ST-NOPE'" in missing.stderr
    unreadable = _cli("scan", "decode", str(sheet))
    assert unreadable.returncode == 1 and "not a readable image" in unreadable.stderr
