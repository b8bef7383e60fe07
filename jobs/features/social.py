"""Social activity: reviews and their ratings, comments, likes, shares, follows."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.features.common import before, count_where
from schemas.social import SOCIAL_KINDS


def social_features(as_of: datetime) -> Callable[[DataFrame], DataFrame]:
    """Per user: counts per kind and the mean rating of their reviews."""
    def apply(social: DataFrame) -> DataFrame:
        is_review = F.col("kind") == "review"
        return (social.filter(before(as_of)).groupBy("user_id")
                .agg(count_where(is_review).alias("review_count"),
                     F.avg(F.when(is_review, F.col("rating"))).alias("mean_rating"),
                     *[count_where(F.col("kind") == k).alias(f"{k}_count")
                       for k in SOCIAL_KINDS if k != "review"]))
    return apply
