"""Browse funnel (view -> cart -> buy) and session statistics: the ``state_browse`` tile and its fold."""
from __future__ import annotations

from datetime import date, datetime
from typing import Callable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.clock import local_day, local_midnight_date
from jobs.features.common import count_where, ratio
from jobs.features.rfm import orders_before
from schemas.state import BROWSE_DAY_STATE


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


FUNNEL_EVENTS = ("view", "click", "cart", "fav")
SESSION_TOTALS = ("sessions", "session_events", "session_micros")


def session_totals(sessions: DataFrame) -> DataFrame:
    """(user_id, session_id, n events, micros) per session -> per user, the ``SESSION_TOTALS``: sessions,
    session_events and session_micros (whole numbers, so the means over them are exact in any order)."""
    return sessions.groupBy("user_id").agg(F.count("*").alias("sessions"), F.sum("n").alias("session_events"),
                                           F.sum("micros").alias("session_micros"))


def session_micros(first: Column, last: Column) -> Column:
    """A session's length in microseconds: a whole number, so the mean over sessions is exact in any order."""
    return (F.unix_micros(last) - F.unix_micros(first)).alias("micros")


def funnel_rates(per_user: DataFrame, more_sessions: DataFrame, lines: DataFrame) -> DataFrame:
    """The conversion columns from their parts, per user.

    ``per_user``: user_id, views, clicks, carts, favs, avg_dwell_s and the ``SESSION_TOTALS`` of the sessions counted
    with them; ``more_sessions``: user_id and the totals of sessions counted apart (``session_totals``);
    ``lines``: user_id, lines (purchased transaction lines).
    """
    more = more_sessions.select("user_id", *[F.col(c).alias(f"_more_{c}") for c in SESSION_TOTALS])
    total = {c: F.col(c) + F.coalesce(F.col(f"_more_{c}"), F.lit(0)) for c in SESSION_TOTALS}
    return (per_user.join(more, "user_id", "left").join(lines.select("user_id", "lines"), "user_id", "left")
            .withColumn("avg_session_events", ratio(total["session_events"], total["sessions"]))
            .withColumn("avg_session_minutes", ratio(total["session_micros"], total["sessions"]) / 60e6)
            .withColumn("sessions", total["sessions"])
            .withColumn("view_to_cart_rate", ratio(F.col("carts"), F.col("views")))
            # least() skips nulls, so cap only where the ratio exists.
            .withColumn("cart_to_buy_rate", F.when(F.col("carts") > 0, F.least(
                F.lit(1.0), ratio(F.coalesce(F.col("lines"), F.lit(0)), F.col("carts")))))
            .drop("lines", "session_events", "session_micros", *[f"_more_{c}" for c in SESSION_TOTALS]))


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


def conversion_from_state(as_of: datetime, gap_minutes: int, zone: str, orders_settled_before: date
                          ) -> Callable[[DataFrame, DataFrame, DataFrame], DataFrame]:
    """(``BROWSE_DAY_STATE`` tiles, ``ORDER_DAY_STATE`` tiles, ``SETTLED_ORDERS`` settled before
    ``orders_settled_before``) -> per user, before ``as_of``: funnel counts, mean dwell,
    session statistics, view_to_cart_rate = carts / views and cart_to_buy_rate = purchased lines / carts
    (capped at 1); both rates are null when their denominator is zero.

    The source's sessions merge across days by their id; unsessionised events are sessionised again
    from their times, so a session that spans midnight or two partitions stays one session.
    """
    today = local_midnight_date(as_of, zone)

    def apply(browse_state: DataFrame, order_state: DataFrame, settled_orders: DataFrame) -> DataFrame:
        past = browse_state.filter(F.col("day") < F.lit(today))
        # The funnel and the named sessions come from one aggregate, so the tiles are read whole once (Spark prunes
        # a shared aggregate per branch, and two branches read them twice). The unsessionised times are read
        # apart: Spark pushes their filter on session_id into the Parquet reader, which then reads a fraction.
        named = F.col("session_id").isNotNull()
        per_session = (past.groupBy("user_id", "session_id")
                       .agg(F.sum("events").alias("n"), session_micros(F.min("first_ts"), F.max("last_ts")),
                            *[F.sum(f"{t}s").alias(f"{t}s") for t in FUNNEL_EVENTS],
                            F.sum("dwell_ms_sum").alias("dwell_ms_sum"), F.sum("dwell_known").alias("dwell_known")))
        per_user = per_session.groupBy("user_id").agg(
            *[F.sum(f"{t}s").alias(f"{t}s") for t in FUNNEL_EVENTS],
            (ratio(F.sum("dwell_ms_sum"), F.sum("dwell_known")) / 1000.0).alias("avg_dwell_s"),
            F.count(F.when(named, 1)).alias("sessions"),
            F.coalesce(F.sum(F.when(named, F.col("n"))), F.lit(0)).alias("session_events"),
            F.coalesce(F.sum(F.when(named, F.col("micros"))), F.lit(0)).alias("session_micros"))
        gap_sessions = (past.filter(~named).select("user_id", F.explode("auto_ts").alias("ts"), "session_id")
                        .transform(sessionize(gap_minutes)).groupBy("user_id", "session_id")
                        .agg(F.count("*").alias("n"), session_micros(F.min("ts"), F.max("ts"))))
        lines = (orders_before(as_of, zone, orders_settled_before)(order_state, settled_orders).groupBy("user_id")
                 .agg(F.sum("lines").alias("lines")))
        return funnel_rates(per_user, session_totals(gap_sessions), lines)
    return apply
