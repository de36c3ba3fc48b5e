"""Wood densities from the Global Wood Density Database: species mean, else genus, else family.

The GWDD (Chave et al. 2009; Zanne et al. 2009, Dryad doi:10.5061/dryad.234; CC0) is not
shipped: ``smarttrees load species --wood-densities FILE`` reads a copy in either layout it is
published in — the BIOMASS R package's (``family, genus, species, wd``) or Dryad's workbook
exported to CSV (``Family, Binomial, Wood density (g/cm^3)``). Every record counts once; the
means are plain averages of the records of a taxon.

>>> table = WoodDensities.from_records([("Fabaceae", "Acacia", "mangium", 0.5),
...                                     ("Fabaceae", "Acacia", "mangium", 0.6),
...                                     ("Fabaceae", "Acacia", "auriculiformis", 0.7)])
>>> table.find("Acacia mangium Willd.", None)
Density(value=0.55, level='species', source='GWDD v1 species mean (2 records)')
>>> table.find("Acacia crassicarpa", None).level
'genus'
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from etl.errors import InputError
from smarttrees.domain import fold

# Published layouts: (family, genus, epithet, density) or (family, binomial, density).
LAYOUTS = (("family", "genus", "species", "wd"),
           ("family", "binomial", "wood density (g/cm^3)"))


class Density(NamedTuple):
    """A wood density (g/cm³), the taxonomic level it was found at, and where from in words."""

    value: float
    level: str      # species, genus or family
    source: str


def species_key(scientific_name: str) -> tuple[str, str | None]:
    """(genus, ``genus epithet``) of a name, folded; the epithet is None for hybrids and ``sp.``.

    >>> species_key("Acacia mangium x Acacia auriculiformis")
    ('acacia', None)
    >>> species_key("Tilia cordata Mill.")
    ('tilia', 'tilia cordata')
    """
    words = fold(scientific_name).replace("×", " x ").split()
    if not words:
        return "", None
    genus = words[0]
    if len(words) < 2 or words[1] in ("x", "sp", "sp.", "spp", "spp.") or "x" in words[1:3]:
        return genus, None
    return genus, f"{genus} {words[1]}"


@dataclass
class WoodDensities:
    """Means per species, genus and family of a GWDD table, and each genus's family."""

    species: dict[str, tuple[float, int]]
    genera: dict[str, tuple[float, int]]
    families: dict[str, tuple[float, int]]
    family_of: dict[str, str]

    @classmethod
    def from_records(cls, records: Iterable[tuple[str, str, str, float]]) -> WoodDensities:
        """From (family, genus, epithet, density) records."""
        by: dict[str, dict[str, list[float]]] = {"s": defaultdict(list), "g": defaultdict(list),
                                                 "f": defaultdict(list)}
        family_of: dict[str, str] = {}
        for family, genus, epithet, wd in records:
            g, f = fold(genus), fold(family)
            by["s"][f"{g} {fold(epithet)}"].append(wd)
            by["g"][g].append(wd)
            by["f"][f].append(wd)
            family_of.setdefault(g, f)

        def means(groups: dict[str, list[float]]) -> dict[str, tuple[float, int]]:
            return {k: (round(sum(v) / len(v), 3), len(v)) for k, v in groups.items()}

        return cls(means(by["s"]), means(by["g"]), means(by["f"]), family_of)

    @classmethod
    def from_file(cls, path: Path) -> WoodDensities:
        """Read a GWDD table (CSV) in either published layout."""
        import pandas as pd

        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise InputError(path, f"not a readable CSV: {exc}") from None
        columns = {c.strip().lower(): c for c in frame.columns}
        layout = next((lay for lay in LAYOUTS if all(c in columns for c in lay)), None)
        if layout is None:
            raise InputError(path, "not a Global Wood Density Database table: expected columns "
                             f"{', '.join(LAYOUTS[0])} or {', '.join(LAYOUTS[1])}", row=1)
        records = []
        for row, values in enumerate(frame[[columns[c] for c in layout]].itertuples(index=False),
                                     start=2):
            if len(layout) == 4:
                family, genus, epithet, wd = values
            else:
                family, binomial, wd = values
                genus, _, epithet = str(binomial).strip().partition(" ")
            try:
                density = float(str(wd).replace(",", "."))
            except ValueError:
                raise InputError(path, f"{wd!r} is not a number", row=row,
                                 field=columns[layout[-1]]) from None
            records.append((family, genus, epithet, density))
        return cls.from_records(records)

    def find(self, scientific_name: str, family: str | None) -> Density | None:
        """The density of a species: its own mean, else its genus's, else its family's."""
        genus, key = species_key(scientific_name)
        if key and key in self.species:
            value, n = self.species[key]
            return Density(value, "species", f"GWDD v1 species mean ({n} records)")
        if genus in self.genera:
            value, n = self.genera[genus]
            return Density(value, "genus", f"GWDD v1 genus mean ({n} records)")
        fam = fold(family) if family else self.family_of.get(genus)
        if fam and fam in self.families:
            value, n = self.families[fam]
            return Density(value, "family", f"GWDD v1 family mean ({n} records)")
        return None
