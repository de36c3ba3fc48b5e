"""Refusals of the tree-care records; each names its rule, the API maps rules to statuses."""

from __future__ import annotations

from smarttrees.errors import SmartTreesError


class CareError(SmartTreesError):
    """A tree-care request that cannot be done; nothing was stored.

    The rule is given per refusal (``unknown_tree``, ``tree_removed``, ``invalid_rating``,
    ``transition``, ``not_your_order`` …) so that :mod:`gis_api.errors` answers each with its
    status and the CLI prints the message.
    """

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
