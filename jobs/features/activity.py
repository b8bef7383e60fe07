"""Activity across every kind of event (active days, recent events, time since last event): the
``state_events`` tile, its per-user summary (what ``settled_events`` keeps of the days behind every window),
and its fold."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.clock import iso_weekday, local_day, local_hour, local_midnight_date
from jobs.features.common import days_between, unsettled
from schemas.state import EVENT_DAY_STATE, EVENT_SUMMARY


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


def day_events(hour_counts: str = "hour_counts") -> F.Column:
    """Events in one ``EVENT_DAY_STATE`` (or ``EVENT_SUMMARY``) row: its hour counts add up to them.

    Added element by element in generated code: Spark's array lambdas (``aggregate``) are interpreted, with a
    settings lookup per element, and this runs on every tile."""
    return sum((F.col(hour_counts)[h] for h in range(1, 24)), F.col(hour_counts)[0])


def event_summaries(tiles: DataFrame) -> DataFrame:
    """``EVENT_DAY_STATE`` tiles -> one ``EVENT_SUMMARY`` row per user: their distinct days, and counts per local hour
    and per ISO weekday."""
    weekday = iso_weekday("day")
    return (tiles.groupBy("user_id")
            .agg(F.array_sort(F.collect_set("day")).alias("days"),
                 F.array(*sum_arrays("hour_counts", 24)).alias("hour_counts"),
                 F.array(*[F.coalesce(F.sum(F.when(weekday == d, day_events())), F.lit(0)) for d in range(1, 8)])
                 .alias("weekday_counts"),
                 F.max("last_ts").alias("last_ts"))
            .select(*EVENT_SUMMARY.fieldNames()))


def merged_event_summaries(summaries: DataFrame) -> DataFrame:
    """``EVENT_SUMMARY`` rows -> one per user: the union of the days, the sums of the counts, the latest time."""
    return (summaries.groupBy("user_id")
            .agg(F.array_sort(F.array_distinct(F.flatten(F.collect_list("days")))).alias("days"),
                 F.array(*sum_arrays("hour_counts", 24)).alias("hour_counts"),
                 F.array(*sum_arrays("weekday_counts", 7)).alias("weekday_counts"),
                 F.max("last_ts").alias("last_ts"))
            .select(*EVENT_SUMMARY.fieldNames()))


def summary_before(as_of: datetime, zone: str, settled_before: date | None
                   ) -> Callable[[DataFrame, DataFrame], DataFrame]:
    """(tiles, settled) -> one ``EVENT_SUMMARY`` per user of every event before ``as_of``: the settled summary merged
    with one of the tiles after it."""
    return lambda tiles, settled: (settled.select(*EVENT_SUMMARY.fieldNames())
                                   .unionByName(tiles.transform(unsettled(as_of, zone, settled_before))
                                                .transform(event_summaries))
                                   .transform(merged_event_summaries))


def activity_from_state(as_of: datetime, recent_days: int, zone: str, settled_before: date | None
                        ) -> Callable[[DataFrame, DataFrame], DataFrame]:
    """(``EVENT_DAY_STATE`` tiles, ``SETTLED_EVENTS``) -> per user, from events before ``as_of``: distinct active (local)
    days, events in the last ``recent_days`` local days, the last event and the days since it.

    ``settled_before`` must leave the window out: no partition before it holds a row of its days."""
    today = local_midnight_date(as_of, zone)

    def apply(tiles: DataFrame, settled: DataFrame) -> DataFrame:
        window = (tiles.transform(unsettled(as_of, zone, settled_before))
                  .filter(F.col("day") >= F.lit(today - timedelta(days=recent_days))).groupBy("user_id")
                  .agg(F.sum(day_events()).alias("_recent")))
        return (summary_before(as_of, zone, settled_before)(tiles, settled).join(window, "user_id", "left")
                .select("user_id", F.size("days").cast("long").alias("active_days"),
                        F.coalesce("_recent", F.lit(0)).cast("long").alias(f"events_{recent_days}d"),
                        F.col("last_ts").alias("last_event_ts"))
                .withColumn("days_since_last_event", days_between(as_of, F.col("last_event_ts"))))
    return apply
