"""When a user is active: hour-of-day and weekday histograms (local time) and their summaries, folded from
the ``state_events`` tile (``jobs.features.activity.event_day_state``)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.features.activity import day_events, summary_before


def pattern_summaries(counts: DataFrame) -> DataFrame:
    """(user_id, _n events, _hours[24], _days[7] ISO, _night) counts -> the histograms, peaks and shares."""
    # Element by element in generated code, not an interpreted array lambda (``transform``) per user.
    share = lambda arr, n: F.array(*[F.col(arr)[i] / F.col("_n") for i in range(n)])  # noqa: E731
    return counts.select(
        "user_id",
        share("_hours", 24).alias("hour_hist"),
        share("_days", 7).alias("weekday_hist"),
        (F.array_position("_hours", F.array_max("_hours")) - 1).cast("int").alias("peak_hour"),
        F.array_position("_days", F.array_max("_days")).cast("int").alias("peak_weekday"),
        ((F.col("_days")[5] + F.col("_days")[6]) / F.col("_n")).alias("weekend_share"),
        (F.col("_night") / F.col("_n")).alias("night_share"),
    )


def time_patterns_from_state(as_of: datetime, night_hours: list[int], zone: str, settled_before: date | None
                             ) -> Callable[[DataFrame, DataFrame], DataFrame]:
    """(``EVENT_DAY_STATE`` tiles, ``SETTLED_EVENTS``) -> per user, before ``as_of``: the share of events in each local
    hour (24) and ISO weekday (7, Monday first), the peaks (earliest on ties), and the weekend and night shares."""
    def apply(tiles: DataFrame, settled: DataFrame) -> DataFrame:
        counts = summary_before(as_of, zone, settled_before)(tiles, settled).select(
            "user_id", day_events().alias("_n"), F.col("hour_counts").alias("_hours"),
            F.col("weekday_counts").alias("_days"),
            (sum(F.col("hour_counts")[h] for h in night_hours) if night_hours else F.lit(0)).alias("_night"))
        return counts.transform(pattern_summaries)
    return apply
