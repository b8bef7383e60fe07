"""Browse funnel (view -> cart -> buy) and session statistics."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.features.common import before, count_where, ratio


def sessionize(gap_minutes: int) -> Callable[[DataFrame], DataFrame]:
    """Fill missing ``session_id``s: a user's events form one session until a gap longer than ``gap_minutes``.

    Rows that already carry a session id keep it. Generated ids are ``{user_id}-auto-{n}``.
    """
    def apply(browse: DataFrame) -> DataFrame:
        missing = browse.filter(F.col("session_id").isNull())
        by_user = Window.partitionBy("user_id").orderBy("ts")
        gap = F.col("ts").cast("long") - F.lag(F.col("ts").cast("long")).over(by_user)
        starts = F.when(gap.isNull() | (gap > gap_minutes * 60), 1).otherwise(0)
        numbered = (missing.withColumn("_start", starts)
                    .withColumn("_n", F.sum("_start").over(by_user.rowsBetween(Window.unboundedPreceding, 0)))
                    .withColumn("session_id", F.concat_ws("-", "user_id", F.lit("auto"), F.col("_n").cast("string")))
                    .drop("_start", "_n"))
        return browse.filter(F.col("session_id").isNotNull()).unionByName(numbered)
    return apply


def conversion_features(as_of: datetime) -> Callable[[DataFrame, DataFrame], DataFrame]:
    """Per user, from sessionised browse events and transactions (both before ``as_of``).

    view_to_cart_rate = carts / views; cart_to_buy_rate = purchased lines / carts, capped at 1.
    Both are null when their denominator is zero.
    """
    def apply(browse: DataFrame, tx: DataFrame) -> DataFrame:
        events = browse.filter(before(as_of))
        sessions = events.groupBy("user_id", "session_id").agg(F.count("*").alias("n"),
                                                                 session_micros(F.min("ts"), F.max("ts")))
        funnel = events.groupBy("user_id").agg(
            *[count_where(F.col("event_type") == t).alias(f"{t}s") for t in FUNNEL_EVENTS],
            (F.avg("dwell_ms") / 1000.0).alias("avg_dwell_s"))
        lines = tx.filter(before(as_of)).groupBy("user_id").agg(F.count("*").alias("lines"))
        return funnel_rates(funnel, sessions, lines)
    return apply


FUNNEL_EVENTS = ("view", "click", "cart", "fav")


def session_micros(first: Column, last: Column) -> Column:
    """A session's length in microseconds: a whole number, so the mean over sessions is exact in any order."""
    return (F.unix_micros(last) - F.unix_micros(first)).alias("micros")


def funnel_rates(funnel: DataFrame, sessions: DataFrame, lines: DataFrame) -> DataFrame:
    """The conversion columns from their parts, per user.

    ``funnel``: user_id, views, clicks, carts, favs, avg_dwell_s; ``sessions``: user_id, session_id,
    n (events) and micros; ``lines``: user_id, lines (purchased transaction lines).
    """
    stats = (sessions.groupBy("user_id")
             .agg(F.count("*").alias("sessions"), F.avg("n").alias("avg_session_events"),
                  (F.avg("micros") / 60e6).alias("avg_session_minutes")))
    return (funnel.join(stats, "user_id", "left").join(lines.select("user_id", "lines"), "user_id", "left")
            .withColumn("view_to_cart_rate", ratio(F.col("carts"), F.col("views")))
            # least() skips nulls, so cap only where the ratio exists.
            .withColumn("cart_to_buy_rate", F.when(F.col("carts") > 0, F.least(
                F.lit(1.0), ratio(F.coalesce(F.col("lines"), F.lit(0)), F.col("carts")))))
            .drop("lines"))
