"""Domain vocabulary shared by every part: tree categories, conditions, name folding."""

from __future__ import annotations

import unicodedata
from enum import StrEnum


class Category(StrEnum):
    """How a tree is managed."""

    URBAN = "urban"
    SCATTERED = "scattered"
    PLANTATION = "plantation"


class Condition(StrEnum):
    """Health of a tree as recorded by a survey."""

    GOOD = "good"
    FAIR = "fair"
    POOR = "poor"
    DEAD = "dead"
    REMOVED = "removed"


def fold(text: str) -> str:
    """Lower-case ASCII form of a Vietnamese name, for matching typed or unaccented input.

    >>> fold("Keo lá tràm")
    'keo la tram'
    >>> fold("  Đa  ")
    'da'
    """
    text = text.replace("đ", "d").replace("Đ", "D")
    stripped = "".join(
        c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn"
    )
    return " ".join(stripped.lower().split())
