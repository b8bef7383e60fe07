"""Activity across every kind of event: active days, recent events, time since last event."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.clock import local_day
from jobs.features.common import before, count_where, days_between, within_days


def all_events(browse: DataFrame, tx: DataFrame, social: DataFrame) -> DataFrame:
    """One row per event of any kind: user_id, ts, source, and the partition ``dt`` it was filed under."""
    return (browse.select("user_id", "ts", F.lit("browse").alias("source"), "dt")
            .unionByName(tx.select("user_id", "ts", F.lit("transaction").alias("source"), "dt"))
            .unionByName(social.select("user_id", "ts", F.lit("social").alias("source"), "dt")))


def activity_features(as_of: datetime, recent_days: int, zone: str) -> Callable[[DataFrame], DataFrame]:
    """Per user: distinct active (local) days, events in the last ``recent_days``, last event and days since."""
    def apply(events: DataFrame) -> DataFrame:
        return (events.filter(before(as_of)).groupBy("user_id")
                .agg(F.count_distinct(local_day("ts", zone)).alias("active_days"),
                     count_where(within_days(as_of, recent_days, zone)).alias(f"events_{recent_days}d"),
                     F.max("ts").alias("last_event_ts"))
                .withColumn("days_since_last_event", days_between(as_of, F.col("last_event_ts"))))
    return apply
