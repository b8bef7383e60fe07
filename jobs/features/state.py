"""Replacing a tile table's partitions, and settling the old ones: what keeps the daily tiles, and the settled
summaries of the days behind every window, equal to a rebuild from every row.

Each feature family defines its tile (a ``*_day_state`` function: one row per user, input partition ``dt``
and local ``day``) and its fold (a ``*_from_state`` function) in its own module; ``jobs.features.state_profiles``
assembles them into profiles (docs/incremental-design.md).
"""
from __future__ import annotations

from datetime import date
from functools import reduce
from typing import Callable, Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


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


# A summary of tiles: tiles -> one row per user (without ``settled_before``); merging summaries -> one row per user.
Summarize = Callable[[DataFrame], DataFrame]


# A settled table's last touch at its boundary (``settled_before`` -> summaries -> summaries), or None: what no later tile
# can change folded away (the sessions' summaries close the sessions no later event can continue).
Close = Callable[[date], Summarize]


def settled(before: date | None, summarize: Summarize, close: Close | None = None) -> Callable[[DataFrame], DataFrame]:
    """tiles -> one summary row per user of their tiles in the partitions before ``before``, marked with it.

    Those partitions hold no row of a day any window reaches (``state_profiles.settled_before``), so the folds
    read this instead of them, and the tiles from ``before`` on. None: nothing settled, no row (the folds then
    read every partition)."""
    if before is None:
        return lambda tiles: tiles.filter(F.lit(False)).transform(summarize).withColumn("settled_before",
                                                                                       F.lit(None).cast("date"))
    return lambda tiles: (tiles.filter(F.col("dt") < F.lit(before)).transform(summarize)
                          .transform(close(before) if close else lambda rows: rows)
                          .withColumn("settled_before", F.lit(before)))


def spanned(edges: Sequence[date], before: date, summarize: Summarize) -> Callable[[DataFrame], DataFrame]:
    """tiles -> one summary row per user and span of their tiles in the partitions before ``before``: the spans end
    at each of ``edges`` (ascending, each before ``before``) and at ``before``, and each row is marked with its span's
    end. The rows ``settled(edges[0])`` and then ``crossed`` at each later end would make, for summaries that only
    add (``state_profiles.SettledTable.adds``): a fold as of any of those ends reads the rows up to it.

    The span's end joins the user key while ``summarize`` runs (every summary groups by user_id and reads nothing
    else of it), so each summary's aggregation runs once over all the spans, not once per span."""
    def apply(tiles: DataFrame) -> DataFrame:
        end = reduce(lambda later, edge: F.when(F.col("dt") < F.lit(edge), F.lit(edge)).otherwise(later),
                     reversed(edges), F.lit(before))
        keyed = tiles.filter(F.col("dt") < F.lit(before)).withColumn(
            "user_id", F.concat(F.col("user_id"), F.lit(_SPAN_MARK), F.date_format(end, "yyyy-MM-dd")))
        return (keyed.transform(summarize)
                .withColumn("settled_before", F.to_date(F.expr(f"right(user_id, {_DATE_CHARS})")))
                .withColumn("user_id", F.expr(f"left(user_id, length(user_id) - {_DATE_CHARS + len(_SPAN_MARK)})")))
    return apply


_SPAN_MARK, _DATE_CHARS = "@", len("yyyy-mm-dd")  # the key "<user_id>@<span end>" while ``spanned`` summarises


def resettled(old: DataFrame, old_before: date | None, tiles: DataFrame, changed: DataFrame | None, before: date,
              summarize: Summarize, merge: Summarize, close: Close | None = None) -> DataFrame:
    """The settled rows of ``old`` (settled before ``old_before``) moved to ``before``: what ``settled(before)``
    gives over ``tiles``, without reading the partitions ``old`` already holds.

    Each user's row merges their tiles in the partitions that crossed the boundary. ``changed`` (user_id; None:
    nobody): users with rows in a partition before ``old_before`` that the step rewrote (late data, users or items
    that changed, as the tiles were before the rewrite or after); theirs are settled again from all their
    tiles. A boundary that moved back (an earlier as_of), or none, settles everyone again.
    """
    if old_before is None or old_before > before:
        return tiles.transform(settled(before, summarize, close))
    kept, crossing = old.drop("settled_before"), tiles.filter(_crossing(old_before, before))
    if changed is not None:
        kept, crossing = kept.join(changed, "user_id", "left_anti"), crossing.join(changed, "user_id", "left_anti")
    moved = kept.unionByName(crossing.transform(summarize)).transform(merge)
    if close:
        moved = moved.transform(close(before))
    if changed is not None:
        again = tiles.join(changed, "user_id", "left_semi").transform(settled(before, summarize, close))
        moved = moved.unionByName(again.drop("settled_before"))
    return moved.withColumn("settled_before", F.lit(before))


def crossed(tiles: DataFrame, old_before: date, before: date, summarize: Summarize) -> DataFrame:
    """The summaries of ``tiles`` in the partitions that crossed a boundary moved from ``old_before`` to ``before``,
    marked with ``before``: what a step appends to a settled table instead of rewriting it
    (``state_profiles.moved_settled_tables``).

    The folds union a settled table's rows with the recent tiles' summaries and merge them per user, so rows of
    several boundaries side by side fold as their merge does, when the merge only adds (sums, unions, minima and
    maxima) and nothing is closed at the boundary: ``state_profiles.SettledTable.adds``."""
    return (tiles.filter(_crossing(old_before, before)).transform(summarize)
            .withColumn("settled_before", F.lit(before)))


def _crossing(old_before: date, before: date) -> F.Column:
    return (F.col("dt") >= F.lit(old_before)) & (F.col("dt") < F.lit(before))
