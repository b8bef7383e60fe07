"""Recency, frequency and monetary value over rolling windows: the ``state_orders`` tile and its fold."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.clock import local_day, local_midnight_date
from jobs.features.common import days_between, money, money_sum, ratio, unsettled
from schemas.state import ORDER_DAY_STATE, ORDER_SUMMARY


def order_summaries(as_of: datetime) -> Callable[[DataFrame], DataFrame]:
    """Adds avg_order_value, recency_days and purchase_interval_days (the mean days between a repeat buyer's
    orders, first to last) to per-user frequency, monetary, first_order_ts and last_order_ts."""
    def apply(per_user: DataFrame) -> DataFrame:
        span = days_between(F.col("last_order_ts"), F.col("first_order_ts"))
        return (per_user.withColumn("avg_order_value", ratio(F.col("monetary"), F.col("frequency")))
                .withColumn("recency_days", days_between(as_of, F.col("last_order_ts")))
                .withColumn("purchase_interval_days", ratio(span, F.col("frequency") - 1)))
    return apply


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


def order_totals(rows: DataFrame) -> DataFrame:
    """``ORDER_DAY_STATE`` tiles, or ``ORDER_SUMMARY`` rows -> one ``ORDER_SUMMARY`` per user: the union of the order
    ids, the exact sums, the first and last times."""
    return (rows.groupBy("user_id")
            .agg(F.array_sort(F.array_distinct(F.flatten(F.collect_list("order_ids")))).alias("order_ids"),
                 F.sum("amount_sum").alias("amount_sum"), F.sum("amounts_known").alias("amounts_known"),
                 F.sum("lines").alias("lines"), F.min("first_ts").alias("first_ts"), F.max("last_ts").alias("last_ts"))
            .select(*ORDER_SUMMARY.fieldNames()))


def orders_before(as_of: datetime, zone: str, settled_before: date | None
                  ) -> Callable[[DataFrame, DataFrame], DataFrame]:
    """(``ORDER_DAY_STATE`` tiles, ``SETTLED_ORDERS`` settled before ``settled_before``) -> the tiles from it on, of days
    before ``as_of``'s, and one row per settled user in the same columns with a null ``day``: in no window."""
    def apply(tiles: DataFrame, settled: DataFrame) -> DataFrame:
        return (tiles.transform(unsettled(as_of, zone, settled_before)).select("day", *ORDER_SUMMARY.fieldNames())
                .unionByName(settled.select(F.lit(None).cast("date").alias("day"), *ORDER_SUMMARY.fieldNames())))
    return apply


def rfm_from_state(windows: list[int], as_of: datetime, zone: str, settled_before: date | None
                   ) -> Callable[[DataFrame, DataFrame], DataFrame]:
    """(``ORDER_DAY_STATE`` tiles, ``SETTLED_ORDERS``) -> per user, from orders before ``as_of`` (a local midnight):
    orders and spend in each window of local days, all-time frequency and monetary, first and last order,
    recency in days.

    Orders are distinct ``order_id``s (an order whose lines straddle midnight counts once). Spend is null
    when none of the user's lines has an amount (sources without prices); otherwise a window with no
    orders spends 0.0. ``settled_before`` must leave the longest window out.
    """
    today = local_midnight_date(as_of, zone)

    def orders(condition) -> F.Column:
        return F.size(F.array_distinct(F.flatten(F.collect_list(F.when(condition, F.col("order_ids")))))).cast("long")

    def apply(tiles: DataFrame, settled: DataFrame) -> DataFrame:
        past = orders_before(as_of, zone, settled_before)(tiles, settled)
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
