"""Which species grow where, in what shares, and how fast: the botany of the synthetic province.

Shares are rough figures for northern Vietnam: plantations are mostly Keo (Acacia), Bạch đàn
(Eucalyptus), Thông (Pinus) and Mỡ; streets carry Xà cừ, Sấu, Bằng lăng, Phượng vĩ, Sữa…;
scattered village trees are fruit trees, Keo and Xoan. Growth follows a Chapman-Richards-like
curve towards a species maximum: plausible sizes, not a yield model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from smarttrees.errors import SmartTreesError

PLANTATION = {
    "Acacia mangium x Acacia auriculiformis": 30,
    "Acacia mangium": 15,
    "Acacia auriculiformis": 8,
    "Eucalyptus urophylla": 7,
    "Eucalyptus urophylla x Eucalyptus grandis": 5,
    "Eucalyptus camaldulensis": 3,
    "Pinus massoniana": 6,
    "Pinus merkusii": 3,
    "Pinus kesiya": 1,
    "Manglietia conifera": 8,
    "Cunninghamia lanceolata": 2,
    "Cinnamomum cassia": 2,
    "Illicium verum": 1,
    "Canarium album": 1,
    "Chukrasia tabularis": 1,
    "Erythrophleum fordii": 1,
    "Michelia mediocris": 1,
    "Styrax tonkinensis": 2,
    "Tectona grandis": 1,
    "Senna siamea": 1,
}

URBAN = {
    "Khaya senegalensis": 12,
    "Dracontomelon duperreanum": 10,
    "Lagerstroemia speciosa": 12,
    "Delonix regia": 9,
    "Alstonia scholaris": 8,
    "Cassia fistula": 5,
    "Terminalia catappa": 6,
    "Cinnamomum camphora": 4,
    "Barringtonia acutangula": 4,
    "Hopea odorata": 5,
    "Dipterocarpus alatus": 3,
    "Bombax ceiba": 2,
    "Ficus benjamina": 3,
    "Ficus benghalensis": 1,
    "Samanea saman": 2,
    "Bauhinia variegata": 3,
    "Michelia alba": 3,
    "Peltophorum pterocarpum": 3,
    "Dalbergia tonkinensis": 1,
    "Melia azedarach": 2,
    "Senna siamea": 2,
}

SCATTERED = {
    "Dimocarpus longan": 14,
    "Litchi chinensis": 10,
    "Mangifera indica": 8,
    "Acacia mangium x Acacia auriculiformis": 16,
    "Acacia auriculiformis": 5,
    "Eucalyptus camaldulensis": 6,
    "Melia azedarach": 8,
    "Canarium album": 4,
    "Chukrasia tabularis": 3,
    "Dracontomelon duperreanum": 3,
    "Bombax ceiba": 2,
    "Ficus benghalensis": 1,
    "Senna siamea": 4,
    "Manglietia conifera": 3,
    "Cinnamomum cassia": 4,
    "Styrax tonkinensis": 3,
    "Terminalia catappa": 2,
    "Khaya senegalensis": 2,
}

# genus: (largest DBH cm, largest height m, growth rate per year)
GROWTH = {
    "Acacia": (35.0, 25.0, 0.18),
    "Eucalyptus": (40.0, 32.0, 0.15),
    "Pinus": (45.0, 28.0, 0.06),
    "Manglietia": (40.0, 25.0, 0.08),
    "Cunninghamia": (40.0, 25.0, 0.07),
    "Khaya": (120.0, 30.0, 0.035),
    "Ficus": (150.0, 25.0, 0.03),
    "Samanea": (120.0, 25.0, 0.04),
    "Dracontomelon": (90.0, 30.0, 0.035),
    "Bombax": (100.0, 30.0, 0.04),
    "Lagerstroemia": (50.0, 15.0, 0.06),
    "Delonix": (70.0, 15.0, 0.06),
    "Cassia": (45.0, 12.0, 0.07),
    "Bauhinia": (35.0, 10.0, 0.08),
    "Barringtonia": (50.0, 12.0, 0.05),
    "Mangifera": (60.0, 15.0, 0.05),
    "Dimocarpus": (45.0, 10.0, 0.06),
    "Litchi": (45.0, 10.0, 0.06),
    "Alstonia": (70.0, 25.0, 0.06),
}
DEFAULT_GROWTH = (60.0, 25.0, 0.05)
# Wood-producing yield for harvest allowances, m³ per ha and year of age.
MEAN_ANNUAL_INCREMENT = {"Acacia": 15.0, "Eucalyptus": 14.0, "Pinus": 8.0}
# Planting density per ha (the full count; the tree layer holds a sample grid of it).
PLANTING_DENSITY = {"Acacia": 1660, "Eucalyptus": 1660, "Pinus": 2500, "Manglietia": 2000}
DEFAULT_DENSITY = 1100

CONDITIONS = np.array(["good", "fair", "poor", "dead"])
CONDITION_SHARES = np.array([0.82, 0.12, 0.045, 0.015])


class SpeciesMissingError(SmartTreesError):
    """The species catalogue is empty or lacks every species of a mix."""

    rule = "species_missing"


@dataclass(frozen=True)
class Mix:
    """Species of one kind of planting, resolved to catalogue ids, with shares and growth."""

    names: list[str]
    ids: np.ndarray
    shares: np.ndarray
    dbh_max: np.ndarray
    height_max: np.ndarray
    rate: np.ndarray

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Indices (into this mix) of ``n`` species drawn by share."""
        return rng.choice(len(self.ids), size=n, p=self.shares)

    def genus(self, index: int) -> str:
        """Genus of the species at ``index``."""
        return self.names[index].split()[0]


def resolve(shares: Mapping[str, float], catalogue: Mapping[str, int]) -> Mix:
    """Keep the species of ``shares`` present in the catalogue, renormalising their shares."""
    names = [name for name in shares if name in catalogue]
    if not names:
        raise SpeciesMissingError(
            "the species catalogue lacks the generator's species: run `smarttrees db upgrade`"
        )
    weights = np.array([shares[n] for n in names], dtype=float)
    growth = np.array([GROWTH.get(n.split()[0], DEFAULT_GROWTH) for n in names])
    return Mix(
        names=names,
        ids=np.array([catalogue[n] for n in names], dtype=np.int32),
        shares=weights / weights.sum(),
        dbh_max=growth[:, 0],
        height_max=growth[:, 1],
        rate=growth[:, 2],
    )


def sizes(
    mix: Mix, index: np.ndarray, age: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DBH (cm), height (m) and crown width (m) for trees of given species and ages (years)."""
    age = np.maximum(age, 0.5)
    rate = mix.rate[index]
    noise = rng.lognormal(0.0, 0.15, size=(3, len(index)))
    dbh = mix.dbh_max[index] * (1 - np.exp(-rate * age)) ** 1.2 * noise[0]
    height = mix.height_max[index] * (1 - np.exp(-1.3 * rate * age)) * noise[1]
    crown = (0.8 + 0.16 * dbh**0.85) * noise[2]
    return (
        np.clip(np.round(dbh, 1), 1.0, 400.0).astype(np.float32),
        np.clip(np.round(height, 1), 1.3, 60.0).astype(np.float32),
        np.clip(np.round(crown, 1), 0.5, 40.0).astype(np.float32),
    )


def conditions(n: int, rng: np.random.Generator) -> np.ndarray:
    """Survey conditions, mostly good."""
    return CONDITIONS[rng.choice(len(CONDITIONS), size=n, p=CONDITION_SHARES)]
