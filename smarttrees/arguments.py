"""Checks of the analyst API's arguments: each bad value becomes an ArgumentError naming it."""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from smarttrees.domain import fold
from smarttrees.errors import ArgumentError

BBox = Sequence[float]


def checked_bbox(bbox: BBox) -> tuple[float, float, float, float]:
    """``bbox`` as four floats in (min_lon, min_lat, max_lon, max_lat) order, or an error."""
    order = "(min_lon, min_lat, max_lon, max_lat) in degrees"
    try:
        values = tuple(float(v) for v in bbox)
    except (TypeError, ValueError):
        raise ArgumentError("bbox", f"expected four numbers {order}, got {bbox!r}") from None
    if len(values) != 4 or not all(np.isfinite(values)):
        raise ArgumentError("bbox", f"expected four finite numbers {order}, got {bbox!r}")
    min_x, min_y, max_x, max_y = values
    if abs(min_y) > 90 or abs(max_y) > 90:
        hint = ""
        if abs(min_x) <= 90 and abs(max_x) <= 90:
            hint = f"; latitude first? try ({min_y}, {min_x}, {max_y}, {max_x})"
        raise ArgumentError("bbox", f"latitudes must be within ±90, expected {order}{hint}")
    if abs(min_x) > 180 or abs(max_x) > 180:
        raise ArgumentError("bbox", f"longitudes must be within ±180, expected {order}")
    if min_x > max_x or min_y > max_y:
        raise ArgumentError(
            "bbox",
            f"minimum above maximum, expected {order}: try "
            f"({min(min_x, max_x)}, {min(min_y, max_y)}, {max(min_x, max_x)}, {max(min_y, max_y)})",
        )
    return values


def closest(
    text: str, names: dict[str, Any], label: Callable[[Any], str] | None = None
) -> str:
    """``; closest: …`` naming the known values nearest to ``text`` (folded), or nothing."""
    matches = difflib.get_close_matches(fold(text), list(names), n=3, cutoff=0.6)
    labels = dict.fromkeys(label(names[m]) if label else f"{names[m]}" for m in matches)
    return f"; closest: {', '.join(labels)}" if labels else ""


def as_list(value: object) -> list[Any]:
    """One value or several, as a list (a string is one value)."""
    if isinstance(value, str | int):
        return [value]
    return list(value)  # type: ignore[call-overload]


def as_date(argument: str, value: dt.date | str) -> dt.date:
    """A date, or ``YYYY-MM-DD``, as a date."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ArgumentError(argument, f"{value!r} is not a date (YYYY-MM-DD)") from None


def as_datetime(argument: str, value: dt.datetime | dt.date | str) -> dt.datetime:
    """A time, date or ISO 8601 text as an aware time (UTC when none is given)."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time())
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value))
        except ValueError:
            raise ArgumentError(
                argument, f"{value!r} is not a date or time (ISO 8601)"
            ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def sample(values: list[str], what: str, size: int = 20) -> tuple[str, ...]:
    """The first ``size`` values, and how many more there are (long lists are cut)."""
    if len(values) <= size:
        return tuple(values)
    return (*values[:size], f"… {len(values) - size} more {what}")
