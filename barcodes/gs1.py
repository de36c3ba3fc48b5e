r"""GS1-128 element strings: application identifiers, with FNC1 separators placed by us.

python-barcode's ``gs1_128`` only puts the leading FNC1; a variable-length field that is not the
last one must be closed by another FNC1 (``\xf1``), which is the caller's job. Fixed-length
fields (GTIN, dates) go first so that only the variable ones need a separator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from barcodes.codes import ItemType
from smarttrees.errors import SmartTreesError

FNC1 = "\xf1"
GS = "\x1d"  # how decoders report FNC1 inside the data (ASCII group separator)

# Application identifiers we use: (fixed length or None when variable, maximum length).
AIS: dict[str, tuple[int | None, int]] = {
    "01": (14, 14),  # GTIN
    "10": (None, 20),  # batch / lot
    "11": (6, 6),  # production date YYMMDD
    "17": (6, 6),  # expiry date YYMMDD
    "21": (None, 20),  # serial number
}
# GS1 AI encodable character set 82 (the part we may print).
_CSET82 = re.compile(r"^[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]*$")
# The item-reference digit that follows the company prefix, per item type.
_ITEM_REFERENCE = {
    ItemType.SEEDLING_LOT: 1,
    ItemType.TIMBER_LOG: 2,
    ItemType.TRANSPORT_LOAD: 3,
    ItemType.TREE: 4,
}


class GS1Error(SmartTreesError):
    """An element string cannot be built or read."""

    rule = "bad_gs1"


def gtin_check_digit(digits: str) -> str:
    """The GS1 mod-10 check digit of ``digits`` (weights 3, 1 from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return str((10 - total % 10) % 10)


def gtin14(company_prefix: str, item_type: ItemType) -> str:
    """A GTIN-14 for one kind of item: indicator 0, the company prefix, an item reference."""
    if not re.fullmatch(r"\d{6,12}", company_prefix):
        raise GS1Error(f"a GS1 company prefix has 6 to 12 digits, not {company_prefix!r}")
    reference = str(_ITEM_REFERENCE[item_type]).zfill(12 - len(company_prefix))
    body = "0" + company_prefix + reference
    return body + gtin_check_digit(body)


@dataclass(frozen=True)
class ElementString:
    """The fields of one GS1-128 symbol, in the order they are encoded.

    Example: ``ElementString([("01", "05312345000016"), ("10", "SL-00000042-4")])``.
    """

    fields: list[tuple[str, str]]

    def barcode_data(self) -> str:
        """The data for python-barcode's ``gs1_128`` (leading FNC1 is added by it)."""
        parts: list[str] = []
        for i, (ai, value) in enumerate(self.fields):
            _check_field(ai, value)
            parts.append(ai + value)
            fixed, _ = AIS[ai]
            if fixed is None and i < len(self.fields) - 1:
                parts.append(FNC1)
        return "".join(parts)

    def human_readable(self) -> str:
        """The text printed under the bars: ``(01)05312345000016(10)SL-00000042-4``."""
        return "".join(f"({ai}){value}" for ai, value in self.fields)


def _check_field(ai: str, value: str) -> None:
    if ai not in AIS:
        raise GS1Error(f"application identifier ({ai}) is not supported")
    fixed, longest = AIS[ai]
    if fixed is not None and (len(value) != fixed or not value.isdigit()):
        raise GS1Error(f"({ai}) takes exactly {fixed} digits, not {value!r}")
    if len(value) > longest or not _CSET82.match(value):
        raise GS1Error(f"({ai}) takes up to {longest} GS1 characters, not {value!r}")


def yymmdd(day: date) -> str:
    """A date as GS1 writes it."""
    return day.strftime("%y%m%d")


def element_string(
    company_prefix: str, item_type: ItemType, code: str, produced: date | None = None
) -> ElementString:
    """The GS1-128 fields of a tag: GTIN, production date, our code as lot (10) or serial (21).

    Seedling lots are batches, so their code goes in (10); single items (logs, loads, trees)
    carry it as serial (21).
    """
    fields: list[tuple[str, str]] = [("01", gtin14(company_prefix, item_type))]
    if produced is not None:
        fields.append(("11", yymmdd(produced)))
    fields.append(("10" if item_type is ItemType.SEEDLING_LOT else "21", code))
    return ElementString(fields)


def parse_element_string(text: str) -> dict[str, str]:
    """Split decoded GS1 data into {AI: value}.

    Accepts the bracketed form ``(01)…(10)…`` and the raw form with group separators, as
    decoders report either.
    """
    if text.startswith("("):
        return {ai: value for ai, value in re.findall(r"\((\d{2,4})\)([^(]*)", text)}
    fields: dict[str, str] = {}
    rest = text.lstrip(GS).lstrip(FNC1)
    while rest:
        ai = rest[:2]
        if ai not in AIS:
            raise GS1Error(f"unsupported application identifier ({ai}) in {text!r}")
        fixed, _ = AIS[ai]
        rest = rest[2:]
        if fixed is not None:
            fields[ai], rest = rest[:fixed], rest[fixed:]
        else:
            value, _, rest = rest.partition(GS)
            fields[ai] = value
    return fields
