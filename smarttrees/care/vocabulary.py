"""The words of tree care: defects an inspector notes, the conditions a tree can be found in.

Codes are stored; the labels (English, Vietnamese) are for forms and sheets.
"""

from __future__ import annotations

from typing import Literal

DEFECTS: dict[str, tuple[str, str]] = {
    "dead_wood": ("dead wood", "cành khô, cành chết"),
    "crack": ("crack", "vết nứt"),
    "decay": ("decay", "mục, thối"),
    "cavity": ("cavity", "hốc thân"),
    "lean": ("lean", "nghiêng"),
    "weak_union": ("weak branch union", "chạc cành yếu"),
    "root_damage": ("root damage", "tổn thương rễ"),
    "wire_conflict": ("conflict with wires", "vướng dây điện"),
    "building_conflict": ("conflict with a building", "chạm công trình"),
}
Defect = Literal[
    "dead_wood", "crack", "decay", "cavity", "lean", "weak_union", "root_damage",
    "wire_conflict", "building_conflict",
]

# What an inspector may find; "removed" is set by a finished removal order, never by a visit.
Condition = Literal["good", "fair", "poor", "dead"]

CATEGORIES = ("urban", "scattered", "plantation")

WORK_TYPES: dict[str, tuple[str, str]] = {
    "pruning": ("pruning", "cắt tỉa"),
    "removal": ("removal", "chặt hạ"),
    "planting": ("planting", "trồng mới"),
    "stump_removal": ("stump removal", "đào gốc"),
    "staking": ("staking", "chống đỡ"),
    "watering": ("watering", "tưới nước"),
    "cabling": ("cabling and bracing", "néo cáp"),
}
WorkType = Literal[
    "pruning", "removal", "planting", "stump_removal", "staking", "watering", "cabling"
]
RISKS = ("low", "moderate", "high", "extreme")

# Months between inspections, per tree category and risk class: the department's policy, not
# TRAQ's (the method rates risk; how often to look again is for the tree owner to set).
# Overridden by SMARTTREES_CARE_CYCLE_MONTHS.
DEFAULT_CYCLE_MONTHS: dict[str, dict[str, int]] = {
    "urban": {"low": 36, "moderate": 12, "high": 6, "extreme": 1},
    "scattered": {"low": 60, "moderate": 24, "high": 6, "extreme": 1},
    "plantation": {"low": 60, "moderate": 36, "high": 12, "extreme": 1},
}


def check_cycle(cycle: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The cycle table if it names every category and risk class with a positive month count.

    Raises
    ------
    ValueError
        A category or risk missing or unknown, or a month count below 1 (named).

    """
    if set(cycle) != set(CATEGORIES):
        raise ValueError(f"care_cycle_months: needs exactly the categories {', '.join(CATEGORIES)}")
    for category, months in cycle.items():
        if set(months) != set(RISKS):
            raise ValueError(
                f"care_cycle_months.{category}: needs exactly the risks {', '.join(RISKS)}"
            )
        for risk, value in months.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"care_cycle_months.{category}.{risk}: {value!r} is not >= 1")
    return cycle
