"""Social activity (reviews and their ratings, comments, likes, shares, follows): the ``state_social`` tile
and its fold."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.clock import local_day, local_midnight_date
from jobs.features.activity import sum_arrays
from jobs.features.common import ratio
from schemas.social import SOCIAL_KINDS
from schemas.state import SOCIAL_DAY_STATE


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


def social_from_state(as_of: datetime, zone: str) -> Callable[[DataFrame], DataFrame]:
    """``SOCIAL_DAY_STATE`` tiles -> per user, before ``as_of``: counts per kind and the mean rating of their reviews."""
    today = local_midnight_date(as_of, zone)

    def apply(state: DataFrame) -> DataFrame:
        counts = dict(zip(SOCIAL_KINDS, sum_arrays("kind_counts", len(SOCIAL_KINDS))))
        return (state.filter(F.col("day") < F.lit(today)).groupBy("user_id")
                .agg(counts["review"].alias("review_count"),
                     ratio(F.sum("rating_sum"), F.sum("ratings_known")).alias("mean_rating"),
                     *[counts[k].alias(f"{k}_count") for k in SOCIAL_KINDS if k != "review"]))
    return apply
