"""Invented Vietnamese names for people and organisations: no real person is ever described.

Names are drawn from common family, middle and given names; national ids start with 999, a
province code no real card carries, so a synthetic record can never be taken for a real one.
"""

from __future__ import annotations

import numpy as np

FAMILY = [
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Vũ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Ngô",
    "Dương",
    "Lý",
    "Ma",
    "Hà",
    "Nông",
    "Lương",
    "Triệu",
    "Hứa",
]
MIDDLE_MALE = ["Văn", "Đức", "Minh", "Hữu", "Quang", "Thành", "Xuân"]
MIDDLE_FEMALE = ["Thị", "Ngọc", "Thu", "Thanh", "Minh", "Kim"]
GIVEN_MALE = [
    "An",
    "Bình",
    "Cường",
    "Dũng",
    "Hải",
    "Hùng",
    "Khánh",
    "Long",
    "Nam",
    "Phong",
    "Quân",
    "Sơn",
    "Thắng",
    "Tuấn",
    "Việt",
]
GIVEN_FEMALE = [
    "Chi",
    "Dung",
    "Hà",
    "Hạnh",
    "Hoa",
    "Hương",
    "Lan",
    "Linh",
    "Mai",
    "Nga",
    "Phương",
    "Thảo",
    "Trang",
    "Vân",
    "Yến",
]

ORGANISATIONS = {
    "company": [
        "Công ty TNHH Lâm sản {}",
        "Công ty CP Nông lâm nghiệp {}",
        "Công ty Lâm nghiệp {}",
    ],
    "state": ["Ban quản lý rừng phòng hộ {}", "Trung tâm Lâm nghiệp {}"],
    "cooperative": ["Hợp tác xã Lâm nghiệp {}", "Hợp tác xã Nông lâm {}"],
    "community": ["Cộng đồng thôn {}", "Cộng đồng bản {}"],
    "nursery": ["Hộ kinh doanh vườn ươm {}", "Công ty Giống cây trồng {}", "Hợp tác xã Giống {}"],
}
PLACES = [
    "Đồng",
    "Hỷ",
    "Võ",
    "Nhai",
    "Phú",
    "Lương",
    "Định",
    "Hóa",
    "Đại",
    "Từ",
    "Phổ",
    "Yên",
    "Ba",
    "Bể",
    "Chợ",
    "Đồn",
    "Na",
    "Rì",
    "Ngân",
    "Sơn",
]


def person_names(n: int, rng: np.random.Generator, female: np.ndarray | None = None) -> np.ndarray:
    """``n`` invented full names (family, middle, given), female where ``female`` says so."""
    if female is None:
        female = rng.uniform(0, 1, n) < 0.5
    family = np.array(FAMILY)[rng.integers(0, len(FAMILY), n)]
    middle = np.where(
        female,
        np.array(MIDDLE_FEMALE)[rng.integers(0, len(MIDDLE_FEMALE), n)],
        np.array(MIDDLE_MALE)[rng.integers(0, len(MIDDLE_MALE), n)],
    )
    given = np.where(
        female,
        np.array(GIVEN_FEMALE)[rng.integers(0, len(GIVEN_FEMALE), n)],
        np.array(GIVEN_MALE)[rng.integers(0, len(GIVEN_MALE), n)],
    )
    return np.strings.add(np.strings.add(np.strings.add(family, " "), middle + " "), given)


def organisation_names(kinds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An invented organisation name for each kind (company, state, cooperative…)."""
    names = np.empty(len(kinds), dtype=object)
    for i, kind in enumerate(kinds):
        patterns = ORGANISATIONS[str(kind)]
        place = " ".join(rng.choice(PLACES, 2, replace=False))
        names[i] = patterns[rng.integers(len(patterns))].format(place)
    return names


def national_ids(
    birth_year: np.ndarray, female: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Twelve-digit ids shaped like citizen cards, all under the non-existent province 999."""
    century = np.where(birth_year >= 2000, 2, 0) + female.astype(int)
    tail = rng.integers(0, 1_000_000, len(birth_year))
    numbers = 999 * 10**9 + century * 10**8 + (birth_year % 100) * 10**6 + tail
    return numbers.astype(str)
