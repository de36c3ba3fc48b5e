"""A deterministic synthetic province: communes, trees, stands, forestry and IOC records.

>>> from etl.synthetic import generate_province
>>> summary = generate_province("postgresql://…/smarttrees", scale="small", seed=2025)

See :func:`etl.synthetic.province.generate_province`.
"""

from etl.synthetic.province import (
    SCALES,
    ProvinceAlreadyLoaded,
    ProvinceSummary,
    Scale,
    generate_province,
    loaded_province,
)

__all__ = [
    "SCALES",
    "ProvinceAlreadyLoaded",
    "ProvinceSummary",
    "Scale",
    "generate_province",
    "loaded_province",
]
