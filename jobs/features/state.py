"""Per-(user, partition, day) feature state, and the folds that turn it into the full job's feature columns.

A day's rows fold into a few rows of state (the ``*_day_state`` functions); a partition that gets
late data replaces its rows (``replace_partitions``); and the ``*_from_state`` folds give the columns
that the full job's feature functions compute from every row (``rfm_features``, ``price_band_features``,
``conversion_features``, ``activity_features``, ``time_pattern_features``, ``social_features``,
``interactions``). Counts agree exactly, and so do sums: money is summed as an exact decimal and
session lengths in whole microseconds, in both jobs. ``jobs.features.state_profiles`` assembles them
into profiles (docs/incremental-design.md).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.clock import iso_weekday, local_day, local_hour, local_midnight_date
from jobs.features.affinity import interaction_kinds, kind_weight, paid_lines, price_bands
from jobs.features.common import count_where, days_between, money, money_sum, ratio
from jobs.features.conversion import FUNNEL_EVENTS, funnel_rates, session_micros, sessionize
from jobs.features.rfm import order_summaries
from jobs.features.time_patterns import pattern_summaries
from schemas.social import SOCIAL_KINDS
from schemas.state import (BROWSE_DAY_STATE, EVENT_DAY_STATE, INTERACTION_DAY_STATE, ORDER_DAY_STATE,
                           PRICE_DAY_STATE, SOCIAL_DAY_STATE)


def order_day_state(zone: str) -> Callable[[DataFrame], DataFrame]:
    """transactions -> one ``ORDER_DAY_STATE`` row per (user, dt, day) with lines."""
    def apply(tx: DataFrame) -> DataFrame:
        return (tx.withColumn("day", local_day("ts", zone))
                .groupBy("user_id", "dt", "day")
                .agg(F.array_sort(F.collect_set("order_id")).alias("order_ids"),
                     F.sum(money(F.col("amount"))).alias("amount_sum"),
                     F.count("amount").alias("amounts_known"),
                     F.count("*").alias("lines"),
                     F.min("ts").alias("first_ts"),
                     F.max("ts").alias("last_ts"))
                .select(*ORDER_DAY_STATE.fieldNames()))
    return apply


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


def interaction_day_state(browse: DataFrame, tx: DataFrame, zone: str) -> DataFrame:
    """browse and transactions -> one ``INTERACTION_DAY_STATE`` row per (user, source, dt, day, item, kind)."""
    return (interaction_kinds(browse, tx).withColumn("day", local_day("ts", zone))
            .groupBy("user_id", "source", "dt", "day", "item_id", "kind").agg(F.count("*").alias("events"))
            .select(*INTERACTION_DAY_STATE.fieldNames()))


def price_day_state(zone: str) -> Callable[[DataFrame], DataFrame]:
    """transactions -> one ``PRICE_DAY_STATE`` row per (user, dt, day, unit price paid), with its lines."""
    def apply(tx: DataFrame) -> DataFrame:
        return (paid_lines(tx).withColumn("day", local_day("ts", zone))
                .groupBy("user_id", "dt", "day", "unit_price")
                .agg(F.count("*").alias("lines"))
                .select(*PRICE_DAY_STATE.fieldNames()))
    return apply


def browse_day_state(zone: str) -> Callable[[DataFrame], DataFrame]:
    """browse (not yet sessionised) -> one ``BROWSE_DAY_STATE`` row per (user, dt, day, session id or null)."""
    def apply(browse: DataFrame) -> DataFrame:
        unsessionised = F.col("session_id").isNull()
        return (browse.withColumn("day", local_day("ts", zone))
                .groupBy("user_id", "dt", "day", "session_id")
                .agg(*[count_where(F.col("event_type") == t).alias(f"{t}s") for t in FUNNEL_EVENTS],
                     F.count("*").alias("events"),
                     F.sum("dwell_ms").alias("dwell_ms_sum"),
                     F.count("dwell_ms").alias("dwell_known"),
                     F.min("ts").alias("first_ts"),
                     F.max("ts").alias("last_ts"),
                     F.array_sort(F.collect_list(F.when(unsessionised, F.col("ts")))).alias("auto_ts"))
                .select(*BROWSE_DAY_STATE.fieldNames()))
    return apply


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


def rfm_from_state(windows: list[int], as_of: datetime, zone: str) -> Callable[[DataFrame], DataFrame]:
    """``ORDER_DAY_STATE`` -> the columns of ``rfm_features(windows, as_of, zone)``, for a local-midnight ``as_of``."""
    today = local_midnight_date(as_of, zone)

    def orders(condition) -> F.Column:
        return F.size(F.array_distinct(F.flatten(F.collect_list(F.when(condition, F.col("order_ids")))))).cast("long")

    def apply(state: DataFrame) -> DataFrame:
        past = state.filter(F.col("day") < F.lit(today))
        amounts_known = F.sum("amounts_known") > 0
        per_window = []
        for w in windows:
            in_w = F.col("day") >= F.lit(today - timedelta(days=w))
            per_window += [
                orders(in_w).alias(f"orders_{w}d"),
                F.when(amounts_known, F.coalesce(money_sum(F.when(in_w, F.col("amount_sum"))), F.lit(0.0)))
                .alias(f"spend_{w}d"),
            ]
        return (past.groupBy("user_id")
                .agg(*per_window,
                     orders(F.lit(True)).alias("frequency"),
                     money_sum(F.col("amount_sum")).alias("monetary"),
                     F.min("first_ts").alias("first_order_ts"),
                     F.max("last_ts").alias("last_order_ts"))
                .transform(order_summaries(as_of)))
    return apply


def _sum_arrays(column: str, size: int) -> list[F.Column]:
    return [F.sum(F.col(column)[i]) for i in range(size)]


def _day_events() -> F.Column:
    """Events in one ``EVENT_DAY_STATE`` row: its hour counts add up to them."""
    return F.aggregate("hour_counts", F.lit(0).cast("long"), lambda acc, c: acc + c)


def activity_from_state(as_of: datetime, recent_days: int, zone: str) -> Callable[[DataFrame], DataFrame]:
    """``EVENT_DAY_STATE`` -> the columns of ``activity_features(as_of, recent_days, zone)``."""
    today = local_midnight_date(as_of, zone)

    def apply(state: DataFrame) -> DataFrame:
        recent = F.col("day") >= F.lit(today - timedelta(days=recent_days))
        return (state.filter(F.col("day") < F.lit(today)).groupBy("user_id")
                .agg(F.count_distinct("day").alias("active_days"),
                     F.coalesce(F.sum(F.when(recent, _day_events())), F.lit(0)).alias(f"events_{recent_days}d"),
                     F.max("last_ts").alias("last_event_ts"))
                .withColumn("days_since_last_event", days_between(as_of, F.col("last_event_ts"))))
    return apply


def time_patterns_from_state(as_of: datetime, night_hours: list[int], zone: str) -> Callable[[DataFrame], DataFrame]:
    """``EVENT_DAY_STATE`` -> the columns of ``time_pattern_features(as_of, night_hours, zone)``."""
    today = local_midnight_date(as_of, zone)

    def apply(state: DataFrame) -> DataFrame:
        weekday = iso_weekday("day")
        counts = (state.filter(F.col("day") < F.lit(today)).groupBy("user_id")
                  .agg(F.sum(_day_events()).alias("_n"),
                       F.array(*_sum_arrays("hour_counts", 24)).alias("_hours"),
                       F.array(*[F.coalesce(F.sum(F.when(weekday == d, _day_events())), F.lit(0)) for d in range(1, 8)])
                       .alias("_days"),
                       F.sum(sum(F.col("hour_counts")[h] for h in night_hours) if night_hours else F.lit(0))
                       .alias("_night")))
        return counts.transform(pattern_summaries)
    return apply


def social_from_state(as_of: datetime, zone: str) -> Callable[[DataFrame], DataFrame]:
    """``SOCIAL_DAY_STATE`` -> the columns of ``social_features(as_of)``."""
    today = local_midnight_date(as_of, zone)

    def apply(state: DataFrame) -> DataFrame:
        counts = dict(zip(SOCIAL_KINDS, _sum_arrays("kind_counts", len(SOCIAL_KINDS))))
        return (state.filter(F.col("day") < F.lit(today)).groupBy("user_id")
                .agg(counts["review"].alias("review_count"),
                     ratio(F.sum("rating_sum"), F.sum("ratings_known")).alias("mean_rating"),
                     *[counts[k].alias(f"{k}_count") for k in SOCIAL_KINDS if k != "review"]))
    return apply


def interactions_from_state(weights: dict[str, float], as_of: datetime, zone: str, items: DataFrame
                            ) -> Callable[[DataFrame], DataFrame]:
    """``INTERACTION_DAY_STATE`` -> per (user, item) weighted interactions, as ``interactions`` gives per event.

    ``affinity_features`` sums the weights per category and brand, so the two give the same affinities
    (exactly when the weights are small multiples of a power of two, as the defaults are).
    """
    today = local_midnight_date(as_of, zone)

    def apply(state: DataFrame) -> DataFrame:
        return (state.filter(F.col("day") < F.lit(today))
                .withColumn("weight", kind_weight(weights) * F.col("events"))
                .filter(F.col("weight") > 0)
                .groupBy("user_id", "item_id").agg(F.sum("weight").alias("weight"))
                .join(items.select("item_id", "category", "brand"), "item_id", "left"))
    return apply


def price_from_state(quantiles: list[float], as_of: datetime, zone: str, items: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """``PRICE_DAY_STATE`` -> the columns of ``price_band_features``: the median of the same multiset of prices."""
    today = local_midnight_date(as_of, zone)

    def apply(state: DataFrame) -> DataFrame:
        paid = state.filter(F.col("day") < F.lit(today)).select(
            "user_id", F.explode(F.array_repeat("unit_price", F.col("lines").cast("int"))).alias("unit_price"))
        return paid.transform(price_bands(quantiles, items))
    return apply


def conversion_from_state(as_of: datetime, gap_minutes: int, zone: str) -> Callable[[DataFrame, DataFrame], DataFrame]:
    """(``BROWSE_DAY_STATE``, ``ORDER_DAY_STATE``) -> the columns of ``conversion_features``.

    The source's sessions merge across days by their id; unsessionised events are sessionised again
    from their times, so a session that spans midnight or two partitions stays one session.
    """
    today = local_midnight_date(as_of, zone)

    def apply(browse_state: DataFrame, order_state: DataFrame) -> DataFrame:
        past = browse_state.filter(F.col("day") < F.lit(today))
        named = (past.filter(F.col("session_id").isNotNull()).groupBy("user_id", "session_id")
                 .agg(F.sum("events").alias("n"), session_micros(F.min("first_ts"), F.max("last_ts"))))
        gap_sessions = (past.select("user_id", F.explode("auto_ts").alias("ts"),
                                    F.lit(None).cast("string").alias("session_id"))
                        .transform(sessionize(gap_minutes)).groupBy("user_id", "session_id")
                        .agg(F.count("*").alias("n"), session_micros(F.min("ts"), F.max("ts"))))
        funnel = past.groupBy("user_id").agg(
            *[F.sum(f"{t}s").alias(f"{t}s") for t in FUNNEL_EVENTS],
            (ratio(F.sum("dwell_ms_sum"), F.sum("dwell_known")) / 1000.0).alias("avg_dwell_s"))
        lines = (order_state.filter(F.col("day") < F.lit(today)).groupBy("user_id")
                 .agg(F.sum("lines").alias("lines")))
        return funnel_rates(funnel, named.unionByName(gap_sessions), lines)
    return apply
