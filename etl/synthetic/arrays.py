"""Small array helpers shared by the generators."""

from __future__ import annotations

import numpy as np


def rank_within(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2… among the rows sharing a value, in the order the rows come.

    >>> rank_within(np.array(["b", "a", "b", "a", "b"])).tolist()
    [0, 0, 1, 1, 2]
    """
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.r_[0, np.flatnonzero(sorted_groups[1:] != sorted_groups[:-1]) + 1]
    lengths = np.diff(np.r_[starts, len(groups)])
    rank_sorted = np.arange(len(groups)) - np.repeat(starts, lengths)
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = rank_sorted
    return rank
