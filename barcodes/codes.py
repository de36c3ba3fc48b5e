"""The code printed on every tag: a type prefix, a number and an ISO 7064 MOD 37-36 check character.

A code reads ``SL-00000042-K``: ``SL`` says what the item is, the number is the item's id in its
table, and ``K`` is a check character over ``SL00000042``. MOD 37-36 catches every single-character
substitution and every transposition of neighbours, so a mistyped or misread code is refused
before anything is looked up. People may type codes in lower case, with spaces or without the
hyphens; :func:`parse` accepts those and returns the canonical form.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import NamedTuple

from stdnum.iso7064 import mod_37_36

from smarttrees.errors import SmartTreesError

# Eight digits cover the province's million trees with room to spare; longer ids still work.
NUMBER_WIDTH = 8


class ItemType(StrEnum):
    """What a tag is stuck on; the values are those of ``smarttrees.tags.item_type``."""

    SEEDLING_LOT = "seedling_lot"
    TIMBER_LOG = "timber_log"
    TRANSPORT_LOAD = "transport_load"
    TREE = "tree"


PREFIXES: dict[ItemType, str] = {
    ItemType.SEEDLING_LOT: "SL",
    ItemType.TIMBER_LOG: "TL",
    ItemType.TRANSPORT_LOAD: "TR",
    ItemType.TREE: "TC",
}
_TYPES = {prefix: item_type for item_type, prefix in PREFIXES.items()}
_SHAPE = re.compile(r"^([A-Z]{2})(\d{1,18})([0-9A-Z])$")
CODE_PATTERN = _SHAPE.pattern  # over the compact form (see compact)
# ISO 7064 MOD 37-36's alphabet; its length is the modulus (the field app computes with it).
CHECK_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class CodeError(SmartTreesError):
    """A code is malformed, has an unknown prefix or a wrong check character."""

    rule = "bad_code"


class Code(NamedTuple):
    """A parsed, valid code.

    Example: ``Code(ItemType.SEEDLING_LOT, 42)`` prints as ``SL-00000042-K``.
    """

    item_type: ItemType
    number: int

    def __str__(self) -> str:
        return make_code(self.item_type, self.number)


def check_character(body: str) -> str:
    """The MOD 37-36 check character of ``body`` (prefix and digits, no hyphens)."""
    return str(mod_37_36.calc_check_digit(body, alphabet=CHECK_ALPHABET))


def make_code(item_type: ItemType | str, number: int) -> str:
    """The canonical code of item ``number`` of ``item_type``, e.g. ``SL-00000042-K``."""
    if number < 0:
        raise CodeError(f"an item number cannot be negative: {number}")
    prefix = PREFIXES[ItemType(item_type)]
    digits = f"{number:0{NUMBER_WIDTH}d}"
    return f"{prefix}-{digits}-{check_character(prefix + digits)}"


def compact(text: str) -> str:
    """``text`` in upper case without spaces and hyphens: the form the check is computed on."""
    return re.sub(r"[\s\-]", "", text).upper()


def parse(text: str) -> Code:
    """Validate a code as typed or scanned and return what it names.

    Raises
    ------
    CodeError
        Not shaped like a code, an unknown type prefix, or a check character that does not match
        (the message says which).

    """
    raw = compact(text)
    match = _SHAPE.match(raw)
    if match is None:
        raise CodeError(
            f"{text!r} is not a SmartTrees code: expected a two-letter type, digits and a check "
            "character, like SL-00000042-K"
        )
    prefix, digits, check = match.groups()
    if prefix not in _TYPES:
        known = ", ".join(f"{p} ({t.value})" for t, p in PREFIXES.items())
        raise CodeError(f"{text!r} has an unknown type prefix {prefix!r}: use one of {known}")
    if check_character(prefix + digits) != check:
        raise CodeError(
            f"{text!r} has a wrong check character {check!r}: the code was mistyped or misread"
        )
    return Code(_TYPES[prefix], int(digits))


def is_valid(text: str) -> bool:
    """True when ``text`` is a well-formed code with a matching check character."""
    try:
        parse(text)
    except CodeError:
        return False
    return True
