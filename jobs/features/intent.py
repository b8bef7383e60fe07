"""Short-horizon intent: what a user did in the last few local days, what they carted or favourited and
have not bought since, and how long ago they last carted and favourited. Real logs carry their signal for
the next days here: a 90-day window cannot tell yesterday's carts from last month's.

Folded from the ``state_interactions`` tiles (per user, item, kind and local day) and the ``state_browse``
tiles (whose sessions keep their last event's time).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.clock import local_midnight_date
from jobs.features.common import days_between, from_partition, unsettled
from schemas.state import BROWSE_SUMMARY

# Interaction kind -> the name its short-window counts take ("carts_1d").
KIND_COUNTS = {"view": "views", "cart": "carts", "fav": "favs", "buy": "buys"}
INTENT_KINDS = ("cart", "fav")  # what opens an intent; a later purchase of the item closes it


def short_window_columns(windows: list[int] | tuple[int, ...]) -> list[str]:
    return [f"{name}_{w}d" for w in windows for name in KIND_COUNTS.values()]


def intent_counts(windows: list[int], as_of: datetime, zone: str, lead: int) -> Callable[[DataFrame], DataFrame]:
    """``INTERACTION_DAY_STATE`` tiles -> per user: events of each kind in each of the last ``windows`` local
    days, and ``open_intent_items``: items carted or favourited in the longest of them and not bought on that
    day or after (a purchase the same day closes it: the tiles keep days, not times).

    Nothing before the longest window counts, so only the partitions that can hold its days are read
    (``from_partition``): a user with no row in it gets no row here, and zeros in the profile."""
    today = local_midnight_date(as_of, zone)
    longest = today - timedelta(days=max(windows))

    def apply(tiles: DataFrame) -> DataFrame:
        past = tiles.filter(from_partition(longest, lead) & (F.col("day") >= F.lit(longest))
                            & (F.col("day") < F.lit(today)))
        counts = [F.coalesce(F.sum(F.when((F.col("kind") == kind) & (F.col("day") >= F.lit(today - timedelta(days=w))),
                                          F.col("events"))), F.lit(0)).cast("long").alias(f"{name}_{w}d")
                  for w in windows for kind, name in KIND_COUNTS.items()]
        per_item = (past.groupBy("user_id", "item_id")
                    .agg(F.max(F.when(F.col("kind").isin(*INTENT_KINDS) & (F.col("day") >= F.lit(longest)),
                                      F.col("day"))).alias("_intent_day"),
                         F.max(F.when(F.col("kind") == "buy", F.col("day"))).alias("_bought_day")))
        still_open = F.col("_intent_day").isNotNull() & (F.col("_bought_day").isNull()
                                                         | (F.col("_bought_day") < F.col("_intent_day")))
        open_items = per_item.groupBy("user_id").agg(F.count(F.when(still_open, 1)).alias("open_intent_items"))
        return past.groupBy("user_id").agg(*counts).join(open_items, "user_id", "left")
    return apply


def intent_summaries(tiles: DataFrame) -> DataFrame:
    """``BROWSE_DAY_STATE`` tiles -> one ``BROWSE_SUMMARY`` row per user: when they last carted and favourited (the last
    event of a session, or of a day's unsessionised events, that held one)."""
    return (tiles.groupBy("user_id")
            .agg(F.max(F.when(F.col("carts") > 0, F.col("last_ts"))).alias("last_cart_ts"),
                 F.max(F.when(F.col("favs") > 0, F.col("last_ts"))).alias("last_fav_ts"))
            .select(*BROWSE_SUMMARY.fieldNames()))


def merged_intent_summaries(summaries: DataFrame) -> DataFrame:
    """``BROWSE_SUMMARY`` rows -> one per user: the latest of each time."""
    return (summaries.groupBy("user_id").agg(F.max("last_cart_ts").alias("last_cart_ts"),
                                             F.max("last_fav_ts").alias("last_fav_ts"))
            .select(*BROWSE_SUMMARY.fieldNames()))


def last_intent_times(as_of: datetime, zone: str, settled_before: date | None
                      ) -> Callable[[DataFrame, DataFrame], DataFrame]:
    """(``BROWSE_DAY_STATE`` tiles, ``SETTLED_BROWSE`` settled before ``settled_before``) -> per user, before ``as_of``:
    when they last carted and favourited, and the days since. The tiles read are those of the partitions from
    ``settled_before`` on; the settled summary stands for the others."""
    return lambda tiles, settled: (
        settled.select(*BROWSE_SUMMARY.fieldNames())
        .unionByName(tiles.transform(unsettled(as_of, zone, settled_before)).transform(intent_summaries))
        .transform(merged_intent_summaries).transform(intent_recency(as_of)))


def intent_recency(as_of: datetime) -> Callable[[DataFrame], DataFrame]:
    """Adds days_since_last_cart and days_since_last_fav (fractional: hours count) from the last times."""
    return lambda df: (df.withColumn("days_since_last_cart", days_between(as_of, F.col("last_cart_ts")))
                       .withColumn("days_since_last_fav", days_between(as_of, F.col("last_fav_ts"))))
