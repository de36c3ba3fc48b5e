"""The code scheme: type prefixes, MOD 37-36 check characters, GS1-128 element strings."""

from __future__ import annotations

import string
from datetime import date

import pytest

from barcodes.codes import CodeError, ItemType, make_code, parse
from barcodes.gs1 import (
    FNC1,
    GS,
    GS1Error,
    element_string,
    gtin14,
    gtin_check_digit,
    parse_element_string,
)

ALPHABET = string.digits + string.ascii_uppercase
SAMPLE = [make_code(t, n) for t in ItemType for n in (0, 7, 42, 1_080_001, 99_999_999)]


def test_codes_round_trip_with_type_and_number() -> None:
    for item_type in ItemType:
        code = make_code(item_type, 1234)
        assert parse(code) == (item_type, 1234)
        assert str(parse(code)) == code
    assert make_code(ItemType.SEEDLING_LOT, 42).startswith("SL-00000042-")
    assert make_code(ItemType.TIMBER_LOG, 42).startswith("TL-")
    assert make_code(ItemType.TRANSPORT_LOAD, 42).startswith("TR-")
    assert make_code(ItemType.TREE, 42).startswith("TC-")


def test_typed_forms_are_accepted_and_canonicalised() -> None:
    code = make_code(ItemType.TIMBER_LOG, 987)
    typed = code.lower().replace("-", " ")
    assert str(parse(typed)) == code
    assert str(parse(code.replace("-", ""))) == code


@pytest.mark.parametrize("code", SAMPLE)
def test_every_single_character_error_is_refused(code: str) -> None:
    body = code.replace("-", "")
    for i, original in enumerate(body):
        alphabet = string.ascii_uppercase if i < 2 else ALPHABET
        for replacement in alphabet:
            if replacement == original:
                continue
            mistyped = body[:i] + replacement + body[i + 1 :]
            with pytest.raises(CodeError):
                parse(mistyped)


@pytest.mark.parametrize("code", SAMPLE)
def test_every_swap_of_neighbours_is_refused(code: str) -> None:
    body = code.replace("-", "")
    for i in range(len(body) - 1):
        if body[i] == body[i + 1]:
            continue
        swapped = body[:i] + body[i + 1] + body[i] + body[i + 2 :]
        with pytest.raises(CodeError):
            parse(swapped)


def test_error_messages_name_the_problem() -> None:
    code = make_code(ItemType.SEEDLING_LOT, 5)
    wrong = code[:-1] + ("0" if code[-1] != "0" else "1")
    with pytest.raises(CodeError, match="wrong check character"):
        parse(wrong)
    with pytest.raises(CodeError, match="unknown type prefix 'XX'"):
        parse("XX-00000005-0")
    with pytest.raises(CodeError, match="not a SmartTrees code"):
        parse("hello")
    with pytest.raises(CodeError, match="not a SmartTrees code"):
        parse("")


def test_gtin_check_digit_matches_published_examples() -> None:
    # GTIN-13 4006381333931 and GTIN-14 10614141000415 (GS1 check digit calculator examples).
    assert gtin_check_digit("400638133393") == "1"
    assert gtin_check_digit("1061414100041") == "5"
    gtin = gtin14("8934567", ItemType.TIMBER_LOG)
    assert len(gtin) == 14 and gtin.startswith("08934567")
    assert gtin_check_digit(gtin[:-1]) == gtin[-1]
    with pytest.raises(GS1Error, match="6 to 12 digits"):
        gtin14("12ab", ItemType.TREE)


def test_element_string_places_fnc1_after_variable_fields_only() -> None:
    code = make_code(ItemType.SEEDLING_LOT, 42)
    fields = element_string("8934567", ItemType.SEEDLING_LOT, code, date(2026, 3, 1))
    assert (
        fields.human_readable()
        == f"(01){gtin14('8934567', ItemType.SEEDLING_LOT)}(11)260301(10){code}"
    )
    # Fixed-length fields first and the variable lot last: no separator needed.
    assert FNC1 not in fields.barcode_data()
    two_variable = type(fields)([("10", "LOT-1"), ("21", "S-9")])
    assert two_variable.barcode_data() == f"10LOT-1{FNC1}21S-9"
    decoded = parse_element_string(two_variable.barcode_data().replace(FNC1, GS))
    assert decoded == {"10": "LOT-1", "21": "S-9"}
    assert parse_element_string(fields.human_readable())["10"] == code


def test_element_string_refuses_bad_values() -> None:
    with pytest.raises(GS1Error, match=r"\(11\) takes exactly 6 digits"):
        type(element_string("8934567", ItemType.TREE, "TC-1"))(
            [("11", "2026-03-01")]
        ).barcode_data()
    with pytest.raises(GS1Error, match=r"\(21\) takes up to 20"):
        type(element_string("8934567", ItemType.TREE, "TC-1"))([("21", "x" * 21)]).barcode_data()
