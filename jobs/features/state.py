"""Replacing a tile table's partitions: what keeps the daily tiles equal to a rebuild from every row.

Each feature family defines its tile (a ``*_day_state`` function: one row per user, input partition ``dt``
and local ``day``) and its fold (a ``*_from_state`` function) in its own module; ``jobs.features.state_profiles``
assembles them into profiles (docs/incremental-design.md).
"""
from __future__ import annotations

from typing import Callable

from pyspark.sql import DataFrame


def replace_partitions(fresh: DataFrame, keys: tuple[str, ...] = ("dt",),
                       replaced: DataFrame | None = None) -> Callable[[DataFrame], DataFrame]:
    """state -> state with every partition (``keys``) in ``replaced`` replaced by ``fresh``'s rows.

    ``fresh`` must be built from *all* rows of those partitions, not only the late ones: a rewritten
    or erased file can remove rows, and only a rebuilt partition forgets them. ``replaced`` (the
    ``keys`` of the partitions read) defaults to those ``fresh`` covers; pass it, or a partition that
    lost all its rows would keep its old state.
    """
    def apply(state: DataFrame) -> DataFrame:
        gone = (fresh if replaced is None else replaced).select(*keys).distinct()
        kept = state.join(gone, list(keys), "left_anti")
        return kept.select(*state.columns).unionByName(fresh.select(*state.columns))
    return apply
