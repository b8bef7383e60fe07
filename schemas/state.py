"""Mergeable feature state the incremental job keeps between runs (issue 6; see docs/incremental-design.md).

One row per user, input partition ``dt`` and event ``day`` (the UTC date of ``ts``). Keeping ``dt``
lets a partition that received late data replace its rows; keeping ``day`` lets the rolling windows
slide by whole days, whatever partition an event was filed under.
"""
from pyspark.sql.types import (ArrayType, DateType, DoubleType, LongType, StringType, StructField, StructType,
                               TimestampType)

from schemas.social import SOCIAL_KINDS

ORDER_DAY_STATE = StructType([
    StructField("user_id", StringType(), False),
    StructField("dt", DateType(), False),
    StructField("day", DateType(), False),
    # Distinct order ids, not a count: an order whose lines straddle midnight must count once per window.
    StructField("order_ids", ArrayType(StringType(), False), False),
    StructField("amount_sum", DoubleType()),     # sum of the known amounts; null when none is known
    StructField("amounts_known", LongType(), False),
    StructField("first_ts", TimestampType(), False),
    StructField("last_ts", TimestampType(), False),
])

EVENT_DAY_STATE = StructType([
    StructField("user_id", StringType(), False),
    StructField("source", StringType(), False),  # browse, transaction, social: each table's partitions move alone
    StructField("dt", DateType(), False),
    StructField("day", DateType(), False),
    StructField("hour_counts", ArrayType(LongType(), False), False),  # 24 counts, UTC hours; their sum is the events
    StructField("last_ts", TimestampType(), False),
])

SOCIAL_DAY_STATE = StructType([
    StructField("user_id", StringType(), False),
    StructField("dt", DateType(), False),
    StructField("day", DateType(), False),
    StructField("kind_counts", ArrayType(LongType(), False), False),  # one count per SOCIAL_KINDS entry
    StructField("rating_sum", LongType()),                             # reviews' ratings; null when none is known
    StructField("ratings_known", LongType(), False),
])

INTERACTION_DAY_STATE = StructType([
    StructField("user_id", StringType(), False),
    StructField("source", StringType(), False),  # browse or transaction
    StructField("dt", DateType(), False),
    StructField("day", DateType(), False),
    StructField("item_id", StringType(), False),
    StructField("kind", StringType(), False),    # view, click, cart, fav, buy
    # Counts, not weights: the configured weights apply when the state is read, so changing them needs no rebuild.
    StructField("events", LongType(), False),
])
