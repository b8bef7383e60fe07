"""Social activity (reviews and their ratings, comments, likes, shares, follows): the ``state_social`` tile
and its fold."""
from __future__ import annotations

from datetime import date, datetime
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.clock import local_day
from jobs.features.activity import sum_arrays
from jobs.features.common import ratio, unsettled
from schemas.social import SOCIAL_KINDS
from schemas.state import SOCIAL_DAY_STATE, SOCIAL_SUMMARY


def social_day_state(zone: str) -> Callable[[DataFrame], DataFrame]:
    """social -> one ``SOCIAL_DAY_STATE`` row per (user, dt, day)."""
    def apply(social: DataFrame) -> DataFrame:
        rating = F.when(F.col("kind") == "review", F.col("rating"))
        return (social.withColumn("day", local_day("ts", zone))
                .groupBy("user_id", "dt", "day")
                .agg(F.array(*[F.count(F.when(F.col("kind") == k, 1)) for k in SOCIAL_KINDS]).alias("kind_counts"),
                     F.sum(rating).cast("long").alias("rating_sum"),
                     F.count(rating).alias("ratings_known"))
                .select(*SOCIAL_DAY_STATE.fieldNames()))
    return apply


def social_totals(rows: DataFrame) -> DataFrame:
    """``SOCIAL_DAY_STATE`` tiles or ``SOCIAL_SUMMARY`` rows -> one ``SOCIAL_SUMMARY`` row per user: the counts per kind
    and the rating sums added up (whole numbers, so the merge is exact in any order)."""
    return (rows.groupBy("user_id")
            .agg(F.array(*sum_arrays("kind_counts", len(SOCIAL_KINDS))).alias("kind_counts"),
                 F.sum("rating_sum").alias("rating_sum"), F.sum("ratings_known").alias("ratings_known"))
            .select(*SOCIAL_SUMMARY.fieldNames()))


def social_from_state(as_of: datetime, zone: str, settled_before: date | None
                      ) -> Callable[[DataFrame, DataFrame], DataFrame]:
    """(``SOCIAL_DAY_STATE`` tiles, ``SETTLED_SOCIAL`` settled before ``settled_before``) -> per user, before ``as_of``:
    counts per kind and the mean rating of their reviews. The tiles read are those of the partitions from
    ``settled_before`` on; the settled summary stands for the others."""
    def apply(tiles: DataFrame, settled: DataFrame) -> DataFrame:
        # The recent tiles carry the summary's sums per day: one aggregate over both rows gives the totals.
        parts = SOCIAL_SUMMARY.fieldNames()
        totals = (settled.select(*parts)
                  .unionByName(tiles.transform(unsettled(as_of, zone, settled_before)).select(*parts))
                  .transform(social_totals))
        return totals.select("user_id", F.col("kind_counts")[SOCIAL_KINDS.index("review")].alias("review_count"),
                             ratio(F.col("rating_sum"), F.col("ratings_known")).alias("mean_rating"),
                             *[F.col("kind_counts")[i].alias(f"{k}_count") for i, k in enumerate(SOCIAL_KINDS)
                               if k != "review"])
    return apply
