"""What the IOC shows besides trees: agencies, documents, citizen support, the planting year.

Agencies exchange documents, 99 % of them electronically (the province's report: nearly 1.9
million documents in nine months, at least 7.5 billion VND of courier costs saved). Citizens
stranded in 22 southern provinces applied online and were paid; those records are personal data
and go to the restricted schema. The tree count grows from 1.08 to 1.13 million over the year.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from etl.ioc_reference import read_provinces
from etl.synthetic.arrays import rank_within
from etl.synthetic.geography import Communes
from etl.synthetic.names import national_ids, person_names
from etl.synthetic.trees import Trees

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
ELECTRONIC_SHARE = 0.99  # 1.9 M documents → 1,881,000 electronic → 7.524 billion VND saved
DOCUMENTS_FROM = np.datetime64("2025-01-01")
DOCUMENT_DAYS = 273  # nine months: January to September 2025
SUPPORT_FROM = np.datetime64("2025-07-20")
SUPPORT_DAYS = 61  # "over 23.3 billion VND in about two months"
SUPPORT_CHANNELS = np.array(["web", "app"])  # the web portal or the C-ThaiNguyen app
# The tree count at the start of the year, as a share of the end: 1.08 M of 1.13 M.
TREES_AT_START = 1_080_000 / 1_130_000
PLANTING_YEAR = 2025
# Share of a year's planting per month: the spring "Tết trồng cây" season and the rainy season.
PLANTING_MONTHS = np.array([4, 16, 16, 10, 5, 5, 10, 12, 10, 5, 4, 3], dtype=float)
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
    """Document records: which agency, what, which way, when.

    The courier cost saved is the loader's: electronic × ``SMARTTREES_COURIER_COST_VND``.
    """

    agency: np.ndarray  # index into Agencies: the sender
    receiver: np.ndarray  # index into Agencies
    doc_no: np.ndarray  # the sender's register number, e.g. "128/UBND-90001"
    doc_type: np.ndarray
    direction: np.ndarray
    electronic: np.ndarray
    sent_on: np.ndarray
    commune: np.ndarray  # '' for provincial agencies


def documents(agencies_: Agencies, n: int, rng: np.random.Generator) -> Documents:
    """``n`` documents over nine months on working days, exactly 99 % of them electronic.

    A commune's committee writes to the province's agencies; a provincial agency writes to a
    commune (60 %) or to another provincial agency.
    """
    provincial = np.array([level != "commune" for level in agencies_.levels])
    # A department writes about ten times what a commune does.
    weights = np.where(provincial, 10.0, 1.0) * rng.uniform(0.5, 1.5, len(provincial))
    agency = rng.choice(len(provincial), n, p=weights / weights.sum())
    days = DOCUMENTS_FROM + np.arange(DOCUMENT_DAYS).astype("timedelta64[D]")
    weekday = (days.astype("datetime64[D]").view("int64") - 4) % 7  # 0 = Monday
    day_weight = np.where(weekday < 5, 1.0, 0.05)
    sent_on = days[rng.choice(len(days), n, p=day_weight / day_weight.sum())]
    electronic = np.zeros(n, dtype=bool)
    electronic[rng.permutation(n)[: round(ELECTRONIC_SHARE * n)]] = True
    receiver = _receivers(provincial, agency, rng)
    commune = np.array([c or "" for c in agencies_.commune])[agency]
    doc_type = rng.choice(len(DOC_TYPES), n, p=DOC_TYPE_SHARES)
    direction = rng.choice(3, n, p=[0.5, 0.35, 0.15])
    # Stored in the order of the (commune, date) index, provincial ones (no commune) last: the
    # index build then sorts presorted input, and a commune's documents sit together on disk.
    order = np.lexsort((sent_on, commune, commune == ""))
    return Documents(
        agency=agency[order],
        receiver=receiver[order],
        doc_no=_register_numbers(np.array(agencies_.codes), agency[order]),  # rows in date order
        doc_type=DOC_TYPES[doc_type[order]],
        direction=DIRECTIONS[direction[order]],
        electronic=electronic[order],
        sent_on=sent_on[order],
        commune=commune[order],
    )


def _receivers(provincial: np.ndarray, sender: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Who each document goes to: never its sender."""
    province_side = np.flatnonzero(provincial)
    communes = np.flatnonzero(~provincial)
    n = len(sender)
    to_province = province_side[rng.integers(0, len(province_side), n)]
    to_commune = communes[rng.integers(0, len(communes), n)] if len(communes) else to_province
    from_province = provincial[sender]
    receiver = np.where(from_province & (rng.uniform(0, 1, n) < 0.6), to_commune, to_province)
    # A provincial agency drawn as its own receiver writes to the next provincial agency.
    same = receiver == sender
    position = np.searchsorted(province_side, receiver[same])
    receiver[same] = province_side[(position + 1) % len(province_side)]
    return receiver


