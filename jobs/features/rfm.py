"""Recency, frequency and monetary value over rolling windows."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.features.common import before, days_between, money_sum, ratio, within_days


def rfm_features(windows: list[int], as_of: datetime, zone: str) -> Callable[[DataFrame], DataFrame]:
    """Per user: orders and spend in each window, all-time frequency and monetary, recency in days.

    Orders are distinct ``order_id``s. Spend is null when none of the user's lines has an
    amount (sources without prices); otherwise a window with no orders spends 0.0.
    """
    def apply(tx: DataFrame) -> DataFrame:
        amounts_known = F.count("amount") > 0
        per_window = []
        for w in windows:
            in_w = within_days(as_of, w, zone)
            per_window += [
                F.count_distinct(F.when(in_w, F.col("order_id"))).alias(f"orders_{w}d"),
                F.when(amounts_known, money_sum(F.when(in_w, F.col("amount")).otherwise(0.0))).alias(f"spend_{w}d"),
            ]
        return (tx.filter(before(as_of)).groupBy("user_id")
                .agg(*per_window,
                     F.count_distinct("order_id").alias("frequency"),
                     money_sum(F.col("amount")).alias("monetary"),
                     F.min("ts").alias("first_order_ts"),
                     F.max("ts").alias("last_order_ts"))
                .transform(order_summaries(as_of)))
    return apply


def order_summaries(as_of: datetime) -> Callable[[DataFrame], DataFrame]:
    """Adds avg_order_value and recency_days to per-user frequency, monetary and last_order_ts."""
    def apply(per_user: DataFrame) -> DataFrame:
        return (per_user.withColumn("avg_order_value", ratio(F.col("monetary"), F.col("frequency")))
                .withColumn("recency_days", days_between(as_of, F.col("last_order_ts"))))
    return apply
