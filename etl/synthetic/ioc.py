"""What the IOC shows besides trees: agencies, documents and citizen support.

Agencies exchange electronic documents; citizen-support payments are personal data and go to
the restricted schema.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from etl.synthetic.geography import Communes
from etl.synthetic.names import national_ids, person_names

DEPARTMENTS = [
    ("VP-UBND", "Văn phòng UBND tỉnh"),
    ("SNNMT", "Sở Nông nghiệp và Môi trường"),
    ("CCKL", "Chi cục Kiểm lâm"),
    ("STC", "Sở Tài chính"),
    ("SXD", "Sở Xây dựng"),
    ("SNV", "Sở Nội vụ"),
    ("SYT", "Sở Y tế"),
    ("SGDDT", "Sở Giáo dục và Đào tạo"),
    ("SCT", "Sở Công Thương"),
    ("SKHCN", "Sở Khoa học và Công nghệ"),
    ("STP", "Sở Tư pháp"),
    ("SVHTTDL", "Sở Văn hóa, Thể thao và Du lịch"),
]
DOC_TYPES = np.array(
    ["công văn", "quyết định", "tờ trình", "báo cáo", "kế hoạch", "thông báo", "giấy mời"]
)
DOC_TYPE_SHARES = np.array([0.42, 0.12, 0.08, 0.15, 0.06, 0.1, 0.07])
DIRECTIONS = np.array(["incoming", "outgoing", "internal"])
COURIER_SAVING_VND = 4_000  # what a document sent electronically saves in courier costs
DOCUMENTS_FROM = np.datetime64("2025-01-01")
DOCUMENT_DAYS = 273  # nine months: January to September 2025
SUPPORT_TYPES = {
    # type: (share of cases, typical amount VND)
    "hộ nghèo": (0.3, 1_500_000),
    "bảo trợ xã hội": (0.25, 1_800_000),
    "người có công": (0.12, 2_500_000),
    "khắc phục thiên tai": (0.18, 3_000_000),
    "hỗ trợ nhà ở": (0.05, 6_000_000),
    "hỗ trợ học tập": (0.1, 1_000_000),
}


@dataclass(frozen=True)
class Agencies:
    """The provincial people's committee, its departments and one committee per commune."""

    codes: list[str]
    names: list[str]
    levels: list[str]
    commune: list[str | None]
    lon: np.ndarray
    lat: np.ndarray


def agencies(communes: Communes, n_departments: int) -> Agencies:
    """Agencies placed at the capital (province, departments) or at the commune seat."""
    capital = communes.centres[0]
    departments = DEPARTMENTS[:n_departments]
    codes = ["UBND-TINH"] + [code for code, _ in departments]
    names = ["Ủy ban nhân dân tỉnh"] + [name for _, name in departments]
    levels = ["province"] + ["department"] * len(departments)
    commune: list[str | None] = [None] * len(codes)
    for code, name, kind in zip(communes.codes, communes.names, communes.unit_types, strict=True):
        codes.append(f"UBND-{code}")
        names.append(f"Ủy ban nhân dân {kind} {name}")
        levels.append("commune")
        commune.append(code)
    provincial = len(departments) + 1
    lon = np.r_[np.full(provincial, capital[0]), communes.centres[:, 0]]
    lat = np.r_[np.full(provincial, capital[1]), communes.centres[:, 1]]
    return Agencies(codes, names, levels, commune, lon, lat)


@dataclass(frozen=True)
class Documents:
    """Document records: which agency, what, which way, when, and the courier cost saved."""

    agency: np.ndarray  # index into Agencies
    doc_type: np.ndarray
    direction: np.ndarray
    electronic: np.ndarray
    sent_on: np.ndarray
    commune: np.ndarray  # '' for provincial agencies
    courier_saving_vnd: np.ndarray


