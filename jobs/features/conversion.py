"""Browse funnel (view -> cart -> buy) and session statistics: the ``state_browse`` tile, its settled summary
(``settled_sessions``) and its fold."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Callable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType

from jobs.clock import day_start, local_day
from jobs.features.common import count_where, ratio, unsettled
from jobs.features.rfm import orders_before
from schemas.state import BROWSE_DAY_STATE, SESSION, SESSION_SUMMARY


FUNNEL_EVENTS = ("view", "click", "cart", "fav")
FUNNEL_SUMS = (*[f"{t}s" for t in FUNNEL_EVENTS], "dwell_ms_sum", "dwell_known")
CLOSED_TOTALS = ("closed_sessions", "closed_events", "closed_micros")


@dataclass(frozen=True)
class SessionRule:
    """When two events of a user are one session: no more than ``gap_minutes`` apart where the source gave no session
    id, and, with one, the same id unseen for less than ``id_idle_hours`` (a session id the source reuses a day later
    is a new visit). Both as a gap between consecutive events, so the rule merges pieces of sessions exactly: a piece's
    span and the gap after it, overlapping the next piece's, make one session (``sessions_of``)."""

    gap_minutes: int
    id_idle_hours: int

    def gap_micros(self, session_id: Column) -> Column:
        return F.when(session_id.isNull(), F.lit(self.gap_minutes * 60_000_000)).otherwise(
            F.lit(self.id_idle_hours * 3_600_000_000))


def sessions_of(rule: SessionRule) -> Callable[[DataFrame], DataFrame]:
    """``SESSION`` pieces per user (user_id, session_id, first_ts, last_ts, n) -> the sessions they make: per user and
    session id (null: none), a piece within ``rule``'s gap of the latest end before it continues that session."""
    def apply(pieces: DataFrame) -> DataFrame:
        ordered = Window.partitionBy("user_id", "session_id").orderBy("first_ts", "last_ts")
        reach = F.max(F.unix_micros("last_ts")).over(ordered.rowsBetween(Window.unboundedPreceding, -1))
        starts = F.when(reach.isNull() | (F.unix_micros("first_ts") - reach > rule.gap_micros(F.col("session_id"))), 1)
        return (pieces.withColumn("_start", F.coalesce(starts, F.lit(0)))
                .withColumn("_n", F.sum("_start").over(ordered.rowsBetween(Window.unboundedPreceding, 0)))
                .groupBy("user_id", "session_id", "_n")
                .agg(F.min("first_ts").alias("first_ts"), F.max("last_ts").alias("last_ts"), F.sum("n").alias("n"))
                .select("user_id", *SESSION.fieldNames()))
    return apply


def session_pieces(tiles: DataFrame) -> DataFrame:
    """``BROWSE_DAY_STATE`` tiles -> ``SESSION`` pieces: a named tile is one, an unsessionised event another."""
    event = lambda ts: F.struct(ts.alias("first_ts"), ts.alias("last_ts"), F.lit(1).cast("long").alias("n"))  # noqa: E731
    piece = F.when(F.col("session_id").isNotNull(),
                   F.array(F.struct("first_ts", "last_ts", F.col("events").alias("n")))).otherwise(
        F.transform("auto_ts", event))
    return tiles.select("user_id", "session_id", F.explode(piece).alias("_p")).select("user_id", "session_id", "_p.*")


def _collected_sessions(sessions: DataFrame) -> DataFrame:
    """Sessions -> per user, ``open_sessions``: all of them, sorted (so equal summaries are equal rows)."""
    return sessions.groupBy("user_id").agg(
        F.array_sort(F.collect_list(F.struct(*SESSION.fieldNames()))).alias("open_sessions"))


def _summary(sums: DataFrame, sessions: DataFrame) -> DataFrame:
    return (sums.join(_collected_sessions(sessions), "user_id", "left")
            .withColumn("open_sessions", F.coalesce("open_sessions", F.array().cast(ArrayType(SESSION, False))))
            .select(*SESSION_SUMMARY.fieldNames()))


def session_summaries(rule: SessionRule) -> Callable[[DataFrame], DataFrame]:
    """``BROWSE_DAY_STATE`` tiles -> one ``SESSION_SUMMARY`` row per user: the funnel's sums, and every session open."""
    def apply(tiles: DataFrame) -> DataFrame:
        sums = tiles.groupBy("user_id").agg(*[F.sum(c).alias(c) for c in FUNNEL_SUMS],
                                            *[F.lit(0).cast("long").alias(c) for c in CLOSED_TOTALS])
        return _summary(sums, tiles.transform(session_pieces).transform(sessions_of(rule)))
    return apply


