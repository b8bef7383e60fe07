"""When a user is active: hour-of-day and weekday histograms (local time) and their summaries."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.clock import iso_weekday, local_day, local_hour
from jobs.features.common import before, count_where


def time_pattern_features(as_of: datetime, night_hours: list[int], zone: str) -> Callable[[DataFrame], DataFrame]:
    """Per user: share of events in each hour (24) and ISO weekday (7, Monday first), peaks, weekend and night shares.

    Peaks take the earliest hour / weekday on ties.
    """
    def apply(events: DataFrame) -> DataFrame:
        hour, weekday = local_hour("ts", zone), iso_weekday(local_day("ts", zone))
        counts = (events.filter(before(as_of)).groupBy("user_id")
                  .agg(F.count("*").alias("_n"),
                       F.array(*[count_where(hour == h) for h in range(24)]).alias("_hours"),
                       F.array(*[count_where(weekday == d) for d in range(1, 8)]).alias("_days"),
                       count_where(hour.isin(*night_hours)).alias("_night")))
        return counts.transform(pattern_summaries)
    return apply


def pattern_summaries(counts: DataFrame) -> DataFrame:
    """(user_id, _n events, _hours[24], _days[7] ISO, _night) counts -> the histograms, peaks and shares."""
    share = lambda arr: F.transform(arr, lambda c: c / F.col("_n"))  # noqa: E731
    return counts.select(
        "user_id",
        share("_hours").alias("hour_hist"),
        share("_days").alias("weekday_hist"),
        (F.array_position("_hours", F.array_max("_hours")) - 1).cast("int").alias("peak_hour"),
        F.array_position("_days", F.array_max("_days")).cast("int").alias("peak_weekday"),
        ((F.col("_days")[5] + F.col("_days")[6]) / F.col("_n")).alias("weekend_share"),
        (F.col("_night") / F.col("_n")).alias("night_share"),
    )