def documents(agencies_: Agencies, n: int, rng: np.random.Generator) -> Documents:
    """``n`` documents over nine months on working days, 98 % electronic."""
    provincial = np.array([level != "commune" for level in agencies_.levels])
    # A department writes about ten times what a commune does.
    weights = np.where(provincial, 10.0, 1.0) * rng.uniform(0.5, 1.5, len(provincial))
    agency = rng.choice(len(provincial), n, p=weights / weights.sum())
    days = DOCUMENTS_FROM + np.arange(DOCUMENT_DAYS).astype("timedelta64[D]")
    weekday = (days.astype("datetime64[D]").view("int64") - 4) % 7  # 0 = Monday
    day_weight = np.where(weekday < 5, 1.0, 0.05)
    sent_on = days[rng.choice(len(days), n, p=day_weight / day_weight.sum())]
    electronic = rng.uniform(0, 1, n) < 0.98
    commune = np.array([c or "" for c in agencies_.commune])[agency]
    doc_type = rng.choice(len(DOC_TYPES), n, p=DOC_TYPE_SHARES)
    direction = rng.choice(3, n, p=[0.5, 0.35, 0.15])
    # Stored in the order of the (commune, date) index, provincial ones (no commune) last: the
    # index build then sorts presorted input, and a commune's documents sit together on disk.
    order = np.lexsort((sent_on, commune, commune == ""))
    return Documents(
        agency=agency[order],
        doc_type=DOC_TYPES[doc_type[order]],
        direction=DIRECTIONS[direction[order]],
        electronic=electronic[order],
        sent_on=sent_on[order],
        commune=commune[order],
        courier_saving_vnd=np.where(electronic[order], COURIER_SAVING_VND, 0).astype(np.int32),
    )


@dataclass(frozen=True)
class SupportCases:
    """Citizen-support payments to invented people (personal data: restricted schema)."""

    case_no: np.ndarray
    full_name: np.ndarray
    national_id: np.ndarray
    birth_year: np.ndarray
    commune: np.ndarray
    support_type: np.ndarray
    amount_vnd: np.ndarray
    paid_on: np.ndarray


def split_total(total: int, weights: np.ndarray, unit: int = 1_000) -> np.ndarray:
    """Whole multiples of ``unit`` in proportion to ``weights`` adding up to ``total`` exactly.

    Largest remainders: each share is rounded down, and the units left over go to the shares
    that lost the most in rounding. Every share is at least one unit.
    """
    if total % unit or total < unit * len(weights):
        raise ValueError(f"{total} cannot be split into {len(weights)} multiples of {unit}")
    spare = total // unit - len(weights)  # one unit each first: no case gets nothing
    exact = weights / weights.sum() * spare
    units = np.floor(exact).astype(np.int64)
    left = spare - int(units.sum())
    units[np.argsort(-(exact - units), kind="stable")[:left]] += 1
    return (units + 1) * unit


def support_cases(
    communes: Communes, n: int, total_vnd: int, rng: np.random.Generator
) -> SupportCases:
    """``n`` cases whose amounts add up to exactly ``total_vnd``, more in rural communes."""
    types = list(SUPPORT_TYPES)
    shares = np.array([SUPPORT_TYPES[t][0] for t in types])
    kind = rng.choice(len(types), n, p=shares / shares.sum())
    typical = np.array([SUPPORT_TYPES[t][1] for t in types], dtype=float)[kind]
    amount = split_total(total_vnd, typical * rng.lognormal(0.0, 0.35, n))
    weights = np.where(communes.urban, 0.4, 1.0) * rng.uniform(0.5, 1.5, len(communes))
    commune = np.array(communes.codes)[rng.choice(len(communes), n, p=weights / weights.sum())]
    birth_year = rng.integers(1935, 2015, n)
    female = rng.uniform(0, 1, n) < 0.5
    paid_on = DOCUMENTS_FROM + rng.integers(0, DOCUMENT_DAYS, n).astype("timedelta64[D]")
    return SupportCases(
        case_no=np.strings.add("HT-2025-", np.strings.zfill(np.arange(1, n + 1).astype(str), 6)),
        full_name=person_names(n, rng, female),
        national_id=national_ids(birth_year, female, rng),
        birth_year=birth_year,
        commune=commune,
        support_type=np.array(types)[kind],
        amount_vnd=amount,
        paid_on=paid_on,
    )