def _register_numbers(codes: np.ndarray, sender: np.ndarray) -> np.ndarray:
    """Each sender numbers its documents 1, 2, … in row order: "<number>/<sender code>"."""
    number = (rank_within(sender) + 1).astype(str)
    return np.strings.add(np.strings.add(number, "/"), codes[sender])


@dataclass(frozen=True)
class SupportCases:
    """Citizen-support payments to invented people (personal data: restricted schema)."""

    case_no: np.ndarray
    full_name: np.ndarray
    national_id: np.ndarray
    birth_year: np.ndarray
    phone: np.ndarray
    bank_account: np.ndarray
    commune: np.ndarray
    stranded_province: np.ndarray  # code of data/ioc/southern_provinces.csv
    support_type: np.ndarray
    amount_vnd: np.ndarray
    paid_on: np.ndarray
    status: np.ndarray
    channel: np.ndarray


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
    """``n`` cases whose amounts add up to exactly ``total_vnd``, more in rural communes.

    Everyone applied on the web portal or the app, was stranded in one of the 22 southern
    provinces (most in Hồ Chí Minh City and its neighbours) and was paid within two months.
    Phones start with 0999 and bank accounts with 999: no real ones do.
    """
    types = list(SUPPORT_TYPES)
    shares = np.array([SUPPORT_TYPES[t][0] for t in types])
    kind = rng.choice(len(types), n, p=shares / shares.sum())
    typical = np.array([SUPPORT_TYPES[t][1] for t in types], dtype=float)[kind]
    amount = split_total(total_vnd, typical * rng.lognormal(0.0, 0.35, n))
    weights = np.where(communes.urban, 0.4, 1.0) * rng.uniform(0.5, 1.5, len(communes))
    commune = np.array(communes.codes)[rng.choice(len(communes), n, p=weights / weights.sum())]
    birth_year = rng.integers(1935, 2015, n)
    female = rng.uniform(0, 1, n) < 0.5
    paid_on = SUPPORT_FROM + rng.integers(0, SUPPORT_DAYS, n).astype("timedelta64[D]")
    provinces = np.array([code for code, *_ in read_provinces()])
    # The industrial provinces around Hồ Chí Minh City, where most worked, come first.
    pull = 1.0 / np.arange(1, len(provinces) + 1) ** 1.1
    stranded = provinces[rng.choice(len(provinces), n, p=pull / pull.sum())]
    phone = np.strings.add("0999", np.strings.zfill(rng.integers(0, 10**6, n).astype(str), 6))
    account = np.strings.add("999", np.strings.zfill(rng.integers(0, 10**9, n).astype(str), 9))
    return SupportCases(
        case_no=np.strings.add("HT-2025-", np.strings.zfill(np.arange(1, n + 1).astype(str), 6)),
        full_name=person_names(n, rng, female),
        national_id=national_ids(birth_year, female, rng),
        birth_year=birth_year,
        phone=phone,
        bank_account=account,
        commune=commune,
        stranded_province=stranded,
        support_type=np.array(types)[kind],
        amount_vnd=amount,
        paid_on=paid_on,
        status=np.full(n, "paid"),
        channel=SUPPORT_CHANNELS[(rng.uniform(0, 1, n) < 0.55).astype(int)],
    )


def planting_year(
    planted_on: np.ndarray, eligible: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Planting dates where the newest trees were planted during :data:`PLANTING_YEAR`.

    Of all the trees, ``1 - TREES_AT_START`` (50,000 of 1.13 M) get a date in that year, month
    by month as :data:`PLANTING_MONTHS` says, so that the count grows from 1.08 M to 1.13 M over
    the year: the newest of the ``eligible`` ones by their planting date, newest last (trees of
    plantation stands keep their stand's year, so they are not eligible).
    """
    n_new = min(round(len(planted_on) * (1 - TREES_AT_START)), int(eligible.sum()))
    candidates = np.flatnonzero(eligible)
    by_date = np.argsort(planted_on[candidates], kind="stable")
    newest = candidates[by_date[len(candidates) - n_new :]]
    month = rng.choice(12, n_new, p=PLANTING_MONTHS / PLANTING_MONTHS.sum())
    first = np.datetime64(f"{PLANTING_YEAR}-01", "M") + month.astype("timedelta64[M]")
    days = (first + 1).astype("datetime64[D]") - first.astype("datetime64[D]")
    day = (rng.uniform(0, 1, n_new) * days.astype(int)).astype(int).astype("timedelta64[D]")
    dates = planted_on.copy()
    dates[newest] = np.sort(first.astype("datetime64[D]") + day)
    return dates


def with_planting_year(trees_: Trees, rng: np.random.Generator) -> Trees:
    """The trees with the planting dates of :func:`planting_year` (stand trees unchanged)."""
    eligible = trees_.category != "plantation"
    return replace(trees_, planted_on=planting_year(trees_.planted_on, eligible, rng))