def merged_session_summaries(rule: SessionRule) -> Callable[[DataFrame], DataFrame]:
    """``SESSION_SUMMARY`` rows -> one per user: the sums added, the open sessions merged by ``rule``."""
    def apply(summaries: DataFrame) -> DataFrame:
        sums = summaries.groupBy("user_id").agg(*[F.sum(c).alias(c) for c in (*FUNNEL_SUMS, *CLOSED_TOTALS)])
        pieces = summaries.select("user_id", F.explode("open_sessions").alias("_s")).select("user_id", "_s.*")
        return _summary(sums, pieces.transform(sessions_of(rule)))
    return apply


def _totals(sessions: Column) -> list[Column]:
    """An array of ``SESSION``s -> how many, their events and their length in microseconds (whole numbers, so the
    means over them are exact in any order), in ``CLOSED_TOTALS``' order."""
    add = lambda part: F.aggregate(sessions, F.lit(0).cast("long"), lambda acc, s: acc + part(s))  # noqa: E731
    return [F.size(sessions).cast("long"), add(lambda s: s["n"]),
            add(lambda s: F.unix_micros(s["last_ts"]) - F.unix_micros(s["first_ts"]))]


def closed_sessions(rule: SessionRule, lead: int, zone: str) -> Callable[[date], Callable[[DataFrame], DataFrame]]:
    """settled_before -> (``SESSION_SUMMARY`` rows of the partitions before it -> the same, with the open sessions no
    later tile can continue moved into the closed totals).

    A partition from ``settled_before`` on holds no day before ``settled_before - lead`` (``first_partition``), so a
    session whose end plus its gap falls before that day can take no more events. A day earlier still: the margin keeps
    a day whose midnight a clock change moves on the right side."""
    def at(settled_before: date) -> Callable[[DataFrame], DataFrame]:
        edge = F.unix_micros(F.lit(day_start(settled_before - timedelta(days=lead + 1), zone)))
        done = lambda s: F.unix_micros(s["last_ts"]) + rule.gap_micros(s["session_id"]) < edge  # noqa: E731
        ended = F.filter("open_sessions", done)
        return lambda summaries: (
            summaries.select(*[F.col(c) for c in SESSION_SUMMARY.fieldNames() if c not in (*CLOSED_TOTALS, "open_sessions")],
                             *[(F.col(c) + total).alias(c) for c, total in zip(CLOSED_TOTALS, _totals(ended))],
                             F.filter("open_sessions", lambda s: ~done(s)).alias("open_sessions"))
            .select(*SESSION_SUMMARY.fieldNames()))
    return at


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


def conversion_from_state(as_of: datetime, rule: SessionRule, zone: str, sessions_settled_before: date | None,
                          orders_settled_before: date | None
                          ) -> Callable[[DataFrame, DataFrame, DataFrame, DataFrame], DataFrame]:
    """(``BROWSE_DAY_STATE`` tiles, ``SETTLED_SESSIONS`` settled before ``sessions_settled_before``, ``ORDER_DAY_STATE``
    tiles, ``SETTLED_ORDERS`` settled before ``orders_settled_before``) -> per user, before ``as_of``: funnel counts,
    mean dwell, session statistics, view_to_cart_rate = carts / views and cart_to_buy_rate = purchased lines / carts
    (capped at 1); both rates are null when their denominator is zero.

    Sessions follow ``rule`` over every event, whatever day or partition holds it: a session that spans midnight or
    two partitions stays one session. The tiles read are those from ``sessions_settled_before`` on; the settled
    summary stands for the others, and its open sessions merge with theirs.
    """
    def apply(browse_state: DataFrame, settled_sessions: DataFrame, order_state: DataFrame, settled_orders: DataFrame
              ) -> DataFrame:
        recent = browse_state.transform(unsettled(as_of, zone, sessions_settled_before)).transform(session_summaries(rule))
        merged = settled_sessions.select(*SESSION_SUMMARY.fieldNames()).unionByName(recent).transform(
            merged_session_summaries(rule))
        lines = (orders_before(as_of, zone, orders_settled_before)(order_state, settled_orders).groupBy("user_id")
                 .agg(F.sum("lines").alias("lines")))
        sessions, events, micros = [F.col(c) + total for c, total in zip(CLOSED_TOTALS, _totals(F.col("open_sessions")))]
        return (merged.join(lines, "user_id", "left")
                .select("user_id", *[f"{t}s" for t in FUNNEL_EVENTS],
                        (ratio(F.col("dwell_ms_sum"), F.col("dwell_known")) / 1000.0).alias("avg_dwell_s"),
                        sessions.alias("sessions"), ratio(events, sessions).alias("avg_session_events"),
                        (ratio(micros, sessions) / 60e6).alias("avg_session_minutes"),
                        ratio(F.col("carts"), F.col("views")).alias("view_to_cart_rate"),
                        # least() skips nulls, so cap only where the ratio exists.
                        F.when(F.col("carts") > 0, F.least(F.lit(1.0), ratio(F.coalesce(F.col("lines"), F.lit(0)),
                                                                             F.col("carts")))).alias("cart_to_buy_rate")))
    return apply
