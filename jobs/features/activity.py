"""Activity across every kind of event (active days, recent events, time since last event): the
``state_events`` tile and its fold."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.clock import local_day, local_hour, local_midnight_date
from jobs.features.common import days_between
from schemas.state import EVENT_DAY_STATE


def all_events(browse: DataFrame, tx: DataFrame, social: DataFrame) -> DataFrame:
    """One row per event of any kind: user_id, ts, source, and the partition ``dt`` it was filed under."""
    return (browse.select("user_id", "ts", F.lit("browse").alias("source"), "dt")
            .unionByName(tx.select("user_id", "ts", F.lit("transaction").alias("source"), "dt"))
            .unionByName(social.select("user_id", "ts", F.lit("social").alias("source"), "dt")))


def event_day_state(zone: str) -> Callable[[DataFrame], DataFrame]:
    """``all_events`` rows -> one ``EVENT_DAY_STATE`` row per (user, source, dt, day)."""
    def apply(events: DataFrame) -> DataFrame:
        hour = local_hour("ts", zone)
        return (events.withColumn("day", local_day("ts", zone))
                .groupBy("user_id", "source", "dt", "day")
                .agg(F.array(*[F.count(F.when(hour == h, 1)) for h in range(24)]).alias("hour_counts"),
                     F.max("ts").alias("last_ts"))
                .select(*EVENT_DAY_STATE.fieldNames()))
    return apply


def sum_arrays(column: str, size: int) -> list[F.Column]:
    return [F.sum(F.col(column)[i]) for i in range(size)]


def day_events() -> F.Column:
    """Events in one ``EVENT_DAY_STATE`` row: its hour counts add up to them."""
    return F.aggregate("hour_counts", F.lit(0).cast("long"), lambda acc, c: acc + c)


def activity_from_state(as_of: datetime, recent_days: int, zone: str) -> Callable[[DataFrame], DataFrame]:
    """``EVENT_DAY_STATE`` tiles -> per user, from events before ``as_of``: distinct active (local) days, events in
    the last ``recent_days`` local days, the last event and the days since it."""
    today = local_midnight_date(as_of, zone)

    def apply(state: DataFrame) -> DataFrame:
        recent = F.col("day") >= F.lit(today - timedelta(days=recent_days))
        return (state.filter(F.col("day") < F.lit(today)).groupBy("user_id")
                .agg(F.count_distinct("day").alias("active_days"),
                     F.coalesce(F.sum(F.when(recent, day_events())), F.lit(0)).alias(f"events_{recent_days}d"),
                     F.max("last_ts").alias("last_event_ts"))
                .withColumn("days_since_last_event", days_between(as_of, F.col("last_event_ts"))))
    return apply
